#!/usr/bin/env bash
# herald's pages in headless Chromium (Debian chromium + chromium-driver, python3-selenium): log
# in, search, the live feed updating after a push through the stomp-post-receive hook, and the
# refusals a browser can attempt: a POST without the CSRF token, a forged proxy header from a
# non-trusted address (this browser is not the proxy), a viewer trying a deployer action.
# Screenshots of the main pages are kept in ARTIFACTS.
#   tests/integration/herald_browser.sh STOMP_BROKER STOMP_POST_RECEIVE HERALD ARTIFACTS
set -euo pipefail
broker=$(realpath "$1") hookbin=$(realpath "$2") herald=$(realpath "$3") artifacts=$4
NAME=herald_browser
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
for t in chromium chromedriver; do command -v "$t" >/dev/null || fatal "$t is not installed (scripts/deps.sh)"; done
/usr/bin/python3 -c "import selenium" 2>/dev/null || fatal "python3-selenium is not installed (scripts/deps.sh)"
mkdir -p "$artifacts"
work=$WORK
git_sandbox "$work"
read -r port hport < <(free_ports 2)
url="stomp://127.0.0.1:$port"
embedded_broker "$broker" "$port" "$work/broker.log" --data-dir "$work/broker-data" || fatal "broker did not start"
hash=$(echo 's3cret' | "$broker" --hash-password)
printf 'users:\n  alice: {password: "%s", role: deployer}\n  victor: {password: "%s", role: viewer}\n' "$hash" "$hash" >"$work/users.yaml"
cat >"$work/herald.yaml" <<EOF2
rserver: $url
database: $work/herald.db
listen: 127.0.0.1:$hport
users-file: $work/users.yaml
trusted-proxies: [10.9.9.9]
proxy-user-header: X-Remote-User
live-wait-seconds: 5
EOF2
bg "$herald" -c "$work/herald.yaml" 2>"$work/herald.log"
ready() { [[ $(http_get "$hport" /readyz) == "200 "* ]]; }
wait_for 20 ready || { show "$work/herald.log"; fatal "herald not ready"; }
git init -q --bare "$work/origin/site.git"
printf 'rserver: %s\nwire-format: both\nspool-dir: %s/spool\n' "$url" "$work" >"$work/hook.yaml"
export DEPLOYKIT_HOOK_CONFIG=$work/hook.yaml
"$hookbin" --install "$work/origin/site.git" >/dev/null
git clone -q "$work/origin/site.git" "$work/dev" 2>/dev/null
(cd "$work/dev" && echo v1 >index.html && git add . && git commit -qm "First page" && git push -q origin master 2>/dev/null)

export HPORT=$hport ARTIFACTS=$artifacts DEV=$work/dev
PYTHONPATH="$(dirname "$0")" timeout 150 /usr/bin/python3 - <<'PY' || fail "browser checks (see above)"
import os, subprocess, sys, time
import herald_web
from herald_web import Checks
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
base = "http://localhost:%s" % os.environ["HPORT"]  # a secure context: Chromium keeps Secure cookies for localhost over http
art = os.environ["ARTIFACTS"]
check = Checks("herald_browser")
def js_status(d, script):
    return d.execute_async_script("var done = arguments[arguments.length - 1];" + script + ".then(r => done(r.status)).catch(e => done(String(e)));")
d = herald_web.browser(900)
try:
    d.get(base + "/login"); d.save_screenshot(os.path.join(art, "herald-login.png"))
    herald_web.login(d, base, "alice", path="/")
    check("First page" in d.page_source, "alice logs in and sees the push in the table")
    d.save_screenshot(os.path.join(art, "herald-search.png"))
    # search by free text
    box = d.find_element(By.NAME, "q"); box.clear(); box.send_keys("First"); d.find_element(By.ID, "search").click()
    WebDriverWait(d, 10).until(lambda d: "q=First" in d.current_url)
    rows = d.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    check(len(rows) >= 1 and all("First" in r.text for r in rows), "a free-text search shows only matching rows")
    rows[0].find_element(By.TAG_NAME, "summary").click()
    check("refs/heads/master" in rows[0].text, "a click on a row shows its details")
    d.save_screenshot(os.path.join(art, "herald-details.png"))
    # live feed: back to the unfiltered page, push, the row appears without a reload
    d.get(base + "/")
    WebDriverWait(d, 10).until(lambda d: d.find_elements(By.ID, "events"))
    time.sleep(0)  # (nothing to wait for: the feed's EventSource is opened by the page script)
    dev = os.environ["DEV"]
    subprocess.run(["bash", "-c", 'cd "$0" && echo v2 > index.html && git commit -qam "Live feed works" && git push -q origin master 2>/dev/null', dev], check=True)
    try:
        WebDriverWait(d, 20).until(lambda d: any("Live feed works" in r.text for r in d.find_elements(By.CSS_SELECTOR, "#events tbody tr.new")))
        check(True, "the live feed shows the new push without a reload")
    except Exception:
        check(False, "the live feed shows the new push without a reload")
    d.save_screenshot(os.path.join(art, "herald-live.png"))
    # a POST without the CSRF token
    st = js_status(d, "fetch('/note', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'text=sneaky'})")
    check(st == 403, f"a POST without the CSRF token is refused ({st})")
    # the proxy's header from this (non-trusted) address
    st = js_status(d, "fetch('/', {headers: {'X-Remote-User': 'alice'}})")
    check(st == 403, f"a forged proxy header from a non-trusted address is refused ({st})")
    # a deployer's note through the form works
    d.find_element(By.ID, "notetext").send_keys("release freeze until monday"); d.find_element(By.ID, "note").click()
    WebDriverWait(d, 10).until(lambda d: "release freeze" in d.page_source)
    check(True, "a deployer's note through the form (with its CSRF token) is recorded")
finally:
    d.quit()
v = herald_web.browser(900)
try:
    herald_web.login(v, base, "victor", path="/")
    v.find_element(By.ID, "notetext").send_keys("viewer note"); v.find_element(By.ID, "note").click()
    WebDriverWait(v, 10).until(lambda v: "deployer role" in v.page_source)
    check(True, "a viewer trying a deployer action is refused")
    v.save_screenshot(os.path.join(art, "herald-viewer-refused.png"))
    v.get(base + "/?q=viewer")
    check("viewer note" not in "".join(r.text for r in v.find_elements(By.CSS_SELECTOR, "#events tbody tr")), "and nothing was recorded")
finally:
    v.quit()
sys.exit(1 if check.fails else 0)
PY
ls "$artifacts"/herald-*.png >/dev/null 2>&1 && pass "screenshots in $artifacts" || bad "no screenshots"
finish
