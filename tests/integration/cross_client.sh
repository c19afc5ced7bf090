#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions called from traps and wait_for look unreachable to it
# stompctl against the peer clients (stomp.py, ruby-stomp) through one real broker.
#   tests/integration/cross_client.sh rabbitmq|activemq [STOMPCTL binary or build dir]
# (or STOMPCTL=... in the environment; default build/daemons/stompctl/stompctl under the repo root).
# The work dir (broker dir, client logs) is removed on success unless KEEP_WORK=1; kept on failure.
#
# Cases, each on its own destination: stompctl -> py_peer / rb_peer and py_peer / rb_peer -> stompctl,
# with the peer at STOMP 1.0 and 1.2 (stompctl negotiates, i.e. 1.2 on both brokers); stompctl in
# --protocol 1.0 mode against 1.0 peers; and stompctl subscribing with --ack client-individual (1.2
# and 1.0 ACK frames) on a queue, followed by a check that nothing it acknowledged comes back.
# Every case asserts the exact bodies, in order. Prints PASS/FAIL per case; exits non-zero on any failure.
set -uo pipefail

KIND=${1:-}
[[ $KIND == rabbitmq || $KIND == activemq || $KIND == embedded ]] || { echo "usage: $0 rabbitmq|activemq|embedded [STOMPCTL]" >&2; exit 2; }
NAME=cross-client-$KIND
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
STOMPCTL=${2:-${STOMPCTL:-$ROOT_DIR/build/daemons/stompctl/stompctl}}
[[ -d $STOMPCTL ]] && STOMPCTL=$STOMPCTL/daemons/stompctl/stompctl # a build dir
[[ -x $STOMPCTL ]] || { echo "FAIL: no stompctl binary at $STOMPCTL" >&2; exit 2; }
N=5 # messages per case
CASES=0
# At exit: the clients in BG_PIDS (each stompctl runs under `timeout -k 5`) by pid, then the
# brokers below $WORK (broker.sh stop-all); the work dir goes only if all passed and all stopped.
stop_brokers_at_exit "$WORK"

peer_cmd() { # py|rb: the peer's command line as words
  case $1 in
    py) echo "$PY $ROOT_DIR/tests/peers/py_peer.py" ;;
    rb) echo "ruby $ROOT_DIR/tests/peers/rb_peer.rb" ;;
  esac
}

# stompctl publishes N distinct bodies (one stompctl run each, so their order is fixed) to a peer
# subscriber; the peer must print exactly those bodies.
#   to_peer NAME PEER VERSION [stompctl global options...]
to_peer() {
  local name=$1 peer=$2 ver=$3 t=$EPOCHREALTIME
  shift 3
  local dir=$WORK/$name dest=/topic/xc.$name i rc ok=true
  mkdir -p "$dir"
  CASES=$((CASES + 1))
  # shellcheck disable=SC2046
  $(peer_cmd "$peer") subscribe --port "$PORT" --dest "$dest" --count "$N" --version "$ver" \
    --ready-file "$dir/ready" --timeout 40 >"$dir/peer.out" 2>"$dir/peer.err" &
  local sub=$!
  BG_PIDS+=("$sub")
  if ! wait_for 20 ready_or_dead "$dir/ready" "$sub" || [[ ! -e $dir/ready ]]; then
    show "$dir/peer.err"
    fail "$name: ${peer}_peer subscriber (STOMP $ver) not ready"
    kill "$sub" 2>/dev/null
    return
  fi
  : >"$dir/expected"
  for ((i = 0; i < N; i++)); do
    local body="$name #$i: héllo wörld"
    echo "$body" >>"$dir/expected"
    timeout -k 5 20 "$STOMPCTL" "$@" -u "$URL" publish -t "$dest" -m "$body" >>"$dir/pub.out" 2>&1
    rc=$?
    ((rc == 0)) || { ok=false; echo "stompctl publish #$i exited $rc" >>"$dir/pub.out"; }
  done
  wait_exit 15 "$sub"
  rc=$RC
  if $ok && ((rc == 0)) && cmp -s "$dir/expected" "$dir/peer.out"; then
    pass "$name: stompctl${*:+ $*} -> ${peer}_peer (STOMP $ver): $N exact bodies in order ($(elapsed "$t"))"
  else
    show "$dir/pub.out"; show "$dir/peer.err"
    echo "  --- expected vs received:"; diff "$dir/expected" "$dir/peer.out" | sed 's/^/  | /'
    fail "$name: stompctl${*:+ $*} -> ${peer}_peer (STOMP $ver): publish ok=$ok, peer exit $rc"
  fi
}

# A peer publishes N bodies (PREFIX0..PREFIX<N-1>, each with a receipt) to a stompctl subscriber,
# which must print exactly those.
#   from_peer NAME PEER VERSION DEST "stompctl global options" "stompctl subscribe options"
from_peer() {
  local name=$1 peer=$2 ver=$3 dest=$4 t=$EPOCHREALTIME
  local -a gopts subopts
  read -r -a gopts <<<"$5"
  read -r -a subopts <<<"$6"
  local dir=$WORK/$name prefix="$name: ünïcode+colon:" i rc prc
  mkdir -p "$dir"
  CASES=$((CASES + 1))
  timeout -k 5 60 "$STOMPCTL" -v "${gopts[@]}" -u "$URL" subscribe -t "$dest" -n "$N" --wait 40 "${subopts[@]}" \
    --ready-file "$dir/ready" >"$dir/sub.out" 2>"$dir/sub.err" &
  local sub=$!
  BG_PIDS+=("$sub")
  if ! wait_for 20 ready_or_dead "$dir/ready" "$sub" || [[ ! -e $dir/ready ]]; then
    show "$dir/sub.err"
    fail "$name: stompctl subscriber not ready"
    kill "$sub" 2>/dev/null
    return
  fi
  : >"$dir/expected"
  for ((i = 0; i < N; i++)); do echo "$prefix$i" >>"$dir/expected"; done
  # shellcheck disable=SC2046
  timeout -k 5 40 $(peer_cmd "$peer") publish --port "$PORT" --dest "$dest" --count "$N" --version "$ver" \
    --body-prefix "$prefix" --timeout 30 >"$dir/peer.out" 2>"$dir/peer.err"
  prc=$?
  wait_exit 15 "$sub"
  rc=$RC
  local what="${peer}_peer (STOMP $ver) -> stompctl${5:+ $5} subscribe${6:+ $6}"
  if ((prc == 0 && rc == 0)) && [[ $(cat "$dir/peer.out") == "published $N" ]] && cmp -s "$dir/expected" "$dir/sub.out"; then
    pass "$name: $what: $N exact bodies in order ($(elapsed "$t"))"
  else
    show "$dir/peer.out"; show "$dir/peer.err"; show "$dir/sub.err"
    echo "  --- expected vs received:"; diff "$dir/expected" "$dir/sub.out" | sed 's/^/  | /'
    fail "$name: $what: peer exit $prc, stompctl exit $rc"
  fi
}

# After a client-individual case on a queue: nothing stompctl acknowledged may be delivered again.
# A sentinel goes in after the acking subscriber has gone; a fresh subscriber must get the
# sentinel first (anything unacknowledged would have been requeued ahead of it).
#   no_redelivery NAME DEST
no_redelivery() {
  local name=$1 dest=$2 dir=$WORK/$1 rc t=$EPOCHREALTIME
  CASES=$((CASES + 1))
  timeout -k 5 20 "$STOMPCTL" -u "$URL" publish -t "$dest" -m "$name sentinel" >"$dir/sentinel.out" 2>&1
  rc=$?
  timeout -k 5 30 "$STOMPCTL" -u "$URL" subscribe -t "$dest" -n 1 --wait 20 --prefetch 1 --json \
    >"$dir/after.out" 2>"$dir/after.err"
  local src=$?
  if ((rc == 0 && src == 0)) && [[ $(wc -l <"$dir/after.out") == 1 ]] &&
    grep -qF "\"body\":\"$name sentinel\"" "$dir/after.out" && grep -qF '"redelivered":false' "$dir/after.out"; then
    pass "$name: nothing acknowledged came back: the next subscriber got only the sentinel ($(elapsed "$t"))"
  else
    show "$dir/sentinel.out"; show "$dir/after.out"; show "$dir/after.err"
    fail "$name: after the client-individual run: sentinel publish exit $rc, next subscriber exit $src"
  fi
}

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=stomp://guest:guest@127.0.0.1:$PORT
echo "cross_client: $KIND on 127.0.0.1:$PORT, stompctl $STOMPCTL, work dir $WORK"
"$BROKER" start "$KIND" "$WORK/broker" "$PORT" || { fail "broker did not start"; exit 1; }

# Names become destination names: dots only (RabbitMQ refuses '/' inside a topic name).
for peer in py rb; do
  for ver in 1.0 1.2; do
    to_peer "to-$peer-${ver/./}" "$peer" "$ver"
    from_peer "from-$peer-${ver/./}" "$peer" "$ver" "/topic/xc.from-$peer-${ver/./}" "" ""
  done
done
# stompctl as the original system's 1.0-only client did it.
to_peer to-py-10-legacy py 1.0 --protocol 1.0
from_peer from-rb-10-legacy rb 1.0 /topic/xc.from-rb-10-legacy "--protocol 1.0" ""
# client-individual: ACK by `ack` header (1.2) and by message-id + subscription (1.0).
from_peer ci-12 py 1.2 /queue/xc.ci-12 "" "--ack client-individual"
no_redelivery ci-12 /queue/xc.ci-12
from_peer ci-10 rb 1.0 /queue/xc.ci-10 "--protocol 1.0" "--ack client-individual"
no_redelivery ci-10 /queue/xc.ci-10

if ((FAILS)); then
  echo "FAIL: $KIND cross-client: $FAILS of $CASES case(s) failed in $(elapsed "$T0") (logs kept in $WORK)"
  exit 1
fi
echo "PASS: $KIND cross-client: all $CASES cases in $(elapsed "$T0")"
exit 0
