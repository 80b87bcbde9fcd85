/**
 * Access to the golden strongSwan 5.9.8 captures in test/fixtures/golden.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readPcapng, type UdpDatagram } from './pcapng.js';

export const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'golden');

export function goldenCaptures(): string[] {
  return readdirSync(join(GOLDEN_DIR, 'pcaps'))
    .filter((f) => f.endsWith('.pcapng'))
    .map((f) => f.replace(/\.pcapng$/, ''))
    .sort();
}

export interface IkeDatagram extends UdpDatagram {
  /** The IKE message proper (non-ESP marker stripped on port 4500). */
  ike: Buffer;
}

/**
 * IKE datagrams of a capture. On port 4500 the 4-byte non-ESP marker is
 * stripped; ESP-in-UDP packets (non-zero first word) and NAT-T keepalives
 * (single 0xff byte) are skipped.
 */
export function goldenIke(name: string): IkeDatagram[] {
  const out: IkeDatagram[] = [];
  for (const d of readPcapng(join(GOLDEN_DIR, 'pcaps', `${name}.pcapng`))) {
    if (d.srcPort === 4500 || d.dstPort === 4500) {
      if (d.payload.length < 4 || d.payload.readUInt32BE(0) !== 0) continue;
      out.push({ ...d, ike: d.payload.subarray(4) });
    } else if (d.srcPort === 500 || d.dstPort === 500) {
      out.push({ ...d, ike: d.payload });
    }
  }
  return out;
}

/** IKE version (major) of a message: 2 for IKEv2, 1 for ISAKMP. */
export function ikeMajorVersion(ike: Buffer): number {
  return (ike[17] ?? 0) >> 4;
}
