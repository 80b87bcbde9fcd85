import { isIPv4, isIPv6 } from 'node:net';

/** Address family helpers shared by selectors, identities, NAT-D and the kernel layer. */
export type Family = 4 | 6;

export function ipFamily(addr: string): Family | undefined {
  if (isIPv4(addr)) return 4;
  if (isIPv6(addr)) return 6;
  return undefined;
}

/** Address text → network-order bytes (4 or 16). Throws TypeError on bad input. */
export function ipToBytes(addr: string): Buffer {
  if (isIPv4(addr)) return Buffer.from(addr.split('.').map((p) => Number(p)));
  if (!isIPv6(addr)) throw new TypeError(`not an IP address: ${addr}`);
  let text = addr;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // Embedded IPv4 tail (::ffff:1.2.3.4).
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = ipToBytes(tail);
    text = `${text.slice(0, lastColon + 1)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const r = rest ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...new Array(8 - h.length - r.length).fill('0'), ...r];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g || '0', 16), i * 2);
  return out;
}

/** Network-order bytes → canonical address text (RFC 5952 for IPv6). */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new TypeError(`address must be 4 or 16 bytes, got ${b.length}`);
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i] as number) << 8) | (b[i + 1] as number));
  // Longest run of zero groups (length >= 2) becomes '::'.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function bytesToBigInt(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

export function bigIntToBytes(v: bigint, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}
