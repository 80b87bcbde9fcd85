/**
 * Structured logger: journald-friendly lines (`<6>ike[web7 1a2b..]: msg k=v`)
 * or JSON lines, per-subsystem levels, an injectable sink. Directly callable
 * and also a subscriber of the event bus (see attachLogger in log-events.ts).
 */
import { type Printable, sanitize } from './redact.js';

export type LogLevel = 'error' | 'warn' | 'notice' | 'info' | 'debug';

/** syslog(3) severities, used as `<N>` prefixes that journald understands. */
export const SEVERITY: Record<LogLevel, number> = { error: 3, warn: 4, notice: 5, info: 6, debug: 7 };

export interface LogBindings {
  subsystem?: string;
  peer?: string;
  /** SA label, e.g. "spiI/spiR" in hex. */
  sa?: string;
  [field: string]: unknown;
}

export interface LoggerOptions {
  format: 'journal' | 'json';
  level: LogLevel;
  subsystems?: Record<string, LogLevel>;
  /** Receives each formatted line (without trailing newline). Default: process.stderr. */
  sink?: (line: string) => void;
  /** Field names whose Buffer values may print as hex (everything else prints as `<N bytes>`). */
  allowHex?: readonly string[];
  now?: () => Date;
}

/** State shared by a logger and its children, so a reload changes them all. */
class LogCore {
  format: 'journal' | 'json';
  level: LogLevel;
  subsystems: Record<string, LogLevel>;
  sink: (line: string) => void;
  allowHex: ReadonlySet<string>;
  now: () => Date;

  constructor(opts: LoggerOptions) {
    this.format = opts.format;
    this.level = opts.level;
    this.subsystems = { ...(opts.subsystems ?? {}) };
    this.sink = opts.sink ?? ((line) => process.stderr.write(`${line}\n`));
    this.allowHex = new Set(opts.allowHex ?? []);
    this.now = opts.now ?? (() => new Date());
  }
}

const RESERVED = new Set(['subsystem', 'peer', 'sa']);

function journalValue(v: Printable): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

export class Logger {
  readonly #shared: LogCore;
  readonly #bindings: LogBindings;

  constructor(opts: LoggerOptions | LogCore, bindings: LogBindings = {}) {
    this.#shared = opts instanceof LogCore ? opts : new LogCore(opts);
    this.#bindings = bindings;
  }

  /** A logger with more bound fields (subsystem, peer, sa, ...), sharing levels and sink. */
  child(bindings: LogBindings): Logger {
    return new Logger(this.#shared, { ...this.#bindings, ...bindings });
  }

  /** Change levels in place (config reload); children follow. */
  setLevels(level: LogLevel, subsystems: Record<string, LogLevel> = {}): void {
    this.#shared.level = level;
    this.#shared.subsystems = { ...subsystems };
  }

  enabled(level: LogLevel, subsystem = this.#bindings.subsystem): boolean {
    const threshold = (subsystem !== undefined ? this.#shared.subsystems[subsystem] : undefined) ?? this.#shared.level;
    return SEVERITY[level] <= SEVERITY[threshold];
  }

  error(msg: string, fields?: Record<string, unknown>): void {
    this.log('error', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log('warn', msg, fields);
  }
  notice(msg: string, fields?: Record<string, unknown>): void {
    this.log('notice', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log('info', msg, fields);
  }
  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log('debug', msg, fields);
  }

  log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
    // The level first: a line that is off costs no merged field object.
    const sub = Object.hasOwn(fields, 'subsystem') ? fields.subsystem : this.#bindings.subsystem;
    const subsystem = typeof sub === 'string' ? sub : 'coati';
    if (!this.enabled(level, subsystem)) return;
    const all: Record<string, unknown> = { ...this.#bindings, ...fields };
    const s = this.#shared;
    const clean: Record<string, Printable> = {};
    for (const [k, v] of Object.entries(all)) if (v !== undefined) clean[k] = sanitize(v, k, s.allowHex);
    try {
      s.sink(
        s.format === 'json' ? this.#json(level, msg, subsystem, clean) : this.#journal(level, msg, subsystem, clean),
      );
    } catch {
      // a broken sink must not take the daemon down
    }
  }

  #json(level: LogLevel, msg: string, subsystem: string, fields: Record<string, Printable>): string {
    return JSON.stringify({ ts: this.#shared.now().toISOString(), level, ...fields, subsystem, msg });
  }

  #journal(level: LogLevel, msg: string, subsystem: string, fields: Record<string, Printable>): string {
    const tag = [
      typeof fields.peer === 'string' ? fields.peer : '',
      typeof fields.sa === 'string' ? shortSa(fields.sa) : '',
    ]
      .filter(Boolean)
      .join(' ');
    const kv = Object.entries(fields)
      .filter(([k]) => !RESERVED.has(k))
      .map(([k, v]) => `${k}=${journalValue(v)}`);
    const head = `<${SEVERITY[level]}>${subsystem}${tag === '' ? '' : `[${tag}]`}: `;
    return head + [msg.replace(/\n/g, '\\n'), ...kv].join(' ');
  }
}

/** "1a2b3c4d5e6f7a8b/..." → "1a2b..": enough to tell SAs apart in a line; JSON keeps the full label. */
function shortSa(sa: string): string {
  return sa.length > 6 ? `${sa.slice(0, 4)}..` : sa;
}
