/**
 * The admin socket server. Each connection gets the hello line, then
 * request/response lines (pipelined, answered by id), or after `events` a
 * stream of event lines. No input can throw out of here: malformed lines get
 * an error response, protocol abuse (huge lines, idling, too many
 * connections) gets an error line and a close, and a rejecting
 * `DaemonControl` becomes an `INTERNAL` (or its own code) response.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { type ControlErrorCode, toWireError } from './errors.js';
import {
  encodeLine,
  errorResponse,
  type Hello,
  LineSplitter,
  MAX_LINE_BYTES,
  okResponse,
  type ParsedRequest,
  PROTOCOL_VERSION,
  parseRequestLine,
  SUPPORTED_VERSIONS,
} from './protocol.js';
import { applySocketPermissions, DEFAULT_SOCKET_MODE, prepareSocketPath, resolveGroup } from './socket-path.js';
import type { ControlEvent, DaemonControl } from './types.js';

export interface ControlLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface ControlServerOptions {
  path: string;
  /** Socket file mode, default 0o660. */
  mode?: number;
  /** Admin group (name or gid): the socket is chowned to root:group. */
  group?: string | number;
  control: DaemonControl;
  logger?: ControlLogger;
  /** Host name announced in the hello line (default os.hostname()). */
  host?: string;
  maxConnections?: number;
  /** Close a request/response connection after this long without a request. Event streams are exempt. */
  idleTimeoutMs?: number;
  maxLineBytes?: number;
  /** Requests in flight per connection before `BUSY`. */
  maxInFlight?: number;
  /** An event subscriber that falls this far behind (bytes queued) is dropped. */
  maxEventBacklogBytes?: number;
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

const noopLogger: ControlLogger = { info() {}, warn() {}, error() {} };

interface Limits {
  maxLineBytes: number;
  idleTimeoutMs: number;
  maxInFlight: number;
  maxEventBacklogBytes: number;
}

async function dispatch(control: DaemonControl, req: ParsedRequest): Promise<unknown> {
  switch (req.cmd) {
    case 'status':
      return control.status(req.args.peer);
    case 'initiate':
      return control.initiate(req.args);
    case 'terminate':
      return control.terminate(req.args);
    case 'rekey': {
      const { kind = 'ike', ...target } = req.args;
      return control.rekey(target, kind);
    }
    case 'dpd':
      return control.dpd(req.args);
    case 'reload':
      return control.reload();
    case 'restart':
      return control.restart();
    case 'keylog':
      return control.keylog(req.args.on);
    case 'events':
      throw new Error('events is handled by the connection');
  }
}

/** One client connection. */
class Connection {
  private readonly splitter: LineSplitter;
  private inFlight = 0;
  private readEnded = false;
  private closing = false;
  private unsubscribe: (() => void) | undefined;
  /** Set by `events`; the connection never returns to request mode. */
  private streaming = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly control: DaemonControl,
    private readonly limits: Limits,
    private readonly log: ControlLogger,
    private readonly onClosed: () => void,
  ) {
    this.splitter = new LineSplitter(limits.maxLineBytes);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => {
      // Peer resets and EPIPE are normal for a CLI that went away.
      this.log.info('control connection error', { error: err.message });
    });
    socket.on('close', () => this.cleanup());
    this.armIdle();
  }

  private armIdle(): void {
    if (this.limits.idleTimeoutMs <= 0 || this.streaming) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.inFlight > 0) {
        this.armIdle();
        return;
      }
      this.fatal('IDLE_TIMEOUT', `no request for ${this.limits.idleTimeoutMs} ms, closing`);
    }, this.limits.idleTimeoutMs);
    this.idleTimer.unref();
  }

  /** Never throws: a value that cannot be encoded (cycles, toJSON throwing) becomes an INTERNAL error line. */
  private write(value: unknown): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    let line: string;
    try {
      line = encodeLine(value);
    } catch (err) {
      const id = (value as { id?: unknown } | null)?.id;
      this.log.error('control: cannot encode reply', { error: String(err) });
      line = encodeLine(
        errorResponse(
          typeof id === 'number' ? id : null,
          'INTERNAL',
          `daemon reply could not be encoded: ${String(err)}`,
        ),
      );
    }
    this.socket.write(line);
  }

  /** Send a last error line and close. */
  private fatal(code: ControlErrorCode, message: string): void {
    if (this.closing) return;
    this.closing = true;
    this.write(errorResponse(null, code, message));
    this.socket.end();
    // Don't wait forever for a client that will not read.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    if (this.streaming) return; // event streams ignore input; EOF ends them
    let res: ReturnType<LineSplitter['push']>;
    try {
      res = this.splitter.push(chunk);
    } catch (err) {
      this.log.error('control: line splitting failed', { error: String(err) });
      this.fatal('INTERNAL', 'internal error reading request');
      return;
    }
    for (const line of res.lines) this.handleLine(line);
    if (res.overflow) this.fatal('LINE_TOO_LONG', `request line longer than ${this.limits.maxLineBytes} bytes`);
  }

  private onEnd(): void {
    this.readEnded = true;
    // EOF from the client ends an event stream: the subscriber goes away at
    // once instead of lingering until the next event fails to write.
    if (this.streaming) {
      this.cleanupSubscription();
      this.socket.end();
      return;
    }
    const tail = this.closing ? undefined : this.splitter.flush();
    if (tail) this.handleLine(tail);
    this.maybeFinish();
  }

  /** Half-close from the client: answer what is in flight, then close our side. */
  private maybeFinish(): void {
    if (this.readEnded && this.inFlight === 0 && !this.streaming && !this.closing) {
      this.closing = true;
      this.socket.end();
    }
  }

  private handleLine(line: Buffer): void {
    if (this.closing || this.streaming) return;
    if (line.length === 0) return; // blank lines are keep-alives
    this.armIdle();
    const parsed = parseRequestLine(line);
    if (!parsed.ok) {
      this.write(errorResponse(parsed.id, parsed.error.code, parsed.error.message));
      return;
    }
    const req = parsed.request;
    if (req.cmd === 'events') {
      this.startEvents(req.id);
      return;
    }
    if (this.inFlight >= this.limits.maxInFlight) {
      this.write(errorResponse(req.id, 'BUSY', `more than ${this.limits.maxInFlight} requests in flight`));
      return;
    }
    this.inFlight++;
    let pending: Promise<unknown>;
    try {
      pending = dispatch(this.control, req);
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (result) => {
        this.inFlight--;
        if (result === undefined) {
          this.write(errorResponse(req.id, 'INTERNAL', `daemon returned no result for ${req.cmd}`));
        } else {
          this.write(okResponse(req.id, result));
        }
        this.maybeFinish();
      },
      (err: unknown) => {
        this.inFlight--;
        const wire = toWireError(err);
        if (wire.code === 'INTERNAL') this.log.error(`control: ${req.cmd} failed`, { error: wire.message });
        this.write(errorResponse(req.id, wire.code, wire.message));
        this.maybeFinish();
      },
    );
  }

  private startEvents(id: number): void {
    if (this.inFlight > 0) {
      this.write(errorResponse(id, 'BUSY', 'events: wait for outstanding requests first'));
      return;
    }
    clearTimeout(this.idleTimer);
    this.streaming = true;
    this.write(okResponse(id, { streaming: true }));
    const onEvent = (ev: ControlEvent) => {
      if (this.socket.destroyed) return;
      if (this.socket.writableLength > this.limits.maxEventBacklogBytes) {
        this.log.warn('control: dropping slow event subscriber');
        this.write({ event: { type: 'stream.overflow', time: new Date().toISOString() } });
        this.cleanupSubscription();
        this.socket.end();
        return;
      }
      this.write({ event: ev });
    };
    try {
      this.unsubscribe = this.control.subscribe(onEvent);
    } catch (err) {
      this.write(errorResponse(null, 'INTERNAL', `events: ${toWireError(err).message}`));
      this.socket.end();
      return;
    }
  }

  private cleanupSubscription(): void {
    const unsub = this.unsubscribe;
    if (!unsub) return;
    this.unsubscribe = undefined;
    try {
      unsub();
    } catch (err) {
      this.log.error('control: unsubscribe failed', { error: String(err) });
    }
  }

  private cleanup(): void {
    clearTimeout(this.idleTimer);
    this.cleanupSubscription();
    this.onClosed();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export async function startControlServer(opts: ControlServerOptions): Promise<ControlServer> {
  const log = opts.logger ?? noopLogger;
  const mode = opts.mode ?? DEFAULT_SOCKET_MODE;
  const gid = opts.group === undefined ? undefined : await resolveGroup(opts.group);
  const limits: Limits = {
    maxLineBytes: opts.maxLineBytes ?? MAX_LINE_BYTES,
    idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
    maxInFlight: opts.maxInFlight ?? 16,
    maxEventBacklogBytes: opts.maxEventBacklogBytes ?? 1024 * 1024,
  };
  const maxConnections = opts.maxConnections ?? 32;
  const hello: Hello = { coati: PROTOCOL_VERSION, host: opts.host ?? hostname(), versions: [...SUPPORTED_VERSIONS] };

  await prepareSocketPath(opts.path, gid);

  const connections = new Set<Connection>();
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    try {
      if (connections.size >= maxConnections) {
        socket.on('error', () => {});
        socket.end(encodeLine(errorResponse(null, 'TOO_MANY_CONNECTIONS', `limit of ${maxConnections} reached`)));
        setTimeout(() => socket.destroy(), 1000).unref();
        return;
      }
      socket.write(encodeLine(hello));
      const conn = new Connection(socket, opts.control, limits, log, () => connections.delete(conn));
      connections.add(conn);
    } catch (err) {
      log.error('control: connection setup failed', { error: String(err) });
      socket.destroy();
    }
  });
  server.on('error', (err) => log.error('control server error', { error: err.message }));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    // Bind with a tight umask so the socket is never briefly connectable by others.
    const oldMask = trySetUmask(0o177);
    try {
      server.listen(opts.path, () => {
        server.off('error', onError);
        resolve();
      });
    } finally {
      if (oldMask !== undefined) trySetUmask(oldMask);
    }
  });
  try {
    await applySocketPermissions(opts.path, mode, gid);
  } catch (err) {
    server.close();
    throw err;
  }
  log.info('control socket listening', { path: opts.path, mode: mode.toString(8), gid });

  return {
    path: opts.path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.destroy();
        server.close(() => resolve());
      }),
  };
}

function trySetUmask(mask: number): number | undefined {
  try {
    return process.umask(mask);
  } catch {
    return undefined; // worker threads cannot change the umask
  }
}
