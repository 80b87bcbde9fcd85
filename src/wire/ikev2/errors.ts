import { CoatiError } from '../../errors.js';
import { MalformedMessageError } from '../errors.js';

/**
 * A payload of a type we do not implement had its critical bit set
 * (RFC 7296 §2.5). The answer is an UNSUPPORTED_CRITICAL_PAYLOAD notify whose
 * data is the one-octet payload type in `unsupportedCritical`.
 */
export class UnsupportedCriticalPayloadError extends MalformedMessageError {
  readonly unsupportedCritical: number;
  constructor(payloadType: number, offset: number, where?: string) {
    super(`unsupported critical payload type ${payloadType}`, offset, where);
    this.unsupportedCritical = payloadType;
  }
}

/**
 * The caller asked the encoder to write something that cannot be represented
 * (a field out of range, SK not last, wrong SPI size). A bug in the caller,
 * never a consequence of received input.
 */
export class WireEncodeError extends CoatiError {
  constructor(message: string) {
    super('WIRE_ENCODE', message);
  }
}
