#!/usr/bin/env bash
# The package path through the poller, real components only: a signed reprepro repository in a
# temp dir (packages built by dpkg-deb) served over HTTP on loopback by python3's http.server;
# repo-poller polling its InRelease every second and publishing `package` events to the embedded
# broker; stomp-repo watching the package with an isolated apt root whose sources point at the
# same http URL. `reprepro includedeb` of a newer version -> the poller's package event ->
# stomp-repo's real `apt-get update` -> `apt-cache policy` with the same options shows the new
# candidate, and the package.result event is on the bus. Prints the time from includedeb
# returning (the changed InRelease) to the result event arriving: a report, not an assertion.
#   tests/integration/stomp_repo_poller.sh STOMP_BROKER STOMPCTL REPO_POLLER STOMP_REPO
NAME=stomp_repo_poller
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/integration/apt_repo.sh
. "$(dirname "$0")/apt_repo.sh"
(($# == 4)) || { echo "usage: $0 STOMP_BROKER STOMPCTL REPO_POLLER STOMP_REPO" >&2; exit 2; }
broker=$(realpath "$1") stompctl=$(realpath "$2") poller=$(realpath "$3") daemon=$(realpath "$4")
for tool in reprepro gpg gpgv dpkg-deb apt-get apt-cache curl; do
  command -v "$tool" >/dev/null || fatal "$tool is not installed (scripts/deps.sh installs it)"
done

# ---- a signing key, packages, the repository (reprepro exports InRelease only when signing) ------
export GNUPGHOME=$WORK/gnupg
mkdir -m 700 "$GNUPGHOME"
on_exit "gpgconf --homedir '$GNUPGHOME' --kill all 2>/dev/null"
keyid=$(gen_key "deploykit test repo" repo@example.invalid) && [[ -n $keyid ]] || fatal "gpg could not create a key"
gpg --batch --export "$keyid" >"$WORK/repo-keyring.gpg"
chmod 755 "$WORK" # apt reads the keyring as _apt where it can
mkdir -p "$WORK/debs" "$WORK/www/repo/conf"
for v in 1.0-1 1.1-1; do mkdeb "$WORK/debs" site-web "$v" amd64 || fatal "dpkg-deb site-web $v"; done
repo=$WORK/www/repo
cat >"$repo/conf/distributions" <<EOT
Codename: bookworm
Suite: stable
Components: main
Architectures: amd64
SignWith: $keyid
EOT
rr() { reprepro -b "$repo" --silent "$@" >>"$WORK/reprepro.out" 2>&1; }
rr includedeb bookworm "$WORK/debs/site-web_1.0-1_amd64.deb" || fatal "reprepro includedeb: $(cat "$WORK/reprepro.out")"
inrel=$repo/dists/bookworm/InRelease
[[ -f $inrel ]] || fatal "reprepro did not export an InRelease"

# ---- HTTP, broker, subscribers -------------------------------------------------------------------
read -r hport bport aport rport < <(free_ports 4)
url=stomp://127.0.0.1:$bport
bg "$PY" -m http.server --bind 127.0.0.1 --directory "$WORK/www" "$hport" >"$WORK/http.log" 2>&1
wait_port "$hport" || fatal "http.server did not start: $(cat "$WORK/http.log")"
embedded_broker "$broker" "$bport" "$WORK/broker.log" --data-dir "$WORK/broker" || fatal "broker did not start"
start_subscriber results "$stompctl" -u "$url" subscribe -t /topic/future.package.results --events --wait 280 \
  || fatal "results subscriber"
start_subscriber updates "$stompctl" -u "$url" subscribe -t /topic/future.package.updates --events --wait 280 \
  || fatal "updates subscriber"

# ---- the isolated apt root, on the http URL, checking the repository's signature -----------------
apt_root "$WORK/apt" "deb [signed-by=$WORK/repo-keyring.gpg] http://127.0.0.1:$hport/repo bookworm main"
apt_update >"$WORK/apt-setup.log" 2>&1 || fatal "initial apt-get update: $(cat "$WORK/apt-setup.log")"
[[ $(candidate site-web) == 1.0-1 ]] && pass "isolated apt root sees site-web 1.0-1 over http" \
  || fatal "initial candidate: '$(candidate site-web)' $(cat "$WORK/apt-setup.log")"

# ---- stomp-repo ----------------------------------------------------------------------------------
cat >"$WORK/stomp-repo.yaml" <<EOT
rserver: failover://($url)
stomp-options: initialReconnectDelay=10&maxReconnectDelay=500&useExponentialBackOff=true
listen-topic: future.package.updates
result-topic: future.package.results
wire-format: both
spool-dir: $WORK/repo-spool
watch:
  - package: 'site-*'
    codename: bookworm
sources-list: $WORK/apt/sources.list
apt-config: $APT_ROOT_CONFIG
apt-options:
${APT_ROOT_YAML}lock-timeout: 10s
retries: 2
retry-initial: 300ms
retry-max: 1s
coalesce: 200ms
admin-listen: 127.0.0.1:$rport
heartbeat-interval: 0
version-helper: $(dirname "$daemon")/stomp-repo-vercmp
EOT
"$daemon" -c "$WORK/stomp-repo.yaml" --check-config >"$WORK/stomp-repo-check.log" 2>&1 \
  || fatal "stomp-repo --check-config: $(cat "$WORK/stomp-repo-check.log")"
bg "$daemon" -d -c "$WORK/stomp-repo.yaml" 2>"$WORK/stomp-repo.log"
wait_for 30 curl -sf -o /dev/null "http://127.0.0.1:$rport/readyz" || fatal "stomp-repo not ready: $(tail -5 "$WORK/stomp-repo.log")"

# ---- repo-poller ---------------------------------------------------------------------------------
cat >"$WORK/poller.yaml" <<EOT
rserver: failover://($url)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30
wire-format: both
state-dir: $WORK/poller-state
version-helper: $(dirname "$daemon")/stomp-repo-vercmp
admin-listen: 127.0.0.1:$aport
heartbeat-interval: 0
repositories:
  - url: http://127.0.0.1:$hport/repo
    suites: [bookworm]
    packages: ["site-*"]
    keyring: $WORK/repo-keyring.gpg
    interval: 1s
    jitter: 0
    retry-initial: 200ms
    retry-max: 1s
EOT
"$poller" --check-config -c "$WORK/poller.yaml" >"$WORK/poller-check.log" 2>&1 \
  || fatal "repo-poller --check-config: $(cat "$WORK/poller-check.log")"
bg "$poller" -d -c "$WORK/poller.yaml" 2>"$WORK/poller.log"
wait_text "$WORK/poller.log" "bookworm: baseline recorded" 20 || fatal "no baseline: $(tail -5 "$WORK/poller.log")"
pass "repo-poller: baseline recorded (nothing published for it)"

# results EXPR: a Python expression over the package.result events seen so far (evs)
results() { "$PY" - "$WORK/results.out" "$1" <<'PY'
import json, sys
evs = []
for l in open(sys.argv[1]):
    try:
        e = json.loads(l)
    except ValueError:
        continue
    if e.get("type") == "package.result":
        evs.append(e)
sys.exit(0 if eval(sys.argv[2], {"evs": evs, "any": any, "all": all, "len": len}) else 1)
PY
}

# ---- a newer version: includedeb -> poller -> stomp-repo -> apt-get update -> result -------------
# Last-Modified has one-second resolution: the export must land in a later second than the
# InRelease the poller's baseline saw, or If-Modified-Since would call it unchanged (as for apt).
later_than() { ((${EPOCHREALTIME%.*} > $1)); } # EPOCH-SECONDS
wait_for 5 later_than "$(stat -c %Y "$inrel")"
rr includedeb bookworm "$WORK/debs/site-web_1.1-1_amd64.deb" || fatal "reprepro includedeb 1.1-1: $(cat "$WORK/reprepro.out")"
t_changed=$EPOCHREALTIME
if wait_for 60 results 'any(e["data"]["ok"] and any(p["name"] == "site-web" and p["candidate"] == "1.1-1" for p in e["data"]["packages"]) for e in evs)'; then
  took=$(elapsed "$t_changed")
  pass "includedeb site-web 1.1-1 -> package.result on the bus with candidate 1.1-1"
  apt_s=$("$PY" -c 'import json, sys
for l in open(sys.argv[1]):
    try:
        e = json.loads(l)
    except ValueError:
        continue
    if e.get("type") == "package.result" and e["data"]["ok"]:
        print("%.1fs" % e["data"]["duration_s"])
        break' "$WORK/results.out")
  echo "MEASURE changed InRelease → result event: $took (of it apt-get update: $apt_s; poll interval 1 s, coalesce 200 ms)"
else
  fail "no package.result: $(cat "$WORK/results.out") / $(tail -10 "$WORK/stomp-repo.log") / $(tail -5 "$WORK/poller.log")"
fi
grep -F '"type":"package"' "$WORK/updates.out" | grep -F '"name":"site-web","new_version":"1.1-1"' >/dev/null \
  && pass "the poller's package event is on future.package.updates" || fail "package event: $(cat "$WORK/updates.out")"
grep -F '"type":"package"' "$WORK/updates.out" | grep -F '"new_version":"1.0-1"' >/dev/null \
  && fail "the baseline was announced" || true
[[ $(candidate site-web) == 1.1-1 ]] && pass "apt-cache policy in the isolated root: candidate 1.1-1" \
  || fail "candidate '$(candidate site-web)'"
grep -q '"GET /repo/dists/bookworm/InRelease HTTP/1.[01]" 200' "$WORK/http.log" && pass "apt fetched the InRelease over http" \
  || fail "no InRelease GET in the http log"
if ((FAILS)); then
  show "$WORK/poller.log"; show "$WORK/stomp-repo.log"; show "$WORK/reprepro.out"
fi
finish
