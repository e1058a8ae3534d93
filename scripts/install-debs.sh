#!/usr/bin/env bash
# Install the Debian packages the test suite starts or drives (real clients and peers).
# Idempotent: installs only what is missing. Packaged daemons are never used; the tests
# start their own instances on loopback.
set -euo pipefail
PACKAGES=(curl wrk tftp-hpa atftp tftpd-hpa kamailio kamailio-tls-modules coturn mariadb-server
          mariadb-client openssl iproute2 procps debhelper dpkg-dev python3-venv lintian systemd
          nftables util-linux etcd-server etcd-client
          chromium fonts-liberation sip-tester)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
