/**
 * ISAKMP / IKEv1 wire layer: pure codecs, constants and per-exchange payload rules.
 *
 * Decisions a reader of the decoders should know:
 * - Header length must equal the datagram length (opt-in `allowTrailingBytes`
 *   ignores extra datagram bytes); a length beyond the datagram is malformed.
 * - E-flag messages keep their body opaque; decrypted bodies go through
 *   `decodeV1PayloadChain(..., { allowTrailingPadding: true })`, which reports
 *   the padding length as `trailing`.
 * - IKEv1 has no critical bit. Payload types 14 (mode-config) and the private
 *   range 128..255 (except draft NAT-D 130 / NAT-OA 131) decode as opaque
 *   `UnknownV1Payload` (the rules table refuses them where not expected); every
 *   other unassigned or misplaced type throws `V1InvalidPayloadTypeError`
 *   (a MalformedMessageError carrying INVALID-PAYLOAD-TYPE).
 * - Reserved octets and undefined header flag bits are ignored on receipt and
 *   written as zero; SA payloads need the IPsec DOI and SIT_IDENTITY_ONLY.
 * - Every decode failure is a MalformedMessageError naming the payload (e.g.
 *   `SA#1/Proposal#1/Transform#2`) and the absolute offset.
 */
export * from './attribute-constants.js';
export { findV1AttributeNumber, v1Attribute, v1AttributeNumber } from './attributes.js';
export {
  decodeV1PayloadChain,
  encodeV1PayloadChain,
  type V1ChainOptions,
  type V1PayloadChain,
  v1PayloadLabel,
} from './chain.js';
export * from './constants.js';
export { type DpdKind, type DpdNotify, decodeDpdNotify, encodeDpdNotify, isDpdNotify } from './dpd.js';
export { V1EncodeError, V1InvalidPayloadTypeError } from './errors.js';
export { decodeIsakmpHeader, encodeIsakmpHeader } from './header.js';
export { formatV1IdData, ipFromText, ipToText, maskToPrefix, v1IdAddressRange, v1IdDataFromText } from './identity.js';
export {
  decodeIsakmpMessage,
  encodeEncryptedIsakmp,
  encodeIsakmpMessage,
  type IsakmpDecodeOptions,
} from './message.js';
export { isOpaqueV1PayloadType } from './payloads.js';
export {
  checkV1Rules,
  findV1Rule,
  V1_MESSAGE_RULES,
  type V1MessageRule,
  type V1PayloadSlot,
  type V1RuleOptions,
  type V1RuleResult,
} from './rules.js';
export * from './types.js';
export { V1VendorId, type V1VendorIdName, vendorIdName } from './vendor-ids.js';
