# shellcheck shell=bash
# Shared by the stompctl fault scripts (stompctl_signals, firewall_keepalive, spool_window):
# pass/fail bookkeeping, deadline-bounded waits, free loopback ports, background pids stopped
# by pid on exit. Source it after setting NAME.
set -uo pipefail
PY=/usr/bin/python3
T0=$EPOCHREALTIME
WORK=$(mktemp -d "/tmp/$NAME.XXXXXX")
BG_PIDS=()
FAILS=0
cleanup() {
  local p
  for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  ((FAILS)) || [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
pass() { echo "PASS: $NAME: $*"; }
fail() { echo "FAIL: $NAME: $*"; FAILS=$((FAILS + 1)); }
finish() {
  local us=$((${EPOCHREALTIME/./} - ${T0/./}))
  if ((FAILS)); then
    echo "FAIL: $NAME: $FAILS case(s) failed in $((us / 1000000))s (logs kept in $WORK)"
    exit 1
  fi
  echo "PASS: $NAME: all cases in $((us / 1000000))s"
  exit 0
}
fatal() { fail "$*"; finish; }
show() { echo "  --- $1:"; sed 's/^/  | /' "$1" 2>/dev/null | tail -n "${2:-20}"; }
# wait_for SECONDS CMD...: polls CMD every 0.05 s until it succeeds (0) or SECONDS pass (1).
wait_for() {
  local limit=$(($1 * 1000000)) t=$EPOCHREALTIME
  shift
  until "$@"; do
    (($(( ${EPOCHREALTIME/./} - ${t/./} )) >= limit)) && return 1
    sleep 0.05
  done
}
has_text() { grep -qF -- "$2" "$1" 2>/dev/null; }
exited() { ! kill -0 "$1" 2>/dev/null; }
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
free_ports() { # N: prints N free loopback ports
  "$PY" -c '
import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))' "$1"
}
# start_broker DIR PORT: the embedded broker ($STOMP_BROKER) on 127.0.0.1:PORT; sets BROKER_PID.
start_broker() {
  mkdir -p "$1"
  "$STOMP_BROKER" --listen "127.0.0.1:$2" --data-dir "$1/data" >>"$1/broker.log" 2>&1 &
  BROKER_PID=$!
  BG_PIDS+=("$BROKER_PID")
  wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$2" 2>/dev/null || fatal "broker on port $2 did not start"
}
