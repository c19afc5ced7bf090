#!/usr/bin/env bash
# herald at 1 M recorded events (issue #16): ingest rate, search latency per query kind, RSS.
#
# Ingest: records/s through POST /ingest, JSON arrays of 500, 4 concurrent keep-alive clients;
# each request is answered after its transaction committed. The request bodies are made before
# the clock starts (the Python client would otherwise take a core from herald on a 2-core box).
# Search: QUERIES (40) JSON API queries of each kind the page offers (no filter, each filter,
# time range, free text, free text + filter, two filters, deep pages), p50/p99/max per kind and
# over all. RSS (VmRSS, VmHWM) after ingest, idle (IDLE_S seconds later) and after the searches.
# Run it under the CPU lock:
#   flock /tmp/dk-cpu.lock bench/herald_bench.sh [BUILD_DIR]
# Environment: EVENTS (1000000), QUERIES (40 per kind), SYNC (herald's sqlite-synchronous; unset:
# herald's default), HERALD / STOMP_BROKER (binaries; default BUILD_DIR's), KEEP_DB=PATH (copy the
# database there for EXPLAIN QUERY PLAN), PERF=PATH (perf record -g of herald during ingest),
# RESULTS=DIR (raw figures as JSON), IDLE_S (5).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
events=${EVENTS:-1000000}
queries=${QUERIES:-40}
herald=${HERALD:-$PWD/$build/daemons/herald/herald}
broker=${STOMP_BROKER:-$PWD/$build/daemons/stomp-broker/stomp-broker}
[[ -x $herald && -x $broker ]] || { echo "build first: cmake --build $build --target herald stomp-broker" >&2; exit 2; }
work=$(mktemp -d /tmp/herald-bench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"' EXIT
read -r bport hport < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
"$broker" --listen "127.0.0.1:$bport" 2>"$work/broker.log" &
pids+=($!)
printf 'bench-token-0123456789\n' >"$work/token"; chmod 600 "$work/token"
hash=$(echo 's3cret' | "$broker" --hash-password)
printf 'users:\n  alice: {password: "%s", role: viewer}\n' "$hash" >"$work/users.yaml"
cat >"$work/herald.yaml" <<EOF2
rserver: stomp://127.0.0.1:$bport
database: $work/herald.db
listen: 127.0.0.1:$hport
users-file: $work/users.yaml
ingest-tokens:
  bench: {token-file: $work/token}
ingest-max-body-bytes: 4194304
ingest-max-records: 1000
ingest-rate: 10000000
ingest-burst: 10000000
heartbeat-interval: 0
EOF2
[[ -n ${SYNC:-} ]] && echo "sqlite-synchronous: $SYNC" >>"$work/herald.yaml"
"$herald" -c "$work/herald.yaml" 2>"$work/herald.log" &
hpid=$!
pids+=($hpid)
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$hport") 2>/dev/null && break; sleep 0.05; done
echo "herald $("$herald" --version 2>&1 | head -1) ($herald), $events events, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), sync ${SYNC:-default}"
HPORT=$hport HPID=$hpid EVENTS=$events QUERIES=$queries DB=$work/herald.db PERF=${PERF:-} RESULTS=${RESULTS:-} \
IDLE_S=${IDLE_S:-5} /usr/bin/python3 - <<'PY'
import http.client, json, os, random, re, subprocess, threading, time, urllib.parse
port = int(os.environ["HPORT"]); pid = os.environ["HPID"]; N = int(os.environ["EVENTS"]); Q = int(os.environ["QUERIES"])
def rss():
    st = open(f"/proc/{pid}/status").read()
    return {k: int(re.search(k + r":\s+(\d+)", st).group(1)) // 1024 for k in ("VmRSS", "VmHWM")}
words = ("deploy fetch build commit package timeout refused ok retry canary rollback frobnicator "
         "database index cache queue worker broker heartbeat mirror release hotfix").split()
hosts = [f"web{i:02d}" for i in range(50)]
daemons = ["stomp-git", "stomp-jenkins", "jenkins", "stomp-repo", "deploy-agent", "payroll", "billing", "api", "cron", "herald"]
repos = [f"repo{i:03d}" for i in range(100)]
types = ["log", "commit", "fetch", "build", "notice"]
levels = ["debug", "info", "info", "info", "warning", "error"]
t0_ms = int(time.time() * 1000) - N  # one event per ms of history
BATCH = 500
gen = random.Random(1)
def batch(k):
    out = []
    for i in range(k * BATCH, min(N, (k + 1) * BATCH)):
        out.append({"id": f"b{i}", "time": (t0_ms + i) / 1000.0, "type": types[i % 5], "level": levels[i % 6],
                    "daemon": daemons[i % 10], "host": hosts[i % 50], "repo": repos[i % 100],
                    "revision": "%040x" % (i // 7), "message": " ".join(gen.choice(words) for _ in range(8)) + f" #{i}"})
    return json.dumps(out).encode()
hdr = {"Content-Type": "application/json", "Authorization": "Bearer bench-token-0123456789"}
batches = (N + BATCH - 1) // BATCH
bodies = [batch(k) for k in range(batches)]  # outside the clock
nxt = [0]; lock = threading.Lock(); errors = []
def worker():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while True:
        with lock:
            k = nxt[0]; nxt[0] += 1
        if k >= batches: break
        c.request("POST", "/ingest", bodies[k], hdr)
        r = c.getresponse(); r.read()
        if r.status != 200: errors.append(r.status)
perf = None
if os.environ["PERF"]:
    perf = subprocess.Popen(["perf", "record", "-q", "-g", "-o", os.environ["PERF"], "-p", pid],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
t = time.time()
ths = [threading.Thread(target=worker) for s in range(4)]
[x.start() for x in ths]; [x.join() for x in ths]
dt = time.time() - t
if perf: perf.send_signal(2); perf.wait()
del bodies
res = {"events": N, "ingest_s": dt, "ingest_per_s": N / dt, "ingest_errors": len(errors)}
print(f"ingest: {N} records in {dt:.1f} s = {N/dt:,.0f} records/s (committed before each answer; errors: {len(errors)})")
res["rss_after_ingest"] = rss()
print(f"RSS after ingest: {res['rss_after_ingest']['VmRSS']} MiB (peak {res['rss_after_ingest']['VmHWM']} MiB); "
      f"database {os.path.getsize(os.environ['DB'])/2**20:.0f} MiB")
time.sleep(float(os.environ["IDLE_S"]))
res["rss_idle"] = rss()
print(f"RSS idle at {N} events: {res['rss_idle']['VmRSS']} MiB")
# search
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
c.request("GET", "/login"); r = c.getresponse(); r.read()
pre = re.search(r"herald_pre=([0-9a-f]+)", r.getheader("Set-Cookie")).group(1)
c.request("POST", "/login", urllib.parse.urlencode({"user": "alice", "password": "s3cret", "csrf": pre}),
          {"Content-Type": "application/x-www-form-urlencoded", "Cookie": "herald_pre=" + pre})
r = c.getresponse(); r.read()
sess = {"Cookie": "herald_session=" + re.search(r"herald_session=([0-9a-f]+)", r.getheader("Set-Cookie")).group(1)}
def get(qs):
    t = time.perf_counter()
    c.request("GET", "/api/events?" + qs, headers=sess); r = c.getresponse(); body = r.read()
    d = (time.perf_counter() - t) * 1000
    return r.status, d, body
st, _, body = get("limit=1")
newest = json.loads(body)["events"][0]["seq"] if st == 200 else N
rnd = random.Random(7)
def rev():
    i = rnd.randrange(N); return f"repo={repos[i % 100]}&revision={'%040x' % (i // 7)}"
def tr():
    a = t0_ms + rnd.randrange(N); return f"since={a}&until={a + 60000}"
def w(): return urllib.parse.quote(rnd.choice(words))
kinds = [
    ("no filter", lambda: ""),
    ("type", lambda: "type=" + rnd.choice(types)),
    ("host", lambda: "host=" + rnd.choice(hosts)),
    ("daemon", lambda: "daemon=" + rnd.choice(daemons)),
    ("level=error", lambda: "level=error"),
    ("repo", lambda: "repo=" + rnd.choice(repos)),
    ("repo+revision", rev),
    ("time range (1 min)", tr),
    ("type+daemon", lambda: "type=" + rnd.choice(types) + "&daemon=" + rnd.choice(daemons)),
    ("level=error+repo", lambda: "level=error&repo=" + rnd.choice(repos)),
    ("text (1 word)", lambda: "q=" + w()),
    ("text (2 words)", lambda: "q=" + w() + "+" + w()),
    ("text (rare: #N)", lambda: "q=" + str(rnd.randrange(N))),
    ("text+host", lambda: "q=" + w() + "+" + w() + "&host=" + rnd.choice(hosts)),
    ("text+type+daemon", lambda: "q=" + w() + "&type=" + rnd.choice(types) + "&daemon=" + rnd.choice(daemons)),
    ("deep page", lambda: f"before={rnd.randrange(1, newest)}"),
    ("deep page+host", lambda: f"before={rnd.randrange(1, newest)}&host=" + rnd.choice(hosts)),
    ("deep page+text", lambda: f"before={rnd.randrange(1, newest)}&q=" + w()),
]
# warm-up: one of each (the first query of a connection opens it, the cache is cold)
for _, f in kinds: get(f())
def pct(l, x): return l[min(len(l) - 1, int(len(l) * x))]
all_lat = []; res["kinds"] = {}; fails = {}
print()
print("| query kind | p50 ms | p99 ms | max ms | rows (avg) | errors |")
print("|---|---:|---:|---:|---:|---:|")
plan = [(name, f) for name, f in kinds for _ in range(Q)]
random.Random(3).shuffle(plan)  # interleaved, so a slow phase of the machine hits every kind
per = {name: [] for name, _ in kinds}; rows = {name: [] for name, _ in kinds}; errs = {name: 0 for name, _ in kinds}
for name, f in plan:
    st, d, body = get(f())
    if st != 200:
        errs[name] += 1
    else:
        rows[name].append(len(json.loads(body)["events"]))
    per[name].append(d); all_lat.append(d)
for name, _ in kinds:
    l = sorted(per[name])
    res["kinds"][name] = {"p50": pct(l, 0.5), "p99": pct(l, 0.99), "max": l[-1], "errors": errs[name]}
    avg = sum(rows[name]) / max(1, len(rows[name]))
    print(f"| {name} | {pct(l, 0.5):.1f} | {pct(l, 0.99):.1f} | {l[-1]:.1f} | {avg:.0f} | {errs[name]} |")
all_lat.sort()
res["search"] = {"p50": pct(all_lat, 0.5), "p90": pct(all_lat, 0.9), "p99": pct(all_lat, 0.99), "max": all_lat[-1]}
print(f"| **all {len(all_lat)}** | {pct(all_lat, 0.5):.1f} | {pct(all_lat, 0.99):.1f} | {all_lat[-1]:.1f} | | {sum(errs.values())} |")
print()
print(f"search: {len(all_lat)} queries over {N} events: p50 {pct(all_lat, 0.5):.1f} ms, p90 {pct(all_lat, 0.9):.1f} ms, "
      f"p99 {pct(all_lat, 0.99):.1f} ms, max {all_lat[-1]:.1f} ms (50 rows a page, JSON)")
res["rss_after_search"] = rss()
print(f"RSS after search: {res['rss_after_search']['VmRSS']} MiB (peak {res['rss_after_search']['VmHWM']} MiB)")
if os.environ["RESULTS"]:
    os.makedirs(os.environ["RESULTS"], exist_ok=True)
    with open(os.path.join(os.environ["RESULTS"], f"herald-{int(time.time())}.json"), "w") as fh: json.dump(res, fh, indent=1)
PY
if [[ -n ${KEEP_DB:-} ]]; then
  kill "$hpid"; wait "$hpid" 2>/dev/null || true
  cp "$work/herald.db" "$KEEP_DB"
fi
