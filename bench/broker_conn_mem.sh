#!/usr/bin/env bash
# Memory per STOMP connection, stomp-broker beside RabbitMQ (issue #18): N idle connections
# (CONNECT, CONNECTED, then nothing; heart-beat 0,0) and M topic subscribers (one SUBSCRIBE with
# a receipt each), each on a freshly started stomp-broker; RabbitMQ started once per run and
# measured the same way (its idle figure first, the subscribers after those connections closed).
# Reports (RSS with them − RSS before) / count, and the private dirty memory the same way.
#
#   bench/broker_conn_mem.sh                      (N=2000 M=1000 ROUNDS=3 RABBITMQ=1)
#   BROKERS="before=/tmp/old/stomp-broker after=build/daemons/stomp-broker/stomp-broker" bench/broker_conn_mem.sh
#
# BROKERS: label=binary pairs, measured alternately in each round (default: the build tree's).
# RESULTS=DIR also writes the JSON lines and the table there. Run it under flock /tmp/dk-cpu.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-2000}
m=${M:-1000}
rounds=${ROUNDS:-3}
brokers=${BROKERS:-"embedded=build/daemons/stomp-broker/stomp-broker"}
PY=/usr/bin/python3
# 2,000 sockets on our side and as many on the broker's (the broker inherits this limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= n + 100)) || { echo "broker_conn_mem: RLIMIT_NOFILE $(ulimit -n) < $((n + 100))" >&2; exit 2; }
root=$(mktemp -d /tmp/deploykit-connmem.XXXXXX)
trap 'bash tests/brokers/broker.sh stop-all "$root" >/dev/null 2>&1 || true; rm -rf "$root"' EXIT
out=${RESULTS:+$RESULTS/conn_mem.jsonl}
out=${out:-$root/conn_mem.jsonl}
[[ -n ${RESULTS:-} ]] && mkdir -p "$RESULTS"

pids_of() { # DIR: every process the broker dir owns
  local d
  d=$(cd "$1" && pwd -P)
  grep -lzx "BROKER_SH_DIR=$d" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

measure() { # LABEL ROUND DIR PORT ARGS...: one line of results
  local label=$1 round=$2 dir=$3 port=$4 line
  shift 4
  # shellcheck disable=SC2046
  line=$("$PY" bench/broker_conn_mem.py --port "$port" "$@" $(pids_of "$dir")) || line='{"failed":true}'
  echo "{\"broker\":\"$label\",\"round\":$round,\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"result\":$line}" | tee -a "$out" >&2
}

embedded() { # LABEL BINARY ROUND
  local d port
  for what in idle subs; do
    d=$root/$1-$3-$what
    port=$(free_port)
    STOMP_BROKER=$2 bash tests/brokers/broker.sh start embedded "$d" "$port" >&2
    sleep 1
    if [[ $what == idle ]]; then measure "$1" "$3" "$d" "$port" --connections "$n"
    else measure "$1" "$3" "$d" "$port" --connections "$m" --subscribe /topic/connmem; fi
    bash tests/brokers/broker.sh stop "$d" >&2
  done
}

if [[ ${RABBITMQ:-1} == 1 ]]; then
  rport=$(free_port)
  bash tests/brokers/broker.sh start rabbitmq "$root/rabbitmq" "$rport" >&2
  sleep 5 # the Erlang VM settles after start-up
fi
for ((r = 1; r <= rounds; r++)); do
  for b in $brokers; do embedded "${b%%=*}" "${b#*=}" "$r"; done
  if [[ ${RABBITMQ:-1} == 1 ]]; then
    measure rabbitmq "$r" "$root/rabbitmq" "$rport" --connections "$n" --settle 5
    sleep 5 # the closed connections' processes exit
    measure rabbitmq "$r" "$root/rabbitmq" "$rport" --connections "$m" --subscribe /topic/connmem --settle 5
    sleep 5
  fi
done

"$PY" - "$out" <<'PY' | tee ${RESULTS:+"$RESULTS/conn_mem.md"}
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| round | broker | what | connections alive | RSS before MB | RSS with them MB | kB per connection | private dirty kB per connection | load |")
print("|---:|---|---|---:|---:|---:|---:|---:|---|")
for r in rows:
    x = r["result"]
    if x.get("failed"):
        print(f"| {r['round']} | {r['broker']} | failed | | | | | | {r['load']} |")
        continue
    what = "topic subscribers" if x["subscribed"] else "idle connections"
    print(f"| {r['round']} | {r['broker']} | {what} | {x['alive']}/{x['connections']} | {x['rss_before_kb']/1024:.1f} | "
          f"{x['rss_after_kb']/1024:.1f} | {x['kb_per_connection']:.1f} | {x['private_dirty_kb_per_connection']:.1f} | {r['load']} |")
PY
