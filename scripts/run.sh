#!/usr/bin/env bash
# The main job: builds deploykit and runs the pipeline on a single machine.
#
# Today the pipeline is libbus itself: a subscriber (stompctl, as stomp-git will consume) on the
# original's commit topic, the original git hook's commit message published with a receipt, the
# original's "\n" firewall keepalive (ignored by our consumers), and a message from ruby-stomp —
# the client library the Ruby original used — all through a broker on 127.0.0.1.
# The embedded stomp-broker is not built yet (issue 4), so a throwaway RabbitMQ with its STOMP
# plugin stands in; it is started here without systemd and stopped by pid at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
echo "== building"
bash scripts/build.sh build
stompctl=build/daemons/stompctl/stompctl

work=$(mktemp -d /tmp/deploykit-run.XXXXXX)
sub_pid=
cleanup() {
  [[ -n $sub_pid ]] && kill "$sub_pid" 2>/dev/null || true
  bash tests/brokers/broker.sh stop-all "$work" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "== starting a throwaway broker on 127.0.0.1:$port"
bash tests/brokers/broker.sh start rabbitmq "$work/broker" "$port"
url="stomp://guest:guest@127.0.0.1:$port"

echo "== subscribing to /topic/future.git.commits"
"$stompctl" -u "$url" subscribe -t /topic/future.git.commits --ack client-individual \
  --headers -n 2 --wait 30 --ready-file "$work/ready" > "$work/received" &
sub_pid=$!
for _ in $(seq 100); do [[ -f $work/ready ]] && break; sleep 0.1; done
[[ -f $work/ready ]] || { echo "subscriber did not come up" >&2; exit 1; }

rev=$(printf '%040d' 1)
echo "== publishing the original git hook's commit message (waits for the broker's receipt)"
printf 'repo: site\noldrev: %s\nnewrev: %s\nrefname: refs/heads/master\n %s\nAuthor: Dev <dev@example.com>\nDate: Sun Nov 22 10:00:00 2026 +0000\n\nFix the thing\n\n' \
  "$(printf '%040d' 0)" "$rev" "$rev" |
  "$stompctl" -u "$url" publish -t /topic/future.git.commits -H "subject:[site] refs/heads/master $rev"
echo "   accepted"

echo "== publishing the original's newline keepalive (our consumers ignore it)"
"$stompctl" -u "$url" publish -t /topic/future.git.commits -m $'\n'

echo "== publishing from ruby-stomp, the original's client library"
ruby tests/peers/rb_peer.rb publish --host 127.0.0.1 --port "$port" --login guest --passcode guest \
  --dest /topic/future.git.commits --count 1 --body-prefix "from-ruby-stomp-"

wait "$sub_pid"
sub_pid=
echo "== the subscriber received:"
cat "$work/received"
