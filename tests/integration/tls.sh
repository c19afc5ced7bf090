#!/usr/bin/env bash
# stomp+ssl:// against RabbitMQ's TLS STOMP listener: a certificate from a test CA is accepted
# when the CA is given and the host name matches; an unknown CA and a host-name mismatch are
# refused (exit 1, nothing published). Certificates are made here with the openssl CLI.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
NAME=tls
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
stompctl=${STOMPCTL:-$ROOT_DIR/build/daemons/stompctl/stompctl}
root=$WORK
stop_brokers_at_exit "$root"
check() { # NAME EXPECTED_RC COMMAND...
  local name=$1 want=$2 rc=0
  shift 2
  timeout 60 "$@" >"$root/out" 2>&1 || rc=$?
  if [[ $rc == "$want" ]]; then echo "PASS $name"; else echo "FAIL $name (exit $rc, want $want)"; cat "$root/out"; fail=1; fi
}

cd "$root"
# A CA, a server certificate for DNS:localhost only, and an unrelated second CA.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=deploykit-test-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other.pem 2>/dev/null
chmod 644 ./*.pem ./*.key

read -r port tls_port < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
RABBITMQ_EXTRA_CONF="stomp.listeners.ssl.1 = 127.0.0.1:$tls_port
ssl_options.cacertfile = $root/ca.pem
ssl_options.certfile = $root/server.pem
ssl_options.keyfile = $root/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false" \
  bash "$here/brokers/broker.sh" start rabbitmq "$root/rabbitmq" "$port"

check "tls: trusted CA and matching host name" 0 \
  "$stompctl" -u "stomp+ssl://guest:guest@localhost:$tls_port" --ca-file ca.pem --timeout 10 \
  publish -t /topic/tls.test -m hello
check "tls: unknown CA is refused" 1 \
  "$stompctl" -u "stomp+ssl://guest:guest@localhost:$tls_port" --ca-file other.pem --timeout 5 \
  publish -t /topic/tls.test -m hello
check "tls: host name mismatch is refused" 1 \
  "$stompctl" -u "stomp+ssl://guest:guest@127.0.0.1:$tls_port" --ca-file ca.pem --timeout 5 \
  publish -t /topic/tls.test -m hello
exit $fail
