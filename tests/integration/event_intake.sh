#!/usr/bin/env bash
# What a deploykit consumer (stompctl subscribe --events, the intake every daemon uses) accepts
# on the embedded broker: the original Ruby hook's A->B, force-push back to A, A->B again (the
# third byte-identical to the first) are three events; identical eventbot one-liners all arrive;
# control characters are stripped from free text; with signatures required, a valid signature in
# the old unversioned form is refused and a v2 one accepted.
#   tests/integration/event_intake.sh STOMP_BROKER STOMPCTL
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2")
NAME=event_intake
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
spid=
port=$(free_port)
embedded_broker "$broker" "$port" "$work/broker.log"
url="stomp://127.0.0.1:$port"
subscribe() { # NAME DEST N [extra args]: --events subscriber in the background, ready when it returns
  local name=$1 dest=$2 n=$3; shift 3
  start_subscriber "$name" "$stompctl" -u "$url" subscribe -t "$dest" --events -n "$n" --wait 30 "$@"
  local rc=$?
  spid=$SUB_PID
  return $rc
}
finish() { wait "$spid" 2>/dev/null || true; spid=; }
A=$(printf 'a%.0s' {1..40}) B=$(printf 'b%.0s' {1..40})
ruby_commit() { # OLD NEW: the body post-receive-stomp.rb sent (no dk-* headers)
  printf 'repo: site\noldrev: %s\nnewrev: %s\nrefname: refs/heads/master\n %s\nAuthor: Dev\nDate: today\n\nmsg\n\n' "$1" "$2" "$2"
}
ruby_send() { "$stompctl" -u "$url" publish -t /topic/future.git.commits -H "subject:[site] refs/heads/master $2" -m "$(ruby_commit "$1" "$2")"; }

# ---- legacy frames are never deduplicated by content ----
subscribe legacy /topic/future.git.commits 3
ruby_send "$A" "$B"; ruby_send "$B" "$A"; ruby_send "$A" "$B"
wait_lines "$work/legacy.out" 3 && finish
/usr/bin/python3 - "$work/legacy.out" "$A" "$B" <<'PY' && pass "A->B, back to A, A->B again: three events (the third byte-identical to the first)" || bad "legacy roll-forward: $(cat "$work/legacy.out" "$work/legacy.err")"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
a, b = sys.argv[2], sys.argv[3]
assert [(e["data"]["old_rev"], e["data"]["new_rev"]) for e in evs] == [(a, b), (b, a), (a, b)], evs
assert len({e["id"] for e in evs}) == 3
PY

subscribe notices /topic/future.events.stomp-git 3
for _ in 1 2 3; do
  "$stompctl" -u "$url" publish -t /topic/future.events.stomp-git -H "subject:Talking to eventbot" -m $'web01 \e[2J\e]0;owned\afetched change\n'
done
wait_lines "$work/notices.out" 3 && finish
/usr/bin/python3 - "$work/notices.out" <<'PY' && pass "identical one-liners: all three delivered, escape sequences stripped" || bad "one-liners: $(cat "$work/notices.out" "$work/notices.err")"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
assert [e["data"]["text"] for e in evs] == ["web01 fetched change"] * 3, evs
PY

# ---- signatures ----
printf 'k1 0123456789abcdef0123\n' >"$work/bus.key"
chmod 600 "$work/bus.key"
subscribe signed /topic/signed 1 --require-signatures --key-file "$work/bus.key"
body=$(ruby_commit "$A" "$B")
ts=$(date +%s)
# A valid signature in the old (v1, unversioned) form: refused.
v1=$(/usr/bin/python3 - "$ts" "$body" <<'PY'
import hmac, hashlib, sys
ts, body = sys.argv[1], sys.argv[2]
c = "dk-sig-v1\nk1\n" + ts + "\ndestination:/topic/signed\nsubject:[site] refs/heads/master " + "b" * 40 + "\n"
c += "content-type:\ndk-event-id:\ndk-event-type:\ndk-repo:\n\n" + body
print(hmac.new(b"0123456789abcdef0123", c.encode(), hashlib.sha256).hexdigest())
PY
)
"$stompctl" -u "$url" publish -t /topic/signed -H "subject:[site] refs/heads/master $B" -H dk-sig-key:k1 -H "dk-sig-ts:$ts" \
  -H "dk-sig:$v1" -m "$body"
# The same frame signed with v2: accepted.
"$stompctl" -u "$url" publish -t /topic/signed -H "subject:[site] refs/heads/master $B" -H "dk-repo:site" \
  --key-file "$work/bus.key" --key-id k1 -m "$body" 2>/dev/null
wait_lines "$work/signed.out" 1 && finish
grep -q "unsupported signature scheme" "$work/signed.err" && [[ $(wc -l <"$work/signed.out") == 1 ]] \
  && pass "old unversioned signature refused; the v2-signed event accepted" || bad "signed: $(cat "$work/signed.out" "$work/signed.err")"
if grep -q $'\e' "$work"/*.err "$work"/*.out; then bad "an escape character reached the output"; else pass "no escape character in any output or log"; fi

exit $fail
