#!/usr/bin/env bash
# Brokers side by side, in one run, with the same client (libbus's broker_bench) and the same
# message sizes: stomp-broker (embedded), RabbitMQ (STOMP plugin), ActiveMQ. Throughput and
# p50/p99 latency for topic fan-out 1->1 and 1->50 and a queue with 4 consumers, non-persistent
# and persistent, plus latency at fixed rates of 2,000 and 10,000 msg/s, and RSS idle and after
# the load.
#   bench/broker_bench.sh [BUILD_DIR]      (COUNT=20000 SIZE=200 by default)
# BROKERS (default "embedded rabbitmq activemq") chooses the peers; EMBEDDED="label=binary ..."
# runs several stomp-broker binaries side by side (before/after a change), each its own broker,
# the cases alternating between them; CASES (a regex, default all) chooses the rows; RESULTS=DIR
# keeps the JSON lines and the table. Ratios are against RabbitMQ when it ran.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
count=${COUNT:-20000}
size=${SIZE:-200}
bench=$build/bench/broker_bench
export STOMP_BROKER=$PWD/$build/daemons/stomp-broker/stomp-broker
[[ -x $bench && -x $STOMP_BROKER ]] || { echo "build first: cmake --build $build" >&2; exit 2; }
root=$(mktemp -d /tmp/deploykit-bench.XXXXXX)
trap 'bash tests/brokers/broker.sh stop-all "$root" >/dev/null 2>&1 || true; rm -rf "$root"' EXIT

read -r pe pr pa < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
declare -A url=([rabbitmq]="stomp://guest:guest@127.0.0.1:$pr" [activemq]="stomp://127.0.0.1:$pa")
peers=${BROKERS:-embedded rabbitmq activemq}
all=()
for b in $peers; do
  if [[ $b == embedded ]]; then
    for e in ${EMBEDDED:-embedded=$STOMP_BROKER}; do
      label=${e%%=*}
      port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
      url[$label]="stomp://127.0.0.1:$port"
      STOMP_BROKER=$(realpath "${e#*=}") bash tests/brokers/broker.sh start embedded "$root/$label" "$port" >&2
      all+=("$label")
    done
  else
    bash tests/brokers/broker.sh start "$b" "$root/$b" "${url[$b]##*:}" >&2
    all+=("$b")
  fi
done

rss_kb() { # DIR: resident memory of every process the broker dir owns
  local d total=0 p
  d=$(cd "$1" && pwd -P)
  for p in $(grep -lzx "BROKER_SH_DIR=$d" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
declare -A idle loaded
sleep 2 # let the JVM and the Erlang VM settle before measuring idle memory
for b in "${all[@]}"; do idle[$b]=$(rss_kb "$root/$b"); done

cases=(
  "topic-1to1|--mode topic --subscribers 1 --count $count"
  "topic-1to50|--mode topic --subscribers 50 --count $((count / 10))"
  "queue-1to4|--mode queue --subscribers 4 --count $count"
  "topic-1to1-persistent|--mode topic --subscribers 1 --count $count --persistent"
  "topic-1to50-persistent|--mode topic --subscribers 50 --count $((count / 10)) --persistent"
  "queue-1to4-persistent|--mode queue --subscribers 4 --count $count --persistent --ack client-individual"
  "topic-1to1-at-2k/s|--mode topic --subscribers 1 --count 4000 --rate 2000"
  "topic-1to1-at-10k/s|--mode topic --subscribers 1 --count 20000 --rate 10000"
)
out=${RESULTS:+$RESULTS/results.jsonl}
out=${out:-$root/results.jsonl}
[[ -n ${RESULTS:-} ]] && mkdir -p "$RESULTS"
for c in "${cases[@]}"; do
  name=${c%%|*}
  args=${c#*|}
  [[ $name =~ ${CASES:-.} ]] || continue
  for b in "${all[@]}"; do
    # shellcheck disable=SC2086
    line=$(timeout 300 "$bench" --url "${url[$b]}" --size "$size" $args || echo '{"failed":true}')
    echo "{\"broker\":\"$b\",\"case\":\"$name\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"result\":$line}" | tee -a "$out" >&2
  done
done
rss_args=()
for b in "${all[@]}"; do rss_args+=("$b" "${idle[$b]}" "$(rss_kb "$root/$b")"); done

/usr/bin/python3 - "$out" "${rss_args[@]}" <<'PY' | tee ${RESULTS:+"$RESULTS/table.md"}
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
a = sys.argv[2:]
rss = {a[i]: a[i + 1:i + 3] for i in range(0, len(a), 3)}
cases = []
for r in rows:
    if r["case"] not in cases: cases.append(r["case"])
print("| case | broker | deliveries/s | ratio to RabbitMQ | p50 ms | p99 ms |")
print("|---|---|---:|---:|---:|---:|")
for c in cases:
    base = next((r["result"] for r in rows if r["case"] == c and r["broker"] == "rabbitmq"), {})
    for r in rows:
        if r["case"] != c: continue
        res = r["result"]
        if res.get("failed") or res.get("delivered", 0) < res.get("expected", 1):
            print(f"| {c} | {r['broker']} | failed ({res.get('delivered', 0)}/{res.get('expected', '?')}) | | | |")
            continue
        ratio = res["deliveries_per_s"] / base["deliveries_per_s"] if base.get("deliveries_per_s") else 0
        print(f"| {c} | {r['broker']} | {res['deliveries_per_s']:,.0f} | {ratio:.2f} | {res['p50_ms']:.2f} | {res['p99_ms']:.2f} |")
print()
print("| broker | RSS idle MB | RSS after load MB |")
print("|---|---:|---:|")
for b, (i, l) in rss.items():
    print(f"| {b} | {int(i)/1024:.0f} | {int(l)/1024:.0f} |")
PY
