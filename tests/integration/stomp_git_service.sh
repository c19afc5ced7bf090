#!/usr/bin/env bash
# stomp-git as a service on the runtime (docs/stomp-git.md, docs/runtime.md): READY=1 once
# subscribed (on a notify socket this test owns), admin-listen (/metrics, /livez, /readyz, 503
# with the reason without a broker), heartbeats on deploykit.heartbeats, SIGHUP naming `rserver` as
# needing a restart, replay-cache (a signed event replayed after a restart is refused and
# counted), and SIGTERM when idle ending the daemon promptly with status 0.
#   tests/integration/stomp_git_service.sh STOMP_BROKER STOMPCTL STOMP_GIT
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") sgit=$(realpath "$3")
PY=/usr/bin/python3
NAME=stomp_git_service
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
bpid= gpid= npid= spid= cpid=
kill_at_exit gpid npid spid cpid bpid
log_has() { grep -qF -- "$2" "$1"; }
metric() { local m; m=$(http_get "$aport" /metrics); grep -F -- "$1" <<<"$m" | awk '{print $NF}' | head -1; }
metrics_have() { local m; m=$(http_get "$aport" /metrics); grep -q "^$1" <<<"$m"; }  # a line starting with this (a regex)
readyz_like() { [[ $(http_get "$aport" /readyz) == $1 ]]; }
git_sandbox "$work"

# A repository and the clone stomp-git keeps (normal mode, as the daemon's own user).
git init -q --bare "$work/origin/site.git"
git clone -q "$work/origin/site.git" "$work/dev" 2>/dev/null
(cd "$work/dev" && echo v1 >f && git add . && git commit -qm one && git push -q origin master 2>/dev/null)
git clone -q "$work/origin/site.git" "$work/clone"
mkdir -m 700 "$work/state"
printf 'k1 0123456789abcdef0123\n' >"$work/bus.key"
chmod 600 "$work/bus.key"

bport=$(free_port) aport=$(free_port)
url="stomp://127.0.0.1:$bport"
cat >"$work/sg.yaml" <<YAML
rserver: $url
safety-fetch-interval: 0
state-dir: $work/state
durable-name: sgit-svc
require-signatures: true
verify-key-file: $work/bus.key
replay-cache: $work/state/replay-cache
heartbeat-interval: 1
admin-listen: 127.0.0.1:$aport
repo-list:
  site: {repo: $work/clone}
YAML
rc=0; "$sgit" --check-config -c "$work/sg.yaml" >"$work/check.out" 2>&1 || rc=$?
[[ $rc == 0 ]] && pass "--check-config with admin-listen, heartbeat-interval and replay-cache" || bad "check rc=$rc $(cat "$work/check.out")"
sed 's/^replay-cache:/replay-cahce:/' "$work/sg.yaml" >"$work/typo.yaml"
rc=0; "$sgit" --check-config -c "$work/typo.yaml" 2>"$work/typo.err" || rc=$?
[[ $rc == 2 ]] && log_has "$work/typo.err" "replay-cahce: unknown setting; did you mean \`replay-cache\`?" \
  && pass "a misspelt key is an error naming the nearest key (exit 2)" || bad "typo rc=$rc $(cat "$work/typo.err")"

"$broker" --listen "127.0.0.1:$bport" 2>"$work/broker.log" &
bpid=$!
until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$bport" 2>/dev/null
sock="$work/notify.sock"
notify_listener "$sock" "$work/notify.log"
npid=$NOTIFY_PID
"$stompctl" -u "$url" subscribe -t /topic/deploykit.heartbeats --events -n 1 --wait 30 --ready-file "$work/hb.ready" >"$work/hb.out" 2>"$work/hb.err" &
spid=$!
# Every frame on the commit topic, as sent: the replay below sends the same one again.
"$stompctl" -u "$url" subscribe -t /topic/future.git.commits --json -n 1 --wait 60 --ready-file "$work/c.ready" >"$work/commits.json" 2>/dev/null &
cpid=$!
until_true 10 test -e "$work/hb.ready" -a -e "$work/c.ready"

start_sgit() { NOTIFY_SOCKET=$sock "$sgit" -c "$work/sg.yaml" 2>>"$work/sg.log" & gpid=$!; }
: >"$work/notify.log"
start_sgit
until_true 15 log_has "$work/notify.log" "READY=1" && log_has "$work/notify.log" "STATUS=connected and subscribed to /topic/future.git.commits" \
  && pass "READY=1 with STATUS once connected and subscribed" || bad "no READY=1: $(cat "$work/notify.log")"
r=$(http_get "$aport" /readyz); [[ $r == 200* ]] && pass "/readyz 200 once subscribed" || bad "readyz: $r"
r=$(http_get "$aport" /livez); [[ $r == 200* ]] && pass "/livez 200" || bad "livez: $r"
until_true 15 log_has "$work/sg.log" "stomp-git: site fetched" || bad "no start-up fetch: $(tail -3 "$work/sg.log")"
until_true 10 metrics_have 'stomp_git_fetches_total{result="ok"} 1' || true
m=$(http_get "$aport" /metrics)
for want in 'stomp_git_build_info{version="' 'stomp_git_broker_connected 1' 'stomp_git_fetches_total{result="ok"} 1' \
            'stomp_git_fetches_total{result="failed"} 0' 'stomp_git_action_duration_seconds_count{action="fetch"} 1' \
            'stomp_git_last_success_timestamp_seconds ' 'stomp_git_events_in_total 0'; do
  [[ $m == *"$want"* ]] && pass "/metrics: $want" || bad "/metrics lacks $want: ${m:0:600}"
done
until_true 15 grep -q '"daemon": *"stomp-git"' "$work/hb.out" && grep -q '"type": *"heartbeat"' "$work/hb.out" \
  && pass "heartbeat event from stomp-git on deploykit.heartbeats" || bad "heartbeat: $(cat "$work/hb.out" "$work/hb.err")"

# A signed commit event: fetched, acknowledged, marked processed (in the replay cache).
(cd "$work/dev" && echo v2 >f && git commit -qam two && git push -q origin master 2>/dev/null)
old=$(git -C "$work/clone" rev-parse origin/master) new=$(git -C "$work/origin/site.git" rev-parse master)
body=$(printf 'repo: site\noldrev: %s\nnewrev: %s\nrefname: refs/heads/master\n' "$old" "$new")
"$stompctl" -u "$url" publish -t /topic/future.git.commits -H "subject:[site] refs/heads/master $new" -H dk-repo:site \
  --key-file "$work/bus.key" --key-id k1 -m "$body" >/dev/null
until_true 15 bash -c "[[ \$(git -C $work/clone rev-parse origin/master) == $new ]]" \
  && pass "signed commit event -> fetched" || bad "signed event not fetched: $(tail -5 "$work/sg.log")"
until_true 10 test -s "$work/commits.json" || bad "the commit frame was not captured"
until_true 10 metrics_have 'stomp_git_events_in_total 1$' \
  && pass "/metrics: the event counted in" || bad "events_in: $(http_get "$aport" /metrics | grep events_in)"

# SIGHUP: rserver changed (same broker, other spelling) is named as needing a restart.
sed -i "s|^rserver: .*|rserver: failover://($url)|" "$work/sg.yaml"
kill -HUP "$gpid"
until_true 10 log_has "$work/sg.log" "rserver: changed; takes effect after a restart" \
  && pass "SIGHUP names rserver as needing a restart" || bad "reload: $(tail -3 "$work/sg.log")"
until_true 10 log_has "$work/sg.log" "Re-read $work/sg.yaml: 1 repositories" && pass "... and re-reads the repositories" || bad "no re-read"

# SIGTERM when idle: status 0, promptly (a deadline against fixed sleeps, not a benchmark).
t0=$(date +%s%N)
kill -TERM "$gpid"
rc=0; wait "$gpid" || rc=$?; gpid=
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[[ $rc == 0 ]] && ((ms < 1000)) && pass "SIGTERM when idle: exit 0 after ${ms} ms" || bad "SIGTERM: rc=$rc after ${ms} ms"
until_true 5 log_has "$work/notify.log" "STOPPING=1" && pass "STOPPING=1 sent" || bad "no STOPPING=1"

# Restarted, the same signed frame replayed (within its signature window): refused and counted.
: >"$work/notify.log"
start_sgit
until_true 15 log_has "$work/notify.log" "READY=1" || bad "no READY=1 after the restart"
# The start-up fetch first, so the count below can only grow by the replay.
startup_fetched() { [[ $(metric 'stomp_git_fetches_total{result="ok"}') == 1 ]]; }
until_true 15 startup_fetched || bad "no start-up fetch after the restart"
args=$("$PY" - "$work/commits.json" <<'PY'
import json, shlex, sys
m = json.loads(open(sys.argv[1]).readline())
skip = {"destination", "message-id", "subscription", "ack", "content-length", "redelivered", "persistent", "expires", "priority", "timestamp"}
out = []
for k, v in m["headers"]:
    if k not in skip:
        out += ["-H", k + ":" + v]
out += ["-m", m["body"]]
print(shlex.join(out))
PY
)
eval "\"\$stompctl\" -u \"\$url\" publish -t /topic/future.git.commits $args" >/dev/null
until_true 10 metrics_have 'stomp_git_events_dropped_total{reason="duplicate"} 1$' \
  && pass "replayed signed event after a restart: refused (replay-cache) and counted" \
  || bad "replay: $(http_get "$aport" /metrics | grep -E 'events_(in|dropped)') $(tail -3 "$work/sg.log")"
[[ $(metric 'stomp_git_fetches_total{result="ok"}') == 1 ]] && pass "... and no fetch for it (only the start-up fetch)" \
  || bad "fetches after the replay: $(metric 'stomp_git_fetches_total{result="ok"}')"

# SIGTERM while a fetch runs (its post-fetch-command takes 2 s; the worker reads that setting at
# every job): the drain lets it finish and report before the daemon exits 0.
printf '#!/bin/sh\ntouch %s/pf.started\nsleep 2\ntouch %s/pf.done\n' "$work" "$work" >"$work/slow.sh"
chmod 755 "$work/slow.sh"
echo "post-fetch-command: [$work/slow.sh]" >>"$work/sg.yaml"
(cd "$work/dev" && echo v3 >f && git commit -qam three && git push -q origin master 2>/dev/null)
new3=$(git -C "$work/origin/site.git" rev-parse master)
"$stompctl" -u "$url" publish -t /topic/future.git.commits -H "subject:[site] refs/heads/master $new3" -H dk-repo:site \
  --key-file "$work/bus.key" --key-id k1 -m "$(printf 'repo: site\noldrev: %s\nnewrev: %s\nrefname: refs/heads/master\n' "$new" "$new3")" >/dev/null
until_true 15 test -e "$work/pf.started" || bad "the slow post-fetch-command did not start: $(tail -3 "$work/sg.log")"
kill -TERM "$gpid"
rc=0; wait "$gpid" || rc=$?; gpid=
[[ $rc == 0 && -e $work/pf.done ]] && log_has "$work/sg.log" "stopping; 1 fetch(es) in flight" \
  && grep -q "site fetched .* -> ${new3:0:12}" "$work/sg.log" \
  && pass "SIGTERM during a fetch: the fetch finished (post-fetch-command too), then exit 0" \
  || bad "busy SIGTERM: rc=$rc done=$(ls "$work"/pf.* 2>&1) $(tail -4 "$work/sg.log")"
sed -i '/^post-fetch-command:/d' "$work/sg.yaml"
start_sgit
until_true 15 metrics_have 'stomp_git_broker_connected 1' || bad "no restart after the busy SIGTERM"

# Without a broker: /readyz 503 with the reason, /livez 200; SIGTERM still ends it promptly.
kill "$bpid"; wait "$bpid" 2>/dev/null || true; bpid=
until_true 10 readyz_like "503 *broker unreachable*" \
  && pass "/readyz 503 'broker unreachable' once the broker is gone" || bad "readyz without broker: $(http_get "$aport" /readyz)"
r=$(http_get "$aport" /livez); [[ $r == 200* ]] && pass "/livez 200 all the same" || bad "livez: $r"
[[ $(metric 'stomp_git_broker_connected') == 0 ]] && pass "/metrics: broker_connected 0" || bad "broker_connected: $(metric stomp_git_broker_connected)"
t0=$(date +%s%N)
kill -TERM "$gpid"
rc=0; wait "$gpid" || rc=$?; gpid=
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[[ $rc == 0 ]] && ((ms < 1000)) && pass "SIGTERM while reconnecting: exit 0 after ${ms} ms" || bad "SIGTERM reconnecting: rc=$rc after ${ms} ms"
exit $fail
