/** Textual IPv4/IPv6 addresses and prefixes <-> xfrm_address_t (16 raw bytes). */
import { bytesToIp, ipFamily, ipToBytes } from '../../util/ip.js';
import { AF } from './constants.js';

export interface RawAddr {
  family: 4 | 6;
  bytes: Buffer; // 16 bytes, IPv4 in the first 4
}

/** Parses a textual address (a `%zone` suffix is ignored); throws RangeError on anything else. */
export function parseAddr(text: string): RawAddr {
  const t = text.replace(/%.*$/, '');
  const family = ipFamily(t);
  if (!family) throw new RangeError(`not an IP address: ${JSON.stringify(text)}`);
  const bytes = Buffer.alloc(16);
  ipToBytes(t).copy(bytes);
  return { family, bytes };
}

/** Canonical text (RFC 5952 for IPv6) of the first 4 or 16 bytes of an xfrm_address_t. */
export function formatAddr(bytes: Buffer, family: 4 | 6): string {
  return bytesToIp(bytes.subarray(0, family === 4 ? 4 : 16));
}

export interface RawPrefix extends RawAddr {
  len: number;
}

/** "10.0.0.0/24", "fd00::/64", or a bare address (host prefix). */
export function parsePrefix(text: string): RawPrefix {
  const slash = text.indexOf('/');
  const a = parseAddr(slash < 0 ? text : text.slice(0, slash));
  const max = a.family === 4 ? 32 : 128;
  const len = slash < 0 ? max : Number(text.slice(slash + 1));
  if (!Number.isInteger(len) || len < 0 || len > max || (slash >= 0 && !/^\d+$/.test(text.slice(slash + 1)))) {
    throw new RangeError(`bad prefix length in ${JSON.stringify(text)}`);
  }
  return { ...a, len };
}

export function formatPrefix(bytes: Buffer, family: 4 | 6, len: number): string {
  return `${formatAddr(bytes, family)}/${len}`;
}

export const familyToAf = (f: 4 | 6): number => (f === 4 ? AF.INET : AF.INET6);
export function afToFamily(af: number): 4 | 6 | undefined {
  return af === AF.INET ? 4 : af === AF.INET6 ? 6 : undefined;
}
