/**
 * ISAKMP / IKEv1 protocol constants (RFC 2408, RFC 2409, IPsec DOI RFC 2407,
 * NAT-T RFC 3947, DPD RFC 3706) as `as const` maps, with `name()` for logs.
 * Phase-1/phase-2 attribute constants live in attribute-constants.ts, vendor
 * IDs in vendor-ids.ts.
 */

/** Fixed ISAKMP header size in octets. */
export const ISAKMP_HEADER_LENGTH = 28;
/** Generic payload header size in octets. */
export const V1_GENERIC_HEADER_LENGTH = 4;
export const ISAKMP_MAJOR_VERSION = 1;
export const ISAKMP_MINOR_VERSION = 0;

/** Exchange types (RFC 2408 3.1, RFC 2409). */
export const V1ExchangeType = {
  NONE: 0,
  BASE: 1,
  IDENTITY_PROTECTION: 2,
  AUTHENTICATION_ONLY: 3,
  AGGRESSIVE: 4,
  INFORMATIONAL: 5,
  TRANSACTION: 6,
  QUICK_MODE: 32,
  NEW_GROUP_MODE: 33,
} as const;
/** Alias: Main Mode is the Identity Protection exchange. */
export const MAIN_MODE = V1ExchangeType.IDENTITY_PROTECTION;

/** Payload types (RFC 2408 3.1, RFC 3947, draft NAT-T, mode-config draft). */
export const V1PayloadType = {
  NONE: 0,
  SA: 1,
  PROPOSAL: 2,
  TRANSFORM: 3,
  KE: 4,
  ID: 5,
  CERT: 6,
  CR: 7,
  HASH: 8,
  SIG: 9,
  NONCE: 10,
  N: 11,
  D: 12,
  VID: 13,
  /** Mode-config attribute payload (draft-dukes-ike-mode-cfg); kept opaque. */
  ATTRIBUTE: 14,
  NAT_D: 20,
  NAT_OA: 21,
  /** draft-ietf-ipsec-nat-t-ike-02/03 private-use NAT-D. */
  NAT_D_DRAFT: 130,
  /** draft-ietf-ipsec-nat-t-ike-02/03 private-use NAT-OA. */
  NAT_OA_DRAFT: 131,
  /** IKEv1 fragment payload (Cisco-compatible, private use); kept opaque. */
  FRAGMENT: 132,
} as const;

/** ISAKMP header flag bits. */
export const V1Flag = {
  ENCRYPTION: 0x01,
  COMMIT: 0x02,
  AUTH_ONLY: 0x04,
} as const;

/** Domains of interpretation. */
export const V1Doi = {
  ISAKMP: 0,
  IPSEC: 1,
} as const;

/** IPsec DOI situation bits (RFC 2407 4.2). */
export const V1Situation = {
  IDENTITY_ONLY: 0x01,
  SECRECY: 0x02,
  INTEGRITY: 0x04,
} as const;

/** Protocol IDs (RFC 2407 4.4.1). */
export const V1ProtocolId = {
  ISAKMP: 1,
  IPSEC_AH: 2,
  IPSEC_ESP: 3,
  IPCOMP: 4,
} as const;

/** ISAKMP transform IDs (RFC 2407 4.4.2). */
export const V1IsakmpTransformId = {
  KEY_IKE: 1,
} as const;

/** ESP transform IDs (RFC 2407 4.4.4 and the IANA registry). */
export const V1EspTransformId = {
  ESP_DES_IV64: 1,
  ESP_DES: 2,
  ESP_3DES: 3,
  ESP_RC5: 4,
  ESP_IDEA: 5,
  ESP_CAST: 6,
  ESP_BLOWFISH: 7,
  ESP_3IDEA: 8,
  ESP_DES_IV32: 9,
  ESP_RC4: 10,
  ESP_NULL: 11,
  ESP_AES: 12,
  ESP_AES_CTR: 13,
  ESP_AES_CCM_8: 14,
  ESP_AES_CCM_12: 15,
  ESP_AES_CCM_16: 16,
  ESP_AES_GCM_8: 18,
  ESP_AES_GCM_12: 19,
  ESP_AES_GCM_16: 20,
  ESP_SEED_CBC: 21,
  ESP_CAMELLIA: 22,
  ESP_NULL_AUTH_AES_GMAC: 23,
} as const;

/** AH transform IDs (RFC 2407 4.4.3). */
export const V1AhTransformId = {
  AH_MD5: 2,
  AH_SHA: 3,
  AH_DES: 4,
  AH_SHA2_256: 5,
  AH_SHA2_384: 6,
  AH_SHA2_512: 7,
} as const;

/** IPCOMP transform IDs (RFC 2407 4.4.5). */
export const V1IpcompTransformId = {
  IPCOMP_OUI: 1,
  IPCOMP_DEFLATE: 2,
  IPCOMP_LZS: 3,
  IPCOMP_LZJH: 4,
} as const;

/** Identification types (RFC 2407 4.6.2.1). */
export const V1IdType = {
  IPV4_ADDR: 1,
  FQDN: 2,
  USER_FQDN: 3,
  IPV4_ADDR_SUBNET: 4,
  IPV6_ADDR: 5,
  IPV6_ADDR_SUBNET: 6,
  IPV4_ADDR_RANGE: 7,
  IPV6_ADDR_RANGE: 8,
  DER_ASN1_DN: 9,
  DER_ASN1_GN: 10,
  KEY_ID: 11,
} as const;

/** Certificate encodings (RFC 2408 3.9). */
export const V1CertEncoding = {
  PKCS7_WRAPPED_X509: 1,
  PGP: 2,
  DNS_SIGNED_KEY: 3,
  X509_SIGNATURE: 4,
  X509_KEY_EXCHANGE: 5,
  KERBEROS_TOKENS: 6,
  CRL: 7,
  ARL: 8,
  SPKI: 9,
  X509_ATTRIBUTE: 10,
} as const;

/** Notify message types (RFC 2408 3.14.1, RFC 2407 4.6.3, RFC 3706). */
export const V1NotifyType = {
  INVALID_PAYLOAD_TYPE: 1,
  DOI_NOT_SUPPORTED: 2,
  SITUATION_NOT_SUPPORTED: 3,
  INVALID_COOKIE: 4,
  INVALID_MAJOR_VERSION: 5,
  INVALID_MINOR_VERSION: 6,
  INVALID_EXCHANGE_TYPE: 7,
  INVALID_FLAGS: 8,
  INVALID_MESSAGE_ID: 9,
  INVALID_PROTOCOL_ID: 10,
  INVALID_SPI: 11,
  INVALID_TRANSFORM_ID: 12,
  ATTRIBUTES_NOT_SUPPORTED: 13,
  NO_PROPOSAL_CHOSEN: 14,
  BAD_PROPOSAL_SYNTAX: 15,
  PAYLOAD_MALFORMED: 16,
  INVALID_KEY_INFORMATION: 17,
  INVALID_ID_INFORMATION: 18,
  INVALID_CERT_ENCODING: 19,
  INVALID_CERTIFICATE: 20,
  CERT_TYPE_UNSUPPORTED: 21,
  INVALID_CERT_AUTHORITY: 22,
  INVALID_HASH_INFORMATION: 23,
  AUTHENTICATION_FAILED: 24,
  INVALID_SIGNATURE: 25,
  ADDRESS_NOTIFICATION: 26,
  NOTIFY_SA_LIFETIME: 27,
  CERTIFICATE_UNAVAILABLE: 28,
  UNSUPPORTED_EXCHANGE_TYPE: 29,
  UNEQUAL_PAYLOAD_LENGTHS: 30,
  CONNECTED: 16384,
  RESPONDER_LIFETIME: 24576,
  REPLAY_STATUS: 24577,
  INITIAL_CONTACT: 24578,
  R_U_THERE: 36136,
  R_U_THERE_ACK: 36137,
} as const;

/** A name → number constant map. */
export type ConstMap = Readonly<Record<string, number>>;
/** The numeric values of a constant map. */
export type ValueOf<M extends ConstMap> = M[keyof M];

const reverseCache = new WeakMap<ConstMap, Map<number, string>>();

/**
 * Name of `value` in `map` for logs, e.g. `name(V1PayloadType, 11)` → `N`.
 * Unknown values come back as `UNKNOWN(<value>)`; never throws.
 */
export function name(map: ConstMap, value: number): string {
  let rev = reverseCache.get(map);
  if (!rev) {
    rev = new Map();
    for (const [k, v] of Object.entries(map)) if (!rev.has(v)) rev.set(v, k);
    reverseCache.set(map, rev);
  }
  return rev.get(value) ?? `UNKNOWN(${value})`;
}
