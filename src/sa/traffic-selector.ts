import { bigIntToBytes, bytesToBigInt, bytesToIp, type Family, ipFamily, ipToBytes } from '../util/ip.js';

/**
 * A traffic selector as IKEv2 carries it: an address range, a port range and
 * an IP protocol (0 = any). Addresses are bigints for range arithmetic.
 */
export interface TrafficSelector {
  family: Family;
  proto: number;
  startPort: number;
  endPort: number;
  start: bigint;
  end: bigint;
}

const MAX = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n } as const;
const BYTES = { 4: 4, 6: 16 } as const;
const PROTO_NAMES: Record<string, number> = {
  any: 0,
  icmp: 1,
  tcp: 6,
  udp: 17,
  ipv6icmp: 58,
  'ipv6-icmp': 58,
  gre: 47,
};

export class TrafficSelectorError extends Error {
  override name = 'TrafficSelectorError';
}

/**
 * Parses "10.1.0.0/24", "10.1.0.5", "fd00::/64", optionally with
 * "[proto/port]" or "[proto/lo-hi]" (e.g. "10.0.0.0/8[udp/53]").
 */
export function parseTrafficSelector(text: string): TrafficSelector {
  const m = /^([^[\]]+?)(?:\[([a-z0-9-]+)(?:\/(\d+)(?:-(\d+))?)?\])?$/i.exec(text.trim());
  if (!m) throw new TrafficSelectorError(`bad traffic selector "${text}"`);
  const [, prefix = '', protoText, lo, hi] = m;
  const [addr = '', lenText] = prefix.split('/');
  const family = ipFamily(addr);
  if (!family) throw new TrafficSelectorError(`bad address "${addr}" in traffic selector "${text}"`);
  const bits = family === 4 ? 32 : 128;
  const len = lenText === undefined ? bits : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > bits || (lenText !== undefined && !/^\d+$/.test(lenText))) {
    throw new TrafficSelectorError(`bad prefix length "/${lenText}" in traffic selector "${text}"`);
  }
  const base = bytesToBigInt(ipToBytes(addr));
  const hostMask = (1n << BigInt(bits - len)) - 1n;
  let proto = 0;
  if (protoText !== undefined) {
    const named = PROTO_NAMES[protoText.toLowerCase()];
    proto = named ?? Number(protoText);
    if (!Number.isInteger(proto) || proto < 0 || proto > 255) {
      throw new TrafficSelectorError(`bad protocol "${protoText}" in traffic selector "${text}"`);
    }
  }
  const startPort = lo === undefined ? 0 : Number(lo);
  const endPort = lo === undefined ? 65535 : Number(hi ?? lo);
  if (startPort > 65535 || endPort > 65535 || startPort > endPort) {
    throw new TrafficSelectorError(`bad port range in traffic selector "${text}"`);
  }
  return { family, proto, startPort, endPort, start: base & ~hostMask, end: (base & ~hostMask) | hostMask };
}

/** Host selector for one address. */
export function hostSelector(addr: string): TrafficSelector {
  return parseTrafficSelector(addr);
}

export function formatTrafficSelector(ts: TrafficSelector): string {
  const prefixes = rangeToPrefixes(ts);
  const addr = prefixes.length === 1 ? prefixes[0] : `${addrText(ts.family, ts.start)}-${addrText(ts.family, ts.end)}`;
  if (ts.proto === 0 && ts.startPort === 0 && ts.endPort === 65535) return addr as string;
  const proto = Object.entries(PROTO_NAMES).find(([, v]) => v === ts.proto)?.[0] ?? String(ts.proto);
  if (ts.startPort === 0 && ts.endPort === 65535) return `${addr}[${proto}]`;
  const ports = ts.startPort === ts.endPort ? `${ts.startPort}` : `${ts.startPort}-${ts.endPort}`;
  return `${addr}[${proto}/${ports}]`;
}

function addrText(family: Family, v: bigint): string {
  return bytesToIp(bigIntToBytes(v, BYTES[family]));
}

/** Intersection of two selectors, or undefined when they share nothing. */
export function intersect(a: TrafficSelector, b: TrafficSelector): TrafficSelector | undefined {
  if (a.family !== b.family) return undefined;
  if (a.proto !== 0 && b.proto !== 0 && a.proto !== b.proto) return undefined;
  const start = a.start > b.start ? a.start : b.start;
  const end = a.end < b.end ? a.end : b.end;
  if (start > end) return undefined;
  const startPort = Math.max(a.startPort, b.startPort);
  const endPort = Math.min(a.endPort, b.endPort);
  if (startPort > endPort) return undefined;
  return { family: a.family, proto: a.proto || b.proto, startPort, endPort, start, end };
}

export function equalSelectors(a: TrafficSelector, b: TrafficSelector): boolean {
  return (
    a.family === b.family &&
    a.proto === b.proto &&
    a.startPort === b.startPort &&
    a.endPort === b.endPort &&
    a.start === b.start &&
    a.end === b.end
  );
}

/** True when `inner` lies wholly inside `outer`. */
export function contains(outer: TrafficSelector, inner: TrafficSelector): boolean {
  const i = intersect(outer, inner);
  return i !== undefined && equalSelectors(i, inner);
}

/**
 * Responder-side narrowing (RFC 7296 2.9): the proposed selectors cut down to
 * what our configuration allows. Duplicates and selectors contained in others
 * are dropped; order follows the proposal.
 */
export function narrow(proposed: readonly TrafficSelector[], allowed: readonly TrafficSelector[]): TrafficSelector[] {
  const out: TrafficSelector[] = [];
  for (const p of proposed) {
    for (const a of allowed) {
      const i = intersect(p, a);
      if (i && !out.some((o) => contains(o, i))) {
        for (let k = out.length - 1; k >= 0; k--) if (contains(i, out[k] as TrafficSelector)) out.splice(k, 1);
        out.push(i);
      }
    }
  }
  return out;
}

/** The range as CIDR prefixes, for kernel selectors (which are prefix-based). */
export function rangeToPrefixes(ts: TrafficSelector): string[] {
  const bits = ts.family === 4 ? 32 : 128;
  const out: string[] = [];
  let cur = ts.start;
  while (cur <= ts.end) {
    let size = 0;
    while (size < bits) {
      const next = size + 1;
      const mask = (1n << BigInt(next)) - 1n;
      if ((cur & mask) !== 0n || cur + mask > ts.end) break;
      size = next;
    }
    out.push(`${addrText(ts.family, cur)}/${bits - size}`);
    cur += 1n << BigInt(size);
    if (cur > MAX[ts.family]) break;
  }
  return out;
}

/** IKEv2 TS wire form (TS_IPV4_ADDR_RANGE = 7, TS_IPV6_ADDR_RANGE = 8). */
export interface WireSelector {
  tsType: number;
  ipProto: number;
  startPort: number;
  endPort: number;
  startAddr: Buffer;
  endAddr: Buffer;
}

export function toWireSelector(ts: TrafficSelector): WireSelector {
  return {
    tsType: ts.family === 4 ? 7 : 8,
    ipProto: ts.proto,
    startPort: ts.startPort,
    endPort: ts.endPort,
    startAddr: bigIntToBytes(ts.start, BYTES[ts.family]),
    endAddr: bigIntToBytes(ts.end, BYTES[ts.family]),
  };
}

/** Undefined for selector types we do not support (they are ignored, RFC 7296 3.13.1). */
export function fromWireSelector(w: WireSelector): TrafficSelector | undefined {
  const family: Family | undefined = w.tsType === 7 ? 4 : w.tsType === 8 ? 6 : undefined;
  if (!family || w.startAddr.length !== BYTES[family] || w.endAddr.length !== BYTES[family]) return undefined;
  const start = bytesToBigInt(w.startAddr);
  const end = bytesToBigInt(w.endAddr);
  if (start > end || w.startPort > w.endPort) return undefined;
  return { family, proto: w.ipProto, startPort: w.startPort, endPort: w.endPort, start, end };
}

/**
 * Transport mode through a NAT (RFC 7296 2.23.1; RFC 3947 for IKEv1): a host behind the NAT
 * proposes its own, private address, and the other end knows it by the NAT's. Each
 * single-host selector of `ts` (of `ikeAddr`'s family) becomes `ikeAddr`, the address the
 * IKE SA sees for that side, ports and protocol kept. `original` is the first replaced
 * address (for NAT-OA); undefined when nothing was replaced.
 */
export function natSubstitute(
  ts: readonly TrafficSelector[],
  ikeAddr: string,
): { ts: TrafficSelector[]; original?: string } {
  const host = hostSelector(ikeAddr);
  let original: string | undefined;
  const out = ts.map((t) => {
    if (t.family !== host.family || t.start !== t.end || t.start === host.start) return t;
    original ??= bytesToIp(bigIntToBytes(t.start, BYTES[t.family]));
    return { ...t, start: host.start, end: host.end };
  });
  return original === undefined ? { ts: out } : { ts: out, original };
}
