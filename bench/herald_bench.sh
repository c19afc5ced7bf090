#!/usr/bin/env bash
# herald at 1 M recorded events: ingest rate (records/s through POST /ingest, JSON arrays of 500,
# 4 concurrent keep-alive clients; each request is answered after its transaction committed,
# synchronous=FULL), search latency over the full database (p50/p99 of mixed JSON API queries:
# exact filters, level, time range, free text through FTS5, repo + revision, deep pages), and
# herald's RSS (VmRSS, VmHWM) after each phase. Run it under the CPU lock:
#   flock /tmp/dk-cpu.lock bench/herald_bench.sh [BUILD_DIR]     (EVENTS=1000000 QUERIES=400)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
events=${EVENTS:-1000000}
queries=${QUERIES:-400}
herald=$PWD/$build/daemons/herald/herald
broker=$PWD/$build/daemons/stomp-broker/stomp-broker
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
sqlite-synchronous: ${SYNC:-full}
EOF2
"$herald" -c "$work/herald.yaml" 2>"$work/herald.log" &
hpid=$!
pids+=($hpid)
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$hport") 2>/dev/null && break; sleep 0.05; done
echo "herald $("$herald" --version 2>&1 | head -1), $events events, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
HPORT=$hport HPID=$hpid EVENTS=$events QUERIES=$queries DB=$work/herald.db /usr/bin/python3 - <<'PY'
import http.client, json, os, random, re, threading, time, urllib.parse
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
def batch(k, rnd):
    out = []
    for i in range(k * BATCH, min(N, (k + 1) * BATCH)):
        out.append({"id": f"b{i}", "time": (t0_ms + i) / 1000.0, "type": types[i % 5], "level": levels[i % 6],
                    "daemon": daemons[i % 10], "host": hosts[i % 50], "repo": repos[i % 100],
                    "revision": "%040x" % (i // 7), "message": " ".join(rnd.choice(words) for _ in range(8)) + f" #{i}"})
    return json.dumps(out)
hdr = {"Content-Type": "application/json", "Authorization": "Bearer bench-token-0123456789"}
batches = (N + BATCH - 1) // BATCH
nxt = [0]; lock = threading.Lock(); errors = []
def worker(seed):
    rnd = random.Random(seed)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while True:
        with lock:
            k = nxt[0]; nxt[0] += 1
        if k >= batches: break
        body = batch(k, rnd)
        c.request("POST", "/ingest", body, hdr)
        r = c.getresponse(); r.read()
        if r.status != 200: errors.append(r.status)
t = time.time()
ths = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
[x.start() for x in ths]; [x.join() for x in ths]
dt = time.time() - t
print(f"ingest: {N} records in {dt:.1f} s = {N/dt:,.0f} records/s (committed before each answer; errors: {len(errors)})")
print(f"RSS after ingest: {rss()['VmRSS']} MiB (peak {rss()['VmHWM']} MiB); database {os.path.getsize(os.environ['DB'])/2**20:.0f} MiB")
# search
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
c.request("GET", "/login"); r = c.getresponse(); r.read()
pre = re.search(r"herald_pre=([0-9a-f]+)", r.getheader("Set-Cookie")).group(1)
c.request("POST", "/login", urllib.parse.urlencode({"user": "alice", "password": "s3cret", "csrf": pre}),
          {"Content-Type": "application/x-www-form-urlencoded", "Cookie": "herald_pre=" + pre})
r = c.getresponse(); r.read()
sess = {"Cookie": "herald_session=" + re.search(r"herald_session=([0-9a-f]+)", r.getheader("Set-Cookie")).group(1)}
rnd = random.Random(7)
def q():
    kind = rnd.randrange(8)
    if kind == 0: return ""
    if kind == 1: return "host=" + rnd.choice(hosts)
    if kind == 2: return "type=" + rnd.choice(types) + "&daemon=" + rnd.choice(daemons)
    if kind == 3: return "level=error&repo=" + rnd.choice(repos)
    if kind == 4: return "q=" + rnd.choice(words)
    if kind == 5: return "q=" + urllib.parse.quote(rnd.choice(words) + " " + rnd.choice(words)) + "&host=" + rnd.choice(hosts)
    if kind == 6:
        i = rnd.randrange(N); return f"repo={repos[i % 100]}&revision={'%040x' % (i // 7)}"
    a = t0_ms + rnd.randrange(N); return f"since={a}&until={a + 60000}"
lat = []; kinds = {}
for _ in range(Q):
    qs = q()
    t = time.perf_counter()
    c.request("GET", "/api/events?" + qs, headers=sess); r = c.getresponse(); body = r.read()
    d = (time.perf_counter() - t) * 1000
    assert r.status == 200, (r.status, body[:200])
    lat.append(d)
    # the next page of a plain listing, deep in the history
lat.sort()
p = lambda x: lat[min(len(lat) - 1, int(len(lat) * x))]
print(f"search: {Q} queries over {N} events: p50 {p(0.5):.1f} ms, p90 {p(0.9):.1f} ms, p99 {p(0.99):.1f} ms, max {lat[-1]:.1f} ms (50 rows each, JSON)")
print(f"RSS after search: {rss()['VmRSS']} MiB (peak {rss()['VmHWM']} MiB)")
PY
