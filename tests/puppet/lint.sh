#!/bin/bash
# puppet.lint: every manifest, function and type of puppet/deploykit (and the test's and the
# examples' manifests) through `puppet parser validate`, every template through
# `puppet epp validate`, and puppet-lint on all of them with no checks disabled (the one inline
# `lint:ignore` in functions/quote.pp says why). Usage: lint.sh SOURCE_DIR
set -uo pipefail
SRC=${1:?usage: lint.sh SOURCE_DIR}
MOD=$SRC/puppet/deploykit
fail=0
# Puppet and Facter write caches; keep them out of /var/lib/puppet and the home directory.
VAR=$(mktemp -d /tmp/puppet_lint.XXXXXX)
trap 'rm -rf "$VAR"' EXIT
P=(--vardir "$VAR/var" --confdir "$VAR/conf" --codedir "$VAR/code" --logdir "$VAR/log" --rundir "$VAR/run")

mapfile -t manifests < <(find "$MOD/manifests" "$MOD/functions" "$MOD/types" "$MOD/examples" "$SRC/tests/puppet" -name '*.pp' | sort)
mapfile -t templates < <(find "$MOD/templates" -name '*.epp' | sort)
((${#manifests[@]} >= 12)) || { echo "FAIL: puppet.lint: only ${#manifests[@]} manifests found"; exit 1; }

if out=$(puppet parser validate "${P[@]}" "${manifests[@]}" 2>&1); then
  echo "PASS: puppet.lint: puppet parser validate: ${#manifests[@]} files"
else
  echo "FAIL: puppet.lint: puppet parser validate:"; echo "$out"; fail=1
fi
if out=$(puppet epp validate "${P[@]}" "${templates[@]}" 2>&1); then
  echo "PASS: puppet.lint: puppet epp validate: ${#templates[@]} templates"
else
  echo "FAIL: puppet.lint: puppet epp validate:"; echo "$out"; fail=1
fi
# --fail-on-warnings: a warning is a failure, as in CI elsewhere.
if out=$(puppet-lint --fail-on-warnings "${manifests[@]}" 2>&1); then
  echo "PASS: puppet.lint: puppet-lint: no warnings"
else
  echo "FAIL: puppet.lint: puppet-lint:"; echo "$out"; fail=1
fi
# The metadata is JSON with the fields the Forge requires.
if python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); [m[k] for k in ("name","version","author","license","summary","source","dependencies")]' "$MOD/metadata.json"; then
  echo "PASS: puppet.lint: metadata.json"
else
  echo "FAIL: puppet.lint: metadata.json"; fail=1
fi
# The functions (quoting, rserver, gitconfigure -> repo-list) against expected values; and two
# refusals: the same repository named twice, a control character in a value.
if out=$(puppet apply --noop "${P[@]}" --modulepath "$SRC/puppet" "$SRC/tests/puppet/functions.pp" 2>&1) &&
  (($(grep -c 'ok: ' <<<"$out") == 10)); then
  echo "PASS: puppet.lint: functions: 10 checks"
else
  echo "FAIL: puppet.lint: functions:"; grep -v Facter <<<"$out"; fail=1
fi
refuse() { # WHAT TEXT MANIFEST: the compile must fail saying TEXT
  local out
  if out=$(puppet apply --noop "${P[@]}" --modulepath "$SRC/puppet" -e "$3" 2>&1); then
    echo "FAIL: puppet.lint: $1 accepted"; fail=1
  elif grep -qF -- "$2" <<<"$out"; then
    echo "PASS: puppet.lint: $1 refused"
  else
    echo "FAIL: puppet.lint: $1: not the expected error:"; grep -v Facter <<<"$out"; fail=1
  fi
}
refuse "one repository named twice in gitconfigure" "names one repository twice" \
  "notice(deploykit::git_repo_list({'a' => {'site' => 'x', 'repo' => 'r'}, 'b' => {'site' => 'y', 'repo' => 'r'}}, '/d', 'u'))"
refuse "a control character in a value" "control character" "notice(deploykit::yaml(\"a\\u0007b\"))"
refuse "require_signatures without keys" "require_signatures needs signing_keys" \
  "class { 'deploykit': stomp_options => '', require_signatures => true }"
exit $fail
