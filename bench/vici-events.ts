/**
 * Counts strongSwan vici `child-updown` events on a dedicated vici connection,
 * for benches that must know when charon has INSTALLED K CHILD_SAs (vici
 * `stats` only counts IKE SAs, and in IKEv1 the IKE SA is up a whole Quick Mode
 * before its CHILD_SA). charon pushes one event per CHILD_SA, so nothing is
 * polled and no swanctl process runs during the measurement.
 *
 * Wire format as in vici.ts; packet types EVENT_REGISTER (3), EVENT_CONFIRM (5),
 * EVENT_UNKNOWN (6), EVENT (7).
 */
import { connect, type Socket } from 'node:net';
import { decodeMsg } from './vici.js';

const EVENT_REGISTER = 3;
const EVENT_CONFIRM = 5;
const EVENT_UNKNOWN = 6;
const EVENT = 7;

export class ViciChildCounter {
  /** CHILD_SAs reported up (`up = yes`) since registration. */
  up = 0;
  /** CHILD_SAs reported down. */
  down = 0;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: { n: number; resolve: () => void }[] = [];
  private confirmed: { resolve: () => void; reject: (e: Error) => void } | undefined;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', () => {});
  }

  /** Connects and registers for `child-updown`; resolves once charon confirmed the registration. */
  static async open(path: string): Promise<ViciChildCounter> {
    const p = path.replace(/^unix:\/\//, '');
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = connect(p, () => resolve(s));
      s.once('error', reject);
    });
    const c = new ViciChildCounter(sock);
    const name = Buffer.from('child-updown');
    const body = Buffer.concat([Buffer.of(EVENT_REGISTER, name.length), name]);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    await new Promise<void>((resolve, reject) => {
      c.confirmed = { resolve, reject };
      sock.write(Buffer.concat([head, body]));
    });
    return c;
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (this.buf.length < 4 + len) return;
      const pkt = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      const type = pkt.readUInt8(0);
      if (type === EVENT_CONFIRM) {
        this.confirmed?.resolve();
        this.confirmed = undefined;
      } else if (type === EVENT_UNKNOWN) {
        this.confirmed?.reject(new Error('vici: charon does not know the child-updown event'));
        this.confirmed = undefined;
      } else if (type === EVENT) {
        const n = pkt.readUInt8(1);
        const msg = decodeMsg(pkt.subarray(2 + n));
        if (msg.up === 'yes') this.up++;
        else this.down++;
        this.waiters = this.waiters.filter((w) => {
          if (this.up < w.n) return true;
          w.resolve();
          return false;
        });
      }
    }
  }

  /** Resolves true once `n` CHILD_SAs came up, false at `deadline` (a performance.now() value). */
  waitUp(n: number, deadline: number): Promise<boolean> {
    if (this.up >= n) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), Math.max(0, deadline - performance.now()));
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(t);
          resolve(true);
        },
      });
    });
  }

  close(): void {
    this.sock.destroy();
  }
}
