import { MalformedMessageError } from './errors.js';

/** A structure's label for error messages, or a function that makes it (called only when needed). */
export type Where = string | (() => string) | undefined;

/**
 * Bounds-checked big-endian reader over a byte range. Every read checks the
 * remaining length first and throws MalformedMessageError naming `where` and
 * the absolute offset; nothing else escapes.
 */
export class Reader {
  private pos: number;
  private readonly end: number;
  private label: Where;

  /**
   * Label used in error messages (current payload/structure). It may be set
   * to a function: decoders label every payload, proposal and transform, and
   * the text is only needed when something fails.
   */
  get where(): string | undefined {
    const l = this.label;
    if (typeof l !== 'function') return l;
    const text = l();
    this.label = text;
    return text;
  }
  set where(where: Where) {
    this.label = where;
  }

  /**
   * With `views`, bytes() and rest() return views into `buf` instead of copies:
   * for a `buf` that the caller owns and never reuses (see `ownedCopy`). One
   * copy per message instead of one per field, and a kept field pins only its
   * message, not an 8 KiB Buffer pool slab.
   */
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    end = buf.length,
    where?: Where,
    readonly views = false,
  ) {
    if (start < 0 || end > buf.length || start > end) {
      throw new MalformedMessageError(
        `range ${start}..${end} outside buffer of ${buf.length}`,
        start,
        typeof where === 'function' ? where() : where,
      );
    }
    this.pos = start;
    this.end = end;
    this.label = where;
  }

  get offset(): number {
    return this.pos;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
  get atEnd(): boolean {
    return this.pos >= this.end;
  }

  fail(message: string, at: number = this.pos): never {
    throw new MalformedMessageError(message, at, this.where);
  }

  private need(n: number, what: string): void {
    if (n < 0 || this.end - this.pos < n) {
      this.fail(`truncated: need ${n} byte(s) for ${what}, have ${this.end - this.pos}`);
    }
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos++] as number;
  }
  u16(what = 'u16'): number {
    this.need(2, what);
    const v = ((this.buf[this.pos] as number) << 8) | (this.buf[this.pos + 1] as number);
    this.pos += 2;
    return v;
  }
  u32(what = 'u32'): number {
    this.need(4, what);
    const b = this.buf;
    const p = this.pos;
    const v =
      ((b[p] as number) * 0x1000000 +
        (((b[p + 1] as number) << 16) | ((b[p + 2] as number) << 8) | (b[p + 3] as number))) >>>
      0;
    this.pos += 4;
    return v;
  }
  /** Returns a copy of the next n bytes (safe to keep after the input buffer is reused). */
  bytes(n: number, what = 'bytes'): Buffer {
    this.need(n, what);
    const out = this.views
      ? Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, n)
      : Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }
  /** Returns a view (no copy) of the next n bytes. */
  view(n: number, what = 'bytes'): Uint8Array {
    this.need(n, what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  rest(what = 'rest'): Buffer {
    return this.bytes(this.remaining, what);
  }
  skip(n: number, what = 'skip'): void {
    this.need(n, what);
    this.pos += n;
  }
  /** A sub-reader over the next n bytes; this reader advances past them. */
  sub(n: number, where: Where = this.label): Reader {
    if (n < 0 || this.end - this.pos < n)
      this.need(n, (typeof where === 'function' ? where() : where) ?? 'sub-structure');
    const r = new Reader(this.buf, this.pos, this.pos + n, where, this.views);
    this.pos += n;
    return r;
  }
  expectEnd(what = 'structure'): void {
    if (this.pos !== this.end) this.fail(`${this.end - this.pos} trailing byte(s) after ${what}`);
  }
}

/** A copy of `b` in a backing store of its own (outside the Buffer pool). */
export function ownedCopy(b: Uint8Array): Buffer {
  const c = Buffer.allocUnsafeSlow(b.length);
  c.set(b);
  return c;
}

/** Growable big-endian writer producing canonical bytes. */
export class Writer {
  private buf: Buffer;
  private pos = 0;

  constructor(initial = 256) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }
  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.pos);
    this.pos += 2;
    return this;
  }
  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }
  zeros(n: number): this {
    this.ensure(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
    return this;
  }
  /** Reserve n bytes, returning their offset, to be patched later (lengths). */
  reserve(n: number): number {
    const at = this.pos;
    this.zeros(n);
    return at;
  }
  patchU16(at: number, v: number): void {
    this.buf.writeUInt16BE(v & 0xffff, at);
  }
  patchU32(at: number, v: number): void {
    this.buf.writeUInt32BE(v >>> 0, at);
  }
  patchU8(at: number, v: number): void {
    this.buf[at] = v & 0xff;
  }
  /** Overwrites bytes already written (e.g. a header reserved before its fields were known). */
  patchBytes(at: number, b: Uint8Array): void {
    if (at < 0 || at + b.length > this.pos)
      throw new RangeError(`patch of ${b.length} bytes at ${at} past ${this.pos}`);
    this.buf.set(b, at);
  }
  /**
   * The bytes written so far, without a copy: for results used at once and
   * not kept (a view may share a Buffer pool slab).
   */
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
  /** Returns a copy of the bytes written so far (outside the Buffer pool: encoded messages are often kept). */
  finish(): Buffer {
    return ownedCopy(this.buf.subarray(0, this.pos));
  }
}
