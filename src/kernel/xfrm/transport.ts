/**
 * Request/response over a NETLINK_XFRM socket: every request gets a sequence
 * number and NLM_F_ACK; replies are matched to pending promises by sequence
 * (many requests may be in flight), dumps collect multi-part replies until
 * NLMSG_DONE, and every request has a timeout. Multicast notifications go to
 * a separate listener.
 */
import { CoatiError } from '../../errors.js';
import { loadNative, type NativeNetlinkSocket } from '../../native.js';
import { MalformedMessageError } from '../../wire/errors.js';
import { msgTypeName, NETLINK_XFRM, NLM_F } from './constants.js';
import { decodeDatagram, type EncodeArgs, encodeMessage, type XfrmKind, type XfrmMessage } from './messages.js';

export type NetlinkFailure = 'errno' | 'timeout' | 'closed' | 'malformed';

/** A request the kernel refused (errno), or one that never completed. */
export class NetlinkRequestError extends CoatiError {
  constructor(
    readonly reason: NetlinkFailure,
    readonly request: string,
    readonly errno: number,
    readonly extMsg: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('NETLINK_REQUEST', message, options);
  }
}

interface Pending {
  seq: number;
  name: string;
  dump: boolean;
  replies: XfrmMessage[];
  interrupted: boolean;
  timer: NodeJS.Timeout;
  resolve: (r: { messages: XfrmMessage[]; interrupted: boolean }) => void;
  reject: (e: unknown) => void;
}

export interface TransportOptions {
  netns?: string;
  /** Multicast groups; when set, notifications go to onNotification. */
  groups?: number[];
  timeoutMs?: number;
  rcvbuf?: number;
  onNotification?: (m: XfrmMessage) => void;
  /** The kernel dropped messages for us (ENOBUFS): state may need a resync. */
  onOverrun?: () => void;
  /** A datagram that did not decode (logged by the owner; never thrown). */
  onMalformed?: (err: MalformedMessageError) => void;
}

export class XfrmTransport {
  private readonly pending = new Map<number, Pending>();
  private seq = (Date.now() & 0xffff) << 8;
  private closed = false;
  private readonly sock: NativeNetlinkSocket;
  readonly timeoutMs: number;

  constructor(private readonly opts: TransportOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.sock = loadNative().nlOpen({
      protocol: NETLINK_XFRM,
      groups: opts.groups ?? [],
      ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
      ...(opts.rcvbuf !== undefined ? { rcvbuf: opts.rcvbuf } : {}),
      onMessage: (buf, groups) => this.onDatagram(buf, groups),
      onEvent: (kind) => {
        if (kind === 'overrun') this.opts.onOverrun?.();
      },
    });
    // Pending requests keep the process alive through their timers, not the socket.
    this.sock.unref();
  }

  get portId(): number {
    return this.sock.portId;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    if (this.seq === 0) this.seq = 1;
    return this.seq;
  }

  /** Sends one request; resolves with the data messages of the reply (none for a plain ACK). */
  async request<K extends XfrmKind>(
    args: EncodeArgs<K>,
    opts: { dump?: boolean; timeoutMs?: number } = {},
  ): Promise<XfrmMessage[]> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.once(args, opts);
      // A dump that raced with changes is flagged DUMP_INTR: retry a few times.
      if (!r.interrupted || attempt >= 3) return r.messages;
    }
  }

  private once<K extends XfrmKind>(
    args: EncodeArgs<K>,
    opts: { dump?: boolean; timeoutMs?: number },
  ): Promise<{ messages: XfrmMessage[]; interrupted: boolean }> {
    const name = `XFRM_MSG_${args.kind}${opts.dump ? ' dump' : ''}`;
    if (this.closed) return Promise.reject(new NetlinkRequestError('closed', name, 0, undefined, `${name}: closed`));
    const seq = this.nextSeq();
    const flags = NLM_F.REQUEST | (opts.dump ? NLM_F.DUMP : NLM_F.ACK);
    const buf = encodeMessage({ ...args, seq, flags });
    return new Promise((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(new NetlinkRequestError('timeout', name, 0, undefined, `${name}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const p: Pending = { seq, name, dump: !!opts.dump, replies: [], interrupted: false, timer, resolve, reject };
      this.pending.set(seq, p);
      try {
        this.sock.send(buf);
      } catch (err) {
        this.settle(p);
        const e = err as { errno?: number; code?: string };
        reject(
          new NetlinkRequestError('errno', name, e.errno ?? 0, undefined, `${name}: send failed (${e.code})`, {
            cause: err,
          }),
        );
      }
    });
  }

  private settle(p: Pending): void {
    clearTimeout(p.timer);
    this.pending.delete(p.seq);
  }

  private onDatagram(buf: Buffer, groups: number): void {
    let messages: ReturnType<typeof decodeDatagram>;
    try {
      messages = decodeDatagram(buf);
    } catch (err) {
      const e = err as MalformedMessageError;
      this.opts.onMalformed?.(e);
      // Fail the request the datagram answered, if its header is readable.
      const p = groups === 0 && buf.length >= 16 ? this.pending.get(buf.readUInt32LE(8)) : undefined;
      if (p) {
        this.settle(p);
        p.reject(new NetlinkRequestError('malformed', p.name, 0, undefined, `${p.name}: ${e.message}`, { cause: e }));
      }
      return;
    }
    for (const m of messages) {
      if (groups !== 0) {
        if (m.kind !== 'ERROR' && m.kind !== 'DONE' && m.kind !== 'OTHER') this.opts.onNotification?.(m);
        continue;
      }
      const p = this.pending.get(m.nl.seq);
      if (!p) continue; // late reply to a timed-out request
      if (m.nl.flags & NLM_F.DUMP_INTR) p.interrupted = true;
      if (m.kind === 'ERROR' || (m.kind === 'DONE' && m.errno !== 0)) {
        this.settle(p);
        if (m.errno === 0) p.resolve({ messages: p.replies, interrupted: p.interrupted });
        else {
          const ext = m.kind === 'ERROR' ? m.extMsg : undefined;
          p.reject(
            new NetlinkRequestError(
              'errno',
              p.name,
              m.errno,
              ext,
              `${p.name}: errno ${m.errno}${ext ? ` (${ext})` : ''}`,
            ),
          );
        }
      } else if (m.kind === 'DONE') {
        this.settle(p);
        p.resolve({ messages: p.replies, interrupted: p.interrupted });
      } else if (m.kind !== 'OTHER') {
        p.replies.push(m);
      } else {
        this.opts.onMalformed?.(
          new MalformedMessageError(`unexpected ${msgTypeName(m.nl.type)} in reply to ${p.name}`, 0, 'netlink'),
        );
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
    for (const p of [...this.pending.values()]) {
      this.settle(p);
      p.reject(new NetlinkRequestError('closed', p.name, 0, undefined, `${p.name}: socket closed`));
    }
  }
}
