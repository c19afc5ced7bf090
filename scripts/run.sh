#!/usr/bin/env bash
# The main job: builds deploykit and runs the pipeline on one machine, on the embedded broker.
#
#   a git push to a central bare repository
#   -> stomp-post-receive (the hook) publishes a commit event, receipted by
#   -> stomp-broker (embedded, journaled)
#   -> stomp-git, as a "web server", fetches its clone as the repo's own user and publishes the
#      pushed branch to its document root; it reports the fetch on the bus
#   -> stomp-jenkins triggers the site's Jenkins job (buildWithParameters, API token, crumbs);
#      Jenkins here is the test suite's strict remote-API stand-in, whose job steps run
#      jenkins-helper -b / -p as a real job would, reporting the build on the bus
#   -> github-webhook takes a signed GitHub push for the same repository and the same chain runs
#   -> stompctl, as an operator would, shows the events (and the original's legacy one-liners).
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

echo "== Jenkins (the remote-API stand-in) with job site-build, and stomp-jenkins"
read -r jport hport < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
umask 077
api_token=11$(od -An -tx1 -N15 /dev/urandom | tr -d ' \n')
echo "deploykit:$api_token" >"$work/jenkins.credentials"
echo "webhook secret for the demo" >"$work/github.secret"
umask 022
printf 'rserver: %s\nwire-format: both\nspool-dir: %s/jh-spool\n' "$url" "$work" >"$work/jh.yaml"
cat >"$work/jobs.json" <<EOF2
{"jobs": [{"name": "site-build", "parameters": [{"name": "COMMIT"}, {"name": "BRANCH"}, {"name": "REPO"}, {"name": "EVENT_ID"}],
  "steps": [["$b/daemons/jenkins-helper/jenkins-helper", "-b", "--config", "$work/jh.yaml"], ["/bin/true"],
            ["$b/daemons/jenkins-helper/jenkins-helper", "-p", "--config", "$work/jh.yaml"]]}]}
EOF2
/usr/bin/python3 tests/jenkins/jenkins_standin.py --jobs "$work/jobs.json" --port "$jport" --port-file "$work/jport" \
  --user "deploykit:$api_token" --anonymous-forbidden --log "$work/jenkins.log" 2>"$work/jenkins.err" &
pids+=($!)
wait_for 10 test -f "$work/jport"
cat >"$work/stomp-jenkins.yaml" <<EOF2
rserver: failover://($url)
listen-topic: future.git.commits
report-topic: future.events.jenkins
build-topic: future.jenkins.builds
wire-format: both
spool-dir: $work/sj-spool
jenkins-url: http://127.0.0.1:$jport
credentials-file: $work/jenkins.credentials
jenkins-projects:
  site: {project: site-build, mode: buildWithParameters, ignore_refs: 'refs/tags/'}
EOF2
"$b/daemons/stomp-jenkins/stomp-jenkins" -c "$work/stomp-jenkins.yaml" 2>"$work/stomp-jenkins.log" &
pids+=($!)
echo "== github-webhook on 127.0.0.1:$hport (hook /github, HMAC secret from a 0600 file)"
cat >"$work/github-webhook.yaml" <<EOF2
rserver: failover://($url)
trigger-topic: future.git.commits
report-topic: future.events.stomp-git
wire-format: both
spool-dir: $work/gw-spool
listen: 127.0.0.1:$hport
hooks:
  /github:
    provider: github
    secret-file: $work/github.secret
EOF2
"$b/daemons/github-webhook/github-webhook" -c "$work/github-webhook.yaml" >"$work/webhook-access.log" 2>"$work/webhook.log" &
pids+=($!)
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$hport"
wait_for 10 grep -q connected "$work/stomp-jenkins.log"
"$stompctl" -u "$url" subscribe -t /topic/future.jenkins.builds --events --wait 60 --ready-file "$work/r4" >"$work/builds" 2>/dev/null &
pids+=($!)
"$stompctl" -u "$url" subscribe -t /topic/future.events.jenkins --json --wait 60 --ready-file "$work/r5" >"$work/jenkins-lines" 2>/dev/null &
pids+=($!)
wait_for 10 test -f "$work/r4" -a -f "$work/r5"

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

echo "== Jenkins built it: stomp-jenkins' queued/started and jenkins-helper's started/completed events"
wait_for 30 bash -c "[[ \$(grep -c '\"phase\":\"completed\"' '$work/builds') -ge 1 ]]"
/usr/bin/python3 -c '
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    d = e["data"]
    print("   %-9s %s #%s %s %s" % (d["phase"], d.get("job"), d.get("number"), d.get("status", ""), d.get("url", "")))' "$work/builds"
echo "   the original one-liners on future.events.jenkins:"
/usr/bin/python3 -c '
import json, sys
for l in open(sys.argv[1]):
    print("   " + json.loads(l).get("body", "").strip())' "$work/jenkins-lines" | grep -v '^   {' | head -5

echo "== a signed GitHub push for the same repository (a GitHub mirror's webhook)"
head=$(git -C "$work/dev" rev-parse HEAD)
/usr/bin/python3 - "$head" "$work/push.json" <<'PY'
import json, sys
sha = sys.argv[1]
json.dump({"ref": "refs/heads/master", "before": "0" * 40, "after": sha, "created": True, "deleted": False,
           "compare": "https://github.com/example/site/compare/" + sha[:12],
           "head_commit": {"id": sha, "message": "Second page", "timestamp": "2026-11-22T10:00:00+00:00",
                           "author": {"name": "Dev One", "email": "dev@example.com"}},
           "repository": {"name": "site", "full_name": "example/site"},
           "pusher": {"name": "devone", "email": "dev@example.com"}}, open(sys.argv[2], "w"))
PY
sig=$(/usr/bin/openssl dgst -sha256 -hmac "webhook secret for the demo" -r "$work/push.json" | cut -d' ' -f1)
answer=$(curl -sS -w ' (HTTP %{http_code})' -X POST --data-binary "@$work/push.json" -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: demo-$RANDOM$RANDOM" -H "X-Hub-Signature-256: sha256=$sig" \
  "http://127.0.0.1:$hport/github")
echo "   github-webhook answered: ${answer//$'\n'/}"
wait_for 30 bash -c "[[ \$(grep -c '\"phase\":\"completed\"' '$work/builds') -ge 2 ]]"
echo "   -> Jenkins build #$(/usr/bin/python3 -c '
import json, sys
print([json.loads(l)["data"]["number"] for l in open(sys.argv[1]) if "\"completed\"" in l][-1])' "$work/builds") completed for the webhook's push"

echo "== broker metrics"
/usr/bin/python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
  "http://127.0.0.1:$admin/metrics" | grep -E '^stomp_broker_(messages_in_total|messages_out_total|connections) '
echo "== done: push -> hook -> broker -> stomp-git -> document root; -> stomp-jenkins -> Jenkins -> jenkins-helper; webhook -> the same; events on the bus"
