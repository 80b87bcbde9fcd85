import { describe, expect, it } from 'vitest';
import { installedChildren, V1Mesh } from '../helpers/ike1-pair.js';

function setup() {
  const m = new V1Mesh();
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  m.pair();
  return { m, a, b };
}

const isEncrypted = (d: Buffer) => (d[19]! & 1) === 1;
const exchangeOf = (d: Buffer) => d[18];

describe('IKEv1 retransmission and duplicates', () => {
  it('MM6 lost: the initiator retransmits MM5 unchanged, the responder replays MM6, IVs stay in step', async () => {
    const { m, a, b } = setup();
    let dropped = 0;
    m.filter = (w) => {
      if (w.from.addr === b.addr && exchangeOf(w.data) === 2 && isEncrypted(w.data) && dropped === 0) {
        dropped++;
        return false;
      }
      return true;
    };
    await a.manager.initiate('b');
    await m.settle();
    expect(b.manager.established('a')).toHaveLength(1);
    expect(a.manager.established('b')).toHaveLength(0);
    await m.advance(3000, 100);
    const mm5s = m.sent.filter((w) => w.from.addr === a.addr && exchangeOf(w.data) === 2 && isEncrypted(w.data));
    expect(mm5s).toHaveLength(2);
    expect(mm5s[0]!.data.equals(mm5s[1]!.data)).toBe(true);
    const mm6s = m.sent.filter((w) => w.from.addr === b.addr && exchangeOf(w.data) === 2 && isEncrypted(w.data));
    expect(mm6s).toHaveLength(2);
    expect(mm6s[0]!.data.equals(mm6s[1]!.data)).toBe(true);
    expect(b.events.some((e) => e.type === 'duplicate.replayed')).toBe(true);
    expect(a.manager.established('b')).toHaveLength(1);
    // Quick Mode IVs derive from the phase 1 IV: it only works if both kept the same one.
    expect(installedChildren(a, 'b')).toHaveLength(1);
    expect(installedChildren(b, 'a')).toHaveLength(1);
  });

  it('QM2 lost: QM1 is retransmitted, the responder replays QM2; a duplicated QM2 is answered with the same QM3', async () => {
    const { m, a, b } = setup();
    let dropped = 0;
    m.filter = (w) => {
      if (w.from.addr === b.addr && exchangeOf(w.data) === 32 && dropped === 0) {
        dropped++;
        return false;
      }
      return true;
    };
    await a.manager.initiate('b');
    await m.settle();
    expect(installedChildren(a, 'b')).toHaveLength(0);
    await m.advance(3000, 100);
    const qm1 = m.sent.filter((w) => w.from.addr === a.addr && exchangeOf(w.data) === 32);
    expect(qm1.length).toBe(3); // QM1, its retransmission, QM3
    expect(qm1[0]!.data.equals(qm1[1]!.data)).toBe(true);
    const ca = installedChildren(a, 'b');
    const cb = installedChildren(b, 'a');
    expect(ca).toHaveLength(1);
    expect(cb).toHaveLength(1);
    expect(ca[0]!.spiIn).toBe(cb[0]!.spiOut);
    // The network duplicates QM2 now: a replays QM3, b ignores the duplicate QM3.
    const qm2 = m.sent.filter((w) => w.from.addr === b.addr && exchangeOf(w.data) === 32).at(-1)!;
    const before = m.sent.length;
    m.queue.push({ ...qm2 });
    await m.settle();
    const extra = m.sent.slice(before);
    expect(extra).toHaveLength(1);
    expect(extra[0]!.data.equals(qm1[2]!.data)).toBe(true);
    expect(installedChildren(b, 'a')).toHaveLength(1);
    expect(await b.kernel.listSas()).toHaveLength(2);
  });

  it('QM3 never arrives: the responder gives up and DELETEs the SPI it offered; the initiator drops the pair it installed', async () => {
    const { m, a, b } = setup();
    let qm1: Buffer | undefined;
    // Every Quick Mode message from a but its first (QM1 and its retransmissions) is lost: QM3.
    m.filter = (w) => {
      if (w.from.addr !== a.addr || exchangeOf(w.data) !== 32) return true;
      qm1 ??= w.data;
      return w.data.equals(qm1);
    };
    await a.manager.initiate('b');
    await m.settle();
    // a installed the pair as it sent QM3; b keyed its inbound SA and waits for QM3.
    expect(installedChildren(a, 'b')).toHaveLength(1);
    expect(installedChildren(b, 'a')).toHaveLength(0);
    await m.advance(120_000, 1000);
    expect(b.events.some((e) => e.type === 'child.failed' && /no Quick Mode 3/.test(String(e.reason)))).toBe(true);
    expect(await b.kernel.listSas()).toEqual([]);
    // Before, a kept sending on this pair until it re-keyed it (50 minutes with these lifetimes).
    expect(a.events.some((e) => e.type === 'delete.received' && e.what === 'esp')).toBe(true);
    expect(installedChildren(a, 'b')).toHaveLength(0);
    expect(await a.kernel.listSas()).toEqual([]);
    expect(a.manager.established('b')).toHaveLength(1);
  });

  it('a duplicated QM1 is answered by replaying QM2; a late copy after QM3 allocates nothing', async () => {
    const { m, a, b } = setup();
    let held: (typeof m.queue)[number] | undefined;
    m.filter = (w) => {
      if (!held && w.from.addr === a.addr && exchangeOf(w.data) === 32) {
        held = { ...w };
        m.queue.push({ ...w }); // the network duplicates it
      }
      return true;
    };
    await a.manager.initiate('b');
    await m.settle();
    const qm2s = m.sent.filter((w) => w.from.addr === b.addr && exchangeOf(w.data) === 32);
    expect(qm2s).toHaveLength(2);
    expect(qm2s[0]!.data.equals(qm2s[1]!.data)).toBe(true);
    const qm3s = m.sent.filter((w) => w.from.addr === a.addr && exchangeOf(w.data) === 32).slice(1);
    expect(qm3s).toHaveLength(2);
    expect(qm3s[0]!.data.equals(qm3s[1]!.data)).toBe(true);
    expect(installedChildren(a, 'b')).toHaveLength(1);
    expect(installedChildren(b, 'a')).toHaveLength(1);
    const before = m.sent.length;
    m.queue.push(held!);
    await m.settle();
    expect(m.sent.length).toBe(before);
    expect(b.events.at(-1)).toMatchObject({ type: 'packet.dropped' });
    expect(installedChildren(b, 'a')).toHaveLength(1);
    expect(await b.kernel.listSas()).toHaveLength(2);
  });

  it('garbage, truncations and tampered messages are dropped with a reason, never a crash', async () => {
    const { m, a, b } = setup();
    await a.manager.initiate('b');
    await m.settle();
    const ep = (n: { addr: string }) => ({ addr: n.addr, port: 500 });
    const samples: Buffer[] = [Buffer.alloc(0), Buffer.from([1, 2, 3]), Buffer.alloc(28, 0xff)];
    for (const w of m.sent) {
      for (const cut of [5, 27, 29, w.data.length - 1]) samples.push(w.data.subarray(0, cut));
      const t = Buffer.from(w.data);
      t[t.length - 1]! ^= 0x55;
      samples.push(t);
      const u = Buffer.from(w.data);
      u[30] = 0xee;
      samples.push(u);
    }
    for (const s of samples) {
      a.manager.receive(s, ep(b), ep(a));
      b.manager.receive(s, ep(a), ep(b));
    }
    await m.settle();
    expect(a.events.filter((e) => e.type === 'log.error')).toEqual([]);
    expect(b.events.filter((e) => e.type === 'log.error')).toEqual([]);
    expect(b.events.filter((e) => e.type === 'packet.dropped').length).toBeGreaterThan(10);
    expect(a.manager.established('b')).toHaveLength(1);
    expect(installedChildren(a, 'b')).toHaveLength(1);
    // The SA still works after all that: a DPD round trip succeeds.
    a.manager.established('b')[0]!.probe?.();
    await m.settle();
    expect(a.events.some((e) => e.type === 'liveness.ok')).toBe(true);
  });
});
