#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions called from traps and wait_for look unreachable to it
# Failover of a long-lived `stompctl subscribe` between two real brokers of one kind.
#   tests/integration/failover.sh rabbitmq|activemq [STOMPCTL binary or build dir]
# (or STOMPCTL=... in the environment; default build/daemons/stompctl/stompctl under the repo root).
# The work dir (broker dirs, client logs) is removed on success unless KEEP_WORK=1; kept on failure.
#
# Two throwaway brokers on free loopback ports; a subscriber on
# failover://(broker1,broker2)?randomize=false must receive "before" through broker1, survive
# broker1 being stopped, resubscribe on broker2 and receive "after" there. A one-shot
# `stompctl publish` on the same failover URL must then skip the dead broker1 and get its receipt
# from broker2. Prints PASS/FAIL per case; exits non-zero on any failure.
set -uo pipefail

KIND=${1:-}
[[ $KIND == rabbitmq || $KIND == activemq || $KIND == embedded ]] || { echo "usage: $0 rabbitmq|activemq|embedded [STOMPCTL]" >&2; exit 2; }
NAME=failover-$KIND
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
STOMPCTL=${2:-${STOMPCTL:-$ROOT_DIR/build/daemons/stompctl/stompctl}}
[[ -d $STOMPCTL ]] && STOMPCTL=$STOMPCTL/daemons/stompctl/stompctl # a build dir
[[ -x $STOMPCTL ]] || { echo "FAIL: no stompctl binary at $STOMPCTL" >&2; exit 2; }
# At exit: the clients in BG_PIDS (each stompctl runs under `timeout -k 5`) by pid, then the
# brokers below $WORK (broker.sh stop-all); the work dir goes only if all passed and all stopped.
stop_brokers_at_exit "$WORK"


read -r P1 P2 < <("$PY" -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
B1=stomp://guest:guest@127.0.0.1:$P1
B2=stomp://guest:guest@127.0.0.1:$P2
FAILOVER="failover://($B1,$B2)?randomize=false&initialReconnectDelay=100&maxReconnectDelay=1000"
TOPIC=/topic/failover.$KIND.$$ # dots: RabbitMQ refuses '/' inside a topic name
echo "failover: $KIND brokers on 127.0.0.1:$P1 (broker1) and 127.0.0.1:$P2 (broker2), work dir $WORK"

# Both brokers start at once (RabbitMQ takes ~15 s each); broker.sh waits until each answers CONNECT.
"$BROKER" start "$KIND" "$WORK/b1" "$P1" >"$WORK/b1.start" 2>&1 &
s1=$!
"$BROKER" start "$KIND" "$WORK/b2" "$P2" >"$WORK/b2.start" 2>&1 &
s2=$!
wait "$s1"; r1=$?
wait "$s2"; r2=$?
cat "$WORK/b1.start" "$WORK/b2.start"
((r1 == 0 && r2 == 0)) || fatal "brokers did not start"

# ---- the long-lived subscriber, connected to broker1 -----------------------------------------
# --wait bounds its own life; `timeout` is the hard stop should it hang anyway.
timeout -k 5 120 "$STOMPCTL" -v -u "$FAILOVER" subscribe -t "$TOPIC" -n 2 --wait 100 --ready-file "$WORK/sub.ready" \
  >"$WORK/sub.out" 2>"$WORK/sub.err" &
SUB=$!
BG_PIDS+=("$SUB")
if wait_for 20 test -e "$WORK/sub.ready"; then
  pass "subscriber confirmed its subscription (ready-file)"
else
  show "$WORK/sub.err"
  fatal "subscriber not ready within 20 s"
fi
if has_text "$WORK/sub.err" "connected to stomp://127.0.0.1:$P1 " && ! has_text "$WORK/sub.err" ":$P2 "; then
  pass "subscriber is connected to broker1 (port $P1)"
else
  show "$WORK/sub.err"
  fatal "subscriber's log does not say it connected to broker1 (port $P1)"
fi

timeout -k 5 20 "$STOMPCTL" -u "$B1" publish -t "$TOPIC" -m before >"$WORK/pub-before.out" 2>&1
rc=$?
if ((rc == 0)) && wait_for 10 has_line "$WORK/sub.out" before; then
  pass "\"before\" published through broker1 (exit 0) and received"
else
  show "$WORK/pub-before.out"; show "$WORK/sub.out"
  fatal "\"before\": publish exit $rc, or not received within 10 s"
fi

# ---- broker1 goes away ----------------------------------------------------------------------
if "$BROKER" stop "$WORK/b1" >"$WORK/b1.stop" 2>&1; then
  pass "broker1 stopped ($(tail -n 1 "$WORK/b1.stop"))"
else
  show "$WORK/b1.stop"
  fatal "broker1 did not stop"
fi

# The subscriber logs "connected to" when CONNECTED arrives; its SUBSCRIBE goes out right after.
if wait_for 30 has_text "$WORK/sub.err" "connected to stomp://127.0.0.1:$P2 "; then
  pass "subscriber noticed the loss and reconnected to broker2 (port $P2)"
else
  show "$WORK/sub.err"
  fatal "subscriber did not reconnect to broker2 within 30 s"
fi
if has_text "$WORK/sub.err" "connection to stomp://127.0.0.1:$P1 lost"; then
  pass "subscriber logged the loss of broker1"
else
  show "$WORK/sub.err"
  fail "subscriber did not log 'connection to ...:$P1 lost'"
fi

# ---- "after" through broker2 ----------------------------------------------------------------
# "connected to" does not prove the SUBSCRIBE has been processed yet, and a topic message
# published before that is simply dropped by the broker. stompctl logs nothing when the
# resubscription's RECEIPT arrives, so instead of sleeping for a guessed grace period, "after"
# itself is the probe: publish it to broker2 (each publish must get its receipt), then wait up to
# PROBE_WAIT s for the subscriber to print it; if it does not, that copy was published before the
# resubscription took effect and is gone, so publish again, for at most 10 attempts.
# The subscriber exits after its second message (-n 2), i.e. after the first "after"; a late
# duplicate could only appear if delivery took more than PROBE_WAIT s on loopback, and the exact
# output check below would catch it. The number of copies needed is reported.
PROBE_WAIT=3
attempt=0
got_after=false
while ((attempt < 10)); do
  attempt=$((attempt + 1))
  timeout -k 5 20 "$STOMPCTL" -u "$B2" publish -t "$TOPIC" -m after >"$WORK/pub-after.$attempt" 2>&1
  rc=$?
  if ((rc != 0)); then
    show "$WORK/pub-after.$attempt"
    fail "publish of \"after\" to broker2 directly exited $rc (attempt $attempt)"
    break
  fi
  if wait_for "$PROBE_WAIT" has_line "$WORK/sub.out" after; then
    got_after=true
    break
  fi
done
if $got_after; then
  pass "\"after\" published to broker2 directly (exit 0) and received; copies needed: $attempt" \
    "($((attempt - 1)) lost before the resubscription took effect)"
else
  show "$WORK/sub.err"; show "$WORK/sub.out"
  fail "\"after\" never reached the resubscribed subscriber ($attempt copies published)"
fi

if wait_for 15 exited "$SUB"; then
  wait "$SUB"
  rc=$?
  if ((rc == 0)) && [[ $(cat "$WORK/sub.out") == $'before\nafter' ]]; then
    pass "subscriber exited 0 having printed exactly: before, after"
  else
    show "$WORK/sub.out"; show "$WORK/sub.err"
    fail "subscriber exited $rc; expected exit 0 and output 'before\\nafter'"
  fi
else
  show "$WORK/sub.err"
  fail "subscriber still running 15 s after it should have had both messages"
fi

# ---- a one-shot publish on the failover URL skips the dead broker1 ---------------------------
# Checked by an independent subscriber (stomp.py) on broker2 that must receive the message.
"$PY" "$ROOT_DIR/tests/peers/py_peer.py" subscribe --port "$P2" --dest "$TOPIC" --count 1 --version 1.2 \
  --ready-file "$WORK/check.ready" --timeout 40 >"$WORK/check.out" 2>"$WORK/check.err" &
CHECK=$!
BG_PIDS+=("$CHECK")
wait_for 20 test -e "$WORK/check.ready" || { show "$WORK/check.err"; fatal "py_peer checker on broker2 not ready in 20 s"; }
timeout -k 5 30 "$STOMPCTL" -v -u "$FAILOVER" publish -t "$TOPIC" -m after-failover >"$WORK/pub-failover.out" 2>&1
rc=$?
if ((rc == 0)); then
  pass "stompctl publish on the failover URL exited 0 (receipt received)"
else
  show "$WORK/pub-failover.out"
  fail "stompctl publish on the failover URL exited $rc"
fi
if has_text "$WORK/pub-failover.out" "cannot connect to stomp://127.0.0.1:$P1" &&
  has_text "$WORK/pub-failover.out" "connected to stomp://127.0.0.1:$P2 "; then
  pass "that publish tried broker1, then used broker2"
else
  show "$WORK/pub-failover.out"
  fail "that publish's log does not show broker1 refused and broker2 used"
fi
if wait_for 10 exited "$CHECK" && wait "$CHECK" && [[ $(cat "$WORK/check.out") == after-failover ]]; then
  pass "the failover publish reached broker2's subscriber: after-failover"
else
  show "$WORK/check.out"; show "$WORK/check.err"
  fail "broker2's subscriber did not receive exactly 'after-failover'"
fi

finish
