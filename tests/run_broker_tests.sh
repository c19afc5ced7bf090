#!/usr/bin/env bash
# Starts RabbitMQ (rabbitmq_stomp), ActiveMQ and our stomp-broker on free loopback ports, runs
# the libbus real-broker tests against all three, and stops the brokers by pid whatever happens.
#   tests/run_broker_tests.sh BROKER_TESTS_BINARY STOMP_BROKER_BINARY [doctest args...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
broker_bin=$2
shift 2
NAME=broker_tests
# shellcheck source=tests/integration/lib.sh
. "$here/integration/lib.sh"
root=$WORK
stop_brokers_at_exit "$root"

read -r rport aport eport < <(free_ports 3)

# Start both at once (RabbitMQ takes the longest), then wait for both.
bash "$here/brokers/broker.sh" start rabbitmq "$root/rabbitmq" "$rport" &
rpid=$!
bash "$here/brokers/broker.sh" start activemq "$root/activemq" "$aport" &
apid=$!
embedded_broker "$broker_bin" "$eport" "$root/embedded.log" --data-dir "$root/embedded"
wait "$rpid"
wait "$apid"

export BUS_TEST_BROKERS="rabbitmq=stomp://guest:guest@127.0.0.1:$rport;activemq=stomp://127.0.0.1:$aport;embedded=stomp://127.0.0.1:$eport"
"$bin" "$@"
