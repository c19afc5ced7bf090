#!/bin/bash
# puppet.apply: `puppet apply` of tests/puppet/site.pp (every class whose package the packaging
# build makes, data in tests/puppet/hiera/) on this machine, against the .debs the deb_packages
# fixture built into BUILD/debs.
#
# The packages come from a local apt repository (a `file:` source, `[trusted=yes]` only because
# it is the test's own directory), installed by Puppet's default apt provider — what a site does
# with its reprepro repository — rather than `provider => dpkg` with `source =>`, which would
# leave dependencies unresolved and bypass the apt policy a site's hosts run with.
#
# Checked: the rendered configs are tests/puppet/expected/*.yaml; each is accepted by its
# daemon's --check-config run as the daemon's own user (the secret-file policy is the runtime's);
# the secret files are 0600 and owned by that user; the git hook is installed through
# `stomp-post-receive --install` (an existing hook chained); the units are enabled. No systemd
# runs here, so the example sets deploykit::systemd_offline: enablement through systemctl's
# offline mode (the unit files), no start. Then a second apply changes nothing
# (--detailed-exitcodes 0), and a third one after drift (a unit disabled, a config and a secret
# edited) puts everything back.
#
# The machine is left as found: the packages purged, the users the packages created removed,
# the apt source and its lists removed, Puppet's state in the work dir only. It refuses to run
# if one of the packages is already installed (it would purge a real installation). Holds
# /tmp/dk-dpkg.lock (as packaging.install does) for its whole run.
#
# Usage: apply.sh SOURCE_DIR BUILD_DIR
NAME=puppet_apply
. "$(dirname "$0")/../integration/lib.sh"
SRC=${1:?usage: apply.sh SOURCE_DIR BUILD_DIR}
BUILD=${2:?usage: apply.sh SOURCE_DIR BUILD_DIR}
DEBS=$BUILD/debs
export DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

PKGS=(stomp-git stomp-jenkins github-webhook stomp-broker stomp-repo repo-poller jenkins-helper deploykit-hooks
  deploykit-vercmp)
UNITS=(stomp-git stomp-jenkins github-webhook stomp-broker stomp-repo repo-poller)
USERS=(stomp-jenkins github-webhook stomp-broker repo-poller)
ETC=(stomp-git stomp-jenkins github-webhook stomp-broker stomp-repo repo-poller jenkins-helper stomp-postrec svn-stomp)
LIST=/etc/apt/sources.list.d/deploykit-puppet-apply-test.list

[[ $(id -u) == 0 ]] || fatal "needs root (it installs packages)"
# The packaging tests install and purge the same packages: one at a time, also across ctest runs.
exec 9>/tmp/dk-dpkg.lock
flock -w 600 9 || fatal "dpkg lock /tmp/dk-dpkg.lock not free within 600 s"
for p in "${PKGS[@]}"; do
  compgen -G "$DEBS/${p}_*.deb" >/dev/null || fatal "no $DEBS/${p}_*.deb (the deb_packages fixture builds them)"
  if dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^.[ic]'; then
    fatal "$p is installed on this machine: not touching it (purge it first to run this test)"
  fi
done

# What the module writes: the configs, and the secret files with the user that must own them.
declare -A CONF=(
  [stomp-git]=/etc/stomp-git/stomp-git.yaml [stomp-jenkins]=/etc/stomp-jenkins/stomp-jenkins.yaml
  [github-webhook]=/etc/github-webhook/github-webhook.yaml [stomp-broker]=/etc/stomp-broker/stomp-broker.yaml
  [stomp-repo]=/etc/stomp-repo/stomp-repo.yaml [repo-poller]=/etc/repo-poller/repo-poller.yaml
  [jenkins-helper]=/etc/jenkins-helper/jenkins-helper.yaml [stomp-post-receive]=/etc/stomp-postrec/stomp-postrec.yaml
  [svn-stomp]=/etc/svn-stomp/svn-stomp.yaml)
declare -A SECRET=(
  [/etc/stomp-git/bus.passcode]=root [/etc/stomp-git/signing.keys]=root
  [/etc/stomp-jenkins/bus.passcode]=stomp-jenkins [/etc/stomp-jenkins/jenkins.credentials]=stomp-jenkins
  [/etc/stomp-jenkins/signing.keys]=stomp-jenkins [/etc/github-webhook/github.secret]=github-webhook
  [/etc/github-webhook/bus.passcode]=github-webhook [/etc/stomp-broker/users.yaml]=stomp-broker
  [/etc/stomp-repo/bus.passcode]=root [/etc/repo-poller/bus.passcode]=repo-poller
  [/etc/jenkins-helper/bus.passcode]=nobody [/etc/stomp-postrec/bus.passcode]=nobody
  [/etc/stomp-postrec/signing.keys]=nobody [/etc/svn-stomp/bus.passcode]=nobody)

# --- leave the machine as found ----------------------------------------------------------------
new_users=() new_etc=()
for u in "${USERS[@]}"; do getent passwd "$u" >/dev/null || new_users+=("$u"); done
for d in "${ETC[@]/#//etc/}" /var/lib/{stomp-git,stomp-jenkins,github-webhook,stomp-broker,stomp-repo,repo-poller} \
  /var/spool/deploykit; do
  [[ -e $d ]] || new_etc+=("$d")
done
[[ -e $LIST ]] && fatal "$LIST exists (a previous run still going?)"
cleanup() {
  apt-get purge -y -q "${PKGS[@]}" >"$WORK/purge.log" 2>&1 || { echo "purge failed:"; tail -5 "$WORK/purge.log"; }
  local u d
  for u in "${new_users[@]}"; do getent passwd "$u" >/dev/null && userdel "$u"; done
  for u in "${new_users[@]}"; do getent group "$u" >/dev/null && groupdel "$u"; done
  for d in "${new_etc[@]}"; do rm -rf "$d"; done
  # Also where a directory was there before (a package installed by hand and purged since):
  # what the module wrote, nothing else.
  rm -f "${CONF[@]}" "${!SECRET[@]}" /etc/{stomp-git,stomp-jenkins,github-webhook,stomp-repo,repo-poller,jenkins-helper,stomp-postrec,svn-stomp}/signing.keys
  for d in "${ETC[@]/#//etc/}"; do [[ -d $d ]] && rmdir --ignore-fail-on-non-empty "$d"; done
  rm -f "$LIST" /var/lib/apt/lists/*deploykit-puppet-apply-test* "/var/lib/apt/lists/_${WORK//\//_}"_*
  true
}
on_exit cleanup

# --- a local apt repository with the built packages --------------------------------------------
chmod 755 "$WORK" # apt's file: method and the hook user read below it
mkdir -p "$WORK/apt"
cp "$DEBS"/*.deb "$WORK/apt/"
(cd "$WORK/apt" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>"$WORK/scan.log") || fatal "dpkg-scanpackages failed"
echo "deb [trusted=yes] file:$WORK/apt ./" >"$LIST"
apt-get update -q -o Dir::Etc::sourcelist="$LIST" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 \
  >"$WORK/apt-update.log" 2>&1 || { show "$WORK/apt-update.log"; fatal "apt-get update of the local source failed"; }

# --- git repositories for the hook: one plain, one with a hook of its own -----------------------
GIT=$WORK/git
git init -q --bare "$GIT/site.git"
git init -q --bare "$GIT/more/api.git"
printf '#!/bin/sh\nexit 0\n' >"$GIT/more/api.git/hooks/post-receive"
chmod 755 "$GIT/more/api.git/hooks/post-receive"
mkdir -p "$GIT/svn"
svnadmin create "$GIT/svn/webapp"
chown -R nobody:nogroup "$GIT"

# --- puppet apply ------------------------------------------------------------------------------
PUPPET=(puppet apply --detailed-exitcodes --color=false --vardir "$WORK/pvar" --confdir "$WORK/pconf"
  --codedir "$WORK/pcode" --logdir "$WORK/plog" --rundir "$WORK/prun"
  --modulepath "$SRC/puppet" --hiera_config "$SRC/tests/puppet/hiera.yaml" "$SRC/tests/puppet/site.pp")
apply() { # LOG: runs puppet; RC is --detailed-exitcodes' status (0 nothing changed, 2 changes, 4/6 failures)
  local t=$EPOCHREALTIME
  FACTER_dk_git_root=$GIT "${PUPPET[@]}" >"$1" 2>&1
  RC=$?
  echo "  ($1: $(elapsed "$t"), status $RC)"
}

apply "$WORK/apply1.log"
if ((RC == 2)); then pass "first apply: converged with changes, no failures"; else show "$WORK/apply1.log" 40; fatal "first apply: status $RC (2 expected)"; fi

for p in "${PKGS[@]}"; do
  dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || bad "$p not installed"
done
pass "packages installed from the local apt source: ${PKGS[*]}"

# Rendered configs: exactly the expected files.
for d in "${!CONF[@]}"; do
  f=${CONF[$d]}
  if diff -u "$SRC/tests/puppet/expected/$(basename "$f")" "$f" >"$WORK/diff-$d.log"; then
    pass "$f as expected"
  else
    bad "$f differs from tests/puppet/expected:"; show "$WORK/diff-$d.log" 30
  fi
done

# Each config accepted by its daemon, run as the user the unit runs it as.
declare -A RUNAS=([stomp-git]=root [stomp-jenkins]=stomp-jenkins [github-webhook]=github-webhook
  [stomp-broker]=stomp-broker [stomp-repo]=root [repo-poller]=repo-poller [jenkins-helper]=nobody
  [stomp-post-receive]=nobody [svn-stomp]=nobody)
for d in "${!CONF[@]}"; do
  bin=$(command -v "$d") || { bad "$d: no binary on PATH"; continue; }
  if [[ $d == jenkins-helper ]]; then args=(--check-config --config "${CONF[$d]}"); else args=(--check-config -c "${CONF[$d]}"); fi
  if out=$(runuser -u "${RUNAS[$d]}" -- "$bin" "${args[@]}" 2>&1); then
    pass "$d --check-config (as ${RUNAS[$d]}): ${out##*$'\n'}"
  else
    bad "$d --check-config (as ${RUNAS[$d]}) refused ${CONF[$d]}: $out"
  fi
done

# Secrets: 0600, owned by the daemon's user; configs 0640 root:<group>.
for f in "${!SECRET[@]}"; do
  got=$(stat -c '%a %U' "$f" 2>/dev/null)
  [[ $got == "600 ${SECRET[$f]}" ]] || bad "$f: '$got', expected '600 ${SECRET[$f]}'"
done
[[ $(cat /etc/stomp-jenkins/bus.passcode) == bus-password-for-the-test ]] || bad "stomp-jenkins' passcode file does not hold the password"
grep -rq 'bus-password-for-the-test' "${CONF[@]}" && bad "the broker password is in a config file"
grep -q 'api-token-for-the-test' "$WORK/apply1.log" && bad "a secret is in puppet's output"
pass "${#SECRET[@]} secret files 0600 and owned by their daemon's user; no secret in configs or puppet's log"
for d in "${!CONF[@]}"; do
  got=$(stat -c '%a %U' "${CONF[$d]}")
  [[ $got == "640 root" ]] || bad "${CONF[$d]}: '$got', expected '640 root'"
done

# The git hook, installed by the hook itself; an existing hook chained.
[[ $(readlink "$GIT/site.git/hooks/post-receive") == /usr/bin/stomp-post-receive ]] || bad "site.git: hook not installed"
[[ $(readlink "$GIT/more/api.git/hooks/post-receive") == /usr/bin/stomp-post-receive ]] || bad "api.git: hook not installed"
[[ -x $GIT/more/api.git/hooks/post-receive.chained ]] || bad "api.git: its own hook not kept as post-receive.chained"
runuser -u nobody -- stomp-post-receive --install "$GIT" --check >/dev/null || bad "stomp-post-receive --check does not see the hooks"
want=$(printf "#!/bin/sh\nexec '/usr/bin/svn-stomp' -c '/etc/svn-stomp/svn-stomp.yaml' \"\$@\"")
[[ $(cat "$GIT/svn/webapp/hooks/post-commit" 2>&1) == "$want" ]] || bad "svn hook: $(cat "$GIT/svn/webapp/hooks/post-commit" 2>&1)"
pass "git hook installed into both repositories (the existing one chained), svn hook into the SVN one"

# Units: shipped by the packages, enabled (systemctl's offline mode: no systemd runs here).
for u in "${UNITS[@]}"; do
  [[ -f /lib/systemd/system/$u.service || -f /usr/lib/systemd/system/$u.service ]] || bad "$u.service: no unit file"
  [[ $(systemctl is-enabled "$u.service" 2>&1) == enabled ]] || bad "$u.service: $(systemctl is-enabled "$u.service" 2>&1), not enabled"
done
pass "units installed and enabled: ${UNITS[*]}"

# --- idempotence -------------------------------------------------------------------------------
apply "$WORK/apply2.log"
if ((RC == 0)); then pass "second apply changed nothing (--detailed-exitcodes 0)"; else bad "second apply: status $RC (0 expected):"; show "$WORK/apply2.log" 30; fi

# --- drift is corrected ------------------------------------------------------------------------
f0=$FAILS
systemctl disable --quiet stomp-jenkins.service
echo 'report-topic: hand.edited' >>/etc/stomp-repo/stomp-repo.yaml
echo wrong >/etc/github-webhook/github.secret
chmod 644 /etc/repo-poller/bus.passcode
apply "$WORK/apply3.log"
((RC == 2)) || { bad "third apply (after drift): status $RC (2 expected)"; show "$WORK/apply3.log" 30; }
[[ $(systemctl is-enabled stomp-jenkins.service 2>&1) == enabled ]] || bad "stomp-jenkins.service not enabled again"
diff -q "$SRC/tests/puppet/expected/stomp-repo.yaml" /etc/stomp-repo/stomp-repo.yaml >/dev/null || bad "stomp-repo.yaml not restored"
[[ $(cat /etc/github-webhook/github.secret) == webhook-secret-for-the-test ]] || bad "github.secret not restored"
[[ $(stat -c %a /etc/repo-poller/bus.passcode) == 600 ]] || bad "repo-poller's passcode not back to 0600"
((FAILS == f0)) && pass "drift (a unit disabled, a config and a secret edited, a mode widened) put back by the next apply"

finish
