#!/usr/bin/env bash
# The git hook's two builds (hooks/post-receive/CMakeLists.txt): stomp-post-receive links no
# OpenSSL, so with a plain stomp:// broker a push never maps libssl or libcrypto, signed or not
# (HMAC signing is Nettle's, bus/crypto.hpp: the signed event verifies at a subscriber that
# drops unsigned and forged messages); a configuration naming a stomp+ssl:// broker is handed to
# stomp-post-receive-tls, which still publishes, over TLS with a verified certificate, with the
# same stdin.
#   tests/integration/hook_openssl.sh STOMP_BROKER STOMPCTL STOMP_POST_RECEIVE STOMP_POST_RECEIVE_TLS
set -euo pipefail
broker=$(realpath "$1") stompctl=$(realpath "$2") hookbin=$(realpath "$3") tlsbin=$(realpath "$4")
NAME=hook_openssl
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
work=$WORK
ports=$(free_ports 2)
port=${ports%%[[:space:]]*} tls_port=${ports##*[[:space:]]}

# What the binaries ask the dynamic loader for.
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '; }
n=$(needed "$hookbin")
[[ $n != *libssl* && $n != *libcrypto* ]] && pass "stomp-post-receive needs no OpenSSL library ($n)" \
  || bad "stomp-post-receive needs: $n"
n=$(needed "$tlsbin")
# The TLS build loads libssl at its first TLS call (libbus/src/openssl/libssl_lazy.cpp), so it has
# OpenSSL's TLS functions as forwarding definitions and no DT_NEEDED entry for them either.
syms=$(nm "$tlsbin")
[[ $n != *libssl* && $syms == *" T SSL_CTX_new"$'\n'* ]] \
  && pass "stomp-post-receive-tls has OpenSSL's TLS calls, loaded at the first one ($n)" \
  || bad "stomp-post-receive-tls needs: $n; SSL_CTX_new: $(grep -w SSL_CTX_new <<<"$syms")"
[[ $(dirname "$tlsbin") == "$(dirname "$hookbin")" ]] || bad "the TLS build must sit next to the hook in the build tree"

test_ca_and_cert "$work"
cat >"$work/broker.yaml" <<EOF2
listen: 127.0.0.1:$port
tls_listen: 127.0.0.1:$tls_port
tls_cert: $work/server.pem
tls_key: $work/server.key
EOF2
"$broker" -c "$work/broker.yaml" 2>>"$work/broker.log" &
bpid=$!
track "$bpid"
wait_port "$port" && wait_port "$tls_port" || fatal "broker did not start: $(tail -5 "$work/broker.log")"

# A bare repository with two commits (pushed without the hook), run as git would run the hook.
mkdir -p "$work/home"
git_sandbox "$work/home"
git init -q --bare "$work/site.git"
git clone -q "$work/site.git" "$work/clone" 2>/dev/null
git -C "$work/clone" commit -q --allow-empty -m "plain commit"
c1=$(git -C "$work/clone" rev-parse HEAD)
git -C "$work/clone" commit -q --allow-empty -m "tls commit"
c2=$(git -C "$work/clone" rev-parse HEAD)
git -C "$work/clone" commit -q --allow-empty -m "signed commit"
c3=$(git -C "$work/clone" rev-parse HEAD)
git -C "$work/clone" push -q origin HEAD:refs/heads/master 2>/dev/null
zero=0000000000000000000000000000000000000000

start_subscriber sub "$stompctl" -u "stomp://127.0.0.1:$port" subscribe -t /topic/future.git.commits --events -n 2 --wait 60 \
  || fatal "subscriber"
sub=$SUB_PID
umask 077
echo "hook-2026 0123456789abcdef0123456789abcdef" >"$work/keys"
umask 022
start_subscriber signed "$stompctl" -u "stomp://127.0.0.1:$port" subscribe -t /topic/future.git.signed --events \
  --key-file "$work/keys" --require-signatures -n 1 --wait 60 || fatal "signed subscriber"

# run_hook NAME CONFIG REV: the hook on the bare repository, the dynamic loader's file log kept.
run_hook() {
  local rc=0
  echo "$zero $3 refs/heads/master" | (cd "$work/site.git" && GIT_DIR=. DEPLOYKIT_HOOK_CONFIG=$2 \
    LD_DEBUG=files LD_DEBUG_OUTPUT="$work/$1.ld" "$hookbin") >"$work/$1.out" 2>&1 || rc=$?
  cat "$work/$1".ld.* >"$work/$1.loaded" 2>/dev/null || true
  return $rc
}

cat >"$work/plain.yaml" <<EOF2
rserver: stomp://127.0.0.1:$port
trigger-topic: future.git.commits
spool-dir: $work/spool-plain
EOF2
run_hook plain "$work/plain.yaml" "$c1" || bad "plain hook exit: $(cat "$work/plain.out")"
grep -q "file=libc.so" "$work/plain.loaded" || bad "LD_DEBUG gave no file log: $(head -3 "$work/plain.loaded")"
! grep -Eq "file=lib(ssl|crypto)" "$work/plain.loaded" && pass "a plain stomp:// push maps neither libssl nor libcrypto" \
  || bad "plain hook loaded: $(grep -E 'file=lib(ssl|crypto)' "$work/plain.loaded" | head -3)"
[[ -z $(find "$work/spool-plain" -name '*.stomp' 2>/dev/null) ]] || bad "plain hook spooled: $(cat "$work/plain.out")"

cat >"$work/tls.yaml" <<EOF2
rserver: stomp+ssl://localhost:$tls_port
tls-ca-file: $work/ca.pem
trigger-topic: future.git.commits
spool-dir: $work/spool-tls
EOF2
run_hook tls "$work/tls.yaml" "$c2" || bad "tls hook exit: $(cat "$work/tls.out")"
grep -Eq "file=libssl" "$work/tls.loaded" && pass "a stomp+ssl:// configuration runs the OpenSSL build" \
  || bad "tls hook did not load libssl: $(grep -c file= "$work/tls.loaded") files"
[[ -z $(find "$work/spool-tls" -name '*.stomp' 2>/dev/null) ]] && pass "the TLS broker took the event (nothing spooled)" \
  || bad "tls hook spooled: $(cat "$work/tls.out")"

cat >"$work/signed.yaml" <<EOF2
rserver: stomp://127.0.0.1:$port
trigger-topic: future.git.signed
spool-dir: $work/spool-signed
signing-key-file: $work/keys
signing-key-id: hook-2026
EOF2
run_hook signed "$work/signed.yaml" "$c3" || bad "signed hook exit: $(cat "$work/signed.out")"
grep -q "file=libc.so" "$work/signed.loaded" || bad "LD_DEBUG gave no file log: $(head -3 "$work/signed.loaded")"
! grep -Eq "file=lib(ssl|crypto)" "$work/signed.loaded" \
  && pass "a signed plain stomp:// push stays in the lean build: neither libssl nor libcrypto mapped" \
  || bad "signed hook loaded: $(grep -E 'file=lib(ssl|crypto)' "$work/signed.loaded" | head -3)"
[[ -z $(find "$work/spool-signed" -name '*.stomp' 2>/dev/null) ]] || bad "signed hook spooled: $(cat "$work/signed.out")"
wait_lines "$WORK/signed.out" 1 && /usr/bin/python3 - "$WORK/signed.out" "$c3" <<'PY' \
  && pass "the lean build's signature verified (a --require-signatures subscriber took the event)" \
  || bad "signed event: $(cat "$WORK/signed.out" "$WORK/signed.err") $(cat "$work/signed.out")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert [e["data"]["new_rev"] for e in ev] == [sys.argv[2]], ev
PY

wait_lines "$WORK/sub.out" 2 && /usr/bin/python3 - "$WORK/sub.out" "$c1" "$c2" <<'PY' && pass "both events arrived, each with its own commit (stdin read once, by the build that published)" || bad "events: $(cat "$WORK/sub.out") $(cat "$work/tls.out")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
revs = [e["data"]["new_rev"] for e in ev]
assert revs == [sys.argv[2], sys.argv[3]], revs
assert [e["data"]["message"].strip() for e in ev] == ["plain commit", "tls commit"], ev
PY
finish
