#!/usr/bin/env bash
# stomp-ci end to end (docs/stomp-ci.md) on real git and a real broker: a push through the
# stomp-post-receive hook -> a dispatcher (workers: 0) puts one job message per matching job on
# the job queue -> two workers (competing consumers) run it in a clean libgit2 checkout as
# `nobody` under rlimits -> the completed build event carries the log URL, which serves the log.
# Embedded broker: also a failing step, a timeout (the step's background child, whose pid it
# wrote, is gone: the whole process group was killed), a memory limit, a write outside the work
# dir (refused by permissions), hostile repo/ref in a commit event and in a job message (refused,
# nothing run), the slow-run flag, a dataset the job tries to change (read-only mount: unchanged),
# artifacts (kept, served, no symlink followed), a cgroup per run (a test-mounted cgroup2: a
# setsid'd leftover is killed with the run). Both brokers: 20 jobs spread over two workers, each
# run and reported exactly once; kill -9 of the worker running a job -> it reruns on the other
# and its completed event is reported once; SIGTERM mid-job -> requeued past stop-grace and rerun,
# or finished within it; reported once.
#   tests/integration/stomp_ci.sh STOMP_BROKER STOMPCTL STOMP_POST_RECEIVE STOMP_CI [embedded|rabbitmq]
set -uo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") hookbin=$(realpath "$3") ci=$(realpath "$4")
kind=${5:-embedded}
NAME=stomp_ci_$kind
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
chmod 755 "$work"  # jobs run as nobody: their work dirs must be reachable
id nobody >/dev/null 2>&1 || fatal "no user nobody"
[[ $(id -u) == 0 ]] || fatal "runs as root (jobs drop to nobody)"
git_sandbox "$work"

read -r bport lport_a lport_b aport <<<"$(free_ports 4)"
case $kind in
  embedded)
    url="stomp://127.0.0.1:$bport"
    embedded_broker "$broker" "$bport" "$work/broker.log" --data-dir "$work/broker-data" || fatal "broker did not start" ;;
  rabbitmq)
    url="stomp://guest:guest@127.0.0.1:$bport"
    start_kind rabbitmq "$work/brokers/rabbit" "$bport" >"$work/broker.log" 2>&1 || fatal "rabbitmq did not start: $(tail -5 "$work/broker.log")" ;;
  *) fatal "usage: $0 ... [embedded|rabbitmq]" ;;
esac

# The central repository with the hook, and a test script in it.
git init -q --bare "$work/origin/site.git"
printf 'rserver: %s\nwire-format: both\nspool-dir: %s/hook-spool\n' "$url" "$work" >"$work/hook.yaml"
export DEPLOYKIT_HOOK_CONFIG=$work/hook.yaml
"$hookbin" --install "$work/origin/site.git" >/dev/null || fatal "hook install"
git clone -q "$work/origin/site.git" "$work/dev" 2>/dev/null
mkdir -p "$work/dev/ci"
cat >"$work/dev/ci/test.sh" <<'SH'
#!/bin/sh
# A clean checkout: nothing left from an earlier run, the tree at the pushed revision.
set -e
[ ! -e leftover ] || { echo "not a clean checkout"; exit 1; }
touch leftover
grep -q '^v' version || { echo "no version file"; exit 1; }
echo "testing $(cat version) as $(id -un) in $PWD"
echo "tests passed"
SH
chmod +x "$work/dev/ci/test.sh"
echo v1 >"$work/dev/version"
(cd "$work/dev" && git add . && git commit -qm one && git push -q origin master 2>/dev/null)

mkdir -m 777 "$work/ledger"        # where jobs record what they did (nobody writes it)
mkdir -m 755 "$work/outside"       # root's: a job must not write here
# A cgroup v2 hierarchy of the test's own (this host's /sys/fs/cgroup is v1): a cgroup per run.
mkdir "$work/cg"
mount -t cgroup2 none "$work/cg" || fatal "cannot mount a cgroup2 hierarchy"
on_exit "umount -l '$work/cg'"
# A dataset anyone may write by its modes: only the read-only mount keeps the job from changing it.
mkdir -m 777 "$work/dataset"; echo "sample v1" >"$work/dataset/rows"; chmod 666 "$work/dataset/rows"
jobs_yaml="      - {name: unit, refs: [refs/heads/master], steps: [[./ci/test.sh]], timeout: 60}
      - name: fail
        refs: [refs/heads/fail]
        steps: [[/bin/sh, -c, 'echo about to fail; exit 3'], [/bin/echo, never]]
      - name: hang
        refs: [refs/heads/hang]
        timeout: 2
        env: {PIDFILE: $work/ledger/hang.pids}
        steps: [[/bin/sh, -c, 'sleep 300 & echo \$! > \$PIDFILE; echo \$\$ >> \$PIDFILE; wait']]
      - name: mem
        refs: [refs/heads/mem]
        limits: {memory: 128M}
        steps: [[/usr/bin/python3, -c, 'b = bytearray(256 * 1024 * 1024); print(\"allocated\")']]
      - name: escape
        refs: [refs/heads/escape]
        env: {OUTSIDE: $work/outside}
        steps: [[/bin/sh, -c, 'echo owned > \$OUTSIDE/owned']]
      - name: slowish
        refs: [refs/heads/slow]
        slow-factor: 3
        env: {LEDGER: $work/ledger}
        steps: [[/bin/sh, -c, 'if [ -e \$LEDGER/make-slow ]; then sleep 1.5; else sleep 0.1; fi']]
      - name: dataset
        refs: [refs/heads/dataset]
        datasets: [$work/dataset]
        steps: [[/bin/sh, -c, 'cat \$CI_DATASETS/rows; echo changed > \$CI_DATASETS/rows; echo new > \$CI_DATASETS/new']]
      - name: arts
        refs: [refs/heads/arts]
        artifacts: [out, '*.txt']
        steps: [[/bin/sh, -c, 'mkdir -p out/sub && echo report > out/report.xml && echo deep > out/sub/a.txt && echo top > top.txt && echo no > skip.dat && ln -s /etc/passwd out/passwd && ln -s /etc out/etc']]
      - name: escapee
        refs: [refs/heads/escapee]
        env: {LEDGER: $work/ledger}
        steps: [[/bin/sh, -c, 'setsid sleep 300 & echo \$! > \$LEDGER/escapee.pid; echo \$\$ >> \$LEDGER/escapee.pid']]
      - name: term
        refs: [refs/heads/term]
        env: {LEDGER: $work/ledger}
        steps: [[/bin/sh, -c, 'echo \$CI_WORKDIR >> \$LEDGER/term.starts; i=0; while [ ! -e \$LEDGER/term.release ] && [ \$i -lt 1200 ]; do sleep 0.05; i=\$((i+1)); done; echo \$CI_RUN_ID >> \$LEDGER/term.done']]
      - name: victim
        refs: [refs/heads/victim]
        env: {LEDGER: $work/ledger}
        steps: [[/bin/sh, -c, 'echo \$CI_WORKDIR >> \$LEDGER/victim.starts; i=0; while [ ! -e \$LEDGER/release ] && [ \$i -lt 1200 ]; do sleep 0.05; i=\$((i+1)); done; echo \$CI_RUN_ID >> \$LEDGER/victim.done']]"
for i in $(seq -w 1 20); do
  jobs_yaml+="
      - {name: p$i, refs: [refs/heads/spread], env: {LEDGER: $work/ledger}, steps: [[/bin/sh, -c, 'echo \$CI_RUN_ID \$CI_JOB >> \$LEDGER/spread; sleep 0.2']]}"
done
conf() { # NAME WORKERS DISPATCH LOGPORT [extra]
  mkdir -p "$work/$1"
  cat >"$work/$1.yaml" <<YAML
rserver: $url
wire-format: both
dispatch: $3
workers: $2
user: nobody
durable-name: ""
work-dir: $work/$1/work
mirror-dir: $work/$1/mirrors
state-dir: $work/$1/state
spool-dir: $work/$1/spool
keep-runs: 50
heartbeat-interval: 0
${4:+log-listen: 127.0.0.1:$4}
${5:-}
repos:
  site:
    url: $work/origin/site.git
    jobs:
$jobs_yaml
YAML
}
conf dispatcher 0 true "" "admin-listen: 127.0.0.1:$aport"
conf a 2 false "$lport_a" "stop-grace: 3
cgroup-root: $work/cg"
conf b 2 false "$lport_b" "stop-grace: 3
cgroup-root: $work/cg"
"$ci" --check-config -c "$work/a.yaml" >/dev/null 2>"$work/check.err" && pass "--check-config" || fatal "check-config: $(cat "$work/check.err")"
sed 's/^keep-runs:/keep-rnus:/' "$work/a.yaml" >"$work/typo.yaml"
rc=0; "$ci" --check-config -c "$work/typo.yaml" 2>"$work/typo.err" >/dev/null || rc=$?
[[ $rc == 2 ]] && grep -q "typo.yaml:[0-9]*: keep-rnus: unknown setting" "$work/typo.err" \
  && pass "a misspelt key: file, line and key, exit 2" || bad "typo rc=$rc: $(cat "$work/typo.err")"

start_subscriber builds "$stompctl" -u "$url" subscribe -t /topic/future.jenkins.builds --events --wait 170 || fatal "subscriber"
start_subscriber oneliners "$stompctl" -u "$url" subscribe -t /topic/future.events.jenkins --events --wait 170 || fatal "subscriber"
start_ci() { # NAME: starts stomp-ci with NAME.yaml; sets CI_PID, waits for READY through its log
  "$ci" -c "$work/$1.yaml" -d 2>>"$work/$1.log" &
  CI_PID=$!
  track "$CI_PID"
  wait_text "$work/$1.log" "stomp-ci: ready:" 15 || fatal "$1 not ready: $(tail -5 "$work/$1.log")"
}
start_ci dispatcher; dpid=$CI_PID
start_ci a; apid=$CI_PID
start_ci b; bpid=$CI_PID

# completed JOB [N]: the completed build events of job JOB (JSON lines), waits for at least N (1).
completed() { grep -F '"phase":"completed"' "$work/builds.out" | grep -F "\"job\":\"$1\"" || true; }
count_completed() { completed "$1" | wc -l; }
has_completed() { (($(count_completed "$1") >= ${2:-1})); }
wait_completed() { wait_for "${3:-30}" has_completed "$1" "${2:-1}"; }
field() { $PY -c 'import json,sys; d=json.loads(sys.stdin.readline())["data"]; v=d
for k in sys.argv[1].split("."): v=v[int(k)] if isinstance(v,list) else v[k]
print(v if not isinstance(v,(list,dict,bool)) else json.dumps(v))' "$1"; }
push() { # BRANCH [MESSAGE]: an empty commit pushed to BRANCH through the hook
  (cd "$work/dev" && git commit -q --allow-empty -m "${2:-$1}" && git push -q -f origin "HEAD:refs/heads/$1" 2>/dev/null)
}

if [[ $kind == embedded ]]; then
  # ---- a push runs the repository's test script in a clean checkout -------------------------
  t_push=$EPOCHREALTIME
  echo v2 >"$work/dev/version"; (cd "$work/dev" && git commit -qam two && git push -q origin master 2>/dev/null)
  rev=$(git -C "$work/origin/site.git" rev-parse master)
  if wait_completed unit 1 30; then
    ev=$(completed unit | head -1)
    st=$(field status <<<"$ev") u=$(field url <<<"$ev") c=$(field commit <<<"$ev")
    [[ $st == SUCCESS && $c == "$rev" ]] && pass "push -> unit job SUCCESS on $rev ($(elapsed "$t_push"))" || bad "unit: $ev"
    [[ $(field steps.0.status <<<"$ev") == SUCCESS && $(field steps.0.exit_code <<<"$ev") == 0 ]] \
      && pass "per-step results in the completed event" || bad "steps: $ev"
    logport=${u#http://127.0.0.1:}; logport=${logport%%/*}
    got=$(http_get "$logport" "/${u#http://127.0.0.1:*/}")
    [[ $got == 200* && $got == *"tests passed"* && $got == *"testing v2 as nobody"* ]] \
      && pass "the log URL serves the run's log (test script ran as nobody)" || bad "log $u: $got"
    grep -qF '"phase":"started"' "$work/builds.out" && grep -qF '"phase":"queued"' "$work/builds.out" \
      && pass "queued and started events too" || bad "no queued/started events"
    grep -qF "Complete job" "$work/oneliners.out" && pass "jenkins-helper's one-liner on future.events.jenkins" \
      || bad "no one-liner: $(head -3 "$work/oneliners.out")"
    [[ $(http_get "$logport" /logs/../../etc/passwd.log) == 404* && $(http_get "$logport" /etc/passwd) == 404* ]] \
      && pass "the log server serves run logs only" || bad "log server traversal"
    s=$(http_get "$logport" /status)
    [[ $s == 200*'"last"'* && $s == *"$rev"* ]] && pass "/status lists the last result" || bad "/status: $s"
  else
    bad "no completed event for the push: $(tail -5 "$work/a.log" "$work/b.log" "$work/dispatcher.log")"
  fi
  # A rerun of the same revision (recheck) in a fresh checkout: the script refuses a dirty tree.
  "$stompctl" -u "$url" publish -t /topic/deploykit.ci.recheck -m "{\"repo\":\"site\",\"commit\":\"$rev\",\"job\":\"unit\"}" >/dev/null
  wait_completed unit 2 30 && [[ $(completed unit | tail -1 | field status) == SUCCESS ]] \
    && pass "recheck reruns the job in a clean checkout" || bad "recheck: $(completed unit | tail -1)"

  # ---- failures ------------------------------------------------------------------------------
  push fail
  if wait_completed fail 1 30; then
    ev=$(completed fail)
    [[ $(field status <<<"$ev") == FAILURE && $(field steps.0.exit_code <<<"$ev") == 3 && $(field steps.1.status <<<"$ev") == SKIPPED ]] \
      && pass "a failing step: FAILURE, exit 3, later steps skipped" || bad "fail: $ev"
  else bad "no completed event for fail"; fi

  push hang
  if wait_completed hang 1 30; then
    ev=$(completed hang)
    [[ $(field status <<<"$ev") == TIMEOUT ]] && pass "a job past its timeout: TIMEOUT" || bad "hang: $ev"
    # Gone, or a zombie waiting for init to reap it (SIGKILL delivered): wait for that, bounded.
    living() { alive=""; local p s; while read -r p; do s=$(ps -o stat= -p "$p" 2>/dev/null) || continue; [[ $s == Z* ]] || alive+=" $p"; done <"$work/ledger/hang.pids"; [[ -n $alive ]]; }
    nothing_living() { ! living; }
    wait_for 5 nothing_living; living
    [[ -s $work/ledger/hang.pids && -z $alive ]] && pass "the whole process group was killed (no orphan: $(tr '\n' ' ' <"$work/ledger/hang.pids"))" \
      || bad "left running:$alive"
  else bad "no completed event for hang"; fi

  push mem
  if wait_completed mem 1 30; then
    ev=$(completed mem); u=$(field url <<<"$ev"); lp=${u#http://127.0.0.1:}; lp=${lp%%/*}
    log=$(http_get "$lp" "/${u#http://127.0.0.1:*/}")
    [[ $(field status <<<"$ev") == FAILURE && $log == *MemoryError* ]] \
      && pass "a job over its memory limit fails (MemoryError in its log)" || bad "mem: $ev $log"
  else bad "no completed event for mem"; fi

  push escape
  if wait_completed escape 1 30; then
    ev=$(completed escape)
    [[ $(field status <<<"$ev") == FAILURE && ! -e $work/outside/owned ]] \
      && pass "a job writing outside its work dir is refused by permissions" || bad "escape: $ev $(ls -la "$work/outside")"
  else bad "no completed event for escape"; fi

  # ---- hostile input: nothing runs --------------------------------------------------------
  runs_before=$(ls "$work/a/work" "$work/b/work" | grep -c '^[0-9a-f]\{32\}$')
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  zeros=0000000000000000000000000000000000000000
  for body in \
    "{\"v\":1,\"id\":\"h1-$RANDOM\",\"type\":\"commit\",\"host\":\"x\",\"time\":\"$now\",\"data\":{\"source\":\"git\",\"repo\":\"../site\",\"ref\":\"refs/heads/master\",\"old_rev\":\"$zeros\",\"new_rev\":\"$rev\"}}" \
    "{\"v\":1,\"id\":\"h2-$RANDOM\",\"type\":\"commit\",\"host\":\"x\",\"time\":\"$now\",\"data\":{\"source\":\"git\",\"repo\":\"site\",\"ref\":\"refs/heads/\$(touch /tmp/pwned)\",\"old_rev\":\"$zeros\",\"new_rev\":\"$rev\"}}" \
    "{\"v\":1,\"id\":\"h3-$RANDOM\",\"type\":\"commit\",\"host\":\"x\",\"time\":\"$now\",\"data\":{\"source\":\"git\",\"repo\":\"other\",\"ref\":\"refs/heads/master\",\"old_rev\":\"$zeros\",\"new_rev\":\"$rev\"}}"; do
    "$stompctl" -u "$url" publish -t /topic/future.git.commits -H content-type:application/json -m "$body" >/dev/null
  done
  # Straight onto the queue, past the dispatcher: a shell ref and a repo path.
  "$stompctl" -u "$url" publish -t /queue/deploykit.ci.jobs -m "{\"type\":\"ci.job\",\"run_id\":\"0123456789abcdef0123456789abcdef\",\"repo\":\"site\",\"job\":\"unit\",\"ref\":\"refs/heads/a;rm -rf /\",\"commit\":\"$rev\",\"event_id\":\"x\"}" >/dev/null
  "$stompctl" -u "$url" publish -t /queue/deploykit.ci.jobs -m "{\"type\":\"ci.job\",\"run_id\":\"0123456789abcdef0123456789abcdee\",\"repo\":\"../../etc\",\"job\":\"unit\",\"ref\":\"refs/heads/master\",\"commit\":\"$rev\",\"event_id\":\"x\"}" >/dev/null
  refusals() { cat "$work/dispatcher.log" "$work/a.log" "$work/b.log" | grep -cE "refused|dropped message|is not configured" || true; }
  enough_refusals() { (($(refusals) >= 5)); }
  wait_for 15 enough_refusals
  runs_after=$(ls "$work/a/work" "$work/b/work" | grep -c '^[0-9a-f]\{32\}$')
  [[ $(refusals) -ge 5 && $runs_before == "$runs_after" && ! -e /tmp/pwned ]] \
    && pass "hostile repo names and refs (events and job messages) refused, nothing run" \
    || bad "hostile: $(refusals) refusals, runs $runs_before -> $runs_after"
  # ---- datasets read-only, artifacts kept ------------------------------------------------------
  push dataset; push arts
  if wait_completed dataset 1 30; then
    ev=$(completed dataset); u=$(field url <<<"$ev"); lp=${u#http://127.0.0.1:}; lp=${lp%%/*}
    log=$(http_get "$lp" "/${u#http://127.0.0.1:*/}")
    [[ $(field status <<<"$ev") == FAILURE && $log == *"sample v1"* && $log == *"Read-only file system"* \
       && $(cat "$work/dataset/rows") == "sample v1" && ! -e $work/dataset/new ]] \
      && pass "a job writing into its dataset fails (read-only mount) and the dataset is unchanged" \
      || bad "dataset: $ev $log $(ls -la "$work/dataset")"
  else bad "no completed event for dataset"; fi
  if wait_completed arts 1 30; then
    ev=$(completed arts); arts=$(field artifacts <<<"$ev"); id=$(field run_id <<<"$ev")
    want="[\"$(field url <<<"$ev" | sed 's,/logs/.*,,')/artifacts/$id/out/report.xml\""
    [[ $(field status <<<"$ev") == SUCCESS && $arts == "$want"* && $arts == *"/out/sub/a.txt\""* && $arts == *"/top.txt\""* \
       && $arts != *passwd* && $arts != *skip.dat* && $arts != *"out/etc"* ]] \
      && pass "artifacts (a directory and a glob) listed as URLs in the completed event, symlinks not followed" || bad "artifacts: $arts"
    a1=$(field artifacts.0 <<<"$ev"); lp=${a1#http://127.0.0.1:}; lp=${lp%%/*}
    [[ $(http_get "$lp" "/${a1#http://127.0.0.1:*/}") == "200 report"* && $(http_get "$lp" "/artifacts/$id/out/passwd") == 404* \
       && $(http_get "$lp" "/artifacts/$id/%2e%2e/%2e%2e/logs/$id.log") == 404* ]] \
      && pass "the log server serves the kept artifacts, nothing else" || bad "artifact fetch $a1"
  else bad "no completed event for arts"; fi

  # ---- a cgroup per run: what left the process group (setsid) ends with the run --------------
  push escapee
  if wait_completed escapee 1 30; then
    ev=$(completed escapee); id=$(field run_id <<<"$ev")
    nothing_left() { local p s; while read -r p; do s=$(ps -o stat= -p "$p" 2>/dev/null) || continue; [[ $s == Z* ]] || return 1; done <"$work/ledger/escapee.pid"; }
    wait_for 5 nothing_left
    grep -q "a cgroup per run under $work/cg/stomp-ci.runs" "$work/a.log" && [[ $(field status <<<"$ev") == SUCCESS && -s $work/ledger/escapee.pid ]] \
      && nothing_left && [[ ! -e $work/cg/stomp-ci.runs/$id ]] \
      && pass "a cgroup per run: a process that left the job's process group (setsid) is killed with the run, the cgroup removed" \
      || bad "escapee: $ev; left: $(cat "$work/ledger/escapee.pid" | xargs -r ps -o pid,stat,cmd -p); $(ls "$work/cg/stomp-ci.runs")"
  else bad "no completed event for escapee"; fi

  m=$(http_get "$aport" /metrics)
  grep -qE '^stomp_ci_events_dropped_total\{reason="(invalid|refused)"\} [1-9]' <<<"$m" && pass "/metrics counts the refusals" || bad "metrics: $(grep -E "dropped|refused" <<<"$m")"
fi

# ---- two workers share the queue: 20 jobs, each run and reported once ------------------------
push spread
spread_done() { (($(grep -F '"job":"p' "$work/builds.out" | grep -cF '"phase":"completed"') >= 20)); }
wait_for 90 spread_done
spread_events() { grep -F '"phase":"completed"' "$work/builds.out" | grep -F '"job":"p' | $PY -c '
import json, sys
ids = [json.loads(l)["data"]["run_id"] for l in sys.stdin]
print(len(ids), len(set(ids)))'; }
read -r n uniq <<<"$(spread_events)"
ledger_n=$(wc -l <"$work/ledger/spread"); ledger_u=$(awk '{print $1}' "$work/ledger/spread" | sort -u | wc -l)
ran_a=$(grep -c "starting p" "$work/a.log"); ran_b=$(grep -c "starting p" "$work/b.log")
[[ $n == 20 && $uniq == 20 && $ledger_n == 20 && $ledger_u == 20 ]] \
  && pass "20 jobs, each run once and reported once ($kind)" || bad "spread: events $n/$uniq, runs $ledger_n/$ledger_u"
((ran_a > 0 && ran_b > 0 && ran_a + ran_b == 20)) && pass "spread over both workers (a $ran_a, b $ran_b)" || bad "spread a=$ran_a b=$ran_b"

# ---- kill -9 of the worker running a job: it reruns on the other, reported once --------------
push victim
wait_lines "$work/ledger/victim.starts" 1 30 || bad "victim never started"
first=$(head -1 "$work/ledger/victim.starts")
if [[ $first == "$work/a/"* ]]; then killed=a; kpid=$apid; survivor=b; else killed=b; kpid=$bpid; survivor=a; fi
kill -KILL "$kpid"; wait "$kpid" 2>/dev/null; untrack "$kpid"
wait_lines "$work/ledger/victim.starts" 2 60 || bad "the job did not rerun after kill -9 of $killed"
second=$(sed -n 2p "$work/ledger/victim.starts")
touch "$work/ledger/release"
wait_completed victim 1 60
# The other worker reported it; nothing else will (the killed one is gone for good).
[[ $second == "$work/$survivor/"* && $(count_completed victim) == 1 && $(completed victim | field status) == SUCCESS ]] \
  && pass "kill -9 of worker $killed mid-job: rerun on $survivor, reported once ($kind)" \
  || bad "victim: starts $(tr '\n' ' ' <"$work/ledger/victim.starts"), completed $(count_completed victim)"
[[ $(wc -l <"$work/ledger/victim.done") == 1 ]] && pass "the killed run's step died with its worker" || bad "victim.done: $(cat "$work/ledger/victim.done")"

if [[ $kind == embedded ]]; then
  # ---- slow-run flag: > 3x the median of this worker's history ------------------------------
  for i in 1 2 3; do push slow "slow $i"; wait_completed slowish "$i" 30 || bad "slowish run $i"; done
  touch "$work/ledger/make-slow"
  push slow "slow 4"
  if wait_completed slowish 4 30; then
    ev=$(completed slowish | tail -1)
    [[ $(field slow <<<"$ev") == true && $(field warnings <<<"$ev") == *"median"* ]] \
      && pass "a run slower than 3x its median is flagged slow" || bad "slow: $ev"
    [[ $(completed slowish | head -3 | grep -c '"slow":true') == 0 ]] && pass "the normal runs were not flagged" || bad "flags on normal runs"
    surv_port=$lport_a; [[ $survivor == b ]] && surv_port=$lport_b
    s=$(http_get "$surv_port" /status)
    [[ $s == *'"slow":1'* ]] && pass "the slow run is counted" || bad "status: $s"
  else bad "no 4th slowish run"; fi
fi

# ---- SIGTERM mid-job: past stop-grace (3 s) the run is ended and requeued; the other worker
# reruns it, and a SIGTERM there lets it finish within the grace: reported once ----------------
start_ci "$killed"; [[ $killed == a ]] && apid=$CI_PID || bpid=$CI_PID
push term
wait_lines "$work/ledger/term.starts" 1 30 || bad "term never started"
first=$(head -1 "$work/ledger/term.starts")
if [[ $first == "$work/a/"* ]]; then x=a xpid=$apid y=b ypid=$bpid; else x=b xpid=$bpid y=a ypid=$apid; fi
kill -TERM "$xpid"
wait_lines "$work/ledger/term.starts" 2 60 || bad "the job did not rerun after SIGTERM of $x"
wait_exit 30 "$xpid"
[[ $RC == 0 && $(sed -n 2p "$work/ledger/term.starts") == "$work/$y/"* ]] && grep -q "handed back to the queue" "$work/$x.log" \
  && pass "SIGTERM of worker $x mid-job: ended after stop-grace, requeued, rerun on $y, exit 0 ($kind)" \
  || bad "SIGTERM $x: rc=$RC starts $(tr '\n' ' ' <"$work/ledger/term.starts") $(grep -c "handed back" "$work/$x.log")"
kill -TERM "$ypid"
wait_text "$work/$y.log" "run(s) in progress finish or go back" 15 || bad "$y did not start stopping"
touch "$work/ledger/term.release"
wait_exit 30 "$ypid"
[[ $RC == 0 && $(count_completed term) == 1 && $(completed term | field status) == SUCCESS && $(lines "$work/ledger/term.done") == 1 ]] \
  && pass "SIGTERM of worker $y: the run finished within stop-grace, reported once, exit 0 ($kind)" \
  || bad "SIGTERM $y: rc=$RC completed $(count_completed term) done $(lines "$work/ledger/term.done")"
finish
