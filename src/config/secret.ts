/**
 * Secret bytes (pre-shared keys, private keys) in a wrapper that never
 * prints them: toString/toJSON/inspect all redact. Loaded only from files
 * that are private to the daemon.
 */
import { timingSafeEqual } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import { inspect } from 'node:util';

/** Brand that loggers check for (see src/obs/log.ts): any object carrying it prints as `<redacted>`. */
export const SECRET_BRAND: unique symbol = Symbol.for('coati.secret') as never;

export class Secret {
  readonly [SECRET_BRAND] = true;
  #bytes: Buffer;
  /** Where the secret came from (a path, or "inline"), safe to log. */
  readonly source: string;

  constructor(bytes: Buffer, source: string) {
    this.#bytes = Buffer.from(bytes);
    this.source = source;
  }

  /** The raw bytes. Only key schedules should call this. */
  reveal(): Buffer {
    return this.#bytes;
  }

  get length(): number {
    return this.#bytes.length;
  }

  equals(other: Secret): boolean {
    const a = this.#bytes;
    const b = other.#bytes;
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** Zero the bytes; the wrapper is unusable afterwards. */
  destroy(): void {
    this.#bytes.fill(0);
    this.#bytes = Buffer.alloc(0);
  }

  toString(): string {
    return '<redacted>';
  }

  toJSON(): string {
    return '<redacted>';
  }

  [inspect.custom](): string {
    return `Secret(${this.source}, <redacted>)`;
  }
}

export function isSecret(v: unknown): boolean {
  return typeof v === 'object' && v !== null && (v as { [SECRET_BRAND]?: unknown })[SECRET_BRAND] === true;
}

export interface SecretFileOptions {
  /** The daemon's uid: files must be owned by it or by root. */
  uid: number;
  /** Strip one trailing newline (PSK files written by `echo`/`base64`). */
  stripNewline: boolean;
  /** Refuse fewer bytes than this. */
  minBytes: number;
}

export type SecretFileResult = { ok: true; secret: Secret } | { ok: false; message: string };

function errnoMessage(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'ELOOP') return 'is a symbolic link (not allowed for secret files)';
  return (e as Error).message;
}

export async function readSecretFile(path: string, opts: SecretFileOptions): Promise<SecretFileResult> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    return { ok: false, message: `cannot read secret file ${path}: ${errnoMessage(e)}` };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { ok: false, message: `secret file ${path} is not a regular file` };
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      const who = [(mode & 0o070) !== 0 ? 'group' : '', (mode & 0o007) !== 0 ? 'other' : '']
        .filter(Boolean)
        .join(' and ');
      return {
        ok: false,
        message: `secret file ${path} has mode 0${mode.toString(8)} (accessible by ${who}); run: chmod 600 ${path}`,
      };
    }
    if (st.uid !== opts.uid && st.uid !== 0) {
      return {
        ok: false,
        message: `secret file ${path} is owned by uid ${st.uid}, not root or the daemon's uid ${opts.uid}; run: chown root ${path}`,
      };
    }
    let bytes = await fh.readFile();
    if (opts.stripNewline) {
      const cut = bytes.at(-1) === 0x0a ? (bytes.at(-2) === 0x0d ? 2 : 1) : 0;
      const stripped = Buffer.from(bytes.subarray(0, bytes.length - cut));
      bytes.fill(0);
      bytes = stripped;
    }
    if (bytes.length < opts.minBytes) {
      bytes.fill(0);
      return {
        ok: false,
        message: `secret file ${path} holds ${bytes.length} bytes, fewer than the ${opts.minBytes} required`,
      };
    }
    const secret = new Secret(bytes, path);
    bytes.fill(0);
    return { ok: true, secret };
  } finally {
    await fh.close();
  }
}
