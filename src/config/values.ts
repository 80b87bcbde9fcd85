/**
 * Scalar field parsers: each takes a located node and returns a value or
 * what was expected. They never throw.
 */
import { isIP } from 'node:net';
import type { LNode } from './toml-tree.js';
import { describeNode } from './toml-tree.js';

export type FieldResult<T> = { ok: true; value: T } | { ok: false; expected: string; found?: string };
export type Field<T> = (n: LNode) => FieldResult<T>;

const ok = <T>(value: T): FieldResult<T> => ({ ok: true, value });
const bad = (expected: string, n: LNode, found?: string): FieldResult<never> => ({
  ok: false,
  expected,
  found: found ?? describeNode(n),
});

export const str: Field<string> = (n) =>
  n.kind === 'string' && n.value !== '' ? ok(n.value) : bad('a non-empty string', n);

export const bool: Field<boolean> = (n) => (n.kind === 'boolean' ? ok(n.value) : bad('true or false', n));

export function int(min: number, max: number): Field<number> {
  return (n) =>
    n.kind === 'integer' && n.value >= BigInt(min) && n.value <= BigInt(max)
      ? ok(Number(n.value))
      : bad(`an integer from ${min} to ${max}`, n);
}

export const port = int(1, 65535);

export function oneOf<const T extends string>(...values: T[]): Field<T> {
  const expected = values.map((v) => JSON.stringify(v)).join(' or ');
  return (n) => (n.kind === 'string' && (values as string[]).includes(n.value) ? ok(n.value as T) : bad(expected, n));
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "30s", "90m", "4h", "1h30m", "250ms" to milliseconds. */
export function parseDuration(text: string): number | undefined {
  const re = /(\d+)(ms|s|m|h|d)/gy;
  let total = 0;
  let pos = 0;
  for (;;) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (m === null) break;
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? 0);
    pos = re.lastIndex;
  }
  return pos === text.length && pos > 0 ? total : undefined;
}

export const duration: Field<number> = (n) => {
  if (n.kind === 'string') {
    const ms = parseDuration(n.value);
    if (ms !== undefined) return ok(ms);
  }
  return bad('a duration like "10s"', n);
};

/** TOML boolean or "yes"/"no". */
export const yesNo: Field<boolean> = (n) => {
  if (n.kind === 'boolean') return ok(n.value);
  if (n.kind === 'string' && (n.value === 'yes' || n.value === 'no')) return ok(n.value === 'yes');
  return bad('"yes" or "no"', n);
};

const HOSTNAME =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$/;

export function isHostname(s: string): boolean {
  return HOSTNAME.test(s) && !/^[\d.]+$/.test(s);
}

export const ipAddress: Field<string> = (n) =>
  n.kind === 'string' && isIP(n.value) !== 0 ? ok(n.value) : bad('an IPv4 or IPv6 address', n);

export const hostOrIp: Field<string> = (n) =>
  n.kind === 'string' && (isIP(n.value) !== 0 || isHostname(n.value))
    ? ok(n.value)
    : bad('an IPv4/IPv6 address or a hostname', n);

export interface HostPort {
  host: string;
  port: number;
}

/** "host:port" or "[v6]:port"; "off" → null. */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  if (m === null) return undefined;
  const host = m[1] ?? m[2] ?? '';
  const p = Number(m[3]);
  if (p < 1 || p > 65535) return undefined;
  if (m[1] !== undefined && isIP(host) !== 6) return undefined;
  if (m[2] !== undefined && isIP(host) === 0 && !isHostname(host)) return undefined;
  return { host, port: p };
}

export const hostPortOrOff: Field<HostPort | null> = (n) => {
  if (n.kind === 'string') {
    if (n.value === 'off') return ok(null);
    const hp = parseHostPort(n.value);
    if (hp !== undefined) return ok(hp);
  }
  return bad('"host:port" (e.g. "127.0.0.1:9477") or "off"', n);
};

/** A path string, or "off" → null. */
export const pathOrOff: Field<string | null> = (n) =>
  n.kind === 'string' && n.value !== '' ? ok(n.value === 'off' ? null : n.value) : bad('a path or "off"', n);

export function listOf<T>(item: Field<T>, opts: { single?: boolean } = {}): Field<T[]> {
  return (n) => {
    const items = n.kind === 'array' ? n.items : opts.single ? [n] : undefined;
    if (items === undefined) return bad('an array', n);
    const out: T[] = [];
    for (const it of items) {
      const r = item(it);
      if (!r.ok) return r;
      out.push(r.value);
    }
    return ok(out);
  };
}

export interface Prefix {
  family: 4 | 6;
  address: string;
  length: number;
  /** Canonical "addr/len". */
  text: string;
}

/** "10.0.0.0/24", "fd00::/64", or a bare address (host prefix). */
export function parsePrefix(text: string): Prefix | undefined {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const fam = isIP(addr);
  if (fam === 0) return undefined;
  const family = fam as 4 | 6;
  const max = family === 4 ? 32 : 128;
  let length = max;
  if (slash >= 0) {
    const l = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l)) return undefined;
    length = Number(l);
    if (length > max) return undefined;
  }
  return { family, address: addr, length, text: `${addr}/${length}` };
}

export const prefix: Field<Prefix> = (n) => {
  const p = n.kind === 'string' ? parsePrefix(n.value) : undefined;
  return p !== undefined ? ok(p) : bad('an IP prefix like "10.1.0.0/16" or "fd00::/64"', n);
};

/** Kernel SPD hash thresholds: prefix lengths from which policies are hashed (local/remote). */
export type SpdHash = 'auto' | { lbits: number; rbits: number };

/** `"auto"` or `"L/R"` with 0 <= L, R <= max (32 for IPv4, 128 for IPv6). */
export function spdHash(max: 32 | 128): Field<SpdHash> {
  return (n) => {
    if (n.kind === 'string') {
      if (n.value === 'auto') return ok('auto');
      const m = /^(\d{1,3})\/(\d{1,3})$/.exec(n.value);
      const lbits = Number(m?.[1]);
      const rbits = Number(m?.[2]);
      if (m && lbits <= max && rbits <= max) return ok({ lbits, rbits });
    }
    return bad(`"auto" or "local/remote" prefix lengths up to ${max} (e.g. "${max === 32 ? '24/24' : '64/64'}")`, n);
  };
}
