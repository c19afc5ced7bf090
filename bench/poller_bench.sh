#!/usr/bin/env bash
# repo-poller after its first poll (issue #18): idle RSS and private dirty (smaps_rollup) once it
# has polled a real repository, whether it maps libcurl, the mean duration of an idle poll (304
# Not Modified) and of a poll with one changed Packages index (repo_poller_action_duration_seconds
# {action="poll"}: transfers, gpgv, the version helper, the publish with its RECEIPT, the state
# write). A signed reprepro repository over http.server on loopback, the embedded broker; each
# variant gets a fresh state directory and polls every second (jitter 0). Run under the CPU lock.
#   bench/poller_bench.sh OUT_DIR NAME=REPO_POLLER [NAME=REPO_POLLER ...]
#   ROUNDS=3 CHANGES=3 SETTLE=3 STOMP_BROKER=... STOMP_REPO_VERCMP=... (default: the build tree's)
# The variants are alternated within each round. Output: OUT_DIR/run.txt (raw), a Markdown table
# on stdout, OUT_DIR/smaps-NAME-ROUND.txt.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD_DIR:-$ROOT/build}
BROKER=${STOMP_BROKER:-$B/daemons/stomp-broker/stomp-broker}
VERCMP=${STOMP_REPO_VERCMP:-$B/daemons/stomp-repo/stomp-repo-vercmp}
ROUNDS=${ROUNDS:-3} CHANGES=${CHANGES:-3} SETTLE=${SETTLE:-3}
PY=/usr/bin/python3
out=$1; shift
mkdir -p "$out"
W=$(mktemp -d /tmp/poller-bench.XXXXXX)
hpid= bpid= ppid_=
cleanup() {
  for p in $ppid_ $hpid $bpid; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  gpgconf --homedir "$W/gnupg" --kill all 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
until_true() { local end=$((SECONDS + $1)); shift; until "$@"; do ((SECONDS < end)) || return 1; sleep 0.02; done; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { "$PY" -c 'import sys,urllib.request
t=urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode()
v=[l.split()[-1] for l in t.splitlines() if l.startswith(sys.argv[2])]
print(v[0] if v else 0)' "$aport" "$1"; }
metric_n() { metric "$1" | cut -d. -f1; }
export -f metric metric_n
export PY
poll_sum() { metric 'repo_poller_action_duration_seconds_sum{action="poll"}'; }
poll_count() { metric 'repo_poller_action_duration_seconds_count{action="poll"}'; }

# ---- a signed reprepro repository with one package of interest -----------------------------------
. "$ROOT/tests/integration/apt_repo.sh"
export GNUPGHOME=$W/gnupg
mkdir -m 700 "$GNUPGHOME"
keyid=$(gen_key "bench repo" bench@example.invalid)
gpg --batch --export "$keyid" >"$W/keyring.gpg"
mkdir -p "$W/debs" "$W/www/repo/conf"
n_changes=$((ROUNDS * $# * CHANGES))
for i in $(seq 0 "$n_changes"); do mkdeb "$W/debs" foo "1.$i-1" amd64; done
for p in bar baz qux; do mkdeb "$W/debs" "$p" 1.0-1 amd64; done
cat >"$W/www/repo/conf/distributions" <<EOF
Codename: bookworm
Suite: stable
Components: main
Architectures: amd64
DebIndices: Packages Release . .gz .xz
SignWith: $keyid
EOF
rr() { reprepro -b "$W/www/repo" --silent "$@"; }
rr includedeb bookworm "$W/debs/foo_1.0-1_amd64.deb"
for p in bar baz qux; do rr includedeb bookworm "$W/debs/${p}_1.0-1_amd64.deb"; done
inrel=$W/www/repo/dists/bookworm/InRelease
hport=$(free_port) bport=$(free_port)
"$PY" -m http.server --bind 127.0.0.1 --directory "$W/www" "$hport" >/dev/null 2>&1 &
hpid=$!
"$BROKER" --listen "127.0.0.1:$bport" 2>/dev/null &
bpid=$!
until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$hport" 2>/dev/null || { echo "http.server did not start"; exit 1; }
until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$bport" 2>/dev/null || { echo "broker did not start"; exit 1; }
version=0
{ echo "load at start: $(cat /proc/loadavg)"; } >"$out/run.txt"
rows=()
for round in $(seq "$ROUNDS"); do
  for spec in "$@"; do
    name=${spec%%=*} bin=${spec#*=}
    aport=$(free_port)
    export aport
    rm -rf "$W/state"
    cat >"$W/poller.yaml" <<EOF
rserver: stomp://127.0.0.1:$bport
state-dir: $W/state
version-helper: $VERCMP
admin-listen: 127.0.0.1:$aport
heartbeat-interval: 0
repositories:
  - url: http://127.0.0.1:$hport/repo
    suites: [bookworm]
    packages: [foo]
    keyring: $W/keyring.gpg
    interval: 1s
    jitter: 0
EOF
    : >"$W/poller.log"
    "$bin" -c "$W/poller.yaml" >"$W/poller.log" 2>&1 &
    ppid_=$!
    until_true 20 grep -q "baseline recorded" "$W/poller.log" || { echo "$name: no baseline: $(tail -3 "$W/poller.log")"; exit 1; }
    s0=$(poll_sum) c0=$(poll_count)
    sleep "$SETTLE" # idle: only 304 polls, one a second
    s1=$(poll_sum) c1=$(poll_count)
    sync
    r=/proc/$ppid_/smaps_rollup
    rss=$(awk '$1 == "Rss:" {print $2}' "$r") dirty=$(awk '$1 == "Private_Dirty:" {print $2}' "$r")
    pss=$(awk '$1 == "Pss:" {print $2}' "$r")
    curl=$(grep -c 'libcurl' "/proc/$ppid_/maps")
    awk '/^[0-9a-f]+-[0-9a-f]+ / {name = (NF >= 6 ? $6 : "[anon]")} /^Rss:/ {rss[name] += $2} /^Private_Dirty:/ {pd[name] += $2}
         END {for (n in rss) if (rss[n]) printf "%d %d %s\n", rss[n], pd[n], n}' "/proc/$ppid_/smaps" | sort -rn >"$out/smaps-$name-$round.txt"
    idle_ms=$("$PY" -c "import sys; s0,c0,s1,c1=map(float,sys.argv[1:]); print('%.1f' % ((s1-s0)/(c1-c0)*1000) if c1>c0 else 'n/a')" "$s0" "$c0" "$s1" "$c1")
    # Changed polls: one new foo, the InRelease and its one index change; the poll that saw it only.
    changed=() k=0
    for _ in $(seq "$CHANGES"); do
      version=$((version + 1))
      m=$(stat -c %Y "$inrel"); until_true 5 bash -c "(( \$(date +%s) > $m ))"
      s0=$(poll_sum) c0=$(poll_count)
      rr includedeb bookworm "$W/debs/foo_1.$version-1_amd64.deb"
      until_true 20 grep -q -- "-> 1.$version-1" "$W/poller.log" || { echo "$name: no change seen for 1.$version-1"; break; }
      k=$((k + 1))
      until_true 10 bash -c "(( \$(metric_n repo_poller_changes_total) == $k ))" || { echo "$name: change $k not counted"; break; }
      sleep 0.2 # the poll's duration is recorded right after the state write that follows the count
      s1=$(poll_sum) c1=$(poll_count)
      # The change was seen by the first poll after it; a 304 poll may have run meanwhile: the
      # changed poll's duration is then the delta minus that many idle-poll means.
      changed+=("$("$PY" -c "import sys; s0,c0,s1,c1=map(float,sys.argv[1:5]); idle=sys.argv[5]
extra=c1-c0-1
d=(s1-s0)*1000 - (extra*float(idle) if extra>0 and idle!='n/a' else 0)
print('%.1f' % d + ('' if extra==0 else '~'))" "$s0" "$c0" "$s1" "$c1" "$idle_ms")")
    done
    kill "$ppid_"; wait "$ppid_" 2>/dev/null; ppid_=
    line="| $name | $round | $rss | $pss | $dirty | $curl | $idle_ms | ${changed[*]} |"
    echo "$(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg) $line" >>"$out/run.txt"
    rows+=("$line")
  done
done
echo "load at end: $(cat /proc/loadavg)" >>"$out/run.txt"
printf '%s\n' "| variant | round | RSS kB | PSS kB | private dirty kB | libcurl mappings | idle (304) poll ms | changed-index poll ms |" "|---|---:|---:|---:|---:|---:|---:|---|" "${rows[@]}" | tee "$out/table.md"
