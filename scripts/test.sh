#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs dependencies (idempotent), builds, runs the
# unit and fake-broker tests under ASan+UBSan, fuzzes the frame parser for a bounded time, then
# runs every test (unit, client, real RabbitMQ/ActiveMQ, cross-client, failover) with CTest.
#   scripts/test.sh            (FUZZ_SECONDS=30 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds=${FUZZ_SECONDS:-30}

bash scripts/deps.sh

echo "== build (warnings as errors)"
bash scripts/build.sh build -DBUS_WARNINGS_AS_ERRORS=ON

echo "== ASan+UBSan: unit and client tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBUS_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$(nproc)" --target unit_tests crypto_unit_tests client_tests webhook_unit_tests http_unit_tests runtime_unit_tests repo_poller_unit_tests herald_unit_tests alerts_unit_tests deploy_unit_tests deploy_agent_unit_tests deploy_cli_unit_tests stomp_ci_unit_tests stompctl stomp-broker
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -R '^(unit|client)\.' --timeout 300)

echo "== fuzz: STOMP parser (client side) and broker core (server side), ${fuzz_seconds}s each"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUS_BUILD_FUZZERS=ON \
  -DBUS_BUILD_TESTS=OFF -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target stomp_parser_fuzz broker_fuzz
for target in stomp_parser_fuzz:corpus broker_fuzz:broker_corpus; do
  name=${target%%:*}
  seeds=tests/fuzz/${target#*:}
  mkdir -p "build-fuzz/$name.corpus"
  (cd build-fuzz && "tests/fuzz/$name" -max_total_time="$fuzz_seconds" -max_len=4096 -print_final_stats=1 \
    "$name.corpus" "../$seeds" 2>"$name.log") \
    || { tail -50 "build-fuzz/$name.log"; echo "fuzz: $name FAILED"; exit 1; }
  echo "$name: $(grep -E 'stat::number_of_executed_units' "build-fuzz/$name.log" | awk '{print $2}') inputs, no crash"
done

echo "== all tests"
cd build
ctest --output-on-failure --timeout 900
