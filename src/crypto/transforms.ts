/**
 * Registry of the IKEv2 transforms coati implements (IANA "IKEv2 Transform
 * Attribute" registries), with the node:crypto names, sizes and the Linux
 * kernel (XFRM) spellings used for ESP Child SAs.
 */
import { CoatiError } from '../errors.js';
import type { SaAlgorithms } from '../kernel/types.js';

/** Transform type 1 (ENCR) IDs. */
export const EncrId = {
  AES_CBC: 12,
  AES_GCM_8: 18,
  AES_GCM_12: 19,
  AES_GCM_16: 20,
  CHACHA20_POLY1305: 28,
} as const;

/** Transform type 2 (PRF) IDs. */
export const PrfId = { HMAC_SHA1: 2, HMAC_SHA2_256: 5, HMAC_SHA2_384: 6, HMAC_SHA2_512: 7 } as const;

/** Transform type 3 (INTEG) IDs. */
export const IntegId = {
  NONE: 0,
  HMAC_SHA1_96: 2,
  HMAC_SHA2_256_128: 12,
  HMAC_SHA2_384_192: 13,
  HMAC_SHA2_512_256: 14,
} as const;

/** Transform type 4 (KE / D-H group) IDs. */
export const KeGroup = {
  MODP_2048: 14,
  MODP_3072: 15,
  MODP_4096: 16,
  ECP_256: 19,
  ECP_384: 20,
  ECP_521: 21,
  CURVE25519: 31,
  CURVE448: 32,
} as const;

export interface EncrDescriptor {
  id: number;
  /** Name for logs (strongSwan-like spelling). */
  name: string;
  kind: 'cbc' | 'aead';
  /** Allowed Key Length attribute values in bits; for fixed-key ciphers the one size. */
  keyBits: readonly number[];
  /** Whether the proposal carries a Key Length attribute. */
  keyLengthAttribute: boolean;
  /** node:crypto cipher name for a key size in bits. */
  nodeCipher(keyBits: number): string;
  /** Padding block size for the SK payload (1 = no alignment needed). */
  blockSize: number;
  /** Explicit IV carried in the message. */
  ivSize: number;
  /** Integrity check value (AEAD tag) length; 0 for non-AEAD. */
  icvSize: number;
  /** Salt appended to the key in KEYMAT/SK_e (AEAD), bytes. */
  saltSize: number;
  /** Kernel crypto-API name for ESP. */
  espName: string;
}

export interface PrfDescriptor {
  id: number;
  name: string;
  /** node:crypto hash name for createHmac. */
  hash: string;
  /** Output length and preferred key length, bytes. */
  outputSize: number;
}

export interface IntegDescriptor {
  id: number;
  name: string;
  hash: string;
  /** Key length, bytes. */
  keySize: number;
  /** Truncated ICV length, bytes. */
  icvSize: number;
  /** Kernel crypto-API name for ESP/AH. */
  espName: string;
}

export type KeGroupKind = 'modp' | 'ecp' | 'ecx';

export interface KeDescriptor {
  id: number;
  name: string;
  kind: KeGroupKind;
  /** getDiffieHellman group name, createECDH curve name, or generateKeyPair type. */
  nodeName: string;
  /** Length of the wire-format public value, bytes. */
  publicSize: number;
  /** Length of the shared secret, bytes. */
  sharedSize: number;
}

const aes = (mode: string) => (bits: number) => `aes-${bits}-${mode}`;

const ENCR: readonly EncrDescriptor[] = [
  {
    id: EncrId.AES_CBC,
    name: 'AES_CBC',
    kind: 'cbc',
    keyBits: [128, 192, 256],
    keyLengthAttribute: true,
    nodeCipher: aes('cbc'),
    blockSize: 16,
    ivSize: 16,
    icvSize: 0,
    saltSize: 0,
    espName: 'cbc(aes)',
  },
  ...(
    [
      [EncrId.AES_GCM_8, 8],
      [EncrId.AES_GCM_12, 12],
      [EncrId.AES_GCM_16, 16],
    ] as const
  ).map(
    ([id, icv]): EncrDescriptor => ({
      id,
      name: `AES_GCM_${icv}`,
      kind: 'aead',
      keyBits: [128, 192, 256],
      keyLengthAttribute: true,
      nodeCipher: aes('gcm'),
      blockSize: 1,
      ivSize: 8,
      icvSize: icv,
      saltSize: 4,
      espName: 'rfc4106(gcm(aes))',
    }),
  ),
  {
    id: EncrId.CHACHA20_POLY1305,
    name: 'CHACHA20_POLY1305',
    kind: 'aead',
    keyBits: [256],
    keyLengthAttribute: false,
    nodeCipher: () => 'chacha20-poly1305',
    blockSize: 1,
    ivSize: 8,
    icvSize: 16,
    saltSize: 4,
    espName: 'rfc7539esp(chacha20,poly1305)',
  },
];

const PRF: readonly PrfDescriptor[] = [
  { id: PrfId.HMAC_SHA1, name: 'PRF_HMAC_SHA1', hash: 'sha1', outputSize: 20 },
  { id: PrfId.HMAC_SHA2_256, name: 'PRF_HMAC_SHA2_256', hash: 'sha256', outputSize: 32 },
  { id: PrfId.HMAC_SHA2_384, name: 'PRF_HMAC_SHA2_384', hash: 'sha384', outputSize: 48 },
  { id: PrfId.HMAC_SHA2_512, name: 'PRF_HMAC_SHA2_512', hash: 'sha512', outputSize: 64 },
];

const INTEG: readonly IntegDescriptor[] = [
  { id: IntegId.HMAC_SHA1_96, name: 'HMAC_SHA1_96', hash: 'sha1', keySize: 20, icvSize: 12, espName: 'hmac(sha1)' },
  {
    id: IntegId.HMAC_SHA2_256_128,
    name: 'HMAC_SHA2_256_128',
    hash: 'sha256',
    keySize: 32,
    icvSize: 16,
    espName: 'hmac(sha256)',
  },
  {
    id: IntegId.HMAC_SHA2_384_192,
    name: 'HMAC_SHA2_384_192',
    hash: 'sha384',
    keySize: 48,
    icvSize: 24,
    espName: 'hmac(sha384)',
  },
  {
    id: IntegId.HMAC_SHA2_512_256,
    name: 'HMAC_SHA2_512_256',
    hash: 'sha512',
    keySize: 64,
    icvSize: 32,
    espName: 'hmac(sha512)',
  },
];

const KE: readonly KeDescriptor[] = [
  { id: KeGroup.MODP_2048, name: 'MODP_2048', kind: 'modp', nodeName: 'modp14', publicSize: 256, sharedSize: 256 },
  { id: KeGroup.MODP_3072, name: 'MODP_3072', kind: 'modp', nodeName: 'modp15', publicSize: 384, sharedSize: 384 },
  { id: KeGroup.MODP_4096, name: 'MODP_4096', kind: 'modp', nodeName: 'modp16', publicSize: 512, sharedSize: 512 },
  { id: KeGroup.ECP_256, name: 'ECP_256', kind: 'ecp', nodeName: 'prime256v1', publicSize: 64, sharedSize: 32 },
  { id: KeGroup.ECP_384, name: 'ECP_384', kind: 'ecp', nodeName: 'secp384r1', publicSize: 96, sharedSize: 48 },
  { id: KeGroup.ECP_521, name: 'ECP_521', kind: 'ecp', nodeName: 'secp521r1', publicSize: 132, sharedSize: 66 },
  { id: KeGroup.CURVE25519, name: 'CURVE_25519', kind: 'ecx', nodeName: 'x25519', publicSize: 32, sharedSize: 32 },
  { id: KeGroup.CURVE448, name: 'CURVE_448', kind: 'ecx', nodeName: 'x448', publicSize: 56, sharedSize: 56 },
];

function indexById<T extends { id: number }>(list: readonly T[]): ReadonlyMap<number, T> {
  return new Map(list.map((d) => [d.id, d]));
}
const ENCR_BY_ID = indexById(ENCR);
const PRF_BY_ID = indexById(PRF);
const INTEG_BY_ID = indexById(INTEG);
const KE_BY_ID = indexById(KE);

function unsupported(kind: string, id: number): never {
  throw new CoatiError('UNSUPPORTED_TRANSFORM', `unsupported ${kind} transform ${id}`);
}

export function encrById(id: number): EncrDescriptor {
  return ENCR_BY_ID.get(id) ?? unsupported('ENCR', id);
}
export function prfById(id: number): PrfDescriptor {
  return PRF_BY_ID.get(id) ?? unsupported('PRF', id);
}
export function integById(id: number): IntegDescriptor {
  return INTEG_BY_ID.get(id) ?? unsupported('INTEG', id);
}
export function keGroupById(id: number): KeDescriptor {
  return KE_BY_ID.get(id) ?? unsupported('KE', id);
}

/** Lookups that return undefined instead of throwing (for proposal filtering). */
export const isSupported = {
  encr: (id: number, keyBits?: number): boolean => {
    const d = ENCR_BY_ID.get(id);
    return d !== undefined && (keyBits === undefined || d.keyBits.includes(keyBits));
  },
  prf: (id: number): boolean => PRF_BY_ID.has(id),
  integ: (id: number): boolean => INTEG_BY_ID.has(id),
  ke: (id: number): boolean => KE_BY_ID.has(id),
};

export const allTransforms = { encr: ENCR, prf: PRF, integ: INTEG, ke: KE } as const;

export type EncrSpec = number | EncrDescriptor;
export type PrfSpec = number | PrfDescriptor;
export type IntegSpec = number | IntegDescriptor;

export const resolveEncr = (s: EncrSpec): EncrDescriptor => (typeof s === 'number' ? encrById(s) : s);
export const resolvePrf = (s: PrfSpec): PrfDescriptor => (typeof s === 'number' ? prfById(s) : s);
export const resolveInteg = (s: IntegSpec): IntegDescriptor => (typeof s === 'number' ? integById(s) : s);

/**
 * Resolve the key length (bits) of an ENCR transform: the Key Length
 * attribute when present, the fixed size for ciphers without one.
 */
export function encrKeyBits(encr: EncrSpec, keyBits?: number): number {
  const d = resolveEncr(encr);
  const bits = keyBits ?? (d.keyLengthAttribute ? undefined : d.keyBits[0]);
  if (bits === undefined || !d.keyBits.includes(bits)) {
    throw new CoatiError('INVALID_KEY_LENGTH', `${d.name}: invalid key length ${String(keyBits)} bits`);
  }
  return bits;
}

/** Bytes of SK_e / ESP encryption KEYMAT for a cipher: key plus AEAD salt. */
export function encrKeyMaterialSize(encr: EncrSpec, keyBits?: number): number {
  const d = resolveEncr(encr);
  return encrKeyBits(d, keyBits) / 8 + d.saltSize;
}

/** Bytes of SK_a / ESP integrity KEYMAT; 0 without an integrity transform. */
export function integKeyMaterialSize(integ?: IntegSpec): number {
  if (integ === undefined || integ === IntegId.NONE) return 0;
  return resolveInteg(integ).keySize;
}

/**
 * Map a negotiated ESP proposal plus its KEYMAT to the kernel's algorithm
 * description. `encKey` includes the AEAD salt (as KEYMAT does), which is
 * exactly what the kernel's rfc4106/rfc7539esp templates expect.
 */
export function espSaAlgorithms(args: {
  encr: EncrSpec;
  keyBits?: number;
  integ?: IntegSpec;
  encKey: Buffer;
  integKey?: Buffer;
}): SaAlgorithms {
  const e = resolveEncr(args.encr);
  const need = encrKeyMaterialSize(e, args.keyBits);
  if (args.encKey.length !== need) {
    throw new CoatiError('INVALID_KEY_LENGTH', `${e.name}: ESP key must be ${need} bytes, got ${args.encKey.length}`);
  }
  if (e.kind === 'aead') {
    if (args.integ !== undefined && args.integ !== IntegId.NONE) {
      throw new CoatiError('UNSUPPORTED_TRANSFORM', `${e.name} is combined-mode: no INTEG transform allowed`);
    }
    const name = e.espName as 'rfc4106(gcm(aes))' | 'rfc7539esp(chacha20,poly1305)';
    return { aead: { name, key: args.encKey, icvBits: e.icvSize * 8 } };
  }
  if (args.integ === undefined || args.integ === IntegId.NONE || args.integKey === undefined) {
    throw new CoatiError('UNSUPPORTED_TRANSFORM', `${e.name} needs an INTEG transform and key`);
  }
  const i = resolveInteg(args.integ);
  if (args.integKey.length !== i.keySize) {
    throw new CoatiError('INVALID_KEY_LENGTH', `${i.name}: key must be ${i.keySize} bytes`);
  }
  return {
    crypt: { name: e.espName, key: args.encKey },
    auth: { name: i.espName, key: args.integKey, truncBits: i.icvSize * 8 },
  };
}
