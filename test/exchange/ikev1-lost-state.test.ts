/**
 * IKEv1 reaction to lost state on the other side.
 *
 * - A coati that receives an encrypted Informational or Quick Mode for a cookie
 *   pair it does not know answers with an unprotected INVALID-COOKIE naming the
 *   pair (RFC 2408 5.2 allows it), rate-limited; it never answers clear messages.
 * - A survivor that gets such a notify for an SA it holds does not believe it
 *   (anyone can forge it): one R-U-THERE must be answered within
 *   lostStateConfirmMs (1 s), or the SA is dead and dpd_action runs at once,
 *   instead of after the whole DPD timeout. A forged notify costs one R-U-THERE.
 */
import { describe, expect, it } from 'vitest';
import type { IsakmpSa } from '../../src/ikev1/isakmp-sa.js';
import { spiHex } from '../../src/ikev2/child-sa.js';
import { decodeIsakmpMessage, V1ExchangeType, V1NotifyType, V1PayloadType } from '../../src/wire/ikev1/index.js';
import { installedChildren, V1Mesh } from '../helpers/ike1-pair.js';

const INFO = V1ExchangeType.INFORMATIONAL;

/** Unprotected INVALID-COOKIE notifies on the wire (cookie pair in the SPI), as hex. */
function invalidCookies(m: V1Mesh, from: string): string[] {
  const out: string[] = [];
  for (const w of m.sent) {
    if (w.from.addr !== from || w.data[18] !== INFO || (w.data[19]! & 1) !== 0) continue;
    const msg = decodeIsakmpMessage(w.data);
    for (const p of msg.payloads ?? [])
      if (p.type === V1PayloadType.N && p.notifyType === V1NotifyType.INVALID_COOKIE) out.push(p.spi.toString('hex'));
  }
  return out;
}

/** An unprotected INVALID-COOKIE for `sa` as the peer would send it. */
function forgedInvalidCookie(sa: IsakmpSa): Buffer {
  return sa.sealPlain(INFO, 0x1234567, [
    {
      type: V1PayloadType.N,
      doi: 1,
      protocolId: 1,
      spi: Buffer.concat([sa.cookieI, sa.cookieR]),
      notifyType: V1NotifyType.INVALID_COOKIE,
      data: Buffer.alloc(0),
    },
  ]);
}

async function established(over = {}) {
  const m = new V1Mesh();
  const a = m.add('a', '10.0.0.1');
  m.add('b', '10.0.0.2');
  m.pair({ dpdDelayMs: 5_000, dpdTimeoutMs: 30_000, dpdAction: 'restart', start: 'none', ...over });
  await a.manager.initiate('b');
  await m.settle();
  const [old] = installedChildren(a, 'b');
  expect(old).toBeDefined();
  return { m, a, old: old! };
}

describe('IKEv1 lost state on the other side (INVALID-COOKIE)', () => {
  it('a restarted responder answers DPD with INVALID-COOKIE; the survivor confirms within 1 s and re-establishes (not after the 30 s DPD timeout)', async () => {
    const { m, a, old } = await established();
    const sa = a.manager.established('b')[0]!;
    const pair = sa.cookieI.toString('hex') + sa.cookieR.toString('hex');
    // b restarts without its IKE state (start = none: it will not initiate); its kernel keeps the pair.
    const b2 = await m.reboot('b', false);
    const t0 = m.clock.now();
    for (let t = 0; t < 12_000 && !installedChildren(a, 'b').some((c) => c !== old); t += 250) {
      await m.advance(250, 250);
    }
    const upAt = m.clock.now();
    expect(invalidCookies(m, b2.addr)).toContain(pair);
    const suspect = a.events.find((e) => e.type === 'liveness.suspect');
    expect(suspect?.reason).toBe('INVALID_COOKIE from peer');
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(true);
    // DPD delay (5 s + jitter) + 1 s confirmation + one handshake, far below delay + 30 s timeout.
    expect(upAt - t0).toBeLessThan(8_000);
    const [ca] = installedChildren(a, 'b');
    const [cb] = installedChildren(b2, 'a');
    expect(ca?.spiIn).toBe(cb?.spiOut);
    expect(ca?.spiIn).not.toBe(old.spiIn);
    // The old pair carried traffic until the new one was in, then went.
    const oldStates = a.events.filter((e) => e.type === 'child.state' && e.spiIn === spiHex(old.spiIn));
    expect(oldStates.map((e) => [e.to, e.reason])).toEqual([
      ['installed', 'Quick Mode'],
      ['rekeyed', 'peer lost its state: kept until a new pair is installed'],
      ['destroyed', expect.stringMatching(/^replaced by /)],
    ]);
    await m.settle();
    expect(a.manager.purgedPairs('b')).toEqual([]);
    expect(await a.kernel.getSa({ dst: a.addr, spi: old.spiIn, proto: 'esp' })).toBeUndefined();
  });

  it('a forged INVALID-COOKIE costs one R-U-THERE: the live peer answers and the SA stays', async () => {
    const { m, a, old } = await established();
    const sa = a.manager.established('b')[0]!;
    const sentBefore = a.events.filter((e) => e.type === 'liveness.sent').length;
    const forged = forgedInvalidCookie(sa);
    // Twice in a row: the second falls within the confirmation and is ignored.
    for (let i = 0; i < 2; i++) a.manager.receive(forged, { addr: '10.0.0.2', port: 500 }, { addr: a.addr, port: 500 });
    await m.settle();
    await m.advance(3000);
    expect(a.events.filter((e) => e.type === 'liveness.suspect')).toHaveLength(1);
    expect(a.events.filter((e) => e.type === 'liveness.sent').length - sentBefore).toBe(1);
    expect(
      a.events.some((e) => e.type === 'liveness.ok'),
      JSON.stringify(a.events.slice(-8)),
    ).toBe(true);
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(false);
    expect(a.manager.established('b')).toEqual([sa]);
    expect(installedChildren(a, 'b')).toEqual([old]);
  });

  it('without DPD announced by the peer the hint cannot be confirmed and is ignored', async () => {
    const { m, a } = await established();
    const sa = a.manager.established('b')[0]!;
    sa.peerDpd = false;
    a.manager.receive(forgedInvalidCookie(sa), { addr: '10.0.0.2', port: 500 }, { addr: a.addr, port: 500 });
    await m.settle();
    await m.advance(3000);
    expect(a.events.some((e) => e.type === 'liveness.suspect')).toBe(false);
    expect(a.events.some((e) => e.type === 'liveness.sent')).toBe(false);
    expect(a.manager.established('b')).toEqual([sa]);
  });

  it('INVALID-COOKIE answers are rate-limited and never sent for clear messages', async () => {
    const { m, a } = await established();
    const sa = a.manager.established('b')[0]!;
    const b = m.node('b');
    // Encrypted Informationals under a cookie pair b does not know (a's SA with other cookies).
    const bogus = (i: number) => {
      const c = Buffer.from(sa.cookieR);
      c.writeUInt32BE(i, 0);
      const d = Buffer.from(
        sa.seal(INFO, 0x100 + i, [
          {
            type: V1PayloadType.N,
            doi: 1,
            protocolId: 1,
            spi: Buffer.alloc(0),
            notifyType: 36136,
            data: Buffer.alloc(0),
          },
        ]),
      );
      c.copy(d, 8);
      return d;
    };
    const before = invalidCookies(m, b.addr).length;
    for (let i = 0; i < 50; i++)
      b.manager.receive(bogus(i + 1), { addr: a.addr, port: 500 }, { addr: b.addr, port: 500 });
    // A clear Informational with unknown cookies (e.g. someone's INVALID-COOKIE): no answer.
    const clear = Buffer.from(forgedInvalidCookie(sa));
    clear.writeUInt32BE(0xdead, 8);
    b.manager.receive(clear, { addr: a.addr, port: 500 }, { addr: b.addr, port: 500 });
    expect(invalidCookies(m, b.addr).length - before).toBe(20);
    await m.advance(1100);
    b.manager.receive(bogus(999), { addr: a.addr, port: 500 }, { addr: b.addr, port: 500 });
    expect(invalidCookies(m, b.addr).length - before).toBe(21);
  });
});
