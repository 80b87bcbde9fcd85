#!/usr/bin/env bash
# Debian packages the tests need: real peers (strongSwan charon), a wire
# validator (tshark), a real ESP kernel under emulation (qemu), and network
# tooling for the namespace tests. Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(iproute2 nftables iputils-ping tshark qemu-system-x86 busybox-static
      strongswan-charon strongswan-swanctl libcharon-extra-plugins
      libstrongswan-standard-plugins libstrongswan-extra-plugins strongswan-pki
      xz-utils cpio)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -q
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# charon must not run as a system service during tests
systemctl disable --now strongswan-starter 2>/dev/null || true
