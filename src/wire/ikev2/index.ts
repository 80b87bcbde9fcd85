/** IKEv2 wire layer (RFC 7296, RFC 7383): pure codecs, payload rules, fragmentation. */
export * from './constants.js';
export { decodeHeader, decodeMessage, decodePayloadChain } from './decode.js';
export {
  encodeHeader,
  encodeMessage,
  encodePayloadChain,
  encodeSkfPrefix,
  encodeSkPrefix,
  SKF_HEADER_LENGTH,
} from './encode.js';
export { UnsupportedCriticalPayloadError, WireEncodeError } from './errors.js';
export {
  DEFAULT_FRAGMENT_LIMITS,
  type DecryptedFragment,
  type FragmentLimits,
  FragmentReassembler,
  type ReassemblyResult,
  splitForFragments,
} from './fragments.js';
export { checkExchangeRules, EXCHANGE_RULES, type RulesResult } from './rules.js';
export * from './types.js';
