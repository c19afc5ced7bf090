#!/usr/bin/env bash
# Codec parse throughput: libbus vs stomp.py's and ruby-stomp's own parsers on the same bytes,
# and a plain memchr scan (the limit). 200-byte and 4 KiB MESSAGE frames. `libbus` parses into views
# (parser::put_view), `libbus-owning` builds an owning frame per message (parser::put + release);
# `libbus-inplace` and `copy+memchr` split the `libbus` row into parser and read-buffer copy
# (bench/codec_bench.cpp). Those rows copy the bytes into the read buffer with memcpy; the
# socket rows are what a connection does: a thread writes the file into a loopback TCP
# connection and the reader read(2)s it (the kernel's copy is the one copy into the read buffer)
# through bus::stomp_stream itself: `stream` = stomp_stream::read_view (frames as views of the
# read buffer, the client's reader), `stream-owning` = stomp_stream::read (an owning frame per
# message, the broker's reader), `read+memchr` = read(2) of 64 KiB and a memchr NUL count (the
# limit for any parser fed by a socket). The frames carry content-length, as every producer of
# ours writes them; the `4096 B, no c-l` rows are the same frames without it (the body scanned
# for its NUL).
#   bench/codec_bench.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[[ -x $build/bench/codec_bench ]] || { echo "build first: cmake --build $build --target codec_bench" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| frame body | parser | MB/s | frames/s | vs libbus | allocations/frame |"
echo "|---|---|---|---|---|---|"
for kind in 200 4096 4096-nocl; do
  size=${kind%-nocl}
  frames=$(( size == 200 ? 50000 : 10000 ))
  f=$tmp/frames-$kind
  extra=()
  [[ $kind == *-nocl ]] && extra=(--no-content-length)
  /usr/bin/python3 bench/peers/parse_bench.py --generate "$f" --frames "$frames" --size "$size" "${extra[@]}" >/dev/null
  {
    "$build/bench/codec_bench" "$f"
    /usr/bin/python3 bench/peers/parse_bench.py "$f"
    ruby bench/peers/parse_bench.rb "$f"
  } > "$tmp/out-$kind"
  cat "$tmp/out-$kind" >&2
  label="$size B"
  [[ $kind == *-nocl ]] && label="$size B, no c-l"
  /usr/bin/python3 - "$label" "$tmp/out-$kind" <<'PY'
import json, sys
size, path = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
base = next(r for r in rows if r["parser"] == "libbus")["frames_per_s"]
for r in rows:
    a = r.get("allocs_per_frame")
    print(f"| {size} | {r['parser']} | {r['mb_per_s']:.1f} | {r['frames_per_s']:,.0f} | {r['frames_per_s']/base:.3f} | {'' if a is None else f'{a:.3f}'} |")
PY
done
