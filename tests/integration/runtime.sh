#!/usr/bin/env bash
# The daemon runtime (docs/runtime.md) as stomp-jenkins uses it: --version, usage errors and
# --check-config exit statuses, systemd notification (READY=1 once subscribed, STOPPING=1) on a
# datagram socket this test owns, SIGTERM when idle ends the daemon promptly with status 0,
# SIGHUP names a changed setting that needs a restart, heartbeats on the bus, JSON log lines, and
# the original init scripts' way: `start-stop-daemon --start --exec BIN -- --daemonize --pidfile P`
# returns with the daemon running, and `--stop --pidfile P` stops it.
#   tests/integration/runtime.sh STOMP_BROKER STOMPCTL STOMP_JENKINS
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") sj=$(realpath "$3")
NAME=runtime
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
bpid= dpid= npid= spid=
on_exit '{ [[ -s $work/sj.pid ]] && kill "$(cat "$work/sj.pid")"; } 2>/dev/null; wait 2>/dev/null'
kill_at_exit dpid npid spid bpid
log_has() { grep -qF -- "$2" "$1"; }

# ---- command line -------------------------------------------------------------------------------
out=$("$sj" --version) && [[ $out =~ ^stomp-jenkins\ [0-9]+\.[0-9]+\.[0-9]+$ ]] \
  && pass "--version: $out" || bad "--version: $out"
rc=0; "$sj" --no-such-flag 2>"$work/usage.err" || rc=$?
[[ $rc == 2 ]] && pass "usage error exits 2 (not CLI11's 109)" || bad "usage error rc=$rc"
rc=0; "$sj" --log-format xml 2>/dev/null || rc=$?
[[ $rc == 2 ]] && pass "bad --log-format exits 2" || bad "--log-format xml rc=$rc"

bport=$(free_port)
url="stomp://127.0.0.1:$bport"
aport=$(free_port)
printf 'rserver: %s\njenkins-url: http://127.0.0.1:9\nheartbeat-interval: 1\nadmin-listen: 127.0.0.1:%s\njenkins-projects:\n  r: {project: x}\n' "$url" "$aport" >"$work/sj.yaml"
rc=0; "$sj" --check-config -c "$work/sj.yaml" >"$work/check.out" 2>&1 || rc=$?
[[ $rc == 0 ]] && log_has "$work/check.out" "configuration OK" && pass "--check-config on a good file: 0" || bad "check good rc=$rc $(cat "$work/check.out")"
sed 's/^jenkins-url:/jenkins-ulr:/' "$work/sj.yaml" >"$work/typo.yaml"
rc=0; "$sj" --check-config -c "$work/typo.yaml" 2>"$work/typo.err" || rc=$?
[[ $rc == 2 ]] && log_has "$work/typo.err" "jenkins-url: missing; \`jenkins-ulr\` on line 2 looks like a typo of it" \
  && pass "--check-config on a typo: 2 with did-you-mean" || bad "typo rc=$rc: $(cat "$work/typo.err")"

# stderr is the journal (JOURNAL_STREAM names its device:inode): priority prefixes, no timestamp.
: >"$work/journal.err"
rc=0; JOURNAL_STREAM=$(stat -c '%d:%i' "$work/journal.err") "$sj" -c "$work/typo.yaml" 2>>"$work/journal.err" || rc=$?
[[ $rc == 2 ]] && grep -q '^<3>stomp-jenkins: .*typo.yaml' "$work/journal.err" \
  && pass "stderr is the journal: <3> priority prefix and no timestamp" || bad "journal rc=$rc: $(cat "$work/journal.err")"
rc=0; JOURNAL_STREAM=1:1 "$sj" -c "$work/typo.yaml" 2>"$work/notjournal.err" || rc=$?
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z error stomp-jenkins: ' "$work/notjournal.err" \
  && pass "JOURNAL_STREAM of another file: plain lines with UTC timestamps" || bad "not journal: $(cat "$work/notjournal.err")"

# ---- the service: notify, heartbeat, reload, SIGTERM --------------------------------------------
"$broker" --listen "127.0.0.1:$bport" 2>"$work/broker.log" &
bpid=$!
until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$bport" 2>/dev/null
sock="$work/notify.sock"
notify_listener "$sock" "$work/notify.log"
npid=$NOTIFY_PID
"$stompctl" -u "$url" subscribe -t /topic/deploykit.heartbeats --events -n 1 --wait 20 --ready-file "$work/hb.ready" >"$work/hb.out" 2>"$work/hb.err" &
spid=$!
until_true 10 test -e "$work/hb.ready"
NOTIFY_SOCKET=$sock "$sj" -c "$work/sj.yaml" --log-format json 2>"$work/sj.log" &
dpid=$!
until_true 15 log_has "$work/notify.log" "READY=1" \
  && log_has "$work/notify.log" "STATUS=connected and subscribed" \
  && pass "READY=1 with STATUS once subscribed" || bad "no READY=1: $(cat "$work/notify.log" 2>/dev/null)"
wait "$spid" 2>/dev/null || true; spid=
r=$(http_get "$aport" /readyz); [[ $r == 200* ]] && pass "admin-listen: /readyz 200 once subscribed" || bad "readyz: $r"
r=$(http_get "$aport" /metrics)
[[ $r == 200* && $r == *stomp_jenkins_build_info* && $r == *stomp_jenkins_broker_connected\ 1* ]] \
  && pass "admin-listen: /metrics with build_info and broker_connected" || bad "metrics: ${r:0:300}"
grep -q '"type": *"heartbeat"' "$work/hb.out" && grep -q '"daemon": *"stomp-jenkins"' "$work/hb.out" \
  && pass "heartbeat event published on deploykit.heartbeats" || bad "heartbeat: $(cat "$work/hb.out" "$work/hb.err")"
"$PY" -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert lines and all({"ts", "level", "daemon", "msg"} <= set(l) for l in lines), lines[:2]
assert all(l["ts"].endswith("Z") and l["daemon"] == "stomp-jenkins" for l in lines)
' "$work/sj.log" && pass "--log-format json: every line has ts (UTC), level, daemon, msg" || bad "json logs: $(head -3 "$work/sj.log")"
sed -i 's|^jenkins-url: .*|jenkins-url: http://127.0.0.1:10|' "$work/sj.yaml"
kill -HUP "$dpid"
until_true 10 log_has "$work/sj.log" "jenkins-url: changed; takes effect after a restart" \
  && pass "SIGHUP names jenkins-url as needing a restart" || bad "reload: $(tail -3 "$work/sj.log")"
t0=$(date +%s%N)
kill -TERM "$dpid"
rc=0; wait "$dpid" || rc=$?; dpid=
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# A deadline, not a benchmark: a fixed sleep at shutdown (github-webhook's 3 s) fails it.
[[ $rc == 0 ]] && ((ms < 1000)) && pass "SIGTERM when idle: exit 0 after ${ms} ms" || bad "SIGTERM: rc=$rc after ${ms} ms"
until_true 5 log_has "$work/notify.log" "STOPPING=1" && pass "STOPPING=1 sent" || bad "no STOPPING=1"

# Not ready while the broker is unreachable: 503 with the reason.
dead=$(free_port) aport2=$(free_port)
printf 'rserver: stomp://127.0.0.1:%s\njenkins-url: http://127.0.0.1:9\nadmin-listen: 127.0.0.1:%s\n' "$dead" "$aport2" >"$work/dead.yaml"
"$sj" -c "$work/dead.yaml" 2>"$work/dead.log" &
dpid=$!
until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$aport2" 2>/dev/null
r=$(http_get "$aport2" /readyz); [[ $r == "503 "*"broker unreachable"* ]] && pass "/readyz 503 'broker unreachable' without a broker" || bad "readyz dead: $r"
r=$(http_get "$aport2" /livez); [[ $r == 200* ]] && pass "/livez 200 all the same" || bad "livez: $r"
kill -TERM "$dpid"; wait "$dpid" || true; dpid=

# ---- start-stop-daemon, as the original init script ---------------------------------------------
if command -v start-stop-daemon >/dev/null; then
  rc=0
  timeout 30 start-stop-daemon --start --pidfile "$work/sj.pid" --exec "$sj" -- --daemonize --pidfile "$work/sj.pid" -c "$work/sj.yaml" || rc=$?
  if [[ $rc == 0 && -s $work/sj.pid ]] && kill -0 "$(cat "$work/sj.pid")"; then
    pass "start-stop-daemon --start returns; the daemon in the pidfile runs"
  else
    bad "start-stop-daemon --start rc=$rc pidfile=$(cat "$work/sj.pid" 2>/dev/null)"
  fi
  pid=$(cat "$work/sj.pid" 2>/dev/null || echo 0)
  sid=$(ps -o sid= -p "$pid" | tr -d ' ')
  [[ -n $sid && $sid != "$pid" && $sid != "$(ps -o sid= -p $$ | tr -d ' ')" ]] \
    && pass "... detached: its own session, and not its leader (no terminal can be acquired)" || bad "daemon sid=$sid pid=$pid"
  rc=0; timeout 30 start-stop-daemon --stop --retry 10 --pidfile "$work/sj.pid" || rc=$?
  [[ $rc == 0 ]] && ! kill -0 "$pid" 2>/dev/null && pass "start-stop-daemon --stop stops it" || bad "stop rc=$rc"
  # Relative paths are the caller's, although the daemon runs in /.
  rc=0; (cd "$work" && timeout 30 "$sj" --daemonize --pidfile rel.pid -c sj.yaml) || rc=$?
  if [[ $rc == 0 && -s $work/rel.pid ]] && kill -0 "$(cat "$work/rel.pid")"; then
    pass "--daemonize with relative -c and --pidfile"; kill -TERM "$(cat "$work/rel.pid")"
  else
    bad "relative paths rc=$rc"
  fi
  rc=0; timeout 30 start-stop-daemon --start --pidfile "$work/sj2.pid" --exec "$sj" -- --daemonize --pidfile "$work/sj2.pid" -c "$work/typo.yaml" \
    2>"$work/daemon-typo.err" || rc=$?
  [[ $rc == 2 ]] && log_has "$work/daemon-typo.err" "looks like a typo" \
    && pass "--daemonize with a bad config: the starting command exits 2 with the reason" || bad "daemonize typo rc=$rc $(cat "$work/daemon-typo.err")"
else
  bad "start-stop-daemon not installed (dpkg provides it)"
fi
exit $fail
