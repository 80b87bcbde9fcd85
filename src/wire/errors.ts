import { CoatiError } from '../errors.js';

/**
 * The one error every wire decoder throws on bad input. It names what was
 * wrong and where: the byte offset into the buffer being decoded and, when
 * known, the payload being decoded. A decoder must never let any other
 * exception (RangeError, TypeError) escape; `safeDecode` enforces that.
 */
export class MalformedMessageError extends CoatiError {
  /** Absolute byte offset into the decoded buffer where the problem was seen. */
  readonly offset: number;
  /** Name of the payload or structure being decoded, e.g. `SA/Proposal#1`. */
  readonly where: string | undefined;
  constructor(message: string, offset: number, where?: string, options?: { cause?: unknown }) {
    super('MALFORMED', `${where ? `${where}: ` : ''}${message} (at offset ${offset})`, options);
    this.offset = offset;
    this.where = where;
  }
}

/**
 * Runs a decoder and converts anything other than MalformedMessageError
 * (a bug, but one that input could trigger) into MalformedMessageError, so no
 * input can crash a caller that only handles the typed error.
 */
export function safeDecode<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof MalformedMessageError) throw err;
    throw new MalformedMessageError(
      `internal decoder error: ${err instanceof Error ? err.message : String(err)}`,
      -1,
      what,
      { cause: err },
    );
  }
}
