#!/usr/bin/env bash
# The build path end to end on the embedded broker: a signed GitHub push posted to
# github-webhook -> commit event -> stomp-jenkins -> the right job on the Jenkins stand-in (folder
# job, buildWithParameters, API token, crumbs) -> the build's steps run jenkins-helper -b and -p
# -> the build events (stomp-jenkins' queued/started, jenkins-helper's started/completed) and the
# original one-liners come back on the bus.
# The same on every broker: embedded (stomp-broker), RabbitMQ (STOMP plugin) or ActiveMQ.
#   tests/integration/build_path.sh STOMP_BROKER STOMPCTL GITHUB_WEBHOOK STOMP_JENKINS JENKINS_HELPER [KIND]
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") webhook=$(realpath "$3") sj=$(realpath "$4") helper=$(realpath "$5")
kind=${6:-embedded}
here=$(cd "$(dirname "$0")/.." && pwd)
data=$here/data/webhooks
standin=$here/jenkins/jenkins_standin.py
NAME=build_path-$kind
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
pids=()
kill_at_exit pids
stop_brokers_at_exit "$work"
wait_grep() { wait_for "$1" grep -qs -- "$2" "$3"; } # SECONDS PATTERN FILE
read -r bport hport jport < <(free_ports 3)
case $kind in
  embedded|activemq) url="stomp://127.0.0.1:$bport" ;;
  rabbitmq) url="stomp://guest:guest@127.0.0.1:$bport" ;;
  *) echo "usage: $0 ... [embedded|rabbitmq|activemq]" >&2; exit 2 ;;
esac
umask 077
echo "It's a Secret to Everybody" >"$work/github.secret"
api_token=11$(od -An -tx1 -N15 /dev/urandom | tr -d ' \n')
echo "deploykit:$api_token" >"$work/jenkins.credentials"
umask 022

if [[ $kind == embedded ]]; then
  "$broker" --listen "127.0.0.1:$bport" --data-dir "$work/broker" 2>"$work/broker.log" &
  pids+=($!)
  wait_port "$bport"
else
  bash "$here/brokers/broker.sh" start "$kind" "$work/broker" "$bport" >"$work/broker.log" 2>&1 \
    || { echo "FAIL: $kind did not start: $(tail -20 "$work/broker.log")"; exit 1; }
fi
echo "broker: $kind"

# jenkins-helper as the job's build steps run it (argv, the stand-in's clean Jenkins environment).
cat >"$work/jh.yaml" <<EOF
rserver: $url
wire-format: both
spool-dir: $work/jh-spool
EOF
cat >"$work/jobs.json" <<EOF
{"jobs": [
  {"name": "web/blog-build", "parameters": [{"name": "COMMIT"}, {"name": "BRANCH"}, {"name": "REPO"}, {"name": "EVENT_ID"}],
   "scm": {"url": "https://github.com/octo-org/blog.git", "branches": ["*/main"]},
   "steps": [["$helper", "-b", "--config", "$work/jh.yaml"], ["/bin/true"], ["$helper", "-p", "--config", "$work/jh.yaml"]]},
  {"name": "other-job", "parameters": [{"name": "COMMIT"}]}
]}
EOF
/usr/bin/python3 "$standin" --jobs "$work/jobs.json" --port "$jport" --port-file "$work/jport" \
  --user "deploykit:$api_token" --anonymous-forbidden --log "$work/jenkins.log" --quiet-period 0.2 --start-delay 0.1 \
  2>"$work/standin.err" &
pids+=($!)
for _ in $(seq 200); do [[ -f $work/jport ]] && break; sleep 0.05; done

cat >"$work/stomp-jenkins.yaml" <<EOF
rserver: failover://($url)
stomp-options: initialReconnectDelay=10&maxReconnectDelay=500&useExponentialBackOff=true
listen-topic: future.git.commits
report-topic: future.events.jenkins
build-topic: future.jenkins.builds
wire-format: both
spool-dir: $work/sj-spool
jenkins-url: http://127.0.0.1:$jport
credentials-file: $work/jenkins.credentials
jenkins-projects:
  blog: {project: web/blog-build, mode: buildWithParameters, ignore_refs: 'refs/tags/'}
EOF
"$sj" -c "$work/stomp-jenkins.yaml" 2>"$work/stomp-jenkins.log" &
pids+=($!)

cat >"$work/webhook.yaml" <<EOF
rserver: failover://($url)
trigger-topic: future.git.commits
report-topic: future.events.stomp-git
wire-format: both
spool-dir: $work/gw-spool
listen: 127.0.0.1:$hport
hooks:
  /github:
    provider: github
    secret-file: $work/github.secret
EOF
"$webhook" -c "$work/webhook.yaml" >"$work/access.log" 2>"$work/webhook.log" &
pids+=($!)
wait_port "$hport"

"$stompctl" -u "$url" subscribe -t /topic/future.jenkins.builds --events --wait 90 --ready-file "$work/r1" >"$work/builds" 2>/dev/null &
pids+=($!)
"$stompctl" -u "$url" subscribe -t /topic/future.jenkins.success --headers --wait 90 --ready-file "$work/r2" >"$work/success" 2>/dev/null &
pids+=($!)
"$stompctl" -u "$url" subscribe -t /topic/future.events.jenkins --json --wait 90 --ready-file "$work/r3" >"$work/reports" 2>/dev/null &
pids+=($!)
for _ in $(seq 200); do [[ -f $work/r1 && -f $work/r2 && -f $work/r3 ]] && break; sleep 0.05; done
# stomp-jenkins subscribed: its own log says so once connected.
wait_grep 20 "connected" "$work/stomp-jenkins.log" || bad "stomp-jenkins did not connect: $(tail -5 "$work/stomp-jenkins.log")"
for _ in $(seq 200); do curl -s "http://127.0.0.1:$hport/metrics" | grep -q 'broker_connected 1' && break; sleep 0.05; done

after=0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c
sig=$(/usr/bin/openssl dgst -sha256 -hmac "It's a Secret to Everybody" -r "$data/github_push.json" | cut -d' ' -f1)
code=$(curl -sS -o "$work/answer" -w '%{http_code}' --max-time 10 -X POST --data-binary "@$data/github_push.json" \
  -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' -H 'X-GitHub-Delivery: e2e-0001' \
  -H "X-Hub-Signature-256: sha256=$sig" "http://127.0.0.1:$hport/github")
[[ $code == 202 ]] && pass "signed GitHub push accepted (202)" || bad "webhook answered $code: $(cat "$work/answer")"

wait_grep 30 '"event": "trigger"' "$work/jenkins.log" && pass "Jenkins received a trigger" || bad "no trigger: $(cat "$work/jenkins.log")"
wait_grep 30 '"event": "completed"' "$work/jenkins.log" || bad "the build did not complete: $(cat "$work/jenkins.log")"
/usr/bin/python3 - "$work/jenkins.log" "$after" <<'PY' && pass "exactly web/blog-build, with the push's commit, branch and repo; its steps ran" || bad "stand-in log: $(cat "$work/jenkins.log")"
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
trig = [r for r in log if r["event"] == "trigger"]
assert len(trig) == 1, trig
t = trig[0]
assert t["job"] == "web/blog-build" and t["via"] == "buildWithParameters", t
assert t["params"]["COMMIT"] == sys.argv[2] and t["params"]["BRANCH"] == "main" and t["params"]["REPO"] == "blog", t
assert t["user"] == "deploykit" and t["auth"] == "token", t
steps = [r for r in log if r["event"] == "step"]
assert [s["rc"] for s in steps] == [0, 0, 0], steps
assert [r["result"] for r in log if r["event"] == "completed"] == ["SUCCESS"]
PY

# Back on the bus: stomp-jenkins' queued/started and jenkins-helper's started/completed.
for _ in $(seq 600); do
  [[ $(grep -c '"type":"build"' "$work/builds" 2>/dev/null) -ge 4 ]] && break; sleep 0.05
done
/usr/bin/python3 - "$work/builds" "$after" <<'PY' && pass "build events: queued, started (stomp-jenkins), started and completed SUCCESS (jenkins-helper)" || bad "build events: $(cat "$work/builds")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
b = [(e["data"]["phase"], e["data"].get("job"), e["data"].get("number"), e["data"].get("status", ""), e["data"].get("commit", ""), e["data"].get("branch", "")) for e in ev if e["type"] == "build"]
phases = sorted(p[0] for p in b)
assert phases == ["completed", "queued", "started", "started"], b
done = [p for p in b if p[0] == "completed"][0]
assert done[1] == "web/blog-build" and done[2] == 1 and done[3] == "SUCCESS", done
assert done[4] == sys.argv[2] and done[5] == "origin/main", done
started = [p for p in b if p[0] == "started" and p[2] == 1]
assert len(started) == 2, b
PY
wait_grep 10 "Status: Success" "$work/success" && grep -q "Repo: origin" "$work/success" \
  && pass "the original jenkins-helper message on future.jenkins.success" || bad "success topic: $(cat "$work/success")"
wait_grep 10 "Requested Jenkins build: \[blog\] refs/heads/main $after / web/blog-build" "$work/reports" \
  && wait_grep 10 "Complete job 1 - \[web/blog-build\] origin/main $after" "$work/reports" \
  && pass "one-liners on future.events.jenkins: Requested Jenkins build, Begin/Complete job" || bad "reports: $(cat "$work/reports")"
! grep -q "$api_token" "$work"/*.log "$work/standin.err" "$work/builds" "$work/reports" \
  && pass "the API token appears in no log and no message" || bad "API token leaked"

# A redelivery of the same webhook builds nothing more.
code=$(curl -sS -o "$work/answer" -w '%{http_code}' --max-time 10 -X POST --data-binary "@$data/github_push.json" \
  -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' -H 'X-GitHub-Delivery: e2e-0001' \
  -H "X-Hub-Signature-256: sha256=$sig" "http://127.0.0.1:$hport/github")
[[ $code == 200 ]] && grep -q duplicate "$work/answer" && pass "redelivered webhook answered as a duplicate" || bad "redelivery: $code $(cat "$work/answer")"
# A tag push (ignore_refs) to mark the end: its commit event reaches stomp-jenkins, no build.
/usr/bin/python3 - "$data/github_push.json" "$work/tag.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); j["ref"] = "refs/tags/v1.0"; json.dump(j, open(sys.argv[2], "w"))
PY
sig2=$(/usr/bin/openssl dgst -sha256 -hmac "It's a Secret to Everybody" -r "$work/tag.json" | cut -d' ' -f1)
curl -sS -o /dev/null --max-time 10 -X POST --data-binary "@$work/tag.json" -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' -H 'X-GitHub-Delivery: e2e-0002' -H "X-Hub-Signature-256: sha256=$sig2" "http://127.0.0.1:$hport/github"
wait_grep 20 "skipped" "$work/stomp-jenkins.log" || bad "the tag push was not seen by stomp-jenkins: $(tail -5 "$work/stomp-jenkins.log")"
[[ $(grep -c '"event": "trigger"' "$work/jenkins.log") == 1 ]] && pass "no second build (duplicate dropped, tag ignored by ignore_refs)" \
  || bad "extra triggers: $(grep trigger "$work/jenkins.log")"
exit $fail
