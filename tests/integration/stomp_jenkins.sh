#!/usr/bin/env bash
# stomp-jenkins end to end: embedded broker + the Jenkins stand-in (tests/jenkins) + stomp-jenkins.
# Commit events published with stompctl (the original git and SVN hooks' legacy bodies, and native
# JSON) must trigger exactly the right jobs with the right parameters in every trigger mode
# (build, buildWithParameters, token, buildByToken, notifyCommit); then: a burst coalesced into
# one build, Jenkins slow, Jenkins answering 503, Jenkins down then up (nothing lost, the stale
# crumb refetched against a Jenkins that wants crumbs even with API tokens), wrong credentials
# (held, not dropped; fixed credentials + SIGHUP -> built exactly once), stomp-jenkins stopped while
# an event arrives (durable subscription), SIGHUP reload, the broker restarted while Jenkins is down
# (the redelivered copy joins the event in progress: exactly one build), retries exhausted (kept
# retrying in-process, built once Jenkins answers), the reports and build events on the bus, no
# secret in any log.
#   tests/integration/stomp_jenkins.sh STOMP_BROKER STOMPCTL STOMP_JENKINS
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") sj=$(realpath "$3")
standin=$(cd "$(dirname "$0")/../jenkins" && pwd)/jenkins_standin.py
NAME=stomp_jenkins
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
bpid= jpid= dpid= spid= npid= j2pid=
on_exit 'wait 2>/dev/null'
kill_at_exit dpid npid spid jpid j2pid bpid
# Records of the stand-in's JSON log matching a Python expression over `r`.
count() { "$PY" -c 'import json,sys
n=0
for l in open(sys.argv[1]):
    r=json.loads(l)
    try:
        n+=bool(eval(sys.argv[2]))
    except (KeyError,TypeError):
        pass
print(n)' "$work/jenkins.log" "$1"; }
at_least() { (($(count "$2") >= $1)); }
trig() { echo "r['event']=='trigger' and r['job']=='$1'${2:+ and ($2)}"; }
wait_trig() { until_true "${3:-20}" at_least 1 "$(trig "$1" "${2:-}")"; }
log_has() { grep -qF -- "$2" "$1"; }

bport=$(free_port) jport=$(free_port)
url="stomp://127.0.0.1:$bport"
"$broker" --listen "127.0.0.1:$bport" --data-dir "$work/broker" 2>"$work/broker.log" &
bpid=$!
until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$bport" 2>/dev/null

# ---- Jenkins ------------------------------------------------------------------------------------
api_token=11f2c3d4e5f60718293a4b5c6d7e8f9012
cat >"$work/jobs.json" <<'EOF'
{"jobs": [
  {"name": "Job-Name", "token": "SECRET-TICKET"},
  {"name": "name with spaces", "token": "KEY_A-TICKET"},
  {"name": "folder/sub/deploy"},
  {"name": "folder/sub/tests", "parameters": [{"name": "COMMIT"}, {"name": "BRANCH"}, {"name": "REPO"}, {"name": "EVENT_ID"}]},
  {"name": "pipe", "parameters": [{"name": "SHA"}, {"name": "WHY", "default": "?"}]},
  {"name": "remote", "token": "T1-TICKET"},
  {"name": "poller", "scm": {"url": "git@git.example:site.git", "branches": ["*/master"]}, "pollScm": true},
  {"name": "burst-job"},
  {"name": "slow-job"},
  {"name": "down-job", "parameters": [{"name": "COMMIT"}]},
  {"name": "auth-job"},
  {"name": "added-job"}
]}
EOF
start_jenkins() {
  rm -f "$work/jport"
  "$PY" "$standin" --jobs "$work/jobs.json" --port "$jport" --port-file "$work/jport" --user "alice:$api_token" \
    --notify-token NT-SECRET --log "$work/jenkins.log" --quiet-period 0.2 --start-delay 0.1 "$@" 2>>"$work/standin.err" &
  jpid=$!
  until_true 10 test -f "$work/jport"
}
stop_jenkins() { kill "$jpid"; wait "$jpid" 2>/dev/null || true; jpid=; }
control() { "$PY" -c 'import sys,urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b"", method="POST"), timeout=5).read()' \
  "http://127.0.0.1:$jport/__standin/control?$1"; }
start_jenkins

# ---- stomp-jenkins ------------------------------------------------------------------------------
printf 'alice:%s\n' "$api_token" >"$work/creds"
printf 'alice:not-the-token\n' >"$work/bad-creds"
chmod 600 "$work/creds" "$work/bad-creds"
write_config() { # FILE CREDENTIALS
  cat >"$1" <<EOF
rserver: failover://(stomp://127.0.0.1:$bport)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
listen-topic: future.git.commits
report-topic: future.events.jenkins
jenkins-url: http://127.0.0.1:$jport/
wire-format: both
durable-name: stomp-jenkins-test
credentials-file: $2
http-workers: 1
connect-timeout-ms: 1000
request-timeout-ms: 5000
retries: 60
retry-initial-ms: 200
retry-max-ms: 1000
jenkins-projects:
  git-repo: {project: Job-Name, ticket: SECRET-TICKET, ignore_refs: 'refs\/tags\/jenkins-(?:.*)'}
  svn-repo:                 # nested form, keyed by the Project: value
    sub-a: {project: name%20with%20spaces, ticket: KEY_A-TICKET}
  site:
    jobs:
      - {project: folder/sub/deploy}
      - {project: folder/sub/tests, mode: buildWithParameters}
      - {project: pipe, mode: build, parameters: {SHA: '{commit}', WHY: 'push to {branch}'}}
      - {project: remote, mode: buildByToken, ticket: T1-TICKET}
      - {mode: notifyCommit, clone-url: 'ssh://git@git.example/site.git', ticket: NT-SECRET}
  wrongticket: {project: Job-Name, ticket: NOT-THE-TICKET}
  bursty: {project: burst-job, quiet-seconds: 5}
  slowrepo: {project: slow-job}
  downrepo: {project: down-job, mode: buildWithParameters}
  authrepo: {project: auth-job}
EOF
}
write_config "$work/sj.yaml" "$work/creds"
write_config "$work/sj-bad.yaml" "$work/bad-creds"
lines() { local n; n=$(grep -c -- "$2" "$1" 2>/dev/null) || true; echo "${n:-0}"; }
start_daemon() { # CONFIG LOG
  local before; before=$(lines "$2" "stomp: subscribed to /topic/future.git.commits")
  "$sj" -c "$1" -d 2>>"$2" &
  dpid=$!
  until_true 15 bash -c "(( \$(grep -c 'stomp: subscribed to /topic/future.git.commits' '$2') > $before ))"
}
# Every queue item the daemon follows has reached its build (no poll left that could meet a 503).
followers_done() { (($(lines "$work/sj.log" " started: #") >= $(lines "$work/sj.log" "Jenkins accepted .* queue item"))); }
stop_daemon() { # waits for a clean exit
  local p=$dpid; dpid=
  kill "$p"
  local rc=0; wait "$p" || rc=$?
  return $rc
}
"$stompctl" -u "$url" subscribe -t /topic/future.events.jenkins --json --wait 240 --ready-file "$work/sub-ready" >"$work/reports" 2>"$work/sub.err" &
spid=$!
until_true 10 test -f "$work/sub-ready"
start_daemon "$work/sj.yaml" "$work/sj.log" && pass "stomp-jenkins subscribed (original config form)" || bad "daemon start: $(tail -5 "$work/sj.log")"

publish() { "$stompctl" -u "$url" publish -t /topic/future.git.commits -H persistent:true "$@" >/dev/null; }
sha() { printf 'c0ffee%034x' "$1"; }
zero=$(printf '%040d' 0)
git_legacy() { # REPO REF NEWREV: the original post-receive hook's message
  publish -H "subject:[$1] $2 $3" -m "$(printf 'repo: %s\noldrev: %s\nnewrev: %s\nrefname: %s\n %s\nAuthor: Dev One <dev@example.com>\nDate: Sun Nov 22 03:00:00 2026 +0100\n\nFix the thing\n\n' "$1" "$zero" "$3" "$2" "$3")"
}
svn_legacy() { # REPO REV PROJECT: the original svn-stomp message (subject with its trailing space)
  publish -H "subject:[$1] $2 " -m "$(printf 'repo: %s\nrevname: %s\n Author: dev\nDate: 2026-11-22 03:00:00 +0100\nProject: %s\n\nDirs:\n%s/trunk/\n\nlog message\n\n' "$1" "$2" "$3" "$3")"
}
native() { # REPO REF NEWREV ID: a native commit event
  publish -H content-type:application/json -H dk-event-type:commit -H "dk-event-id:$4" -m "$("$PY" -c '
import json,sys
print(json.dumps({"v":1,"id":sys.argv[4],"type":"commit","host":"forge","time":"2026-11-22T03:00:00Z",
  "data":{"source":"github","repo":sys.argv[1],"ref":sys.argv[2],"old_rev":"0"*40,"new_rev":sys.argv[3],
          "author":"Dev One <dev@example.com>","date":"2026-11-22T03:00:00Z","message":"native push"}}))' "$1" "$2" "$3" "$4")"
}

# ---- every mode, the original's forms ---------------------------------------------------------------
s1=$(sha 1) s2=$(sha 2)
git_legacy git-repo refs/heads/master "$s1"
wait_trig Job-Name "r['via']=='build' and r['token'] and r['params'] is None and '[git-repo] refs/heads/master $s1' in r['cause']" \
  && pass "git hook legacy message -> token mode POST build (ticket in the body, cause = the subject)" || bad "Job-Name: $(tail -3 "$work/jenkins.log")"
git_legacy git-repo refs/tags/jenkins-5 "$(sha 5)"
until_true 10 log_has "$work/sj.log" "refs/tags/jenkins-5 matches ignore_refs" && pass "ignore_refs skips refs/tags/jenkins-*" || bad "ignore_refs"
svn_legacy svn-repo 1234 sub-a
wait_trig "name with spaces" "r['token']" && pass "SVN message -> nested entry by Project (name%20with%20spaces decoded)" || bad "svn: $(tail -3 "$work/sj.log")"
git_legacy svn-repo refs/heads/master "$(sha 6)"
until_true 10 log_has "$work/sj.log" "svn-repo: configured by SVN Project, but the git message has no Project:" && kill -0 "$dpid" \
  && pass "git message for a nested (SVN) entry: logged skip, still running" || bad "nested git skip"

native site refs/heads/master "$s2" ev-site-1
wait_trig folder/sub/deploy "r['via']=='build' and r['auth']=='token' and r['params'] is None" \
  && pass "native event -> build on a folder job (a/b/job), API-token auth" || bad "folder build: $(grep folder "$work/jenkins.log" | tail -2)"
wait_trig folder/sub/tests "r['via']=='buildWithParameters' and r['params']=={'COMMIT':'$s2','BRANCH':'master','REPO':'site','EVENT_ID':'ev-site-1'}" \
  && pass "buildWithParameters with commit, branch, repo, event id" || bad "buildWithParameters: $(grep tests "$work/jenkins.log" | tail -2)"
wait_trig pipe "r['via']=='build' and r['params']=={'SHA':'$s2','WHY':'push to master'}" \
  && pass "build with json= parameters from templates" || bad "json build: $(grep pipe "$work/jenkins.log" | tail -2)"
wait_trig remote "r['via']=='buildByToken/build' and r['token'] and r['crumb']=='exempt'" \
  && pass "buildByToken (Build Authorization Token Root)" || bad "buildByToken: $(grep remote "$work/jenkins.log" | tail -2)"
wait_trig poller "r['via']=='notifyCommit' and r['sha1']=='$s2' and r['branches']==['master']" \
  && pass "notifyCommit with url, branches, sha1 and the access token" || bad "notifyCommit: $(grep -i notify "$work/jenkins.log" | tail -2)"
# The same event in both forms (a producer with wire-format both): one build.
s8=$(sha 8)
native git-repo refs/heads/master "$s8" ev-dup-1
publish -H "dk-event-id:ev-dup-1" -H "subject:[git-repo] refs/heads/master $s8" \
  -m "$(printf 'repo: git-repo\noldrev: %s\nnewrev: %s\nrefname: refs/heads/master\n' "$zero" "$s8")"
until_true 20 bash -c "grep -q -e 'event ev-dup-1 is already in progress' -e 'duplicate of event ev-dup-1' '$work/sj.log'" \
  && wait_trig Job-Name "'$s8' in r['cause']" && [[ $(count "$(trig Job-Name "'$s8' in r['cause']")") == 1 ]] \
  && pass "native and legacy copies of one event: one build" || bad "dual-format event: $(count "$(trig Job-Name "'$s8' in r['cause']")") builds"
git_legacy wrongticket refs/heads/master "$(sha 7)"
until_true 20 log_has "$work/sj.log" "Jenkins refused Job-Name for event" && until_true 5 log_has "$work/sj.log" "Invalid token provided" \
  && log_has "$work/sj.log" "held: retried every" \
  && pass "wrong job token: 403 logged and held (retried, never acknowledged as done)" || bad "wrong ticket: $(tail -3 "$work/sj.log")"

# The reports: queued and started build events, the original one-liners, the failure notice.
reports_ok() { "$PY" - "$work/reports" "$s1" <<'EOF'
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1])]
bodies = [m["body"] for m in msgs]
s1 = sys.argv[2]
assert f"Requested Jenkins build: [git-repo] refs/heads/master {s1} / Job-Name" in bodies, "git one-liner"
assert "Requested Jenkins build: [svn-repo] 1234  / name_with_spaces" in bodies, "svn one-liner"
assert any(b.startswith("Jenkins build request failed: [wrongticket]") for b in bodies), "failure notice"
ev = [json.loads(b) for b in bodies if b.startswith("{")]
builds = [e["data"] for e in ev if e["type"] == "build"]
q = [b for b in builds if b["job"] == "Job-Name" and b["phase"] == "queued" and b["commit"] == s1]
s = [b for b in builds if b["job"] == "Job-Name" and b["phase"] == "started" and b["commit"] == s1]
assert q and "/queue/item/" in q[0]["url"], "queued event"
assert s and s[0]["number"] >= 1 and s[0]["url"].endswith(f"/job/Job-Name/{s[0]['number']}/"), "started event"
assert any(b["job"] == "poller" and b["phase"] == "queued" for b in builds), "notifyCommit queued event"
assert any(b["job"] == "folder/sub/deploy" and b["phase"] == "started" for b in builds), "folder job started"
EOF
}
until_true 20 reports_ok 2>/dev/null && pass "queued/started build events and 'Requested Jenkins build:' one-liners on the bus" \
  || { bad "reports"; reports_ok || true; }

# ---- a burst of ten pushes: one build per quiet window ---------------------------------------------
for i in $(seq 11 20); do git_legacy bursty refs/heads/master "$(sha "$i")"; done
until_true 20 log_has "$work/sj.log" "Jenkins accepted burst-job" && log_has "$work/sj.log" "10 events coalesced" \
  && [[ $(count "$(trig burst-job)") == 1 ]] \
  && pass "10 pushes inside the quiet window -> 1 build request" || bad "burst: $(count "$(trig burst-job)") builds"
git_legacy bursty refs/heads/master "$(sha 21)"
until_true 20 at_least 2 "$(trig burst-job)" && until_true 10 bash -c "(( \$(grep -c 'Jenkins accepted burst-job' '$work/sj.log') >= 2 ))" \
  && [[ $(count "$(trig burst-job)") == 2 ]] && pass "the next push -> the next window's build, nothing extra" || bad "burst follow-up: $(count "$(trig burst-job)")"

# ---- Jenkins slow, then answering 503 ----------------------------------------------------------------
control slow=1500
t0=$(date +%s.%N)
git_legacy slowrepo refs/heads/master "$(sha 30)"
wait_trig slow-job "r['ts'] >= $t0 + 1.5" 30 && pass "Jenkins slow (1.5 s per response): build requested" || bad "slow: $(tail -3 "$work/sj.log")"
until_true 30 followers_done || bad "queue items still followed: $(tail -3 "$work/sj.log")"
control "slow=0&fail_next=3"
git_legacy slowrepo refs/heads/master "$(sha 31)"
until_true 30 at_least 2 "$(trig slow-job)" && log_has "$work/sj.log" "HTTP 503" \
  && pass "three 503s: retried with backoff, then requested" || bad "503: $(tail -3 "$work/sj.log")"

# ---- Jenkins down, then up with crumbs required even for API tokens ---------------------------------------
until_true 30 followers_done || true
stop_jenkins
s3=$(sha 40)
native downrepo refs/heads/master "$s3" ev-down-1
until_true 20 log_has "$work/sj.log" "no answer from Jenkins" && pass "Jenkins down: retrying" || bad "no retry: $(tail -3 "$work/sj.log")"
start_jenkins --crumb-required-for-tokens
wait_trig down-job "r['params']=={'COMMIT':'$s3'} and r['crumb']=='valid' and r['ignored']==['BRANCH','EVENT_ID','REPO']" 30 \
  && pass "Jenkins back: the event was not lost (crumb valid, undefined parameters dropped by Jenkins)" || bad "down/up: $(tail -5 "$work/sj.log")"
until_true 5 log_has "$work/sj.log" "fetched a fresh one and retried" && at_least 1 "r['event']=='reject' and r['reason'] in ('crumb does not match','no session cookie')" \
  && pass "stale crumb from the old Jenkins: 403, refetched once with its session cookie" || bad "crumb refetch"
kill -0 "$dpid" && pass "unreachable Jenkins never stopped the daemon" || bad "daemon exited"

# ---- wrong API token: held; fixed credentials + SIGHUP -> built, exactly once --------------------------
stop_daemon && pass "SIGTERM: clean exit" || bad "exit status on SIGTERM"
cp "$work/bad-creds" "$work/auth-creds"
write_config "$work/sj-bad.yaml" "$work/auth-creds"
start_daemon "$work/sj-bad.yaml" "$work/sj-bad.log"
git_legacy authrepo refs/heads/master "$(sha 50)"
until_true 20 log_has "$work/sj-bad.log" "Jenkins refused auth-job" && log_has "$work/sj-bad.log" "HTTP 401: Invalid password/token for user: alice" \
  && until_true 10 bash -c "(( \$(grep -c 'Jenkins refused auth-job' '$work/sj-bad.log') >= 2 ))" \
  && [[ $(count "$(trig auth-job)") == 0 ]] \
  && pass "wrong API token: 401 logged, held and retried, no build" || bad "401: $(tail -3 "$work/sj-bad.log")"
printf 'alice:%s\n' "$api_token" >"$work/auth-creds"
kill -HUP "$dpid"
wait_trig auth-job "" 20 && log_has "$work/sj-bad.log" "held request(s) now" \
  && pass "credentials fixed + SIGHUP: the held build is requested" || bad "held then fixed: $(tail -3 "$work/sj-bad.log")"
until_true 10 log_has "$work/sj-bad.log" "Jenkins accepted auth-job" || true
stop_daemon || true
# Published while no stomp-jenkins runs: kept by the durable subscription.
s4=$(sha 60)
git_legacy slowrepo refs/heads/master "$s4"
start_daemon "$work/sj.yaml" "$work/sj.log"
until_true 20 at_least 3 "$(trig slow-job)" && pass "event published while stomp-jenkins was stopped: delivered on start" || bad "durable: $(tail -3 "$work/sj.log")"
[[ $(count "$(trig auth-job)") == 1 ]] && pass "the held message was acknowledged once accepted (exactly one auth-job build)" \
  || bad "auth-job built $(count "$(trig auth-job)") times"

# ---- SIGHUP reload --------------------------------------------------------------------------------
printf '  added: {project: added-job}\n' >>"$work/sj.yaml"
kill -HUP "$dpid"
until_true 10 log_has "$work/sj.log" "Re-read $work/sj.yaml" && git_legacy added refs/heads/master "$(sha 70)" && wait_trig added-job \
  && pass "SIGHUP re-reads jenkins-projects" || bad "reload: $(tail -3 "$work/sj.log")"

# ---- SIGTERM while a request is in flight: it finishes and is acknowledged (no second build on restart) ----
until_true 30 followers_done || true
n=$(count "$(trig slow-job)")
control slow=1500
s6=$(sha 95)
git_legacy slowrepo refs/heads/master "$s6"
until_true 20 log_has "$work/sj.log" "slow-job for slowrepo refs/heads/master ${s6:0:12}" || bad "SIGTERM case: no request"
stop_daemon && log_has "$work/sj.log" "Jenkins accepted slow-job" || bad "SIGTERM while in flight: $(tail -3 "$work/sj.log")"
control slow=0
start_daemon "$work/sj.yaml" "$work/sj.log"
m=$(count "$(trig added-job)")
git_legacy added refs/heads/master "$(sha 96)"
until_true 20 at_least $((m + 1)) "$(trig added-job)" || bad "SIGTERM case: restarted daemon idle"
[[ $(count "$(trig slow-job)") == $((n + 1)) ]] && pass "SIGTERM during a slow request: drained, acknowledged, exactly one build" \
  || bad "SIGTERM during a request: $(( $(count "$(trig slow-job)") - n )) builds"

# ---- the broker restarts while Jenkins is down: exactly one build once both are back ---------------------
until_true 30 followers_done || true
stop_jenkins
s5=$(sha 90)
native downrepo refs/heads/master "$s5" ev-brk-1
until_true 20 bash -c "grep -q 'down-job.*no answer from Jenkins' '$work/sj.log'" || bad "broker restart: no retry seen"
subs=$(lines "$work/sj.log" "stomp: subscribed to /topic/future.git.commits")
kill "$bpid"; wait "$bpid" 2>/dev/null || true
"$broker" --listen "127.0.0.1:$bport" --data-dir "$work/broker" 2>>"$work/broker.log" &
bpid=$!
until_true 30 bash -c "(( \$(grep -c 'stomp: subscribed to /topic/future.git.commits' '$work/sj.log') > $subs ))" \
  && until_true 20 log_has "$work/sj.log" "event ev-brk-1 is already in progress; this copy is answered with it" \
  && pass "broker restarted: the redelivered copy joined the event in progress (not acknowledged early)" \
  || bad "broker restart: $(tail -5 "$work/sj.log")"
start_jenkins
wait_trig down-job "r['params']=={'COMMIT':'$s5'}" 30 && pass "Jenkins back after the broker restart: built" || bad "after broker restart: $(tail -5 "$work/sj.log")"
# A restart of stomp-jenkins is the proof: an unacknowledged copy would be redelivered and built again.
until_true 30 followers_done || true
stop_daemon || true
start_daemon "$work/sj.yaml" "$work/sj.log"
n=$(count "$(trig slow-job)")
git_legacy slowrepo refs/heads/master "$(sha 91)"
until_true 20 at_least $((n + 1)) "$(trig slow-job)" || bad "restarted daemon: no build for a new push"
[[ $(count "$(trig down-job "r['params']=={'COMMIT':'$s5'}")") == 1 ]] \
  && pass "broker restart while Jenkins was down: exactly one build" || bad "ev-brk-1 built $(count "$(trig down-job "r['params']=={'COMMIT':'$s5'}")") times"

# ---- retries exhausted: kept retrying in-process, built once a Jenkins answers ------------------------
jport2=$(free_port)
sed -e "s|^jenkins-url: .*|jenkins-url: http://127.0.0.1:$jport2|" -e 's|^retries: .*|retries: 1|' \
    -e 's|^retry-max-ms: .*|retry-max-ms: 500|' -e 's|^durable-name: .*|durable-name: stomp-jenkins-nack|' "$work/sj.yaml" >"$work/sj-nack.yaml"
printf '  nackrepo: {project: slow-job}\n' >>"$work/sj-nack.yaml"
"$sj" -c "$work/sj-nack.yaml" -d 2>"$work/sj-nack.log" &
npid=$!
until_true 15 log_has "$work/sj-nack.log" "stomp: subscribed to /topic/future.git.commits" || bad "nack daemon start"
git_legacy nackrepo refs/heads/master "$(sha 80)"
until_true 20 log_has "$work/sj-nack.log" "still failing after 2 attempt" \
  && until_true 10 log_has "$work/sj-nack.log" "attempt 4 failed, next in" \
  && pass "retries exhausted: still retrying in-process at the capped interval (message kept)" || bad "retrying: $(tail -3 "$work/sj-nack.log")"
"$PY" "$standin" --jobs "$work/jobs.json" --port "$jport2" --log "$work/jenkins2.log" --user "alice:$api_token" 2>>"$work/standin.err" &
j2pid=$!
until_true 20 grep -qs '"event": "trigger".*"job": "slow-job"' "$work/jenkins2.log" \
  && until_true 10 log_has "$work/sj-nack.log" "Jenkins accepted slow-job" \
  && [[ $(grep -c '"event": "trigger".*"job": "slow-job"' "$work/jenkins2.log") == 1 ]] \
  && pass "... and built once a Jenkins answered: nothing lost, one build" || bad "retry then up: $(tail -3 "$work/sj-nack.log")"
kill "$npid" "$j2pid"; wait "$npid" "$j2pid" 2>/dev/null || true; npid= j2pid=

# ---- bad config, secrets ------------------------------------------------------------------------------
printf 'rserver: %s\njenkins-url: http://j\njenkins-projects:\n  r: {project: x, mode: token}\n' "$url" >"$work/bad.yaml"
rc=0; "$sj" -c "$work/bad.yaml" 2>"$work/bad.err" || rc=$?
[[ $rc == 2 ]] && grep -q "bad.yaml:4: jenkins-projects.r: mode token needs ticket" "$work/bad.err" \
  && pass "bad config: exit 2 naming file, line and key" || bad "bad config rc=$rc: $(cat "$work/bad.err")"
if grep -l -e SECRET-TICKET -e KEY_A-TICKET -e T1-TICKET -e NT-SECRET -e NOT-THE-TICKET -e "$api_token" -e not-the-token \
     "$work/sj.log" "$work/sj-bad.log" "$work/sj-nack.log" "$work/jenkins.log" "$work/reports"; then
  bad "a secret appears in a log"
else
  pass "no ticket, token or API token in any log or report"
fi
exit $fail
