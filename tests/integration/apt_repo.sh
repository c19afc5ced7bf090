# shellcheck shell=bash
# Setup shared by the package-path scripts (stomp_repo.sh, stomp_repo_poller.sh): test packages
# built by dpkg-deb and an isolated apt root. Source it after lib.sh (or after setting WORK).
#
#   mkdeb OUTDIR NAME VERSION [ARCH]: OUTDIR/NAME_VERSION_ARCH.deb (ARCH default all).
#   apt_root DIR SOURCES-LINE: an apt root in DIR that touches nothing of the machine's apt state:
#     own Dir::State, Dir::Cache, Dir::Etc, status file and sources.list (SOURCES-LINE), and
#     APT_ROOT_CONFIG ($DIR/apt.conf, empty: run apt with APT_CONFIG set to it so that the
#     machine's apt.conf.d hooks do not run). Sets APT_ROOT_OPTS (apt's -o options) and
#     APT_ROOT_YAML (the same, as stomp-repo's apt-options: list items).
#   gen_key NAME EMAIL: a passphrase-less ed25519 signing key in $GNUPGHOME; prints its fingerprint.
#   apt_update: apt-get update in that root. candidate PACKAGE: its Candidate in `apt-cache policy`.

mkdeb() {
  local out=$1 name=$2 version=$3 arch=${4:-all} d
  d=$(mktemp -d "$out/.src.XXXXXX")
  mkdir -p "$d/DEBIAN"
  printf 'Package: %s\nVersion: %s\nSection: misc\nPriority: optional\nArchitecture: %s\nMaintainer: Test <t@example.com>\nDescription: deploykit test package\n' \
    "$name" "$version" "$arch" >"$d/DEBIAN/control"
  dpkg-deb --root-owner-group -b "$d" "$out/${name}_${version}_${arch}.deb" >/dev/null
  local rc=$?
  rm -rf "$d"
  return "$rc"
}

gen_key() {
  gpg --batch --quiet --passphrase '' --quick-gen-key "$1 <$2>" ed25519 sign never 2>/dev/null || return 1
  gpg --batch --with-colons --list-keys "$2" 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}'
}

apt_root() {
  local a=$1 o
  mkdir -p "$a/state/lists/partial" "$a/cache/archives/partial" "$a/etc/apt.conf.d" "$a/etc/preferences.d" "$a/etc/trusted.gpg.d"
  : >"$a/status"
  : >"$a/apt.conf"
  echo "$2" >"$a/sources.list"
  APT_ROOT_CONFIG=$a/apt.conf
  local settings=("Dir::State=$a/state" "Dir::State::status=$a/status" "Dir::Cache=$a/cache" "Dir::Etc=$a/etc"
                  "Acquire::Languages=none" "APT::Sandbox::User=root")
  APT_ROOT_OPTS=(-o "Dir::Etc::sourcelist=$a/sources.list" -o "Dir::Etc::sourceparts=-")
  APT_ROOT_YAML=
  for o in "${settings[@]}"; do
    APT_ROOT_OPTS+=(-o "$o")
    APT_ROOT_YAML+="  - $o"$'\n'
  done
}
apt_update() { APT_CONFIG=$APT_ROOT_CONFIG apt-get -q "${APT_ROOT_OPTS[@]}" update; }
candidate() { APT_CONFIG=$APT_ROOT_CONFIG LC_ALL=C apt-cache "${APT_ROOT_OPTS[@]}" policy "$1" | awk '/Candidate:/ {print $2}'; }
