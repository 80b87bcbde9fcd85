/**
 * IKEv2 key schedule (RFC 7296 2.14, 2.17, 2.18).
 */
import { CoatiError } from '../../errors.js';
import { prf, prfPlus } from '../prf.js';
import { KeyMaterial } from '../secrets.js';
import {
  type EncrSpec,
  encrKeyMaterialSize,
  type IntegSpec,
  integKeyMaterialSize,
  type PrfSpec,
  resolvePrf,
} from '../transforms.js';

/** The seven IKE SA keys plus SKEYSEED. SK_e includes the AEAD salt at its end. */
export class IkeSaKeys extends KeyMaterial {
  constructor(
    readonly skeyseed: Buffer,
    readonly skD: Buffer,
    readonly skAi: Buffer,
    readonly skAr: Buffer,
    readonly skEi: Buffer,
    readonly skEr: Buffer,
    readonly skPi: Buffer,
    readonly skPr: Buffer,
  ) {
    super();
  }
}

export interface IkeSaKeyParams {
  /** PRF for prf+ (the new SA's PRF when rekeying). */
  prf: PrfSpec;
  encr: EncrSpec;
  /** Key Length attribute in bits (omit for fixed-size ciphers). */
  keyLen?: number;
  /** Omitted (or NONE) with AEAD ciphers. */
  integ?: IntegSpec;
  ni: Buffer;
  nr: Buffer;
  /** SPIs as the 8-byte wire values. */
  spiI: Buffer;
  spiR: Buffer;
}

/** A copy outside the Buffer pool (long-lived key material). */
function ownedCopy(b: Buffer): Buffer {
  const c = Buffer.allocUnsafeSlow(b.length);
  b.copy(c);
  return c;
}

function checkSpis(spiI: Buffer, spiR: Buffer): void {
  if (spiI.length !== 8 || spiR.length !== 8) {
    throw new CoatiError('INVALID_KEY_LENGTH', 'IKE SPIs must be 8 bytes each');
  }
}

function expand(skeyseed: Buffer, p: IkeSaKeyParams): IkeSaKeys {
  checkSpis(p.spiI, p.spiR);
  const prfD = resolvePrf(p.prf);
  const prfLen = prfD.outputSize;
  const aLen = integKeyMaterialSize(p.integ);
  const eLen = encrKeyMaterialSize(p.encr, p.keyLen);
  const total = 3 * prfLen + 2 * aLen + 2 * eLen;
  const stream = prfPlus(prfD, skeyseed, [p.ni, p.nr, p.spiI, p.spiR], total);
  // The keys live as long as the SA: they share one backing store of their own
  // (a pooled copy per key pins an 8 KiB Buffer pool slab each), SKEYSEED included.
  const store = Buffer.allocUnsafeSlow(skeyseed.length + total);
  skeyseed.copy(store, 0);
  stream.copy(store, skeyseed.length);
  skeyseed.fill(0);
  let off = 0;
  const take = (n: number): Buffer => {
    const b = store.subarray(off, off + n);
    off += n;
    return b;
  };
  const keys = new IkeSaKeys(
    take(skeyseed.length),
    take(prfLen),
    take(aLen),
    take(aLen),
    take(eLen),
    take(eLen),
    take(prfLen),
    take(prfLen),
  );
  stream.fill(0);
  return keys;
}

/** Initial IKE SA: SKEYSEED = prf(Ni | Nr, g^ir); keys = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr). */
export function deriveIkeSaKeys(p: IkeSaKeyParams & { sharedSecret: Buffer }): IkeSaKeys {
  // All registered PRFs are HMACs (variable key length), so the full nonces form the key.
  const skeyseed = prf(p.prf, Buffer.concat([p.ni, p.nr]), p.sharedSecret);
  return expand(skeyseed, p);
}

/**
 * Rekeyed IKE SA (RFC 7296 2.18): SKEYSEED = prf(SK_d(old), g^ir(new) | Ni | Nr)
 * with the old SA's PRF; the seven keys with the new PRF and the new SPIs.
 */
export function deriveRekeyedIkeSaKeys(
  p: IkeSaKeyParams & { oldPrf: PrfSpec; oldSkD: Buffer; sharedSecret: Buffer },
): IkeSaKeys {
  const skeyseed = prf(p.oldPrf, p.oldSkD, [p.sharedSecret, p.ni, p.nr]);
  return expand(skeyseed, p);
}

export class DirectionKeys extends KeyMaterial {
  constructor(
    /** Encryption key (with the AEAD salt at its end). */
    readonly encKey: Buffer,
    /** Integrity key; empty for AEAD. */
    readonly integKey: Buffer,
  ) {
    super();
  }
}

export class ChildSaKeys extends KeyMaterial {
  constructor(
    readonly initiatorToResponder: DirectionKeys,
    readonly responderToInitiator: DirectionKeys,
  ) {
    super();
  }
}

/**
 * Child SA KEYMAT (RFC 7296 2.17): prf+(SK_d, [g^ir(new)] | Ni | Nr), taken
 * in the order encr i->r, integ i->r, encr r->i, integ r->i. `encrKeyLen`
 * and `integKeyLen` are in bytes; for AEAD `encrKeyLen` includes the salt
 * (see encrKeyMaterialSize) and `integKeyLen` is 0.
 */
export function deriveChildKeys(p: {
  prf: PrfSpec;
  skD: Buffer;
  ni: Buffer;
  nr: Buffer;
  sharedSecret?: Buffer;
  encrKeyLen: number;
  integKeyLen: number;
}): ChildSaKeys {
  const seed = p.sharedSecret ? [p.sharedSecret, p.ni, p.nr] : [p.ni, p.nr];
  const e = p.encrKeyLen;
  const a = p.integKeyLen;
  const stream = prfPlus(p.prf, p.skD, seed, 2 * (e + a));
  const store = ownedCopy(stream);
  const part = (off: number, n: number): Buffer => store.subarray(off, off + n);
  const keys = new ChildSaKeys(
    new DirectionKeys(part(0, e), part(e, a)),
    new DirectionKeys(part(e + a, e), part(2 * e + a, a)),
  );
  stream.fill(0);
  return keys;
}
