#!/usr/bin/env bash
# Producers end to end on the embedded broker: the git post-receive hook on a real bare
# repository (commits, tags, deletions, chaining to an existing hook, refusal of unsafe ref
# names, broker down -> spooled -> drained) and jenkins-helper (the original's formats; no
# broker -> spooled, exit 0).
#   tests/integration/producers.sh STOMP_BROKER STOMPCTL STOMP_POST_RECEIVE JENKINS_HELPER
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") hookbin=$(realpath "$3") helper=$(realpath "$4")
NAME=producers
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
bpid= spid=
kill_at_exit spid
port=$(free_port)
start_broker() { embedded_broker "$broker" "$port" "$work/broker.log" --data-dir "$work/broker"; bpid=$BROKER_PID; }
stop_broker() { stop_pid "$bpid"; bpid=; }
url="stomp://127.0.0.1:$port"
export GIT_AUTHOR_NAME="Dev One" GIT_AUTHOR_EMAIL=dev@example.com GIT_COMMITTER_NAME="Dev One" GIT_COMMITTER_EMAIL=dev@example.com
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1

cat >"$work/hook.yaml" <<EOF2
rserver: failover://(stomp://127.0.0.1:$port)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
trigger-topic: future.git.commits
report-topic: future.events.gitolite
wire-format: both
spool-dir: $work/spool
EOF2
export DEPLOYKIT_HOOK_CONFIG=$work/hook.yaml
start_broker

# A bare repository with an existing post-receive hook that must keep running.
git init -q --bare "$work/srv/site.git"
printf '#!/bin/sh\ncat >> "%s/chained.out"\n' "$work" >"$work/srv/site.git/hooks/post-receive"
chmod +x "$work/srv/site.git/hooks/post-receive"
"$hookbin" --install "$work/srv" >"$work/install.out"
grep -q "kept as post-receive.chained" "$work/install.out" && pass "install keeps the existing hook" || bad "install: $(cat "$work/install.out")"

"$stompctl" -u "$url" subscribe -t /topic/future.git.commits --events -n 4 --wait 60 --ready-file "$work/ready" >"$work/events" 2>"$work/sub.err" &
spid=$!
for _ in $(seq 200); do [[ -f $work/ready ]] && break; sleep 0.05; done

git clone -q "$work/srv/site.git" "$work/clone" 2>/dev/null
cd "$work/clone"
echo one >file && git add file && git commit -qm "First commit" -m "repo: production-db"
git push -q origin HEAD:refs/heads/master 2>"$work/push1.err"
git tag -a v1.0 -m "release" && git push -q origin v1.0 2>>"$work/push1.err"
git push -q origin HEAD:refs/heads/feature 2>>"$work/push1.err"
git push -q origin :refs/heads/feature 2>>"$work/push1.err"
wait_lines "$work/events" 4 && pass "one event per ref update (dual-format frames deduped)" || bad "events: $(cat "$work/events")"
/usr/bin/python3 - "$work/events" <<'PY' && pass "commit events carry repo, ref, author, message; the spoofed repo line is inert" || bad "event contents"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
d = [e["data"] for e in ev]
assert d[0]["repo"] == "site" and d[0]["ref"] == "refs/heads/master", d[0]
assert d[0]["author"] == "Dev One <dev@example.com>", d[0]
assert d[0]["message"].startswith("First commit"), d[0]
assert d[1]["ref"] == "refs/tags/v1.0" and set(d[1]["old_rev"]) == {"0"}, d[1]
assert d[3]["ref"] == "refs/heads/feature" and set(d[3]["new_rev"]) == {"0"}, d[3]
assert all(e["type"] == "commit" for e in ev)
PY
[[ -f $work/chained.out ]] && grep -q "refs/heads/master" "$work/chained.out" && pass "the previous hook ran with the same input" || bad "chained hook"

# Unsafe ref names are refused and nothing runs.
git push -q origin 'HEAD:refs/heads/x;touch${IFS}pwned' 2>"$work/push2.err" || true
grep -q "refused" "$work/push2.err" && [[ ! -e $work/srv/site.git/pwned && ! -e pwned ]] \
  && pass "ref with shell metacharacters refused, nothing executed" || bad "injection: $(cat "$work/push2.err")"

# Broker down: the push finishes in about a second, the event is spooled, drained later.
wait "$spid" || true
spid=
stop_broker
echo two >>file && git commit -qam "Second commit"
t0=$(date +%s%N)
git push -q origin HEAD:refs/heads/master 2>"$work/push3.err"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
(( ms < 3000 )) && pass "push with the broker down took ${ms} ms" || bad "push took ${ms} ms"
n=$(find "$work/spool" -name '*.stomp' | wc -l)
(( n >= 2 )) && pass "spooled $n frames" || bad "spool has $n files"
start_broker
"$stompctl" -u "$url" subscribe -t /topic/future.git.commits --events -n 1 --wait 30 --ready-file "$work/ready2" >"$work/events2" 2>/dev/null &
spid=$!
for _ in $(seq 200); do [[ -f $work/ready2 ]] && break; sleep 0.05; done
"$stompctl" -u "$url" drain --spool "$work/spool" >"$work/drain.json"
wait_lines "$work/events2" 1 && grep -q '"message":"Second commit"' "$work/events2" \
  && pass "spooled event delivered by stompctl drain ($(cat "$work/drain.json"))" || bad "drain: $(cat "$work/drain.json") $(cat "$work/events2")"
wait "$spid" || true
spid=

# A 10 MB commit message: the event still arrives, its message cut and marked (consumers refuse
# messages over 64 KiB, and a 10 MB frame was published nowhere).
"$stompctl" -u "$url" subscribe -t /topic/future.git.commits --events -n 1 --wait 30 --ready-file "$work/ready_huge" >"$work/events3" 2>/dev/null &
spid=$!
for _ in $(seq 200); do [[ -f $work/ready_huge ]] && break; sleep 0.05; done
{ echo "Huge commit"; echo; head -c 10000000 /dev/zero | tr '\0' 'x' | fold -w 100; } >"$work/huge.msg"
echo three >>file && git commit -q -a -F "$work/huge.msg"
git push -q origin HEAD:refs/heads/master 2>"$work/push4.err"
huge=$(git rev-parse HEAD)
wait_lines "$work/events3" 1 && /usr/bin/python3 - "$work/events3" "$huge" <<'PY' && pass "10 MB commit message: event delivered, message truncated and marked" || bad "huge message: $(head -c 300 "$work/events3") $(cat "$work/push4.err")"
import json, sys
e = json.loads(open(sys.argv[1]).readline())["data"]
assert e["new_rev"] == sys.argv[2] and e["ref"] == "refs/heads/master" and e["repo"] == "site", e
assert e["message"].startswith("Huge commit") and len(e["message"]) <= 64 * 1024, len(e["message"])
assert e["message"].endswith("[commit message truncated by stomp-post-receive]"), e["message"][-80:]
PY
wait "$spid" || true
spid=

# Objects the push left packed (receive.unpackLimit 1: git keeps the pack) are not loose: the hook
# asks git for them (a child, no libgit2), and an annotated tag still names its commit's author.
git -C "$work/srv/site.git" config receive.unpackLimit 1
"$stompctl" -u "$url" subscribe -t /topic/future.git.commits --events -n 2 --wait 30 --ready-file "$work/ready_pack" >"$work/events_pack" 2>/dev/null &
spid=$!
for _ in $(seq 200); do [[ -f $work/ready_pack ]] && break; sleep 0.05; done
echo four >>file && git commit -qam "Packed commit" && git tag -a v2.0 -m "packed tag"
git push -q origin HEAD:refs/heads/master v2.0 2>"$work/push5.err"
packed=$(git rev-parse HEAD)
wait_lines "$work/events_pack" 2 && [[ -z $(find "$work/srv/site.git/objects" -path '*/objects/[0-9a-f][0-9a-f]/*' -newer "$work/ready_pack") ]] \
  && /usr/bin/python3 - "$work/events_pack" "$packed" <<'PY' && pass "packed objects: commit and annotated tag described through git" || bad "packed: $(cat "$work/events_pack") $(cat "$work/push5.err")"
import json, sys
d = {e["data"]["ref"]: e["data"] for e in map(json.loads, open(sys.argv[1]))}
for ref in ("refs/heads/master", "refs/tags/v2.0"):
    assert d[ref]["author"] == "Dev One <dev@example.com>" and d[ref]["message"].startswith("Packed commit"), d[ref]
assert d["refs/heads/master"]["new_rev"] == sys.argv[2], d
PY
wait "$spid" || true
spid=
git -C "$work/srv/site.git" config --unset receive.unpackLimit

# A full disk with the broker away: the hook says plainly the event was NOT kept, and exits 0 (the
# push is done). The full disk is RLIMIT_FSIZE 0 with SIGXFSZ ignored: every write fails (EFBIG).
dead=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'rserver: stomp://127.0.0.1:%s\nspool-dir: %s/fullspool\n' "$dead" "$work" >"$work/full.yaml"
mkdir -p "$work/fullspool"
rc=0
# (Its stderr goes through a pipe to a writer outside the limit; the chained hook, which would hit
# the same limit, is set aside.)
mv "$work/srv/site.git/hooks/post-receive.chained" "$work/chained.aside"
(cd "$work/srv/site.git" && echo "$(git rev-parse HEAD~1) $huge refs/heads/master" |
  GIT_DIR=. DEPLOYKIT_HOOK_CONFIG=$work/full.yaml bash -c 'trap "" XFSZ; ulimit -f 0; exec "$0"; exit 99' "$hookbin" 2>&1 >/dev/null |
  cat >"$work/full.err"; exit "${PIPESTATUS[1]}") || rc=$?
mv "$work/chained.aside" "$work/srv/site.git/hooks/post-receive.chained"
[[ $rc == 0 ]] && grep -q "was NOT kept" "$work/full.err" && pass "full disk: 'NOT kept' said plainly, exit 0" ||
  bad "full disk: rc=$rc $(cat "$work/full.err")"

# jenkins-helper: the original's formats, and exit 0 with the broker down.
cd "$work"
cat >"$work/jh.yaml" <<EOF2
rserver: stomp://127.0.0.1:$port
spool-dir: $work/jh-spool
EOF2
"$stompctl" -u "$url" subscribe -t /topic/future.jenkins.success --headers -n 1 --wait 30 --ready-file "$work/ready3" >"$work/jenkins" &
spid=$!
for _ in $(seq 200); do [[ -f $work/ready3 ]] && break; sleep 0.05; done
JOB_NAME=Site-Build BUILD_NUMBER=42 BUILD_URL=http://jenkins/job/Site-Build/42/ GIT_BRANCH=origin/master GIT_COMMIT=abc \
  "$helper" -p --config "$work/jh.yaml"
wait "$spid" || true
spid=
grep -q "^subject:Complete job 42 - \[Site-Build\] origin/master abc" "$work/jenkins" && grep -q "^Status: Success" "$work/jenkins" \
  && pass "jenkins-helper -p: the original subject and body on future.jenkins.success" || bad "jenkins: $(cat "$work/jenkins")"
stop_broker
rc=0; JOB_NAME=Site-Build BUILD_NUMBER=43 timeout 10 "$helper" -c --config "$work/jh.yaml" 2>"$work/jh.err" || rc=$?
[[ $rc == 0 ]] && grep -q spooled "$work/jh.err" && pass "jenkins-helper with no broker spools and exits 0" || bad "jenkins-helper rc=$rc $(cat "$work/jh.err")"
rc=0; env -u JOB_NAME "$helper" -b --config "$work/jh.yaml" --fail-on-error 2>"$work/jh2.err" || rc=$?
[[ $rc == 1 ]] && grep -q JOB_NAME "$work/jh2.err" && pass "a missing JOB_NAME is named; --fail-on-error exits 1" || bad "missing var rc=$rc"
printf 'rserver: stomp://127.0.0.1:%s\nsucess-topic: x\n' "$port" >"$work/jh-typo.yaml"
rc=0; "$helper" --check-config --config "$work/jh-typo.yaml" 2>"$work/jh3.err" || rc=$?
[[ $rc == 2 ]] && grep -qF 'jh-typo.yaml:2: sucess-topic: unknown setting; did you mean `success-topic`?' "$work/jh3.err" \
  && pass "jenkins-helper --check-config: a misspelt key exits 2 naming the nearest" || bad "jh typo rc=$rc $(cat "$work/jh3.err")"
rc=0; JOB_NAME=J BUILD_NUMBER=1 "$helper" -p --config "$work/jh-typo.yaml" 2>"$work/jh4.err" || rc=$?
[[ $rc == 0 ]] && grep -q "unknown setting" "$work/jh4.err" \
  && pass "... and a build step still exits 0 (reporting never breaks a build), saying why nothing was sent" || bad "jh typo -p rc=$rc"
exit $fail
