#!/usr/bin/env bash
# shellcheck disable=SC2317 # the trap's function looks unreachable to it
# Publish throughput with a broker receipt per message: stompctl against stomp.py and ruby-stomp.
#   bench/publish_bench.sh [COUNT] [SIZE]        (defaults 20000 messages of 200 bytes)
# Environment: STOMPCTL (default build/daemons/stompctl/stompctl under the repo root),
#   PEER_VERSION (1.2 by default, as stompctl negotiates 1.2 with these brokers; or 1.0), ROUNDS (3).
#
# One throwaway RabbitMQ on a free loopback port. Every client publishes COUNT bodies of SIZE bytes
# to the same topic (no subscribers), each SEND carrying a receipt, and stops its clock at the last
# receipt: stompctl publish --count --stats (default window, 1000 in flight), pub_bench.py and
# pub_bench.rb in pipelined mode (window 1000) and, for reference, in sync mode (one at a time).
# The clients run interleaved (A B C D E, A B C D E, ...) so that drift hits all of them alike; the
# table (stdout, Markdown) has each client's median over the rounds and its ratio to stompctl.
# Each run's JSON line goes to stderr.
set -uo pipefail

COUNT=${1:-20000}
SIZE=${2:-200}
ROUNDS=${ROUNDS:-3}
PEER_VERSION=${PEER_VERSION:-1.2}
[[ $COUNT =~ ^[1-9][0-9]*$ && $SIZE =~ ^[0-9]+$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: $0 [COUNT] [SIZE]   (positive integers; env ROUNDS, PEER_VERSION, STOMPCTL)" >&2; exit 2; }
[[ $PEER_VERSION == 1.0 || $PEER_VERSION == 1.2 ]] || { echo "PEER_VERSION must be 1.0 or 1.2" >&2; exit 2; }
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
STOMPCTL=${STOMPCTL:-$ROOT_DIR/build/daemons/stompctl/stompctl}
[[ -d $STOMPCTL ]] && STOMPCTL=$STOMPCTL/daemons/stompctl/stompctl # a build dir
[[ -x $STOMPCTL ]] || { echo "publish_bench: no stompctl binary at $STOMPCTL" >&2; exit 2; }
BROKER=$ROOT_DIR/tests/brokers/broker.sh
PY=/usr/bin/python3
DEST=/topic/bench.publish
RUN_TIMEOUT=$((60 + COUNT / 200)) # seconds per run: sync mode manages ~1.5k msg/s at worst
T0=$EPOCHREALTIME

WORK=$(mktemp -d /tmp/publish-bench.XXXXXX)
cleanup() {
  if "$BROKER" stop-all "$WORK" >"$WORK/stop-all.log" 2>&1; then
    rm -rf "$WORK"
  else
    echo "publish_bench: could not stop the broker in $WORK:" >&2
    cat "$WORK/stop-all.log" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP # so that the EXIT trap runs on these too

head -c "$SIZE" /dev/zero | tr '\0' x >"$WORK/body" # a file: large bodies would not fit in argv
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BROKER" start rabbitmq "$WORK/broker" "$PORT" >&2 || { echo "publish_bench: RabbitMQ did not start" >&2; exit 1; }
echo "publish_bench: $COUNT x $SIZE-byte bodies to $DEST, $ROUNDS rounds, peers at STOMP $PEER_VERSION," \
  "RabbitMQ on 127.0.0.1:$PORT, stompctl $STOMPCTL" >&2

# name|mode|command: each command prints one JSON line with msgs_per_s.
CLIENTS=(
  "stompctl|pipelined|$STOMPCTL -u stomp://guest:guest@127.0.0.1:$PORT publish -t $DEST -f $WORK/body --count $COUNT --stats"
  "stomp.py|pipelined|$PY $ROOT_DIR/bench/peers/pub_bench.py --port $PORT --dest $DEST --count $COUNT --size $SIZE --mode pipelined --version $PEER_VERSION"
  "ruby-stomp|pipelined|ruby $ROOT_DIR/bench/peers/pub_bench.rb --port $PORT --dest $DEST --count $COUNT --size $SIZE --mode pipelined --version $PEER_VERSION"
  "stomp.py|sync|$PY $ROOT_DIR/bench/peers/pub_bench.py --port $PORT --dest $DEST --count $COUNT --size $SIZE --mode sync --version $PEER_VERSION"
  "ruby-stomp|sync|ruby $ROOT_DIR/bench/peers/pub_bench.rb --port $PORT --dest $DEST --count $COUNT --size $SIZE --mode sync --version $PEER_VERSION"
)

: >"$WORK/results" # name|mode|msgs_per_s
for ((round = 1; round <= ROUNDS; round++)); do
  for entry in "${CLIENTS[@]}"; do
    IFS='|' read -r name mode cmd <<<"$entry"
    # shellcheck disable=SC2086 # cmd is a word list without spaces inside words
    timeout -k 5 "$RUN_TIMEOUT" $cmd >"$WORK/out" 2>"$WORK/err"
    rc=$?
    line=$(grep -m1 '^{' "$WORK/out")
    echo "$line" >&2
    rate=$("$PY" -c '
import json, sys
j = json.loads(sys.argv[1])
ok = j.get("count") == int(sys.argv[2]) and j.get("size") == int(sys.argv[3]) and not j.get("failed")
print(j["msgs_per_s"] if ok else "")' "$line" "$COUNT" "$SIZE" 2>/dev/null)
    if ((rc != 0)) || [[ -z $rate ]]; then
      echo "publish_bench: $name $mode (round $round) failed: exit $rc" >&2
      cat "$WORK/out" "$WORK/err" >&2
      exit 1
    fi
    echo "$name|$mode|$rate" >>"$WORK/results"
  done
done

"$PY" - "$WORK/results" "$COUNT" "$SIZE" "$PEER_VERSION" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, mode, rate = line.strip().split("|")
    runs.setdefault((name, mode), []).append(float(rate))
base = statistics.median(runs[("stompctl", "pipelined")])
print(f"Publish with a receipt per message: {sys.argv[2]} x {sys.argv[3]}-byte bodies to one RabbitMQ topic, "
      f"median of {len(runs[('stompctl', 'pipelined')])} interleaved runs (peers at STOMP {sys.argv[4]}; "
      "pipelined = up to 1000 receipts outstanding)")
print()
print("| client | mode | median msgs/s | ratio vs stompctl |")
print("|---|---|---:|---:|")
for (name, mode), rates in runs.items():
    m = statistics.median(rates)
    print(f"| {name} | {mode} | {m:,.0f} | {m / base:.2f} |")
for (name, mode), rates in runs.items():
    print(f"publish_bench: {name} {mode}: " + ", ".join(f"{r:,.0f}" for r in rates) + " msgs/s", file=sys.stderr)
EOF
us=$((${EPOCHREALTIME/./} - ${T0/./}))
echo "publish_bench: done in $((us / 1000000)).$((us / 100000 % 10))s" >&2
