# shellcheck shell=bash
# shellcheck disable=SC2034 # variables used by the scripts that source this
# The integration scripts' shared helpers. Source it after setting NAME (the prefix of every
# PASS/FAIL line and of the work dir's name):
#   NAME=my_test; . "$(dirname "$0")/lib.sh"
#
# What it sets up: ROOT_DIR (the repository), BROKER (tests/brokers/broker.sh), PY (the interpreter
# with stomp.py), T0 (start time), WORK (a fresh temp dir; removed at exit when every case passed,
# kept on failure or with KEEP_WORK=1), an EXIT trap (INT/TERM/HUP exit through it) that stops
# what the script started, in this order: its own steps (on_exit), the processes it started (bg,
# track), the brokers it started (start_kind, start_cluster). Nothing is found by name: pids only.
#
# Results: pass MSG / fail MSG (counts; `bad` is fail, and sets fail=1 for scripts that end with
# `exit $fail`), fatal MSG (fail and finish now), finish (summary line; exit 1 if anything failed),
# show FILE [N] (the last N lines of a log, indented).
# Waits, all with a deadline in seconds, polling (never a sleep to synchronise):
#   wait_for S CMD... (until_true is the same), wait_port PORT [S], wait_file FILE [S],
#   wait_line FILE LINE [S] (an exact line), wait_text FILE TEXT [S] (a substring),
#   wait_lines FILE N [S] (at least N lines),
#   wait_exit S PID (reaps it: RC is its status, 124 if it had to be killed at the deadline).
# Tests: has_line FILE LINE, has_text FILE TEXT, exited PID, lines FILE, listening PORT.
# Ports: free_ports N (N distinct free loopback ports on one line), free_port.
# Processes: bg CMD... (in the background; BG_PID is its pid), track PID (stop it at exit),
#   untrack PID, stop_pid PID [S] (TERM, KILL after S seconds (default 5), reap), on_exit CMD... (a
#   cleanup step, run in reverse order of registration), kill_at_exit VAR... (kill the pids these
#   variables or arrays hold at exit), start_subscriber NAME CMD... (a stompctl subscriber with
#   --ready-file; returns once subscribed; SUB_PID).
# Brokers: embedded_broker BINARY PORT LOG [ARGS] (stomp-broker; BROKER_PID), start_broker DIR PORT
#   (the same with $STOMP_BROKER and its data in DIR; fatal if it fails), start_kind KIND
#   DIR PORT (broker.sh: rabbitmq|activemq|embedded), start_cluster ROOT PORT... (a RabbitMQ
#   cluster, one node per port; node K is ROOT/nK), stop_brokers_at_exit ROOT (broker.sh stop-all
#   ROOT at exit, for brokers a script starts with broker.sh itself).
set -uo pipefail
: "${NAME:?set NAME before sourcing lib.sh}"
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BROKER=$ROOT_DIR/tests/brokers/broker.sh
PY=/usr/bin/python3
T0=$EPOCHREALTIME
WORK=$(mktemp -d "/tmp/$NAME.XXXXXX")
BG_PIDS=()
BROKER_ROOTS=()
EXIT_STEPS=()
FAILS=0
fail=0

_lib_cleanup() {
  local rc=$? p s i ok=true
  set +e # every step runs, even in a `set -e` script
  for ((i = ${#EXIT_STEPS[@]} - 1; i >= 0; i--)); do eval "${EXIT_STEPS[$i]}" || true; done
  for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait_for 5 all_exited # then KILL what ignores TERM
  for p in "${BG_PIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  for s in "${BROKER_ROOTS[@]}"; do
    if ! bash "$BROKER" stop-all "$s" >"$WORK/stop-brokers.log" 2>&1; then
      echo "$NAME: could not stop the brokers in $s:" >&2
      cat "$WORK/stop-brokers.log" >&2
      ok=false
    fi
  done
  if ((rc == 0 && FAILS == 0)) && $ok && [[ -z ${KEEP_WORK:-} ]]; then
    rm -rf "$WORK"
  elif ((rc != 0 || FAILS != 0)); then
    echo "$NAME: logs kept in $WORK" >&2
  fi
}
trap _lib_cleanup EXIT
trap 'exit 130' INT TERM HUP # so that the EXIT trap runs on these too

elapsed() { # [T]: the time since T (an $EPOCHREALTIME value; default: the start) as "12.3s"
  local t=${1:-$T0} us
  us=$((${EPOCHREALTIME/./} - ${t/./}))
  echo "$((us / 1000000)).$((us / 100000 % 10))s"
}
git_sandbox() { # DIR: git with a fixed identity and its own config in DIR (none of the machine's)
  export GIT_AUTHOR_NAME="Dev One" GIT_AUTHOR_EMAIL=dev@example.com
  export GIT_COMMITTER_NAME="Dev One" GIT_COMMITTER_EMAIL=dev@example.com
  export GIT_CONFIG_GLOBAL=$1/gitconfig GIT_CONFIG_NOSYSTEM=1
  git config --global safe.directory '*'
  git config --global init.defaultBranch master
}
tagged_repo() { # DIR [--spaced] TAG...: a new repository with one commit per TAG (file "version"),
  # each tagged (annotated); --spaced puts the tags a second apart, so "newest first" is checkable
  local dir=$1 spaced=false v; shift
  [[ ${1:-} == --spaced ]] && { spaced=true; shift; }
  git init -q "$dir"
  for v in "$@"; do
    (cd "$dir" && echo "$v" >version && git add . && git commit -qm "$v" && git tag -a "$v" -m "$v")
    if $spaced; then sleep 1.1; fi # tag times, not a synchronisation
  done
}
pass() { echo "PASS: $NAME: $*"; }
fail() { echo "FAIL: $NAME: $*"; FAILS=$((FAILS + 1)); fail=1; }
bad() { fail "$@"; }
finish() {
  if ((FAILS)); then
    echo "FAIL: $NAME: $FAILS case(s) failed in $(elapsed "$T0")"
    exit 1
  fi
  echo "PASS: $NAME: all cases in $(elapsed "$T0")"
  exit 0
}
fatal() { fail "$*"; finish; }
show() { echo "  --- $1:"; sed 's/^/  | /' "$1" 2>/dev/null | tail -n "${2:-20}"; }

# wait_for SECONDS CMD...: runs CMD every 0.05 s until it succeeds (0) or SECONDS pass (1).
wait_for() {
  local limit=$(($1 * 1000000)) t=$EPOCHREALTIME
  shift
  until "$@"; do
    (($(( ${EPOCHREALTIME/./} - ${t/./} )) >= limit)) && return 1
    sleep 0.05
  done
}
until_true() { wait_for "$@"; } # the older scripts' name for it
has_line() { grep -qxF -- "$2" "$1" 2>/dev/null; }
has_text() { grep -qF -- "$2" "$1" 2>/dev/null; }
exited() { ! kill -0 "$1" 2>/dev/null; }
all_exited() { local p; for p in "${BG_PIDS[@]}"; do exited "$p" || return 1; done; }
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
has_lines() { [[ -f $1 ]] && (($(wc -l <"$1") >= $2)); }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { wait_for "${2:-10}" listening "$1"; }
wait_file() { wait_for "${2:-15}" test -e "$1"; }
wait_line() { wait_for "${3:-15}" has_line "$1" "$2"; }
wait_text() { wait_for "${3:-15}" has_text "$1" "$2"; }
wait_lines() { wait_for "${3:-20}" has_lines "$1" "$2"; }
# wait_exit SECONDS PID: waits for a background process of this shell; sets RC to its exit status
# (124 if it had to be killed at the deadline) and returns it. Not in $(...): a subshell cannot
# wait for it.
wait_exit() {
  if wait_for "$1" exited "$2"; then
    wait "$2"
    RC=$?
  else
    kill "$2" 2>/dev/null
    wait "$2" 2>/dev/null
    RC=124
  fi
  untrack "$2"
  return "$RC"
}
ready_or_dead() { [[ -e $1 ]] || exited "$2"; } # FILE PID

test_ca_and_cert() { # DIR: a test CA (ca.pem, ca.key) and a server certificate it signed for
  # localhost (server.pem, server.key) in DIR, valid two days
  (
    cd "$1"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost\n' >san.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null
  )
}

free_ports() { # N: prints N distinct free loopback ports
  "$PY" -c '
import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))' "$1"
}
free_port() { free_ports 1; }

track() { BG_PIDS+=("$1"); }
# kill_at_exit VAR...: at exit, kill the pids that these variables (or arrays) hold by then.
kill_at_exit() { on_exit "_kill_vars $*"; }
_kill_vars() {
  local v p
  for v; do
    local -n _pids=$v
    for p in "${_pids[@]}"; do [[ -z $p ]] || kill "$p" 2>/dev/null; done
    unset -n _pids
  done
  return 0
}
# start_subscriber [-a ARRAY] NAME CMD...: runs CMD (a `stompctl ... subscribe ...` command line) in
# the background with --ready-file $WORK/NAME.ready, stdout in $WORK/NAME.out, stderr in
# $WORK/NAME.err; SUB_PID is its pid (also appended to ARRAY; stopped at exit). Returns once it
# confirmed its subscription, 1 (and its stderr) if it did not within 10 s.
# http_get PORT PATH: GET http://127.0.0.1:PORT/PATH and print "STATUS BODY" (0 and the reason when
# nothing answered); never fails, so a test can assert on what it printed.
http_get() { /usr/bin/python3 -c '
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen("http://127.0.0.1:%s%s" % (sys.argv[1], sys.argv[2]), timeout=5)
    print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
except OSError as e:
    print(0, e)
' "$1" "$2"; }

# notify_listener SOCKET LOG: systemd's notify socket for a daemon started with NOTIFY_SOCKET=SOCKET;
# each notification becomes one line of LOG. Sets NOTIFY_PID (tracked: stopped at exit).
notify_listener() {
  /usr/bin/python3 "$ROOT_DIR/tests/support/notify_socket.py" "$1" "$2" &
  NOTIFY_PID=$!
  track "$NOTIFY_PID"
  wait_for 5 test -S "$1"
}

start_subscriber() {
  local name
  if [[ $1 == -a ]]; then
    local -n _list=$2
    shift 2
  else
    local _list=()
  fi
  name=$1
  shift
  "$@" --ready-file "$WORK/$name.ready" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SUB_PID=$!
  _list+=("$SUB_PID")
  track "$SUB_PID"
  wait_file "$WORK/$name.ready" 10 && return 0
  echo "subscriber $name not ready: $(cat "$WORK/$name.err")" >&2
  return 1
}
untrack() { # PID: it was stopped and reaped; its number may be reused by then
  local p keep=()
  for p in "${BG_PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  BG_PIDS=("${keep[@]}")
}
bg() { "$@" & BG_PID=$!; track "$BG_PID"; }
on_exit() { EXIT_STEPS+=("$*"); }
stop_pid() { # PID [SECONDS]: TERM, then KILL once SECONDS (default 5) have passed; reaps it
  kill -TERM "$1" 2>/dev/null
  wait_for "${2:-5}" exited "$1" || kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null || true
  untrack "$1"
  return 0
}

# embedded_broker BINARY PORT LOG [ARGS...]: stomp-broker on 127.0.0.1:PORT (stderr appended to
# LOG), stopped at exit unless stop_pid stopped it first; sets BROKER_PID. Fails (1) when it exits
# or does not listen within 10 s, with the end of LOG.
embedded_broker() {
  local bin=$1 port=$2 log=$3
  shift 3
  "$bin" --listen "127.0.0.1:$port" "$@" 2>>"$log" &
  BROKER_PID=$!
  track "$BROKER_PID"
  if ! wait_for 10 listening_or_dead "$port" "$BROKER_PID" || exited "$BROKER_PID"; then
    echo "$NAME: stomp-broker on port $port did not start:" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
}
listening_or_dead() { listening "$1" || exited "$2"; } # PORT PID
# start_broker DIR PORT: the embedded broker ($STOMP_BROKER) with its data in DIR; fatal if it fails.
start_broker() {
  mkdir -p "$1"
  embedded_broker "$STOMP_BROKER" "$2" "$1/broker.log" --data-dir "$1/data" || fatal "broker on port $2 did not start"
}
# start_kind KIND DIR PORT: a broker through broker.sh, stopped at exit (stop-all of DIR's parent).
stop_brokers_at_exit() { # ROOT
  local r
  for r in "${BROKER_ROOTS[@]}"; do [[ $r == "$1" ]] && return 0; done
  BROKER_ROOTS+=("$1")
}
start_kind() {
  stop_brokers_at_exit "$(dirname "$2")"
  bash "$BROKER" start "$@"
}
# start_cluster ROOT PORT...: a RabbitMQ cluster through broker.sh, stopped at exit.
start_cluster() {
  stop_brokers_at_exit "$1"
  bash "$BROKER" start-cluster rabbitmq "$@"
}
