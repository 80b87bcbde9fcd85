import { createHash } from 'node:crypto';
import { ipToBytes } from '../util/ip.js';
import type { Endpoint } from './env.js';

/** NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | Port), RFC 7296 2.23. */
export function natHash(spiI: Buffer, spiR: Buffer, ep: Endpoint): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(ep.port);
  return createHash('sha1').update(spiI).update(spiR).update(ipToBytes(ep.addr)).update(port).digest();
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
