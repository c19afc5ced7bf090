#!/usr/bin/env bash
# Runs throwaway RabbitMQ / ActiveMQ brokers on loopback for tests, without systemd.
#   broker.sh start rabbitmq|activemq DIR STOMP_PORT
#   broker.sh stop DIR
#   broker.sh stop-all ROOT
#   broker.sh start-cluster rabbitmq ROOT STOMP_PORT...   (one clustered RabbitMQ node per port)
#   broker.sh kill DIR                                     (SIGKILL a node: a crash, not a shutdown)
#   broker.sh ctl DIR ARGS...                              (rabbitmqctl for that node, 30 s deadline)
# Recipes: /work/shared/reference/brokers.md. DIR keeps the broker's state between a stop and a
# new start (persistence tests); for RabbitMQ, `. DIR/env` before calling rabbitmqctl.
# A cluster lives in ROOT: nodes ROOT/n1..nN (node n1 is the one the others joined), one epmd on
# its own port and one Erlang cookie shared by the nodes and by nothing else on the machine.
# `start rabbitmq ROOT/nK PORT` restarts a stopped or killed member with its name and data;
# `stop-all ROOT` stops the nodes (in parallel) and then the cluster's epmd.
set -euo pipefail

PY=/usr/bin/python3
die() { echo "broker: $*" >&2; exit 1; }

# Every process we start carries BROKER_SH_DIR=<abs DIR> in its environment; epmd and beam.smp inherit it
# too (epmd daemonizes out of our process group), so stop can find exactly our processes and no others.
marked_pids() {
  grep -lzx "BROKER_SH_DIR=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true
}

free_ports() { # prints N free loopback TCP ports
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Only 0-2 for a broker and its children: a broker (or the epmd it starts) that outlived its caller
# with the caller's descriptors would keep them open, e.g. the build lock of a `flock LOCK broker.sh`.
close_inherited_fds() {
  local f fd
  for f in /proc/"$BASHPID"/fd/*; do
    fd=${f##*/}
    if ((fd > 2)); then exec {fd}>&-; fi
  done 2>/dev/null
}

# One STOMP CONNECT; succeeds when the first line back is CONNECTED.
probe() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'CONNECT\naccept-version:1.0,1.1,1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0' >&3
    IFS= read -r -t 2 line <&3
    [[ $line == CONNECTED* ]]
  ) 2>/dev/null
}

write_rabbitmq() { # DIR STOMP_PORT [EPMD_PORT: a cluster's shared epmd, started by the caller]
  local d=$1 port=$2 amqp dist epmd erl_args="-kernel inet_dist_use_interface {127,0,0,1}"
  read -r amqp dist epmd < <(free_ports 3)
  if [[ -n ${3:-} ]]; then
    epmd=$3
    erl_args+=" -start_epmd false" # the cluster's epmd, never one of the node's own that outlives it
  fi
  mkdir -p "$d/home" "$d/mnesia" "$d/log"
  echo '[rabbitmq_stomp].' >"$d/enabled_plugins"
  cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$amqp
stomp.listeners.tcp.1 = 127.0.0.1:$port
stomp.default_user = guest
stomp.default_pass = guest
log.console = true
log.console.level = warning
log.file = false
EOF
  # Extra rabbitmq.conf lines from the caller (e.g. a TLS STOMP listener for the TLS test).
  if [[ -n ${RABBITMQ_EXTRA_CONF:-} ]]; then printf '%s\n' "$RABBITMQ_EXTRA_CONF" >>"$d/rabbitmq.conf"; fi
  # Own epmd port per node: its epmd can be stopped without touching any other Erlang node's.
  cat >"$d/env" <<EOF
export HOME=$d/home RABBITMQ_NODENAME=rabbit-$port@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_DIST_PORT=$dist ERL_EPMD_PORT=$epmd ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$erl_args"
export RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins
export RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log RABBITMQ_PID_FILE=$d/rabbit.pid RABBITMQ_LOGS=-
EOF
}

write_activemq() { # DIR STOMP_PORT
  local d=$1 port=$2
  mkdir -p "$d/conf" "$d/data" "$d/tmp"
  cp /etc/activemq/instances-available/main/log4j2.properties "$d/conf/"
  # Debian's activemq ships log4j 1.2, which ignores log4j2.properties: this sends INFO to broker.log.
  printf '%s\n' 'log4j.rootLogger=INFO, out' 'log4j.appender.out=org.apache.log4j.ConsoleAppender' \
    'log4j.appender.out.layout=org.apache.log4j.PatternLayout' \
    'log4j.appender.out.layout.ConversionPattern=%d{HH:mm:ss,SSS} %-5p %m%n' >"$d/conf/log4j.properties"
  cat >"$d/conf/activemq.xml" <<'EOF'
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <bean class="org.springframework.beans.factory.config.PropertyPlaceholderConfigurer"/>
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="localhost"
          useJmx="false" persistent="true" dataDirectory="${activemq.data}">
    <persistenceAdapter>
      <kahaDB directory="${activemq.data}/kahadb"/>
    </persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp"
        uri="stomp://127.0.0.1:${stomp.port}?transport.defaultHeartBeat=${stomp.defaultHeartBeat}"/>
    </transportConnectors>
  </broker>
</beans>
EOF
  : >"$d/env"
}

start() { # KIND DIR STOMP_PORT
  local kind=$1 d=$2 port=$3 deadline pid t0
  [[ $port =~ ^[0-9]+$ ]] || die "bad port '$port'"
  mkdir -p "$d"
  d=$(cd "$d" && pwd -P)
  [[ -n $(marked_pids "$d") ]] && die "a broker is already running in $d"
  # Otherwise the readiness probe could be answered by whoever already listens there.
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "127.0.0.1:$port is already in use"
  case $kind in
    rabbitmq)
      # A cluster member keeps its name, ports, cookie and epmd across restarts.
      [[ -f $d/cluster ]] || write_rabbitmq "$d" "$port"
      deadline=60
      ;;
    activemq) write_activemq "$d" "$port"; deadline=30 ;;
    embedded)
      # Our stomp-broker: STOMP_BROKER names the binary (default: the build tree's).
      [[ -x ${STOMP_BROKER:-} ]] || STOMP_BROKER=$(cd "$(dirname "$0")/../.." && pwd)/build/daemons/stomp-broker/stomp-broker
      [[ -x $STOMP_BROKER ]] || die "stomp-broker binary not found (set STOMP_BROKER)"
      : >"$d/env"
      deadline=10
      ;;
    *) die "unknown broker kind '$kind' (rabbitmq|activemq|embedded)" ;;
  esac
  t0=$EPOCHREALTIME
  # setsid: own session and process group, detached from the caller's terminal.
  (
    close_inherited_fds
    export BROKER_SH_DIR=$d
    # shellcheck disable=SC1091
    . "$d/env"
    if [[ $kind == rabbitmq ]]; then
      exec setsid /usr/lib/rabbitmq/bin/rabbitmq-server
    elif [[ $kind == embedded ]]; then
      exec setsid "$STOMP_BROKER" --listen "127.0.0.1:$port" --data-dir "$d/data"
    else
      exec setsid java -Xms64m -Xmx512m -Djava.awt.headless=true -Dactivemq.home=/usr/share/activemq \
        -Dactivemq.base="$d" -Dactivemq.conf="$d/conf" -Dactivemq.data="$d/data" -Djava.io.tmpdir="$d/tmp" \
        -Dstomp.port="$port" -Dstomp.defaultHeartBeat=0,0 \
        -Dlog4j2.configurationFile="$d/conf/log4j2.properties" -Dlog4j.configuration="file:$d/conf/log4j.properties" \
        -jar /usr/share/activemq/bin/activemq.jar start "xbean:file:$d/conf/activemq.xml"
    fi
  ) </dev/null >"$d/broker.log" 2>&1 &
  pid=$!
  echo "$pid" >"$d/pid"
  while ! probe "$port"; do
    local why=
    kill -0 "$pid" 2>/dev/null || why="exited early"
    [[ -z $why ]] && (($(elapsed_us "$t0") >= deadline * 1000000)) && why="not ready after ${deadline}s"
    if [[ -n $why ]]; then
      echo "broker: $kind on port $port $why; last lines of $d/broker.log:" >&2
      tail -n 40 "$d/broker.log" >&2
      stop "$d" >/dev/null
      exit 1
    fi
    sleep 0.2
  done
  local us
  us=$(elapsed_us "$t0")
  echo "broker: $kind ready on 127.0.0.1:$port (pid $pid) in $((us / 1000000)).$((us / 100000 % 10))s"
}

elapsed_us() { # microseconds since $1 (an $EPOCHREALTIME value)
  local now=$EPOCHREALTIME
  echo $((${now/./} - ${1/./}))
}

stop() { # DIR
  [[ -d $1 ]] || { echo "broker: no such dir $1"; return 0; }
  local d pid i
  d=$(cd "$1" && pwd -P)
  pid=$(cat "$d/pid" 2>/dev/null || true)
  if [[ -z $(marked_pids "$d") ]]; then
    rm -f "$d/pid"
    echo "broker: nothing running in $d"
    return 0
  fi
  # Graceful first: the rabbitmq-server script forwards TERM to beam.smp; java runs its shutdown hook.
  if [[ -n $pid ]] && marked_pids "$d" | grep -qx "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
  fi
  for ((i = 0; i < 75 && $(non_epmd "$d" | wc -l) > 0; i++)); do sleep 0.2; done # up to 15 s
  if grep -qs ERL_EPMD_PORT "$d/env" && [[ ! -f $d/cluster ]]; then # a cluster's epmd is stopped with it
    # shellcheck disable=SC1091
    (. "$d/env" && epmd -kill >/dev/null 2>&1) || true # epmd refuses while a node is still registered
  fi
  for ((i = 0; i < 10; i++)); do
    [[ -z $(marked_pids "$d") ]] && break
    ((i < 5)) || marked_pids "$d" | xargs -r kill -KILL 2>/dev/null || true
    sleep 0.2
  done
  [[ -z $(marked_pids "$d") ]] || die "processes still alive in $d: $(marked_pids "$d" | xargs)"
  rm -f "$d/pid"
  echo "broker: stopped $d"
}

kill_node() { # DIR: SIGKILL the node's processes (not a shared epmd), as a crash or power loss would
  local d i
  d=$(cd "$1" && pwd -P)
  [[ -n $(non_epmd "$d") ]] || die "nothing running in $d"
  non_epmd "$d" | xargs -r kill -KILL 2>/dev/null || true
  for ((i = 0; i < 50 && $(non_epmd "$d" | wc -l) > 0; i++)); do sleep 0.1; done
  [[ -z $(non_epmd "$d") ]] || die "processes still alive in $d after SIGKILL: $(non_epmd "$d" | xargs)"
  rm -f "$d/pid"
  echo "broker: killed $d"
}

# rabbitmqctl against the node in DIR (its cookie, epmd and name), ended after TIMEOUT_S seconds.
ctl() { # DIR TIMEOUT_S ARGS...
  local d=$1 t=$2
  shift 2
  # shellcheck disable=SC1091
  (. "$d/env" && exec timeout -k 5 "$t" /usr/lib/rabbitmq/bin/rabbitmqctl -q "$@")
}

start_cluster() { # ROOT PORT...
  local root=$1 i n=$(($# - 1)) epmd cookie t0 d seed pids=() failed=0
  shift
  ((n >= 2)) || die "a cluster needs at least two ports"
  mkdir -p "$root"
  root=$(cd "$root" && pwd -P)
  [[ -f $root/epmd.pid ]] && die "a cluster is already running in $root"
  t0=$EPOCHREALTIME
  read -r epmd < <(free_ports 1)
  cookie=$(head -c 15 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  # The cluster's epmd, marked like our other processes (stop-all finds it by ROOT).
  (
    close_inherited_fds
    export BROKER_SH_DIR=$root ERL_EPMD_PORT=$epmd ERL_EPMD_ADDRESS=127.0.0.1
    exec setsid epmd
  ) </dev/null >"$root/epmd.log" 2>&1 &
  echo "$!" >"$root/epmd.pid"
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$epmd") 2>/dev/null && break
    sleep 0.05
  done
  ((i < 100)) || { stop_all "$root" >/dev/null; die "epmd did not listen on 127.0.0.1:$epmd"; }
  i=0
  for port in "$@"; do
    i=$((i + 1))
    d=$root/n$i
    [[ $port =~ ^[0-9]+$ ]] || die "bad port '$port'"
    mkdir -p "$d"
    write_rabbitmq "$d" "$port" "$epmd"
    (umask 077 && printf '%s' "$cookie" >"$d/home/.erlang.cookie") # Erlang refuses a cookie others can read
    ((i == 1)) && seed=rabbit-$port@localhost
    echo "$seed" >"$d/cluster"
  done
  # All nodes boot at once (the longest step); then n2..nN join n1, also at once. Joining at boot
  # (classic_config peer discovery) races when every node starts together: two may each find no
  # running peer and form clusters of one.
  i=0
  for port in "$@"; do
    i=$((i + 1))
    (start rabbitmq "$root/n$i" "$port") >"$root/n$i.start" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed=1; done
  cat "$root"/n*.start
  if ((failed)); then stop_all "$root" >/dev/null; die "cluster nodes did not start"; fi
  pids=()
  i=0
  for port in "$@"; do
    i=$((i + 1))
    ((i == 1)) && continue
    (
      set -e
      d=$root/n$i
      ctl "$d" 60 stop_app
      ctl "$d" 60 join_cluster "$seed"
      ctl "$d" 60 start_app
      for ((k = 0; k < 300; k++)); do probe "$port" && exit 0; sleep 0.1; done
      echo "broker: node $i (STOMP port $port) not answering after it joined"
      exit 1
    ) >"$root/n$i.join" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed=1; done
  if ((failed)); then
    cat "$root"/n*.join >&2
    stop_all "$root" >/dev/null
    die "nodes did not join $seed"
  fi
  local running
  running=$(ctl "$root/n1" 30 eval 'length(rabbit_nodes:all_running()).' 2>&1)
  if [[ $running != "$n" ]]; then
    stop_all "$root" >/dev/null
    die "cluster of $seed has '$running' running nodes, expected $n"
  fi
  local us
  us=$(elapsed_us "$t0")
  echo "broker: rabbitmq cluster of $n nodes ready in $root (epmd 127.0.0.1:$epmd) in $((us / 1000000)).$((us / 100000 % 10))s"
}

stop_all() { # ROOT: every broker below ROOT (in parallel), then a cluster's epmd
  local f pids=() p rc=0 i
  for f in "$1"/*/pid; do
    if [[ -f $f ]]; then
      (stop "$(dirname "$f")") &
      pids+=($!)
    fi
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  if [[ -f $1/epmd.pid ]]; then
    local root
    root=$(cd "$1" && pwd -P)
    marked_pids "$root" | xargs -r kill -TERM 2>/dev/null || true
    for ((i = 0; i < 50 && $(marked_pids "$root" | wc -l) > 0; i++)); do sleep 0.1; done
    marked_pids "$root" | xargs -r kill -KILL 2>/dev/null || true
    rm -f "$1/epmd.pid"
  fi
  return $rc
}

non_epmd() { # DIR: our processes other than epmd (which outlives its node until told to stop)
  local p
  for p in $(marked_pids "$1"); do
    [[ $(cat "/proc/$p/comm" 2>/dev/null) == epmd ]] || echo "$p"
  done
}

case ${1:-} in
  start) (($# == 4)) || die "usage: broker.sh start rabbitmq|activemq|embedded DIR STOMP_PORT"; start "$2" "$3" "$4" ;;
  stop) (($# == 2)) || die "usage: broker.sh stop DIR"; stop "$2" ;;
  stop-all) (($# == 2)) || die "usage: broker.sh stop-all ROOT"; stop_all "$2" ;;
  start-cluster)
    if (($# < 4)) || [[ $2 != rabbitmq ]]; then die "usage: broker.sh start-cluster rabbitmq ROOT STOMP_PORT STOMP_PORT..."; fi
    start_cluster "${@:3}"
    ;;
  kill) (($# == 2)) || die "usage: broker.sh kill DIR"; kill_node "$2" ;;
  ctl) (($# >= 3)) || die "usage: broker.sh ctl DIR RABBITMQCTL_ARGS..."; ctl "$2" 30 "${@:3}" ;;
  *) die "usage: broker.sh start rabbitmq|activemq|embedded DIR STOMP_PORT | stop DIR | stop-all ROOT | start-cluster rabbitmq ROOT PORT... | kill DIR" ;;
esac
