#!/usr/bin/env bash
# stomp-ci's latency (issue #17): (1) push -> job start: $EPOCHREALTIME before `git push` to the
# first thing the job's step does (it writes `date +%s.%N`), through the stomp-post-receive hook,
# the embedded broker, the dispatcher, the job queue, the worker, the mirror check, the libgit2
# checkout and the drop to nobody; (2) the worker's overhead on a job that runs /bin/true: the
# run's duration_s (from the completed event: mirror check, checkout, chown, spawn, wait) minus
# the time /bin/true takes when bash runs it. One dispatcher+worker process (dispatch: true,
# workers: 1). Not a test: no assertions on time. Run it under the CPU lock:
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
: >"$WORK/push-start"
for i in $(seq 1 $((WARMUP + RUNS))); do
  (cd "$WORK/dev" && git commit -q --allow-empty -m "s$i")
  t=$EPOCHREALTIME
  (cd "$WORK/dev" && git push -q origin master 2>/dev/null)
  wait_n start "$i"
  ((i > WARMUP)) && echo "$t $(sed -n "${i}p" "$WORK/ledger/starts")" >>"$WORK/push-start"
done
# (2) /bin/true through the worker
for i in $(seq 1 $((WARMUP + RUNS))); do
  (cd "$WORK/dev" && git commit -q --allow-empty -m "t$i" && git push -q origin HEAD:refs/heads/true 2>/dev/null)
  wait_n true "$i"
done
grep -F '"phase":"completed"' "$WORK/builds" | grep -F '"job":"true"' | tail -n "$RUNS" >"$WORK/true-runs"
bare=$(for _ in $(seq 1 "$RUNS"); do t=$EPOCHREALTIME; /bin/true; echo "$t $EPOCHREALTIME"; done)
$PY - "$WORK/push-start" "$WORK/true-runs" "$bare" <<'PYEOF'
import json, statistics, sys
def q(v, p): v = sorted(v); return v[min(len(v) - 1, int(p * len(v)))]
ps = [ (float(b) - float(a)) * 1000 for a, b in (l.split() for l in open(sys.argv[1])) ]
runs = [json.loads(l)["data"] for l in open(sys.argv[2])]
dur = [r["duration_s"] * 1000 for r in runs]
step = [r["steps"][0]["duration_s"] * 1000 for r in runs]
bare = [ (float(b) - float(a)) * 1000 for a, b in (l.split() for l in sys.argv[3].splitlines()) ]
print("| measurement | median | p90 | max | goal |")
print("|---|---|---|---|---|")
print("| push -> job start (embedded broker), ms | %.1f | %.1f | %.1f | < 200 |" % (statistics.median(ps), q(ps, .9), max(ps)))
over = [d - statistics.median(bare) for d in dur]
print("| worker overhead on /bin/true (run duration - bare /bin/true), ms | %.1f | %.1f | %.1f | < 50 |" % (statistics.median(over), q(over, .9), max(over)))
print("| of which the step itself (spawn as nobody + wait), ms | %.1f | %.1f | %.1f | |" % (statistics.median(step), q(step, .9), max(step)))
print("| bare /bin/true from bash, ms | %.2f | %.2f | %.2f | |" % (statistics.median(bare), q(bare, .9), max(bare)))
PYEOF
