#!/usr/bin/env bash
# shellcheck disable=SC2317 # the trap's function looks unreachable to it
# The time stomp-post-receive adds to `git push` (issue #5, benchmark 2).
#   bench/hook_bench.sh [PUSHES]      (default 50 pushes per case, after 3 warm-up rounds)
# Environment: BIN_DIR or STOMP_BROKER/STOMP_POST_RECEIVE (bench/bench_common.sh), HOOK_WIRE
#   (both), RESULTS (a directory: also write hook.json and hook.md there), QUIET_LOAD/QUIET_WAIT.
#
# Three bare repositories on local disk: (a) no hook, (b) stomp-post-receive with stomp-broker up
# on loopback, (c) stomp-post-receive with the broker down (a free loopback port: connection
# refused), so the event is spooled. Each round makes one commit in a working clone, outside the
# clock, and pushes it to the three (in rotating order); the clock is $EPOCHREALTIME around
# `git push -q`. The table (stdout, Markdown) has median/p90/max per case and the time the hook
# adds (b - a, c - a). Two floor cases show what any hook process costs on this machine, whatever
# it does: (d) a post-receive hook that is a static C program reading stdin and exiting (no dynamic
# loader, no library), (e) one that is /bin/true (dynamic, libc only). (f) a blackholed broker:
# a loopback listener whose accept queue is full, so the kernel drops every SYN to it and connect
# waits as it would for a host that does not answer: the hook must give up within its 1 s budget
# and spool.
set -uo pipefail
# shellcheck source=bench/bench_common.sh
. "$(dirname "$0")/bench_common.sh"

PUSHES=${1:-50}
WARMUP=3
HOOK_WIRE=${HOOK_WIRE:-both}
[[ $PUSHES =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [PUSHES]   (env HOOK_WIRE, BIN_DIR, RESULTS)" >&2; exit 2; }
bench_binaries
need_binaries STOMP_BROKER STOMP_POST_RECEIVE
T0=$EPOCHREALTIME

WORK=$(mktemp -d /tmp/hook-bench.XXXXXX)
cleanup() {
  [[ -n ${BLACKHOLE_PID:-} ]] && kill "$BLACKHOLE_PID" 2>/dev/null
  if bash "$BENCH_ROOT/tests/brokers/broker.sh" stop-all "$WORK" >"$WORK/stop-all.log" 2>&1; then
    [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"
  else
    echo "hook_bench: could not stop the broker in $WORK:" >&2
    cat "$WORK/stop-all.log" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
die() { echo "hook_bench: $*" >&2; exit 1; }

bench_git_env "$WORK"
wait_quiet "the hook benchmark"
read -r PORT DOWN < <(free_ports 2)
bash "$BENCH_ROOT/tests/brokers/broker.sh" start embedded "$WORK/broker" "$PORT" >&2 || die "stomp-broker did not start"
(exec 3<>"/dev/tcp/127.0.0.1/$DOWN") 2>/dev/null && die "127.0.0.1:$DOWN should refuse connections"

hook_config() { # FILE PORT SPOOL
  cat >"$1" <<EOF
rserver: failover://(stomp://127.0.0.1:$2)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
trigger-topic: future.git.commits
report-topic: future.events.gitolite
wire-format: $HOOK_WIRE
spool-dir: $3
EOF
}
hook_config "$WORK/hook-up.yaml" "$PORT" "$WORK/spool-up"
hook_config "$WORK/hook-down.yaml" "$DOWN" "$WORK/spool-down"
# The blackhole: listen(0) and fill the accept queue with connections nobody accepts.
mkfifo "$WORK/blackhole.port"
"$PY" -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
held = []
for _ in range(4):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(s.getsockname())
    except BlockingIOError: pass
    held.append(c)
time.sleep(0.2)
probe = socket.socket(); probe.settimeout(0.5)
try:
    probe.connect(s.getsockname()); sys.exit("the blackhole accepted a connection")
except TimeoutError: pass
print(s.getsockname()[1], flush=True)
time.sleep(86400)' >"$WORK/blackhole.port" &
BLACKHOLE_PID=$!
read -r -t 10 HOLE <"$WORK/blackhole.port" || die "the blackhole listener did not say its port"
hook_config "$WORK/hook-hole.yaml" "$HOLE" "$WORK/spool-hole"
for c in a b c d e f; do git init -q --bare "$WORK/$c.git"; done
"$STOMP_POST_RECEIVE" --install "$WORK/b.git" "$WORK/c.git" "$WORK/f.git" >/dev/null || die "hook install failed"
declare -A CONFIG=([a]=/dev/null [b]=$WORK/hook-up.yaml [c]=$WORK/hook-down.yaml [d]=/dev/null [e]=/dev/null
  [f]=$WORK/hook-hole.yaml)
# The floor: the cheapest hook a process can be. (d) static, reads the ref lines git writes and exits.
printf '%s\n' '#include <unistd.h>' 'int main(void) { char b[4096]; while (read(0, b, sizeof b) > 0) {} return 0; }' \
  >"$WORK/noop.c"
cc -O2 -static -o "$WORK/d.git/hooks/post-receive" "$WORK/noop.c" || die "cannot build the static no-op hook (cc, libc6-dev)"
ln -s /bin/true "$WORK/e.git/hooks/post-receive"

git init -q "$WORK/dev"
for c in a b c d e f; do git -C "$WORK/dev" remote add "$c" "$WORK/$c.git"; done
: >"$WORK/times" # case round seconds
CASES=(a b c d e f)
for ((r = 1; r <= WARMUP + PUSHES; r++)); do
  echo "change $r" >"$WORK/dev/file.txt"
  { git -C "$WORK/dev" add file.txt && git -C "$WORK/dev" commit -qm "change $r"; } || die "commit $r failed"
  for ((j = 0; j < ${#CASES[@]}; j++)); do
    c=${CASES[$(((r + j) % ${#CASES[@]}))]}
    t0=$EPOCHREALTIME
    DEPLOYKIT_HOOK_CONFIG=${CONFIG[$c]} git -C "$WORK/dev" push -q "$c" master 2>>"$WORK/push-$c.err" ||
      die "push $r to $c failed: $(tail -3 "$WORK/push-$c.err")"
    t1=$EPOCHREALTIME
    ((r > WARMUP)) && echo "$c $r $((${t1/./} - ${t0/./}))" >>"$WORK/times"
  done
done
spooled_up=$(find "$WORK/spool-up" -type f 2>/dev/null | wc -l)
spooled_down=$(find "$WORK/spool-down" -type f 2>/dev/null | wc -l)
spooled_hole=$(find "$WORK/spool-hole" -type f 2>/dev/null | wc -l)
unreachable=$(grep -c "broker unreachable" "$WORK/push-c.err")

note_end_load
"$PY" - "$WORK/times" "$PUSHES" "$HOOK_WIRE" "$spooled_up" "$spooled_down" "$unreachable" "${RESULTS:-}" "$LOAD_NOTE" \
  "$spooled_hole" <<'EOF'
import json, math, os, statistics, sys
times_file, n, wire, spooled_up, spooled_down, unreachable, results, load, spooled_hole = sys.argv[1:10]
n = int(n)
t = {c: [] for c in "abcdef"}
for line in open(times_file):
    c, _, us = line.split()
    t[c].append(int(us) / 1000)
def pct(xs, p):  # nearest rank
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]
names = {"a": "(a) no hook", "b": "(b) stomp-post-receive, broker up",
         "c": "(c) stomp-post-receive, broker down (connection refused, spooled)",
         "d": "(d) floor: a static C hook that reads stdin and exits",
         "e": "(e) floor: /bin/true as the hook",
         "f": "(f) stomp-post-receive, broker blackholed (SYNs dropped, spooled)"}
med = {c: statistics.median(v) for c, v in t.items()}
p90 = {c: pct(v, 90) for c, v in t.items()}
out = [f"Time of `git push` to a local bare repository: {n} pushes per case after 3 warm-up rounds, one small commit "
       f"each, interleaved; hook wire-format {wire}; {load}. Broker up: {spooled_up} files left in the spool; "
       f"broker down: {unreachable} pushes said 'broker unreachable', {spooled_down} files spooled; "
       f"broker blackholed: {spooled_hole} files spooled.", "",
       "| case | median ms | p90 ms | max ms | added by the hook (median) ms | added (p90) ms |",
       "|---|---:|---:|---:|---:|---:|"]
floor = med["d"] - med["a"]
for c in "abcdef":
    added = "" if c == "a" else f"{med[c] - med['a']:.1f}"
    added90 = "" if c == "a" else f"{p90[c] - p90['a']:.1f}"
    out.append(f"| {names[c]} | {med[c]:.1f} | {p90[c]:.1f} | {max(t[c]):.1f} | {added} | {added90} |")
out += ["", f"Any hook process costs {floor:.1f} ms here (d); what stomp-post-receive adds beyond that floor: "
        f"{med['b'] - med['d']:.1f} ms with the broker up, {med['c'] - med['d']:.1f} ms spooling."]
print("\n".join(out))
if results:
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, "hook.json"), "w") as f:
        json.dump({"pushes": n, "hook_wire_format": wire, "load": load, "ms": t, "median_ms": med, "p90_ms": p90,
                   "spooled_broker_up": int(spooled_up), "spooled_broker_down": int(spooled_down),
                   "spooled_broker_blackholed": int(spooled_hole)}, f, indent=1)
    with open(os.path.join(results, "hook.md"), "w") as f:
        f.write("\n".join(out) + "\n")
ok = all(len(v) == n for v in t.values()) and int(unreachable) == n + 3 and int(spooled_up) == 0 \
    and int(spooled_hole) == int(spooled_down)
sys.exit(0 if ok else 1)
EOF
rc=$?
us=$((${EPOCHREALTIME/./} - ${T0/./}))
echo "hook_bench: done in $((us / 1000000)).$((us / 100000 % 10))s" >&2
exit $rc
