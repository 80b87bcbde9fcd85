#!/usr/bin/env bash
# Everything the full test suite needs on a fresh Debian machine (root):
# Debian packages (strongSwan, tshark, qemu, ...), npm packages (this builds
# the native addon and compiles TypeScript), and the qemu test kernel +
# initramfs. Idempotent; with caches warm it takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
bash .ci/install-deps.sh
# `npm install` rather than `npm ci`: with omit-lockfile-registry-resolved (no registry
# addresses in the lock file) npm leaves other platforms' optional packages out of
# the lock, and `npm ci` then refuses it. `npm install` honours the lock as it is.
npm install --no-audit --no-fund
bash .ci/vm-setup.sh
