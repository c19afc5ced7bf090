#!/usr/bin/env bash
# The main job: builds deploykit and runs the pipeline on a single machine.
#
# Today the pipeline is libbus itself: a subscriber (stompctl, as stomp-git will consume) on the
# original's commit topic, the original git hook's commit message published with a receipt, the
# original's "\n" firewall keepalive (ignored by our consumers), and a message from ruby-stomp —
# the client library the Ruby original used — all through the embedded stomp-broker on 127.0.0.1,
# with its journal, so the commit event is on disk before the publisher gets its receipt.
# The broker is started here without systemd and stopped by pid at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
echo "== building"
bash scripts/build.sh build
stompctl=build/daemons/stompctl/stompctl

work=$(mktemp -d /tmp/deploykit-run.XXXXXX)
sub_pid=
broker_pid=
cleanup() {
  [[ -n $sub_pid ]] && kill "$sub_pid" 2>/dev/null || true
  [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

read -r port admin < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
echo "== starting stomp-broker on 127.0.0.1:$port (metrics on :$admin)"
build/daemons/stomp-broker/stomp-broker --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" \
  --data-dir "$work/broker" 2>"$work/broker.log" &
broker_pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
url="stomp://deploykit:deploykit@127.0.0.1:$port"

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
ruby tests/peers/rb_peer.rb publish --host 127.0.0.1 --port "$port" --login deploykit --passcode deploykit \
  --dest /topic/future.git.commits --count 1 --body-prefix "from-ruby-stomp-"

wait "$sub_pid"
sub_pid=
echo "== the subscriber received:"
cat "$work/received"
echo "== broker metrics"
/usr/bin/python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
  "http://127.0.0.1:$admin/metrics" | grep -E '^stomp_broker_(messages_in_total|messages_out_total|connections_total) '
echo "== broker log"
cat "$work/broker.log"
