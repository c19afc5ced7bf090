# shellcheck shell=bash
# Sourced by bench/commit_path_bench.sh, hook_bench.sh and fetch_bench.sh: binary paths, a quiet
# machine, a private git configuration, free loopback ports.
#
# Binaries: BIN_DIR (a directory holding stomp-git, stomp-broker, stompctl and
# stomp-post-receive, e.g. a copy taken before a rebuild) or each one through STOMP_GIT,
# STOMP_BROKER, STOMPCTL, STOMP_POST_RECEIVE; by default the build tree's.
# QUIET_LOAD (1.5) and QUIET_WAIT (600 s): before each measurement, wait until the 1-minute load
# average is below QUIET_LOAD, at most QUIET_WAIT seconds, then run anyway and say so.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3

bench_binaries() {
  local b=$BENCH_ROOT/build
  if [[ -n ${BIN_DIR:-} ]]; then
    STOMP_GIT=${STOMP_GIT:-$BIN_DIR/stomp-git}
    STOMP_BROKER=${STOMP_BROKER:-$BIN_DIR/stomp-broker}
    STOMPCTL=${STOMPCTL:-$BIN_DIR/stompctl}
    STOMP_POST_RECEIVE=${STOMP_POST_RECEIVE:-$BIN_DIR/stomp-post-receive}
  fi
  STOMP_GIT=${STOMP_GIT:-$b/daemons/stomp-git/stomp-git}
  STOMP_BROKER=${STOMP_BROKER:-$b/daemons/stomp-broker/stomp-broker}
  STOMPCTL=${STOMPCTL:-$b/daemons/stompctl/stompctl}
  STOMP_POST_RECEIVE=${STOMP_POST_RECEIVE:-$b/hooks/post-receive/stomp-post-receive}
  export STOMP_GIT STOMP_BROKER STOMPCTL STOMP_POST_RECEIVE
}

need_binaries() { # NAME...: each a variable holding an executable's path
  local v
  for v in "$@"; do
    [[ -x ${!v} ]] || { echo "$(basename "$0"): no executable $v at '${!v}' (set BIN_DIR or $v)" >&2; exit 2; }
  done
}

# Waits (polling every 5 s) until the 1-minute load average is below QUIET_LOAD, at most QUIET_WAIT
# seconds. Prints what it found on stderr and sets LOAD_NOTE for the results.
wait_quiet() { # LABEL
  local limit=${QUIET_LOAD:-1.5} end=$((SECONDS + ${QUIET_WAIT:-600})) load waited=$SECONDS
  while :; do
    read -r load _ </proc/loadavg
    if "$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$load" "$limit"; then
      LOAD_NOTE="load $load at start of $1 (waited $((SECONDS - waited)) s)"
      break
    fi
    if ((SECONDS >= end)); then
      LOAD_NOTE="load $load at start of $1: still >= $limit after ${QUIET_WAIT:-600} s, ran anyway"
      break
    fi
    sleep 5
  done
  echo "$(basename "$0"): $LOAD_NOTE" >&2
}

# A private git configuration (no ~/.gitconfig, no system one) with a fixed identity.
bench_git_env() { # DIR
  export GIT_CONFIG_GLOBAL=$1/gitconfig GIT_CONFIG_NOSYSTEM=1
  export GIT_AUTHOR_NAME="Bench Dev" GIT_AUTHOR_EMAIL=bench@example.com
  export GIT_COMMITTER_NAME="Bench Dev" GIT_COMMITTER_EMAIL=bench@example.com
  git config --global init.defaultBranch master
  git config --global safe.directory '*'
  git config --global gc.auto 0 # no background gc in the middle of a measurement
}

free_ports() { # N: prints N free loopback TCP ports
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

until_true() { # SECONDS COMMAND...: poll a condition with a deadline
  local end=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < end)) || return 1; sleep 0.05; done
}

now() { echo "$EPOCHREALTIME"; } # CLOCK_REALTIME, the clock python's time.time() reads

# Appends the load average at the end of a measurement to LOAD_NOTE (other builds may have started).
note_end_load() {
  local load
  read -r load _ </proc/loadavg
  LOAD_NOTE="$LOAD_NOTE; load $load at the end"
}
