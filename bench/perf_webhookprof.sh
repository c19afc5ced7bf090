#!/usr/bin/env bash
# Where github-webhook's CPU, syscalls and memory go under bench/webhook_bench.sh's load (issue #18):
# the same broker, config, signed push and wrk script (wrk -t2 -cC, unique delivery ids).
#   BIN=DIR (github-webhook, stomp-broker) OUT=DIR C=32 D=8 [QUICK=1: wrk-plain.txt and memory only] bench/perf_webhookprof.sh
# Writes, from separate wrk runs on one daemon and broker:
#   wrk-plain.txt                    wrk's own figures, nothing attached
#   perf-all.data, perf-comm.txt     perf record -a (every process on both cores): share per command,
#   perf-sym.txt                     and per symbol
#   perf-gw.data, perf-gw-children.txt  perf record --call-graph dwarf of the daemon only (inclusive %)
#   strace-c.txt, strace-wrk.txt     strace -c -f of the daemon (syscalls per request; wrk slowed by strace)
#   smaps-rollup.txt, smaps-top.txt, smaps-by-name.txt, status.txt  the daemon's memory after the runs
#                                    (VmHWM = peak; smaps-by-name: resident KiB per file / heap / anonymous)
# Run it under the CPU lock.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/daemons}; OUT=${OUT:-/tmp/webhookprof}; C=${C:-32}; D=${D:-8}
gw=$BIN/github-webhook; broker=$BIN/stomp-broker
[[ -f $gw && -x $gw ]] || gw=$BIN/github-webhook/github-webhook
[[ -f $broker && -x $broker ]] || broker=$BIN/stomp-broker/stomp-broker
mkdir -p "$OUT"; W=$(mktemp -d /tmp/webhookprof.XXXXXX)
pids=()
trap '{ for p in "${pids[@]}"; do kill "$p"; done; } 2>/dev/null || true; rm -rf "$W"' EXIT
read -r bport gport < <(python3 -c 'import socket;s=[socket.socket() for _ in range(2)];[x.bind(("127.0.0.1",0)) for x in s];print(*[x.getsockname()[1] for x in s])')
wait_port() { for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.025; done; return 1; }
secret="It's a Secret to Everybody"; payload=tests/data/webhooks/github_push.json
sig=$(openssl dgst -sha256 -hmac "$secret" -r "$payload" | cut -d' ' -f1)
printf '%s\n' "$secret" >"$W/secret"; chmod 600 "$W/secret"
"$broker" --listen "127.0.0.1:$bport" --data-dir "$W/broker" 2>"$W/broker.log" & pids+=($!); bpid=$!
wait_port "$bport"
cat >"$W/gw.yaml" <<EOF
rserver: stomp://127.0.0.1:$bport
trigger-topic: future.git.commits
report-topic: ""
wire-format: native
spool-dir: $W/spool
listen: 127.0.0.1:$gport
hooks:
  /github:
    provider: github
    secret-file: $W/secret
    report-topic: ""
EOF
"$gw" -c "$W/gw.yaml" >/dev/null 2>"$W/gw.log" & gpid=$!; pids+=($gpid)
wait_port "$gport"
for _ in $(seq 200); do curl -s "http://127.0.0.1:$gport/metrics" | grep -q 'broker_connected 1' && break; sleep 0.05; done
cat >"$W/post.lua" <<EOF
local counter = 0
local threads_started = 0
function setup(thread) threads_started = threads_started + 1; thread:set("tid", threads_started) end
function init(args) math.randomseed(os.time() * 100 + (tid or 0)) end
local f = io.open("$payload", "rb"); local body = f:read("*a"); f:close()
function request()
  counter = counter + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = string.format("%d-%d-%d", tid or 0, counter, math.random(1, 1000000000)),
    ["X-Hub-Signature-256"] = "sha256=$sig", ["User-Agent"] = "GitHub-Hookshot/bench"}, body)
end
EOF
url=http://127.0.0.1:$gport/github
# As bench/webhook_bench.sh: a sanity delivery first, then the outbox's first pass (<= 1 s) has run.
curl -s -o /dev/null -X POST --data-binary "@$payload" -H 'X-GitHub-Event: push' -H 'X-GitHub-Delivery: warm-up' \
  -H "X-Hub-Signature-256: sha256=$sig" "$url"; sleep 1.5
load() { wrk -t2 -c"$C" -d"${1}s" --latency -s "$W/post.lua" "$url"; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); gw pid $gpid, broker pid $bpid" | tee "$OUT/info.txt"
load "$D" >"$OUT/wrk-plain.txt" 2>&1
if [[ -z ${QUICK:-} ]]; then
# Every process on both cores: who gets the CPU (wrk, the daemon, the broker, the kernel).
perf record -q -a -F 499 -o "$OUT/perf-all.data" -- sleep "$D" >/dev/null 2>&1 & ppid=$!
load "$D" >"$OUT/wrk-perf-all.txt" 2>&1; wait $ppid
perf report -i "$OUT/perf-all.data" --stdio --sort comm --percent-limit 0.5 2>/dev/null | grep -v '^$' >"$OUT/perf-comm.txt"
perf report -i "$OUT/perf-all.data" --stdio --sort comm,dso,sym --percent-limit 0.3 2>/dev/null | grep -v '^$' | head -150 >"$OUT/perf-sym.txt"
# The daemon alone, with call graphs: inclusive share per function.
perf record -q -F 299 --call-graph dwarf,8192 -p "$gpid" -o "$OUT/perf-gw.data" -- sleep 4 >/dev/null 2>&1 & ppid=$!
load 4 >"$OUT/wrk-perf-gw.txt" 2>&1; wait $ppid
perf report -i "$OUT/perf-gw.data" --stdio --children --no-demangle --sort sym --percent-limit 1.5 -g none 2>/dev/null \
  | grep -v '^$' | c++filt | cut -c1-220 | head -120 >"$OUT/perf-gw-children.txt"
# Syscalls per request.
timeout 20 strace -c -f -p "$gpid" -o "$OUT/strace-c.txt" & spid=$!
sleep 0.5; load 4 >"$OUT/wrk-strace.txt" 2>&1; kill -INT $spid; wait $spid 2>/dev/null
grep -E '^Requests/sec|requests in' "$OUT/wrk-strace.txt" >>"$OUT/strace-c.txt"
fi
cat "/proc/$gpid/smaps_rollup" >"$OUT/smaps-rollup.txt"
grep -E '^Vm|^Rss|^Threads' "/proc/$gpid/status" >"$OUT/status.txt"
awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6" "$1} /^Rss:/{print $2, name}' "/proc/$gpid/smaps" | sort -rn | head -25 >"$OUT/smaps-top.txt"
# Resident KiB per mapping name (file, [heap], [stack], anonymous), summed over its mappings.
awk '/^[0-9a-f]+-[0-9a-f]+ /{name=($6 == "" ? "[anon]" : $6)} /^Rss:/{r[name]+=$2} END{for (n in r) if (r[n]) print r[n], n}' \
  "/proc/$gpid/smaps" | sort -rn >"$OUT/smaps-by-name.txt"
curl -s "http://127.0.0.1:$gport/metrics" | grep -E 'published_total|spooled_total|accepted_total' >"$OUT/metrics.txt"
echo "done: $OUT"
