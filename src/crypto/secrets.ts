/**
 * Key-material containers. Secrets live only in these objects: they can be
 * zeroed with destroy(), and neither JSON.stringify nor util.inspect (and
 * thus console.log and the logger) ever prints their bytes.
 */
import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/** One secret byte string. */
export class SecretBuffer {
  #buf: Buffer;
  #destroyed = false;

  /** Takes ownership of `buf` (it is zeroed on destroy; do not keep other references). */
  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  /** Copies `buf`, so the caller may zero or reuse its own buffer. */
  static copyOf(buf: Buffer): SecretBuffer {
    return new SecretBuffer(Buffer.from(buf));
  }

  get length(): number {
    return this.#buf.length;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** The secret bytes. Throws after destroy() so use-after-free is loud. */
  get bytes(): Buffer {
    if (this.#destroyed) throw new Error('SecretBuffer used after destroy()');
    return this.#buf;
  }

  destroy(): void {
    this.#buf.fill(0);
    this.#destroyed = true;
  }

  toJSON(): string {
    return `[secret ${this.#buf.length} bytes]`;
  }

  toString(): string {
    return this.toJSON();
  }

  [inspect.custom](): string {
    return `SecretBuffer(${this.#buf.length} bytes ${this.#destroyed ? 'destroyed' : REDACTED})`;
  }
}

/**
 * Base class for bundles of named key buffers (IKE SA keys, Child SA keys).
 * Subclasses declare Buffer fields; destroy() zeroes every Buffer field,
 * nested KeyMaterial and SecretBuffer; toJSON/inspect print only names and
 * lengths.
 */
export abstract class KeyMaterial {
  #destroyed = false;

  get destroyed(): boolean {
    return this.#destroyed;
  }

  destroy(): void {
    for (const v of Object.values(this)) {
      if (Buffer.isBuffer(v)) v.fill(0);
      else if (v instanceof KeyMaterial || v instanceof SecretBuffer) v.destroy();
    }
    this.#destroyed = true;
  }

  /** Field name → length in bytes (no contents). */
  describe(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(this)) {
      if (Buffer.isBuffer(v)) out[k] = `[${v.length} bytes]`;
      else if (v instanceof KeyMaterial) out[k] = v.describe();
      else if (v instanceof SecretBuffer) out[k] = v.toJSON();
    }
    return out;
  }

  toJSON(): Record<string, unknown> {
    return this.describe();
  }

  [inspect.custom](): string {
    return `${this.constructor.name} ${JSON.stringify(this.describe())}${this.#destroyed ? ' (destroyed)' : ''}`;
  }
}
