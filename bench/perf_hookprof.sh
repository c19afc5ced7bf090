#!/usr/bin/env bash
# Where one stomp-post-receive invocation spends its time (issue #18), outside git, broker up:
#   BIN=DIR (stomp-broker, stomp-post-receive) OUT=DIR N=200 bench/perf_hookprof.sh
# Writes mean.txt (mean wall ms per invocation and per /bin/true), ld-stats.txt (LD_DEBUG=statistics),
# strace-c.txt, strace-tt.txt, perf.data (+ perf-dso.txt, perf-sym.txt). Run it under the CPU lock.
set -uo pipefail
BIN=${BIN:-/tmp/perf-new-bin}; OUT=${OUT:-/tmp/perf-prof}; N=${N:-200}
mkdir -p "$OUT"; W=$(mktemp -d /tmp/hookprof.XXXXXX)
cd "$(dirname "$0")/.."
read -r PORT DOWN < <(python3 -c 'import socket;s=[socket.socket() for _ in range(2)];[x.bind(("127.0.0.1",0)) for x in s];print(*[x.getsockname()[1] for x in s])')
STOMP_BROKER=$BIN/stomp-broker bash tests/brokers/broker.sh start embedded "$W/broker" "$PORT" >&2 || exit 1
git init -q --bare "$W/r.git"; git init -q "$W/dev"; echo x > "$W/dev/f"; git -C "$W/dev" add f; git -C "$W/dev" -c user.name=a -c user.email=a@b commit -qm m; git -C "$W/dev" push -q "$W/r.git" master
REV=$(git -C "$W/r.git" rev-parse master)
cat > "$W/up.yaml" <<Y
rserver: failover://(stomp://127.0.0.1:$PORT)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
trigger-topic: future.git.commits
report-topic: future.events.gitolite
wire-format: both
spool-dir: $W/spool
Y
export GIT_DIR=$W/r.git DEPLOYKIT_HOOK_CONFIG=$W/up.yaml
IN="0000000000000000000000000000000000000000 $REV refs/heads/master"
run() { echo "$IN" | "$BIN/stomp-post-receive" "$@"; }
run; run
# wall time of N invocations
t0=$EPOCHREALTIME; for ((i=0;i<N;i++)); do run; done; t1=$EPOCHREALTIME
echo "mean ms per invocation: $(( (${t1/./}-${t0/./})/N/1000 )).$(( (${t1/./}-${t0/./})/N%1000 ))" | tee "$OUT/mean.txt"
# no-op process baseline (/bin/true) for the exec cost
t0=$EPOCHREALTIME; for ((i=0;i<N;i++)); do echo | /bin/true; done; t1=$EPOCHREALTIME
echo "mean ms per /bin/true: $(( (${t1/./}-${t0/./})/N/1000 )).$(( (${t1/./}-${t0/./})/N%1000 ))" | tee -a "$OUT/mean.txt"
echo "$IN" | LD_DEBUG=statistics "$BIN/stomp-post-receive" 2> "$OUT/ld-stats.txt"
echo "$IN" | strace -f -c -o "$OUT/strace-c.txt" "$BIN/stomp-post-receive"
echo "$IN" | strace -f -tt -T -o "$OUT/strace-tt.txt" "$BIN/stomp-post-receive"
perf record -q -F 20000 -g -o "$OUT/perf.data" -- bash -c "for i in \$(seq 50); do echo '$IN' | $BIN/stomp-post-receive; done" >/dev/null 2>&1
perf report -i "$OUT/perf.data" --no-children --sort dso -q --stdio 2>/dev/null | head -30 > "$OUT/perf-dso.txt"
perf report -i "$OUT/perf.data" --no-children --sort sym -q --stdio -g none 2>/dev/null | head -60 > "$OUT/perf-sym.txt"
bash tests/brokers/broker.sh stop-all "$W" >/dev/null 2>&1
rm -rf "$W"
