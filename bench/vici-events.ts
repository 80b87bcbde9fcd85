/**
 * Counts strongSwan vici `child-updown` events on a dedicated vici connection,
 * for benches that must know when charon has INSTALLED K CHILD_SAs (vici
 * `stats` only counts IKE SAs, and in IKEv1 the IKE SA is up a whole Quick Mode
 * before its CHILD_SA). charon pushes one event per CHILD_SA, so nothing is
 * polled and no swanctl process runs during the measurement.
 *
 * Framing and connection helpers are vici.ts's; packet types EVENT_REGISTER (3),
 * EVENT_CONFIRM (5), EVENT_UNKNOWN (6), EVENT (7).
 */
import type { Socket } from 'node:net';
import { connectVici, decodeMsg, readPackets, writePacket } from './vici.js';

const EVENT_REGISTER = 3;
const EVENT_CONFIRM = 5;
const EVENT_UNKNOWN = 6;
const EVENT = 7;

export class ViciChildCounter {
  /** CHILD_SAs reported up (`up = yes`) since registration. */
  up = 0;
  /** CHILD_SAs reported down. */
  down = 0;
  private waiters: { n: number; resolve: () => void }[] = [];
  private confirmed: { resolve: () => void; reject: (e: Error) => void } | undefined;

  private constructor(private readonly sock: Socket) {
    readPackets(sock, (pkt) => this.onPacket(pkt));
    sock.on('error', () => {});
  }

  /** Connects and registers for `child-updown`; resolves once charon confirmed the registration. */
  static async open(path: string): Promise<ViciChildCounter> {
    const sock = await connectVici(path);
    const c = new ViciChildCounter(sock);
    const name = Buffer.from('child-updown');
    await new Promise<void>((resolve, reject) => {
      c.confirmed = { resolve, reject };
      writePacket(sock, Buffer.concat([Buffer.of(EVENT_REGISTER, name.length), name]));
    });
    return c;
  }

  private onPacket(pkt: Buffer): void {
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
