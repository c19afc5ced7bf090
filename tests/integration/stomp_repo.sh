#!/usr/bin/env bash
# The package path end to end with real components: a reprepro repository in a temp dir (packages
# built by dpkg-deb), reprepro-stomp in its conf/distributions Log: line, `reprepro includedeb` of a
# newer version -> package event on the broker (published once the export is visible) -> stomp-repo
# runs a real `apt-get update` in an isolated apt root (own Dir::State, Dir::Cache, status file,
# sources; APT_CONFIG an empty file: the machine's apt.conf.d hooks do not run, its apt state is
# untouched) -> `apt-cache policy` with the same options shows the new candidate, and a
# package.result event is on the bus. Then: a burst coalesced into one update, an unwatched
# package, lists/lock held briefly (waits, then succeeds) and past lock-timeout (failed result,
# retry), an announced version the repository does not have (stale, retried, bounded), and hostile
# names/versions/codenames (refused and counted, nothing run).
#   tests/integration/stomp_repo.sh STOMP_BROKER STOMPCTL REPREPRO_STOMP STOMP_REPO [embedded|rabbitmq]
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") hook=$(realpath "$3") daemon=$(realpath "$4")
kind=${5:-embedded}
here=$(cd "$(dirname "$0")/.." && pwd)
for tool in reprepro dpkg-deb apt-get apt-cache python3 curl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (scripts/deps.sh)"; exit 1; }
done
work=$(mktemp -d /tmp/deploykit-stomp-repo.XXXXXX)
chmod 755 "$work"  # apt's file: method reads the repository as _apt
pids=()
trap '{ for p in "${pids[@]}"; do kill "$p"; done; [[ $kind == embedded ]] || bash "$here/brokers/broker.sh" stop "$work/broker"; } >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
trap "exit 1" TERM INT  # a ctest timeout still runs the EXIT cleanup
fail=0
pass() { echo "PASS $*"; }
bad() { echo "FAIL $*"; fail=1; }
wait_port() { for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.025; done; return 1; }
wait_for() { # SECONDS COMMAND...: until the command succeeds
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do ((SECONDS < end)) || return 1; sleep 0.05; done
}
read -r bport aport < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
case $kind in
  embedded) url="stomp://127.0.0.1:$bport" ;;
  rabbitmq) url="stomp://guest:guest@127.0.0.1:$bport" ;;
  *) echo "usage: $0 ... [embedded|rabbitmq]" >&2; exit 2 ;;
esac
if [[ $kind == embedded ]]; then
  "$broker" --listen "127.0.0.1:$bport" --data-dir "$work/broker" 2>"$work/broker.log" &
  pids+=($!)
  wait_port "$bport"
else
  bash "$here/brokers/broker.sh" start "$kind" "$work/broker" "$bport" >"$work/broker.log" 2>&1 \
    || { echo "FAIL: $kind did not start: $(tail -20 "$work/broker.log")"; exit 1; }
fi
echo "broker: $kind"

# ---- packages and the repository ----
# shellcheck source=tests/integration/apt_repo.sh
. "$here/integration/apt_repo.sh"
mkdir -p "$work/debs" "$work/repo/conf"
for p in site-web:1.0-1 site-web:1.1-1 site-web:1.2-1 site-web:1.3-1 site-api:1.0-1 site-db:2:1.0-1 other:1.0-1; do
  mkdeb "$work/debs" "${p%%:*}" "${p#*:}"
done
cat >"$work/repo/conf/distributions" <<EOF
Codename: bookworm
Suite: stable
Components: main
Architectures: amd64
Log: reprepro.log
 $hook
EOF
cat >"$work/hook.yaml" <<EOF
rserver: $url
wire-format: both
topic: future.package.updates
spool-dir: $work/hook-spool
export-wait: 30s
EOF
export REPREPRO_STOMP_CONFIG=$work/hook.yaml  # a Log: line takes no options
"$hook" --check-config | grep -q "configuration OK" && pass "reprepro-stomp --check-config" || bad "check-config"
rr() { reprepro -b "$work/repo" "$@" >>"$work/reprepro.out" 2>&1; }
rr includedeb bookworm "$work/debs/site-web_1.0-1_all.deb" || { bad "reprepro includedeb: $(cat "$work/reprepro.out")"; exit 1; }

# ---- the isolated apt root ----
A=$work/apt
apt_root "$A" "deb [trusted=yes] file:$work/repo bookworm main"
apt_update >"$work/apt-setup.log" 2>&1 || bad "initial apt-get update: $(cat "$work/apt-setup.log")"
[[ $(candidate site-web) == 1.0-1 ]] && pass "isolated apt root sees site-web 1.0-1" || bad "initial candidate: $(candidate site-web)"

# ---- stomp-repo ----
# The version helper (libapt-pkg's order) through a wrapper the test can break (case 6b).
cat >"$work/vercmp" <<EOF
#!/bin/sh
if [ -e "$work/vercmp-broken" ]; then echo "stomp-repo-vercmp broken by the test" >&2; exit 3; fi
exec "$(dirname "$daemon")/stomp-repo-vercmp"
EOF
chmod 755 "$work/vercmp"
cat >"$work/stomp-repo.yaml" <<EOF
rserver: failover://($url)
stomp-options: initialReconnectDelay=10&maxReconnectDelay=500&useExponentialBackOff=true
listen-topic: future.package.updates
report-topic: future.events.stomp-repo
result-topic: future.package.results
wire-format: both
spool-dir: $work/repo-spool
watch:
  - package: 'site-*'
    codename: bookworm
sources-list: $A/sources.list
apt-config: $A/apt.conf
apt-options:
${APT_ROOT_YAML}lock-timeout: 3s
retries: 2
retry-initial: 300ms
retry-max: 1s
coalesce: 200ms
admin-listen: 127.0.0.1:$aport
heartbeat-interval: 0
version-helper: $work/vercmp
EOF
"$daemon" -c "$work/stomp-repo.yaml" --check-config >/dev/null && pass "stomp-repo --check-config" || bad "check-config"
# A missing version helper (or one that cannot order versions) stops --check-config and the start.
sed "s|^version-helper: .*|version-helper: $work/no-such-vercmp|" "$work/stomp-repo.yaml" >"$work/nohelper.yaml"
set +e; "$daemon" -c "$work/nohelper.yaml" --check-config 2>"$work/nohelper.err"; rc=$?; set -e
[[ $rc == 2 ]] && grep -q "version-helper: $work/no-such-vercmp" "$work/nohelper.err" \
  && pass "missing version helper: --check-config fails (exit 2) and names it" || bad "missing helper: rc=$rc $(cat "$work/nohelper.err")"
touch "$work/vercmp-broken"
set +e; timeout 20 "$daemon" -d -c "$work/stomp-repo.yaml" 2>"$work/nohelper-start.err"; rc=$?; set -e
rm -f "$work/vercmp-broken"
[[ $rc == 2 ]] && grep -q "broken by the test" "$work/nohelper-start.err" \
  && pass "a failing version helper stops the start (exit 2)" || bad "broken helper at start: rc=$rc $(tail -3 "$work/nohelper-start.err")"
printf 'rserver: %s\nwatch: [site-web]\nsources-lst: /x\n' "$url" >"$work/bad.yaml"
set +e; "$daemon" -c "$work/bad.yaml" --check-config 2>"$work/bad.err"; rc=$?; set -e
[[ $rc == 2 ]] && grep -q "bad.yaml:3.*sources-lst.*did you mean .sources-list." "$work/bad.err" \
  && pass "config error names file, line and key (exit 2)" || bad "bad config: rc=$rc $(cat "$work/bad.err")"

"$stompctl" -u "$url" subscribe -t /topic/future.package.results --events --wait 240 --ready-file "$work/r1" >"$work/results" 2>/dev/null &
pids+=($!)
"$stompctl" -u "$url" subscribe -t /topic/future.package.updates --events --wait 240 --ready-file "$work/r2" >"$work/updates" 2>/dev/null &
pids+=($!)
"$stompctl" -u "$url" subscribe -t /topic/future.events.stomp-repo --wait 240 --ready-file "$work/r3" >"$work/oneliners" 2>/dev/null &
pids+=($!)
"$daemon" -d -c "$work/stomp-repo.yaml" 2>"$work/stomp-repo.log" &
dpid=$!
pids+=($dpid)
wait_for 20 test -f "$work/r1" -a -f "$work/r2" -a -f "$work/r3" || bad "subscribers not ready"
wait_for 30 curl -sf "http://127.0.0.1:$aport/readyz" || bad "stomp-repo not ready: $(tail -5 "$work/stomp-repo.log")"

# result N FIELD...: a python check over the package.result events seen so far
results() { /usr/bin/python3 - "$work/results" "$@" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
evs = [e for e in evs if e.get("type") == "package.result"]
ok = eval(sys.argv[2], {"evs": evs, "any": any, "all": all, "len": len})
sys.exit(0 if ok else 1)
PY
}
metric() { curl -sf "http://127.0.0.1:$aport/metrics" | awk -v m="stomp_repo_$1" '$1 == m {print $2}'; }
# metric_is NAME VALUE [NAME VALUE...]: for wait_for, which must re-read the metrics on every try
metric_is() { while (($#)); do [[ $(metric "$1") == "$2" ]] || return 1; shift 2; done; }

# 1. includedeb of a newer version -> result event, new candidate in the isolated root.
t0=$(date +%s%N)
rr includedeb bookworm "$work/debs/site-web_1.1-1_all.deb"
t_rr=$(date +%s%N)
if wait_for 60 results 'any(e["data"]["ok"] and any(p["name"] == "site-web" and p["candidate"] == "1.1-1" for p in e["data"]["packages"]) for e in evs)'; then
  t1=$(date +%s%N)
  pass "includedeb site-web 1.1-1 -> package.result with candidate 1.1-1"
  echo "TIMING includedeb returned after $(( (t_rr - t0) / 1000000 )) ms; includedeb -> result event $(( (t1 - t0) / 1000000 )) ms ($kind)"
else
  bad "no result event: $(cat "$work/results") / $(tail -20 "$work/stomp-repo.log")"
fi
[[ $(candidate site-web) == 1.1-1 ]] && pass "apt-cache policy in the isolated root: candidate 1.1-1" || bad "candidate $(candidate site-web)"
grep '"type":"package"' "$work/updates" | grep '"name":"site-web","new_version":"1.1-1"' >/dev/null \
  && pass "the package event is on future.package.updates" || bad "package event: $(cat "$work/updates")"
grep -q "updated package lists: site-web 1.1-1" "$work/oneliners" && pass "original-style one-liner on the report topic" \
  || bad "one-liner: $(cat "$work/oneliners")"
grep -q "Waiting for\|sources.list.d\|/var/lib/apt" "$work/stomp-repo.log" && bad "machine apt state mentioned: $(grep -n 'var/lib/apt' "$work/stomp-repo.log")" || true

# 2. A burst (two packages in one includedeb) coalesces into one update. Each event is published
# by its own detached notifier child once the export is visible; on a loaded machine they arrive
# up to a second apart, so stomp-repo restarts with a wider window (its durable subscription
# keeps what is published meanwhile).
kill -TERM "$dpid"
wait "$dpid" || bad "stomp-repo exit status $? on SIGTERM"
sed -i 's/^coalesce: 200ms$/coalesce: 3s/' "$work/stomp-repo.yaml"
"$daemon" -d -c "$work/stomp-repo.yaml" 2>>"$work/stomp-repo.log" &
dpid=$!
pids+=($dpid)
wait_for 30 curl -sf "http://127.0.0.1:$aport/readyz" || bad "stomp-repo not ready after the restart"
rr includedeb bookworm "$work/debs/site-api_1.0-1_all.deb" "$work/debs/site-db_2:1.0-1_all.deb"
wait_for 60 results 'any(e["data"]["ok"] and sorted(p["name"] for p in e["data"]["packages"]) == ["site-api", "site-db"] and len(e["data"]["events"]) == 2 for e in evs)' \
  && pass "a burst of two packages -> one update with both (epoch version 2:1.0-1)" \
  || bad "burst: $(tail -3 "$work/results") / $(tail -10 "$work/stomp-repo.log")"

# 3. An unwatched package: no update, counted.
rr includedeb bookworm "$work/debs/other_1.0-1_all.deb"
wait_for 30 metric_is ignored_unwatched_total 1 && pass "unwatched package ignored and counted" \
  || bad "unwatched: $(metric ignored_unwatched_total)"

# 4. lists/lock held by another process (fcntl, as apt locks): stomp-repo waits, then succeeds.
hold_lock() { # READY-FILE RELEASE-FILE
  /usr/bin/python3 - "$A/state/lists/lock" "$1" "$2" <<'PY' &
import fcntl, os, sys, time
f = open(sys.argv[1], "w")
fcntl.lockf(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
end = time.monotonic() + 60
while not os.path.exists(sys.argv[3]) and time.monotonic() < end:
    time.sleep(0.05)
PY
  pids+=($!)
}
hold_lock "$work/locked1" "$work/release1"
wait_for 10 test -f "$work/locked1"
rr includedeb bookworm "$work/debs/site-web_1.2-1_all.deb"
wait_for 30 grep -q "locked by another process; waiting" "$work/stomp-repo.log" || bad "no lock wait: $(tail -5 "$work/stomp-repo.log")"
touch "$work/release1"
wait_for 60 results 'any(e["data"]["ok"] and any(p["candidate"] == "1.2-1" for p in e["data"]["packages"]) and e["data"]["attempt"] == 1 for e in evs)' \
  && pass "lists/lock held briefly: waited, then updated (first attempt)" || bad "lock wait: $(tail -10 "$work/stomp-repo.log")"

# 5. Held past lock-timeout: a failed result event (lock-timeout), then a retry that succeeds.
hold_lock "$work/locked2" "$work/release2"
wait_for 10 test -f "$work/locked2"
rr includedeb bookworm "$work/debs/site-web_1.3-1_all.deb"
wait_for 60 results 'any(not e["data"]["ok"] and e["data"]["outcome"] == "lock-timeout" for e in evs)' \
  && pass "lock held past lock-timeout: failed result event (lock-timeout)" || bad "no lock-timeout result: $(tail -10 "$work/stomp-repo.log")"
touch "$work/release2"
wait_for 60 results 'any(e["data"]["ok"] and any(p["candidate"] == "1.3-1" for p in e["data"]["packages"]) and e["data"]["attempt"] >= 2 for e in evs)' \
  && pass "then retried and updated" || bad "no retry: $(tail -10 "$work/stomp-repo.log")"
kill -0 "$dpid" && pass "stomp-repo still running" || bad "stomp-repo died"

# 6. An announced version the repository does not have: stale, retried, bounded (retries: 2).
ev='{"v":1,"id":"6b0c2f7e-0000-4000-8000-00000000aa01","type":"package","host":"repo01","time":"2026-12-04T10:00:00Z","data":{"name":"site-web","new_version":"9.9-1","codename":"bookworm","component":"main","architecture":"amd64","file":"site-web_9.9-1_all.deb"}}'
"$stompctl" -u "$url" publish -t /topic/future.package.updates -H content-type:application/json -m "$ev" >/dev/null
wait_for 60 results 'len([e for e in evs if e["data"]["outcome"] == "stale" and "6b0c2f7e-0000-4000-8000-00000000aa01" in e["data"]["events"]]) == 3' \
  && pass "candidate still older after the update: 3 stale results (first try + 2 retries)" \
  || bad "stale: $(grep -c stale "$work/results") / $(tail -5 "$work/stomp-repo.log")"
wait_for 30 metric_is gave_up_total 1 && pass "then given up (bounded) and counted" || bad "gave_up_total=$(metric gave_up_total)"

# 6b. The version helper fails: the event cannot be ordered, so it is held and joins an update;
# the update's versions cannot be ordered either: version-order-failed results, retried (bounded),
# and the message is left unacknowledged. After the helper is fixed and stomp-repo restarted, the
# broker delivers it again and it is decided (here: 1.0~rc1-1 is not newer than 1.3-1).
touch "$work/vercmp-broken"
ev_id=6b0c2f7e-0000-4000-8000-00000000ab01
ev='{"v":1,"id":"'$ev_id'","type":"package","host":"repo01","time":"2026-12-04T10:00:00Z","data":{"name":"site-web","new_version":"1.0~rc1-1","codename":"bookworm","component":"main","architecture":"amd64","file":"site-web_1.0~rc1-1_all.deb"}}'
"$stompctl" -u "$url" publish -t /topic/future.package.updates -H content-type:application/json -m "$ev" >/dev/null
wait_for 60 results 'len([e for e in evs if e["data"]["outcome"] == "version-order-failed" and "'$ev_id'" in e["data"]["events"] and not e["data"]["ok"]]) == 3' \
  && pass "helper failing: 3 version-order-failed results (first try + 2 retries), no verdict" \
  || bad "no version-order-failed results: $(grep -c version-order "$work/results") / $(tail -5 "$work/stomp-repo.log")"
wait_for 30 grep -q "version-order-failed after 3 attempt(s).*not acknowledged" "$work/stomp-repo.log" \
  && pass "then a clear error: messages not acknowledged" || bad "no give-up line: $(tail -5 "$work/stomp-repo.log")"
grep -q "$ev_id.*cannot be ordered against the candidate.*held, not acknowledged" "$work/stomp-repo.log" \
  && pass "the event's own error line" || bad "no event error line"
[[ $(metric ignored_not_newer_total) == 0 ]] && pass "not decided while the helper fails" || bad "decided without the helper"
rm -f "$work/vercmp-broken"
kill -TERM "$dpid"
wait "$dpid" || bad "stomp-repo exit status $? on SIGTERM"
"$daemon" -d -c "$work/stomp-repo.yaml" 2>>"$work/stomp-repo.log" &
dpid=$!
pids+=($dpid)
wait_for 30 curl -sf "http://127.0.0.1:$aport/readyz" || bad "stomp-repo not ready after the restart"
wait_for 30 metric_is ignored_not_newer_total 1 \
  && pass "helper fixed, restarted: the unacknowledged event is delivered again and decided (not newer)" \
  || bad "not delivered again: not_newer=$(metric ignored_not_newer_total) $(tail -5 "$work/stomp-repo.log")"

# 7. Hostile names, versions and codenames: refused and counted, never on a command line.
hostile() { # NAME VERSION CODENAME
  /usr/bin/python3 -c '
import json, sys, uuid
print(json.dumps({"v": 1, "id": str(uuid.uuid4()), "type": "package", "host": "evil", "time": "2026-12-04T10:00:00Z",
  "data": {"name": sys.argv[1], "new_version": sys.argv[2], "codename": sys.argv[3], "component": "main", "architecture": "amd64"}}))' "$@" \
  | "$stompctl" -u "$url" publish -t /topic/future.package.updates -H content-type:application/json >/dev/null
}
refused_before=$(metric refused_total)
hostile "site-web;touch $work/pwned" "1.0-1" bookworm
hostile "site-web" "9.0\$(touch $work/pwned)" bookworm
hostile "site-web" "9.0-1" "../../../etc"
hostile "site-$(head -c 10240 /dev/zero | tr '\0' a)" "9.0-1" bookworm
hostile "site-web" "9.0-1" "bookworm/../x"
# The 10 kB name is refused by the event model already (intake: invalid), the others by the
# Debian policy checks (refused).
wait_for 30 metric_is refused_total $((refused_before + 4)) 'events_dropped_total{reason="invalid"}' 1 \
  && pass "5 hostile events refused and counted (4 by Debian policy, 1 by the event model)" \
  || bad "refused_total=$(metric refused_total) (was $refused_before): $(grep refused "$work/stomp-repo.log" | tail -5)"
[[ ! -e $work/pwned ]] && pass "nothing ran" || bad "a hostile name reached a shell"
grep -q "site-web;touch" "$work/apt-setup.log" "$work/results" 2>/dev/null && bad "hostile name in a result" || true

# 8. rerunnotifiers republishes at once (bootstrap), without waiting for an export.
rr rerunnotifiers bookworm
wait_for 30 grep -q '"codename":"bookworm".*"name":"other"\|"name":"other".*"codename":"bookworm"' "$work/updates" \
  && pass "reprepro rerunnotifiers republishes the repository's packages" || bad "rerunnotifiers: $(tail -3 "$work/updates")"

# SIGTERM: an idle daemon exits promptly with 0.
kill -TERM "$dpid"
for _ in $(seq 200); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$dpid" 2>/dev/null; then bad "stomp-repo did not stop on SIGTERM"; else
  set +e; wait "$dpid"; rc=$?; set -e
  [[ $rc == 0 ]] && pass "SIGTERM: exit 0" || bad "SIGTERM: exit $rc"
fi
if ((fail)); then
  echo "--- stomp-repo log"; tail -40 "$work/stomp-repo.log"; echo "--- reprepro"; tail -20 "$work/reprepro.out"
fi
exit $fail
