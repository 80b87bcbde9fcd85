/**
 * The IKEv1 phase-1 key schedule (RFC 2409 section 5 and Appendix B):
 * SKEYID, then SKEYID_d / SKEYID_a / SKEYID_e, then the encryption key Ka.
 * Pure: the PRF is injected, nothing is random, nothing is logged.
 */
import { CoatiError } from '../../errors.js';
import { octet, type PrfFn } from './primitives.js';

/** How phase 1 authenticates; it decides how SKEYID is computed. Public-key encryption is not supported. */
export type Phase1Auth = { readonly kind: 'psk'; readonly psk: Buffer } | { readonly kind: 'signature' };

export interface SkeyidInput {
  readonly prf: PrfFn;
  readonly auth: Phase1Auth;
  /** Ni_b: the body of the initiator's nonce payload. */
  readonly ni: Buffer;
  /** Nr_b: the body of the responder's nonce payload. */
  readonly nr: Buffer;
  /** g^xy, the phase-1 Diffie-Hellman shared secret. */
  readonly sharedSecret: Buffer;
}

/**
 * SKEYID. Pre-shared key: prf(pre-shared-key, Ni_b | Nr_b).
 * Signatures: prf(Ni_b | Nr_b, g^xy).
 */
export function deriveSkeyid(input: SkeyidInput): Buffer {
  const nonces = Buffer.concat([input.ni, input.nr]);
  if (input.auth.kind === 'psk') return input.prf(input.auth.psk, nonces);
  return input.prf(nonces, input.sharedSecret);
}

/**
 * Appendix B key expansion: when `key` is at least `length` bytes, its first
 * `length` bytes; otherwise K1 | K2 | ... truncated, with K1 = prf(key, 0)
 * (a single zero octet) and Kn = prf(key, Kn-1).
 */
export function expandKey(prf: PrfFn, key: Buffer, length: number): Buffer {
  if (!Number.isInteger(length) || length < 0) {
    throw new CoatiError('IKEV1_BAD_KEY_LENGTH', `invalid key length ${length}`);
  }
  if (key.length >= length) return Buffer.from(key.subarray(0, length));
  const blocks: Buffer[] = [];
  let produced = 0;
  let prev = prf(key, octet(0));
  for (;;) {
    if (prev.length === 0) throw new CoatiError('IKEV1_BAD_PRF', 'prf returned no output');
    blocks.push(prev);
    produced += prev.length;
    if (produced >= length) break;
    prev = prf(key, prev);
  }
  const out = Buffer.concat(blocks);
  const ka = Buffer.from(out.subarray(0, length));
  for (const b of blocks) b.fill(0);
  out.fill(0);
  return ka;
}

/** The keys of an ISAKMP SA. Zero them with `destroy()` when the SA goes away. */
export class Phase1Keys {
  private destroyed = false;
  constructor(
    readonly skeyid: Buffer,
    /** Keying material for phase-2 SAs (KEYMAT). */
    readonly skeyidD: Buffer,
    /** Authentication key for phase-2 and informational HASHes. */
    readonly skeyidA: Buffer,
    readonly skeyidE: Buffer,
    /** Ka, the ISAKMP encryption key, `keyLen` bytes. */
    readonly encKey: Buffer,
  ) {}

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  destroy(): void {
    for (const b of [this.skeyid, this.skeyidD, this.skeyidA, this.skeyidE, this.encKey]) b.fill(0);
    this.destroyed = true;
  }
}

export interface Phase1KeysInput extends SkeyidInput {
  /** CKY-I, the initiator cookie (8 bytes). */
  readonly cookieI: Buffer;
  /** CKY-R, the responder cookie (8 bytes). */
  readonly cookieR: Buffer;
  /** Length of the negotiated cipher key in bytes. */
  readonly encKeyLen: number;
}

function checkCookie(name: string, cookie: Buffer): void {
  if (cookie.length !== 8) throw new CoatiError('IKEV1_BAD_COOKIE', `${name} must be 8 bytes, got ${cookie.length}`);
}

/**
 * The whole phase-1 schedule:
 *   SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
 *   SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
 *   SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
 *   Ka = SKEYID_e expanded/truncated to encKeyLen (Appendix B)
 */
export function derivePhase1Keys(input: Phase1KeysInput): Phase1Keys {
  checkCookie('CKY-I', input.cookieI);
  checkCookie('CKY-R', input.cookieR);
  const { prf, sharedSecret: gxy, cookieI, cookieR } = input;
  const skeyid = deriveSkeyid(input);
  const skeyidD = prf(skeyid, Buffer.concat([gxy, cookieI, cookieR, octet(0)]));
  const skeyidA = prf(skeyid, Buffer.concat([skeyidD, gxy, cookieI, cookieR, octet(1)]));
  const skeyidE = prf(skeyid, Buffer.concat([skeyidA, gxy, cookieI, cookieR, octet(2)]));
  const encKey = expandKey(prf, skeyidE, input.encKeyLen);
  return new Phase1Keys(skeyid, skeyidD, skeyidA, skeyidE, encKey);
}
