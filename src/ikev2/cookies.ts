import { createHash, timingSafeEqual } from 'node:crypto';
import type { RandomSource } from '../crypto/random.js';
import { ipToBytes } from '../util/ip.js';

/**
 * Stateless IKEv2 cookies (RFC 7296 2.6):
 * Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>).
 * The secret rotates; the previous one stays valid for one period so a
 * cookie issued just before a rotation still works.
 */
export class CookieJar {
  private version = 0;
  private current: Buffer;
  private previous: Buffer | undefined;
  private rotatedAt: number;

  constructor(
    private readonly random: RandomSource,
    private readonly now: () => number,
    private readonly rotateMs = 120_000,
  ) {
    this.current = random(32);
    this.rotatedAt = now();
  }

  private maybeRotate(): void {
    if (this.now() - this.rotatedAt < this.rotateMs) return;
    this.previous = this.current;
    this.current = this.random(32);
    this.version = (this.version + 1) & 0xffff;
    this.rotatedAt = this.now();
  }

  private compute(version: number, secret: Buffer, ni: Buffer, addr: string, spiI: Buffer): Buffer {
    const v = Buffer.alloc(2);
    v.writeUInt16BE(version);
    const h = createHash('sha256').update(ni).update(ipToBytes(addr)).update(spiI).update(secret).digest();
    return Buffer.concat([v, h]);
  }

  issue(ni: Buffer, addr: string, spiI: Buffer): Buffer {
    this.maybeRotate();
    return this.compute(this.version, this.current, ni, addr, spiI);
  }

  verify(cookie: Buffer, ni: Buffer, addr: string, spiI: Buffer): boolean {
    this.maybeRotate();
    if (cookie.length !== 34) return false;
    const version = cookie.readUInt16BE(0);
    const secret =
      version === this.version ? this.current : version === ((this.version - 1) & 0xffff) ? this.previous : undefined;
    if (!secret) return false;
    return timingSafeEqual(cookie, this.compute(version, secret, ni, addr, spiI));
  }
}
