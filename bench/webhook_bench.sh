#!/usr/bin/env bash
# github-webhook beside adnanh/webhook (Debian package `webhook`), in one run, under wrk with the
# same signed GitHub push payload and the same concurrency. adnanh/webhook verifies the same
# HMAC-SHA256 secret and runs /bin/true; github-webhook verifies, parses, dedupes and answers 202
# once the embedded broker has receipted the commit event (journaled). Every request carries a
# fresh X-GitHub-Delivery, so github-webhook's dedupe never short-cuts the work.
# Prints requests/s, p50/p99 latency and RSS of each, and the ratios.
#   bench/webhook_bench.sh [BUILD_DIR]    (DURATION=15 CONNECTIONS=32 THREADS=2 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
duration=${DURATION:-15}
conns=${CONNECTIONS:-32}
threads=${THREADS:-2}
gw=$PWD/$build/daemons/github-webhook/github-webhook
broker=$PWD/$build/daemons/stomp-broker/stomp-broker
[[ -x $gw && -x $broker ]] || { echo "build first: cmake --build $build" >&2; exit 2; }
# The peers come from Debian packages; install them if missing (idempotent).
missing=()
for p in wrk webhook; do command -v "$p" >/dev/null || missing+=("$p"); done
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
work=$(mktemp -d /tmp/deploykit-webhook-bench.XXXXXX)
pids=()
trap '{ for p in "${pids[@]}"; do kill "$p"; done; } 2>/dev/null || true; rm -rf "$work"' EXIT
read -r bport gport aport < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
wait_port() { for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.025; done; return 1; }

secret="It's a Secret to Everybody"
payload=tests/data/webhooks/github_push.json
sig=$(/usr/bin/openssl dgst -sha256 -hmac "$secret" -r "$payload" | cut -d' ' -f1)
umask 077; printf '%s\n' "$secret" >"$work/secret"; umask 022

"$broker" --listen "127.0.0.1:$bport" --data-dir "$work/broker" 2>"$work/broker.log" &
pids+=($!)
wait_port "$bport"
cat >"$work/gw.yaml" <<EOF
rserver: stomp://127.0.0.1:$bport
trigger-topic: future.git.commits
report-topic: ""
wire-format: native
spool-dir: $work/spool
listen: 127.0.0.1:$gport
hooks:
  /github:
    provider: github
    secret-file: $work/secret
    report-topic: ""
EOF
"$gw" -c "$work/gw.yaml" >/dev/null 2>"$work/gw.log" &
gpid=$!
pids+=($gpid)
wait_port "$gport"
for _ in $(seq 200); do curl -s "http://127.0.0.1:$gport/metrics" | grep -q 'broker_connected 1' && break; sleep 0.05; done

cat >"$work/hooks.json" <<EOF
[
  {
    "id": "github",
    "execute-command": "/bin/true",
    "response-message": "accepted",
    "trigger-rule": {
      "and": [
        {"match": {"type": "payload-hmac-sha256", "secret": "$secret",
                   "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}},
        {"match": {"type": "value", "value": "refs/heads/main", "parameter": {"source": "payload", "name": "ref"}}}
      ]
    }
  }
]
EOF
webhook -hooks "$work/hooks.json" -ip 127.0.0.1 -port "$aport" >"$work/adnanh.log" 2>&1 &
apid=$!
pids+=($apid)
wait_port "$aport"

# wrk: the same body and signature; a unique delivery id per request and thread.
cat >"$work/post.lua" <<EOF
local counter = 0
local threads_started = 0
function setup(thread)
  threads_started = threads_started + 1
  thread:set("tid", threads_started)
end
function init(args)
  math.randomseed(os.time() * 100 + (tid or 0))
end
local f = io.open("$payload", "rb")
local body = f:read("*a")
f:close()
function request()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = string.format("%d-%d-%d", tid or 0, counter, math.random(1, 1000000000)),
    ["X-Hub-Signature-256"] = "sha256=$sig",
    ["User-Agent"] = "GitHub-Hookshot/bench",
  }
  return wrk.format("POST", nil, headers, body)
end
EOF

# Sanity: both accept the signed payload and refuse a forged one before we time anything.
check() { # URL EXPECTED SIG
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$payload" -H 'Content-Type: application/json' \
    -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: check-$RANDOM$RANDOM" -H "X-Hub-Signature-256: sha256=$3" "$1")
  [[ $code == "$2" ]] || { echo "sanity check failed: $1 answered $code, expected $2" >&2; exit 1; }
}
check "http://127.0.0.1:$gport/github" 202 "$sig"
check "http://127.0.0.1:$gport/github" 403 "0$sig"
check "http://127.0.0.1:$aport/hooks/github" 200 "$sig"
# adnanh/webhook 2.8 answers a signature mismatch 500 "Error occurred while evaluating hook rules".
adnanh_forged=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$payload" -H 'Content-Type: application/json' \
  -H "X-Hub-Signature-256: sha256=0$sig" "http://127.0.0.1:$aport/hooks/github")
[[ $adnanh_forged != 200 ]] || { echo "adnanh/webhook accepted a forged signature?" >&2; exit 1; }

run() { # NAME URL PID
  local out=$work/$1.wrk
  # The whole machine's idle share and the server's CPU during the run (/proc/stat, /proc/PID/stat):
  # with wrk and the broker on the same cores, whether the cores or the server are the limit.
  local s0 s1 c0 c1
  s0=$(awk '/^cpu /{print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
  c0=$(awk '{print $14 + $15}' "/proc/$3/stat")
  wrk -t"$threads" -c"$conns" -d"${duration}s" --latency -s "$work/post.lua" "$2" >"$out" 2>&1
  s1=$(awk '/^cpu /{print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
  c1=$(awk '{print $14 + $15}' "/proc/$3/stat")
  local idle cores
  read -r idle cores < <(echo "$s0 $s1 $c0 $c1 $(getconf CLK_TCK)" | awk '{
    printf "%.1f %.2f\n", 100 * ($3 - $1) / ($4 - $2), ($6 - $5) / $7 / '"$duration"' }')
  local rps p50 p99 non2xx rss hwm
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  p50=$(awk '$1 == "50%" {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$3/status")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$3/status")
  echo "$1 ${rps:-0} ${p50:-?} ${p99:-?} ${non2xx:-0} $rss $hwm $idle $cores"
}
to_ms() { # wrk's "1.23ms" / "850.00us" / "1.02s" -> ms
  /usr/bin/python3 -c '
import sys
v = sys.argv[1]
for suf, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
    if v.endswith(suf):
        print("%.2f" % (float(v[: -len(suf)]) * f)); break
else:
    print("nan")' "$1"
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
read -r _ g_rps g_p50 g_p99 g_bad g_rss g_hwm g_idle g_cores < <(run github-webhook "http://127.0.0.1:$gport/github" "$gpid")
read -r _ a_rps a_p50 a_p99 a_bad a_rss a_hwm a_idle a_cores < <(run adnanh-webhook "http://127.0.0.1:$aport/hooks/github" "$apid")
published=$(curl -s "http://127.0.0.1:$gport/metrics" | awk '/^github_webhook_events_published_total/ {print $2}')
spooled=$(curl -s "http://127.0.0.1:$gport/metrics" | awk '/^github_webhook_events_spooled_total/ {print $2}')

g50=$(to_ms "$g_p50") g99=$(to_ms "$g_p99") a50=$(to_ms "$a_p50") a99=$(to_ms "$a_p99")
{
  echo "# github-webhook vs adnanh/webhook $(webhook -version 2>&1 | head -1 | awk '{print $NF}')"
  echo
  echo "wrk -t$threads -c$conns -d${duration}s, signed GitHub push ($(wc -c <"$payload") bytes), unique delivery ids; $(nproc) cores shared by wrk, the servers and the broker."
  echo
  echo "| server | requests/s | p50 ms | p99 ms | non-2xx | RSS after (KiB) | peak RSS (KiB) | server CPU (cores) | machine idle % |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  echo "| github-webhook (verify, parse, dedupe, receipted publish to stomp-broker) | $g_rps | $g50 | $g99 | $g_bad | $g_rss | $g_hwm | $g_cores | $g_idle |"
  echo "| adnanh/webhook (verify, run /bin/true) | $a_rps | $a50 | $a99 | $a_bad | $a_rss | $a_hwm | $a_cores | $a_idle |"
  echo
  /usr/bin/python3 - "$g_rps" "$a_rps" "$g50" "$a50" "$g99" "$a99" "$g_hwm" "$a_hwm" <<'PY'
import sys
g_rps, a_rps, g50, a50, g99, a99, g_hwm, a_hwm = map(float, sys.argv[1:])
print(f"Ratios (github-webhook / adnanh-webhook): throughput x{g_rps / a_rps:.2f}, p50 x{g50 / a50:.2f}, "
      f"p99 x{g99 / a99:.2f}, peak RSS x{g_hwm / a_hwm:.2f}")
PY
  echo
  echo "github-webhook events receipted by the broker before answering: ${published:-0}; spooled: ${spooled:-0}."
} | tee "$work/result.md"
mkdir -p bench/results
cp "$work/result.md" bench/results/webhook.md
