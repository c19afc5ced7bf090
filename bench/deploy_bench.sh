#!/usr/bin/env bash
# How long a five-node rollout takes, and what the bus adds per batch beyond the hooks' own time.
# Runs tests/integration/deploy_rollout.sh's set-up (five deploy-agents, embedded broker, hooks
# that do nothing), then ROUNDS rollouts alternating v1/v2 with --batch 1 (five batches) and
# -v (which logs each batch's wall time); per batch, overhead = batch wall time − the stages'
# durations the agent reported. Not a test: no assertion, figures on stdout.
#   bench/deploy_bench.sh BUILD_DIR [ROUNDS]
set -uo pipefail
build=$(realpath "${1:-build}") rounds=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
export DEPLOY_BENCH_ROUNDS=$rounds
exec bash "$here/tests/integration/deploy_rollout.sh" "$build/daemons/deploy/deploy" \
  "$build/daemons/deploy-agent/deploy-agent" "$build/daemons/stomp-broker/stomp-broker" \
  "$build/daemons/stompctl/stompctl" bench
