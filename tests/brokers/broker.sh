#!/usr/bin/env bash
# Runs throwaway RabbitMQ / ActiveMQ brokers on loopback for tests, without systemd.
#   broker.sh start rabbitmq|activemq DIR STOMP_PORT
#   broker.sh stop DIR
#   broker.sh stop-all ROOT
# Recipes: /work/shared/reference/brokers.md. DIR keeps the broker's state between a stop and a
# new start (persistence tests); for RabbitMQ, `. DIR/env` before calling rabbitmqctl.
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

# One STOMP CONNECT; succeeds when the first line back is CONNECTED.
probe() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'CONNECT\naccept-version:1.0,1.1,1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0' >&3
    IFS= read -r -t 2 line <&3
    [[ $line == CONNECTED* ]]
  ) 2>/dev/null
}

write_rabbitmq() { # DIR STOMP_PORT
  local d=$1 port=$2 amqp dist epmd
  read -r amqp dist epmd < <(free_ports 3)
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
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
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
    rabbitmq) write_rabbitmq "$d" "$port"; deadline=60 ;;
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
  if grep -qs ERL_EPMD_PORT "$d/env"; then
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

non_epmd() { # DIR: our processes other than epmd (which outlives its node until told to stop)
  local p
  for p in $(marked_pids "$1"); do
    [[ $(cat "/proc/$p/comm" 2>/dev/null) == epmd ]] || echo "$p"
  done
}

case ${1:-} in
  start) (($# == 4)) || die "usage: broker.sh start rabbitmq|activemq|embedded DIR STOMP_PORT"; start "$2" "$3" "$4" ;;
  stop) (($# == 2)) || die "usage: broker.sh stop DIR"; stop "$2" ;;
  stop-all)
    (($# == 2)) || die "usage: broker.sh stop-all ROOT"
    for f in "$2"/*/pid; do
      if [[ -f $f ]]; then stop "$(dirname "$f")"; fi
    done
    ;;
  *) die "usage: broker.sh start rabbitmq|activemq|embedded DIR STOMP_PORT | stop DIR | stop-all ROOT" ;;
esac
