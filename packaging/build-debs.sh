#!/usr/bin/env bash
# Builds deploykit's .deb packages from an existing build directory, without compiling again:
#   bash packaging/build-debs.sh [BUILD_DIR] [OUT_DIR]
# BUILD_DIR defaults to ./build (configured and built as README.md says), OUT_DIR to BUILD_DIR/debs.
# DEB_VERSION=X overrides the package version (the upgrade test builds the same binaries as a
# newer version). Only man pages are generated here (help2man on the built binaries); the binaries
# must be up to date: the script stops rather than compile them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../build}" && pwd)
out=${2:-$build/debs}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Up to date? (ninja -n lists what it would do; a man page is all that may be left.)
pending=""
if [[ -f $build/build.ninja ]]; then
  pending=$(ninja -C "$build" -n man-pages | grep -E '^\[[0-9]+/[0-9]+\] (Building|Linking)' || true)
fi
if [[ -n $pending ]]; then
  echo "build-debs: $build is not built (would compile):" >&2
  echo "$pending" | head -5 >&2
  echo "build-debs: build it first: cmake --build $build" >&2
  exit 1
fi
cmake --build "$build" --target man-pages >/dev/null

args=(-G DEB --config "$build/CPackConfig.cmake" -B "$out" -D CPACK_OUTPUT_FILE_PREFIX="$out")
[[ -n ${DEB_VERSION:-} ]] && args+=(-D CPACK_PACKAGE_VERSION="$DEB_VERSION")
rm -rf "$out/_CPack_Packages"
(cd "$build" && cpack "${args[@]}" >"$out/cpack.log" 2>&1) || { cat "$out/cpack.log" >&2; exit 1; }
rm -rf "$out/_CPack_Packages"

# Every binary of the table must be in its package (an install(TARGETS) without its COMPONENT
# would leave it out silently).
status=0
while read -r pkg bins; do
  deb=$(ls "$out/${pkg}_"*.deb 2>/dev/null | head -1)
  if [[ -z $deb ]]; then echo "build-debs: no package $pkg" >&2; status=1; continue; fi
  for b in $bins; do
    dpkg-deb -c "$deb" | grep -E "\./usr/s?bin/$b\$" >/dev/null || { echo "build-debs: $pkg lacks $b" >&2; status=1; }
  done
done < <(sed -n 's/^dk_package(\([a-z0-9-]*\) BINARIES \([a-z0-9 -]*\).*/\1 \2/p' "$here/packages.cmake" |
         sed -E 's/ (DAEMON|NOSPOOL|USER)( .*)?$//')
ls "$out"/*.deb
exit $status
