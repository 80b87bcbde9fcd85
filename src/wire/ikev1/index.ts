/** ISAKMP / IKEv1 wire layer: pure codecs, constants and per-exchange payload rules. */
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
