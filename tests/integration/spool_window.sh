#!/usr/bin/env bash
# shellcheck disable=SC2317
# `stompctl publish --count N --spool DIR` against a broker SIGKILLed mid-stream (issue 11 item 22):
# the window bounds what is in flight on every path, so at most --window messages end with an
# unknown outcome; exactly those are spooled marked dk-possibly-sent, the rest unmarked; nothing
# is lost: after a restart `stompctl drain -c CONFIG` (the spool's own config, no broker flags)
# delivers the spool and a consumer gets every message.
#   tests/integration/spool_window.sh STOMPCTL STOMP_BROKER
NAME=spool_window
STOMPCTL=${1:?usage: $0 STOMPCTL STOMP_BROKER}
STOMP_BROKER=${2:?usage: $0 STOMPCTL STOMP_BROKER}
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
COUNT=600 # each spooled file is fsynced: keep the spool small
FIRST=20

head -c 16384 /dev/zero | tr '\0' x >"$WORK/body" # 16 KiB: slows the stream so the kill lands mid-way

# run_case WINDOW: one publish run into its own queue and spool, broker killed after FIRST consumed.
run_case() {
  local w=$1 q=/queue/spool.window$1.$$ spool=$WORK/spool$1 port
  read -r port < <(free_ports 1)
  start_broker "$WORK/broker$w" "$port"
  local url=stomp://127.0.0.1:$port
  timeout -k 2 60 "$STOMPCTL" -u "$url" subscribe -t "$q" --ack client-individual -n "$FIRST" --wait 50 \
    >"$WORK/first$w.out" 2>"$WORK/first$w.err" &
  local first=$!
  BG_PIDS+=("$first")
  timeout -k 2 90 "$STOMPCTL" --timeout 60 -u "$url" publish -t "$q" -H persistent:true -f "$WORK/body" \
    --count "$COUNT" --window "$w" --spool "$spool" >"$WORK/pub$w.out" 2>"$WORK/pub$w.err" &
  local pub=$!
  BG_PIDS+=("$pub")
  wait_for 50 exited "$first" || { show "$WORK/first$w.err"; fatal "window $w: first consumer did not get $FIRST"; }
  kill -KILL "$BROKER_PID"
  wait "$BROKER_PID" 2>/dev/null
  if wait_for 60 exited "$pub" && wait "$pub"; then
    pass "window $w: publisher ended with exit 0 after the broker was killed"
  else
    show "$WORK/pub$w.err"
    fail "window $w: publisher failed or hung"
    return
  fi
  local spooled marked
  spooled=$(find "$spool" -maxdepth 1 -name '*.stomp' | wc -l)
  marked=$(grep -l '^dk-possibly-sent:true' "$spool"/*.stomp 2>/dev/null | wc -l)
  if ((spooled > 0 && marked <= w)); then
    pass "window $w: $spooled spooled, $marked marked possibly sent (at most the window, $w)"
  else
    show "$WORK/pub$w.err"
    fail "window $w: $spooled spooled, $marked marked possibly sent (want >0 and <= $w)"
  fi
  has_text "$WORK/pub$w.err" "$marked of them possibly sent" ||
    { show "$WORK/pub$w.err"; fail "window $w: publisher did not report $marked possibly sent"; }

  # Restart; the spool's config names the broker, so drain needs nothing else.
  start_broker "$WORK/broker$w" "$port"
  printf 'rserver: %s\nspool-dir: %s\n' "$url" "$spool" >"$WORK/spool$w.yaml"
  if "$STOMPCTL" drain -c "$WORK/spool$w.yaml" >"$WORK/drain$w.out" 2>"$WORK/drain$w.err" &&
    has_text "$WORK/drain$w.out" "\"delivered\":$spooled"; then
    pass "window $w: drain -c delivered all $spooled: $(cat "$WORK/drain$w.out")"
  else
    show "$WORK/drain$w.err"; show "$WORK/drain$w.out"
    fail "window $w: drain -c did not deliver the spool"
  fi
  # Nothing lost: every one of the COUNT messages reaches a consumer (copies: at most `marked`).
  local rest=$((COUNT - FIRST))
  if timeout -k 2 60 "$STOMPCTL" -u "$url" subscribe -t "$q" --ack client-individual -n "$rest" --wait 40 \
    >"$WORK/rest$w.out" 2>"$WORK/rest$w.err"; then
    pass "window $w: none lost: the remaining $rest of $COUNT were delivered"
  else
    show "$WORK/rest$w.err"
    fail "window $w: got $(lines "$WORK/rest$w.out") of the remaining $rest"
  fi
  kill "$BROKER_PID"
  wait "$BROKER_PID" 2>/dev/null
}
run_case 1
run_case 50
finish
