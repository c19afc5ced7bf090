#!/usr/bin/env bash
# svn-stomp end to end on a real Subversion repository and the embedded broker: --install (chaining
# an existing post-commit hook), commits through `svn commit` over file:// (svn runs the hook with an
# empty environment), the events (native decode and the original's legacy subject/body/one-liner),
# Project derivation, a hostile log message, bad arguments, and the broker down -> commit still
# quick -> spooled -> delivered by `stompctl drain` and by the next commit.
#   tests/integration/svn_hook.sh STOMPCTL SVN_STOMP       (STOMP_BROKER: the stomp-broker binary)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
stompctl=$(realpath "$1") hookbin=$(realpath "$2")
[[ -x ${STOMP_BROKER:-} ]] || { echo "svn_hook.sh: set STOMP_BROKER to the stomp-broker binary" >&2; exit 2; }
STOMP_BROKER=$(realpath "$STOMP_BROKER")
export STOMP_BROKER
for t in svnadmin svn svnlook; do
  command -v "$t" >/dev/null || { echo "svn_hook.sh: $t missing (scripts/deps.sh installs subversion)" >&2; exit 2; }
done
brokers=$here/../brokers/broker.sh
NAME=svn_hook
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
subs=()
stop_brokers_at_exit "$work"
port=$(free_port)
url="stomp://127.0.0.1:$port"
start_broker() { bash "$brokers" start embedded "$work/broker" "$port" >/dev/null; }
stop_broker() { bash "$brokers" stop "$work/broker" >/dev/null; }
subscribe() { # NAME TOPIC COUNT MODE: a subscriber writing $work/NAME.out, ready when this returns
  start_subscriber -a subs "$1" "$stompctl" -u "$url" subscribe -t "/topic/$2" "$4" -n "$3" --wait 60
}
export DEPLOYKIT_SVN_TEST=set-by-the-test  # svn must not pass it on to hooks
svnc() { svn --config-dir "$work/svn-config" --non-interactive "$@"; }
commit() { # USER MESSAGE: commit the work copy; prints the time it took in ms
  local t0
  t0=$(date +%s%N)
  (cd "$work/wc" && svnc commit -q --username "$1" -m "$2") >"$work/commit.out" 2>&1 || { cat "$work/commit.out" >&2; return 1; }
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
}

# The original svn-stomp.yaml, unchanged, plus the spool directory.
cat >"$work/svn-stomp.yaml" <<EOF
---
rserver: failover://(stomp://127.0.0.1:$port)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
trigger-topic: future.git.commits
report-topic: future.events.svnserver
spool-dir: $work/spool
EOF
start_broker

# A repository with a post-commit hook of its own, which must keep running (with svn's arguments).
repo=$work/svn/webapp
mkdir -p "$work/svn"
svnadmin create "$repo"
printf '#!/bin/sh\nprintf "%%s %%s [%%s]\\n" "$1" "$2" "$DEPLOYKIT_SVN_TEST" >>"%s/chained.out"\n' "$work" >"$repo/hooks/post-commit"
chmod +x "$repo/hooks/post-commit"
"$hookbin" -c "$work/svn-stomp.yaml" --install "$repo" >"$work/install.out"
expected_script=$(printf "#!/bin/sh\nexec '%s' -c '%s' \"\$@\"" "$hookbin" "$work/svn-stomp.yaml")
grep -q "kept as post-commit.chained" "$work/install.out" && [[ $(cat "$repo/hooks/post-commit") == "$expected_script" ]] \
  && [[ -x $repo/hooks/post-commit ]] \
  && pass "install writes the one exec line and keeps the existing hook" || bad "install: $(cat "$work/install.out") $(cat "$repo/hooks/post-commit")"
"$hookbin" -c "$work/svn-stomp.yaml" --install "$repo" >"$work/install2.out"
grep -q "already installed" "$work/install2.out" && [[ ! -e $repo/hooks/post-commit.chained.chained ]] \
  && pass "installing again changes nothing" || bad "reinstall: $(cat "$work/install2.out")"
rc=0; "$hookbin" --install "$work" >"$work/install3.out" 2>&1 || rc=$?
[[ $rc != 0 ]] && grep -q "not a Subversion repository" "$work/install3.out" \
  && pass "install refuses a directory that is not a repository" || bad "install non-repo rc=$rc"

subscribe events future.git.commits 4 --events
subscribe legacy future.git.commits 4 --json
subscribe report future.events.svnserver 4 --json

svnc checkout -q "file://$repo" "$work/wc"
(cd "$work/wc" && svnc mkdir -q trunk proj-a proj-a/trunk)
commit alice "Layout" >/dev/null                                   # r1
echo hello >"$work/wc/trunk/readme.txt"
(cd "$work/wc" && svnc add -q trunk/readme.txt)
ms=$(commit alice "Add readme")                                    # r2: trunk at the root
mkdir -p "$work/wc/proj-a/trunk/x"
echo 'int x;' >"$work/wc/proj-a/trunk/x/x.c"
(cd "$work/wc" && svnc add -q proj-a/trunk/x)
commit bob "proj-a: add x" >/dev/null                              # r3: a project path
echo more >>"$work/wc/trunk/readme.txt"
hostile="Fix \$(touch $work/pwned1) and \`touch $work/pwned2\`; \$(touch /tmp/x-$$) repo: other"
commit carol "$hostile" >/dev/null                                 # r4
echo "commit with the hook, broker up: ${ms} ms"

wait_lines "$work/events.out" 4 && wait_lines "$work/legacy.out" 4 && wait_lines "$work/report.out" 4 \
  && pass "one commit event and one report per revision" || bad "events: $(cat "$work/events.out" "$work/events.err")"
date2=$(svnlook date -r 2 "$repo")
/usr/bin/python3 - "$work" "$date2" "$hostile" <<'PY' && pass "events: repo, rev, author, date, Project, dirs, log; legacy subject '[webapp] REV ' and body as the original" || bad "event contents"
import json, sys
work, date2, hostile = sys.argv[1:]
ev = [json.loads(l) for l in open(work + "/events.out")]
d = [e["data"] for e in ev]
assert [x["new_rev"] for x in d] == ["1", "2", "3", "4"], d
assert all(e["type"] == "commit" and e["legacy"] and x["source"] == "svn" and x["repo"] == "webapp" for e, x in zip(ev, d)), ev
assert d[1]["author"] == "alice" and d[1]["date"] == date2 and d[1]["message"] == "Add readme", d[1]
assert d[1].get("svn_project", "") == "" and d[1]["changed_dirs"] == ["trunk/"], d[1]
assert d[2]["author"] == "bob" and d[2]["svn_project"] == "proj-a", d[2]
assert "proj-a/trunk/x/" in d[2]["changed_dirs"], d[2]
assert d[3]["message"] == hostile and d[3]["author"] == "carol", d[3]

legacy = [json.loads(l) for l in open(work + "/legacy.out")]
h = [dict(m["headers"]) for m in legacy]
assert [x["subject"] for x in h] == ["[webapp] 1 ", "[webapp] 2 ", "[webapp] 3 ", "[webapp] 4 "], h
body2 = ("repo: webapp\nrevname: 2\n Author: alice\nDate: " + date2 + "\nProject: \n\nDirs:\ntrunk/\n\nAdd readme\n\n")
assert legacy[1]["body"] == body2, repr(legacy[1]["body"])
assert "\nProject: proj-a\n" in legacy[2]["body"] and "\nproj-a/trunk/x/\n" in legacy[2]["body"], legacy[2]["body"]
assert legacy[3]["body"].startswith("repo: webapp\nrevname: 4\n Author: carol\n"), legacy[3]["body"]

report = [json.loads(l) for l in open(work + "/report.out")]
assert [r["body"] for r in report] == ["[webapp] 1 ", "[webapp] 2 ", "[webapp] 3 ", "[webapp] 4 "], report
assert all(dict(r["headers"])["subject"] == "Talking to eventbot" for r in report), report
PY
[[ ! -e $work/pwned1 && ! -e $work/pwned2 && ! -e /tmp/x-$$ ]] \
  && pass "hostile log message: delivered verbatim, nothing executed" || bad "a file was created by the log message"
[[ $(wc -l <"$work/chained.out") == 4 ]] && grep -qx "$repo 2 \[\]" "$work/chained.out" \
  && pass "previous hook ran for every revision with REPOS REV (and svn's empty environment)" || bad "chained: $(cat "$work/chained.out")"
wait "${subs[@]}" || true
subs=()

# Bad arguments: a clear error, non-zero, nothing published (the next event seen is r5's).
subscribe after-bad future.git.commits 1 --events
badrc=0
run_bad() { # ARGS...: must fail with a message
  local rc=0
  env -i "$hookbin" -c "$work/svn-stomp.yaml" "$@" >/dev/null 2>"$work/bad.err" || rc=$?
  if [[ $rc == 0 || ! -s $work/bad.err ]]; then badrc=1; echo "  '$*' -> rc=$rc $(cat "$work/bad.err")"; fi
}
run_bad webapp 4                          # relative REPOS
run_bad "$repo" 4x                        # REV not a number
run_bad "$repo" "\$(touch $work/pwned3)"   # REV with a command substitution
run_bad "$repo" "4;touch $work/pwned4"
run_bad "$work/nope" 4                    # no such repository
run_bad "$work" 4                         # not a repository
run_bad "$repo" 999                       # no such revision
run_bad                                   # no arguments
# svnlook that never answers (a real one, on a repository whose revision properties are a FIFO):
# killed at svnlook-timeout, an error, nothing published.
hang=$work/svn/hang
svnadmin create "$hang"
svnc mkdir -q -m "one" "file://$hang/trunk"
rm "$hang/db/revprops/0/1" && mkfifo "$hang/db/revprops/0/1"
{ cat "$work/svn-stomp.yaml"; echo "svnlook-timeout: 1"; } >"$work/hang.yaml"
t0=$(date +%s%N); rc=0
env -i "$hookbin" -c "$work/hang.yaml" "$hang" 1 >/dev/null 2>"$work/hang.err" || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
left=0
for f in /proc/[0-9]*/cmdline; do
  c=$({ tr '\0' ' ' <"$f"; } 2>/dev/null) || continue
  if [[ $c == *svnlook*"$hang"* ]]; then left=$((left + 1)); fi
done
[[ $rc != 0 ]] && grep -q "no answer within 1 s" "$work/hang.err" && (( ms < 3000 && left == 0 )) \
  && pass "a hanging svnlook is killed after 1 s (${ms} ms), the hook fails, no process left" || bad "hang: rc=$rc ${ms} ms left=$left $(cat "$work/hang.err")"
echo change >>"$work/wc/trunk/readme.txt"
commit alice "r5" >/dev/null
wait_lines "$work/after-bad.out" 1 && grep -q '"new_rev":"5"' "$work/after-bad.out" && [[ $badrc == 0 && ! -e $work/pwned3 && ! -e $work/pwned4 ]] \
  && pass "bad REPOS/REV/missing revision/hung svnlook: error, non-zero exit, nothing published" || bad "bad input: $(cat "$work/after-bad.out")"
wait "${subs[@]}" || true
subs=()

# Broker down: the commit finishes quickly, the event is spooled, and `stompctl drain` delivers it.
stop_broker
echo six >>"$work/wc/trunk/readme.txt"
ms=$(commit alice "Six, while the broker is down")                 # r6
(( ms < 5000 )) && pass "commit with the broker down took ${ms} ms" || bad "commit took ${ms} ms"
n=$(find "$work/spool" -name '*.stomp' | wc -l)
(( n == 2 )) && pass "spooled the event and the report ($n files)" || bad "spool has $n files"
start_broker
subscribe drained future.git.commits 1 --events
"$stompctl" -u "$url" drain --spool "$work/spool" >"$work/drain.json"
wait_lines "$work/drained.out" 1 && grep -q '"new_rev":"6"' "$work/drained.out" \
  && [[ $(find "$work/spool" -name '*.stomp' | wc -l) == 0 ]] \
  && pass "spooled event delivered by stompctl drain ($(cat "$work/drain.json"))" || bad "drain: $(cat "$work/drain.json") $(cat "$work/drained.out")"
wait "${subs[@]}" || true
subs=()

# Broker down again: this time the next commit's hook delivers the spooled event first.
stop_broker
echo seven >>"$work/wc/trunk/readme.txt"
commit alice "Seven, spooled" >/dev/null                           # r7
start_broker
subscribe next future.git.commits 2 --events
echo eight >>"$work/wc/trunk/readme.txt"
commit alice "Eight" >/dev/null                                    # r8
wait_lines "$work/next.out" 2 && /usr/bin/python3 - "$work/next.out" <<'PY' && pass "the next commit delivered the spooled r7, then r8, in order" || bad "next run: $(cat "$work/next.out")"
import json, sys
revs = [json.loads(l)["data"]["new_rev"] for l in open(sys.argv[1])]
assert revs == ["7", "8"], revs
PY
exit $fail
