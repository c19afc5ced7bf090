#!/usr/bin/env bash
# shellcheck disable=SC2317 # the trap's function looks unreachable to it
# Push -> fetched on many stomp-git instances, on the embedded broker (issue #5, benchmark 1).
#   bench/commit_path_bench.sh [PUSHES] [INSTANCES]      (defaults 30 pushes, 20 instances)
# Environment: BIN_DIR or STOMP_GIT/STOMP_BROKER/STOMPCTL/STOMP_POST_RECEIVE (bench/bench_common.sh),
#   GAP (0.5 s without any event before the next push), HOOK_WIRE (the
#   hook's wire-format: both, as scripts/run.sh, or native/legacy), RESULTS (a directory: also
#   write commit_path_fanout.json and .md there), QUIET_LOAD/QUIET_WAIT.
#
# One stomp-broker (journaled, as tests/brokers/broker.sh starts it) on a free loopback port; a
# bare repository "site" with stomp-post-receive installed; INSTANCES stomp-git daemons, each with
# its own config, client-id, clone and hostname (a UTS namespace, so that the fetched events say
# which instance they come from), alternately in mode normal and trusting, one worker each, no
# safety fetch. One `stompctl subscribe --events` on the report topic feeds a stamper that writes
# time.time() next to each event as it arrives. A warm-up push, then PUSHES pushes from a working
# clone; each push waits for all INSTANCES fetched events of the previous one (so no fetch
# coalesces), then until no event has arrived for GAP seconds (no-op second fetches included). Latency of a (push, instance) pair = the event's arrival time minus
# the time `git push` returned (both CLOCK_REALTIME, one machine). The table (stdout, Markdown) has
# p50/p90/p99/max of that, of the stomp-git worker's own duration_s, of the push itself, and of
# the time until the last instance of a push had fetched.
set -uo pipefail
# shellcheck source=bench/bench_common.sh
. "$(dirname "$0")/bench_common.sh"

PUSHES=${1:-30}
INSTANCES=${2:-20}
GAP=${GAP:-0.5}
HOOK_WIRE=${HOOK_WIRE:-both}
[[ $PUSHES =~ ^[1-9][0-9]*$ && $INSTANCES =~ ^[1-9][0-9]*$ && $GAP =~ ^[0-9.]+$ ]] ||
  { echo "usage: $0 [PUSHES] [INSTANCES]   (positive integers; env GAP, HOOK_WIRE, BIN_DIR, RESULTS)" >&2; exit 2; }
bench_binaries
need_binaries STOMP_GIT STOMP_BROKER STOMPCTL STOMP_POST_RECEIVE
T0=$EPOCHREALTIME

WORK=$(mktemp -d /tmp/commit-path-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
SUB_PID=""
SUB2_PID=""
cleanup() {
  local p
  for p in "${PIDS[@]}" $SUB_PID $SUB2_PID; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}" $SUB_PID $SUB2_PID; do wait "$p" 2>/dev/null; done
  if bash "$BENCH_ROOT/tests/brokers/broker.sh" stop-all "$WORK" >"$WORK/stop-all.log" 2>&1; then
    [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"
  else
    echo "commit_path_bench: could not stop the broker in $WORK:" >&2
    cat "$WORK/stop-all.log" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
die() { echo "commit_path_bench: $*" >&2; exit 1; }

bench_git_env "$WORK"
# A hostname per instance needs a UTS namespace (root); without one every event says the same host
# and only the count per push is checked.
USE_UTS=
unshare --uts true 2>/dev/null && USE_UTS=1

wait_quiet "the fan-out benchmark"
read -r PORT < <(free_ports 1)
URL="stomp://127.0.0.1:$PORT"
bash "$BENCH_ROOT/tests/brokers/broker.sh" start embedded "$WORK/broker" "$PORT" >&2 || die "stomp-broker did not start"

# The central repository with the hook, and a developer's clone.
git init -q --bare "$WORK/origin/site.git"
cat >"$WORK/hook.yaml" <<EOF
rserver: failover://($URL)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
trigger-topic: future.git.commits
report-topic: future.events.gitolite
wire-format: $HOOK_WIRE
spool-dir: $WORK/hook-spool
EOF
export DEPLOYKIT_HOOK_CONFIG=$WORK/hook.yaml
"$STOMP_POST_RECEIVE" --install "$WORK/origin/site.git" >/dev/null || die "hook install failed"
git clone -q "$WORK/origin/site.git" "$WORK/dev" 2>/dev/null
(cd "$WORK/dev" && echo "page 0" >index.html && git add index.html && git commit -qm "page 0" && git push -q origin master) ||
  die "first push failed"

# The servers: one clone, config and hostname each.
USER_NAME=$(id -un)
for ((i = 1; i <= INSTANCES; i++)); do
  n=$(printf '%02d' "$i")
  git clone -q "$WORK/origin/site.git" "$WORK/srv$n/repo" || die "clone $n failed"
  mode=normal target=
  if ((i % 2 == 0)); then mode=trusting target=", target: $WORK/srv$n/www"; fi
  cat >"$WORK/srv$n/stomp-git.yaml" <<EOF
rserver: failover://($URL)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
client-id: bench-stomp-git-$n
listen-topic: future.git.commits
report-topic: bench.fetched
wire-format: native
workers: 1
safety-fetch-interval: 0
repo-list:
  site: {user: $USER_NAME, repo: $WORK/srv$n/repo, mode: $mode$target}
EOF
done

# The subscriber and its stamper: "<time.time()> <event JSON>" per line, as each arrives.
STAMPER='
import sys, time
with open(sys.argv[1], "a", buffering=1) as out:
    for line in sys.stdin:
        out.write(f"{time.time():.6f} {line}")'
# (A process substitution, so that $! is stompctl's pid: killing it ends the stamper too.)
"$STOMPCTL" -u "$URL" subscribe -t /topic/bench.fetched --events --ready-file "$WORK/sub.ready" 2>"$WORK/sub.err" \
  > >(exec "$PY" -c "$STAMPER" "$WORK/events") &
SUB_PID=$!
# The commit events too: when the hook's event reached the bus.
"$STOMPCTL" -u "$URL" subscribe -t /topic/future.git.commits --events --ready-file "$WORK/sub2.ready" 2>"$WORK/sub2.err" \
  > >(exec "$PY" -c "$STAMPER" "$WORK/commits") &
SUB2_PID=$!
until_true 10 test -f "$WORK/sub.ready" || die "the subscriber did not start: $(cat "$WORK/sub.err")"
until_true 10 test -f "$WORK/sub2.ready" || die "the subscriber did not start: $(cat "$WORK/sub2.err")"

for ((i = 1; i <= INSTANCES; i++)); do
  n=$(printf '%02d' "$i")
  if [[ -n $USE_UTS ]]; then
    # shellcheck disable=SC2016 # $1.. expand in the inner bash: argv, no data in the script text
    unshare --uts -- bash -c 'hostname "$1" && exec "$2" -c "$3"' sethost "bench-srv$n" "$STOMP_GIT" "$WORK/srv$n/stomp-git.yaml" \
      2>"$WORK/srv$n/stomp-git.log" &
  else
    "$STOMP_GIT" -c "$WORK/srv$n/stomp-git.yaml" 2>"$WORK/srv$n/stomp-git.log" &
  fi
  PIDS+=($!)
done
events_for() { # REV: how many fetched events name REV as the new revision
  grep -c "\"new_rev\":\"$1\"" "$WORK/events" 2>/dev/null
}
have() { (($(events_for "$1") >= INSTANCES)); }
quiet() { # SECONDS: wait until no event has arrived for GAP seconds (a second, no-op fetch of the
  # same push, e.g. when the hook sends both wire formats, must not overlap the next push)
  local end=$((SECONDS + $1)) n m
  n=$(wc -l <"$WORK/events")
  while :; do
    sleep "$GAP"
    m=$(wc -l <"$WORK/events")
    ((m == n)) && return 0
    ((SECONDS < end)) || return 1
    n=$m
  done
}
REV0=$(git -C "$WORK/dev" rev-parse HEAD)
until_true 60 have "$REV0" || die "only $(events_for "$REV0") of $INSTANCES start-up fetches reported; see $WORK/srv*/stomp-git.log"
hostnames=shared
[[ -n $USE_UTS ]] && hostnames="one each"
echo "commit_path_bench: $INSTANCES stomp-git instances up (hostnames: $hostnames)," \
  "broker $URL, hook wire-format $HOOK_WIRE, $PUSHES pushes + 1 warm-up" >&2

: >"$WORK/pushes" # k rev push_start push_end
for ((k = 0; k <= PUSHES; k++)); do
  (cd "$WORK/dev" && echo "page $((k + 1))" >index.html && git commit -qam "page $((k + 1))") || die "commit $k failed"
  rev=$(git -C "$WORK/dev" rev-parse HEAD)
  t0=$EPOCHREALTIME
  git -C "$WORK/dev" push -q origin master 2>"$WORK/push.err" || die "push $k failed: $(cat "$WORK/push.err")"
  t1=$EPOCHREALTIME
  echo "$k $rev $t0 $t1" >>"$WORK/pushes"
  until_true 60 have "$rev" || die "push $k: only $(events_for "$rev") of $INSTANCES fetched events in 60 s"
  quiet 30 || die "push $k: the instances are still reporting after 30 s"
done
sleep 1 # anything late (a second fetch of the same revision) shows up in the counts

note_end_load
"$PY" - "$WORK/pushes" "$WORK/events" "$WORK/commits" "$INSTANCES" "$PUSHES" "$HOOK_WIRE" "${RESULTS:-}" "$LOAD_NOTE" <<'EOF'
import json, math, os, sys
pushes_file, events_file, commits_file, instances, npush, wire, results, load = sys.argv[1:9]
instances, npush = int(instances), int(npush)
pushes = {}
for line in open(pushes_file):
    k, rev, t0, t1 = line.split()
    pushes[rev] = (int(k), float(t0), float(t1))
lat, fromstart, fromcommit, dur, last, pushdur, failed, extra, hosts = [], [], [], [], [], [], 0, 0, set()
commit_at = {}  # new_rev -> arrival of its first commit event (native or legacy)
for line in open(commits_file):
    stamp, _, body = line.partition(" ")
    try:
        ev = json.loads(body)
    except ValueError:
        continue
    rev = ev.get("data", {}).get("new_rev")
    if ev.get("type") == "commit" and rev in pushes and rev not in commit_at:
        commit_at[rev] = float(stamp)
tohook = [(commit_at[r] - t0) * 1000 for r, (k, t0, t1) in pushes.items() if k > 0 and r in commit_at]
by_mode = {}
per_push = {}
for line in open(events_file):
    stamp, _, body = line.partition(" ")
    try:
        ev = json.loads(body)
    except ValueError:
        continue
    d = ev.get("data", ev)
    if ev.get("type", "fetch") != "fetch" or d.get("new_rev") not in pushes:
        continue
    k, t0, t1 = pushes[d["new_rev"]]
    if k == 0:
        continue  # the warm-up push
    if not d.get("ok", True):
        failed += 1
        continue
    key = ev.get("host") or d.get("host")
    seen = per_push.setdefault(k, {})
    if d.get("old_rev") == d.get("new_rev") or (key in seen and key is not None and len(hosts) > 1):
        extra += 1  # a second fetch that found nothing new
        continue
    seen[key] = float(stamp) - t1
    hosts.add(key)
    ms = (float(stamp) - t1) * 1000
    lat.append(ms)
    fromstart.append((float(stamp) - t0) * 1000)
    if d["new_rev"] in commit_at:
        fromcommit.append((float(stamp) - commit_at[d["new_rev"]]) * 1000)
    dur.append(float(d.get("duration_s", 0)) * 1000)
    by_mode.setdefault(d.get("mode", "?"), []).append(ms)
for rev, (k, t0, t1) in pushes.items():
    if k == 0:
        continue
    pushdur.append((t1 - t0) * 1000)
    if per_push.get(k):
        last.append(max(per_push[k].values()) * 1000)

def pct(xs, p):  # nearest rank
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]

rows = [("push end → fetched event, every (push, instance)", lat)]
rows += [("push start → fetched event, every (push, instance)", fromstart),
         ("commit event on the bus → fetched event, every (push, instance)", fromcommit)]
rows[1:1] = [(f"  of which mode {m}", v) for m, v in sorted(by_mode.items())]
rows += [("push end → last of the instances fetched, per push", last),
         ("stomp-git worker duration_s (fetch; trusting: + checkout)", dur),
         ("push start → the hook's commit event on the bus", tohook),
         ("`git push` itself (hook included)", pushdur)]
out = []
out.append(f"Push → fetched: {npush} pushes (after a warm-up), {instances} stomp-git instance{'s' if instances != 1 else ''} on one stomp-broker, "
           f"one worker each, hook wire-format {wire}; {len(lat)} of {npush * instances} (push, instance) pairs "
           f"reported fetched, {failed} failed, {extra} extra fetches; {load}.")
out.append("")
out.append("| measure | n | p50 ms | p90 ms | p99 ms | max ms |")
out.append("|---|---:|---:|---:|---:|---:|")
for name, xs in rows:
    if xs:
        out.append(f"| {name} | {len(xs)} | {pct(xs, 50):.1f} | {pct(xs, 90):.1f} | {pct(xs, 99):.1f} | {max(xs):.1f} |")
print("\n".join(out))
if results:
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, "commit_path_fanout.json"), "w") as f:
        json.dump({"pushes": npush, "instances": instances, "hook_wire_format": wire, "load": load,
                   "failed": failed, "extra": extra, "distinct_hosts": len(hosts),
                   "latency_ms": lat, "from_push_start_ms": fromstart, "from_commit_event_ms": fromcommit,
                   "push_start_to_commit_event_ms": tohook, "last_instance_ms": last, "worker_duration_ms": dur, "push_ms": pushdur,
                   "summary": {name: {"n": len(xs), "p50": pct(xs, 50), "p90": pct(xs, 90), "p99": pct(xs, 99),
                                      "max": max(xs)} for name, xs in rows if xs}}, f, indent=1)
    with open(os.path.join(results, "commit_path_fanout.md"), "w") as f:
        f.write("\n".join(out) + "\n")
sys.exit(0 if len(lat) == npush * instances and failed == 0 else 1)
EOF
rc=$?
us=$((${EPOCHREALTIME/./} - ${T0/./}))
echo "commit_path_bench: done in $((us / 1000000)).$((us / 100000 % 10))s" >&2
exit $rc
