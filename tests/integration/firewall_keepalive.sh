#!/usr/bin/env bash
# shellcheck disable=SC2317
# Keepalive settings against an idle-dropping firewall (issue 11 item 10). A TCP proxy on
# loopback stands for the firewall: a flow with no bytes in either direction for IDLE seconds is
# silently black-holed (nothing forwarded any more, no RST, no FIN), as stateful firewalls do.
# Subscribers whose heart-beat (STOMP 1.1+) or EOL keepalive (1.0) is below IDLE stay connected and
# get every message; one with the defaults (10 s heart-beats) is cut off and loses them.
#   tests/integration/firewall_keepalive.sh STOMPCTL STOMP_BROKER
NAME=firewall_keepalive
STOMPCTL=${1:?usage: $0 STOMPCTL STOMP_BROKER}
STOMP_BROKER=${2:?usage: $0 STOMPCTL STOMP_BROKER}
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
IDLE=3

cat >"$WORK/firewall.py" <<'PY'
import socket, sys, threading, time
listen, target, idle = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
log = open(sys.argv[4], "a", buffering=1)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen)); srv.listen(64)
flows = []
lock = threading.Lock()
class Flow:
    def __init__(self, a, b, name):
        self.a, self.b, self.name, self.last, self.dead, self.closed = a, b, name, time.monotonic(), False, False
def pump(f, src, dst):
    while True:
        try:
            d = src.recv(65536)
        except OSError:
            return
        if not d:
            f.closed = True
            if not f.dead:
                try: dst.shutdown(socket.SHUT_WR)
                except OSError: pass
            return
        if f.dead:
            continue  # black-holed: swallowed, the peer hears nothing
        f.last = time.monotonic()
        dst.sendall(d)
def reaper():
    while True:
        time.sleep(0.05)
        now = time.monotonic()
        with lock:
            for f in flows:
                if not f.dead and not f.closed and now - f.last > idle:
                    f.dead = True
                    log.write("dropped idle flow %s\n" % f.name)
threading.Thread(target=reaper, daemon=True).start()
while True:
    a, peer = srv.accept()
    b = socket.create_connection(("127.0.0.1", target))
    f = Flow(a, b, "%s:%d" % peer)
    with lock: flows.append(f)
    log.write("flow %s\n" % f.name)
    threading.Thread(target=pump, args=(f, a, b), daemon=True).start()
    threading.Thread(target=pump, args=(f, b, a), daemon=True).start()
PY

read -r BPORT FPORT < <(free_ports 2)
start_broker "$WORK/broker" "$BPORT"
"$PY" "$WORK/firewall.py" "$FPORT" "$BPORT" "$IDLE" "$WORK/firewall.log" &
BG_PIDS+=($!)
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$FPORT" 2>/dev/null || fatal "firewall proxy did not start"
VIA=stomp://127.0.0.1:$FPORT
TOPIC=/topic/firewall.$$
N=4

# subscriber NAME ARGS...: a subscriber through the firewall for N messages, up to 15 s.
subscriber() {
  local name=$1
  shift
  timeout -k 2 40 "$STOMPCTL" -v -u "$VIA?initialReconnectDelay=100&maxReconnectDelay=500" "$@" \
    subscribe -t "$TOPIC" -n "$N" --wait 15 --ready-file "$WORK/$name.ready" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  eval "${name}_PID=$!"
  BG_PIDS+=($!)
}
subscriber tuned --heartbeat-ms 1000
subscriber tuned10 --protocol 1.0 --keepalive-ms 1000 --probe-ms 2000 --probe-timeout-ms 1000
subscriber defaults
for s in tuned tuned10 defaults; do
  wait_for 10 test -e "$WORK/$s.ready" || { show "$WORK/$s.err"; fatal "$s: not subscribed within 10 s"; }
done
pass "three subscribers through a firewall that black-holes flows idle for ${IDLE} s"

# The firewall cuts the default subscriber's flow once it has been idle for IDLE seconds.
if wait_for 15 has_text "$WORK/firewall.log" "dropped idle flow"; then
  pass "firewall dropped an idle flow: $(grep -c 'dropped idle flow' "$WORK/firewall.log") flow(s)"
else
  show "$WORK/firewall.log"
  fatal "no flow went idle within 15 s"
fi
for i in $(seq 1 "$N"); do
  "$STOMPCTL" -u "stomp://127.0.0.1:$BPORT" publish -t "$TOPIC" -m "m$i" >>"$WORK/pub.err" 2>&1 ||
    fatal "publish m$i directly to the broker failed"
done

for s in tuned tuned10; do
  pid_var=${s}_PID
  if wait_for 10 exited "${!pid_var}" && wait "${!pid_var}" && (($(lines "$WORK/$s.out") == N)); then
    pass "$s: stayed connected and got all $N messages ($(grep -c 'connected to' "$WORK/$s.err") connect(s))"
  else
    show "$WORK/$s.err"
    fail "$s: did not get all $N messages"
  fi
  if (($(grep -c 'connected to' "$WORK/$s.err") != 1)); then
    fail "$s: reconnected behind the firewall"
  fi
done
# The default subscriber's flow is black-holed: its 10 s heart-beat is above the idle timeout.
wait_for 25 exited "$defaults_PID"
wait "$defaults_PID"
rc=$?
if ((rc != 0)) && (($(lines "$WORK/defaults.out") < N)); then
  pass "defaults (10 s heart-beat > ${IDLE} s idle timeout): cut off, got $(lines "$WORK/defaults.out") of $N (exit $rc)"
else
  show "$WORK/defaults.err"
  fail "defaults: expected the firewall to cut it off (exit $rc, $(lines "$WORK/defaults.out") messages)"
fi
finish
