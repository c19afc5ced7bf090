#!/usr/bin/env bash
# Runs the STOMP conformance suite against a throwaway real broker.
#   run.sh rabbitmq|activemq [conformance.py options, e.g. --only heartbeat -q]
# Starts the broker with tests/brokers/broker.sh on a free loopback port in a fresh temporary directory,
# runs conformance.py against it and always stops the broker again (trap). Exit status: conformance.py's.
# The throwaway ActiveMQ has no authentication plugin (it accepts any login), so the auth cases run
# against RabbitMQ only (guest/guest).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
broker_sh=$here/../brokers/broker.sh
PY=/usr/bin/python3 # Debian's interpreter: the one with python3-stomp

kind=${1:-}
case $kind in
  rabbitmq) auth=(--login guest --passcode guest) ;;
  activemq | embedded) auth=() ;;  # embedded: anonymous; its users file is tested in stomp_broker.sh
  *) echo "usage: run.sh rabbitmq|activemq|embedded [conformance.py options]" >&2; exit 2 ;;
esac
shift

NAME=conformance-$kind
# shellcheck source=tests/integration/lib.sh
. "$here/../integration/lib.sh"
dir=$WORK/broker
stop_brokers_at_exit "$WORK"

port=$(free_port)
"$broker_sh" start "$kind" "$dir" "$port" # prints its own start-up time
rc=0
"$PY" "$here/conformance.py" 127.0.0.1 "$port" --kind "$kind" "${auth[@]}" "$@" || rc=$?
exit "$rc"
