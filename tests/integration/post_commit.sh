#!/usr/bin/env bash
# The git post-commit variant of stomp-post-receive on a real non-bare repository and the embedded
# broker: --post-commit --install (chaining an existing post-commit hook, never touching the work
# tree's own hooks/ directory), commits on master and on a new branch, a detached HEAD (nothing
# published), the --post-commit flag run by hand, and the broker down (commit still quick, spooled
# in .git, delivered by the next commit).
#   tests/integration/post_commit.sh STOMPCTL STOMP_POST_RECEIVE   (STOMP_BROKER: stomp-broker)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
stompctl=$(realpath "$1") hookbin=$(realpath "$2")
[[ -x ${STOMP_BROKER:-} ]] || { echo "post_commit.sh: set STOMP_BROKER to the stomp-broker binary" >&2; exit 2; }
STOMP_BROKER=$(realpath "$STOMP_BROKER")
export STOMP_BROKER
brokers=$here/../brokers/broker.sh
NAME=post_commit
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
subs=()
stop_brokers_at_exit "$work"
port=$(free_port)
url="stomp://127.0.0.1:$port"
subscribe() { # NAME COUNT: an --events subscriber on the trigger topic writing $work/NAME.out
  start_subscriber -a subs "$1" "$stompctl" -u "$url" subscribe -t /topic/future.git.commits --events -n "$2" --wait 60
}
export GIT_AUTHOR_NAME="Dev One" GIT_AUTHOR_EMAIL=dev@example.com GIT_COMMITTER_NAME="Dev One" GIT_COMMITTER_EMAIL=dev@example.com
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1

cat >"$work/hook.yaml" <<EOF
rserver: failover://(stomp://127.0.0.1:$port)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
trigger-topic: future.git.commits
report-topic: future.events.gitolite
wire-format: both
EOF
export DEPLOYKIT_HOOK_CONFIG=$work/hook.yaml
bash "$brokers" start embedded "$work/broker" "$port" >/dev/null

# A work tree with a post-commit hook of its own, and a hooks/ directory of its own (content).
wt=$work/site
git init -q -b master "$wt"
mkdir "$wt/hooks"
printf '#!/bin/sh\necho "chained $(git rev-parse HEAD)" >>"%s/chained.out"\n' "$work" >"$wt/.git/hooks/post-commit"
chmod +x "$wt/.git/hooks/post-commit"
"$hookbin" --post-commit --install "$wt" >"$work/install.out"
[[ -L $wt/.git/hooks/post-commit && $(readlink "$wt/.git/hooks/post-commit") == "$hookbin" ]] \
  && grep -q "kept as post-commit.chained" "$work/install.out" && [[ -z $(ls -A "$wt/hooks") ]] \
  && pass "install: .git/hooks/post-commit -> the binary, the previous hook chained" || bad "install: $(cat "$work/install.out")"
rc=0; "$hookbin" --post-commit --install "$work/broker" >"$work/install2.out" 2>&1 || rc=$?
[[ $rc != 0 ]] && pass "install refuses a directory without work trees" || bad "install non-repo rc=$rc"

subscribe events 3
cd "$wt"
echo one >file && git add file
t0=$(date +%s%N)
git commit -qm "First commit" 2>"$work/commit1.err"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
c1=$(git rev-parse HEAD)
echo two >>file && git commit -qam "Second commit" 2>>"$work/commit1.err"
c2=$(git rev-parse HEAD)
git checkout -qb feature/x
echo three >>file && git commit -qam "On a branch" 2>>"$work/commit1.err"
c3=$(git rev-parse HEAD)
echo "commit with the hook, broker up: ${ms} ms"
wait_lines "$work/events.out" 3 && /usr/bin/python3 - "$work/events.out" "$c1" "$c2" "$c3" <<'PY' \
  && pass "one event per commit: repo, branch ref, parent -> new revision, author, message" || bad "events: $(cat "$work/events.out") $(cat "$work/commit1.err")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
c1, c2, c3 = sys.argv[2:]
d = [e["data"] for e in ev]
assert all(x["source"] == "git" and x["repo"] == "site" for x in d), d
assert d[0]["ref"] == "refs/heads/master" and d[0]["old_rev"] == "0" * 40 and d[0]["new_rev"] == c1, d[0]
assert d[0]["author"] == "Dev One <dev@example.com>" and d[0]["message"] == "First commit", d[0]
assert d[1]["ref"] == "refs/heads/master" and d[1]["old_rev"] == c1 and d[1]["new_rev"] == c2, d[1]
assert d[2]["ref"] == "refs/heads/feature/x" and d[2]["old_rev"] == c2 and d[2]["new_rev"] == c3, d[2]
PY
[[ $(wc -l <"$work/chained.out") == 3 ]] && grep -q "chained $c3" "$work/chained.out" \
  && pass "the previous post-commit hook ran after ours" || bad "chained: $(cat "$work/chained.out" 2>/dev/null)"
[[ ! -e $wt/deploykit-spool && -z $(git status --porcelain --untracked-files=all) ]] \
  && pass "nothing written into the work tree" || bad "work tree: $(git status --porcelain)"
wait "${subs[@]}" || true
subs=()

# A detached HEAD is on no branch: nothing is published, the commit is not held up.
subscribe after-detached 1
git checkout -q --detach
echo four >>file && git commit -qam "Detached" 2>"$work/detached.err"
grep -q "detached HEAD" "$work/detached.err" && pass "detached HEAD: nothing published, said so" || bad "detached: $(cat "$work/detached.err")"
git checkout -q master
# --post-commit by hand (hooks skipped for the commit itself): the same event from HEAD.
echo five >>file && git -c core.hooksPath=/dev/null commit -qam "Manual"
c5=$(git rev-parse HEAD)
"$hookbin" --post-commit 2>"$work/manual.err"
wait_lines "$work/after-detached.out" 1 && grep -q "\"new_rev\":\"$c5\"" "$work/after-detached.out" \
  && grep -q '"ref":"refs/heads/master"' "$work/after-detached.out" \
  && pass "--post-commit run by hand publishes HEAD (and the detached commit was never published)" \
  || bad "manual: $(cat "$work/after-detached.out" "$work/manual.err")"
wait "${subs[@]}" || true
subs=()

# Broker down: the commit is quick, the event waits in .git/deploykit-spool for the next commit.
bash "$brokers" stop "$work/broker" >/dev/null
echo six >>file
t0=$(date +%s%N)
git commit -qam "Six, broker down" 2>"$work/commit6.err"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
c6=$(git rev-parse HEAD)
(( ms < 5000 )) && grep -q "spooled" "$work/commit6.err" && pass "commit with the broker down took ${ms} ms, spooled" \
  || bad "commit took ${ms} ms: $(cat "$work/commit6.err")"
n=$(find "$wt/.git/deploykit-spool" -name '*.stomp' | wc -l)
(( n >= 2 )) && pass "spooled $n frames in .git/deploykit-spool" || bad "spool has $n files"
bash "$brokers" start embedded "$work/broker" "$port" >/dev/null
subscribe next 2
echo seven >>file && git commit -qam "Seven"
c7=$(git rev-parse HEAD)
wait_lines "$work/next.out" 2 && /usr/bin/python3 - "$work/next.out" "$c6" "$c7" <<'PY' \
  && pass "the next commit delivered the spooled event first" || bad "next: $(cat "$work/next.out")"
import json, sys
revs = [json.loads(l)["data"]["new_rev"] for l in open(sys.argv[1])]
assert revs == sys.argv[2:], revs
PY
exit $fail
