#!/usr/bin/env bash
# herald's alerts end to end (docs/herald.md#alerts), as neelix acted for ps.herald: the embedded
# broker, herald with an `alerts:` config, a local SMTP server that requires STARTTLS and AUTH
# (aiosmtpd with a throwaway certificate), a plain-HTTP webhook receiver whose first answer is a
# 503 (herald retries), and a real daemon (stomp-jenkins, heartbeat-interval 1):
#   - an SMTP auth file readable by others stops --check-config with a clear error;
#   - stop stomp-jenkins -> a heartbeat-loss alert within max-age + one check interval: an `alert`
#     event on the bus, a mail (over STARTTLS, authenticated) and a webhook POST;
#   - start it again -> the recovery notice (event and mail);
#   - a pattern rule matched by three legacy notices fires once per cool-down;
#   - herald restarted while the daemon is down: the source is still watched (state file and
#     herald's database), so its loss is alerted again.
# Every wait is on a file, a message or a metric, with a deadline.
#   tests/integration/herald_alerts.sh STOMP_BROKER STOMPCTL HERALD STOMP_JENKINS
set -uo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") herald=$(realpath "$3") sj=$(realpath "$4")
NAME=herald_alerts
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || fatal "python3-aiosmtpd is not installed (scripts/deps.sh)"
command -v openssl >/dev/null || fatal "openssl is not installed (scripts/deps.sh)"
w=$WORK
read -r bport hport aport sport wport jport < <(free_ports 6)
url="stomp://127.0.0.1:$bport"
metric() { http_get "$aport" /metrics | awk -v m="$1" '$1 == m {print $2}'; }
metric_is() { [[ $(metric "$1") == "$2" ]]; }
files() { find "$1" -maxdepth 1 -type f -name "$2" 2>/dev/null | sort; }
nfiles() { files "$1" "$2" | wc -l; }
has_files() { (($(nfiles "$1" "$2") >= $3)); }
alerts_like() { grep -c -- "$1" "$w/alerts.out" 2>/dev/null || true; }
has_alert() { (($(alerts_like "$1") >= ${2:-1})); }

# A throwaway certificate for the SMTP server's STARTTLS; herald trusts it through ca-file.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$w/smtp.key" -out "$w/smtp.crt" -days 1 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>"$w/openssl.err" || fatal "openssl: $(cat "$w/openssl.err")"
printf 'herald:smtp-s3cret\n' >"$w/smtp-auth"
chmod 644 "$w/smtp-auth"

bg /usr/bin/python3 "$ROOT_DIR/tests/support/alert_sinks.py" --dir "$w/sink" --smtp-port "$sport" --hook-port "$wport" \
  --cert "$w/smtp.crt" --key "$w/smtp.key" --user herald --password smtp-s3cret --hook-fail 1 2>"$w/sink.log"
wait_file "$w/sink/ready" 15 || fatal "sinks did not start: $(cat "$w/sink.log")"

cat >"$w/herald.yaml" <<YAML
rserver: $url
database: $w/herald.db
listen: 127.0.0.1:$hport
admin-listen: 127.0.0.1:$aport
proxy-user-header: X-Remote-User
trusted-proxies: [127.0.0.1]
heartbeat-interval: 0
alerts:
  check-interval: 1s
  state-file: $w/alerts.json
  heartbeat:
    - name: daemons
      daemon: stomp-jenkins
      max-age: 3s
      cool-down: 0s
  patterns:
    - name: disk-full
      type: notice
      text: 'problem: disk full'
      cool-down: 1h
      actions: [bus, webhook]
    - name: marker
      type: notice
      text: 'marker [0-9]+'
      cool-down: 0s
      actions: [bus]
  mail:
    url: smtp://127.0.0.1:$sport
    from: herald@example.org
    to: [ops@example.org]
    auth-file: $w/smtp-auth
    ca-file: $w/smtp.crt
    timeout: 10s
    retries: 2
    retry-delay: 200ms
  webhook:
    url: http://127.0.0.1:$wport/hook
    timeout: 5s
    retries: 2
    retry-delay: 200ms
YAML

# 1. A secret file others can read: refused, naming the key and the mode, before anything runs.
rc=0; "$herald" --check-config -c "$w/herald.yaml" >"$w/check.out" 2>&1 || rc=$?
if [[ $rc == 2 ]] && has_text "$w/check.out" "alerts.mail.auth-file" && has_text "$w/check.out" "has mode 0644" \
  && ! has_text "$w/check.out" "smtp-s3cret"; then
  pass "an SMTP auth file with mode 0644 is refused (exit 2, key and mode named, secret not shown)"
else
  fail "check-config with a 0644 auth file: rc=$rc $(cat "$w/check.out")"
fi
chmod 600 "$w/smtp-auth"
rc=0; "$herald" --check-config -c "$w/herald.yaml" >"$w/check.out" 2>&1 || rc=$?
[[ $rc == 0 ]] && pass "--check-config accepts the alert config" || fatal "check-config: rc=$rc $(cat "$w/check.out")"

embedded_broker "$broker" "$bport" "$w/broker.log" || fatal "broker did not start"
start_subscriber alerts "$stompctl" -u "$url" subscribe -t /topic/deploykit.alerts || fatal "alert subscriber"
bg "$herald" -c "$w/herald.yaml" 2>"$w/herald.log"
hpid=$BG_PID
herald_ready() { [[ $(http_get "$aport" /readyz 2>/dev/null) == 200* ]]; }
wait_for 20 herald_ready || fatal "herald not ready: $(http_get "$aport" /readyz) $(tail -5 "$w/herald.log")"

printf 'rserver: %s\njenkins-url: http://127.0.0.1:9\nheartbeat-interval: 1\njenkins-projects:\n  r: {project: x}\n' \
  "$url" >"$w/sj.yaml"
start_sj() { bg "$sj" -c "$w/sj.yaml" 2>>"$w/sj.log"; sjpid=$BG_PID; }
start_sj
wait_for 15 metric_is herald_alerts_sources 1 && pass "herald watches stomp-jenkins from its heartbeats" \
  || fatal "no heartbeat source after 15 s: $(metric herald_alerts_sources) $(tail -5 "$w/herald.log")"

# 2. Heartbeat loss: stop the daemon; the alert comes within max-age (3 s) + one check (1 s).
stop_pid "$sjpid"
wait_for 20 has_alert '"rule":"daemons","source_host":"[^"]*","state":"firing"' || fatal "no firing alert event: $(tail -5 "$w/herald.log")"
/usr/bin/python3 - "$w/alerts.out" <<'PY' && pass "alert event: heartbeat rule daemons firing for stomp-jenkins, within max-age + check interval" || fail "alert event: $(cat "$w/alerts.out")"
import json, sys
from datetime import datetime
evs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
a = [e for e in evs if e["type"] == "alert" and e["data"]["state"] == "firing"][0]
d = a["data"]
assert d["rule"] == "daemons" and d["kind"] == "heartbeat" and d["daemon"] == "stomp-jenkins", d
ts = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").timestamp()
late = ts(a["time"]) - ts(d["last_seen"])
assert 3 <= late <= 3 + 1 + 1, late  # max-age, one check interval, one second of timestamp rounding
PY
wait_for 20 has_files "$w/sink/mail" '*.eml' 1 || fatal "no mail: $(tail -5 "$w/herald.log")"
m=$(files "$w/sink/mail" '*.eml' | head -1)
if has_text "$m" "tls=True auth=True" && has_text "$m" "to=ops@example.org" \
  && grep -q '^Subject: \[herald\] FIRING daemons: stomp-jenkins on .*: no heartbeat' "$m" \
  && has_text "$m" "Auto-Submitted: auto-generated"; then
  pass "mail over STARTTLS with AUTH: FIRING daemons: stomp-jenkins ..."
else
  fail "mail: $(cat "$m")"
fi
wait_for 20 has_files "$w/sink/hook" '*.json' 1 || fatal "no webhook POST"
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["state"]=="firing" and d["daemon"]=="stomp-jenkins", d' \
  "$(files "$w/sink/hook" '*.json' | head -1)" && pass "webhook POST (after one 503, retried) with the JSON alert" \
  || fail "webhook: $(cat "$w"/sink/hook/*.json)"
wait_for 10 metric_is 'herald_alerts_notices_total{channel="webhook",result="sent"}' 1 \
  && metric_is 'herald_alerts_notices_total{channel="webhook",result="failed"}' 0 \
  && metric_is 'herald_alerts_notices_total{channel="mail",result="sent"}' 1 \
  && pass "metrics: webhook and mail sent once, nothing failed" || fail "metrics: $(http_get "$aport" /metrics | grep alerts_)"

# 3. Recovery: start the daemon again.
start_sj
wait_for 20 has_alert '"state":"recovered"' && pass "recovery alert event once heartbeats are back" \
  || fail "no recovery event: $(cat "$w/alerts.out")"
wait_for 20 has_files "$w/sink/mail" '*.eml' 2 && grep -q '^Subject: \[herald\] RECOVERED daemons: stomp-jenkins' \
  "$(files "$w/sink/mail" '*.eml' | tail -1)" && pass "recovery mail" || fail "recovery mail: $(cat "$w"/sink/mail/*.eml)"

# 4. A pattern rule fires once per cool-down: three matching notices, then a marker that proves
#    herald processed them (alerts are published in order).
for i in 1 2 3; do
  "$stompctl" -u "$url" publish -t /topic/future.events.stomp-git -H "subject:Talking to eventbot" \
    -m "web0$i  problem: disk full" >>"$w/pub.out" 2>&1 || fail "publish $i: $(cat "$w/pub.out")"
done
"$stompctl" -u "$url" publish -t /topic/future.events.stomp-git -H "subject:Talking to eventbot" -m "marker 1" >>"$w/pub.out" 2>&1
wait_for 20 has_alert '"rule":"marker"' || fatal "marker alert never came: $(tail -5 "$w/herald.log")"
n=$(alerts_like '"rule":"disk-full"')
[[ $n == 1 ]] && pass "pattern rule disk-full: three matches, one alert within the cool-down" \
  || fail "disk-full alerts: $n; $(cat "$w/alerts.out")"

# 5. Restart: herald stops, then the daemon; the restarted herald still watches it.
stop_pid "$hpid" 10
stop_pid "$sjpid"
[[ -s $w/alerts.json ]] && grep -q '"daemon":"stomp-jenkins"' "$w/alerts.json" \
  && pass "the last-seen table is in the state file" || fail "state file: $(cat "$w/alerts.json")"
bg "$herald" -c "$w/herald.yaml" 2>>"$w/herald.log"
hpid=$BG_PID
wait_for 20 has_alert '"rule":"daemons","source_host":"[^"]*","state":"firing"' 2 && pass "after a restart the known source is still watched: its loss is alerted" \
  || fail "no second firing alert after the restart: $(cat "$w/alerts.out"; tail -5 "$w/herald.log")"
stop_pid "$hpid" 10
finish
