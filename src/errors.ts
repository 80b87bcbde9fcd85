/**
 * Typed errors with stable codes. Expected protocol failures are values
 * (see each layer's result types); these exceptions are for malformed input
 * that a decoder must reject, for I/O, and for bugs.
 */
export class CoatiError extends Error {
  /** Stable machine-readable code, e.g. `MALFORMED`, `KERNEL_NO_ESP`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}
