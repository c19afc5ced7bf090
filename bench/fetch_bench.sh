#!/usr/bin/env bash
# shellcheck disable=SC2317 # the trap's function looks unreachable to it
# One incremental fetch of a repository with 10k commits: stomp-git's libgit2 path against the
# `git fetch` CLI (issue #5, benchmark 3).
#   bench/fetch_bench.sh [COMMITS] [NEW] [RUNS]      (defaults 10000 commits, 100 new ones, 7 runs)
# Environment: BIN_DIR or STOMP_GIT (bench/bench_common.sh), TRANSPORTS ("file git": the origin as
#   a local path, and through `git daemon` on a loopback port), RESULTS (a directory: also write
#   fetch.json and fetch.md there), QUIET_LOAD/QUIET_WAIT.
#
# A bare origin with COMMITS commits (git fast-import: 200 files, each commit rewrites one, two
# release branches, a tag every 500 commits), repacked; a clone of it (--no-local, so one pack as
# over a network), copied aside as the pristine clone; then NEW more commits and a tag on origin.
# Each run, for each transport, the two tools fetch into a fresh copy of the pristine clone
# (cp -a; the order alternates between runs):
#   libgit2: stomp-git --worker site -c CFG (mode normal, i.e. fetch all branches, tags, prune), in
#            the clean environment the daemon gives its workers; wall time and its duration_s;
#   git:     git fetch -q --prune --tags origin.
# Then the same against a copy that is already up to date (a no-change fetch). Warm page cache
# for both. The table (stdout, Markdown) has medians and the ratio libgit2 / git.
set -uo pipefail
# shellcheck source=bench/bench_common.sh
. "$(dirname "$0")/bench_common.sh"

COMMITS=${1:-10000}
NEW=${2:-100}
RUNS=${3:-7}
TRANSPORTS=${TRANSPORTS:-file git}
[[ $COMMITS =~ ^[1-9][0-9]*$ && $NEW =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: $0 [COMMITS] [NEW] [RUNS]   (positive integers; env TRANSPORTS, BIN_DIR, RESULTS)" >&2; exit 2; }
for t in $TRANSPORTS; do [[ $t == file || $t == git ]] || { echo "TRANSPORTS: file and/or git" >&2; exit 2; }; done
bench_binaries
need_binaries STOMP_GIT
T0=$EPOCHREALTIME

WORK=$(mktemp -d /tmp/fetch-bench.XXXXXX)
DAEMON_PID=
cleanup() {
  [[ -n $DAEMON_PID ]] && { kill "$DAEMON_PID" 2>/dev/null || true; wait "$DAEMON_PID" 2>/dev/null; }
  [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
die() { echo "fetch_bench: $*" >&2; exit 1; }
bench_git_env "$WORK"

# fast-import stream for commits FIRST..LAST (1-based) of a deterministic history; commit 1 is
# the root, later ranges continue from refs/heads/master.
GEN='
import sys
first, last = int(sys.argv[1]), int(sys.argv[2])
files = {f"src/f{i:03d}.txt": [] for i in range(200)}
names = sorted(files)
w = sys.stdout.buffer
def data(b):
    w.write(b"data %d\n" % len(b)); w.write(b); w.write(b"\n")
for n in range(1, last + 1):
    path = names[(n * 7) % len(names)]
    lines = files[path]
    lines.append(f"line {n}: the quick brown fox jumps over the lazy dog {n * 31 % 997}\n")
    if len(lines) > 60:
        del lines[: len(lines) - 60]
    if n < first:
        continue
    w.write(b"commit refs/heads/master\n")
    w.write(b"mark :%d\n" % n)
    ts = 1700000000 + n * 60
    w.write(b"author Bench Dev <bench@example.com> %d +0000\n" % ts)
    w.write(b"committer Bench Dev <bench@example.com> %d +0000\n" % ts)
    data(f"change {n}: {path}\n".encode())
    if n == first and first > 1:
        w.write(b"from refs/heads/master^0\n")
    w.write(f"M 100644 inline {path}\n".encode())
    data("".join(lines).encode())
    w.write(b"\n")
    if n % 500 == 0 or n == last:
        w.write(f"reset refs/tags/v{n}\nfrom :{n}\n\n".encode())
    if n in (last // 2, last * 4 // 5) and first == 1:
        w.write(f"reset refs/heads/release-{1 if n == last // 2 else 2}\nfrom :{n}\n\n".encode())
'
echo "fetch_bench: building an origin with $COMMITS commits" >&2
git init -q --bare "$WORK/origin.git"
"$PY" -c "$GEN" 1 "$COMMITS" | git -C "$WORK/origin.git" fast-import --quiet || die "fast-import failed"
git -C "$WORK/origin.git" repack -adq || die "repack failed"
git clone -q --no-local "$WORK/origin.git" "$WORK/pristine-file" || die "clone failed"
OLD_REV=$(git -C "$WORK/origin.git" rev-parse master)
"$PY" -c "$GEN" $((COMMITS + 1)) $((COMMITS + NEW)) | git -C "$WORK/origin.git" fast-import --quiet || die "fast-import failed"
NEW_REV=$(git -C "$WORK/origin.git" rev-parse master)
[[ $(git -C "$WORK/origin.git" rev-list --count master) == $((COMMITS + NEW)) ]] || die "origin has the wrong number of commits"
SIZE=$(du -sk "$WORK/pristine-file/.git" | cut -f1)

if [[ " $TRANSPORTS " == *" git "* ]]; then
  read -r GPORT < <(free_ports 1)
  git daemon --reuseaddr --export-all --base-path="$WORK" --listen=127.0.0.1 --port="$GPORT" "$WORK" \
    2>"$WORK/daemon.log" &
  DAEMON_PID=$!
  until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$GPORT" 2>/dev/null || die "git daemon did not start"
  cp -a "$WORK/pristine-file" "$WORK/pristine-git"
  git -C "$WORK/pristine-git" remote set-url origin "git://127.0.0.1:$GPORT/origin.git"
fi
for t in $TRANSPORTS; do
  cp -a "$WORK/pristine-$t" "$WORK/updated-$t"
  git -C "$WORK/updated-$t" fetch -q --prune --tags origin || die "fetch into updated-$t failed"
  printf 'rserver: stomp://127.0.0.1:9\nrepo-list:\n  site: {repo: %s, mode: normal}\n' "$WORK/copy-$t" >"$WORK/stomp-git-$t.yaml"
done

: >"$WORK/times" # transport kind tool run wall_ms duration_ms
measure() { # TRANSPORT KIND(incremental|no-change) TOOL RUN
  local t=$1 kind=$2 tool=$3 run=$4 src copy out t0 t1 dur="" want=$NEW_REV
  src=$WORK/pristine-$t
  [[ $kind == no-change ]] && src=$WORK/updated-$t
  copy=$WORK/copy-$t
  { rm -rf "$copy" && cp -a "$src" "$copy"; } || die "copy failed"
  sync
  if [[ $tool == libgit2 ]]; then
    t0=$EPOCHREALTIME
    out=$(env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "$STOMP_GIT" --worker site -c "$WORK/stomp-git-$t.yaml")
    t1=$EPOCHREALTIME
    dur=$("$PY" -c '
import json, sys
j = json.loads(sys.argv[1])
if not j.get("ok") or j.get("new_rev") != sys.argv[2]:
    sys.exit("worker: " + sys.argv[1])
print(j["duration_s"] * 1000)' "$out" "$want") || die "$t $kind libgit2 run $run failed"
  else
    t0=$EPOCHREALTIME
    git -C "$copy" fetch -q --prune --tags origin 2>"$WORK/fetch.err" || die "$t $kind git run $run: $(cat "$WORK/fetch.err")"
    t1=$EPOCHREALTIME
  fi
  [[ $(git -C "$copy" rev-parse origin/master) == "$want" ]] || die "$t $kind $tool run $run: origin/master not updated"
  [[ -n $(git -C "$copy" tag -l "v$((COMMITS + NEW))") ]] || die "$t $kind $tool run $run: the new tag was not fetched"
  echo "$t $kind $tool $run $(((${t1/./} - ${t0/./}) / 1000)).$(((${t1/./} - ${t0/./}) % 1000 / 100)) ${dur:-}" >>"$WORK/times"
}

wait_quiet "the fetch benchmark"
echo "fetch_bench: $COMMITS + $NEW commits, clone ${SIZE} KiB, $RUNS runs, transports: $TRANSPORTS" >&2
for ((run = 1; run <= RUNS; run++)); do
  for t in $TRANSPORTS; do
    for kind in incremental no-change; do
      if ((run % 2)); then tools=(libgit2 git); else tools=(git libgit2); fi
      for tool in "${tools[@]}"; do measure "$t" "$kind" "$tool" "$run"; done
    done
  done
done

note_end_load
"$PY" - "$WORK/times" "$COMMITS" "$NEW" "$RUNS" "$SIZE" "$OLD_REV" "$NEW_REV" "${RESULTS:-}" "$LOAD_NOTE" <<'EOF'
import json, os, statistics, sys
times_file, commits, new, runs, size, old, newrev, results, load = sys.argv[1:10]
rows = {}
for line in open(times_file):
    p = line.split()
    t, kind, tool, run, wall = p[:5]
    rows.setdefault((t, kind, tool), {"wall": [], "dur": []})
    rows[(t, kind, tool)]["wall"].append(float(wall))
    if len(p) > 5:
        rows[(t, kind, tool)]["dur"].append(float(p[5]))
label = {"file": "local path", "git": "git:// (git daemon, loopback)"}
out = [f"Fetch into a clone of a {commits}-commit repository (clone {int(size) / 1024:.0f} MiB; 200 files, 3 branches, "
       f"tags every 500 commits): incremental = {new} new commits and a tag on origin, no-change = already up to date; "
       f"median of {runs} runs each, fresh copy of the clone per run, warm cache; {load}.", "",
       "| origin | fetch | tool | median wall ms | min–max wall ms | median duration_s ms | wall ratio libgit2 / git |",
       "|---|---|---|---:|---:|---:|---:|"]
summary = {}
for (t, kind, tool), v in rows.items():
    if tool != "libgit2":
        continue
    g = rows[(t, kind, "git")]
    for name, r in (("stomp-git --worker (libgit2)", v), ("git fetch --prune --tags", g)):
        m = statistics.median(r["wall"])
        d = f"{statistics.median(r['dur']):.1f}" if r["dur"] else ""
        ratio = f"{statistics.median(v['wall']) / statistics.median(g['wall']):.2f}" if r is v else ""
        out.append(f"| {label[t]} | {kind} | {name} | {m:.1f} | {min(r['wall']):.1f}–{max(r['wall']):.1f} | {d} | {ratio} |")
    summary[f"{t}/{kind}"] = {"libgit2_wall_ms": v["wall"], "libgit2_duration_ms": v["dur"], "git_wall_ms": g["wall"]}
print("\n".join(out))
if results:
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, "fetch.json"), "w") as f:
        json.dump({"commits": int(commits), "new": int(new), "runs": int(runs), "clone_kib": int(size),
                   "old_rev": old, "new_rev": newrev, "load": load, "runs_ms": summary}, f, indent=1)
    with open(os.path.join(results, "fetch.md"), "w") as f:
        f.write("\n".join(out) + "\n")
EOF
rc=$?
us=$((${EPOCHREALTIME/./} - ${T0/./}))
echo "fetch_bench: done in $((us / 1000000)).$((us / 100000 % 10))s" >&2
exit $rc
