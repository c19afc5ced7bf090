#!/usr/bin/env bash
# `deploy` rolling a tag out to five deploy-agent processes (own clones, sitedirs, state dirs,
# identities) on one broker: a full rollout with a canary and batches of 2 (summary, audit lines,
# job events); a pre-deploy failure past the threshold stops the rollout and leaves that node and
# the untouched ones on their old release; rollback; exec of a whitelisted and of an unknown
# command; a node killed mid-rollout shows as no reply within the deadline; quorum failure (two
# agents stopped) refuses with exit 3. Agent 5's only repo config is the original facts file.
# With KIND=rabbitmq only the full rollout runs (the core scenario on RabbitMQ).
#   tests/integration/deploy_rollout.sh DEPLOY DEPLOY_AGENT STOMP_BROKER STOMPCTL [embedded|rabbitmq]
set -uo pipefail
deploy=$(realpath "$1") agent=$(realpath "$2") STOMP_BROKER=$(realpath "$3") stompctl=$(realpath "$4")
kind=${5:-embedded}
bench=false
[[ $kind == bench ]] && { bench=true; kind=embedded; } # bench/deploy_bench.sh: timings, no cases
NAME=deploy_rollout_$kind
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
w=$WORK
git_sandbox "$w"
me=$(id -un)

tagged_repo "$w/dev" v1 v2 v3

bport=$(free_port)
case $kind in
  embedded) url="stomp://127.0.0.1:$bport"; start_broker "$w/broker" "$bport" ;;
  rabbitmq) url="stomp://guest:guest@127.0.0.1:$bport"; start_kind rabbitmq "$w/broker" "$bport" ;;
  *) echo "usage: $0 ... [embedded|rabbitmq]" >&2; exit 2 ;;
esac

# Five nodes: n1..n5, each with its own clone, control dir, sitedir and state dir. pre-deploy
# fails when $w/nK/fail exists; waits (bounded) when $w/nK/slow exists, after touching started.
declare -A PID
for k in 1 2 3 4 5; do
  d=$w/n$k
  mkdir -p "$d/control" "$d/state"
  git clone -q --mirror "$w/dev" "$d/clone.git"
  cat >"$d/control/pre-deploy.sh" <<SH
#!/bin/sh
echo "n$k pre \$2" >>"$w/hooks.log"
[ -e "$d/fail" ] && { echo "pre-deploy refuses on n$k"; exit 3; }
if [ -e "$d/slow" ]; then touch "$d/started"; i=0; while [ \$i -lt 200 ] && [ ! -e "$d/go" ]; do sleep 0.1; i=\$((i+1)); done; fi
exit 0
SH
  printf '#!/bin/sh\necho "n%s post $2" >>"%s/hooks.log"\n' "$k" "$w" >"$d/control/post-deploy.sh"
  chmod 755 "$d"/control/*.sh
  printf 'role: web\nidx: "%s"\n' "$k" >"$d/facts.yaml"
  if ((k == 5)); then
    # The original gitagent facts file as the only repo config.
    printf 'repo_site: %s\nsitedir_site: %s\ncontroldir_site: %s\nsitetype_site: live\nrole: web\nidx: "5"\n' \
      "$d/clone.git" "$d/site" "$d/control" >"$d/facts.yaml"
    repos=""
  else
    repos="repos:
  site: {repo: $d/clone.git, sitedir: $d/site, controldir: $d/control, user: $me, keep: 3}"
  fi
  cat >"$d/agent.yaml" <<YAML
rserver: $url
identity: n$k
facts-file: $d/facts.yaml
default-user: $me
state-dir: $d/state
hook-timeout: 30s
$repos
commands:
  hello: [/bin/echo, hello from the whitelist]
policy:
  - {caller: "*", action: "*", effect: allow}
YAML
  bg "$agent" -c "$d/agent.yaml" 2>"$d/agent.log"
  PID[$k]=$BG_PID
done
for k in 1 2 3 4 5; do
  wait_text "$w/n$k/agent.log" "subscribed to" 20 || fatal "agent n$k not ready: $(tail -5 "$w/n$k/agent.log")"
done
pass "five agents ready"
start_subscriber jobs "$stompctl" -u "$url" subscribe -t /topic/deploykit.deploy.jobs --events --wait 600 || fatal "subscriber"

D() { "$deploy" -u "$url" --discovery-timeout 1 "$@"; }
on() { readlink -f "$w/n$1/site" 2>/dev/null | grep -q -- "$2"; } # K TAG: node K's site is on TAG
check_on() { # TAG K...
  local t=$1 k bad=""
  shift
  for k; do on "$k" "$t" || bad+=" n$k($(readlink "$w/n$k/site"))"; done
  [[ -z $bad ]] && pass "on $t: $*" || fail "not on $t:$bad"
}

# ---- the first release everywhere, then a full rollout with a canary and batches of 2 ----
D run site v1 >"$w/run1.out" 2>&1
rc=$?
[[ $rc == 0 ]] && check_on v1 1 2 3 4 5 || fail "first rollout rc=$rc: $(cat "$w/run1.out")"
: >"$w/hooks.log"
t=$EPOCHREALTIME
D run site v2 --canary 1 --batch 2 --health-cmd "test -d $w" >"$w/run2.out" 2>&1
rc=$?
echo "five-node rollout (canary 1, batches of 2, health gate): $(elapsed "$t")"
if [[ $rc == 0 ]] && has_text "$w/run2.out" "discovered=5 responses=5 failcount=0 okcount=5"; then
  pass "rollout with canary and batches of 2: exit 0, summary okcount=5"
else
  fail "rollout rc=$rc: $(cat "$w/run2.out")"
fi
check_on v2 1 2 3 4 5
grep -q "canary 1/3: n1" "$w/run2.out" && grep -q "batch 2/3: n2 n3" "$w/run2.out" && grep -q "batch 3/3: n4 n5" "$w/run2.out" &&
  pass "canary first, then batches of 2" || fail "batches: $(grep '>>>' "$w/run2.out")"
[[ $(head -1 "$w/hooks.log") == "n1 pre v2" ]] && pass "the canary's hook ran first" || fail "hooks: $(cat "$w/hooks.log")"
grep -h '"action":"deploy"' "$w"/n*/agent.log | grep '"phase":"commit"' >/dev/null && pass "audit lines in the agents' logs" ||
  fail "no audit line: $(tail -3 "$w/n1/agent.log")"
wait_text "$w/jobs.out" '"state":"complete"' 5 && has_text "$w/jobs.out" '"state":"voting"' &&
  pass "deploy.job events: voting ... complete" || fail "job events: $(tail -3 "$w/jobs.out")"

if $bench; then
  for ((r = 0; r < ${DEPLOY_BENCH_ROUNDS:-5}; r++)); do
    tag=v$((r % 2 + 1))
    t=$EPOCHREALTIME
    D -v --json run site "$tag" --batch 1 >"$w/bench-$r.json" 2>"$w/bench-$r.err"
    echo "rollout $r ($tag, 5 batches of 1): rc=$? wall $(elapsed "$t")"
    "$PY" - "$w/bench-$r.json" "$w/bench-$r.err" <<'PY'
import json, re, sys
j = json.load(open(sys.argv[1]))
batches = [float(x) for x in re.findall(r"batch \d+ took ([0-9.]+) s", open(sys.argv[2]).read())]
hooks = []
for n, d in sorted(j["nodes_detail"].items()):
    st = d.get("detail", {}).get("stages", [])
    hooks.append(sum(s.get("duration_s", 0) for s in st))
over = [b - h for b, h in zip(batches, hooks)]
print("  batches (s):", " ".join("%.3f" % b for b in batches))
print("  stages  (s):", " ".join("%.3f" % h for h in hooks))
print("  bus overhead per batch: mean %.1f ms, max %.1f ms" % (1000 * sum(over) / max(1, len(over)), 1000 * max(over or [0])))
PY
  done
  finish
fi
if [[ $kind == embedded ]]; then
  # ---- a pre-deploy failure past the threshold stops the rollout ----
  touch "$w/n3/fail"
  D run site v3 --canary 1 --batch 2 --max-failures 0 >"$w/run3.out" 2>&1
  rc=$?
  [[ $rc == 1 ]] && has_text "$w/run3.out" "failcount=1" && has_text "$w/run3.out" "left untouched" &&
    pass "failure past the threshold stops the rollout (exit 1)" || fail "stop rc=$rc: $(cat "$w/run3.out")"
  check_on v3 1 2
  check_on v2 3 4 5
  rm -f "$w/n3/fail"

  # ---- rollback ----
  D rollback site -I n1 >"$w/rb.out" 2>&1
  rc=$?
  [[ $rc == 0 ]] && check_on v2 1 || fail "rollback rc=$rc: $(cat "$w/rb.out")"

  # ---- state and tags ----
  D state site --json >"$w/state.json" 2>"$w/state.err"
  rc=$?
  [[ $rc == 0 ]] && grep -q '"tag": "v2"' "$w/state.json" && pass "state of every node" || fail "state rc=$rc $(cat "$w/state.err")"
  D tags site >"$w/tags.out" 2>&1 && grep -q "^  v3" "$w/tags.out" && pass "tags on every node" ||
    fail "tags: $(cat "$w/tags.out")"

  # ---- exec ----
  D exec hello >"$w/exec.out" 2>&1
  rc=$?
  [[ $rc == 0 ]] && has_text "$w/exec.out" "hello from the whitelist" && pass "exec of a whitelisted command" ||
    fail "exec rc=$rc: $(cat "$w/exec.out")"
  D exec rm-rf >"$w/exec2.out" 2>&1
  rc=$?
  [[ $rc == 3 ]] && pass "exec of a command not on the list refused (exit 3)" || fail "exec unknown rc=$rc: $(cat "$w/exec2.out")"

  # ---- a node killed mid-rollout: no reply, bounded ----
  touch "$w/n2/slow"
  t=$EPOCHREALTIME
  D run site v3 -I n1 -I n2 --timeout 4 >"$w/kill.out" 2>&1 &
  dp=$!
  track "$dp"
  wait_file "$w/n2/started" 15 || fail "n2's hook never started"
  kill -KILL "${PID[2]}"
  wait_exit 20 "$dp"
  rc=$RC
  touch "$w/n2/go"
  [[ $rc == 1 ]] && grep -q "no reply from 1 node(s): n2" "$w/kill.out" && pass "a killed node is no reply; ended in $(elapsed "$t")" ||
    fail "killed node rc=$rc: $(cat "$w/kill.out")"

  # ---- quorum: two agents stopped ----
  stop_pid "${PID[4]}"
  D run site v3 --nodes n1,n3,n4,n5 >"$w/quorum.out" 2>&1
  rc=$?
  [[ $rc == 3 ]] && has_text "$w/quorum.out" "quorum not met" && pass "quorum failure refuses with exit 3" ||
    fail "quorum rc=$rc: $(cat "$w/quorum.out")"
  check_on v2 3
fi
finish
