/**
 * The coati admin protocol, version 1: newline-delimited JSON over a Unix
 * stream socket.
 *
 *   server → client, once on connect:  {"coati":1,"host":"h1","versions":[1]}
 *   client → server:                   {"id":7,"v":1,"cmd":"status","args":{"peer":"db1"}}
 *   server → client:                   {"id":7,"ok":true,"result":{...}}
 *                                      {"id":7,"ok":false,"error":{"code":"UNKNOWN_PEER","message":"..."}}
 *
 * Requests may be pipelined; responses carry the request id and may come
 * out of order. When the server cannot tell the id (bad JSON) it answers with
 * `"id":null`. After a successful `events` request the connection carries
 * only event lines `{"event":{"type":"...","time":"...",...}}`; further
 * input is ignored and the stream ends when the client closes or half-closes
 * its side, or when it falls too far behind reading. Everything in this file is pure: no sockets, no timers.
 */
import type { ControlErrorCode } from './errors.js';
import type { ActionResult, ControlEvent, ReloadResult, StatusReport, Target } from './types.js';

export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [PROTOCOL_VERSION];
export const DEFAULT_SOCKET_PATH = '/run/coati/coati.sock';
/** Longest accepted line in bytes, newline excluded. */
export const MAX_LINE_BYTES = 64 * 1024;
/** Longest accepted peer name. */
export const MAX_PEER_NAME = 255;

export interface Hello {
  coati: typeof PROTOCOL_VERSION;
  host: string;
  versions: number[];
}

export interface WireError {
  code: ControlErrorCode;
  message: string;
}

export type Response =
  | { id: number | null; ok: true; result: unknown }
  | { id: number | null; ok: false; error: WireError };

export interface EventLine {
  event: ControlEvent;
}

export interface CommandArgs {
  status: { peer?: string };
  initiate: Target;
  terminate: Target;
  rekey: Target & { kind?: 'ike' | 'child' };
  dpd: Target;
  reload: Record<string, never>;
  restart: Record<string, never>;
  keylog: { on: boolean };
  events: Record<string, never>;
}

export interface CommandResults {
  status: StatusReport;
  initiate: ActionResult;
  terminate: ActionResult;
  rekey: ActionResult;
  dpd: ActionResult;
  reload: ReloadResult;
  restart: ActionResult;
  keylog: ActionResult;
  events: { streaming: true };
}

export type Command = keyof CommandArgs;

export type ParsedRequest = {
  [C in Command]: { id: number; cmd: C; args: CommandArgs[C] };
}[Command];

export type ParseResult = { ok: true; request: ParsedRequest } | { ok: false; id: number | null; error: WireError };

class Invalid extends Error {
  constructor(
    readonly code: ControlErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const bad = (message: string): Invalid => new Invalid('BAD_REQUEST', message);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function rejectUnknown(where: string, obj: Record<string, unknown>, allowed: readonly string[]): void {
  const unknown = Object.keys(obj).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    const list = unknown.map((k) => JSON.stringify(k)).join(', ');
    const expected = allowed.length > 0 ? `; allowed: ${allowed.join(', ')}` : '; it takes no arguments';
    throw bad(`${where}: unknown argument${unknown.length > 1 ? 's' : ''} ${list}${expected}`);
  }
}

/** A peer name: non-empty, bounded, printable. Exported for the CLI. */
export function checkPeerName(v: unknown, where: string): string {
  if (typeof v !== 'string') throw bad(`${where}: "peer" must be a string, got ${describe(v)}`);
  if (v.length === 0) throw bad(`${where}: "peer" must not be empty`);
  if (v.length > MAX_PEER_NAME) throw bad(`${where}: "peer" is longer than ${MAX_PEER_NAME} characters`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(v)) throw bad(`${where}: "peer" contains control characters`);
  return v;
}

function parseTarget(cmd: string, args: Record<string, unknown>): Target {
  const hasPeer = 'peer' in args;
  const hasAll = 'all' in args;
  if (hasPeer && hasAll) throw bad(`${cmd}: give either "peer" or "all", not both`);
  if (hasPeer) return { peer: checkPeerName(args.peer, cmd) };
  if (hasAll) {
    if (args.all !== true)
      throw bad(`${cmd}: "all" must be true, got ${JSON.stringify(args.all) ?? describe(args.all)}`);
    return { all: true };
  }
  throw bad(`${cmd}: missing target: give "peer" (a name) or "all": true`);
}

function noArgs(cmd: string, args: Record<string, unknown>): Record<string, never> {
  rejectUnknown(cmd, args, []);
  return {};
}

/** One hand-written validator per command: exact argument names and types. */
const VALIDATORS: { [C in Command]: (args: Record<string, unknown>) => CommandArgs[C] } = {
  status(args) {
    rejectUnknown('status', args, ['peer']);
    return 'peer' in args ? { peer: checkPeerName(args.peer, 'status') } : {};
  },
  initiate(args) {
    rejectUnknown('initiate', args, ['peer', 'all']);
    return parseTarget('initiate', args);
  },
  terminate(args) {
    rejectUnknown('terminate', args, ['peer', 'all']);
    return parseTarget('terminate', args);
  },
  rekey(args) {
    rejectUnknown('rekey', args, ['peer', 'all', 'kind']);
    const target = parseTarget('rekey', args);
    if (!('kind' in args)) return target;
    if (args.kind !== 'ike' && args.kind !== 'child') {
      throw bad(`rekey: "kind" must be "ike" or "child", got ${JSON.stringify(args.kind) ?? describe(args.kind)}`);
    }
    return { ...target, kind: args.kind };
  },
  dpd(args) {
    rejectUnknown('dpd', args, ['peer', 'all']);
    return parseTarget('dpd', args);
  },
  reload: (args) => noArgs('reload', args),
  restart: (args) => noArgs('restart', args),
  keylog(args) {
    rejectUnknown('keylog', args, ['on']);
    if (!('on' in args)) throw bad('keylog: missing "on" (true or false)');
    if (typeof args.on !== 'boolean') throw bad(`keylog: "on" must be a boolean, got ${describe(args.on)}`);
    return { on: args.on };
  },
  events: (args) => noArgs('events', args),
};

export const COMMANDS = Object.keys(VALIDATORS) as Command[];

function isCommand(s: string): s is Command {
  return Object.hasOwn(VALIDATORS, s);
}

/** Validate an already JSON-decoded request. */
export function parseRequest(msg: unknown): ParseResult {
  let id: number | null = null;
  try {
    if (!isPlainObject(msg)) throw bad(`request must be a JSON object, got ${describe(msg)}`);
    if (!('id' in msg)) throw bad('request: missing "id"');
    if (typeof msg.id !== 'number' || !Number.isSafeInteger(msg.id) || msg.id < 0) {
      throw bad(`request: "id" must be a non-negative integer, got ${JSON.stringify(msg.id) ?? describe(msg.id)}`);
    }
    id = msg.id;
    rejectUnknown('request', msg, ['id', 'v', 'cmd', 'args']);
    if (!('v' in msg)) throw bad('request: missing "v" (protocol version)');
    if (typeof msg.v !== 'number' || !Number.isInteger(msg.v)) {
      throw bad(`request: "v" must be an integer, got ${describe(msg.v)}`);
    }
    if (!SUPPORTED_VERSIONS.includes(msg.v)) {
      throw new Invalid(
        'UNSUPPORTED_VERSION',
        `protocol version ${msg.v} is not supported; this daemon speaks ${SUPPORTED_VERSIONS.join(', ')}`,
      );
    }
    if (typeof msg.cmd !== 'string') throw bad(`request: "cmd" must be a string, got ${describe(msg.cmd)}`);
    const cmd = msg.cmd;
    if (!isCommand(cmd)) {
      throw new Invalid(
        'UNKNOWN_COMMAND',
        `unknown command ${JSON.stringify(cmd.slice(0, 64))}; known: ${COMMANDS.join(', ')}`,
      );
    }
    const rawArgs = msg.args ?? {};
    if (!isPlainObject(rawArgs)) throw bad(`${cmd}: "args" must be an object, got ${describe(rawArgs)}`);
    const args = VALIDATORS[cmd](rawArgs);
    return { ok: true, request: { id, cmd, args } as ParsedRequest };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, id, error: { code: err.code, message: err.message } };
    throw err;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decode and validate one line (without its newline). Never throws. */
export function parseRequestLine(line: Uint8Array): ParseResult {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch {
    return { ok: false, id: null, error: { code: 'BAD_REQUEST', message: 'request is not valid UTF-8' } };
  }
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch (err) {
    const detail = err instanceof Error ? err.message : 'parse error';
    return { ok: false, id: null, error: { code: 'BAD_REQUEST', message: `malformed JSON: ${detail.slice(0, 200)}` } };
  }
  return parseRequest(msg);
}

/** JSON.stringify that turns stray bigints into decimal strings instead of throwing. */
export function encodeLine(value: unknown): string {
  return `${JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`;
}

export function okResponse(id: number, result: unknown): Response {
  return { id, ok: true, result };
}

export function errorResponse(id: number | null, code: ControlErrorCode, message: string): Response {
  return { id, ok: false, error: { code, message } };
}

/**
 * Splits a byte stream into lines with a hard length limit. Bytes are kept
 * as Buffers until a full line is present so the limit counts bytes, and a
 * multi-byte character split across chunks is reassembled intact.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private pending = 0;

  constructor(private readonly maxLine: number = MAX_LINE_BYTES) {}

  /** Returns the complete lines; `overflow` is set once the current line exceeds the limit. */
  push(chunk: Buffer): { lines: Buffer[]; overflow: boolean } {
    const lines: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      if (this.pending + piece.length > this.maxLine) return { lines, overflow: true };
      this.parts.push(piece);
      const line = Buffer.concat(this.parts);
      this.parts = [];
      this.pending = 0;
      lines.push(stripCr(line));
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    if (this.pending + rest.length > this.maxLine) return { lines, overflow: true };
    if (rest.length > 0) {
      this.parts.push(rest);
      this.pending += rest.length;
    }
    return { lines, overflow: false };
  }

  /** The unterminated tail at end of input, if any. */
  flush(): Buffer | undefined {
    if (this.pending === 0) return undefined;
    const line = Buffer.concat(this.parts);
    this.parts = [];
    this.pending = 0;
    return stripCr(line);
  }
}

function stripCr(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, line.length - 1) : line;
}

/** Client side: check the server's first line. */
export function parseHello(msg: unknown): Hello | undefined {
  if (!isPlainObject(msg)) return undefined;
  if (msg.coati !== PROTOCOL_VERSION || typeof msg.host !== 'string') return undefined;
  const versions = Array.isArray(msg.versions) ? msg.versions.filter((v): v is number => typeof v === 'number') : [];
  return { coati: PROTOCOL_VERSION, host: msg.host, versions };
}

/** Client side: check a response line's shape. */
export function parseResponse(msg: unknown): Response | undefined {
  if (!isPlainObject(msg)) return undefined;
  const id = msg.id;
  if (id !== null && (typeof id !== 'number' || !Number.isSafeInteger(id))) return undefined;
  if (msg.ok === true && 'result' in msg) return { id, ok: true, result: msg.result };
  if (msg.ok === false && isPlainObject(msg.error)) {
    const { code, message } = msg.error;
    if (typeof code === 'string' && typeof message === 'string') {
      return { id, ok: false, error: { code: code as ControlErrorCode, message } };
    }
  }
  return undefined;
}

/** Client side: an event line, if it is one. */
export function parseEventLine(msg: unknown): ControlEvent | undefined {
  if (!isPlainObject(msg) || !isPlainObject(msg.event)) return undefined;
  const ev = msg.event;
  if (typeof ev.type !== 'string' || typeof ev.time !== 'string') return undefined;
  return ev as ControlEvent;
}
