#!/usr/bin/env bash
# The main job: builds deploykit and runs the pipeline on one machine, on the embedded broker.
#
#   a git push to a central bare repository
#   -> stomp-post-receive (the hook) publishes a commit event, receipted by
#   -> stomp-broker (embedded, journaled)
#   -> stomp-git, as a "web server", fetches its clone as the repo's own user and publishes the
#      pushed branch to its document root; it reports the fetch on the bus
#   -> stompctl, as an operator would, shows the events (and the original's legacy one-liners)
#   -> jenkins-helper reports a build the way a Jenkins job step would.
# Everything runs on 127.0.0.1 in a temporary directory and is stopped by pid at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root=$PWD

bash scripts/deps.sh
echo "== building"
bash scripts/build.sh build
b=$repo_root/build
stompctl=$b/daemons/stompctl/stompctl

work=$(mktemp -d /tmp/deploykit-run.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_for() { # SECONDS COMMAND...
  local end=$((SECONDS + $1)); shift
  until "$@" 2>/dev/null; do ((SECONDS < end)) || return 1; sleep 0.1; done
}

read -r port admin < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
url="stomp://127.0.0.1:$port"
echo "== stomp-broker on 127.0.0.1:$port (metrics on :$admin)"
"$b/daemons/stomp-broker/stomp-broker" --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" \
  --data-dir "$work/broker" 2>"$work/broker.log" &
pids+=($!)
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"

export GIT_CONFIG_GLOBAL=$work/gitconfig GIT_CONFIG_NOSYSTEM=1
git config --global user.name "Dev One"
git config --global user.email dev@example.com
git config --global init.defaultBranch master
git config --global safe.directory '*'

echo "== a central repository with the deploykit hook, and a web server's clone"
git init -q --bare "$work/git/site.git"
cat >"$work/hook.yaml" <<EOF2
rserver: failover://($url)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
trigger-topic: future.git.commits
report-topic: future.events.gitolite
wire-format: both
spool-dir: $work/spool
EOF2
export DEPLOYKIT_HOOK_CONFIG=$work/hook.yaml
"$b/hooks/post-receive/stomp-post-receive" --install "$work/git/site.git"
git clone -q "$work/git/site.git" "$work/dev" 2>/dev/null
(cd "$work/dev" && echo "<h1>version 1</h1>" >index.html && git add . && git commit -qm "First page" && git push -q origin master)
git clone -q "$work/git/site.git" "$work/server/repos/site"
web_user=$(id -un)
if [[ $(id -u) == 0 ]]; then
  id deploykit-web >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin deploykit-web
  web_user=deploykit-web
  chmod -R a+rX "$work/git"
  mkdir -p "$work/server/www"
  chown -R deploykit-web "$work/server"
fi
cat >"$work/stomp-git.yaml" <<EOF2
rserver: failover://($url)
listen-topic: future.git.commits
report-topic: future.events.stomp-git
wire-format: both
repo-list:
  site: {user: $web_user, repo: $work/server/repos/site, target: $work/server/www/site, mode: trusting}
EOF2
echo "== stomp-git (fetches as '$web_user')"
"$b/daemons/stomp-git/stomp-git" -c "$work/stomp-git.yaml" 2>"$work/stomp-git.log" &
pids+=($!)
wait_for 20 test -f "$work/server/www/site/index.html"
echo "   start-up catch-up published: $(cat "$work/server/www/site/index.html")"

"$stompctl" -u "$url" subscribe -t /topic/future.git.commits --events -n 1 --wait 30 --ready-file "$work/r1" >"$work/commits" 2>/dev/null &
pids+=($!)
"$stompctl" -u "$url" subscribe -t /topic/future.events.stomp-git --events -n 1 --wait 30 --ready-file "$work/r2" >"$work/reports" 2>/dev/null &
pids+=($!)
wait_for 10 test -f "$work/r1" -a -f "$work/r2"

echo "== git push"
(cd "$work/dev" && echo "<h1>version 2</h1>" >index.html && git commit -qam "Second page" && git push -q origin master)
wait_for 20 grep -q "version 2" "$work/server/www/site/index.html"
echo "   the web server's document root now serves: $(cat "$work/server/www/site/index.html")"
wait_for 10 test -s "$work/commits" -a -s "$work/reports"
echo "== the commit event on future.git.commits (native form; Ruby consumers get the legacy body too)"
/usr/bin/python3 -m json.tool --compact <"$work/commits" | head -c 600; echo
echo "== stomp-git's report on future.events.stomp-git"
/usr/bin/python3 -m json.tool --compact <"$work/reports" | head -c 600; echo

echo "== jenkins-helper -p, as a Jenkins build step would run it"
printf 'rserver: %s\nspool-dir: %s/jh-spool\n' "$url" "$work" >"$work/jh.yaml"
"$stompctl" -u "$url" subscribe -t /topic/future.jenkins.success --headers -n 1 --wait 30 --ready-file "$work/r3" >"$work/jenkins" 2>/dev/null &
pids+=($!)
wait_for 10 test -f "$work/r3"
JOB_NAME=Site-Build BUILD_NUMBER=42 BUILD_URL=http://jenkins.example/job/Site-Build/42/ \
  GIT_BRANCH=origin/master GIT_COMMIT=$(git -C "$work/dev" rev-parse HEAD) \
  "$b/daemons/jenkins-helper/jenkins-helper" -p --config "$work/jh.yaml"
wait_for 10 test -s "$work/jenkins"
grep -E '^(subject|Repo|URL|Status):' "$work/jenkins" | sed 's/^/   /'

echo "== broker metrics"
/usr/bin/python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
  "http://127.0.0.1:$admin/metrics" | grep -E '^stomp_broker_(messages_in_total|messages_out_total|connections) '
echo "== done: push -> hook -> broker -> stomp-git -> document root, with events on the bus"
