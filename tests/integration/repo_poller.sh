#!/usr/bin/env bash
# repo-poller end to end, real components only: a reprepro repository (signed with a throwaway
# GPG key, SignWith, GNUPGHOME in the temp dir) and an aptly-published one, both served over HTTP
# on loopback by python3's http.server; the embedded broker; stompctl subscribed to the package
# topic. Checks: the first poll records a baseline and publishes nothing; unchanged -> 304 and
# nothing published; `reprepro includedeb` of a newer version -> one package event (native and the
# original `package:` line); a package not of interest -> nothing; a tampered InRelease and one
# signed by another key -> refused, counted, nothing published, then published once the repository
# is signed again; a restart publishes nothing twice; after its polls the daemon does not map
# libcurl (the transfers run in a fetch child) and the credentials of a URL are not in its log; aptly publish update -> event; a missing
# version helper stops --check-config, a failing one the start; a version helper failing while
# running -> the poll is not committed (error line, counted, nothing published or recorded), and
# the next poll with the helper back publishes the event; during a transfer (a server that never
# answers) the fetch child's argv holds no URL, and SIGTERM ends the daemon and the child promptly. Reports the time from a changed
# InRelease to the event.
#   tests/integration/repo_poller.sh STOMP_BROKER STOMPCTL REPO_POLLER STOMP_REPO_VERCMP
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") poller=$(realpath "$3") vercmp=$(realpath "$4")
PY=/usr/bin/python3
for tool in reprepro aptly gpg gpgv dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "FAIL $tool is not installed (scripts/deps.sh installs it)"; exit 1; }
done
work=$(mktemp -d /tmp/deploykit-rp.XXXXXX)
bpid= hpid= ppid_= spid= xpid= qpid=
cleanup() {
  { [[ -n $ppid_ ]] && kill "$ppid_"; [[ -n $spid ]] && kill "$spid"; [[ -n $hpid ]] && kill "$hpid"
    [[ -n $qpid ]] && kill "$qpid"; [[ -n $xpid ]] && kill "$xpid"
    [[ -n $bpid ]] && kill "$bpid"; } 2>/dev/null || true
  wait 2>/dev/null || true
  gpgconf --homedir "$work/gnupg" --kill all 2>/dev/null || true
  [[ -n ${KEEP_WORK:-} ]] || rm -rf "$work"
}
trap cleanup EXIT
fail=0
pass() { echo "PASS $*"; }
bad() { echo "FAIL $*"; fail=1; }
until_true() { # SECONDS COMMAND...: poll a condition with a deadline
  local end=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < end)) || return 1; sleep 0.05; done
}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
log_has() { grep -qF -- "$2" "$1"; }
lines() { grep -cF -- "$2" "$1" || true; }
metric() { # NAME: its value from /metrics (0 when absent)
  "$PY" -c 'import sys,urllib.request
t=urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode()
v=[l.split()[-1] for l in t.splitlines() if l.startswith(sys.argv[2]+" ") or l.startswith(sys.argv[2]+"{")]
print(int(float(v[0])) if v else 0)' "$aport" "$1"; }
metric_above() { (($(metric "$1") > $2)); }
# Native package events seen by the subscriber matching a Python expression over `d` (the data).
events() { "$PY" -c 'import json,sys
n=0
for l in open(sys.argv[1]):
    try:
        m=json.loads(l)
        e=json.loads(m["body"])
    except (ValueError,KeyError):
        continue
    if e.get("type")!="package": continue
    d=e["data"]
    n+=bool(eval(sys.argv[2]))
print(n)' "${evfile:-$work/events}" "$1"; }
has_event() { (($(events "$1") >= 1)); }
now_ms() { date +%s%3N; }

# ---- a signing key and packages ------------------------------------------------------------------
# shellcheck source=tests/integration/apt_repo.sh
. "$(dirname "$0")/apt_repo.sh"
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
keyid=$(gen_key "deploykit test repo" repo@example.invalid)
otherid=$(gen_key "someone else" other@example.invalid)
gpg --batch --export "$keyid" >"$work/repo-keyring.gpg"
deb() { mkdeb "$work/debs" "$1" "$2" amd64; } # NAME VERSION
mkdir -p "$work/debs"
deb foo 1.0-1; deb foo 1.1-1; deb foo 1:0.9-1; deb bar 1.0-1; deb bar 2.0-1
deb baz-tools 3.0-1; deb baz-tools 3.1-1

# ---- the reprepro repository, signed -------------------------------------------------------------
repo=$work/www/reprepro
mkdir -p "$repo/conf"
cat >"$repo/conf/distributions" <<EOF
Origin: deploykit-test
Label: deploykit-test
Codename: bookworm
Suite: stable
Components: main
Architectures: amd64
DebIndices: Packages Release . .gz .xz
SignWith: $keyid
EOF
rr() { reprepro -b "$repo" --silent "$@"; }
rr includedeb bookworm "$work/debs/foo_1.0-1_amd64.deb"
rr includedeb bookworm "$work/debs/bar_1.0-1_amd64.deb"
rr includedeb bookworm "$work/debs/baz-tools_3.0-1_amd64.deb"
inrel=$repo/dists/bookworm/InRelease
[[ -f $inrel ]] && grep -q 'BEGIN PGP SIGNED MESSAGE' "$inrel" && grep -q 'Packages.xz' "$inrel" \
  || { echo "FAIL reprepro did not export a signed InRelease with Packages.xz"; exit 1; }
# Last-Modified has one-second resolution: the next export must land in a later second than the
# InRelease the poller last saw, or If-Modified-Since would call it unchanged (as it would for apt).
next_second() { local m; m=$(stat -c %Y "$inrel"); until_true 5 bash -c "(( \$(date +%s) > $m ))"; }

# ---- the aptly repository, signed by aptly with the same key --------------------------------------------------------------
cat >"$work/aptly.conf" <<EOF
{"rootDir": "$work/aptly", "architectures": ["amd64"]}
EOF
ap() { aptly -config="$work/aptly.conf" "$@" >>"$work/aptly.log" 2>&1; }
ap repo create -distribution=aptdist -component=main site
ap repo add site "$work/debs/foo_1.0-1_amd64.deb"
ap publish repo -batch -gpg-key="$keyid" -architectures=amd64 site
ln -s "$work/aptly/public" "$work/www/aptly"
[[ -f $work/www/aptly/dists/aptdist/InRelease ]] || { echo "FAIL aptly did not publish an InRelease: $(tail -3 "$work/aptly.log")"; exit 1; }

# ---- HTTP, broker, subscriber --------------------------------------------------------------------
hport=$(free_port) bport=$(free_port) aport=$(free_port)
"$PY" -m http.server --bind 127.0.0.1 --directory "$work/www" "$hport" >"$work/http.log" 2>&1 &
hpid=$!
until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$hport" 2>/dev/null || { echo "FAIL http.server did not start"; exit 1; }
"$broker" --listen "127.0.0.1:$bport" 2>"$work/broker.log" &
bpid=$!
until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$bport" 2>/dev/null || { echo "FAIL broker did not start"; exit 1; }
"$stompctl" -u "stomp://127.0.0.1:$bport" subscribe -t /topic/future.package.updates --json --wait 280 \
  --ready-file "$work/sub-ready" >"$work/events" 2>"$work/sub.err" &
spid=$!
until_true 10 test -f "$work/sub-ready" || { echo "FAIL subscriber not ready"; exit 1; }

# ---- repo-poller ---------------------------------------------------------------------------------
# The version helper (libapt-pkg's order, one run per changed index), failing while
# $work/vercmp-broken exists.
cat >"$work/vercmp" <<EOF
#!/bin/sh
if [ -e "$work/vercmp-broken" ]; then echo "stomp-repo-vercmp broken by the test" >&2; exit 3; fi
exec "$vercmp"
EOF
chmod 755 "$work/vercmp"
cat >"$work/poller.yaml" <<EOF
rserver: failover://(stomp://127.0.0.1:$bport)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
wire-format: both
state-dir: $work/state
version-helper: $work/vercmp
admin-listen: 127.0.0.1:$aport
heartbeat-interval: 0
repositories:
  - url: http://127.0.0.1:$hport/reprepro/
    suites: [bookworm]
    packages: [foo, "baz-*"]
    keyring: $work/repo-keyring.gpg
    interval: 1s
    jitter: 0
    retry-initial: 200ms
    retry-max: 1s
  - url: http://poller:s3cret-in-url@127.0.0.1:$hport/aptly
    suites: aptdist
    keyring: $work/repo-keyring.gpg
    interval: 1s
    jitter: 0
    retry-initial: 200ms
    retry-max: 1s
EOF
start_poller() {
  "$poller" -d -c "$work/poller.yaml" >>"$work/poller.log" 2>&1 &
  ppid_=$!
}
stop_poller() { kill "$ppid_"; wait "$ppid_" 2>/dev/null || true; ppid_=; }

# Config errors name the file, the line and the key, with the nearest known key.
sed 's/^    interval: 1s$/    intervall: 1s/' "$work/poller.yaml" >"$work/typo.yaml"
if out=$("$poller" --check-config -c "$work/typo.yaml" 2>&1); then bad "a misspelt key passed --check-config"
elif [[ $out == *"typo.yaml:"*"repositories[0].intervall"*"did you mean"*"interval"* ]]; then pass "config typo: file, line, key, did-you-mean"
else bad "config typo message: $out"; fi
"$poller" --check-config -c "$work/poller.yaml" >/dev/null 2>&1 && pass "--check-config accepts the test config" || bad "--check-config"
# The version helper is checked by --check-config and at start: missing, or failing.
sed "s|^version-helper: .*|version-helper: $work/no-such-vercmp|" "$work/poller.yaml" >"$work/nohelper.yaml"
rc=0; "$poller" --check-config -c "$work/nohelper.yaml" >"$work/nohelper.err" 2>&1 || rc=$?
[[ $rc == 2 ]] && grep -q "version-helper: $work/no-such-vercmp" "$work/nohelper.err" \
  && pass "missing version helper: --check-config exit 2, naming it" || bad "missing helper: rc $rc $(cat "$work/nohelper.err")"
touch "$work/vercmp-broken"
rc=0; timeout 20 "$poller" -d -c "$work/poller.yaml" >"$work/broken-start.err" 2>&1 || rc=$?
rm -f "$work/vercmp-broken"
[[ $rc == 2 ]] && grep -q "broken by the test" "$work/broken-start.err" && pass "failing version helper: the start fails (exit 2)" \
  || bad "failing helper at start: rc $rc $(tail -3 "$work/broken-start.err")"

start_poller
until_true 20 log_has "$work/poller.log" "reprepro bookworm: baseline recorded" \
  || { bad "no baseline for the reprepro repository: $(tail -5 "$work/poller.log")"; exit 1; }
until_true 20 log_has "$work/poller.log" "aptly aptdist: baseline recorded" || bad "no baseline for the aptly repository"
pass "first poll: baseline recorded for both repositories"
# The transfers ran in fetch children (repo-poller --fetch-worker): the daemon never maps libcurl.
if grep -q 'libcurl' "/proc/$ppid_/maps"; then bad "the daemon maps libcurl after its polls: $(grep -o '/[^ ]*libcurl[^ ]*' "/proc/$ppid_/maps" | sort -u)"
else pass "after its polls the daemon does not map libcurl (transfers in a child)"; fi
# Unchanged: the next polls are answered 304 Not Modified, and nothing is published.
until_true 20 metric_above repo_poller_not_modified_total 2 && pass "unchanged InRelease: 304 Not Modified (counted)" \
  || bad "no 304 seen: not_modified=$(metric repo_poller_not_modified_total)"
grep -q '"GET /reprepro/dists/bookworm/InRelease HTTP/1.[01]" 304' "$work/http.log" && pass "the server answered 304 to the conditional GET" \
  || bad "no 304 in the server log"
(($(events True) == 0)) && pass "baseline and 304s published nothing" || bad "events before any change: $(cat "$work/events")"

# ---- a newer version -> one event ----------------------------------------------------------------
next_second
rr includedeb bookworm "$work/debs/foo_1.1-1_amd64.deb"
t0=$(now_ms)
if until_true 20 has_event "d['name']=='foo' and d['new_version']=='1.1-1' and d['old_version']=='1.0-1' and d['codename']=='bookworm' and d['component']=='main' and d['architecture']=='amd64' and d['file']=='foo_1.1-1_amd64.deb'"; then
  t1=$(now_ms)
  echo "MEASURE changed InRelease -> package event on the bus: $((t1 - t0)) ms (poll interval 1 s)"
  pass "reprepro includedeb foo 1.1-1 -> package event (old 1.0-1, bookworm/main/amd64)"
else bad "no event for foo 1.1-1: $(cat "$work/events") $(tail -5 "$work/poller.log")"; fi
until_true 10 grep -q 'package: foo_1.1-1_amd64.deb' "$work/events" && pass "the original's 'package:' line too (wire-format both)" \
  || bad "no legacy package: line"
(($(metric repo_poller_changes_total) == 1)) && pass "changes_total 1" || bad "changes_total $(metric repo_poller_changes_total)"

# ---- not of interest, and versions ordered by libapt-pkg -----------------------------------------
next_second
rr includedeb bookworm "$work/debs/bar_2.0-1_amd64.deb"
until_true 20 log_has "$work/poller.log" "no newer version of interest" && pass "bar (not of interest): InRelease read, nothing published" \
  || bad "bar: $(tail -3 "$work/poller.log")"
# An epoch makes 1:0.9-1 newer than 1.1-1 (libapt-pkg's order, not the strings').
next_second
rr includedeb bookworm "$work/debs/foo_1:0.9-1_amd64.deb"
until_true 20 has_event "d['name']=='foo' and d['new_version']=='1:0.9-1' and d['old_version']=='1.1-1'" \
  && pass "epoch 1:0.9-1 > 1.1-1 (libapt-pkg order) -> event" || bad "no epoch event: $(tail -3 "$work/poller.log")"
next_second
rr includedeb bookworm "$work/debs/baz-tools_3.1-1_amd64.deb"
until_true 20 has_event "d['name']=='baz-tools' and d['new_version']=='3.1-1'" && pass "glob baz-* -> event for baz-tools 3.1-1" \
  || bad "no glob event"
(($(events "d['name']=='bar'") == 0)) && pass "no event for bar" || bad "bar published"

# ---- signatures ----------------------------------------------------------------------------------
sigs=$(metric repo_poller_signature_failures_total)
events_before=$(events True)
next_second
cp "$inrel" "$work/inrelease.good"
# Tampered: a signed line changed (reprepro's signature no longer matches), with a new Date so the bytes differ.
sed -i 's/^Date: .*/Date: Thu, 01 Jan 2026 00:00:00 UTC/' "$inrel"
until_true 20 metric_above repo_poller_signature_failures_total "$sigs" && pass "tampered InRelease refused by gpgv (counted)" \
  || bad "tampered InRelease not refused: $(tail -3 "$work/poller.log")"
log_has "$work/poller.log" "InRelease refused" && pass "the refusal is logged" || bad "refusal not logged"
# Signed by a key that is not in the keyring.
sigs=$(metric repo_poller_signature_failures_total)
next_second
sed -n '/^-----BEGIN PGP SIGNED MESSAGE-----$/,/^-----BEGIN PGP SIGNATURE-----$/p' "$work/inrelease.good" | sed '1,3d;$d' >"$work/Release.text"
gpg --batch --yes --quiet -u "$otherid" --clearsign -o "$inrel" "$work/Release.text"
until_true 20 metric_above repo_poller_signature_failures_total "$sigs" && pass "InRelease signed by another key refused" \
  || bad "foreign signature not refused: $(tail -3 "$work/poller.log")"
# A newer foo whose InRelease is tampered with: prepared in a copy of the repository (so the
# server never shows a good InRelease for it), published into the served tree with a bad one.
deb foo 1:1.2-1
cp -a "$repo" "$work/stage"
reprepro -b "$work/stage" --silent includedeb bookworm "$work/debs/foo_1:1.2-1_amd64.deb"
sed 's/^Date: .*/Date: Thu, 01 Jan 2026 00:00:00 UTC/' "$work/stage/dists/bookworm/InRelease" >"$work/inrelease.bad"
sigs=$(metric repo_poller_signature_failures_total)
next_second
cp -a "$work/stage/pool/." "$repo/pool/"
for f in "$work"/stage/dists/bookworm/main/binary-amd64/*; do cp "$f" "$repo/dists/bookworm/main/binary-amd64/.tmp"; mv "$repo/dists/bookworm/main/binary-amd64/.tmp" "$repo/dists/bookworm/main/binary-amd64/${f##*/}"; done
cp "$work/inrelease.bad" "$inrel.tmp" && mv "$inrel.tmp" "$inrel"
until_true 20 metric_above repo_poller_signature_failures_total "$sigs" || bad "tampered InRelease with a new version not refused"
(($(events True) == events_before)) && pass "nothing published while the signature is bad" || bad "published despite a bad signature"
next_second
cp "$work/stage/dists/bookworm/InRelease" "$inrel.tmp" && mv "$inrel.tmp" "$inrel"
until_true 20 has_event "d['name']=='foo' and d['new_version']=='1:1.2-1' and d['old_version']=='1:0.9-1'" && pass "correctly signed again -> the event for foo 1:1.2-1" \
  || bad "no event after re-signing: $(tail -3 "$work/poller.log")"

# ---- an index that does not match the InRelease's SHA256 -> refused, nothing published -------------
deb foo 1:1.3-1
reprepro -b "$work/stage" --silent includedeb bookworm "$work/debs/foo_1:1.3-1_amd64.deb"
fails=$(metric repo_poller_poll_failures_total)
events_before=$(events True)
next_second
bin=$repo/dists/bookworm/main/binary-amd64
cp -a "$work/stage/pool/." "$repo/pool/"
# Indices of the previous publish (wrong hashes) under the new, correctly signed InRelease.
cp "$work/stage/dists/bookworm/InRelease" "$inrel.tmp" && mv "$inrel.tmp" "$inrel"
until_true 20 metric_above repo_poller_poll_failures_total "$fails" && pass "Packages index not matching the InRelease SHA256 -> poll failed (counted)" \
  || bad "hash mismatch not detected: $(tail -3 "$work/poller.log")"
log_has "$work/poller.log" "size or SHA256 differs from the InRelease" || bad "hash mismatch not logged"
(($(events True) == events_before)) && pass "nothing published from an index that fails its hash" || bad "published from a bad index"
for f in "$work"/stage/dists/bookworm/main/binary-amd64/*; do cp "$f" "$bin/.tmp"; mv "$bin/.tmp" "$bin/${f##*/}"; done
until_true 20 has_event "d['name']=='foo' and d['new_version']=='1:1.3-1'" && pass "matching indices -> the event (retried with backoff)" \
  || bad "no event after the indices were fixed: $(tail -3 "$work/poller.log")"

# ---- the version helper fails: nothing of the poll is kept; the next poll, helper back, publishes --
deb foo 1:1.5-1
reprepro -b "$work/stage" --silent includedeb bookworm "$work/debs/foo_1:1.5-1_amd64.deb"
vfails=$(metric repo_poller_version_order_failures_total)
events_before=$(events True)
state_before=$(cat "$work"/state/*.json | sha256sum)
touch "$work/vercmp-broken"
next_second
cp -a "$work/stage/pool/." "$repo/pool/"
for f in "$work"/stage/dists/bookworm/main/binary-amd64/*; do cp "$f" "$bin/.tmp"; mv "$bin/.tmp" "$bin/${f##*/}"; done
cp "$work/stage/dists/bookworm/InRelease" "$inrel.tmp" && mv "$inrel.tmp" "$inrel"
# Two failures: the first poll's result was not committed, so the next one reads the index again.
until_true 20 metric_above repo_poller_version_order_failures_total $((vfails + 1)) \
  && pass "version helper failing: polls fail and are counted, the index read again at each retry" \
  || bad "helper failure not counted: $(tail -3 "$work/poller.log")"
log_has "$work/poller.log" "version helper failed" && log_has "$work/poller.log" "broken by the test" \
  && pass "the failure is an error line with the helper's answer" || bad "helper failure not logged"
(($(events True) == events_before)) && pass "nothing published while the helper fails" || bad "published without an order"
[[ $(cat "$work"/state/*.json | sha256sum) == "$state_before" ]] && pass "nothing recorded while the helper fails (state files unchanged)" \
  || bad "state changed while the helper failed"
rm -f "$work/vercmp-broken"
until_true 20 has_event "d['name']=='foo' and d['new_version']=='1:1.5-1' and d['old_version']=='1:1.3-1'" \
  && pass "helper back -> the next poll publishes foo 1:1.5-1 (old 1:1.3-1)" || bad "no event after the helper came back: $(tail -3 "$work/poller.log")"

# ---- aptly ----------------------------------------------------------------------------------------
ap repo add site "$work/debs/foo_1.1-1_amd64.deb"
ap publish update -batch -gpg-key="$keyid" aptdist
until_true 20 has_event "d['name']=='foo' and d['new_version']=='1.1-1' and d['codename']=='aptdist'" \
  && pass "aptly publish update -> package event (aptdist)" || bad "no aptly event: $(tail -3 "$work/poller.log") $(tail -3 "$work/aptly.log")"

# ---- restart: the state is kept, nothing is published twice ---------------------------------------
n=$(events True)
stop_poller
polls_log=$(lines "$work/poller.log" "not modified")
start_poller
until_true 20 bash -c "(( \$(grep -cF 'not modified' '$work/poller.log') > $polls_log + 2 ))" \
  && pass "after a restart: conditional GETs from the saved state (304)" || bad "no 304 after restart"
(($(events True) == n)) && pass "restart published nothing twice" || bad "events after restart: $(tail -2 "$work/events")"
log_has "$work/poller.log" "no state yet" && (($(lines "$work/poller.log" "no state yet") == 2)) \
  && pass "state files reused (no second baseline)" || bad "state not reused"

# ---- metrics ---------------------------------------------------------------------------------------
m=$("$PY" -c 'import sys,urllib.request; print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode())' "$aport")
for name in repo_poller_build_info repo_poller_polls_total repo_poller_not_modified_total repo_poller_changes_total \
            repo_poller_signature_failures_total repo_poller_last_success_timestamp_seconds; do
  grep -q "^$name" <<<"$m" || bad "metric $name missing"
done
pass "metrics: build_info, polls, not_modified, changes, signature_failures, last_success"
"$PY" -c 'import sys,urllib.request; urllib.request.urlopen("http://127.0.0.1:%s/readyz" % sys.argv[1], timeout=5)' "$aport" \
  && pass "/readyz 200" || bad "/readyz"
grep -qi "passw\|secret\|s3cret" "$work/poller.log" && bad "something secret-looking in the log (the aptly URL carries s3cret-in-url)" || true

# ---- broker down: the event goes to the outbox (state-dir/outbox) and is delivered later ----------
stop_poller
kill "$spid" "$bpid" 2>/dev/null || true
wait "$spid" "$bpid" 2>/dev/null || true
spid= bpid=
start_poller
deb foo 1:1.6-1
reprepro -b "$work/stage" --silent includedeb bookworm "$work/debs/foo_1:1.6-1_amd64.deb"
next_second
cp -a "$work/stage/pool/." "$repo/pool/"
for f in "$work"/stage/dists/bookworm/main/binary-amd64/*; do cp "$f" "$bin/.tmp"; mv "$bin/.tmp" "$bin/${f##*/}"; done
cp "$work/stage/dists/bookworm/InRelease" "$inrel.tmp" && mv "$inrel.tmp" "$inrel"
until_true 30 metric_above repo_poller_spooled_total 0 && pass "broker down: the package event was spooled (not lost)" \
  || bad "not spooled: $(tail -3 "$work/poller.log")"
ls "$work/state/outbox" | grep -q . && pass "the outbox file is in state-dir/outbox" || bad "no outbox file"
stop_poller
"$broker" --listen "127.0.0.1:$bport" 2>>"$work/broker.log" &
bpid=$!
until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$bport" 2>/dev/null || bad "broker did not restart"
rm -f "$work/sub-ready"
"$stompctl" -u "stomp://127.0.0.1:$bport" subscribe -t /topic/future.package.updates --json --wait 60 \
  --ready-file "$work/sub-ready" >"$work/events2" 2>>"$work/sub.err" &
spid=$!
until_true 10 test -f "$work/sub-ready" || bad "second subscriber not ready"
start_poller
evfile=$work/events2 until_true 30 has_event "d['name']=='foo' and d['new_version']=='1:1.6-1'" \
  && pass "broker back (and the poller restarted): the spooled event delivered from the outbox" \
  || bad "spooled event not delivered: $(tail -3 "$work/poller.log")"
(($(evfile=$work/events2 events True) == 1)) && pass "delivered once, not announced again by the poll" \
  || bad "events after the outbox delivery: $(cat "$work/events2")"
stop_poller

# ---- a poll in progress: the fetch child's argv, and a prompt stop --------------------------------
# A server that accepts and never answers; a second poller on it, with credentials in the URL.
xport=$(free_port)
"$PY" -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
held=[]
while True: held.append(s.accept()[0])' "$xport" &
xpid=$!
until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$xport" 2>/dev/null || bad "hanging server did not start"
cat >"$work/hang.yaml" <<EOF
rserver: stomp://127.0.0.1:$bport
state-dir: $work/hang-state
version-helper: $work/vercmp
heartbeat-interval: 0
repositories:
  - url: http://hang:s3cret-in-argv@127.0.0.1:$xport/repo
    suites: [bookworm]
    interval: 1s
    jitter: 0
EOF
"$poller" -d -c "$work/hang.yaml" >"$work/hang.log" 2>&1 &
qpid=$!
child=
fetch_child() { child=$(pgrep -P "$qpid" -f -- '--fetch-worker' | head -1); [[ -n $child ]]; }
if until_true 20 fetch_child; then
  argv=$(tr '\0' ' ' <"/proc/$child/cmdline" 2>/dev/null || true)
  [[ $argv == *"--fetch-worker"* && $argv != *s3cret* && $argv != *127.0.0.1* ]] \
    && pass "the fetch child's argv is '$argv' (no URL, no credentials)" || bad "fetch child argv: $argv"
  grep -q libcurl "/proc/$qpid/maps" && bad "the daemon maps libcurl during a poll" || pass "during a poll only the child maps libcurl"
  kill -TERM "$qpid"
  if until_true 5 bash -c "! kill -0 $qpid 2>/dev/null"; then pass "stop during a transfer: the daemon exits within 5 s"
  else bad "the daemon did not stop within 5 s of SIGTERM during a transfer"; fi
  wait "$qpid" 2>/dev/null || true
  qpid=
  until_true 5 bash -c "! kill -0 $child 2>/dev/null" && pass "the fetch child is ended at shutdown" || bad "fetch child $child left running"
else bad "no fetch child seen for a poll in progress: $(tail -3 "$work/hang.log")"; fi
grep -q s3cret "$work/hang.log" && bad "credentials in the log: $(grep s3cret "$work/hang.log")" || true
exit $fail
