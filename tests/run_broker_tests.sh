#!/usr/bin/env bash
# Starts RabbitMQ (rabbitmq_stomp) and ActiveMQ on free loopback ports, runs the libbus
# real-broker tests against both, and stops the brokers by pid whatever happens.
#   tests/run_broker_tests.sh BROKER_TESTS_BINARY [doctest args...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
shift
root=$(mktemp -d /tmp/deploykit-brokers.XXXXXX)
trap 'bash "$here/brokers/broker.sh" stop-all "$root" >/dev/null 2>&1 || true; rm -rf "$root"' EXIT

read -r rport aport < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

# Start both at once (RabbitMQ takes the longest), then wait for both.
bash "$here/brokers/broker.sh" start rabbitmq "$root/rabbitmq" "$rport" &
rpid=$!
bash "$here/brokers/broker.sh" start activemq "$root/activemq" "$aport" &
apid=$!
wait "$rpid"
wait "$apid"

export BUS_TEST_BROKERS="rabbitmq=stomp://guest:guest@127.0.0.1:$rport;activemq=stomp://127.0.0.1:$aport"
"$bin" "$@"
