import { CoatiError } from '../../errors.js';
import { MalformedMessageError } from '../errors.js';
import { V1NotifyType } from './constants.js';

/**
 * A payload type with no meaning in ISAKMP (0 inside a chain, the
 * unassigned ranges 15..19 and 22..127, or a substructure type such as
 * Proposal/Transform at the top level). IKEv1 has no critical bit, so such a
 * message cannot be partially understood: it is rejected, and the answer is
 * INVALID-PAYLOAD-TYPE (RFC 2408 5.2).
 */
export class V1InvalidPayloadTypeError extends MalformedMessageError {
  readonly payloadType: number;
  readonly notify = V1NotifyType.INVALID_PAYLOAD_TYPE;
  constructor(payloadType: number, offset: number, where?: string) {
    super(`invalid payload type ${payloadType}`, offset, where);
    this.payloadType = payloadType;
  }
}

/** A caller asked an encoder for something the wire cannot carry (a bug, not input). */
export class V1EncodeError extends CoatiError {
  constructor(message: string) {
    super('ISAKMP_ENCODE', message);
  }
}
