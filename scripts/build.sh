#!/usr/bin/env bash
# Configures and builds deploykit into BUILD_DIR (default: build). Extra args go to cmake.
#   scripts/build.sh [BUILD_DIR] [-DOPTION=...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)"
