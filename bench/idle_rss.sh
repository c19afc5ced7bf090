#!/usr/bin/env bash
# Idle memory of every daemon (issue #18): each started from its packaged config (packaging/etc),
# pointed at an embedded stomp-broker on loopback, left idle, then measured from /proc:
# RSS and private (smaps_rollup), threads, and per mapping (smaps) what each shared library and
# the heap cost. Run under the CPU lock.
#   BIN_DIR=DIR (the daemons' binaries; default: the build tree's) SETTLE=3 bench/idle_rss.sh [OUT.md]
#   ONLY="stomp-repo ..." measures only those daemons (the broker always runs).
# Output: a Markdown table (stdout, and OUT.md if given) and per-daemon mapping lists next to it.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD_DIR:-$ROOT/build}
SETTLE=${SETTLE:-3}
DAEMONS=(stomp-broker stomp-git stomp-jenkins github-webhook herald deploy-agent stomp-ci stomp-repo)
[[ -n ${ONLY:-} ]] && read -r -a _only <<<"$ONLY" && DAEMONS=(stomp-broker "${_only[@]}")
declare -A SUB=([stomp-broker]=stomp-broker [stomp-git]=stomp-git [stomp-jenkins]=stomp-jenkins
  [github-webhook]=github-webhook [herald]=herald [deploy-agent]=deploy-agent [stomp-ci]=stomp-ci
  [stomp-repo]=stomp-repo [repo-poller]=repo-poller)
bin() { if [[ -n ${BIN_DIR:-} ]]; then echo "$BIN_DIR/$1"; else echo "$B/daemons/${SUB[$1]}/$1"; fi; }
W=$(mktemp -d /tmp/idle-rss.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done; rm -rf "$W"; }
trap cleanup EXIT
read -r PORT HOOK HERALD < <(python3 -c 'import socket;s=[socket.socket() for _ in range(3)];[x.bind(("127.0.0.1",0)) for x in s];print(*[x.getsockname()[1] for x in s])')
conf() { # DAEMON
  mkdir -p "$W/$1/spool" "$W/$1/lib"
  sed -e "s|^rserver: stomp://localhost:61613|rserver: stomp://127.0.0.1:$PORT|" \
    -e "s|^listen: 127.0.0.1:61613|listen: 127.0.0.1:$PORT|" \
    -e "s|^listen: 127.0.0.1:4567|listen: 127.0.0.1:$HOOK|" \
    -e "s|^listen: 127.0.0.1:8470|listen: 127.0.0.1:$HERALD|" \
    -e "s|/var/spool/deploykit/[a-z-]*|$W/$1/spool|" -e "s|/var/lib/[a-z-]*|$W/$1/lib|" \
    -e "s|^users-file: .*|users-file: $W/$1/users.yaml|" -e "s|^facts-file: .*|facts-file: $W/$1/facts.yaml|" \
    -e "s|^user: ci-runner|user: nobody|" \
    "$ROOT/packaging/etc/$1/$1.yaml" >"$W/$1.yaml"
  # stomp-repo's and repo-poller's version helper (libapt-pkg), installed in /usr/lib/deploykit,
  # here next to the binaries
  local helper; helper="$(dirname "$(bin "$1")")/stomp-repo-vercmp"
  [[ ($1 == stomp-repo || $1 == repo-poller) && -x $helper ]] && echo "version-helper: $helper" >>"$W/$1.yaml"
  echo '{}' >"$W/$1/users.yaml"; echo '{}' >"$W/$1/facts.yaml"
}
start() { # DAEMON
  conf "$1"
  "$(bin "$1")" -c "$W/$1.yaml" >"$W/$1.log" 2>&1 &
  PIDS+=($!); PID_OF[$1]=$!
}
declare -A PID_OF
start stomp-broker
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
for d in "${DAEMONS[@]:1}"; do start "$d"; done
sleep "$SETTLE" # idle: connected, subscribed, nothing to do
sync # a binary copied just before would count its unwritten page-cache pages as Private_Dirty
kb() { awk -v k="$2" '$1 == k":" {print $2}' "$1"; }
out=("| daemon | RSS kB | PSS kB | private kB (clean + dirty) | private dirty kB | shared-lib RSS kB (top 4) | heap+anon kB | threads |" "|---|---:|---:|---:|---:|---|---:|---:|")
for d in "${DAEMONS[@]}"; do
  p=${PID_OF[$d]}
  if ! kill -0 "$p" 2>/dev/null; then out+=("| $d | exited: $(tail -1 "$W/$d.log") | | | | | | |"); continue; fi
  r=/proc/$p/smaps_rollup
  rss=$(kb "$r" Rss); pss=$(kb "$r" Pss); dirty=$(kb "$r" Private_Dirty); priv=$(( $(kb "$r" Private_Clean) + dirty ))
  thr=$(awk '/^Threads/ {print $2}' "/proc/$p/status")
  # per mapping name: Rss summed; anonymous (heap, stacks, arenas) separately
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name = (NF >= 6 ? $6 : "[anon]")} /^Rss:/ {rss[name] += $2} /^Private_(Clean|Dirty):/ {pr[name] += $2}
       END {for (n in rss) printf "%d %d %s\n", rss[n], pr[n], n}' "/proc/$p/smaps" | sort -rn >"$W/$d.maps"
  cp "$W/$d.maps" "${OUT_DIR:-/tmp}/idle-rss-$d.maps" 2>/dev/null
  # per mapping name and permissions (text r-xp, read-only data r--p, relocated/written data rw-p):
  # Rss, Private_Clean, Private_Dirty, Pss kB
  [[ -n ${OUT_DIR:-} ]] && awk '/^[0-9a-f]+-[0-9a-f]+ / {name = (NF >= 6 ? $6 : "[anon]") " " $2}
       /^Rss:/ {rss[name] += $2} /^Private_Clean:/ {pc[name] += $2} /^Private_Dirty:/ {pd[name] += $2} /^Pss:/ {ps[name] += $2}
       END {print "rss_kB priv_clean_kB priv_dirty_kB pss_kB mapping perms"; for (n in rss) if (rss[n]) printf "%d %d %d %d %s\n", rss[n], pc[n], pd[n], ps[n], n}' \
       "/proc/$p/smaps" | sort -k1,1rn >"$OUT_DIR/smaps-$d.txt"
  libs=$(grep '\.so' "$W/$d.maps" | head -4 | awk '{n=$3; sub(".*/", "", n); printf "%s %d, ", n, $1}' | sed 's/, $//')
  anon=$(awk '$3 == "[anon]" || $3 == "[heap]" || $3 ~ /^\[stack/ {s += $2} END {print s + 0}' "$W/$d.maps")
  out+=("| $d | $rss | $pss | $priv | $dirty | $libs | $anon | $thr |")
done
printf '%s\n' "${out[@]}"
[[ -n ${1:-} ]] && printf '%s\n' "${out[@]}" >"$1"
exit 0
