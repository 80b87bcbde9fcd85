/** Textual IPv4/IPv6 addresses and prefixes <-> xfrm_address_t (16 raw bytes). */
import { isIPv4, isIPv6 } from 'node:net';
import { AF } from './constants.js';

export interface RawAddr {
  family: 4 | 6;
  bytes: Buffer; // 16 bytes, IPv4 in the first 4
}

function parseV6(text: string): Buffer {
  let s = text;
  const m = s.match(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (m) {
    const [a, b, c, d] = m.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, m.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const dbl = s.indexOf('::');
  const head = dbl < 0 ? s : s.slice(0, dbl);
  const tail = dbl < 0 ? '' : s.slice(dbl + 2);
  const hs = head ? head.split(':') : [];
  const ts = tail ? tail.split(':') : [];
  const fill = dbl < 0 ? 0 : 8 - hs.length - ts.length;
  const groups = [...hs, ...new Array<string>(fill).fill('0'), ...ts];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return out;
}

/** Parses a textual address; throws RangeError on anything else. */
export function parseAddr(text: string): RawAddr {
  const t = text.replace(/%.*$/, '');
  if (isIPv4(t)) {
    const b = Buffer.alloc(16);
    t.split('.').forEach((o, i) => {
      b.writeUInt8(Number(o), i);
    });
    return { family: 4, bytes: b };
  }
  if (isIPv6(t)) return { family: 6, bytes: parseV6(t) };
  throw new RangeError(`not an IP address: ${JSON.stringify(text)}`);
}

export function formatAddr(bytes: Buffer, family: 4 | 6): string {
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(bytes.readUInt16BE(i * 2));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
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
