#!/usr/bin/env bash
# herald end to end on the embedded broker with real producers: a push through the
# stomp-post-receive hook (native + legacy copies of each event), stomp-git fetching it (trusting
# mode, as its own user), jenkins-helper reporting a build -> each recorded once, found by the
# JSON API (filters, free text, related events by repo + revision) and the HTML page; a Python
# program logging through logging.handlers.HTTPHandler into /ingest (Basic credentials) and
# JSON with a bearer token; a bad token, an oversized body, a POST without the CSRF token, a
# forged proxy header from a non-trusted address and a viewer's deployer action refused; the
# live feed (SSE with Last-Event-ID); a full database (sqlite-max-pages) reported on /readyz with
# nothing acknowledged, and the held events recorded after a restart with room.
#   tests/integration/herald.sh STOMP_BROKER STOMPCTL STOMP_POST_RECEIVE STOMP_GIT JENKINS_HELPER HERALD
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") hookbin=$(realpath "$3") sgit=$(realpath "$4")
helper=$(realpath "$5") herald=$(realpath "$6")
[[ $(id -u) == 0 ]] || { echo "FAIL needs root (stomp-git drops privileges)"; exit 1; }
NAME=herald
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
chmod 755 "$WORK"
work=$WORK
id dkweb >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin dkweb
git_sandbox "$work"
read -r port hport < <(free_ports 2)
url="stomp://127.0.0.1:$port"
embedded_broker "$broker" "$port" "$work/broker.log" --data-dir "$work/broker-data" || fatal "broker did not start"
H="http://127.0.0.1:$hport"

# ---- herald ----
printf 'ingest-token-0123456789\n' >"$work/app.token"
chmod 600 "$work/app.token"
hash=$(echo 's3cret' | "$broker" --hash-password)
cat >"$work/users.yaml" <<EOF2
users:
  alice: {password: "$hash", role: deployer}
  victor: {password: "$hash", role: viewer}
EOF2
herald_config() { # MAX_PAGES
  cat >"$work/herald.yaml" <<EOF2
rserver: $url
database: $work/herald.db
listen: 127.0.0.1:$hport
users-file: $work/users.yaml
trusted-proxies: [10.9.9.9]
proxy-user-header: X-Remote-User
ingest-tokens:
  pyapp: {token-file: $work/app.token, system: payroll}
ingest-max-body-bytes: 65536
sqlite-max-pages: $1
live-wait-seconds: 5
heartbeat-interval: 1
EOF2
}
hpid=
start_herald() {
  bg "$herald" -c "$work/herald.yaml"
  hpid=$BG_PID
  wait_for 15 listening_or_dead "$hport" "$hpid" && ! exited "$hpid" || { show "$work/herald.log" 30; fatal "herald did not start"; }
}
herald_config 0
start_herald 2>>"$work/herald.log"
ready() { [[ $(http_get "$hport" /readyz) == "200 "* ]]; }
wait_for 15 ready && pass "herald ready: subscribed to every default topic" || { show "$work/herald.log"; fatal "not ready"; }

# ---- producers ----
git init -q --bare "$work/origin/site.git"
printf 'rserver: %s\nwire-format: both\nspool-dir: %s/spool\n' "$url" "$work" >"$work/hook.yaml"
export DEPLOYKIT_HOOK_CONFIG=$work/hook.yaml
"$hookbin" --install "$work/origin/site.git" >/dev/null
git clone -q "$work/origin/site.git" "$work/dev" 2>/dev/null
(cd "$work/dev" && echo v1 >index.html && git add . && git commit -qm "first page" && git push -q origin master 2>/dev/null)
chmod -R a+rX "$work/origin"
mkdir -p "$work/data/repos" "$work/data/sites"
git clone -q "$work/origin/site.git" "$work/data/repos/web"
chown -R dkweb "$work/data/repos/web" "$work/data/sites"
cat >"$work/stomp-git.yaml" <<EOF2
rserver: $url
listen-topic: future.git.commits
report-topic: future.events.stomp-git
wire-format: both
safety-fetch-interval: 0
durable-name: sgit-web
state-dir: $work/state-web
repo-list:
  site: {user: dkweb, repo: $work/data/repos/web, target: $work/data/sites/www, mode: trusting}
EOF2
bg "$sgit" -c "$work/stomp-git.yaml" 2>"$work/sgit.log"
wait_for 15 has_text "$work/sgit.log" "subscribed" || { show "$work/sgit.log"; fatal "stomp-git did not subscribe"; }

(cd "$work/dev" && echo v2 >index.html && git commit -qam "Fix the frobnicator" && git push -q origin master 2>/dev/null)
rev=$(git -C "$work/dev" rev-parse HEAD)
JOB_NAME=Site-Build BUILD_NUMBER=42 BUILD_URL=http://jenkins/job/Site-Build/42/ GIT_BRANCH=origin/master GIT_COMMIT=$rev \
  "$helper" -p --config <(printf 'rserver: %s\nwire-format: both\nspool-dir: %s/jh-spool\n' "$url" "$work") 2>"$work/jh.log" || true

# ---- the HTTP side, in Python (sessions, CSRF, SSE) ----
export H rev work
/usr/bin/python3 - <<'PY' || fail "HTTP checks (see above)"
import http.client, json, os, re, sys, time, urllib.parse, base64
H = os.environ["H"]; rev = os.environ["rev"]
host, port = H[len("http://"):].split(":"); port = int(port)
fails = 0
def check(ok, what):
    global fails
    print(("PASS: herald: " if ok else "FAIL: herald: ") + what, flush=True)
    if not ok: fails += 1
def req(method, path, body=None, headers=None):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.headers.get_all("Set-Cookie") or [], data.decode("utf-8", "replace")
def login(user):
    s, h, cookies, body = req("GET", "/login")
    pre = re.search(r"herald_pre=([0-9a-f]+)", " ".join(cookies)).group(1)
    form = urllib.parse.urlencode({"user": user, "password": "s3cret", "csrf": pre})
    s, h, cookies, body = req("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded", "Cookie": "herald_pre=" + pre})
    assert s == 303, (s, body)
    sc = " ".join(cookies)
    check("HttpOnly" in sc and "SameSite=Strict" in sc and "Secure" in sc, f"{user}'s session cookie is HttpOnly; Secure; SameSite=Strict")
    return re.search(r"herald_session=([0-9a-f]+)", sc).group(1)
alice = login("alice"); victor = login("victor")
A = {"Cookie": "herald_session=" + alice}
def api(q, who=A):
    s, h, c, body = req("GET", "/api/events?" + q, headers=who)
    assert s == 200, (s, body)
    return json.loads(body)["events"]
def wait(q, n, secs=20):
    end = time.time() + secs
    while True:
        ev = api(q)
        if len(ev) >= n or time.time() > end: return ev
        time.sleep(0.1)
commits = wait("type=commit&revision=" + rev, 1)
check(len(commits) == 1 and commits[0]["repo"] == "site" and "Fix the frobnicator" in commits[0]["message"],
      "the push's commit event recorded once (native and legacy copies: one row)")
fetches = [e for e in wait("type=fetch&revision=" + rev, 1) if e["data"].get("ref") == "refs/heads/master"]
check(len(fetches) == 1 and fetches[0]["daemon"] == "stomp-git", "stomp-git's fetch of the pushed ref recorded once")
builds = wait("type=build&revision=" + rev, 1)
check(len(builds) >= 1 and builds[0]["daemon"] == "jenkins", "jenkins-helper's build recorded")
related = api("repo=site&revision=" + rev)
check({e["type"] for e in related} >= {"commit", "fetch"}, "related events by repo + revision: commit and fetch")
found = api("q=frobnicator")
check(any(e["type"] == "commit" for e in found), "free text (FTS5) finds the commit message")
check(api('q=%22%29%20OR%20%2A') == [] , "FTS syntax in the search box is text, not a query")
s, h, c, page = req("GET", "/?repo=site", headers=A)
check(s == 200 and "Fix the frobnicator" in page and "default-src 'none'" in h.get("content-security-policy", ""), "the HTML page lists the push, with a CSP")
s, h, c, body = req("GET", "/api/events")
check(s == 401, "the API needs a login")
# ---- ingest ----
import logging, logging.handlers
lg = logging.getLogger("payroll-batch"); lg.setLevel(logging.INFO)
lg.addHandler(logging.handlers.HTTPHandler(f"{host}:{port}", "/ingest", method="POST", credentials=("pyapp", "ingest-token-0123456789")))
lg.warning("paid %d invoices for %s", 17, "ACME")
got = wait("q=invoices", 1)
check(len(got) == 1 and got[0]["message"] == "paid 17 invoices for ACME" and got[0]["level"] == "warning"
      and got[0]["daemon"] == "payroll-batch" and got[0]["system"] == "payroll",
      "a Python program's logging.handlers.HTTPHandler record is recorded (message formatted, level, logger, system)")
s, h, c, body = req("POST", "/ingest", json.dumps({"message": "bearer works", "level": "error", "host": "db01"}),
                    {"Content-Type": "application/json", "Authorization": "Bearer ingest-token-0123456789"})
check(s == 200 and len(wait("q=bearer", 1)) == 1, "JSON with a bearer token is recorded")
s, h, c, body = req("POST", "/ingest", json.dumps({"message": "nope"}), {"Content-Type": "application/json", "Authorization": "Bearer wrong-token-0123456789"})
check(s == 401 and api("q=nope") == [], "a bad token is refused (401) and nothing recorded")
s, h, c, body = req("POST", "/ingest", json.dumps({"message": "x" * 100000}), {"Content-Type": "application/json", "Authorization": "Bearer ingest-token-0123456789"})
check(s == 413, f"an oversized body is refused (413, got {s})")
# ---- refusals ----
s, h, c, body = req("POST", "/note", urllib.parse.urlencode({"text": "no csrf"}), {**A, "Content-Type": "application/x-www-form-urlencoded"})
check(s == 403 and api("q=csrf") == [], "a POST without the CSRF token is refused")
s, h, c, body = req("GET", "/", headers={"X-Remote-User": "alice"})
check(s == 403, "a forged proxy header from a non-trusted address is refused")
s, h, c, page = req("GET", "/", headers={"Cookie": "herald_session=" + victor})
vcsrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
s, h, c, body = req("POST", "/note", urllib.parse.urlencode({"text": "viewer note", "csrf": vcsrf}),
                    {"Cookie": "herald_session=" + victor, "Content-Type": "application/x-www-form-urlencoded"})
check(s == 403 and api("q=viewer") == [], "a viewer's deployer action is refused")
s, h, c, page = req("GET", "/", headers=A)
acsrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
s, h, c, body = req("POST", "/note", urllib.parse.urlencode({"text": "maintenance window starts", "csrf": acsrf}),
                    {**A, "Content-Type": "application/x-www-form-urlencoded"})
check(s == 303 and len(wait("q=maintenance", 1)) == 1, "a deployer's note with the CSRF token is recorded")
# ---- live feed ----
last = api("limit=1")[0]["seq"]
s, h, c, body = req("GET", "/api/live", headers={**A, "Last-Event-ID": str(last - 2)})
ids = [int(x) for x in re.findall(r"^id: (\d+)$", body, re.M)]
check(s == 200 and h["content-type"].startswith("text/event-stream") and ids and ids[0] == last - 1 and ids[-1] == last,
      f"the live feed resumes after Last-Event-ID ({ids})")
sys.exit(1 if fails else 0)
PY

# ---- recorded once, acknowledged after commit ----
dups=$(http_get "$hport" /metrics | awk '/^herald_duplicates_total/ {print $2}')
[[ ${dups:-0} != 0 ]] && pass "the second wire copies reached the database and were not inserted ($dups)" || pass "second wire copies dropped by the intake before the database"

# A full database: nothing acknowledged, /readyz says why; a restart with room records what the
# broker kept.
stop_pid "$hpid"; untrack "$hpid"
pages=$(/usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA page_count').fetchone()[0])" "$work/herald.db")
herald_config "$pages"
start_herald 2>>"$work/herald.log"
for i in $(seq 40); do printf '{"v":1,"id":"full-%s","type":"notice","host":"web01","time":"2026-12-04T10:00:00Z","data":{"text":"while full %s %s"}}' "$i" "$i" "$(head -c 3000 /dev/zero | tr '\0' x)"; echo; done >"$work/full.jsonl"
while read -r line; do "$stompctl" -u "$url" publish -t /topic/future.events.stomp-git -H content-type:application/json -m "$line" >/dev/null; done <"$work/full.jsonl"
notready() { [[ $(http_get "$hport" /readyz) == "503 "*"database failing"* ]]; }
wait_for 20 notready && pass "a full database: /readyz 503 with the reason" || { bad "readyz: $(http_get "$hport" /readyz)"; show "$work/herald.log"; }
grep -q "DATABASE FAILURE" "$work/herald.log" && pass "the failure is logged loudly" || bad "no DATABASE FAILURE line"
stop_pid "$hpid"; untrack "$hpid"
herald_config 0
start_herald 2>>"$work/herald.log"
count_full() { /usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT count(*) FROM events WHERE id LIKE 'full-%'\").fetchone()[0])" "$work/herald.db"; }
all40() { [[ $(count_full) == 40 ]]; }
wait_for 30 all40 && pass "after a restart with room, every event published while full is recorded (nothing was acknowledged)" \
  || bad "recorded $(count_full) of 40"
finish
