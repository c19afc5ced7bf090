#!/usr/bin/env bash
# stomp-broker as a process: persistent messages survive a restart and a SIGKILL; users file,
# permissions and SIGHUP reload; a malformed frame gets an ERROR and harms nobody else; admin
# endpoints; 1,000 idle connections plus a subscriber that stops reading keep memory bounded.
#   tests/integration/stomp_broker.sh STOMP_BROKER STOMPCTL
set -euo pipefail
broker=${1:?stomp-broker binary}
stompctl=${2:?stompctl binary}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/deploykit-sb.XXXXXX)
bpid=
trap '{ [[ -n $bpid ]] && kill -9 "$bpid"; [[ -n ${hold_pid:-} ]] && kill "$hold_pid"; } 2>/dev/null || true; rm -rf "$work"' EXIT
fail=0
pass() { echo "PASS $*"; }
bad() { echo "FAIL $*"; fail=1; }

read -r port admin < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

start() { # extra args...
  "$broker" --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" "$@" 2>>"$work/broker.log" &
  bpid=$!
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$bpid" 2>/dev/null || { echo "broker died:"; tail -20 "$work/broker.log"; return 1; }
    sleep 0.025
  done
  return 1
}
stop() { # signal
  kill "-$1" "$bpid"
  timeout 10 tail --pid="$bpid" -f /dev/null || true
  wait "$bpid" 2>/dev/null || true
  bpid=
}
url="stomp://127.0.0.1:$port"
sc() { timeout 20 "$stompctl" --timeout 5 "$@"; }

# 1. Restart (SIGTERM) and crash (SIGKILL) lose no persistent message.
start --data-dir "$work/data"
for i in 1 2 3; do sc -u "$url" publish -t /queue/restart -H persistent:true -m "p$i"; done
sc -u "$url" publish -t /queue/restart -m "transient"
stop TERM
start --data-dir "$work/data"
got=$(sc -u "$url" subscribe -t /queue/restart -n 3 --wait 5 --ack client-individual | tr '\n' ' ')
[[ $got == "p1 p2 p3 " ]] && pass "restart keeps persistent messages in order" || bad "restart: got '$got'"
for i in 1 2; do sc -u "$url" publish -t /queue/crash -H persistent:true -m "c$i"; done
stop KILL
start --data-dir "$work/data"
got=$(sc -u "$url" subscribe -t /queue/crash -n 2 --wait 5 | tr '\n' ' ')
[[ $got == "c1 c2 " ]] && pass "SIGKILL after the receipts loses nothing" || bad "crash: got '$got'"
left=$(sc -u "$url" subscribe -t /queue/restart -n 1 --wait 1 || true)
[[ -z $left ]] && pass "acknowledged messages stay gone after restart" || bad "acked message came back: $left"

# 2. Admin endpoints.
sc -u "$url" publish -t /queue/restart -m counted >/dev/null
metrics=$(/usr/bin/python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode())' "http://127.0.0.1:$admin/metrics")
grep -q '^stomp_broker_messages_in_total [1-9]' <<<"$metrics" && grep -q 'stomp_broker_queue_depth{queue="/queue/restart"}' <<<"$metrics" \
  && pass "/metrics exposes counters and queue depths" || bad "/metrics: $metrics"
code=$(/usr/bin/python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1],timeout=5).status)' "http://127.0.0.1:$admin/readyz")
[[ $code == 200 ]] && pass "/readyz" || bad "/readyz $code"
stop TERM

# 2b. Back-pressure: a producer to a full queue waits (no ERROR, no loss) until a consumer drains it.
cat >"$work/bp.yaml" <<EOF2
listen: 127.0.0.1:$port
admin_listen: 127.0.0.1:$admin
max_queue_depth: 5
EOF2
"$broker" -c "$work/bp.yaml" 2>>"$work/broker.log" &
bpid=$!
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.025; done
timeout 60 "$stompctl" -u "$url" --timeout 30 publish -t /queue/bp -m m --count 12 --window 12 >/dev/null 2>&1 &
ppid_bp=$!
blocked=0
for _ in $(seq 200); do
  n=$(/usr/bin/python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode())' "http://127.0.0.1:$admin/metrics" | awk '/^stomp_broker_blocked_sends_total /{print $2}')
  if [[ ${n:-0} -ge 1 ]]; then blocked=1; break; fi
  sleep 0.05
done
[[ $blocked == 1 ]] && pass "a SEND to a full queue waits (blocked_sends_total counts it)" || bad "producer was not blocked"
got=$(sc -u "$url" subscribe -t /queue/bp -n 12 --wait 20 | wc -l)
rc=0; wait "$ppid_bp" || rc=$?
[[ $got == 12 && $rc == 0 ]] && pass "the blocked producer resumed: all 12 receipted and delivered" || bad "back-pressure: got $got, publisher rc=$rc"
stop TERM

# 3. Users, permissions, SIGHUP.
hash=$(echo 's3cret' | "$broker" --hash-password)
cat >"$work/users.yaml" <<EOF2
users:
  gitbot:
    password: "$hash"
    read: ["/topic/future.*"]
    write: ["/topic/future.git.commits"]
EOF2
cat >"$work/broker.yaml" <<EOF2
listen: 127.0.0.1:$port
admin_listen: 127.0.0.1:$admin
users_file: $work/users.yaml
EOF2
"$broker" -c "$work/broker.yaml" 2>>"$work/broker.log" &
bpid=$!
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.025; done
rc=0; sc -u "stomp://gitbot:s3cret@127.0.0.1:$port" publish -t /topic/future.git.commits -m ok >/dev/null 2>&1 || rc=$?
[[ $rc == 0 ]] && pass "user with write permission publishes" || bad "gitbot publish rc=$rc"
rc=0; sc -u "stomp://gitbot:wrong@127.0.0.1:$port" publish -t /topic/future.git.commits -m x >/dev/null 2>&1 || rc=$?
[[ $rc == 1 ]] && pass "bad password refused" || bad "bad password rc=$rc"
rc=0; sc -u "stomp://gitbot:s3cret@127.0.0.1:$port" publish -t /topic/future.jenkins.cake -m x >/dev/null 2>&1 || rc=$?
[[ $rc == 3 ]] && pass "write outside the permissions gets ERROR (exit 3)" || bad "denied publish rc=$rc"
rc=0; sc -u "stomp://anyone:x@127.0.0.1:$port" publish -t /topic/future.git.commits -m x >/dev/null 2>&1 || rc=$?
[[ $rc == 1 ]] && pass "anonymous refused when the users file says nothing of it" || bad "anonymous rc=$rc"
hash2=$(echo 'n3w' | "$broker" --hash-password)
cat >>"$work/users.yaml" <<EOF2
  jenkins:
    password: "$hash2"
EOF2
kill -HUP "$bpid"
ok=0
for _ in $(seq 40); do
  if sc -u "stomp://jenkins:n3w@127.0.0.1:$port" publish -t /topic/future.jenkins.success -m x >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.1
done
[[ $ok == 1 ]] && pass "SIGHUP re-reads the users file" || bad "reload did not take"
stop TERM

# 3b. TLS listener: a client that trusts the CA and names the host connects; others are refused.
read -r tls_port < <(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(
  cd "$work"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost\n' >san.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null
)
cat >"$work/tls.yaml" <<EOF2
listen: 127.0.0.1:$port
tls_listen: 127.0.0.1:$tls_port
tls_cert: $work/server.pem
tls_key: $work/server.key
EOF2
"$broker" -c "$work/tls.yaml" 2>>"$work/broker.log" &
bpid=$!
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$tls_port") 2>/dev/null && break; sleep 0.025; done
rc=0; sc -u "stomp+ssl://localhost:$tls_port" --ca-file "$work/ca.pem" publish -t /topic/tls -m x >/dev/null 2>&1 || rc=$?
[[ $rc == 0 ]] && pass "TLS listener with a verified certificate" || bad "TLS publish rc=$rc"
rc=0; sc -u "stomp+ssl://127.0.0.1:$tls_port" --ca-file "$work/ca.pem" publish -t /topic/tls -m x >/dev/null 2>&1 || rc=$?
[[ $rc == 1 ]] && pass "TLS host-name mismatch refused by the client" || bad "TLS mismatch rc=$rc"
stop TERM

# 4. Malformed frames and 1,000 connections with a subscriber that never reads.
start
out=$(/usr/bin/python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"CONNECT\naccept-version:1.2\n\n\0SEND\nno colon here\n\n\0")
data = b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        data += chunk
except socket.timeout:
    pass
print("ERROR" in data.decode(errors="replace") and "closed")
PY
)
[[ $out == closed ]] && pass "malformed frame: ERROR, then the connection is closed" || bad "malformed: $out"
sc -u "$url" publish -t /topic/after -m fine >/dev/null && pass "broker unaffected by the malformed frame" || bad "broker unhealthy"

ulimit -n 4096 2>/dev/null || true
/usr/bin/python3 - "$port" "$work/hold" <<'PY' &
import signal, socket, sys
port, ready = int(sys.argv[1]), sys.argv[2]
conns = []
for i in range(1000):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"CONNECT\naccept-version:1.2\n\n\0")
    conns.append(s)
for s in conns:
    s.recv(512)
# One subscriber that never reads again: the broker must not buffer without bound for it.
slow = socket.create_connection(("127.0.0.1", port), timeout=10)
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
slow.sendall(b"CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\ndestination:/topic/flood\nid:1\nreceipt:r\n\n\0")
seen = b""
while b"RECEIPT" not in seen:  # the subscription is in place once its receipt is back
    seen += slow.recv(512)
open(ready, "w").write("ready")
signal.pause()  # hold every connection open until the test kills us
PY
hold_pid=$!
for _ in $(seq 600); do [[ -f $work/hold ]] && break; sleep 0.05; done
[[ -f $work/hold ]] || bad "could not open 1000 connections"
rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$bpid/status")
body=$(head -c 4000 /dev/zero | tr '\0' x)
"$stompctl" -u "$url" --timeout 60 publish -t /topic/flood -m "$body" --count 20000 --window 2000 >/dev/null
rss_after=$(awk '/VmRSS/ {print $2}' "/proc/$bpid/status")
conns=$(/usr/bin/python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode())' "http://127.0.0.1:$admin/metrics" | awk '/^stomp_broker_connections /{print $2}')
echo "rss before ${rss_before} kB, after 80 MB of fan-out to a stalled subscriber ${rss_after} kB, connections ${conns}"
[[ ${conns:-0} -ge 1001 ]] && pass "1,000+ concurrent connections" || bad "connections: $conns"
(( rss_after < 200000 )) && pass "memory bounded with a stalled subscriber (${rss_after} kB)" || bad "RSS grew to ${rss_after} kB"
kill "$hold_pid" 2>/dev/null || true
stop TERM
exit $fail
