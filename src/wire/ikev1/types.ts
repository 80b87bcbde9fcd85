/**
 * Decoded shapes of ISAKMP (IKEv1) headers and payloads. Plain data: every
 * value is either a number or a Buffer copy owned by the decoded object.
 */

export interface IsakmpFlags {
  encryption: boolean;
  commit: boolean;
  authOnly: boolean;
}

export interface IsakmpHeader {
  /** 8 octets. */
  initiatorCookie: Buffer;
  /** 8 octets; all zero in the first message of an exchange. */
  responderCookie: Buffer;
  /** Type of the first payload (V1PayloadType). */
  nextPayload: number;
  majorVersion: number;
  minorVersion: number;
  exchangeType: number;
  flags: IsakmpFlags;
  messageId: number;
  /** Total message length from the header. */
  length: number;
}

/** Header fields a sender chooses; next payload and length are computed. */
export type IsakmpHeaderFields = Omit<IsakmpHeader, 'nextPayload' | 'length'>;

/** SA data attribute: TV (AF bit set, 16-bit value) or TLV (variable value). */
export type V1Attribute = { type: number; tv: true; value: number } | { type: number; tv: false; value: Buffer };

export interface V1Transform {
  num: number;
  transformId: number;
  attributes: V1Attribute[];
}

export interface V1Proposal {
  num: number;
  protocolId: number;
  spi: Buffer;
  transforms: V1Transform[];
}

export interface SaV1Payload {
  type: 1;
  /** Always 1 (IPsec DOI): other DOIs are rejected by the decoder. */
  doi: number;
  /** The 4-octet IPsec DOI situation bitmap. */
  situation: Buffer;
  proposals: V1Proposal[];
}

export interface KeV1Payload {
  type: 4;
  data: Buffer;
}

export interface IdV1Payload {
  type: 5;
  idType: number;
  /** IP protocol (IPsec DOI), 0 = any. */
  protocolId: number;
  /** Port (IPsec DOI), 0 = any. */
  port: number;
  data: Buffer;
}

export interface CertV1Payload {
  type: 6;
  encoding: number;
  data: Buffer;
}

export interface CrV1Payload {
  type: 7;
  encoding: number;
  /** Certificate authority (DER DN), may be empty. */
  data: Buffer;
}

export interface HashV1Payload {
  type: 8;
  data: Buffer;
}

export interface SigV1Payload {
  type: 9;
  data: Buffer;
}

export interface NonceV1Payload {
  type: 10;
  data: Buffer;
}

export interface NotifyV1Payload {
  type: 11;
  doi: number;
  protocolId: number;
  spi: Buffer;
  notifyType: number;
  data: Buffer;
}

export interface DeleteV1Payload {
  type: 12;
  doi: number;
  protocolId: number;
  /** Octets per SPI; kept separately so a delete with no SPIs still round-trips. */
  spiSize: number;
  spis: Buffer[];
}

export interface VendorIdV1Payload {
  type: 13;
  data: Buffer;
}

/** NAT-D: RFC 3947 type 20 or draft type 130 (the type is preserved). */
export interface NatDV1Payload {
  type: 20 | 130;
  hash: Buffer;
}

/** NAT-OA: RFC 3947 type 21 or draft type 131. */
export interface NatOaV1Payload {
  type: 21 | 131;
  /** V1IdType.IPV4_ADDR (4-octet addr) or V1IdType.IPV6_ADDR (16-octet addr). */
  idType: number;
  addr: Buffer;
}

type Enumerate<N extends number, Acc extends number[] = []> = Acc['length'] extends N
  ? Acc[number]
  : Enumerate<N, [...Acc, Acc['length']]>;

/**
 * Payload types decoded as UnknownV1Payload: 14 and 128..255 except 130/131.
 * A literal union, so `p.type === 11` narrows to NotifyV1Payload alone.
 */
export type UnknownV1PayloadType = 14 | Exclude<Exclude<Enumerate<256>, Enumerate<128>>, 130 | 131>;

/**
 * A payload kept opaque: the mode-config ATTRIBUTE payload (14) and the
 * private-use range 128..255 other than the draft NAT-D/NAT-OA types
 * (e.g. the fragment payload 132). Unassigned types are rejected.
 */
export interface UnknownV1Payload {
  type: UnknownV1PayloadType;
  unknown: true;
  body: Buffer;
}

export type KnownV1Payload =
  | SaV1Payload
  | KeV1Payload
  | IdV1Payload
  | CertV1Payload
  | CrV1Payload
  | HashV1Payload
  | SigV1Payload
  | NonceV1Payload
  | NotifyV1Payload
  | DeleteV1Payload
  | VendorIdV1Payload
  | NatDV1Payload
  | NatOaV1Payload;

export type V1Payload = KnownV1Payload | UnknownV1Payload;

export function isUnknownV1Payload(p: V1Payload): p is UnknownV1Payload {
  return (p as UnknownV1Payload).unknown === true;
}

/** A decoded unencrypted message. */
export interface IsakmpPlainMessage {
  header: IsakmpHeader;
  payloads: V1Payload[];
  encrypted?: undefined;
}

/** A message with the E flag: the body after the header stays opaque. */
export interface IsakmpEncryptedMessage {
  header: IsakmpHeader;
  /** Ciphertext: bytes 28..header.length. */
  encrypted: Buffer;
  payloads?: undefined;
}

export type IsakmpMessage = IsakmpPlainMessage | IsakmpEncryptedMessage;
