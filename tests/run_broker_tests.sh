#!/usr/bin/env bash
# Starts RabbitMQ (rabbitmq_stomp), ActiveMQ and our stomp-broker on free loopback ports, runs
# the libbus real-broker tests against all three, and stops the brokers by pid whatever happens.
#   tests/run_broker_tests.sh BROKER_TESTS_BINARY STOMP_BROKER_BINARY [doctest args...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
broker_bin=$2
shift 2
root=$(mktemp -d /tmp/deploykit-brokers.XXXXXX)
epid=
trap '{ [[ -n $epid ]] && kill "$epid"; } 2>/dev/null || true; bash "$here/brokers/broker.sh" stop-all "$root" >/dev/null 2>&1 || true; rm -rf "$root"' EXIT

read -r rport aport eport < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

# Start both at once (RabbitMQ takes the longest), then wait for both.
bash "$here/brokers/broker.sh" start rabbitmq "$root/rabbitmq" "$rport" &
rpid=$!
bash "$here/brokers/broker.sh" start activemq "$root/activemq" "$aport" &
apid=$!
"$broker_bin" --listen "127.0.0.1:$eport" --data-dir "$root/embedded" 2>"$root/embedded.log" &
epid=$!
wait "$rpid"
wait "$apid"
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$eport") 2>/dev/null && break
  sleep 0.05
done

export BUS_TEST_BROKERS="rabbitmq=stomp://guest:guest@127.0.0.1:$rport;activemq=stomp://127.0.0.1:$aport;embedded=stomp://127.0.0.1:$eport"
"$bin" "$@"
