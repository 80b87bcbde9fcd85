#!/usr/bin/env bash
# Prepare what test/vm needs: qemu, a stock Debian kernel (never installed on
# the host, only unpacked into .cache/vm/kernel), an uncompressed vmlinux for
# qemu's PVH entry, and an uncompressed cpio initramfs with static busybox,
# the host's node/ip/bash (+ their libraries) and the ESP/XFRM/crypto/9p
# kernel modules with their dependency closure.
#
# Idempotent: everything is cached under .cache/vm, keyed by kernel version,
# node binary hash and this script's hash. Writes .cache/vm/current.env for
# the harness (test/vm/harness.ts, test/vm/run-in-vm.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/vm"
mkdir -p "$CACHE"
log() { printf '[vm-setup] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- packages
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_pkgs+=(qemu-system-x86)
if ! [ -x /bin/busybox ] || ! file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
  dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  # Another apt may be running (shared machine): wait for the dpkg lock.
  for _ in $(seq 1 600); do
    pgrep -x apt-get >/dev/null 2>&1 || pgrep -x apt >/dev/null 2>&1 || pgrep -x dpkg >/dev/null 2>&1 || break
    sleep 1
  done
  log "installing ${need_pkgs[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}"; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}"
  fi
fi
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || BUSYBOX=/usr/bin/busybox

# ---------------------------------------------------------------- kernel
KPKG="$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)"
if [ -z "$KPKG" ]; then
  apt-get update
  KPKG="$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)"
fi
[ -n "$KPKG" ] || { log "cannot resolve the package linux-image-amd64 depends on"; exit 1; }
KVER="${KPKG#linux-image-}"
KDIR="$CACHE/kernel"
if ! [ -f "$KDIR/.done-$KVER" ]; then
  log "fetching $KPKG"
  rm -rf "$KDIR" "$CACHE/deb"
  mkdir -p "$CACHE/deb" "$KDIR"
  (cd "$CACHE/deb" && apt-get download "$KPKG")
  dpkg -x "$CACHE"/deb/"$KPKG"_*.deb "$KDIR"
  rm -rf "$CACHE/deb"
  touch "$KDIR/.done-$KVER"
fi
MODROOT="$KDIR/lib/modules/$KVER"

# vmlinux from the bzImage's XZ payload (PVH entry: no in-guest decompression).
VMLINUX="$CACHE/vmlinux-$KVER"
if ! [ -s "$VMLINUX" ]; then
  BZ="$KDIR/boot/vmlinuz-$KVER"
  # Every offset of the xz stream magic FD 37 7A 58 5A 00; the first one that
  # decompresses to an ELF image is the kernel.
  found=0
  for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$BZ" | cut -d: -f1); do
    tail -c +"$((off + 1))" "$BZ" | xz -dc --single-stream >"$VMLINUX.tmp" 2>/dev/null || true
    if [ "$(head -c 4 "$VMLINUX.tmp" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
      found=1
      break
    fi
  done
  [ "$found" = 1 ] || { rm -f "$VMLINUX.tmp"; log "no XZ-compressed ELF found in $BZ"; exit 1; }
  mv "$VMLINUX.tmp" "$VMLINUX"
  log "extracted $(du -h "$VMLINUX" | cut -f1) vmlinux"
fi

# ---------------------------------------------------------------- initramfs
NODE_BIN="$(readlink -f "$(command -v node)")"
NODE_HASH="$(sha256sum "$NODE_BIN" | cut -c1-16)"
SELF_HASH="$(cat "${BASH_SOURCE[0]}" "$ROOT/test/vm/guest/init" | sha256sum | cut -c1-12)"
INITRD="$CACHE/initramfs-$KVER-$NODE_HASH-$SELF_HASH.cpio"

# Modules requested explicitly (names as in modules.dep, '-' and '_' equal).
MODULES=(
  esp4 esp6 ah4 ah6 xfrm_user xfrm_algo xfrm4_tunnel xfrm6_tunnel tunnel4 tunnel6 af_key xfrm_interface
  gcm ghash_generic ghash_clmulni_intel ctr cbc aesni_intel chacha20poly1305 chacha_generic chacha_x86_64
  poly1305_generic poly1305_x86_64 authenc authencesn seqiv echainiv sha512_generic sha512_ssse3
  sha256_ssse3 sha1_ssse3 gf128mul cryptd crypto_simd ccm cmac xcbc des_generic des3_ede_x86_64
  drbg
  veth tun dummy 9p 9pnet 9pnet_virtio virtio_pci virtio_ring virtio netfs
)

if ! [ -s "$INITRD" ]; then
  log "building $INITRD"
  STAGE="$(mktemp -d "$CACHE/stage.XXXXXX")"
  trap 'rm -rf "$STAGE"' EXIT
  mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,lib64,proc,sys,dev,tmp,run,repo,etc,root,var}
  cp "$BUSYBOX" "$STAGE/bin/busybox"
  # busybox applets, but never the ones we ship for real (ip, bash) or that would shadow them.
  for a in $("$BUSYBOX" --list); do
    case "$a" in ip | bash | sh | busybox) continue ;; esac
    ln -s busybox "$STAGE/bin/$a"
  done
  ln -s busybox "$STAGE/bin/sh"
  for a in modprobe insmod rmmod lsmod depmod; do ln -sf ../bin/busybox "$STAGE/sbin/$a"; done

  copy_with_libs() { # $1 = binary, $2 = destination path inside the image
    install -D -m 0755 "$1" "$STAGE$2"
    ldd "$1" | awk '/=> \//{print $3} /^[[:space:]]*\/[^ ]*ld-linux/{print $1}' | while read -r lib; do
      [ -e "$STAGE$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$STAGE$lib"
    done
  }
  copy_with_libs "$NODE_BIN" /usr/bin/node
  copy_with_libs "$(readlink -f "$(command -v ip)")" /usr/sbin/ip
  copy_with_libs "$(readlink -f "$(command -v bash)")" /usr/bin/bash
  ln -sf ../usr/bin/bash "$STAGE/bin/bash"
  [ -e /etc/protocols ] && cp /etc/protocols "$STAGE/etc/"
  [ -e /etc/services ] && cp /etc/services "$STAGE/etc/"
  [ -d /etc/iproute2 ] && cp -r /etc/iproute2 "$STAGE/etc/"
  echo 'root:x:0:0:root:/root:/usr/bin/bash' >"$STAGE/etc/passwd"
  echo 'root:x:0:' >"$STAGE/etc/group"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$STAGE/etc/hosts"

  # Module closure through modules.dep (generated once for the full tree).
  if ! [ -s "$MODROOT/modules.dep" ]; then
    log "depmod of the full module tree"
    "$BUSYBOX" depmod -b "$KDIR" "$KVER"
  fi
  declare -A want=()
  resolve() { # module name -> relative .ko path via modules.dep
    local n="${1//-/_}"
    awk -F: -v n="$n" '{p=$1; b=p; sub(/.*\//,"",b); sub(/\.ko(\.[a-z]+)?$/,"",b); gsub(/-/,"_",b); if (b==n) {print $0; exit}}' "$MODROOT/modules.dep"
  }
  for m in "${MODULES[@]}"; do
    line="$(resolve "$m")"
    if [ -z "$line" ]; then
      # Built into the kernel? then nothing to copy.
      grep -qE "/${m//_/[-_]}\.ko" "$MODROOT/modules.builtin" || log "warning: module $m not found"
      continue
    fi
    for f in ${line/:/ }; do want["$f"]=1; done
  done
  for f in "${!want[@]}"; do install -D -m 0644 "$MODROOT/$f" "$STAGE/lib/modules/$KVER/$f"; done
  cp "$MODROOT"/modules.{order,builtin,builtin.modinfo} "$STAGE/lib/modules/$KVER/" 2>/dev/null || true
  "$BUSYBOX" depmod -b "$STAGE" "$KVER"
  printf '%s\n' "${MODULES[@]}" >"$STAGE/etc/coati-modules"

  install -m 0755 "$ROOT/test/vm/guest/init" "$STAGE/init"
  (cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc >"$INITRD.tmp" 2>/dev/null)
  mv "$INITRD.tmp" "$INITRD"
  rm -rf "$STAGE"
  trap - EXIT
  # keep only the current image
  find "$CACHE" -maxdepth 1 -name 'initramfs-*.cpio' ! -name "$(basename "$INITRD")" -delete
  log "initramfs $(du -h "$INITRD" | cut -f1), ${#want[@]} module files"
fi

cat >"$CACHE/current.env" <<EOF
KVER=$KVER
VMLINUX=$VMLINUX
INITRD=$INITRD
NODE_HASH=$NODE_HASH
NODE_BIN=$NODE_BIN
NODE_STAT=$(stat -c '%s-%Y' "$NODE_BIN")
SETUP_HASH=$SELF_HASH
EOF
log "ready: kernel $KVER, $(basename "$INITRD")"
