#!/usr/bin/env bash
# herald's deploy page in headless Chromium (python3-selenium) against three deploy-agents on
# the embedded broker: a deployer picks the repo, a tag present on every node and the nodes,
# deploys with a canary, watches the job go to complete on the page, and finds it in the past
# deploys with each stage's output; the agents' site symlinks moved to the tag; the agents
# require signatures and audit the rollout as alice, signed with her key. Refused, with
# nothing sent to any agent: a viewer's deploy POST (403), a POST without the CSRF token (403),
# a tag with shell metacharacters (400). A second rollout is stopped from its page while its
# canary runs: it ends after the canary, the other nodes untouched; a viewer cannot stop one.
# Screenshots go to ARTIFACTS.
#   tests/integration/herald_deploy.sh STOMP_BROKER DEPLOY_AGENT HERALD ARTIFACTS
set -uo pipefail
STOMP_BROKER=$(realpath "$1") agent=$(realpath "$2") herald=$(realpath "$3") artifacts=$4
NAME=herald_deploy
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
for t in chromium chromedriver; do command -v "$t" >/dev/null || fatal "$t is not installed (scripts/deps.sh)"; done
/usr/bin/python3 -c "import selenium" 2>/dev/null || fatal "python3-selenium is not installed (scripts/deps.sh)"
mkdir -p "$artifacts"
w=$WORK
git_sandbox "$w"
me=$(id -un)
tagged_repo "$w/dev" v1 v2
read -r bport hport < <(free_ports 2)
url="stomp://127.0.0.1:$bport"
start_broker "$w/broker" "$bport"

# Signing on: the agents accept only signed requests; herald signs a user's rollout with that
# user's key (user-keys-file: alice has one, victor none) and its questions with its own.
printf 'alice %s\nherald %s\n' "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$w/keys"
chmod 600 "$w/keys"
# herald first: it records the agents' heartbeats and the jobs' events from the start
hash=$(echo 's3cret' | "$STOMP_BROKER" --hash-password)
printf 'users:\n  alice: {password: "%s", role: deployer}\n  victor: {password: "%s", role: viewer}\n' "$hash" "$hash" >"$w/users.yaml"
cat >"$w/herald.yaml" <<EOF
rserver: $url
database: $w/herald.db
listen: 127.0.0.1:$hport
users-file: $w/users.yaml
live-wait-seconds: 5
signing-key-file: $w/keys
signing-key-id: herald
deploy:
  discovery-timeout: 1
  defaults: {timeout: 30}
  user-keys-file: $w/keys
EOF
bg "$herald" -c "$w/herald.yaml" 2>"$w/herald.log"
ready() { [[ $(http_get "$hport" /readyz) == "200 "* ]]; }
wait_for 20 ready || { show "$w/herald.log"; fatal "herald not ready"; }

# three nodes, each with its clone, control dir (hooks that print), sitedir and state dir
for k in 1 2 3; do
  d=$w/n$k
  mkdir -p "$d/control" "$d/state"
  git clone -q --mirror "$w/dev" "$d/clone.git"
  printf '#!/bin/sh\necho "pre-deploy on n%s for $2"\necho "n%s pre $2" >>"%s/hooks.log"\n' "$k" "$k" "$w" >"$d/control/pre-deploy.sh"
  printf '#!/bin/sh\necho "post-deploy on n%s for $2"\n' "$k" >"$d/control/post-deploy.sh"
  chmod 755 "$d"/control/*.sh
  printf 'role: web\nidx: "%s"\n' "$k" >"$d/facts.yaml"
  cat >"$d/agent.yaml" <<YAML
rserver: $url
identity: n$k
facts-file: $d/facts.yaml
default-user: $me
state-dir: $d/state
hook-timeout: 30s
verify-key-file: $w/keys
require-signatures: true
repos:
  site: {repo: $d/clone.git, sitedir: $d/site, controldir: $d/control, user: $me, keep: 3}
policy:
  - {caller: "*", action: "*", effect: allow}
YAML
  bg "$agent" -c "$d/agent.yaml" 2>"$d/agent.log"
done
for k in 1 2 3; do
  wait_text "$w/n$k/agent.log" "subscribed to" 20 || fatal "agent n$k not ready: $(tail -5 "$w/n$k/agent.log")"
done
pass "three agents ready"

export HPORT=$hport ARTIFACTS=$artifacts W=$w
PYTHONPATH="$(dirname "$0")" timeout 100 /usr/bin/python3 - <<'PY' || fail "browser checks (see above)"
import os, sys, time
import herald_web
from herald_web import Checks
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
base = "http://localhost:%s" % os.environ["HPORT"]
art, w = os.environ["ARTIFACTS"], os.environ["W"]
check = Checks("herald_deploy")
def post_status(d, body):
    return d.execute_async_script("var done = arguments[arguments.length - 1];"
        "fetch('/deploy', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: arguments[0]})"
        ".then(r => done(r.status)).catch(e => done(String(e)));", body)
def site(k):
    return os.path.realpath(os.path.join(w, "n%d" % k, "site"))
d = herald_web.browser(1000)
try:
    herald_web.login(d, base, "alice")
    d.find_element(By.ID, "nav-deploy").click()
    WebDriverWait(d, 15).until(lambda d: d.find_elements(By.ID, "repo"))
    Select(d.find_element(By.ID, "repo")).select_by_visible_text("site")
    d.find_element(By.ID, "pick").click()
    WebDriverWait(d, 15).until(lambda d: d.find_elements(By.ID, "deployform"))
    tags = [o.get_attribute("value") for o in Select(d.find_element(By.ID, "tag")).options]
    check(tags == ["v2", "v1"], f"the tags on every node, newest first ({tags})")
    nodes = [b.get_attribute("value") for b in d.find_elements(By.CSS_SELECTOR, "input.node")]
    check(nodes == ["n1", "n2", "n3"], f"the agents' nodes are listed ({nodes})")
    Select(d.find_element(By.ID, "tag")).select_by_value("v2")
    d.find_element(By.ID, "allnodes").click()
    for f, v in (("canary", "1"), ("batch", "1")):
        e = d.find_element(By.ID, "f-" + f); e.clear(); e.send_keys(v)
    d.save_screenshot(os.path.join(art, "herald-deploy-form.png"))
    # a tag with shell metacharacters, sent with the page's own CSRF token: refused before anything is sent
    csrf = d.find_element(By.CSS_SELECTOR, "#deployform input[name=csrf]").get_attribute("value")
    st = post_status(d, "csrf=" + csrf + "&repo=site&node=n1&tag=" + "v2%3Btouch%20%2Ftmp%2Fpwned%24(id)")
    check(st == 400, f"a tag with shell metacharacters is refused ({st})")
    st = post_status(d, "repo=site&node=n1&tag=v2")
    check(st == 403, f"a deploy POST without the CSRF token is refused ({st})")
    d.find_element(By.ID, "deploy").click()
    WebDriverWait(d, 10).until(lambda d: "/deploy/job/" in d.current_url)
    job = d.current_url.rsplit("/", 1)[1]
    try:
        WebDriverWait(d, 60).until(lambda d: d.find_element(By.ID, "jobstate").text.startswith("complete"))
        check("(running)" not in d.find_element(By.ID, "jobstate").text, f"the job page shows {job} complete, live")
    except Exception:
        check(False, "the job page shows the job complete: " + d.find_element(By.ID, "job").text[:2000])
    prog = d.find_element(By.ID, "progress").text
    check("canary 1/3: n1" in prog and "batch 3/3: n3" in prog, "the canary went first, then batches of 1")
    d.save_screenshot(os.path.join(art, "herald-deploy-job.png"))
    on = [site(k).endswith("-v2") or "v2" in os.path.basename(site(k)) for k in (1, 2, 3)]
    check(all(on), f"the agents' site symlinks moved to v2 ({[site(k) for k in (1, 2, 3)]})")
    # the rollout's output is recorded with the user (so past deploys keep it across restarts)
    def recorded():
        return d.execute_async_script("var done = arguments[arguments.length - 1];"
            "fetch('/api/events?type=deploy.output&q=' + arguments[0]).then(r => r.text()).then(done).catch(e => done(String(e)));", job)
    try:
        WebDriverWait(d, 15).until(lambda d: "pre-deploy on n3 for v2" in recorded())
        rec = recorded()
        check('"user":"alice"' in rec and '"state":"complete"' in rec, "the rollout's stage output is recorded as deploy.output with the user")
    except Exception:
        check(False, "the rollout's stage output is recorded: " + recorded()[:500])
    # past deploys: the entry, then its page with every stage's output
    d.get(base + "/deploy")
    WebDriverWait(d, 15).until(lambda d: d.find_elements(By.ID, "past"))
    rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#past tbody tr")]
    check(any(job in r and "complete" in r and "alice" in r and "v2" in r for r in rows), f"past deploys list the job ({rows[:3]})")
    d.save_screenshot(os.path.join(art, "herald-deploy-past.png"))
    d.find_element(By.LINK_TEXT, job).click()
    WebDriverWait(d, 10).until(lambda d: d.find_elements(By.ID, "jobnodes"))
    for s in d.find_elements(By.CSS_SELECTOR, "details.stage summary"): s.click()
    txt = d.find_element(By.ID, "jobnodes").text
    check(all(("pre-deploy on n%d for v2" % k) in txt and ("post-deploy on n%d for v2" % k) in txt for k in (1, 2, 3)),
          "the past deploy shows each node's stage output")
    d.save_screenshot(os.path.join(art, "herald-deploy-output.png"))
    # Stop after the current batch: v1 with a canary whose pre-deploy waits for a gate file, so
    # the stop lands while the canary runs; the canary finishes, n2 and n3 are not touched.
    gate = os.path.join(w, "gate")
    with open(os.path.join(w, "n1", "control", "pre-deploy.sh"), "w") as f:
        f.write('#!/bin/sh\necho "pre-deploy on n1 for $2"\ni=0\n'
                'while [ ! -e "%s" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done\n' % gate)
    d.get(base + "/deploy?repo=site")
    WebDriverWait(d, 15).until(lambda d: d.find_elements(By.ID, "deployform"))
    Select(d.find_element(By.ID, "tag")).select_by_value("v1")
    d.find_element(By.ID, "allnodes").click()
    for f, v in (("canary", "1"), ("batch", "1")):
        e = d.find_element(By.ID, "f-" + f); e.clear(); e.send_keys(v)
    d.find_element(By.ID, "deploy").click()
    WebDriverWait(d, 10).until(lambda d: "/deploy/job/" in d.current_url)
    job2 = d.current_url.rsplit("/", 1)[1]
    with open(os.path.join(w, "job2"), "w") as f:
        f.write(job2)
    try:
        WebDriverWait(d, 30).until(lambda d: "canary 1/3: n1" in d.find_element(By.ID, "job").text)
        d.find_element(By.ID, "stopjob").click()
        WebDriverWait(d, 10).until(lambda d: d.find_elements(By.ID, "stopping"))
        check("alice" in d.find_element(By.ID, "stopping").text, "the running job's page says alice asked it to stop")
        d.save_screenshot(os.path.join(art, "herald-deploy-stopping.png"))
    except Exception:
        check(False, "the stop button stops the job: " + d.find_element(By.TAG_NAME, "body").text[:2000])
    open(gate, "w").close()
    try:
        WebDriverWait(d, 60).until(lambda d: d.find_element(By.ID, "jobstate").text.startswith("aborted"))
        check(not d.find_elements(By.ID, "stopform") and not d.find_elements(By.ID, "stopping"),
              "the stop button goes when the job has ended")
    except Exception:
        check(False, "the stopped job ends aborted: " + d.find_element(By.ID, "job").text[:2000])
    prog = d.find_element(By.ID, "progress").text
    check("alice asked to stop" in prog and "batch 2/3" not in prog, "the rollout stopped after the canary batch")
    check("v1" in os.path.basename(site(1)) and all("v2" in os.path.basename(site(k)) for k in (2, 3)),
          f"the canary finished its deploy, the other nodes stayed on v2 ({[site(k) for k in (1, 2, 3)]})")
finally:
    d.quit()
v = herald_web.browser(1000)
try:
    herald_web.login(v, base, "victor")
    v.get(base + "/deploy?repo=site")
    WebDriverWait(v, 15).until(lambda v: v.find_elements(By.ID, "deployform"))
    csrf = v.find_element(By.CSS_SELECTOR, "#deployform input[name=csrf]").get_attribute("value")
    st = post_status(v, "csrf=" + csrf + "&repo=site&node=n1&tag=v1")
    check(st == 403, f"a viewer's deploy POST is refused ({st})")
    st = v.execute_async_script("var done = arguments[arguments.length - 1];"
        "fetch('/deploy/job/' + arguments[0] + '/stop', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},"
        " body: 'csrf=' + arguments[1]}).then(r => done(r.status)).catch(e => done(String(e)));", job2, csrf)
    check(st == 403, f"a viewer's stop POST is refused ({st})")
finally:
    v.quit()
sys.exit(1 if check.fails else 0)
PY
# nothing of the refused requests reached an agent (each agent audits every request it receives);
# the stopped rollout of v1 (job2) is left out of these counts
# (grep -c, not -q: with pipefail an early exit of the second grep would fail the first)
job2=$(cat "$w/job2" 2>/dev/null) || job2=none
audit_lines() { grep -h "$1" "$w"/n*/agent.log | grep -v -F "\"$job2\""; }
if (($(audit_lines '"action":"deploy"' | grep -c -e pwned -e '"v1"') > 0)); then
  fail "a refused deploy reached an agent: $(grep -h pwned "$w"/n*/agent.log | head -2)"
else
  pass "the refused deploys sent nothing to any agent"
fi
[[ ! -e /tmp/pwned ]] || fail "/tmp/pwned exists"
[[ $(head -1 "$w/hooks.log" 2>/dev/null) == "n1 pre v2" ]] && pass "the canary n1 deployed first" || fail "hooks: $(cat "$w/hooks.log")"
(($(audit_lines '"caller":"alice"' | grep '"phase":"commit"' | grep -c '"verified":true') == 3)) &&
  pass "the agents audit the deploy as alice, verified by alice's signature" ||
  fail "no audit line with caller alice: $(grep -h audit "$w/n1/agent.log" | tail -2)"
ls "$artifacts"/herald-deploy-*.png >/dev/null 2>&1 && pass "screenshots in $artifacts" || bad "no screenshots"
finish
