#!/usr/bin/env bash
# The hooks' and stompctl's config and command line on the runtime (issue 12): the original's
# configs pass --check-config; a misspelt key is an error naming the file, the line and the nearest
# key (exit 2) for each binary, and at hook time it fails nothing that already happened; wrong
# types and a group-readable passcode file are refused; usage errors exit 2; --version; each hook
# call logs one line (the ref, the outcome, the event id) and says "spooled" to the pusher.
#   tests/integration/hooks_config.sh STOMP_POST_RECEIVE SVN_STOMP STOMPCTL
set -euo pipefail
postrec=$(realpath "$1") svnhook=$(realpath "$2") stompctl=$(realpath "$3")
work=$(mktemp -d /tmp/deploykit-hookcfg.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0
pass() { echo "PASS $*"; }
bad() { echo "FAIL $*"; fail=1; }
# A port nothing listens on: the broker is away.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run() { # OUT RC-VAR CMD...: runs CMD with stdout+stderr in $work/OUT, its status in $rc
  local out=$1; shift
  rc=0
  "$@" >"$work/$out" 2>&1 </dev/null || rc=$?
}

# The original's files, unchanged (plus a spool directory).
cat >"$work/postrec.yaml" <<EOF2
rserver: failover://(stomp://127.0.0.1:$port)
stomp-options: initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1
trigger-topic: future.git.commits
report-topic: future.events.gitolite
spool-dir: $work/spool
EOF2
sed 's/future.events.gitolite/future.events.svnserver/' "$work/postrec.yaml" >"$work/svn.yaml"
for b in "$postrec" "$svnhook"; do
  cfg=$work/postrec.yaml; [[ $b == "$svnhook" ]] && cfg=$work/svn.yaml
  run check.out "$b" --check-config -c "$cfg"
  [[ $rc == 0 ]] && grep -q "configuration OK" "$work/check.out" && pass "$(basename "$b"): the original's config passes --check-config" \
    || bad "$(basename "$b") --check-config: rc=$rc $(cat "$work/check.out")"
done

# A misspelt key: file, line, key and the nearest known key; exit 2.
sed 's/^trigger-topic:/trigger-topik:/' "$work/postrec.yaml" >"$work/typo.yaml"
for b in "$postrec" "$svnhook"; do
  run typo.out "$b" --check-config -c "$work/typo.yaml"
  [[ $rc == 2 ]] && grep -qF "typo.yaml:3: trigger-topik: unknown setting; did you mean \`trigger-topic\`?" "$work/typo.out" \
    && pass "$(basename "$b"): a misspelt key is an error with did-you-mean, exit 2" \
    || bad "$(basename "$b") typo: rc=$rc $(cat "$work/typo.out")"
done

# At hook time the typo is said, nothing is published or spooled, and the push is not failed.
git init -q --bare "$work/site.git"
rev=$(printf '1%.0s' $(seq 40))
zero=$(printf '0%.0s' $(seq 40))
echo "$zero $rev refs/heads/master" >"$work/updates"
rc=0
GIT_DIR=$work/site.git "$postrec" -c "$work/typo.yaml" <"$work/updates" >"$work/hooktypo.out" 2>&1 || rc=$?
[[ $rc == 0 ]] && grep -q "trigger-topik: unknown setting" "$work/hooktypo.out" && [[ ! -e $work/spool ]] \
  && pass "post-receive with a misspelt key: said on stderr, nothing spooled, push not failed (exit 0)" \
  || bad "post-receive typo at hook time: rc=$rc $(cat "$work/hooktypo.out")"
mkdir -p "$work/svnrepo/db" "$work/svnrepo/hooks" && echo 5 >"$work/svnrepo/format"
run svntypo.out env -i "$svnhook" -c "$work/typo.yaml" "$work/svnrepo" 7
[[ $rc == 1 ]] && grep -q "trigger-topik: unknown setting" "$work/svntypo.out" && [[ ! -e $work/spool ]] \
  && pass "svn-stomp with a misspelt key: said to the committer, nothing spooled, exit 1" \
  || bad "svn-stomp typo at hook time: rc=$rc $(cat "$work/svntypo.out")"

# Wrong types name the key, its line and what was expected.
{ cat "$work/svn.yaml"; echo "svnlook-timeout: abc"; } >"$work/type.yaml"
run type.out "$svnhook" --check-config -c "$work/type.yaml"
[[ $rc == 2 ]] && grep -q "type.yaml:6: svnlook-timeout: expected a whole number" "$work/type.out" \
  && pass "svn-stomp: a wrong type names file, line, key and the expected type" || bad "type: rc=$rc $(cat "$work/type.out")"
{ cat "$work/postrec.yaml"; echo "trigger-topic: /topic/x"; } >"$work/topic.yaml"
sed -i '/^trigger-topic: future/d' "$work/topic.yaml"
run topic.out "$postrec" --check-config -c "$work/topic.yaml"
[[ $rc == 2 ]] && grep -q "trigger-topic: topic '/topic/x' must be a bare name" "$work/topic.out" \
  && pass "a topic with a '/' is refused" || bad "topic: rc=$rc $(cat "$work/topic.out")"

# The runtime's secret policy for passcode-file (hooks) and --passcode-file (stompctl).
echo hunter2-value >"$work/pass" && chmod 644 "$work/pass"
{ cat "$work/postrec.yaml"; echo "passcode-file: $work/pass"; } >"$work/secret.yaml"
run secret.out "$postrec" --check-config -c "$work/secret.yaml"
[[ $rc == 2 ]] && grep -q "passcode-file: $work/pass has mode 0644" "$work/secret.out" && ! grep -q hunter2 "$work/secret.out" \
  && pass "a group-readable passcode-file is refused with its mode" || bad "secret: rc=$rc $(cat "$work/secret.out")"
run ctlsecret.out "$stompctl" -u "stomp://127.0.0.1:$port" --passcode-file "$work/pass" publish -t /topic/x -m hi
[[ $rc == 2 ]] && grep -q "has mode 0644" "$work/ctlsecret.out" && pass "stompctl --passcode-file: the same policy, exit 2" \
  || bad "stompctl secret: rc=$rc $(cat "$work/ctlsecret.out")"

# stompctl drain -c: a misspelt connection key of a daemon's config is pointed out.
sed 's/^spool-dir:/spool-dri:/' "$work/postrec.yaml" >"$work/drain.yaml"
run drain.out "$stompctl" drain -c "$work/drain.yaml"
[[ $rc == 2 ]] && grep -qF "drain.yaml:5: spool-dri: not a connection setting; did you mean \`spool-dir\`?" "$work/drain.out" \
  && pass "stompctl drain -c: a misspelt spool-dir is named with the nearest key, exit 2" || bad "drain typo: rc=$rc $(cat "$work/drain.out")"

# Usage errors exit 2 (not CLI11's 106/109); --version from CMake.
ufail=0
for cmd in "$postrec --bogus" "$svnhook --bogus" "$stompctl publish" "$stompctl --timeout x publish -t /topic/x"; do
  run usage.out $cmd
  [[ $rc == 2 ]] || { bad "usage error '$cmd' exited $rc: $(cat "$work/usage.out")"; ufail=1; }
done
[[ $ufail == 0 ]] && pass "usage errors exit 2"
vfail=0
for b in "$postrec" "$svnhook" "$stompctl"; do
  run version.out "$b" --version
  [[ $rc == 0 ]] && grep -Eq "^$(basename "$b") [0-9]+\.[0-9]+" "$work/version.out" \
    || { bad "--version of $b: $(cat "$work/version.out")"; vfail=1; }
done
[[ $vfail == 0 ]] && pass "--version names the binary and the project version"

# One log line per call (syslog; stderr with -d): repository, ref, revision, outcome, event id.
rc=0
GIT_DIR=$work/site.git "$postrec" -d -c "$work/postrec.yaml" <"$work/updates" >"$work/hook.out" 2>&1 || rc=$?
grep -Eq " info \[site\] spooled in $work/spool 1 ref update\(s\): refs/heads/master $rev \(event [0-9a-f-]+\)" "$work/hook.out" \
  && grep -q "deploykit: broker unreachable; 1 ref update(s) spooled" "$work/hook.out" && [[ $rc == 0 ]] \
  && pass "post-receive logs one line per call with the ref, the outcome and the event id" \
  || bad "hook log line: rc=$rc $(cat "$work/hook.out")"
rc=0
GIT_DIR=$work/site.git "$postrec" -c "$work/postrec.yaml" <"$work/updates" >"$work/quiet.out" 2>&1 || rc=$?
[[ $rc == 0 && $(wc -l <"$work/quiet.out") == 1 ]] && grep -q "broker unreachable" "$work/quiet.out" \
  && pass "without -d the pusher sees only the hook's own message" || bad "quiet: $(cat "$work/quiet.out")"
rc=0
GIT_DIR=$work/site.git "$postrec" -d --log-format json -c "$work/postrec.yaml" <"$work/updates" >"$work/json.out" 2>&1 || rc=$?
/usr/bin/python3 - "$work/json.out" <<'PY' && pass "--log-format json: the event id is its own key" || bad "json: $(cat "$work/json.out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
hit = [l for l in lines if "spooled in" in l["msg"]]
assert len(hit) == 1, lines
assert list(hit[0])[:4] == ["ts", "level", "daemon", "msg"] and hit[0]["daemon"] == "stomp-post-receive", hit
assert len(hit[0]["event_id"]) >= 8 and hit[0]["event_id"] in hit[0]["msg"], hit
PY
# --install PATH --check (Puppet's `unless`): changes nothing, 1 while a repository lacks the hook
# (also one whose own hook would be chained), 0 once every one has it.
mkdir -p "$work/repos"
git init -q --bare "$work/repos/a.git" && git init -q --bare "$work/repos/sub/b.git"
printf '#!/bin/sh\nexit 0\n' >"$work/repos/sub/b.git/hooks/post-receive"
run check1 "$postrec" --install "$work/repos" --check
[[ $rc == 1 && ! -e $work/repos/a.git/hooks/post-receive && ! -L $work/repos/sub/b.git/hooks/post-receive ]] \
  && pass "--install --check before: status 1, nothing changed" || bad "--check before: $rc $(cat "$work/check1")"
run install "$postrec" --install "$work/repos"
run check2 "$postrec" --install "$work/repos" --check
[[ $rc == 0 && -e $work/repos/sub/b.git/hooks/post-receive.chained ]] \
  && pass "--install --check after the install: status 0" || bad "--check after: $rc $(cat "$work/check2")"
rm "$work/repos/a.git/hooks/post-receive"
run check3 "$postrec" --install "$work/repos" --check
[[ $rc == 1 ]] && grep -q "a.git/hooks/post-receive: not installed" "$work/check3" \
  && pass "--install --check with one repository's hook gone: status 1" || bad "--check one gone: $rc $(cat "$work/check3")"
# svn-stomp --install REPOS --check: the same for the SVN hook; a hook written for another -c
# counts as not installed (the install rewrites it).
svnadmin create "$work/svncheck"
run scheck1 "$svnhook" -c "$work/svn.yaml" --install "$work/svncheck" --check
[[ $rc == 1 && ! -e $work/svncheck/hooks/post-commit ]] \
  && pass "svn-stomp --install --check before: status 1, nothing written" || bad "svn --check before: $rc $(cat "$work/scheck1")"
run sinstall "$svnhook" -c "$work/svn.yaml" --install "$work/svncheck"
run scheck2 "$svnhook" -c "$work/svn.yaml" --install "$work/svncheck" --check
[[ $rc == 0 ]] && pass "svn-stomp --install --check after the install: status 0" || bad "svn --check after: $rc $(cat "$work/scheck2")"
run scheck3 "$svnhook" -c "$work/other.yaml" --install "$work/svncheck" --check
[[ $rc == 1 ]] && pass "svn-stomp --install --check for another -c: status 1" || bad "svn --check other -c: $rc $(cat "$work/scheck3")"
exit $fail
