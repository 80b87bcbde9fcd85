/**
 * Client side of the admin protocol, used by `coatictl` and by tests.
 *
 *   const c = await ControlClient.connect('/run/coati/coati.sock');
 *   const report = await c.request('status', {});
 *   c.close();
 */
import { stat } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { ControlConnectError, ControlError, type ControlErrorCode } from './errors.js';
import {
  type Command,
  type CommandArgs,
  type CommandResults,
  encodeLine,
  type Hello,
  LineSplitter,
  PROTOCOL_VERSION,
  parseEventLine,
  parseHello,
  parseResponse,
} from './protocol.js';
import { groupName } from './socket-path.js';
import type { ControlEvent } from './types.js';

/** Responses to a client can be large (status of 500 peers); allow far more than requests. */
const MAX_RESPONSE_LINE = 64 * 1024 * 1024;

/** Codes after which the server closes the connection. */
const FATAL: ReadonlySet<string> = new Set<ControlErrorCode>(['LINE_TOO_LONG', 'IDLE_TIMEOUT', 'TOO_MANY_CONNECTIONS']);

export interface ConnectOptions {
  /** Give up connecting / waiting for the hello after this long (default 5000 ms). */
  timeoutMs?: number;
  /** Give up waiting for a response after this long; 0 (default) waits forever. */
  requestTimeoutMs?: number;
}

export interface EventStream {
  /** Resolves when the server ends the stream or `stop()` is called. */
  readonly done: Promise<void>;
  stop(): void;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

async function describeConnectError(path: string, err: NodeJS.ErrnoException): Promise<ControlConnectError> {
  switch (err.code) {
    case 'ENOENT':
      return new ControlConnectError('NOT_RUNNING', `coatid is not running (no socket at ${path})`, { cause: err });
    case 'ECONNREFUSED':
      return new ControlConnectError('NOT_RUNNING', `coatid is not running (nothing listens on ${path})`, {
        cause: err,
      });
    case 'EACCES':
    case 'EPERM': {
      let group = 'coati';
      try {
        group = await groupName((await stat(path)).gid);
      } catch {
        // keep the default name
      }
      return new ControlConnectError(
        'PERMISSION_DENIED',
        `permission denied on ${path}: run as root or a member of group ${group}`,
        { cause: err },
      );
    }
    default:
      return new ControlConnectError('NOT_RUNNING', `cannot connect to ${path}: ${err.message}`, { cause: err });
  }
}

export class ControlClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly splitter = new LineSplitter(MAX_RESPONSE_LINE);
  private eventSink: ((ev: ControlEvent) => void) | undefined;
  private closedError: Error | undefined;
  private closeWaiters: (() => void)[] = [];

  private constructor(
    private readonly socket: Socket,
    readonly hello: Hello,
    readonly path: string,
    private readonly requestTimeoutMs: number,
  ) {}

  static connect(path: string, opts: ConnectOptions = {}): Promise<ControlClient> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const splitter = new LineSplitter(MAX_RESPONSE_LINE);
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new ControlConnectError('TIMEOUT', `no answer from coatid on ${path} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      let errored = false;
      socket.once('error', (err: NodeJS.ErrnoException) => {
        errored = true;
        if (settled) return;
        describeConnectError(path, err).then(fail, fail);
      });
      socket.once('close', () => {
        // After 'error' the close is expected; the (async) error description wins.
        if (!errored) fail(new ControlConnectError('CONNECTION_LOST', `coatid closed ${path} before hello`));
      });
      const onData = (chunk: Buffer) => {
        const { lines, overflow } = splitter.push(chunk);
        if (overflow) return fail(new ControlConnectError('PROTOCOL', 'hello line too long'));
        const first = lines[0];
        if (first === undefined) return;
        let msg: unknown;
        try {
          msg = JSON.parse(first.toString('utf8'));
        } catch {
          return fail(new ControlConnectError('PROTOCOL', `${path} did not greet with coati protocol JSON`));
        }
        const hello = parseHello(msg);
        if (!hello) {
          const resp = parseResponse(msg);
          if (resp && !resp.ok) return fail(new ControlError(resp.error.code, resp.error.message));
          return fail(new ControlConnectError('PROTOCOL', `${path} does not speak coati protocol ${PROTOCOL_VERSION}`));
        }
        settled = true;
        clearTimeout(timer);
        socket.off('data', onData);
        socket.removeAllListeners('error');
        socket.removeAllListeners('close');
        const client = new ControlClient(socket, hello, path, opts.requestTimeoutMs ?? 0);
        client.attach(lines.slice(1), splitter.flush());
        resolve(client);
      };
      socket.on('data', onData);
    });
  }

  private attach(early: Buffer[], partial: Buffer | undefined): void {
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.shutdown(new ControlConnectError('CONNECTION_LOST', err.message)));
    this.socket.on('close', () =>
      this.shutdown(new ControlConnectError('CONNECTION_LOST', 'coatid closed the connection')),
    );
    for (const line of early) this.onLine(line);
    if (partial) this.onData(partial);
  }

  private onData(chunk: Buffer): void {
    const { lines, overflow } = this.splitter.push(chunk);
    for (const line of lines) this.onLine(line);
    if (overflow) {
      this.shutdown(new ControlConnectError('PROTOCOL', 'response line too long'));
      this.socket.destroy();
    }
  }

  private onLine(line: Buffer): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line.toString('utf8'));
    } catch {
      return; // a server bug; the request will time out or the connection will close
    }
    if (this.eventSink) {
      const ev = parseEventLine(msg);
      if (ev) {
        this.eventSink(ev);
        return;
      }
    }
    const resp = parseResponse(msg);
    if (!resp) return;
    if (resp.id === null) {
      // Not tied to a request: a fatal error or a reply to a line we could not frame.
      const err = resp.ok ? undefined : new ControlError(resp.error.code, resp.error.message);
      if (!err) return;
      if (FATAL.has(err.code)) {
        this.shutdown(err);
        return;
      }
      const oldest = this.pending.keys().next();
      if (!oldest.done) this.settle(oldest.value, undefined, err);
      return;
    }
    if (resp.ok) this.settle(resp.id, resp.result, undefined);
    else this.settle(resp.id, undefined, new ControlError(resp.error.code, resp.error.message));
  }

  private settle(id: number, result: unknown, err: Error | undefined): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (err) p.reject(err);
    else p.resolve(result);
  }

  private shutdown(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const w of this.closeWaiters) w();
    this.closeWaiters = [];
  }

  /**
   * Send one command and wait for its response. Rejects with `ControlError`
   * (server said no) or `ControlConnectError` (connection lost, or no answer
   * within `requestTimeoutMs` given to `connect`).
   */
  request<C extends Command>(cmd: C, args: CommandArgs[C]): Promise<CommandResults[C]> {
    return this.requestRaw(cmd, args) as Promise<CommandResults[C]>;
  }

  /** Untyped variant for tests and tools that build requests dynamically. */
  requestRaw(cmd: string, args: unknown, v: number = PROTOCOL_VERSION): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      if (this.requestTimeoutMs > 0 && cmd !== 'events') {
        timer = setTimeout(() => {
          this.pending.delete(id);
          reject(
            new ControlConnectError('TIMEOUT', `coatid did not answer ${cmd} within ${this.requestTimeoutMs / 1000}s`),
          );
        }, this.requestTimeoutMs);
      }
      this.pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(encodeLine({ id, v, cmd, args }));
    });
  }

  /** Switch this connection to the event stream. The connection cannot send requests afterwards. */
  async events(onEvent: (ev: ControlEvent) => void): Promise<EventStream> {
    this.eventSink = onEvent;
    try {
      await this.request('events', {});
    } catch (err) {
      this.eventSink = undefined;
      throw err;
    }
    const done = new Promise<void>((resolve) => {
      if (this.closedError) resolve();
      else this.closeWaiters.push(resolve);
    });
    return { done, stop: () => this.close() };
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
    this.shutdown(new ControlConnectError('CONNECTION_LOST', 'client closed the connection'));
  }
}
