#!/usr/bin/env bash
# lintian on every package the deb_packages fixture built: no error, no warning (info tags are shown;
# overrides, each with its reason, are in packaging/lintian/). Usage: deb_lintian.sh DEBS_DIR
NAME=deb_lintian
. "$(dirname "$0")/lib.sh"
debs=("$1"/*.deb)
[[ -e ${debs[0]} ]] || fatal "no packages in $1 (the deb_packages fixture builds them)"
if lintian --fail-on error,warning --info --display-info \
    "${debs[@]}" >"$WORK/lintian.log" 2>&1 && ! grep -qE '^[EW]: ' "$WORK/lintian.log"; then
  grep -E '^I: ' "$WORK/lintian.log" | sed 's/^/  info: /'
  pass "lintian clean on ${#debs[@]} packages"
else
  show "$WORK/lintian.log" 60
  fail "lintian tags"
fi
finish
