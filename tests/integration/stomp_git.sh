#!/usr/bin/env bash
# stomp-git end to end on the embedded broker with real git and real users: a push through the
# post-receive hook reaches clones owned by different (nologin) users; trusting, puppetmaster,
# atomic and normal modes checked on disk; unsafe refs and unknown repos change nothing;
# stomp-git stopped during pushes catches up on start.
#   tests/integration/stomp_git.sh STOMP_BROKER STOMPCTL STOMP_POST_RECEIVE STOMP_GIT
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") hookbin=$(realpath "$3") sgit=$(realpath "$4")
[[ $(id -u) == 0 ]] || { echo "FAIL needs root (creates users, drops privileges)"; exit 1; }
NAME=stomp_git
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
chmod 755 "$work"
bpid= gpid= spid= others=()
kill_at_exit spid gpid others bpid
for u in dkweb dkpuppet; do id "$u" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$u"; done
git_sandbox "$work"
port=$(free_port)
url="stomp://127.0.0.1:$port"
embedded_broker "$broker" "$port" "$work/broker.log"
bpid=$BROKER_PID

# The central repository, its hook, and a first commit.
git init -q --bare "$work/origin/site.git"
chmod -R a+rX "$work/origin"
printf 'rserver: %s\nwire-format: both\nspool-dir: %s/spool\n' "$url" "$work" >"$work/hook.yaml"
export DEPLOYKIT_HOOK_CONFIG=$work/hook.yaml
"$hookbin" --install "$work/origin/site.git" >/dev/null
git clone -q "$work/origin/site.git" "$work/dev" 2>/dev/null
(cd "$work/dev" && echo v1 >index.html && git add . && git commit -qm one && git push -q origin master 2>/dev/null)
chmod -R a+rX "$work/origin"

# Server side: clones owned by their users.
mkdir -p "$work/data/repos" "$work/data/sites" "$work/data/puppet" "$work/data/atomic"
for r in web envs atomic; do git clone -q "$work/origin/site.git" "$work/data/repos/$r"; done
git clone -q "$work/origin/site.git" "$work/data/repos/plain"
chown -R dkweb "$work/data/repos/web" "$work/data/repos/atomic" "$work/data/sites" "$work/data/atomic"
chown -R dkpuppet "$work/data/repos/envs" "$work/data/puppet"
# One stomp-git per "server", each keeping a clone of the pushed repository "site" in one mode.
common="rserver: failover://(stomp://127.0.0.1:$port)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
listen-topic: future.git.commits
report-topic: future.events.stomp-git
wire-format: both
safety-fetch-interval: 0
repo-list:"
# Each "server" has its own durable subscription (one host here) and its own state dir.
server() { printf '%s\n' "${common/repo-list:/durable-name: sgit-$1
state-dir: $work/state-$1
repo-list:}"; }
printf '%s\n  site: {user: dkweb, repo: %s, target: %s, mode: trusting}\n' "$(server web)" "$work/data/repos/web" "$work/data/sites/www" >"$work/stomp-git.yaml"
printf '%s\n  site: {user: dkweb, repo: %s, target: %s, mode: atomic, keep: 2}\n' "$(server atomic)" "$work/data/repos/atomic" "$work/data/atomic" >"$work/atomic.yaml"
printf '%s\n  site: {user: dkpuppet, repo: %s, target: %s, mode: puppetmaster}\n' "$(server puppet)" "$work/data/repos/envs" "$work/data/puppet/environments" >"$work/puppet.yaml"
# The v1 form exactly as the original and its Puppet define wrote it: `name: /path` at the top level.
printf '%s\nsite: %s\n' "$(server plain | sed '/^repo-list:$/d')" "$work/data/repos/plain" >"$work/plain.yaml"

"$stompctl" -u "$url" subscribe -t /topic/future.events.stomp-git --events --wait 120 >"$work/reports" 2>/dev/null &
spid=$!
"$sgit" -c "$work/stomp-git.yaml" -d 2>"$work/sgit.log" &
gpid=$!
others=()
for c in atomic puppet plain; do
  "$sgit" -c "$work/$c.yaml" 2>"$work/sgit-$c.log" &
  others+=($!)
done
until_true 20 test -f "$work/data/sites/www/index.html" && pass "start-up catch-up published the trusting target" || bad "no start-up fetch: $(tail -5 "$work/sgit.log")"
[[ $(stat -c %U "$work/data/sites/www/index.html") == dkweb ]] && pass "files written as the repo's (nologin) user" || bad "owner $(stat -c %U "$work/data/sites/www/index.html")"

# A push reaches every mode.
(cd "$work/dev" && echo v2 >index.html && git commit -qam two && git push -q origin master 2>/dev/null)
until_true 20 grep -qx v2 "$work/data/sites/www/index.html" && pass "push -> trusting target updated" || bad "trusting target: $(cat "$work/data/sites/www/index.html")"
until_true 20 bash -c "grep -qx v2 $work/data/atomic/current/index.html" && pass "push -> atomic release switched" || bad "atomic: $(ls -la "$work/data/atomic" 2>&1)"
[[ -L $work/data/atomic/current ]] && pass "atomic current is a symlink into releases/" || bad "atomic current not a symlink"
until_true 20 test -f "$work/data/puppet/environments/master/index.html" && pass "puppetmaster environment 'master'" || bad "puppetmaster: $(ls "$work/data/puppet" 2>&1)"
new=$(git -C "$work/origin/site.git" rev-parse master)
until_true 20 bash -c "[[ \$(git -C $work/data/repos/plain rev-parse origin/master) == $new ]]" && pass "v1 flat entry fetched (normal mode)" || bad "plain not fetched"
until_true 20 grep -q '"new_rev":"'"$new"'".*"type":"fetch"' "$work/reports" && pass "fetch results reported as events" || bad "no fetch report: $(tail -3 "$work/reports")"

# Branches with '/' become environments; deleting the branch removes it.
(cd "$work/dev" && git push -q origin HEAD:refs/heads/feature/x-1 2>/dev/null)
until_true 20 test -d "$work/data/puppet/environments/feature_x_1" && pass "branch feature/x-1 -> environment feature_x_1" || bad "feature env missing"
(cd "$work/dev" && git push -q origin :refs/heads/feature/x-1 2>/dev/null)
until_true 20 bash -c "! test -d $work/data/puppet/environments/feature_x_1" && pass "deleted branch -> environment removed" || bad "feature env still there"

# Unsafe and unknown: nothing happens.
evil=$(printf 'repo: site\noldrev: %s\nnewrev: %s\nrefname: refs/heads/$(touch %s/pwned)\n' "$(printf '%040d' 0)" "$new" "$work")
"$stompctl" -u "$url" publish -t /topic/future.git.commits -m "$evil" -H "subject:[site] x y" >/dev/null
"$stompctl" -u "$url" publish -t /topic/future.git.commits -m "$(printf 'repo: unknown\nnewrev: %s\nrefname: refs/heads/master\n' "$new")" >/dev/null
until_true 10 grep -q "dropped message" "$work/sgit.log" && [[ ! -e $work/pwned ]] && pass "unsafe ref refused, nothing executed" || bad "injection"

# Stopped while pushes happen -> caught up on start.
kill "$gpid"; wait "$gpid" 2>/dev/null || true; gpid=
(cd "$work/dev" && echo v3 >index.html && git commit -qam three && git push -q origin master 2>/dev/null)
"$sgit" -c "$work/stomp-git.yaml" 2>>"$work/sgit.log" &
gpid=$!
until_true 20 grep -qx v3 "$work/data/sites/www/index.html" && pass "stopped during a push -> caught up on start" || bad "no catch-up: $(cat "$work/data/sites/www/index.html")"

# A bad config is refused with file, line and key.
printf 'rserver: %s\nrepo-list:\n  site: {repo: relative/path}\n' "$url" >"$work/bad.yaml"
rc=0; "$sgit" -c "$work/bad.yaml" 2>"$work/bad.err" || rc=$?
[[ $rc == 2 ]] && grep -q "bad.yaml:3: repo-list.site.repo" "$work/bad.err" && pass "bad config: file, line and key named" || bad "bad config rc=$rc: $(cat "$work/bad.err")"
# The original /etc/init.d/stomp-git: `start-stop-daemon --start --exec stomp-git` without -b.
# With --daemonize it returns once the daemon runs (the pid in the pidfile), and --stop ends it.
if command -v start-stop-daemon >/dev/null; then
  printf '%s\n  ghost: {repo: %s}\n' "$(server daemon)" "$work/data/repos/ghost" >"$work/daemon.yaml"
  rc=0; timeout 30 start-stop-daemon --start --pidfile "$work/sg.pid" --exec "$sgit" -- --daemonize --pidfile "$work/sg.pid" -c "$work/daemon.yaml" || rc=$?
  dpid=$(cat "$work/sg.pid" 2>/dev/null || true)
  [[ -n $dpid ]] && others+=("$dpid")
  if [[ $rc == 0 && -n $dpid ]] && kill -0 "$dpid" 2>/dev/null; then
    pass "start-stop-daemon --start --exec stomp-git --daemonize returns; the daemon in the pidfile runs"
  else
    bad "start-stop-daemon --start rc=$rc pidfile=$dpid"
  fi
  rc=0; timeout 30 start-stop-daemon --stop --retry 5 --pidfile "$work/sg.pid" || rc=$?
  [[ $rc == 0 && -n $dpid ]] && ! kill -0 "$dpid" 2>/dev/null && [[ ! -e $work/sg.pid ]] \
    && pass "start-stop-daemon --stop --pidfile stops it (pidfile removed)" || bad "stop rc=$rc"
  rc=0; timeout 30 "$sgit" --daemonize --pidfile "$work/sg2.pid" -c "$work/bad.yaml" 2>"$work/daemon-bad.err" || rc=$?
  [[ $rc == 2 ]] && grep -q "bad.yaml:3: repo-list.site.repo" "$work/daemon-bad.err" \
    && pass "--daemonize with a bad config: the starting command exits 2 with the reason" || bad "daemonize bad config rc=$rc $(cat "$work/daemon-bad.err")"
  rc=0; "$sgit" --check-config -c "$work/daemon.yaml" >/dev/null || rc=$?
  [[ $rc == 0 ]] && pass "--check-config" || bad "--check-config rc=$rc"
  rc=0; "$sgit" --no-such-option 2>/dev/null || rc=$?
  [[ $rc == 2 ]] && pass "usage error exits 2" || bad "usage error rc=$rc"
else
  bad "start-stop-daemon not installed (dpkg provides it)"
fi
exit $fail
