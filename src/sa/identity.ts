import { bytesToIp, ipFamily, ipToBytes } from '../util/ip.js';

/**
 * Peer and local identities. Text form in config and logs:
 * `ip:10.0.0.1`, `ip:fd00::1`, `fqdn:host.example`, `email:ops@example`,
 * `keyid:0a1b2c` (hex), `dn:<base64 DER>` is not accepted from config yet;
 * DNs arrive from certificates as DER and compare byte-wise.
 */
export type IdentityKind = 'ipv4' | 'ipv6' | 'fqdn' | 'email' | 'dn' | 'keyid';

export interface Identity {
  kind: IdentityKind;
  /** Canonical text for logs and comparisons (DN: hex of the DER). */
  text: string;
  /** ID payload data as sent on the wire. */
  data: Buffer;
}

/** IKEv2 ID types (RFC 7296 3.5); IKEv1 uses 1, 2, 3, 5, 9, 11 for the same kinds. */
export const ID_TYPE_OF: Record<IdentityKind, number> = { ipv4: 1, fqdn: 2, email: 3, ipv6: 5, dn: 9, keyid: 11 };
const KIND_OF: Record<number, IdentityKind> = { 1: 'ipv4', 2: 'fqdn', 3: 'email', 5: 'ipv6', 9: 'dn', 11: 'keyid' };

export class IdentityError extends Error {
  override name = 'IdentityError';
}

export function parseIdentity(text: string): Identity {
  const i = text.indexOf(':');
  const prefix = i > 0 ? text.slice(0, i).toLowerCase() : '';
  const value = text.slice(i + 1);
  switch (prefix) {
    case 'ip': {
      const fam = ipFamily(value);
      if (!fam) throw new IdentityError(`identity "${text}": "${value}" is not an IP address`);
      return ipIdentity(value);
    }
    case 'fqdn':
      if (!/^[A-Za-z0-9_.-]+$/.test(value) || value.length > 253) {
        throw new IdentityError(`identity "${text}": "${value}" is not a host name`);
      }
      return { kind: 'fqdn', text: `fqdn:${value.toLowerCase()}`, data: Buffer.from(value, 'ascii') };
    case 'email':
      if (!/^[^@\s]+@[^@\s]+$/.test(value))
        throw new IdentityError(`identity "${text}": "${value}" is not an email address`);
      return { kind: 'email', text: `email:${value.toLowerCase()}`, data: Buffer.from(value, 'ascii') };
    case 'keyid':
      if (!/^([0-9a-f]{2})+$/i.test(value)) throw new IdentityError(`identity "${text}": key id must be hex bytes`);
      return { kind: 'keyid', text: `keyid:${value.toLowerCase()}`, data: Buffer.from(value, 'hex') };
    default:
      throw new IdentityError(`identity "${text}": expected one of ip:, fqdn:, email:, keyid:`);
  }
}

export function ipIdentity(addr: string): Identity {
  const fam = ipFamily(addr);
  if (!fam) throw new IdentityError(`"${addr}" is not an IP address`);
  const data = ipToBytes(addr);
  return { kind: fam === 4 ? 'ipv4' : 'ipv6', text: `ip:${bytesToIp(data)}`, data };
}

/** A DER_ASN1_DN identity from the DER of an X.501 Name (e.g. a certificate subject). */
export function dnIdentity(der: Buffer): Identity {
  return { kind: 'dn', text: `dn:${der.toString('hex')}`, data: Buffer.from(der) };
}

/** From an ID payload; undefined for types we do not support. */
/**
 * A received identity lives as long as its SA: a copy of its own, not a
 * Buffer.from slice of the Buffer pool (that pins a whole 8 KiB pool slab per
 * few SAs: 2.7 KB per SA pair in a 1000-SA heap snapshot).
 */
function own(b: Uint8Array): Buffer {
  const c = Buffer.alloc(b.length);
  c.set(b);
  return c;
}

export function identityFromWire(idType: number, data: Buffer): Identity | undefined {
  const kind = KIND_OF[idType];
  if (!kind) return undefined;
  switch (kind) {
    case 'ipv4':
      return data.length === 4 ? ipIdentity(bytesToIp(data)) : undefined;
    case 'ipv6':
      return data.length === 16 ? ipIdentity(bytesToIp(data)) : undefined;
    case 'fqdn':
    case 'email':
      return { kind, text: `${kind}:${data.toString('latin1').toLowerCase()}`, data: own(data) };
    case 'keyid':
      return { kind, text: `keyid:${data.toString('hex')}`, data: own(data) };
    case 'dn':
      return { kind, text: `dn:${data.toString('hex')}`, data: own(data) };
  }
}

export function identityToWire(id: Identity): { idType: number; data: Buffer } {
  return { idType: ID_TYPE_OF[id.kind], data: id.data };
}

export function sameIdentity(a: Identity, b: Identity): boolean {
  return a.kind === b.kind && a.text === b.text;
}
