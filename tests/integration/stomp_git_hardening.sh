#!/usr/bin/env bash
# stomp-git under attack and faults (issue 10 items 1-6, 10): puppetmaster branch names that meet
# on one environment, a pushed `.deploykit-environment` symlink, over-long branches, a
# post-fetch-command that looks for the daemon's broker connection or prints, kill -9 of the daemon
# mid-job, the original's report one-liner; and config errors (`keep: abc`).
#   tests/integration/stomp_git_hardening.sh STOMP_BROKER STOMPCTL STOMP_POST_RECEIVE STOMP_GIT
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") hookbin=$(realpath "$3") sgit=$(realpath "$4")
[[ $(id -u) == 0 ]] || { echo "FAIL needs root (creates users, drops privileges)"; exit 1; }
NAME=stomp_git_hardening
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
chmod 755 "$work"
bpid= gpid= spid=
kill_at_exit spid gpid bpid
id dkpuppet >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin dkpuppet
git_sandbox "$work"

git init -q --bare "$work/origin/site.git"
git clone -q "$work/origin/site.git" "$work/dev" 2>/dev/null
(cd "$work/dev" && echo master >who && git add . && git commit -qm one && git push -q origin master 2>/dev/null)
chmod -R a+rX "$work/origin"
mkdir -p "$work/data/envs" "$work/outside"
git clone -q "$work/origin/site.git" "$work/data/repo"
chown -R dkpuppet "$work/data" "$work/outside"
cfg() { # NAME MODE EXTRA...: a stomp-git config for the clone
  local name=$1 mode=$2; shift 2
  { printf 'rserver: stomp://127.0.0.1:%s\nsafety-fetch-interval: 0\nstate-dir: %s/state\ndurable-name: hard-%s\nwire-format: both\n' \
      "${port:-1}" "$work" "$name"
    for x in "$@"; do printf '%s\n' "$x"; done
    printf 'repo-list:\n  site: {user: dkpuppet, repo: %s, target: %s, mode: %s}\n' "$work/data/repo" "$work/data/envs" "$mode"
  } >"$work/$name.yaml"
}
worker() { "$sgit" --worker site -c "$work/$1.yaml"; }  # one job, its result on stdout

# ---- puppetmaster: names map injectively; symlinks in pushed trees; over-long branches ---------
branch() { # NAME CONTENT [symlink-marker]
  (cd "$work/dev" && git checkout -q -B "$1" master && echo "$2" >who &&
    if [[ ${3:-} ]]; then ln -sf "$3" .deploykit-environment; fi &&
    git add -A . && git commit -qm "$1" && git push -q -f origin "$1" 2>/dev/null && git checkout -q master)
}
branch production "real production"
branch Production "HIJACKED by Production"
branch PRODUCTION "HIJACKED by PRODUCTION"
branch feature/x "feature slash"
branch feature-x "feature dash"
echo "precious" >"$work/outside/victim"; chown dkpuppet "$work/outside/victim"
branch evil "symlink marker" "$work/outside/victim"
long=$(printf 'l%.0s' $(seq 240))
branch "$long" "long branch"
toolong=$(printf 'a%.0s' $(seq 200))/$(printf 'b%.0s' $(seq 200))
branch "$toolong" "too long for a directory"
branch old "to be deleted"
cfg puppet puppetmaster
out=$(worker puppet)
envs=$work/data/envs
[[ $(cat "$envs/production/who") == "real production" && $(cat "$envs/Production/who") == "HIJACKED by Production" &&
   $(cat "$envs/PRODUCTION/who") == "HIJACKED by PRODUCTION" ]] &&
  pass "production, Production and PRODUCTION publish to their own environments (case kept)" ||
  bad "case-mapped environments: $(cat "$envs"/*roduction*/who 2>&1) $out"
[[ ! -e $envs/feature_x ]] && grep -q "would all publish to environment 'feature_x'" <<<"$out" &&
  pass "feature/x and feature-x meet on feature_x: both refused and reported" || bad "conflict: $(ls "$envs") $out"
[[ $(cat "$work/outside/victim") == precious && -f $envs/evil/.deploykit-environment && ! -L $envs/evil/.deploykit-environment ]] &&
  pass "a pushed .deploykit-environment symlink is not followed (the file outside is untouched)" ||
  bad "symlink followed: victim=$(cat "$work/outside/victim") $(ls -la "$envs/evil" 2>&1)"
[[ $(cat "$envs/$long/who" 2>/dev/null) == "long branch" ]] && pass "a 240-character branch is published" || bad "long branch: $out"
grep -q "longer than 255" <<<"$out" && [[ -f $envs/master/who && -f $envs/old/who ]] &&
  pass "a branch too long for a directory is skipped and reported; the others are published" || bad "too long: $out"
(cd "$work/dev" && git push -q origin :old 2>/dev/null)
out=$(worker puppet)
[[ ! -e $envs/old && -f $envs/master/who ]] && pass "stale environments are still cleaned with a bad branch present" || bad "stale: $(ls "$envs")"
(cd "$work/dev" && git push -q origin :Production :PRODUCTION :feature-x :feature/x :evil ":$toolong" ":$long" 2>/dev/null)

# Trusting and atomic modes write only the checkout: a symlink in the tree stays a symlink.
mkdir -p "$work/data/site"; chown dkpuppet "$work/data/site"
(cd "$work/dev" && ln -sf "$work/outside/victim" .deploykit-environment && git add -A . && git commit -qm link &&
  git push -q origin master 2>/dev/null)
for m in trusting atomic; do
  cfg "$m" "$m"; sed -i "s|target: $work/data/envs|target: $work/data/site/$m|" "$work/$m.yaml"
  worker "$m" >/dev/null
done
[[ $(cat "$work/outside/victim") == precious && -L $work/data/site/trusting/.deploykit-environment ]] &&
  pass "trusting/atomic: pushed symlinks are published as symlinks, nothing written through them" ||
  bad "trusting/atomic wrote through a symlink: $(cat "$work/outside/victim")"
(cd "$work/dev" && git rm -q .deploykit-environment && git commit -qm unlink && git push -q origin master 2>/dev/null)

# ---- the daemon: post-fetch-command sees only its own descriptors; its output is its own --------
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="stomp://127.0.0.1:$port"
"$broker" --listen "127.0.0.1:$port" 2>"$work/broker.log" &
bpid=$!
until_true 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
printf 'rserver: %s\nwire-format: both\nspool-dir: %s/spool\n' "$url" "$work" >"$work/hook.yaml"
export DEPLOYKIT_HOOK_CONFIG=$work/hook.yaml
"$hookbin" --install "$work/origin/site.git" >/dev/null
chmod -R a+rX "$work/origin"
cat >"$work/pf.sh" <<EOF
#!/bin/bash
# The attack: list our descriptors, write a SEND and an UNSUBSCRIBE to every one above 2.
/bin/ls /proc/self/fd >"$work/pf/fds.\$NEW_REV"
for f in /proc/\$\$/fd/*; do n=\${f##*/}
  [ "\$n" -gt 2 ] 2>/dev/null && printf 'SEND\ndestination:/topic/pwned\n\nfrom post-fetch\000UNSUBSCRIBE\nid:0\n\n\000' >&\$n 2>/dev/null
done
echo "start \$OLD_REV \$NEW_REV \$\$" >>"$work/pf/log"
[ -e "$work/pf/slow" ] && sleep 60
echo "end \$OLD_REV \$NEW_REV" >>"$work/pf/log"
echo "post-fetch printed this"
EOF
chmod 755 "$work/pf.sh"; mkdir -p "$work/pf"; chown dkpuppet "$work/pf"
cfg daemon normal "post-fetch-command: [$work/pf.sh]"
worker daemon >/dev/null  # the clone is up to date: the start-up fetch changes nothing
"$stompctl" -u "$url" subscribe -t /topic/future.events.stomp-git --wait 120 --ready-file "$work/r1" >"$work/oneliners" 2>/dev/null &
spid=$!
"$stompctl" -u "$url" subscribe -t /topic/pwned --wait 120 --ready-file "$work/r2" >"$work/pwned" 2>/dev/null &
pwpid=$!
until_true 10 test -f "$work/r1" -a -f "$work/r2" || bad "subscribers not ready"
"$sgit" -c "$work/daemon.yaml" 2>"$work/sgit.log" &
gpid=$!
until_true 20 grep -q "stomp-git: site fetched" "$work/sgit.log" || bad "no start-up fetch: $(cat "$work/sgit.log")"
push() { (cd "$work/dev" && echo "$1" >who && git commit -qam "$1" && git push -q origin master 2>/dev/null); }
push two
new=$(git -C "$work/origin/site.git" rev-parse master)
until_true 20 test -f "$work/pf/fds.$new" || bad "post-fetch did not run for the push: $(tail -5 "$work/sgit.log")"
fds=$(tr '\n' ' ' <"$work/pf/fds.$new")
# (3 is ls's own listing of the directory.)
[[ $fds == "0 1 2 3 " ]] && pass "post-fetch-command holds only 0, 1, 2 (no broker connection, no result pipe)" ||
  bad "post-fetch-command inherited descriptors: $fds"
until_true 10 grep -q "output: post-fetch printed this" "$work/sgit.log" && pass "post-fetch output is captured and logged" ||
  bad "post-fetch output: $(tail -5 "$work/sgit.log")"
until_true 10 grep -q "  fetched change: \[site\] refs/heads/master $new" "$work/oneliners" &&
  pass "one-liner: two spaces, the pushed ref and revision" || bad "one-liner: $(cat "$work/oneliners")"
grep -q "site fetched refs/remotes/origin/master [0-9a-f]* -> ${new:0:12}" "$work/sgit.log" && ! grep -q "worker failed" "$work/sgit.log" &&
  pass "a printing post-fetch-command does not break the fetch result" ||
  bad "worker failed: $(grep 'worker failed' "$work/sgit.log")"
[[ $(grep -c "fetched change" "$work/oneliners") == 1 && $(grep "fetched change" "$work/oneliners") == *" refs/heads/master $new" ]] &&
  pass "no 'fetched change' for the start-up fetch (it changed nothing)" ||
  bad "one-liners: $(cat "$work/oneliners")"
# The daemon still hears pushes (the UNSUBSCRIBE never reached its connection), nothing was published as it.
push three
new3=$(git -C "$work/origin/site.git" rev-parse master)
until_true 20 grep -q "fetched change: \[site\] refs/heads/master $new3" "$work/oneliners" && [[ ! -s $work/pwned ]] &&
  pass "the daemon still subscribed and nothing published on its connection" || bad "pwned: $(cat "$work/pwned")"

# ---- kill -9 mid-job: the worker and post-fetch-command die with the daemon; once per old->new ---
touch "$work/pf/slow"
push four
new4=$(git -C "$work/origin/site.git" rev-parse master)
until_true 20 grep -q "start $new3 $new4" "$work/pf/log" || bad "slow post-fetch did not start"
pfpid=$(awk -v r="$new4" '$1=="start" && $3==r {print $4}' "$work/pf/log" | head -1)
kill -9 "$gpid"; wait "$gpid" 2>/dev/null || true; gpid=
[[ -n $pfpid ]] && until_true 10 bash -c "! kill -0 $pfpid 2>/dev/null" && pass "kill -9 of stomp-git ends its worker and post-fetch-command" ||
  bad "post-fetch $pfpid outlived the daemon"
rm -f "$work/pf/slow"
"$sgit" -c "$work/daemon.yaml" 2>>"$work/sgit.log" &
gpid=$!
until_true 20 grep -q "end $new3 $new4" "$work/pf/log" || bad "post-fetch for $new3 -> $new4 never completed"
push five  # fetches of one clone run one after another: once this one's is done, the catch-up is too
new5=$(git -C "$work/origin/site.git" rev-parse master)
until_true 20 grep -q "end $new4 $new5" "$work/pf/log" || bad "post-fetch for $new4 -> $new5 never completed"
[[ $(grep -c "end $new3 $new4" "$work/pf/log") == 1 && $(grep -c "end .* $new4" "$work/pf/log") == 1 ]] &&
  pass "after the restart post-fetch-command completed exactly once for the cut-off old->new" ||
  bad "post-fetch runs: $(cat "$work/pf/log")"
kill "$pwpid" 2>/dev/null || true

# ---- config errors: file, line, key, expected type; exit status 2 ------------------------------
printf 'rserver: %s\nrepo-list:\n  site: {repo: /tmp/x, target: /tmp/y, mode: atomic, keep: abc}\n' "$url" >"$work/keep.yaml"
rc=0; "$sgit" -c "$work/keep.yaml" 2>"$work/keep.err" || rc=$?
[[ $rc == 2 ]] && grep -q "keep.yaml:3: repo-list.site.keep: expected a whole number, not 'abc'" "$work/keep.err" &&
  pass "keep: abc -> file, line, key, expected type, exit 2" || bad "keep: rc=$rc $(cat "$work/keep.err")"
exit $fail
