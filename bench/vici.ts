/**
 * A minimal strongSwan vici client (request/response only, no events) for the
 * benches: lets the bench pipeline K `initiate` requests and poll `stats`
 * without spawning a swanctl process per call (which would load the CPUs being
 * measured). Wire format: u32 length, u8 packet type, then for CMD_REQUEST a
 * u8-length name and the message: SECTION_START(1)/END(2), KEY_VALUE(3),
 * LIST_START(4)/ITEM(5)/END(6).
 */
import { connect, type Socket } from 'node:net';

export type ViciMsg = { [key: string]: string | string[] | ViciMsg };

/** Connects to charon's vici socket; `path` is the socket path or a `unix://` URI. */
export function connectVici(path: string): Promise<Socket> {
  const p = path.replace(/^unix:\/\//, '');
  return new Promise((resolve, reject) => {
    const s = connect(p, () => resolve(s));
    s.once('error', reject);
  });
}

/** Writes one vici packet: u32 length, then `body` (packet type first). */
export function writePacket(sock: Socket, body: Buffer): void {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  sock.write(Buffer.concat([head, body]));
}

/** Calls `onPacket` with each complete vici packet (packet type first) read from `sock`. */
export function readPackets(sock: Socket, onPacket: (pkt: Buffer) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (buf.length < 4 + len) return;
      const pkt = buf.subarray(4, 4 + len);
      buf = buf.subarray(4 + len);
      onPacket(pkt);
    }
  });
}

const CMD_REQUEST = 0;
const CMD_RESPONSE = 1;
const CMD_UNKNOWN = 2;

export function encodeMsg(msg: ViciMsg, out: Buffer[]): void {
  for (const [k, v] of Object.entries(msg)) {
    const key = Buffer.from(k);
    if (typeof v === 'string') {
      const val = Buffer.from(v);
      const h = Buffer.alloc(2);
      h.writeUInt16BE(val.length);
      out.push(Buffer.of(3, key.length), key, h, val);
    } else if (Array.isArray(v)) {
      out.push(Buffer.of(4, key.length), key);
      for (const item of v) {
        const val = Buffer.from(item);
        const h = Buffer.alloc(2);
        h.writeUInt16BE(val.length);
        out.push(Buffer.of(5), h, val);
      }
      out.push(Buffer.of(6));
    } else {
      out.push(Buffer.of(1, key.length), key);
      encodeMsg(v, out);
      out.push(Buffer.of(2));
    }
  }
}

export function decodeMsg(buf: Buffer): ViciMsg {
  const root: ViciMsg = {};
  const stack: ViciMsg[] = [root];
  let list: string[] | undefined;
  let off = 0;
  const str8 = () => {
    const n = buf.readUInt8(off);
    const s = buf.toString('utf8', off + 1, off + 1 + n);
    off += 1 + n;
    return s;
  };
  const str16 = () => {
    const n = buf.readUInt16BE(off);
    const s = buf.toString('utf8', off + 2, off + 2 + n);
    off += 2 + n;
    return s;
  };
  while (off < buf.length) {
    const t = buf.readUInt8(off++);
    const cur = stack[stack.length - 1] as ViciMsg;
    if (t === 1) {
      const sec: ViciMsg = {};
      cur[str8()] = sec;
      stack.push(sec);
    } else if (t === 2) stack.pop();
    else if (t === 3) {
      const k = str8();
      cur[k] = str16();
    } else if (t === 4) {
      list = [];
      cur[str8()] = list;
    } else if (t === 5) list?.push(str16());
    else if (t === 6) list = undefined;
    else throw new Error(`vici: bad element type ${t}`);
  }
  return root;
}

export class ViciClient {
  private readonly waiting: { resolve: (m: ViciMsg) => void; reject: (e: Error) => void; cmd: string }[] = [];

  private constructor(private readonly sock: Socket) {
    readPackets(sock, (pkt) => this.onPacket(pkt));
    sock.on('error', (e) => this.failAll(e));
    sock.on('close', () => this.failAll(new Error('vici socket closed')));
  }

  /** `path` is the socket path or a `unix://` URI. */
  static async open(path: string): Promise<ViciClient> {
    return new ViciClient(await connectVici(path));
  }

  private failAll(e: Error): void {
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  private onPacket(pkt: Buffer): void {
    const type = pkt.readUInt8(0);
    const w = this.waiting.shift();
    if (!w) return;
    if (type === CMD_RESPONSE) w.resolve(decodeMsg(pkt.subarray(1)));
    else if (type === CMD_UNKNOWN) w.reject(new Error(`vici: unknown command ${w.cmd}`));
    else w.reject(new Error(`vici: unexpected packet type ${type} for ${w.cmd}`));
  }

  /** Sends a command; responses arrive in request order, so requests may be pipelined. */
  request(cmd: string, msg: ViciMsg = {}): Promise<ViciMsg> {
    const parts: Buffer[] = [];
    const name = Buffer.from(cmd);
    parts.push(Buffer.of(CMD_REQUEST, name.length), name);
    encodeMsg(msg, parts);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject, cmd });
      writePacket(this.sock, Buffer.concat(parts));
    });
  }

  /** IKE SAs in charon: total and half-open (`stats` command). */
  async ikeSas(): Promise<{ total: number; halfOpen: number }> {
    const s = await this.request('stats');
    const ike = s.ikesas as ViciMsg | undefined;
    return { total: Number(ike?.total ?? 0), halfOpen: Number(ike?.['half-open'] ?? 0) };
  }

  close(): void {
    this.sock.destroy();
  }
}
