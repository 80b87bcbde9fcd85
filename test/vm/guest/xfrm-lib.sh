# shellcheck shell=bash
# Guest-side helpers for test/vm/esp.test.ts (sourced by bash inside the VM).
# Two network namespaces "a" and "b" joined by a veth pair:
#   a: va 192.0.2.1/24 2001:db8:1::1/64, inner (tunnel) 10.1.0.1 fd00:1::1 on lo
#   b: vb 192.0.2.2/24 2001:db8:1::2/64, inner (tunnel) 10.2.0.1 fd00:2::1 on lo
# Neighbours are static, so the only packets between a and b are ours (ARP/ND
# never matches a policy and counters equal pings exactly).
# `ip -n NS -batch` everywhere: every process start costs ~50-100 ms under TCG.

A4=192.0.2.1 B4=192.0.2.2 A6=2001:db8:1::1 B6=2001:db8:1::2
IA4=10.1.0.1 IB4=10.2.0.1 IA6=fd00:1::1 IB6=fd00:2::1
MAC_A=02:00:00:00:00:0a MAC_B=02:00:00:00:00:0b
SPI_AB=0x0001000a SPI_BA=0x0001000b

inns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

topo_setup() {
  ip netns del a 2>/dev/null || true
  ip netns del b 2>/dev/null || true
  ip netns add a
  ip netns add b
  ip link add va netns a address $MAC_A type veth peer name vb netns b address $MAC_B
  for ns in a b; do
    inns $ns sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 >/dev/null
  done
  ip -n a -batch - <<END
link set lo up
addr add $A4/24 dev va
addr add $A6/64 dev va nodad
addr add $IA4/32 dev lo
addr add $IA6/128 dev lo nodad
link set va up
neigh replace $B4 lladdr $MAC_B dev va nud permanent
neigh replace $B6 lladdr $MAC_B dev va nud permanent
route add 10.2.0.0/24 via $B4 src $IA4
route add fd00:2::/64 via $B6 src $IA6
END
  ip -n b -batch - <<END
link set lo up
addr add $B4/24 dev vb
addr add $B6/64 dev vb nodad
addr add $IB4/32 dev lo
addr add $IB6/128 dev lo nodad
link set vb up
neigh replace $A4 lladdr $MAC_A dev vb nud permanent
neigh replace $A6 lladdr $MAC_A dev vb nud permanent
route add 10.1.0.0/24 via $A4 src $IB4
route add fd00:1::/64 via $A6 src $IB6
END
}

xfrm_flush() {
  for ns in a b; do
    ip -n $ns -batch - <<END
xfrm policy flush
xfrm state flush
END
  done
}

# alg_args ALG KEY4  (gcm|cbc; KEY4 = 4 key bytes in hex, repeated)
alg_args() {
  local k=$2
  case $1 in
  # gcm = AES-256 key + 4 B salt; cbc = AES-256 key, HMAC-SHA256 key 32 B.
  gcm) echo "aead rfc4106(gcm(aes)) 0x${k}${k}${k}${k}${k}${k}${k}${k}${k} 128" ;;
  cbc) echo "enc cbc(aes) 0x${k}${k}${k}${k}${k}${k}${k}${k} auth-trunc hmac(sha256) 0x${k}${k}${k}${k}${k}${k}${k}${k} 128" ;;
  *)
    echo "unknown alg $1" >&2
    return 2
    ;;
  esac
}

# install MODE FAMILY ALG [BKEY_AB]: SAs and policies in both namespaces.
# BKEY_AB overrides the key b uses for the a->b SA (wrong key: integrity failures).
install() {
  local mode=$1 fam=$2 alg=$3 kab=1a2b3c4d kba=5e6f7081 kab_b=${4:-1a2b3c4d} oa ob sa sb
  if [ "$fam" = 4 ]; then oa=$A4 ob=$B4; else oa=$A6 ob=$B6; fi
  if [ "$mode" = tunnel ]; then
    if [ "$fam" = 4 ]; then sa=$IA4/32 sb=$IB4/32; else sa=$IA6/128 sb=$IB6/128; fi
  else
    if [ "$fam" = 4 ]; then sa=$oa/32 sb=$ob/32; else sa=$oa/128 sb=$ob/128; fi
  fi
  ip -n a -batch - <<END
xfrm state add src $oa dst $ob proto esp spi $SPI_AB reqid 1 mode $mode $(alg_args "$alg" $kab)
xfrm state add src $ob dst $oa proto esp spi $SPI_BA reqid 2 mode $mode $(alg_args "$alg" $kba)
xfrm policy add src $sa dst $sb dir out tmpl src $oa dst $ob proto esp reqid 1 mode $mode
xfrm policy add src $sb dst $sa dir in tmpl src $ob dst $oa proto esp reqid 2 mode $mode
END
  ip -n b -batch - <<END
xfrm state add src $oa dst $ob proto esp spi $SPI_AB reqid 1 mode $mode $(alg_args "$alg" $kab_b)
xfrm state add src $ob dst $oa proto esp spi $SPI_BA reqid 2 mode $mode $(alg_args "$alg" $kba)
xfrm policy add src $sb dst $sa dir out tmpl src $ob dst $oa proto esp reqid 2 mode $mode
xfrm policy add src $sa dst $sb dir in tmpl src $oa dst $ob proto esp reqid 1 mode $mode
END
}

# ping_ab MODE FAMILY COUNT: ping b from a through the SAs; prints busybox ping's output.
ping_ab() {
  local mode=$1 fam=$2 n=$3 src dst
  if [ "$mode" = tunnel ]; then
    if [ "$fam" = 4 ]; then src=$IA4 dst=$IB4; else src=$IA6 dst=$IB6; fi
  else
    if [ "$fam" = 4 ]; then src=$A4 dst=$B4; else src=$A6 dst=$B6; fi
  fi
  inns a ping -"$fam" -c "$n" -i 0.2 -W 2 -I "$src" "$dst"
}

# counters: one line per SA per namespace:
#   SA ns=a spi=0x0001000a mode=tunnel bytes=420 packets=5 failed=0
counters() {
  for ns in a b; do
    ip -n $ns -s xfrm state | awk -v ns=$ns '
      /proto esp spi/ { for (i = 1; i <= NF; i++) { if ($i == "spi") spi = $(i + 1); if ($i == "mode") mode = $(i + 1) }; sub(/\(.*/, "", spi) }
      /\(bytes\), .*\(packets\)/ { b = $1; p = $2; sub(/\(.*/, "", b); sub(/\(.*/, "", p) }
      /replay-window .* failed/ { for (i = 1; i <= NF; i++) if ($i == "failed") f = $(i + 1);
        printf "SA ns=%s spi=%s mode=%s bytes=%s packets=%s failed=%s\n", ns, spi, mode, b, p, f }'
  done
}

# xfrm_errors: non-zero lines of /proc/net/xfrm_stat in each namespace.
xfrm_errors() {
  for ns in a b; do
    inns $ns awk -v ns=$ns '$2 != 0 { print "XFRMSTAT ns=" ns " " $1 "=" $2 }' /proc/net/xfrm_stat
  done
}

# scenario MODE FAMILY ALG COUNT [BKEY_AB]: flush, install, ping, report.
# Prints ping's summary, SA lines and XFRMSTAT lines; exit status is ping's.
scenario() {
  local rc=0
  xfrm_flush
  install "$1" "$2" "$3" "${5:-}" || return 90
  ping_ab "$1" "$2" "$4" >/tmp/ping.out || rc=$?
  tail -n 2 /tmp/ping.out
  counters
  xfrm_errors
  return $rc
}
