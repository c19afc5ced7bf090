#!/usr/bin/env bash
# Installs every build and test dependency of deploykit from Debian 12 packages.
# Idempotent: when everything is present it only runs dpkg-query and exits.
set -euo pipefail

build_pkgs=(
  cmake g++ ninja-build ccache pkg-config
  libboost1.81-dev libssl-dev libcurl4-openssl-dev libgit2-dev
  nettle-dev  # hashes, HMAC, PBKDF2, base64 outside TLS (libbus bus/crypto.hpp)
  nlohmann-json3-dev libspdlog-dev libfmt-dev doctest-dev libyaml-cpp-dev libcli11-dev
  libapt-pkg-dev liblzma-dev zlib1g-dev  # repo-poller: apt version order, .xz and .gz indices
  libpcre2-dev  # herald alerts: pattern rules (match and depth limits)
)
test_pkgs=(
  git python3 python3-stomp ruby ruby-stomp
  rabbitmq-server activemq default-jre-headless
  clang-14 libclang-rt-14-dev
  procps iproute2 netcat-openbsd openssl passwd
  subversion  # svn-stomp hook test (svnadmin, svn, svnlook)
  reprepro curl  # stomp-repo/reprepro-stomp test (a real repository; dpkg-deb and apt come with the base system)
  openssh-server lighttpd lighttpd-mod-openssl  # stomp-git ssh/https transport test
  reprepro aptly gnupg gpgv  # repo-poller test: real repositories, a throwaway signing key
  sqlite3 libsqlite3-dev  # herald: the event log
  lintian dpkg-dev fakeroot debhelper systemd help2man  # packages: build (CPack DEB, man pages from --help), lint, systemd-analyze verify
  puppet puppet-lint  # puppet/deploykit: parser validate, lint, apply
  chromium chromium-driver python3-selenium python3-aiosmtpd  # herald pages, SMTP sink
)

missing=()
for p in "${build_pkgs[@]}" "${test_pkgs[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$st" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "deps: installing ${missing[*]}" >&2
if [[ $(id -u) -ne 0 ]]; then
  echo "deps: need root to install packages (missing: ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Debian's rabbitmq-server and activemq try to start their services on install; there is no
# init system in a container, and the tests start their own brokers anyway.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  made_policy=1
fi
trap 'if [[ $made_policy == 1 ]]; then rm -f "$policy"; fi' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
