#!/usr/bin/env bash
# stomp-ci's latency (issue #17), one dispatcher+worker process (dispatch: true, workers: 1) on the
# embedded broker. Not a test: no assertions on time.
# (1) push -> job start: $EPOCHREALTIME before `git push` to the first thing the job's step does
#     (it writes `date +%s.%N`): git push, the stomp-post-receive hook, the broker, the
#     dispatcher, the job queue, the worker, the mirror fetch of the new commit, the libgit2
#     checkout, the chown and the drop to nobody. For scale: the same `git push` to a repository
#     without the hook.
# (2) the worker's overhead on a job that runs /bin/true: from the job message's arrival to the
#     receipt of its completed event (stomp-ci logs it per run: "reported: N ms ... steps M ms"),
#     minus the step's own time, counted two ways: minus /bin/true's time when bash runs it
#     (everything stomp-ci adds, spawn included) and minus the step time stomp-ci measured around
#     spawn() (what it adds around the step).
# Run it under the CPU lock:
#   flock /tmp/dk-cpu.lock bash bench/ci_bench.sh [RUNS]     (default 20, after 3 warm-up runs)
# Environment: STOMP_CI, STOMP_BROKER, STOMPCTL, STOMP_POST_RECEIVE (default: the build tree's).
set -uo pipefail
# shellcheck source=bench/bench_common.sh
. "$(dirname "$0")/bench_common.sh"
RUNS=${1:-20}
WARMUP=3
bench_binaries
STOMP_CI=${STOMP_CI:-$BENCH_ROOT/build/daemons/stomp-ci/stomp-ci}
need_binaries STOMP_BROKER STOMPCTL STOMP_POST_RECEIVE STOMP_CI
WORK=$(mktemp -d /tmp/ci-bench.XXXXXX)
chmod 755 "$WORK"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
die() { echo "ci_bench: $*" >&2; exit 1; }
bench_git_env "$WORK"
read -r bport lport <<<"$(free_ports 2)"
url="stomp://127.0.0.1:$bport"
"$STOMP_BROKER" --listen "127.0.0.1:$bport" 2>"$WORK/broker.log" & pids+=($!)
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$bport") 2>/dev/null && break; sleep 0.05; done
git init -q --bare "$WORK/origin/site.git"
git init -q --bare "$WORK/origin/plain.git"  # no hook: git push's own time
printf 'rserver: %s\nwire-format: native\n' "$url" >"$WORK/hook.yaml"
export DEPLOYKIT_HOOK_CONFIG=$WORK/hook.yaml
"$STOMP_POST_RECEIVE" --install "$WORK/origin/site.git" >/dev/null
git clone -q "$WORK/origin/site.git" "$WORK/dev" 2>/dev/null
(cd "$WORK/dev" && echo v1 >f && git add . && git commit -qm one && git push -q origin master 2>/dev/null)
mkdir -m 777 "$WORK/ledger"
cat >"$WORK/ci.yaml" <<YAML
rserver: $url
wire-format: native
dispatch: true
workers: 1
user: nobody
durable-name: ""
work-dir: $WORK/work
mirror-dir: $WORK/mirrors
state-dir: $WORK/state
keep-runs: 3
heartbeat-interval: 0
log-listen: 127.0.0.1:$lport
repos:
  site:
    url: $WORK/origin/site.git
    jobs:
      - {name: start, refs: [refs/heads/master], env: {L: $WORK/ledger/starts}, steps: [[/bin/sh, -c, 'date +%s.%N >> \$L']]}
      - {name: true, refs: [refs/heads/true], steps: [[/bin/true]]}
YAML
"$STOMPCTL" -u "$url" subscribe -t /topic/future.jenkins.builds --events --wait 3600 --ready-file "$WORK/sub.ready" >"$WORK/builds" 2>/dev/null & pids+=($!)
"$STOMP_CI" -c "$WORK/ci.yaml" 2>"$WORK/ci.log" & pids+=($!)
for _ in $(seq 200); do [[ -e $WORK/sub.ready ]] && grep -q "stomp-ci: ready:" "$WORK/ci.log" && break; sleep 0.05; done
completed() { grep -F '"phase":"completed"' "$WORK/builds" | grep -cF "\"job\":\"$1\""; }
wait_n() { local end=$((SECONDS + 30)); until (($(completed "$1") >= $2)); do ((SECONDS < end)) || die "no completed event for $1 #$2: $(tail -3 "$WORK/ci.log")"; sleep 0.01; done; }
wait_quiet "the stomp-ci benchmark"

# (1) push -> job start
(cd "$WORK/dev" && git remote add plain "$WORK/origin/plain.git" && git push -q plain master 2>/dev/null)
: >"$WORK/push-start"; : >"$WORK/push-plain"
for i in $(seq 1 $((WARMUP + RUNS))); do
  (cd "$WORK/dev" && git commit -q --allow-empty -m "s$i")
  t=$EPOCHREALTIME
  (cd "$WORK/dev" && git push -q origin master 2>/dev/null)
  wait_n start "$i"
  ((i > WARMUP)) && echo "$t $(sed -n "${i}p" "$WORK/ledger/starts")" >>"$WORK/push-start"
  t=$EPOCHREALTIME
  (cd "$WORK/dev" && git push -q plain master 2>/dev/null)
  ((i > WARMUP)) && echo "$t $EPOCHREALTIME" >>"$WORK/push-plain"
done
# (2) /bin/true through the worker
for i in $(seq 1 $((WARMUP + RUNS))); do
  (cd "$WORK/dev" && git commit -q --allow-empty -m "t$i" && git push -q origin HEAD:refs/heads/true 2>/dev/null)
  wait_n true "$i"
done
grep -F '"phase":"completed"' "$WORK/builds" | grep -F '"job":"true"' | tail -n "$RUNS" >"$WORK/true-runs"
true_ids=$(grep -F '"job":"true"' "$WORK/true-runs" | $PY -c 'import json,sys; print(" ".join(json.loads(l)["data"]["run_id"] for l in sys.stdin))')
for id in $true_ids; do grep -F "run $id reported:" "$WORK/ci.log" | sed 's/.*reported: \([0-9.]*\) ms.*steps \([0-9.]*\) ms.*/\1 \2/'; done >"$WORK/true-overhead"
bare=$(for _ in $(seq 1 "$RUNS"); do t=$EPOCHREALTIME; /bin/true; echo "$t $EPOCHREALTIME"; done)
[[ $(wc -l <"$WORK/true-overhead") == "$RUNS" ]] || die "missing 'reported:' lines in the worker's log"
$PY - "$WORK/push-start" "$WORK/true-runs" "$bare" "$WORK/push-plain" "$WORK/true-overhead" <<'PYEOF'
import json, statistics, sys
def q(v, p): v = sorted(v); return v[min(len(v) - 1, int(p * len(v)))]
def pairs(lines): return [(float(b) - float(a)) * 1000 for a, b in (l.split() for l in lines)]
ps = pairs(open(sys.argv[1]))
plain = pairs(open(sys.argv[4]))
runs = [json.loads(l)["data"] for l in open(sys.argv[2])]
dur = [r["duration_s"] * 1000 for r in runs]
bare = pairs(sys.argv[3].splitlines())
rep = [tuple(map(float, l.split())) for l in open(sys.argv[5])]
total = [t for t, _ in rep]
def row(name, v, goal=""): print("| %s | %.1f | %.1f | %.1f | %s |" % (name, statistics.median(v), q(v, .9), max(v), goal))
print("| measurement (ms) | median | p90 | max | goal |")
print("|---|---|---|---|---|")
row("push -> job start (embedded broker)", ps, "< 200")
row("  for scale: the same git push, no hook", plain)
row("overhead on /bin/true: job message -> completed receipted, minus bare /bin/true", [t - statistics.median(bare) for t in total], "< 50")
row("  same, minus the step time measured around spawn()", [t - s for t, s in rep], "")
row("  job message -> completed receipted (all of it)", total)
row("  run_job() alone (mirror check, checkout, chown, step)", dur)
row("  the step as stomp-ci measured it (spawn as nobody + wait)", [s for _, s in rep])
row("  bare /bin/true from bash", bare)
PYEOF
