#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions called from traps and wait_for look unreachable to it
# A three-node RabbitMQ cluster loses nothing with quorum queues (issue 11, item 23).
#   tests/integration/rabbitmq_cluster.sh [STOMPCTL]   (or STOMPCTL=... in the environment)
#
# The test starts its own cluster (broker.sh start-cluster: loopback only, its own epmd port, node
# names, directories and Erlang cookie; nodes boot in parallel). Two durable topic subscriptions,
# both declared through node 1 with stompctl as a daemon would (id + durable + client acks):
#   quorum:  -H x-queue-type:quorum (what `subscribe-headers: {x-queue-type: quorum}` sends); its
#            subscriber stays connected on a failover URL across the whole run;
#   classic: no extra header, RabbitMQ's default; declared, then its subscriber goes away.
# Node 1 (the home of the classic queue and the quorum queue's leader, checked) is SIGKILLed. Once
# the quorum queue has elected a leader on a surviving node, N messages go to each topic through
# node 2, each one receipted. The quorum subscriber must receive all N while node 1 is still down
# (0 lost). Node 1 then comes back, and the classic durable subscription is shown to have lost all
# N that the cluster receipted while its home node was down: the first message it delivers is a
# sentinel published after the restart.
NAME=rabbitmq_cluster
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
STOMPCTL=${1:-${STOMPCTL:-$ROOT_DIR/build/daemons/stompctl/stompctl}}
[[ -x $STOMPCTL ]] || { echo "FAIL: $NAME: no stompctl binary at $STOMPCTL" >&2; exit 2; }
N=10
QUORUM_TOPIC=/topic/cluster.quorum.$$ QUORUM_QUEUE=dk-cluster-quorum-$$
CLASSIC_TOPIC=/topic/cluster.classic.$$ CLASSIC_QUEUE=dk-cluster-classic-$$

read -r P1 P2 P3 < <(free_ports 3)
U1=stomp://guest:guest@127.0.0.1:$P1
U2=stomp://guest:guest@127.0.0.1:$P2
U3=stomp://guest:guest@127.0.0.1:$P3
FAILOVER="failover://($U1,$U2,$U3)?randomize=false&initialReconnectDelay=100&maxReconnectDelay=1000"
CL=$WORK/cluster
NODE1=rabbit-$P1@localhost

echo "$NAME: nodes on STOMP ports $P1 $P2 $P3, work dir $WORK"
if start_cluster "$CL" "$P1" "$P2" "$P3" >"$WORK/cluster.start" 2>&1; then
  pass "three-node cluster formed: $(tail -n 1 "$WORK/cluster.start")"
else
  show "$WORK/cluster.start" 60
  fatal "the cluster did not form"
fi

publish() { # URL TOPIC BODY: one publish; exit 0 only when its RECEIPT arrived
  timeout -k 5 30 "$STOMPCTL" --timeout 10 -u "$1" publish -t "$2" -m "$3"
}
queue_node() { # NODE_DIR QUEUE: the node that hosts QUEUE (a quorum queue's leader, a classic one's home)
  bash "$BROKER" ctl "$1" list_queues --no-table-headers name type leader pid 2>/dev/null |
    awk -F'\t' -v q="$2" '$1 == q { if ($2 == "quorum") print $3; else { sub(/^</, "", $4); sub(/\..*/, "", $4); print $4 } }'
}
leader_moved() { local n; n=$(queue_node "$CL/n2" "$QUORUM_QUEUE"); [[ -n $n && $n != "$NODE1" ]]; }
has_all() { # FILE PREFIX: lines PREFIX-1 .. PREFIX-N all present
  local i
  for ((i = 1; i <= N; i++)); do has_line "$1" "$2-$i" || return 1; done
}

# ---- the durable subscriptions, declared through node 1 ---------------------------------------
bg timeout -k 5 240 "$STOMPCTL" -v -u "$FAILOVER" subscribe -t "$QUORUM_TOPIC" --durable dk-quorum --ack client \
  -H x-queue-type:quorum -H "x-queue-name:$QUORUM_QUEUE" --wait 220 --ready-file "$WORK/quorum.ready" \
  >"$WORK/quorum.out" 2>"$WORK/quorum.err"
QSUB=$BG_PID
bg timeout -k 5 60 "$STOMPCTL" -u "$U1" subscribe -t "$CLASSIC_TOPIC" --durable dk-classic --ack client \
  -H "x-queue-name:$CLASSIC_QUEUE" -n 1 --wait 50 --ready-file "$WORK/classic.ready" \
  >"$WORK/classic.out" 2>"$WORK/classic.err"
CSUB=$BG_PID
if wait_file "$WORK/quorum.ready" 30 && wait_file "$WORK/classic.ready" 30; then
  pass "quorum and classic durable subscriptions confirmed"
else
  show "$WORK/quorum.err"; show "$WORK/classic.err"
  fatal "subscriptions not confirmed within 30 s"
fi
has_text "$WORK/quorum.err" "connected to stomp://127.0.0.1:$P1 " || { show "$WORK/quorum.err"; fatal "the quorum subscriber is not on node 1"; }

publish "$U2" "$QUORUM_TOPIC" warm >"$WORK/warm.q" 2>&1 || { show "$WORK/warm.q"; fatal "warm-up publish (quorum) not receipted"; }
publish "$U2" "$CLASSIC_TOPIC" warm >"$WORK/warm.c" 2>&1 || { show "$WORK/warm.c"; fatal "warm-up publish (classic) not receipted"; }
wait_line "$WORK/quorum.out" warm 15
qwarm=$?
wait_exit 15 "$CSUB"
rc=$RC
if ((qwarm == 0 && rc == 0)) && [[ $(cat "$WORK/classic.out") == warm ]]; then
  pass "both subscriptions receive through node 2 what was published; the classic subscriber went away"
else
  show "$WORK/quorum.out"; show "$WORK/classic.out"; show "$WORK/classic.err"
  fatal "warm-up messages not delivered"
fi

qnode=$(queue_node "$CL/n2" "$QUORUM_QUEUE")
cnode=$(queue_node "$CL/n2" "$CLASSIC_QUEUE")
if [[ $qnode == "$NODE1" && $cnode == "$NODE1" ]]; then
  pass "node 1 leads the quorum queue and is the classic queue's home"
else
  fatal "queues not on node 1 ($NODE1): quorum leader '$qnode', classic home '$cnode'"
fi

# ---- node 1 crashes -------------------------------------------------------------------------
bash "$BROKER" kill "$CL/n1" >"$WORK/kill.log" 2>&1 || { show "$WORK/kill.log"; fatal "could not kill node 1"; }
t_kill=$EPOCHREALTIME
pass "node 1 SIGKILLed"
# Publishing while the queue has no leader can make the STOMP plugin drop the connection (then no
# receipt: not a loss, a retry); the measured loss is of receipted messages, so publish once led.
if wait_for 30 leader_moved; then
  pass "the quorum queue elected a leader on $(queue_node "$CL/n2" "$QUORUM_QUEUE") in $(elapsed "$t_kill")"
else
  fatal "no new quorum leader 30 s after node 1 died"
fi

receipted=0
for ((i = 1; i <= N; i++)); do
  publish "$U2" "$QUORUM_TOPIC" "q-$i" >>"$WORK/publish.log" 2>&1 && receipted=$((receipted + 1))
  publish "$U2" "$CLASSIC_TOPIC" "c-$i" >>"$WORK/publish.log" 2>&1 && receipted=$((receipted + 1))
done
if ((receipted == 2 * N)); then
  pass "$N messages to each topic published through node 2, every one receipted"
else
  show "$WORK/publish.log"
  fatal "only $receipted of $((2 * N)) publishes receipted"
fi

if wait_for 60 has_all "$WORK/quorum.out" q; then
  pass "quorum: all $N delivered to the durable subscriber while node 1 is down (0 lost)" \
    "$(($(lines "$WORK/quorum.out") - N - 1)) redelivered copies"
else
  lost=0
  for ((i = 1; i <= N; i++)); do has_line "$WORK/quorum.out" "q-$i" || lost=$((lost + 1)); done
  show "$WORK/quorum.out"; show "$WORK/quorum.err"
  fail "quorum: $lost of $N receipted messages not delivered within 60 s"
fi
if has_text "$WORK/quorum.err" "connection to stomp://127.0.0.1:$P1 lost" &&
  grep -qE "connected to stomp://127.0.0.1:($P2|$P3) " "$WORK/quorum.err"; then
  pass "the quorum subscriber failed over from node 1 to a surviving node"
else
  show "$WORK/quorum.err"
  fail "the quorum subscriber's log does not show the failover"
fi
stop_pid "$QSUB"

# ---- node 1 returns; the classic subscription lost what was published meanwhile -------------
if bash "$BROKER" start rabbitmq "$CL/n1" "$P1" >"$WORK/restart.log" 2>&1; then
  pass "node 1 restarted: $(tail -n 1 "$WORK/restart.log")"
else
  show "$WORK/restart.log" 40
  fatal "node 1 did not restart"
fi
bg timeout -k 5 60 "$STOMPCTL" -u "$U1" subscribe -t "$CLASSIC_TOPIC" --durable dk-classic --ack client \
  -H "x-queue-name:$CLASSIC_QUEUE" -n 1 --wait 50 --ready-file "$WORK/classic2.ready" \
  >"$WORK/classic2.out" 2>"$WORK/classic2.err"
CSUB=$BG_PID
wait_file "$WORK/classic2.ready" 30 || { show "$WORK/classic2.err"; fatal "classic subscription not confirmed after node 1 returned"; }
publish "$U2" "$CLASSIC_TOPIC" sentinel >"$WORK/sentinel.log" 2>&1 || { show "$WORK/sentinel.log"; fatal "sentinel not receipted"; }
wait_exit 30 "$CSUB"
rc=$RC
if [[ $rc == 0 && $(cat "$WORK/classic2.out") == sentinel ]]; then
  pass "classic: the $N messages receipted while its home node was down are lost (the first delivery is the sentinel)"
else
  show "$WORK/classic2.out"; show "$WORK/classic2.err"
  fail "classic: expected only the sentinel (subscriber exit $rc); RabbitMQ kept what docs/brokers.md says it loses"
fi

finish
