#!/usr/bin/env bash
# The packages on this machine: install (dpkg -i, then apt-get -f install only for declared
# dependencies), files, users, secrets and spools, the units (systemd-analyze verify), every daemon
# started from its packaged config with a notify socket this test owns (READY=1, WATCHDOG=1 at half
# of WATCHDOG_USEC, STOPPING=1 on SIGTERM, journal-friendly lines, idle RSS), the conffile and the
# secrets kept on upgrade, the Ruby github-stomp replaced, remove, purge.
# The machine is left as found: everything installed here is purged at exit, also on failure.
# Holds /tmp/dk-dpkg.lock for its whole run (the puppet module's test takes the same lock).
#   deb_install.sh DEBS_DIR
NAME=deb_install
. "$(dirname "$0")/lib.sh"
DEBS=$(cd "$1" && pwd)

PKGS=(stomp-git stomp-jenkins jenkins-helper github-webhook stomp-broker stompctl deploykit-hooks deploykit-vercmp
  stomp-repo repo-poller reprepro-stomp herald deploy-agent deploy stomp-ci)
DAEMONS=(stomp-broker stomp-git stomp-jenkins github-webhook stomp-repo repo-poller herald deploy-agent stomp-ci)
declare -A USER_OF=([stomp-git]=root [stomp-repo]=root [stomp-jenkins]=stomp-jenkins [github-webhook]=github-webhook
  [stomp-broker]=stomp-broker [repo-poller]=repo-poller [herald]=herald [deploy-agent]=root [stomp-ci]=root)
# The system users the packages create (and purge removes): the daemons' own, and stomp-ci's job user.
SYS_USERS=(stomp-jenkins github-webhook stomp-broker repo-poller herald ci-runner)
declare -A BINS_OF=([stomp-git]=/usr/sbin/stomp-git [stomp-jenkins]=/usr/sbin/stomp-jenkins
  [jenkins-helper]=/usr/bin/jenkins-helper [github-webhook]=/usr/sbin/github-webhook
  [stomp-broker]=/usr/sbin/stomp-broker [stompctl]=/usr/bin/stompctl [deploykit-vercmp]=""
  [deploykit-hooks]="/usr/bin/stomp-post-receive /usr/bin/svn-stomp" [stomp-repo]=/usr/sbin/stomp-repo
  [repo-poller]=/usr/sbin/repo-poller [reprepro-stomp]=/usr/bin/reprepro-stomp [herald]=/usr/sbin/herald
  [deploy-agent]=/usr/sbin/deploy-agent [deploy]=/usr/bin/deploy [stomp-ci]=/usr/sbin/stomp-ci)
declare -A SECRETS_OF=([stomp-git]="bus.passcode git.credentials" [stomp-jenkins]="bus.passcode jenkins.credentials"
  [github-webhook]="bus.passcode github.secret" [stomp-broker]="users.yaml" [stomp-repo]=bus.passcode
  [repo-poller]=bus.passcode [herald]=bus.passcode [deploy-agent]=bus.passcode [stomp-ci]=bus.passcode)

[[ $(id -u) == 0 ]] || fatal "needs root (dpkg -i)"
exec 9>/tmp/dk-dpkg.lock
flock -w 600 9 || fatal "dpkg lock /tmp/dk-dpkg.lock not free within 600 s"
for p in "${PKGS[@]}" github-stomp; do
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == not-installed || -z $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) ]] ||
    fatal "$p is already installed here: this test installs and purges it, so it will not touch a machine that has it"
done
for u in "${SYS_USERS[@]}"; do
  getent passwd "$u" >/dev/null && fatal "user $u exists already: this test would delete it at purge"
done

# What the packages create must not be there yet (a left-over root-owned spool would hide a
# postinst that does not make it). /etc/<daemon> may hold another tool's files: noted, kept.
pre_etc=()
for d in "${DAEMONS[@]}" stomp-postrec svn-stomp jenkins-helper reprepro-stomp deploy; do
  [[ -e /var/lib/$d || -e /var/spool/deploykit/$d ]] && fatal "/var/lib/$d or /var/spool/deploykit/$d exists already"
  [[ -e /etc/$d ]] && pre_etc+=("/etc/$d") && echo "  note: /etc/$d exists already ($(ls -A "/etc/$d" | tr '\n' ' '))"
done
export DEBIAN_FRONTEND=noninteractive
dpkg-query -W -f='${Package}\n' | sort >"$WORK/before.list"
had_spool=false
[[ -d /var/spool/deploykit ]] && had_spool=true

purge_all() {
  dpkg --purge "${PKGS[@]}" github-stomp >>"$WORK/purge.log" 2>&1
  # Whatever apt-get -f install had to add for our Depends (nothing on a machine with the build
  # dependencies), so the machine's package set is what it was.
  dpkg-query -W -f='${Package}\n' | sort >"$WORK/after.list"
  local added
  added=$(comm -13 "$WORK/before.list" "$WORK/after.list")
  [[ -n $added ]] && apt-get purge -y -qq $added >>"$WORK/purge.log" 2>&1
  $had_spool || rmdir /var/spool/deploykit 2>/dev/null
  return 0
}
on_exit purge_all

# ---- install ----------------------------------------------------------------------------------
debs=()
for p in "${PKGS[@]}"; do debs+=("$(ls "$DEBS/${p}_"*.deb | head -1)"); done
if dpkg -i "${debs[@]}" >"$WORK/install.log" 2>&1 ||
    apt-get -f install -y -qq --no-install-recommends >>"$WORK/install.log" 2>&1; then
  pass "dpkg -i of ${#debs[@]} packages"
else
  show "$WORK/install.log" 40
  fatal "install failed"
fi
for p in "${PKGS[@]}"; do
  [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p") == "ii " ]] || fail "$p not installed: $(dpkg-query -W -f='${db:Status-Abbrev}' "$p")"
done

# ---- files ------------------------------------------------------------------------------------
ok=true
for p in "${PKGS[@]}"; do
  for b in ${BINS_OF[$p]}; do
    [[ -x $b ]] || { fail "$p: $b missing"; ok=false; continue; }
    v=$("$b" --version 2>&1) || true
    [[ $v == "$(basename "$b") "[0-9]* ]] || { fail "$b --version: $v"; ok=false; }
    s=1
    [[ $b == /usr/sbin/* ]] && s=8
    [[ -f /usr/share/man/man$s/$(basename "$b").$s.gz ]] || { fail "no man page for $b"; ok=false; }
    man -l --warnings /usr/share/man/man$s/$(basename "$b").$s.gz >/dev/null 2>"$WORK/man.err" || true
    [[ -s $WORK/man.err ]] && { fail "man $b: $(head -3 "$WORK/man.err")"; ok=false; }
  done
  [[ -f /usr/share/doc/$p/copyright && -f /usr/share/doc/$p/changelog.gz ]] || { fail "$p: docs missing"; ok=false; }
done
# The version helper stomp-repo and repo-poller run (not a command: no --version, no man page).
[[ $(printf '2.0\n1:0.1\n1.0~rc1\n' | /usr/lib/deploykit/stomp-repo-vercmp | tr '\n' ' ') == "1 2 0 " ]] \
  || { fail "deploykit-vercmp: /usr/lib/deploykit/stomp-repo-vercmp does not rank versions"; ok=false; }
for d in "${DAEMONS[@]}"; do
  [[ -f /lib/systemd/system/$d.service ]] || { fail "$d: no unit"; ok=false; }
  grep -qx "/etc/$d/$d.yaml" /var/lib/dpkg/info/"$d".conffiles || { fail "$d: config is not a conffile"; ok=false; }
  [[ -L /etc/systemd/system/multi-user.target.wants/$d.service ]] || { fail "$d: not enabled"; ok=false; }
done
for c in stomp-postrec/stomp-postrec.yaml svn-stomp/svn-stomp.yaml; do
  grep -qx "/etc/$c" /var/lib/dpkg/info/deploykit-hooks.conffiles || { fail "$c: not a conffile"; ok=false; }
done
grep -qx /etc/deploy/deploy.yaml /var/lib/dpkg/info/deploy.conffiles || { fail "deploy.yaml: not a conffile"; ok=false; }
$ok && pass "binaries (--version), man pages, docs, units enabled, conffiles"

# ---- users, secrets, state, spools ------------------------------------------------------------
ok=true
for d in "${DAEMONS[@]}"; do
  u=${USER_OF[$d]}
  if [[ $u != root ]]; then
    IFS=: read -r _ _ uid _ _ home shell < <(getent passwd "$u") || { fail "no user $u"; ok=false; continue; }
    ((uid < 1000)) && [[ $home == /var/lib/$d && $shell == /usr/sbin/nologin ]] ||
      { fail "user $u: uid $uid home $home shell $shell"; ok=false; }
  fi
  st=$(stat -c '%U:%G %a' "/var/lib/$d" 2>&1)
  [[ $st == "$u:$u 750" ]] || { fail "/var/lib/$d: $st"; ok=false; }
  if [[ $d != stomp-broker ]]; then
    st=$(stat -c '%U:%G %a' "/var/spool/deploykit/$d" 2>&1)
    [[ $st == "$u:$u 750" ]] || { fail "/var/spool/deploykit/$d: $st"; ok=false; }
  fi
  for s in ${SECRETS_OF[$d]}; do
    st=$(stat -c '%U:%G %a %s' "/etc/$d/$s" 2>&1)
    [[ $st == "$u:$u 600 0" ]] || { fail "/etc/$d/$s: $st (want $u:$u 600, empty)"; ok=false; }
  done
  dpkg -L "$d" | grep -qE "^/etc/$d/(bus.passcode|.*secret|.*credentials|users.yaml)$" && { fail "$d ships a secret"; ok=false; }
done
# herald's users-file: a secret the daemon requires to be a map, so it starts as {}.
st=$(stat -c '%U:%G %a' /etc/herald/users.yaml 2>&1)
[[ $st == "herald:herald 600" && $(cat /etc/herald/users.yaml) == "{}" ]] ||
  { fail "/etc/herald/users.yaml: $st, content $(head -c 40 /etc/herald/users.yaml)"; ok=false; }
# stomp-ci's job user: a system user without a shell or home of its own.
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd ci-runner) || { fail "no user ci-runner"; ok=false; }
((uid < 1000)) && [[ $home == /nonexistent && $shell == /usr/sbin/nologin ]] ||
  { fail "user ci-runner: uid $uid home $home shell $shell"; ok=false; }
$ok && pass "system users (nologin, home in /var/lib), state and spools 0750, secrets 0600 and empty"

# ---- units ------------------------------------------------------------------------------------
units=()
for d in "${DAEMONS[@]}"; do units+=("/lib/systemd/system/$d.service"); done
if systemd-analyze verify --man=no "${units[@]}" >"$WORK/verify.log" 2>&1 && ! grep -q . "$WORK/verify.log"; then
  pass "systemd-analyze verify: ${#units[@]} units clean"
else
  show "$WORK/verify.log"
  fail "systemd-analyze verify"
fi
# The root daemons' bounding sets must let them do their job (setpriv applies the unit's set):
# stomp-git, deploy-agent, stomp-ci drop to a user and still signal that worker (a deadline,
# shutdown; root without CAP_KILL cannot); deploy-agent and stomp-ci hand a new directory to that
# user (CAP_CHOWN); stomp-ci removes a job user's 0700 work directory (CAP_DAC_OVERRIDE).
bset_of() { sed -n 's/^CapabilityBoundingSet=//p' "/lib/systemd/system/$1.service" | tr 'A-Z' 'a-z' |
  sed 's/cap_//g; s/ /,+/g; s/^/-all,+/'; }
declare -A CAN_OF=([stomp-git]="drop" [deploy-agent]="drop chown" [stomp-ci]="drop chown rmtree")
for d in stomp-git deploy-agent stomp-ci; do
  bset=$(bset_of "$d")
  tdir=$(mktemp -d "$WORK/bset.XXXXXX")
  if out=$(setpriv --bounding-set="$bset" "$PY" - "$tdir" ${CAN_OF[$d]} 2>&1 <<'PYEOF'
import os, signal, sys, time, shutil
d, can = sys.argv[1], sys.argv[2:]
if "chown" in can:
    os.mkdir(d + "/release"); os.chown(d + "/release", 65534, 65534)
if "rmtree" in can:
    os.makedirs(d + "/run/sub"); open(d + "/run/sub/f", "w").close()
    os.chmod(d + "/run/sub", 0o700); os.chmod(d + "/run", 0o700)  # before the chown: no CAP_FOWNER
    for p in (d + "/run/sub/f", d + "/run/sub", d + "/run"): os.chown(p, 65534, 65534)
    shutil.rmtree(d + "/run")
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setgid(65534); os.setuid(65534); os.write(w, b"x"); time.sleep(10); os._exit(0)
os.read(r, 1)  # the child runs as nobody now
os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0); print("ok")
PYEOF
  ) && [[ $out == ok ]]; then
    pass "$d's CapabilityBoundingSet ($bset): ${CAN_OF[$d]// /, }"
  else
    fail "$d's CapabilityBoundingSet ($bset) cannot ${CAN_OF[$d]}: $out"
  fi
done
for d in "${DAEMONS[@]}"; do
  score=$(systemd-analyze security --offline=true --no-pager "/lib/systemd/system/$d.service" 2>/dev/null |
    sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) \(.*\)$/\1 \2/p')
  echo "  security: $d.service $score"
done

# ---- every daemon from its packaged config ----------------------------------------------------
chmod 0755 "$WORK"
port=$(free_port)
read -r hook_port closed_port herald_port <<<"$(free_ports 3)"
conf() { # DAEMON: its packaged config, pointed at this test's broker and ports
  sed -e "s|^rserver: stomp://localhost:61613|rserver: stomp://127.0.0.1:$port|" \
    -e "s|^listen: 127.0.0.1:61613|listen: 127.0.0.1:$port|" \
    -e "s|^listen: 127.0.0.1:4567|listen: 127.0.0.1:$hook_port|" \
    -e "s|^listen: 127.0.0.1:8470|listen: 127.0.0.1:$herald_port|" \
    -e "s|url: http://apt.example.invalid/debian|url: http://127.0.0.1:$closed_port/debian|" \
    "/etc/$1/$1.yaml" >"$WORK/$1.yaml"
  chmod 0644 "$WORK/$1.yaml"
}
declare -A PID_OF T_START
start_daemon() { # DAEMON
  local d=$1 u=${USER_OF[$1]} jid
  conf "$d"
  notify_listener "$WORK/$d.notify" "$WORK/$d.events"
  chmod 0666 "$WORK/$d.notify"
  : >"$WORK/$d.log"
  jid=$(stat -c '%d:%i' "$WORK/$d.log")
  local run=()
  [[ $u != root ]] && run=(setpriv --reuid="$u" --regid="$u" --init-groups --inh-caps=-all --)
  # WATCHDOG_USEC 400 ms: a WATCHDOG=1 every 200 ms; JOURNAL_STREAM names the log file, as
  # systemd's does the journal's stream, so lines must come without a timestamp of their own.
  T_START[$d]=$EPOCHREALTIME # before it exists: its life is never underestimated
  env NOTIFY_SOCKET="$WORK/$d.notify" WATCHDOG_USEC=400000 JOURNAL_STREAM="$jid" \
    "${run[@]}" "/usr/sbin/$d" -c "$WORK/$d.yaml" 2>>"$WORK/$d.log" &
  PID_OF[$d]=$!
  track "${PID_OF[$d]}"
}
ready_or_exited() { has_text "$WORK/$1.events" "READY=1" || exited "${PID_OF[$1]}"; }
watchdogs() { local n; n=$(grep -c '^WATCHDOG=1$' "$WORK/$1.events" 2>/dev/null); echo "${n:-0}"; }

# The consumers first, with the broker not yet there: they must not say READY=1 before it is.
for d in "${DAEMONS[@]}"; do [[ $d == stomp-broker ]] || start_daemon "$d"; done
refused() { local d; for d in "${DAEMONS[@]}"; do
  [[ $d == stomp-broker ]] || has_text "$WORK/$d.log" "cannot connect to stomp://127.0.0.1:$port" || return 1
done; }
wait_for 20 refused || fail "not every daemon tried the broker: $(grep -L "cannot connect" "$WORK"/*.log | tr '\n' ' ')"
early=$(grep -l READY=1 "$WORK"/*.events 2>/dev/null)
[[ -z $early ]] && pass "no READY=1 while the broker is down" || fail "READY=1 without a broker: $early"

start_daemon stomp-broker
wait_for 15 ready_or_exited stomp-broker
if has_text "$WORK/stomp-broker.events" READY=1 && listening "$port"; then
  pass "stomp-broker: READY=1 from the packaged config, listening"
else
  show "$WORK/stomp-broker.log"
  fatal "stomp-broker did not become ready"
fi
for d in "${DAEMONS[@]}"; do
  [[ $d == stomp-broker ]] && continue
  wait_for 30 ready_or_exited "$d"
  if has_text "$WORK/$d.events" READY=1; then
    pass "$d: READY=1 once the broker is up ($(grep -m1 -o 'STATUS=.*' "$WORK/$d.events"))"
  else
    show "$WORK/$d.log"
    show "$WORK/$d.events"
    fail "$d: no READY=1"
  fi
done
# READY only once connected and subscribed: nothing before it but STATUS lines.
for d in "${DAEMONS[@]}"; do
  first=$(grep -m1 -n 'READY=1' "$WORK/$d.events" | cut -d: -f1)
  [[ -n $first ]] && head -n $((first - 1)) "$WORK/$d.events" | grep -qv '^STATUS=\|^WATCHDOG=1$' &&
    fail "$d: before READY=1: $(head -n $((first - 1)) "$WORK/$d.events" | tr '\n' '|')"
done

# The watchdog: at half of WATCHDOG_USEC (200 ms): five more arrive from each daemon here; that
# none came faster than the interval allows is checked over the daemon's whole life, once its
# STOPPING=1 (and so every earlier datagram) has been read.
declare -A n0
for d in "${DAEMONS[@]}"; do n0[$d]=$(watchdogs "$d"); done
five_more() { local d; for d in "${DAEMONS[@]}"; do (($(watchdogs "$d") >= n0[$d] + 5)) || return 1; done; }
if wait_for 20 five_more; then
  pass "WATCHDOG=1 keeps coming from every daemon"
else
  for d in "${DAEMONS[@]}"; do echo "  $d: $(($(watchdogs "$d") - n0[$d])) more WATCHDOG=1"; done
  fail "WATCHDOG=1 stopped"
fi

# Journal-friendly lines: a <priority> prefix, no timestamp of our own.
for d in "${DAEMONS[@]}"; do
  if grep -q . "$WORK/$d.log" && ! grep -qvE '^<[0-7]>' "$WORK/$d.log" && ! grep -qE '^<[0-7]>[0-9]{4}-[0-9]{2}-' "$WORK/$d.log"; then
    :
  else
    show "$WORK/$d.log" 5
    fail "$d: log lines under JOURNAL_STREAM are not <N>message"
  fi
done
pass "log lines under JOURNAL_STREAM: <priority>message, no duplicate timestamp"
# The packaged configs start clean: no warning or worse once the broker is up (repo-poller's example
# repository is unreachable by design; the consumers' refused connects came before the broker).
for d in "${DAEMONS[@]}"; do
  [[ $d == repo-poller ]] && continue
  w=$(grep -E '^<[0-4]>' "$WORK/$d.log" | grep -v "cannot connect to stomp://127.0.0.1:$port" | head -3)
  [[ -z $w ]] || fail "$d: warnings from the packaged config: $w"
done

# Idle RSS, for packaging/README.md.
for d in "${DAEMONS[@]}"; do
  echo "  rss: $d $(awk '/^VmRSS/ {print $2 " " $3}' "/proc/${PID_OF[$d]}/status" 2>/dev/null)"
done

# SIGTERM: STOPPING=1, then exit 0. The broker last (the others would only wait for it).
for d in "${DAEMONS[@]}" ; do
  [[ $d == stomp-broker ]] && continue
  kill -TERM "${PID_OF[$d]}"
done
for d in "${DAEMONS[@]}"; do
  [[ $d == stomp-broker ]] && continue
  wait_exit 20 "${PID_OF[$d]}"
  rc=$RC
  if [[ $rc == 0 ]] && has_line "$WORK/$d.events" STOPPING=1; then
    pass "$d: STOPPING=1 on SIGTERM, exit 0"
  else
    show "$WORK/$d.log" 5
    fail "$d: SIGTERM: exit $rc, STOPPING=1 $(has_line "$WORK/$d.events" STOPPING=1 && echo sent || echo missing)"
  fi
done
kill -TERM "${PID_OF[stomp-broker]}"
wait_exit 20 "${PID_OF[stomp-broker]}"
rc=$RC
if [[ $rc == 0 ]] && has_line "$WORK/stomp-broker.events" STOPPING=1; then
  pass "stomp-broker: STOPPING=1 on SIGTERM, exit 0"
else
  fail "stomp-broker: SIGTERM: exit $rc"
fi
# Never faster than every 200 ms (a late ping is the machine's load; an early one is a bug).
t_end=$EPOCHREALTIME
for d in "${DAEMONS[@]}"; do
  n=$(watchdogs "$d")
  life_ms=$(((${t_end/./} - ${T_START[$d]/./}) / 1000))
  if ((n <= life_ms / 200 + 1)); then
    pass "$d: $n WATCHDOG=1 in its $life_ms ms: no faster than every 200 ms"
  else
    fail "$d: $n WATCHDOG=1 in $life_ms ms: faster than every 200 ms"
  fi
done
# What the daemons wrote as their users stays theirs (nothing root-owned in their directories).
for d in stomp-jenkins github-webhook repo-poller herald; do
  bad_files=$(find "/var/lib/$d" "/var/spool/deploykit/$d" ! -user "$d" 2>/dev/null)
  [[ -z $bad_files ]] || fail "$d: files not owned by $d: $bad_files"
done

# ---- upgrade: edited conffile and filled secrets are kept --------------------------------------
echo "# edited by deb_install" >>/etc/stomp-jenkins/stomp-jenkins.yaml
echo "s3cret" >/etc/stomp-jenkins/bus.passcode
chmod 0640 /var/lib/stomp-jenkins # a site's choice
edited=$(sha256sum </etc/stomp-jenkins/stomp-jenkins.yaml)
newer=()
for deb in "${debs[@]}"; do
  # The same build as a newer version (what a rebuild with a bumped version gives).
  rm -rf "$WORK/repack"
  dpkg-deb -R "$deb" "$WORK/repack"
  sed -i 's/^Version: \(.*\)$/Version: \1+1/' "$WORK/repack/DEBIAN/control"
  dpkg-deb --root-owner-group -b "$WORK/repack" "$WORK/" >/dev/null
done
for p in "${PKGS[@]}"; do newer+=("$(ls "$WORK/${p}_"*+1_*.deb)"); done
if dpkg -i --force-confold "${newer[@]}" >"$WORK/upgrade.log" 2>&1 </dev/null; then
  v=$(dpkg-query -W -f='${Version}' stomp-jenkins)
  if [[ $v == *+1 && $(sha256sum </etc/stomp-jenkins/stomp-jenkins.yaml) == "$edited" &&
    $(cat /etc/stomp-jenkins/bus.passcode) == s3cret && $(stat -c %a /var/lib/stomp-jenkins) == 640 &&
    $(stat -c '%U %a' /etc/stomp-jenkins/bus.passcode) == "stomp-jenkins 600" ]]; then
    pass "upgrade to $v: edited conffile, secret and state directory mode kept"
  else
    fail "upgrade to $v: config or secret changed"
  fi
else
  show "$WORK/upgrade.log"
  fail "upgrade failed"
fi

# ---- the Ruby github-stomp is replaced --------------------------------------------------------
dpkg --purge github-webhook >/dev/null 2>&1
mkdir -p "$WORK/gs/DEBIAN" "$WORK/gs/usr/sbin"
printf '#!/bin/sh\nexit 0\n' >"$WORK/gs/usr/sbin/github-stomp"
chmod 0755 "$WORK/gs/usr/sbin/github-stomp"
printf 'Package: github-stomp\nVersion: 2.1\nArchitecture: all\nMaintainer: x <x@example.org>\nDescription: the Ruby one\n' \
  >"$WORK/gs/DEBIAN/control"
dpkg-deb --root-owner-group -b "$WORK/gs" "$WORK/github-stomp.deb" >/dev/null
dpkg -i "$WORK/github-stomp.deb" >"$WORK/gs.log" 2>&1
if apt-get install -y -qq --no-install-recommends "$(ls "$WORK"/github-webhook_*+1_*.deb)" >>"$WORK/gs.log" 2>&1 &&
    [[ $(dpkg-query -W -f='${db:Status-Status}' github-stomp 2>/dev/null) != installed &&
      $(dpkg-query -W -f='${db:Status-Status}' github-webhook) == installed ]]; then
  pass "github-webhook replaces an installed github-stomp (apt removes it: Breaks/Replaces)"
else
  show "$WORK/gs.log"
  fail "github-stomp not replaced"
fi

# ---- remove, then purge -----------------------------------------------------------------------
dpkg -r "${PKGS[@]}" >"$WORK/remove.log" 2>&1 || { show "$WORK/remove.log"; fail "dpkg -r"; }
ok=true
for p in "${PKGS[@]}"; do for b in ${BINS_OF[$p]}; do [[ -e $b ]] && { fail "$b left after remove"; ok=false; }; done; done
for d in "${DAEMONS[@]}"; do
  [[ -f /etc/$d/$d.yaml && -d /var/lib/$d ]] || { fail "$d: config or state gone at remove (only purge removes them)"; ok=false; }
done
getent passwd stomp-jenkins >/dev/null || { fail "user removed at remove"; ok=false; }
[[ $(cat /etc/stomp-jenkins/bus.passcode 2>/dev/null) == s3cret ]] || { fail "secret gone at remove"; ok=false; }
$ok && pass "remove: binaries gone; configs, secrets, state and users kept"

dpkg --purge "${PKGS[@]}" >"$WORK/purge.log" 2>&1 || { show "$WORK/purge.log"; fail "dpkg --purge"; }
left=()
for d in "${DAEMONS[@]}"; do
  for f in "/etc/$d/$d.yaml" "/var/lib/$d" "/var/spool/deploykit/$d" "/lib/systemd/system/$d.service" \
    "/etc/systemd/system/multi-user.target.wants/$d.service" "/etc/systemd/system/$d.service" \
    "/var/lib/systemd/deb-systemd-helper-enabled/$d.service.dsh-also" \
    "/var/lib/systemd/deb-systemd-helper-masked/$d.service"; do
    [[ -e $f || -L $f ]] && left+=("$f")
  done
done
for u in "${SYS_USERS[@]}"; do
  getent passwd "$u" >/dev/null && left+=("user $u")
  getent group "$u" >/dev/null && left+=("group $u")
done
for d in "${DAEMONS[@]}"; do for f in ${SECRETS_OF[$d]}; do [[ -e /etc/$d/$f ]] && left+=("/etc/$d/$f"); done; done
[[ -e /etc/herald/users.yaml ]] && left+=(/etc/herald/users.yaml)
for c in "${DAEMONS[@]}" stomp-postrec svn-stomp jenkins-helper reprepro-stomp deploy; do
  [[ -e /etc/$c && " ${pre_etc[*]} " != *" /etc/$c "* ]] && left+=("/etc/$c")
done
if ((${#left[@]} == 0)); then
  pass "purge: configs, secrets, state, spools, units' state and users gone"
else
  fail "purge left: ${left[*]}"
fi
finish
