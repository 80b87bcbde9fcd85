#!/usr/bin/env bash
# Boot the coati test VM (Debian kernel with real ESP, see test/vm/README.md),
# run one command inside it under bash with the repo at /repo, print its
# stdout/stderr and exit with its status.
#
#   test/vm/run-in-vm.sh [--timeout SECONDS] [--] COMMAND...
#   e.g. test/vm/run-in-vm.sh -- 'ip xfrm state; node -v'
#
# The command's output goes through the 9p share (the serial console is slow);
# the console only carries the exit-status marker. qemu is always killed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="$ROOT/.cache/vm"
TIMEOUT=300
while [ $# -gt 0 ]; do
  case "$1" in
  --timeout) TIMEOUT=$2; shift 2 ;;
  --) shift; break ;;
  *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--timeout S] [--] COMMAND..." >&2; exit 2; }

if ! command -v qemu-system-x86_64 >/dev/null 2>&1 || ! [ -f "$CACHE/current.env" ]; then
  echo "coati VM: qemu or the kernel cache is missing: run bash .ci/vm-setup.sh first" >&2
  exit 3
fi
# shellcheck disable=SC1091
. "$CACHE/current.env"
for f in "$VMLINUX" "$INITRD"; do
  [ -s "$f" ] || { echo "coati VM: $f is missing: run bash .ci/vm-setup.sh first" >&2; exit 3; }
done

ID="sh-$$-$(date +%s%N)"
RUN="$CACHE/runs/$ID"
mkdir -p "$RUN"
printf 'export PATH=/usr/sbin:/usr/bin:/sbin:/bin\ncd /repo\n%s\n' "$*" >"$RUN/cmd.sh"
CONSOLE="$RUN/console.log"

QPID=
cleanup() {
  [ -n "$QPID" ] && kill -KILL "$QPID" 2>/dev/null || true
  rm -rf "$RUN"
}
trap cleanup EXIT

start=$(date +%s.%N)
qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 2G -smp 2 \
  -nographic -nodefaults -no-reboot -serial file:"$CONSOLE" -monitor none \
  -kernel "$VMLINUX" -initrd "$INITRD" \
  -virtfs local,path="$ROOT",mount_tag=repo,security_model=none \
  -append "console=ttyS0 quiet panic=-1 cryptomgr.notests=1 coati.run=$ID coati.timeout=$TIMEOUT" \
  </dev/null >"$RUN/qemu.out" 2>&1 &
QPID=$!

deadline=$(($(date +%s) + TIMEOUT + 60))
rc=
while :; do
  if m=$(grep -ao "@@COATI-DONE $ID [0-9]*@@" "$CONSOLE" 2>/dev/null); then
    rc=${m##* }
    rc=${rc%@@}
    break
  fi
  if grep -aq '@@COATI-FATAL' "$CONSOLE" 2>/dev/null || ! kill -0 "$QPID" 2>/dev/null; then
    break
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "coati VM: timeout after ${TIMEOUT}s" >&2
    break
  fi
  sleep 0.1
done
end=$(date +%s.%N)

[ -f "$RUN/stdout" ] && cat "$RUN/stdout"
[ -f "$RUN/stderr" ] && cat "$RUN/stderr" >&2
if [ -z "$rc" ]; then
  echo "coati VM: no exit marker; console:" >&2
  tail -n 40 "$CONSOLE" >&2 || true
  cat "$RUN/qemu.out" >&2 || true
  exit 125
fi
if [ -n "${COATI_VM_VERBOSE:-}" ]; then
  grep -ao '@@COATI-READY[^@]*@@' "$CONSOLE" >&2 || true
  echo "coati VM: wall $(echo "$end - $start" | bc 2>/dev/null || echo "?") s" >&2
fi
exit "$rc"
