import { createHash } from 'node:crypto';
import { ipToBytes } from '../util/ip.js';
import type { Endpoint } from './env.js';

/** Address bytes of the few addresses an engine talks from and to (bounded; starts over when full). */
const addrBytes = new Map<string, Buffer>();

function bytesOf(addr: string): Buffer {
  let b = addrBytes.get(addr);
  if (b === undefined) {
    b = ipToBytes(addr);
    if (addrBytes.size >= 4096) addrBytes.clear();
    addrBytes.set(addr, b);
  }
  return b;
}

/** NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | Port), RFC 7296 2.23. */
export function natHash(spiI: Buffer, spiR: Buffer, ep: Endpoint): Buffer {
  const ip = bytesOf(ep.addr);
  // One input buffer, one update: four updates each crossed into OpenSSL.
  const input = Buffer.allocUnsafe(spiI.length + spiR.length + ip.length + 2);
  let at = spiI.copy(input, 0);
  at += spiR.copy(input, at);
  at += ip.copy(input, at);
  input.writeUInt16BE(ep.port, at);
  return createHash('sha1').update(input).digest();
}

/**
 * Evaluates the peer's NAT-D notifies. `local` is behind a NAT when no
 * DESTINATION hash matches our address as we see it; `remote` when no SOURCE
 * hash matches the packet's source. Without NAT-D data nothing is detected.
 */
export function detectNat(
  spiI: Buffer,
  spiR: Buffer,
  local: Endpoint,
  remote: Endpoint,
  sourceHashes: readonly Buffer[],
  destinationHashes: readonly Buffer[],
): { local: boolean; remote: boolean } {
  if (sourceHashes.length === 0 || destinationHashes.length === 0) return { local: false, remote: false };
  const ours = natHash(spiI, spiR, local);
  const theirs = natHash(spiI, spiR, remote);
  return {
    local: !destinationHashes.some((h) => h.equals(ours)),
    remote: !sourceHashes.some((h) => h.equals(theirs)),
  };
}
