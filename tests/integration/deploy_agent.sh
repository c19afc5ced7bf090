#!/usr/bin/env bash
# deploy-agent on the embedded broker with a real git repo and clone (docs/deploy-agent.md,
# docs/deploy-protocol.md): ping/tags/state; vote then commit deploys with hooks that write files
# (release dir, symlink swap, state file, audit lines, the original one-liner); a failing
# pre-deploy leaves the previous release live (status 1 with the stage output); hostile tags
# (shell metacharacters, absent, ../x, 10 kB) refused with status 4 and no hook run; busy votes;
# a caller denied by policy; rollback; whitelisted and unknown commands; and a second agent with
# signatures required (unsigned and replayed requests refused and audited) whose only repo config
# is the original gitagent facts file. One broker for the whole script.
#   tests/integration/deploy_agent.sh DEPLOY_AGENT STOMP_BROKER STOMPCTL
set -uo pipefail
agent=$(realpath "$1") STOMP_BROKER=$(realpath "$2") stompctl=$(realpath "$3")
NAME=deploy_agent
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
w=$WORK
git_sandbox "$w"
me=$(id -un)

# ---- a repo with three tags, and the clone the agent deploys from ----
tagged_repo "$w/dev" --spaced v1 v2 v3
git clone -q --mirror "$w/dev" "$w/clone.git"

# ---- hooks: every run leaves a line in hooks.log; pre-deploy refuses v3 ----
mkdir -p "$w/control" "$w/state1" "$w/state2" "$w/control2"
cat >"$w/control/pre-deploy.sh" <<SH
#!/bin/sh
echo "pre-deploy \$2 \$(pwd)" >>"$w/hooks.log"
[ "\$2" = v3 ] && { echo "refusing v3 on purpose"; exit 3; }
echo "pre ok \$2"
SH
cat >"$w/control/pre-link.sh" <<SH
#!/bin/sh
echo "pre-link \$2 \$DEPLOY_RELEASE" >>"$w/hooks.log"
SH
cat >"$w/control/post-deploy.sh" <<SH
#!/bin/sh
echo "post-deploy \$2 \$(cat $w/site/version)" >>"$w/hooks.log"
[ -z "\${SECRET_FROM_ENV:-}" ] || echo "environment leaked" >>"$w/hooks.log"
SH
cp "$w/control/pre-deploy.sh" "$w/control2/pre-deploy.sh"
chmod 755 "$w"/control/*.sh "$w"/control2/*.sh
: >"$w/hooks.log"

bport=$(free_port) aport=$(free_port)
url="stomp://127.0.0.1:$bport"
start_broker "$w/broker" "$bport"

cat >"$w/agent1.yaml" <<YAML
rserver: $url
identity: web01
facts-file: $w/no-facts.yaml
state-dir: $w/state1
admin-listen: 127.0.0.1:$aport
heartbeat-interval: 30s
hook-timeout: 20s
wire-format: both
repos:
  site:
    repo: $w/clone.git
    sitedir: $w/site
    controldir: $w/control
    user: $me
    keep: 3
commands:
  hello: [/bin/echo, hello from the whitelist]
  whoami:
    argv: [/usr/bin/id, -un]
    user: $me
    dir: /tmp
    timeout: 5s
policy:
  - {caller: mallory, effect: deny}
  - {caller: "*", action: "*", effect: allow}
YAML

# A config error names file, line and key (exit 2).
printf 'rserver: %s\nrepos:\n  site:\n    repo: relative/path\n    sitedir: /x\n    controldir: /y\n' "$url" >"$w/bad.yaml"
"$agent" -c "$w/bad.yaml" --check-config 2>"$w/bad.err"
rc=$?
[[ $rc == 2 ]] && grep -q "bad.yaml:4.*repos.site.repo.*absolute" "$w/bad.err" && pass "config error names file, line and key" ||
  fail "bad config: rc=$rc $(cat "$w/bad.err")"

# Subscribers: replies, audit, the original one-liner, the agent topic.
start_subscriber replies "$stompctl" -u "$url" subscribe -t /topic/deploykit.deploy.reply.t1 --events --wait 300 || fatal "subscriber"
start_subscriber audit "$stompctl" -u "$url" subscribe -t /topic/deploykit.deploy.audit --events --wait 300 || fatal "subscriber"
start_subscriber legacy "$stompctl" -u "$url" subscribe -t /topic/future.events.deploys --wait 300 || fatal "subscriber"
start_subscriber agents "$stompctl" -u "$url" subscribe -t /topic/deploykit.deploy.agents --events --wait 300 || fatal "subscriber"

bg env SECRET_FROM_ENV=x "$agent" -c "$w/agent1.yaml" 2>"$w/agent1.log"
A1=$BG_PID
wait_text "$w/agent1.log" "subscribed to" 15 || fatal "agent 1 not ready: $(tail -5 "$w/agent1.log")"
pass "agent 1 ready"
wait_text "$w/agents.out" '"identity":"web01"' 10 && pass "heartbeat on the agent topic" || fail "no heartbeat"

# req ID ACTION PHASE ARGS [DEST] [CALLER] [JOB] [EXTRA stompctl args...]
deadline() { date -u -d "+${1:-60} sec" +%Y-%m-%dT%H:%M:%SZ; }
body() { # ID ACTION PHASE ARGS CALLER JOB
  printf '{"v":1,"id":"%s","type":"agent.request","time":"%s","host":"ops1","data":{"request_id":"%s","job_id":"%s","action":"%s","phase":"%s","args":%s,"caller":"%s","deadline":"%s","reply_to":"/topic/deploykit.deploy.reply.t1"}}' \
    "$(cat /proc/sys/kernel/random/uuid)" "$(deadline 0)" "$1" "$6" "$2" "$3" "$4" "$5" "$(deadline 60)"
}
req() {
  local id=$1 action=$2 phase=$3 args=$4 dest=${5:-/topic/deploykit.deploy.requests} caller=${6:-alice} job=${7:-j-$1}
  shift 7 2>/dev/null || shift $#
  body "$id" "$action" "$phase" "$args" "$caller" "$job" >"$w/req-$id.json"
  "$stompctl" -u "$url" publish -t "$dest" -f "$w/req-$id.json" "${json_headers[@]}" "$@" >/dev/null 2>>"$w/publish.err"
}
Q1=/queue/deploykit.deploy.node.web01
json_headers=(-H content-type:application/json -H dk-event-type:agent.request)
# field ID PATH: a value of the reply to request ID (python path into data, e.g. status, data.tag)
field() {
  "$PY" - "$w/replies.out" "$1" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try: e = json.loads(line)
    except ValueError: continue
    d = e.get("data", {})
    if d.get("request_id") != sys.argv[2]: continue
    v = d
    try:
        for k in sys.argv[3].split("."):
            v = v[int(k)] if isinstance(v, list) else v.get(k)
    except (IndexError, AttributeError, ValueError):
        v = None  # absent: an empty answer
    if v is None: break
    print(v if not isinstance(v, (dict, list)) else json.dumps(v))
    break
PY
}
has_reply() { has_text "$w/replies.out" "\"request_id\":\"$1\""; }
wait_reply() { wait_for "${2:-20}" has_reply "$1" || { fail "no reply to $1"; return 1; }; }
live_version() { cat "$w/site/version" 2>/dev/null; }

# ---- direct actions ----
req p1 ping direct '{}'
wait_reply p1 && [[ $(field p1 status) == 0 && $(field p1 data.identity) == web01 && $(field p1 data.repos.0.name) == site ]] &&
  pass "ping: status 0 with identity and repos" || fail "ping: $(field p1 data)"
req t1 tags direct '{"repo":"site","count":2}'
wait_reply t1 && [[ $(field t1 data.tags.0.name) == v3 && $(field t1 data.tags.1.name) == v2 && -z $(field t1 data.tags.2) ]] &&
  pass "tags: newest first, count honoured" || fail "tags: $(field t1 data)"
req s0 state direct '{"repo":"site"}'
wait_reply s0 && [[ $(field s0 status) == 0 && $(field s0 data.tag) == "" ]] && pass "state before any deploy" || fail "state: $(field s0 data)"

# ---- vote, then commit on the node's queue ----
deploy() { # ID TAG: vote + commit; waits for the commit's reply
  req "$1v" deploy vote "{\"repo\":\"site\",\"tag\":\"$2\"}" "" alice "job-$1" && wait_reply "$1v" || return 1
  [[ $(field "$1v" vote) == ready ]] || { echo "vote: $(field "$1v" message)"; return 1; }
  req "$1c" deploy commit "{\"repo\":\"site\",\"tag\":\"$2\"}" "$Q1" alice "job-$1" && wait_reply "$1c" 60
}
deploy d1 v1
if [[ $(field d1c status) == 0 && $(live_version) == v1 && -L $w/site ]]; then pass "deploy v1: status 0, site links to it"; else fail "deploy v1: $(field d1c message) $(field d1c stages)"; fi
rel1=$(readlink "$w/site")
[[ $rel1 == "$w/site.releases/"*-v1 && -d $rel1 && ! -e $rel1/.git ]] && pass "release directory $(basename "$rel1") without .git" || fail "release: $rel1"
[[ $(field d1c stages.0.name) == pre-deploy && $(field d1c stages.1.name) == checkout && $(field d1c stages.3.name) == link &&
  $(field d1c stages.4.name) == post-deploy && $(field d1c stages.0.output) == *"pre ok v1"* ]] &&
  pass "reply has every stage with output" || fail "stages: $(field d1c stages)"
has_text "$w/hooks.log" "pre-deploy v1 $w/control" && has_text "$w/hooks.log" "pre-link v1 $rel1" && has_text "$w/hooks.log" "post-deploy v1 v1" &&
  pass "hooks ran in order, in the controldir, with -t TAG" || fail "hooks: $(cat "$w/hooks.log")"
! has_text "$w/hooks.log" "environment leaked" && pass "hooks get a clean environment" || fail "environment leaked into a hook"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); r=d["releases"][-1]; sys.exit(0 if r["tag"]=="v1" and r["by"]=="alice" and r["request_id"]=="d1c" else 1)' "$w/state1/site.json" &&
  pass "state file records tag, caller and request id" || fail "state file: $(cat "$w/state1/site.json")"
wait_line "$w/legacy.out" "git-agent on web01 checked out tag v1 from repo site request id d1c" 10 &&
  pass "the original one-liner on future.events.deploys" || fail "legacy: $(cat "$w/legacy.out")"
wait_text "$w/audit.out" '"request_id":"d1c"' 10 && grep -F '"request_id":"d1c"' "$w/audit.out" | grep -q '"status":0' &&
  grep -q 'audit {"action":"deploy"' "$w/agent1.log" && pass "audit event and JSON log line" || fail "audit: $(tail -3 "$w/audit.out")"

deploy d2 v2
[[ $(field d2c status) == 0 && $(live_version) == v2 && $(field d2c data.previous_tag) == v1 ]] && pass "deploy v2 replaces v1" || fail "deploy v2: $(field d2c message)"
req s1 state direct '{"repo":"site"}'
wait_reply s1 && [[ $(field s1 data.tag) == v2 && $(field s1 data.previous.tag) == v1 && $(field s1 data.by) == alice ]] &&
  pass "state: tag, previous, by" || fail "state: $(field s1 data)"

# ---- a failing pre-deploy leaves v2 live ----
deploy d3 v3
[[ $(field d3c status) == 1 && $(field d3c stages.0.exit_code) == 3 && $(field d3c stages.0.output) == *"refusing v3 on purpose"* &&
  $(live_version) == v2 && -z $(field d3c stages.1.name) ]] &&
  pass "failing pre-deploy: status 1, its output, v2 still live" || fail "failing pre-deploy: $(field d3c status) $(field d3c stages) $(live_version)"

# ---- hostile tags: status 4, nothing run ----
before=$(lines "$w/hooks.log")
long=$(head -c 10240 /dev/zero | tr '\0' a)
i=0
for tag in '$(touch /tmp/pwned)' 'v1;id' 'v9' '../x' "$long"; do
  i=$((i + 1))
  esc=$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$tag")
  req "h${i}v" deploy vote "{\"repo\":\"site\",\"tag\":$esc}" "" alice "job-h$i"
  req "h${i}c" deploy commit "{\"repo\":\"site\",\"tag\":$esc}" "$Q1" alice "job-h$i"
  wait_reply "h${i}v" && wait_reply "h${i}c"
  v=$(field "h${i}v" status) c=$(field "h${i}c" status)
  # The absent tag is a valid name: its commit without a ready vote is answered "no vote" (1).
  if [[ $v == 4 && $(field "h${i}v" vote) == refusing && ($c == 4 || ($tag == v9 && $c == 1)) ]]; then
    pass "tag ${tag:0:20}: vote refused with status 4, commit $c"
  else fail "tag ${tag:0:20}: vote $v commit $c $(field "h${i}v" message)"; fi
done
[[ $(lines "$w/hooks.log") == "$before" && ! -e /tmp/pwned && $(live_version) == v2 ]] && pass "no hook ran for hostile tags" || fail "hooks ran: $(tail -3 "$w/hooks.log")"
grep -F '"request_id":"h5v"' "$w/audit.out" | grep -q '…\[truncated\]' && pass "the 10 kB tag is audited truncated" || fail "audit of long tag"

# ---- busy: a second job cannot vote for a reserved repo; release frees it ----
req b1 deploy vote '{"repo":"site","tag":"v1"}' "" alice job-b1
wait_reply b1
req b2 deploy vote '{"repo":"site","tag":"v1"}' "" alice job-b2
wait_reply b2 && [[ $(field b2 vote) == busy && $(field b2 status) == 1 ]] && pass "second job votes busy" || fail "busy: $(field b2 vote) $(field b2 message)"
req b3 deploy release '{"repo":"site","tag":"v1"}' "" alice job-b1
req b4 deploy vote '{"repo":"site","tag":"v1"}' "" alice job-b4
wait_reply b4 && [[ $(field b4 vote) == ready ]] && pass "release frees the reservation" || fail "after release: $(field b4 vote)"
req b5 deploy release '{"repo":"site","tag":"v1"}' "" alice job-b4

# ---- policy ----
req m1 state direct '{"repo":"site"}' "" mallory
wait_reply m1 && [[ $(field m1 status) == 1 && $(field m1 message) == *"denied by policy"* ]] && pass "mallory denied by policy" ||
  fail "policy: $(field m1 status) $(field m1 message)"
wait_text "$w/audit.out" '"request_id":"m1"' 10 && grep -F '"request_id":"m1"' "$w/audit.out" | grep -q '"caller":"mallory"' &&
  pass "the denial is audited with the caller" || fail "policy audit"

# ---- rollback ----
req r1v rollback vote '{"repo":"site"}' "" alice job-r1
wait_reply r1v && req r1c rollback commit '{"repo":"site"}' "$Q1" alice job-r1 && wait_reply r1c 60
[[ $(field r1c status) == 0 && $(live_version) == v1 && $(readlink "$w/site") == "$rel1" ]] && pass "rollback to v1 (same release dir)" ||
  fail "rollback: $(field r1c message) $(live_version)"
has_text "$w/hooks.log" "post-deploy v1 v1" && [[ $(grep -c "pre-deploy v1" "$w/hooks.log") -ge 2 ]] && pass "rollback ran the hooks" || fail "rollback hooks"

# ---- run ----
req x1v run vote '{"command":"hello"}' "" alice job-x1
wait_reply x1v && req x1c run commit '{"command":"hello"}' "$Q1" alice job-x1 && wait_reply x1c
[[ $(field x1c status) == 0 && $(field x1c stages.0.output) == *"hello from the whitelist"* ]] && pass "run of a whitelisted command" || fail "run: $(field x1c stages)"
req x2v run vote '{"command":"rm-rf"}' "" alice job-x2
wait_reply x2v && [[ $(field x2v status) == 4 ]] && pass "run of an unknown command: status 4" || fail "unknown command: $(field x2v status)"
req x3 frobnicate direct '{}'
wait_reply x3 && [[ $(field x3 status) == 2 ]] && pass "unknown action: status 2" || fail "unknown action: $(field x3 status)"
req x4 deploy commit '{"repo":"site","tag":"v2"}' "$Q1" alice job-never
wait_reply x4 && [[ $(field x4 status) == 1 && $(field x4 message) == *"no vote"* ]] && pass "commit without a vote: status 1" || fail "no vote: $(field x4 message)"

metrics=$(http_get "$aport" /metrics)
grep -q '^deploy_agent_deploys_total 2' <<<"$metrics" && pass "metrics count deploys" || fail "metrics: $(grep deploy_agent_deploys <<<"$metrics")"

stop_pid "$A1" 10
grep -qi '\[error\]' "$w/agent1.log" && fail "errors in agent 1's log: $(grep -i '\[error\]' "$w/agent1.log" | head -3)"

# ---- agent 2: signatures required; the original facts file is its only repo config ----
printf 'ops 0123456789abcdef0123456789abcdef\n' >"$w/keys"
chmod 600 "$w/keys"
git clone -q --mirror "$w/dev" "$w/clone2.git"
cat >"$w/facts.yaml" <<YAML
---
osfamily: Debian
repo_www: $w/clone2.git
sitedir_www: $w/www
controldir_www: $w/control2
sitetype_www: live
YAML
cat >"$w/agent2.yaml" <<YAML
rserver: $url
identity: web02
facts-file: $w/facts.yaml
default-user: $me
state-dir: $w/state2
verify-key-file: $w/keys
require-signatures: true
policy:
  - {caller: ops, effect: allow}
YAML
bg "$agent" -c "$w/agent2.yaml" 2>"$w/agent2.log"
wait_text "$w/agent2.log" "subscribed to" 15 || fatal "agent 2 not ready: $(tail -5 "$w/agent2.log")"
Q2=/queue/deploykit.deploy.node.web02
sign=(--key-file "$w/keys" --key-id ops)
req u1 ping direct '{}' "$Q2" ops job-u1
req g1 ping direct '{}' "$Q2" ops job-g1 "${sign[@]}"
wait_reply g1 && [[ $(field g1 status) == 0 && $(field g1 data.repos.0.name) == www && $(field g1 data.facts.osfamily) == Debian ]] &&
  pass "signed ping answered; repos from the facts file" || fail "signed ping: $(field g1 data)"
! has_reply u1 && grep -F '"request_id":"u1"' "$w/audit.out" | grep -q 'refused: signature' && pass "unsigned request refused and audited" ||
  fail "unsigned: $(grep -F u1 "$w/audit.out")"
# Replay: the same signed event again.
"$stompctl" -u "$url" publish -t "$Q2" -f "$w/req-g1.json" "${json_headers[@]}" "${sign[@]}" >/dev/null 2>&1
replayed() { grep -F '"request_id":"g1"' "$w/audit.out" | grep -q replay; }
wait_for 10 replayed && [[ $(grep -c '"request_id":"g1"' "$w/replies.out") == 1 ]] &&
  pass "replayed request refused and audited" || fail "replay: $(grep -F g1 "$w/audit.out")"
req f1v deploy vote '{"repo":"www","tag":"v2"}' "" ops job-f1 "${sign[@]}"
wait_reply f1v && req f1c deploy commit '{"repo":"www","tag":"v2"}' "$Q2" ops job-f1 "${sign[@]}" && wait_reply f1c 60
[[ $(field f1c status) == 0 && $(cat "$w/www/version" 2>/dev/null) == v2 ]] && pass "deploy from the facts-file repo as signed caller ops" ||
  fail "facts deploy: $(field f1c message) $(field f1c stages)"
grep -F '"request_id":"f1c"' "$w/audit.out" | grep -q '"verified":true' && pass "audit marks the signed caller verified" || fail "verified"

finish
