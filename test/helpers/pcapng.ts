/**
 * Minimal pcapng reader for tests: enough to pull IKE datagrams out of the
 * golden captures (Ethernet/Linux-cooked, IPv4/IPv6, UDP 500/4500).
 */
import { readFileSync } from 'node:fs';

export interface UdpDatagram {
  /** 0-based index of the packet in the capture. */
  index: number;
  /** Timestamp in microseconds since the epoch. */
  tsMicros: bigint;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** UDP payload as captured (for port 4500 it still carries the non-ESP marker). */
  payload: Buffer;
}

interface Iface {
  linkType: number;
}

export function readPcapng(path: string): UdpDatagram[] {
  const b = readFileSync(path);
  const ifaces: Iface[] = [];
  const out: UdpDatagram[] = [];
  let off = 0;
  let le = true;
  let index = 0;
  while (off + 12 <= b.length) {
    const type = le ? b.readUInt32LE(off) : b.readUInt32BE(off);
    if (type === 0x0a0d0d0a) {
      const magic = b.readUInt32LE(off + 8);
      le = magic === 0x1a2b3c4d;
    }
    const len = le ? b.readUInt32LE(off + 4) : b.readUInt32BE(off + 4);
    if (len < 12 || off + len > b.length) break;
    const body = b.subarray(off + 8, off + len - 4);
    const u32 = (o: number) => (le ? body.readUInt32LE(o) : body.readUInt32BE(o));
    const u16 = (o: number) => (le ? body.readUInt16LE(o) : body.readUInt16BE(o));
    if (type === 1) {
      ifaces.push({ linkType: u16(0) });
    } else if (type === 6) {
      const ifId = u32(0);
      const ts = (BigInt(u32(4)) << 32n) | BigInt(u32(8));
      const capLen = u32(12);
      const pkt = body.subarray(20, 20 + capLen);
      const linkType = ifaces[ifId]?.linkType ?? 1;
      const d = decodeFrame(pkt, linkType);
      if (d) out.push({ index, tsMicros: ts, ...d });
      index++;
    }
    off += len;
  }
  return out;
}

function decodeFrame(pkt: Buffer, linkType: number): Omit<UdpDatagram, 'index' | 'tsMicros'> | undefined {
  let p = 0;
  let ethType: number;
  if (linkType === 1) {
    ethType = pkt.readUInt16BE(12);
    p = 14;
    while (ethType === 0x8100) {
      ethType = pkt.readUInt16BE(p + 2);
      p += 4;
    }
  } else if (linkType === 113) {
    ethType = pkt.readUInt16BE(14);
    p = 16;
  } else if (linkType === 276) {
    ethType = pkt.readUInt16BE(0);
    p = 20;
  } else if (linkType === 101) {
    ethType = pkt[0]! >> 4 === 6 ? 0x86dd : 0x0800;
  } else {
    return undefined;
  }
  let src: string;
  let dst: string;
  let proto: number;
  let l4: number;
  if (ethType === 0x0800) {
    const ihl = (pkt[p]! & 0x0f) * 4;
    proto = pkt[p + 9]!;
    src = [...pkt.subarray(p + 12, p + 16)].join('.');
    dst = [...pkt.subarray(p + 16, p + 20)].join('.');
    const total = pkt.readUInt16BE(p + 2);
    pkt = pkt.subarray(0, p + total);
    l4 = p + ihl;
  } else if (ethType === 0x86dd) {
    proto = pkt[p + 6]!;
    const addr = (o: number) => {
      const parts: string[] = [];
      for (let i = 0; i < 16; i += 2) parts.push(pkt.readUInt16BE(o + i).toString(16));
      return parts.join(':');
    };
    src = addr(p + 8);
    dst = addr(p + 24);
    l4 = p + 40;
  } else {
    return undefined;
  }
  if (proto !== 17) return undefined;
  const srcPort = pkt.readUInt16BE(l4);
  const dstPort = pkt.readUInt16BE(l4 + 2);
  const udpLen = pkt.readUInt16BE(l4 + 4);
  const payload = Buffer.from(pkt.subarray(l4 + 8, l4 + udpLen));
  return { src, dst, srcPort, dstPort, payload };
}
