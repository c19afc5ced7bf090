#!/usr/bin/env bash
# shellcheck disable=SC2317
# Every stompctl command ends promptly on SIGTERM/SIGINT with a non-zero status and says what was
# left unfinished — against a broker that accepts CONNECT and then never sends a RECEIPT (the
# case where `publish --count 5 --window 1` used to outlive SIGTERM by minutes).
#   tests/integration/stompctl_signals.sh STOMPCTL
NAME=stompctl_signals
STOMPCTL=${1:?usage: $0 STOMPCTL}
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

# A broker that answers CONNECT and SUBSCRIBE-less silence: no RECEIPT, ever. It logs each
# command it reads, so the test knows when a SEND arrived.
cat >"$WORK/mute.py" <<'PY'
import socket, sys, threading
log = open(sys.argv[2], "a", buffering=1)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
def serve(c):
    buf = b""
    while True:
        d = c.recv(65536)
        if not d: return
        buf += d
        while b"\0" in buf:
            fr, buf = buf.split(b"\0", 1)
            cmd = fr.lstrip(b"\r\n").split(b"\n", 1)[0].decode()
            log.write(cmd + "\n")
            if cmd in ("CONNECT", "STOMP"):
                c.sendall(b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0")
            elif cmd == "SUBSCRIBE" and b"destination:/topic/down" in fr:
                c.sendall(b"ERROR\nmessage:NOT_FOUND - home node 'rabbit@b' of durable queue 'q' is down or inaccessible\n\n\0")
                c.close(); return
            elif cmd == "SUBSCRIBE" and b"destination:/topic/secret" in fr:
                c.sendall(b"ERROR\nmessage:ACCESS_REFUSED - read access to topic 'secret' refused for user 'guest'\n\n\0")
                c.close(); return
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
read -r PORT < <(free_ports 1)
"$PY" "$WORK/mute.py" "$PORT" "$WORK/broker.log" &
BG_PIDS+=($!)
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null || fatal "mute broker did not start"
URL=stomp://127.0.0.1:$PORT

# interrupt NAME SIGNAL EXPECTED_RC WAIT_FOR_TEXT STDERR_TEXT -- stompctl args...: starts stompctl,
# waits until the broker logged WAIT_FOR_TEXT count grew, sends SIGNAL, and expects an exit within 2 s
# with EXPECTED_RC and STDERR_TEXT in its stderr.
interrupt() {
  local name=$1 sig=$2 want=$3 event=$4 text=$5
  shift 6
  local before
  before=$(grep -c "^$event\$" "$WORK/broker.log" 2>/dev/null)
  "$STOMPCTL" --timeout 30 -u "$URL" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  BG_PIDS+=("$pid")
  if ! wait_for 10 bash -c "(( \$(grep -c '^$event\$' '$WORK/broker.log') > $before ))"; then
    fail "$name: the broker never saw $event"
    return
  fi
  kill "-$sig" "$pid"
  if ! wait_for 2 exited "$pid"; then
    fail "$name: still running 2 s after SIG$sig"
    return
  fi
  wait "$pid"
  local rc=$?
  if ((rc == want)) && has_text "$WORK/$name.err" "$text"; then
    pass "$name: SIG$sig ended it (exit $rc): $(grep -F -- "$text" "$WORK/$name.err" | head -1)"
  else
    show "$WORK/$name.err"
    fail "$name: exit $rc (want $want), or stderr lacks '$text'"
  fi
}

interrupt publish_window TERM 143 SEND "not receipted" -- publish -t /topic/t -m hi --count 5 --window 1
interrupt publish_pipelined INT 130 SEND "5 of 5 message(s) not receipted" -- publish -t /topic/t -m hi --count 5 --window 5
interrupt publish_spool TERM 143 SEND "possibly sent" -- publish -t /topic/t -m hi --count 5 --window 1 --spool "$WORK/spool"
if (($(ls "$WORK/spool"/*.stomp 2>/dev/null | wc -l) == 5)) && (($(grep -l dk-possibly-sent "$WORK/spool"/*.stomp | wc -l) == 1)); then
  pass "publish_spool: all 5 kept; only the one written without a receipt is marked possibly sent"
else
  ls -la "$WORK/spool"
  fail "publish_spool: want 5 spooled files, exactly 1 marked dk-possibly-sent"
fi
interrupt subscribe TERM 143 SUBSCRIBE "interrupted before the subscription" -- subscribe -t /topic/t --wait 60
interrupt drain INT 130 SEND "not delivered" -- drain --spool "$WORK/spool"

# A subscription the broker keeps refusing: --wait bounds the attempt, and the exit says why.
"$STOMPCTL" -u "$URL" subscribe -t /topic/down --wait 3 >"$WORK/down.out" 2>"$WORK/down.err" &
pid=$!
BG_PIDS+=("$pid")
if wait_for 10 exited "$pid"; then
  wait "$pid"; rc=$?
  if ((rc == 1)) && has_text "$WORK/down.err" "never subscribed to /topic/down: refused" &&
    (($(grep -c '^SUBSCRIBE$' "$WORK/broker.log") >= 3)); then
    pass "subscribe --wait 3 to a refused subscription: retried, then exit 1: $(tail -1 "$WORK/down.err")"
  else
    show "$WORK/down.err"; fail "subscribe to /topic/down: exit $rc"
  fi
else
  fail "subscribe --wait 3 to a refused subscription did not end within 10 s"
fi
# A permanent refusal ends at once with exit 3 and the broker's reason.
"$STOMPCTL" -u "$URL" subscribe -t /topic/secret >"$WORK/secret.out" 2>"$WORK/secret.err" &
pid=$!
BG_PIDS+=("$pid")
if wait_for 5 exited "$pid"; then
  wait "$pid"; rc=$?
  if ((rc == 3)) && has_text "$WORK/secret.err" "ACCESS_REFUSED"; then
    pass "subscribe refused for good: exit 3: $(tail -1 "$WORK/secret.err")"
  else
    show "$WORK/secret.err"; fail "subscribe to /topic/secret: exit $rc"
  fi
else
  fail "a permanently refused subscribe did not end within 5 s"
fi
finish
