/**
 * ID payload data (RFC 2407 4.6.2) to and from text, and address-type IDs
 * as inclusive address ranges (what phase-2 IDci/IDcr selectors mean).
 */
import { isIPv4, isIPv6 } from 'node:net';
import { MalformedMessageError } from '../errors.js';
import { V1IdType } from './constants.js';
import { V1EncodeError } from './errors.js';

const WHERE = 'ID data';

function fail(msg: string, at = 0): never {
  throw new MalformedMessageError(msg, at, WHERE);
}

/** Text form of a 4- or 16-octet address (IPv6 compressed per RFC 5952). */
export function ipToText(addr: Uint8Array): string {
  if (addr.length === 4) return Array.from(addr).join('.');
  if (addr.length !== 16) fail(`address of ${addr.length} octets`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((addr[i] as number) << 8) | (addr[i + 1] as number));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Octets of an IPv4 or IPv6 address in text form. */
export function ipFromText(text: string): Buffer {
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  if (!isIPv6(text) || text.includes('.') || text.includes('%')) {
    throw new V1EncodeError(`not an IP address (dotted-quad IPv6 tails unsupported): ${text}`);
  }
  const [head = '', tail] = text.split('::');
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  const groups = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(g, i * 2);
  return out;
}

/** Prefix length of a contiguous netmask, or undefined if the mask has holes. */
export function maskToPrefix(mask: Uint8Array): number | undefined {
  let prefix = 0;
  let seenZero = false;
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      if ((byte >> bit) & 1) {
        if (seenZero) return undefined;
        prefix++;
      } else seenZero = true;
    }
  }
  return prefix;
}

function prefixToMask(prefix: number, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (0xff << (8 - bits)) & 0xff;
  }
  return out;
}

function addrLen(idType: number): 4 | 16 | undefined {
  switch (idType) {
    case V1IdType.IPV4_ADDR:
    case V1IdType.IPV4_ADDR_SUBNET:
    case V1IdType.IPV4_ADDR_RANGE:
      return 4;
    case V1IdType.IPV6_ADDR:
    case V1IdType.IPV6_ADDR_SUBNET:
    case V1IdType.IPV6_ADDR_RANGE:
      return 16;
    default:
      return undefined;
  }
}

function isPair(idType: number): boolean {
  return idType !== V1IdType.IPV4_ADDR && idType !== V1IdType.IPV6_ADDR;
}

/**
 * Inclusive address range of an address-type ID (single address, subnet
 * address/mask, or range). Undefined for non-address ID types; malformed
 * lengths and inverted ranges throw MalformedMessageError.
 */
export function v1IdAddressRange(idType: number, data: Uint8Array): { start: Buffer; end: Buffer } | undefined {
  const n = addrLen(idType);
  if (n === undefined) return undefined;
  const want = isPair(idType) ? 2 * n : n;
  if (data.length !== want) fail(`ID type ${idType} needs ${want} octets, has ${data.length}`);
  const a = Buffer.from(data.subarray(0, n));
  if (!isPair(idType)) return { start: a, end: Buffer.from(a) };
  const b = Buffer.from(data.subarray(n, 2 * n));
  if (idType === V1IdType.IPV4_ADDR_SUBNET || idType === V1IdType.IPV6_ADDR_SUBNET) {
    const start = Buffer.alloc(n);
    const end = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      start[i] = (a[i] as number) & (b[i] as number);
      end[i] = start[i]! | (~(b[i] as number) & 0xff);
    }
    return { start, end };
  }
  if (Buffer.compare(a, b) > 0) fail('range start after range end', n);
  return { start: a, end: b };
}

/**
 * Text form of ID data: addresses, `net/prefix` (or `net/mask` for a
 * non-contiguous mask), `start-end`, FQDN/USER_FQDN as text, DN/GN/KEY_ID
 * and unknown types as `0x<hex>`.
 */
export function formatV1IdData(idType: number, data: Uint8Array): string {
  const n = addrLen(idType);
  if (n !== undefined) {
    const range = v1IdAddressRange(idType, data)!;
    if (!isPair(idType)) return ipToText(range.start);
    const a = data.subarray(0, n);
    const b = data.subarray(n);
    if (idType === V1IdType.IPV4_ADDR_RANGE || idType === V1IdType.IPV6_ADDR_RANGE) {
      return `${ipToText(a)}-${ipToText(b)}`;
    }
    const prefix = maskToPrefix(b);
    return `${ipToText(a)}/${prefix ?? ipToText(b)}`;
  }
  if (idType === V1IdType.FQDN || idType === V1IdType.USER_FQDN) return Buffer.from(data).toString('latin1');
  return `0x${Buffer.from(data).toString('hex')}`;
}

/**
 * ID data from text for the address types (`a`, `net/prefix`, `a-b`) and
 * FQDN/USER_FQDN; other types take raw bytes and are not handled here.
 */
export function v1IdDataFromText(idType: number, text: string): Buffer {
  const n = addrLen(idType);
  if (n === undefined) {
    if (idType === V1IdType.FQDN || idType === V1IdType.USER_FQDN) return Buffer.from(text, 'latin1');
    throw new V1EncodeError(`ID type ${idType} has no text form`);
  }
  const check = (b: Buffer) => {
    if (b.length !== n) throw new V1EncodeError(`address family does not match ID type ${idType}: ${text}`);
    return b;
  };
  if (!isPair(idType)) return check(ipFromText(text));
  if (idType === V1IdType.IPV4_ADDR_RANGE || idType === V1IdType.IPV6_ADDR_RANGE) {
    const [a, b, extra] = text.split('-');
    if (a === undefined || b === undefined || extra !== undefined) throw new V1EncodeError(`bad range: ${text}`);
    return Buffer.concat([check(ipFromText(a)), check(ipFromText(b))]);
  }
  const [a, p, extra] = text.split('/');
  const prefix = Number(p);
  if (a === undefined || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > n * 8) {
    throw new V1EncodeError(`bad subnet: ${text}`);
  }
  const mask = prefixToMask(prefix, n);
  const net = check(ipFromText(a)).map((x, i) => x & (mask[i] as number));
  return Buffer.concat([Buffer.from(net), mask]);
}
