#!/usr/bin/env bash
# mean wall ms per hook invocation (outside git, broker up), variants alternated, ROUNDS rounds
set -uo pipefail
O=/tmp/p18; N=${N:-100}; ROUNDS=${ROUNDS:-3}; VARIANTS=${VARIANTS:-"before v0 v1 v2 v3 v4 v5"}
cp /tmp/perf18-before/stomp-post-receive $O/before 2>/dev/null
W=$(mktemp -d /tmp/p18m.XXXXXX); cd /work/wt/perf
read -r PORT < <(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
STOMP_BROKER=/tmp/perf18-before/stomp-broker bash tests/brokers/broker.sh start embedded "$W/broker" "$PORT" >&2 || exit 1
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
for v in $VARIANTS; do echo "$IN" | $O/$v >/dev/null 2>&1; done
for ((r=1;r<=ROUNDS;r++)); do
  line="round $r:"
  for v in true $VARIANTS; do
    bin=$O/$v; [[ $v == true ]] && bin=/bin/true
    t0=$EPOCHREALTIME; for ((i=0;i<N;i++)); do echo "$IN" | $bin; done; t1=$EPOCHREALTIME
    us=$(( (${t1/./}-${t0/./})/N )); line+=" $v=$((us/1000)).$(printf %03d $((us%1000)))"
  done
  echo "$line"
done
echo "spooled files (must be 0): $(find "$W/spool" -type f 2>/dev/null | wc -l)"
for v in $VARIANTS; do echo "$IN" | LD_DEBUG=statistics $O/$v 2>&1 | grep -E 'total startup time|relocations' | tr -s ' \t' ' ' | sed "s/^/$v:/"; done
bash tests/brokers/broker.sh stop-all "$W" >/dev/null 2>&1; rm -rf "$W"
