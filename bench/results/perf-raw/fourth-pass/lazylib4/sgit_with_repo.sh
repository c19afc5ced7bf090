#!/usr/bin/env bash
# stomp-git idle with one configured repository: catch-up fetch at start (in a worker), then idle.
# Usage: sgit_with_repo.sh BIN_DIR
set -uo pipefail
BIN=$1; R=/work/wt/packaging
W=$(mktemp -d /tmp/sgit-repo.XXXXXX)
trap 'kill $SP $BP 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
git init -q --bare "$W/origin.git"
git -c init.defaultBranch=main clone -q "$W/origin.git" "$W/seed" 2>/dev/null
(cd "$W/seed" && git -c user.name=t -c user.email=t@t commit -q --allow-empty -m one && git push -q origin HEAD:main)
git clone -q "$W/origin.git" "$W/clone"
read -r PORT < <(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
printf 'listen: 127.0.0.1:%s\n' "$PORT" > "$W/broker.yaml"
sed -e "s|^listen: 127.0.0.1:61613|listen: 127.0.0.1:$PORT|" -e "s|/var/lib/[a-z-]*|$W/lib|" "$R/packaging/etc/stomp-broker/stomp-broker.yaml" > "$W/broker.yaml"
"$BIN/stomp-broker" -c "$W/broker.yaml" >"$W/broker.log" 2>&1 & BP=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
mkdir -p "$W/spool" "$W/state"
sed -e "s|^rserver: stomp://localhost:61613|rserver: stomp://127.0.0.1:$PORT|" -e "s|/var/spool/deploykit/[a-z-]*|$W/spool|" \
    -e "s|/var/lib/[a-z-]*|$W/state|" -e "s|^repo-list: {}|repo-list:\n  site: {user: root, repo: $W/clone, target: $W/www, mode: trusting}|" \
    "$R/packaging/etc/stomp-git/stomp-git.yaml" > "$W/sgit.yaml"
"$BIN/stomp-git" -c "$W/sgit.yaml" >"$W/sgit.log" 2>&1 & SP=$!
for _ in $(seq 200); do grep -q 'site' "$W/sgit.log" && grep -qiE 'fetched|changed|up to date|release|problem' "$W/sgit.log" && break; sleep 0.05; done
sleep 3
echo "stomp-git with one repository ($BIN): $(grep -E '^(Rss|Private_Dirty)' /proc/$SP/smaps_rollup | tr -s ' ' | tr '\n' ' ')"
echo "libgit2 mapped in the daemon: $(grep -c libgit2 /proc/$SP/maps)"
grep -iE 'site|fetch' "$W/sgit.log" | tail -3
