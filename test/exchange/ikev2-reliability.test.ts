import { describe, expect, it } from 'vitest';
import { Mesh } from '../helpers/ike-pair.js';

function two() {
  const m = new Mesh();
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  m.fullMesh();
  return { m, a, b };
}

const exchangeOf = (d: Buffer) => d[18];
const isResponse = (d: Buffer) => ((d[19] ?? 0) & 0x20) !== 0;

describe('IKEv2 retransmission and duplicates', () => {
  it('recovers from a lost IKE_SA_INIT response by retransmitting', async () => {
    const { m, a, b } = two();
    let dropped = 0;
    m.filter = (w) => !(exchangeOf(w.data) === 34 && isResponse(w.data) && dropped++ === 0);
    await a.manager.initiate('b');
    await m.settle();
    expect(a.manager.established('b')).toHaveLength(0);
    await m.advance(3000);
    expect(a.manager.established('b')).toHaveLength(1);
    expect(b.manager.established('a')).toHaveLength(1);
    expect(b.manager.allSas()).toHaveLength(1); // the retransmitted request found the half-open SA
    expect(a.events.some((e) => e.type === 'retransmit')).toBe(true);
  });

  it('answers a duplicated IKE_AUTH request from its response cache without a second child', async () => {
    const { m, a, b } = two();
    m.filter = (w) => {
      if (exchangeOf(w.data) === 35 && !isResponse(w.data)) m.queue.push({ ...w, data: Buffer.from(w.data) });
      return true;
    };
    await a.manager.initiate('b');
    await m.settle();
    const [sb] = b.manager.established('a');
    expect(sb?.children.size).toBe(1);
    expect(await b.kernel.listSas()).toHaveLength(2);
    const responses = m.sent.filter((w) => exchangeOf(w.data) === 35 && isResponse(w.data));
    expect(responses).toHaveLength(2);
    expect(responses[0]!.data.equals(responses[1]!.data)).toBe(true);
  });

  it('drops a tampered message silently and still completes on retransmit', async () => {
    const { m, a, b } = two();
    let n = 0;
    m.filter = (w) => {
      if (exchangeOf(w.data) === 35 && !isResponse(w.data) && n++ === 0) {
        const bad = Buffer.from(w.data);
        bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
        m.queue.push({ ...w, data: bad });
        return false;
      }
      return true;
    };
    await a.manager.initiate('b');
    await m.settle();
    expect(b.events.some((e) => e.type === 'packet.dropped' && String(e.reason).includes('integrity'))).toBe(true);
    await m.advance(3000);
    expect(a.manager.established('b')).toHaveLength(1);
  });

  it('survives reordered IKE_SA_INIT retransmissions', async () => {
    const { m, a, b } = two();
    await a.manager.initiate('b');
    // Hold the request, let a retransmit happen, deliver both in reverse order.
    const first = m.queue.splice(0);
    await m.clock.advance(2100);
    const second = m.queue.splice(0);
    m.queue.push(...second, ...first);
    await m.settle();
    await m.advance(1000);
    expect(a.manager.established('b')).toHaveLength(1);
    expect(b.manager.established('a')).toHaveLength(1);
  });

  it('gives up after the retransmit ladder, then retries with bounded backoff', async () => {
    const { m, a, b } = two();
    b.up = false;
    await a.manager.initiate('b');
    await m.advance(80_000, 1000);
    const fails = a.events.filter((e) => e.type === 'handshake.failed');
    expect(fails.length).toBeGreaterThanOrEqual(1);
    expect(fails[0]?.reason).toBe('TIMEOUT');
    expect(a.manager.peer('b')?.failures).toBeGreaterThanOrEqual(1);
    b.up = true;
    await m.advance(200_000, 1000);
    expect(a.manager.established('b')).toHaveLength(1);
    expect(a.manager.peer('b')?.failures).toBe(0);
  });

  it('answers requests for unknown SPIs with INVALID_IKE_SPI (rate-limited)', async () => {
    const { m, a, b } = two();
    await a.manager.initiate('b');
    await m.settle();
    const [sa] = a.manager.established('b');
    // b forgets everything (a crash without state): a's liveness check gets INVALID_IKE_SPI.
    m.nodes.delete('b');
    const b2 = m.add('b', '10.0.0.2');
    b2.manager.setPeer(b.manager.peer('a')!.policy);
    await sa!.queue.run(() => void sa!.probe(60_000));
    await m.settle();
    const answers = m.sent.filter((w) => w.from.addr === '10.0.0.2' && exchangeOf(w.data) === 37);
    expect(answers.length).toBeGreaterThanOrEqual(1);
    expect(a.events.some((e) => e.type === 'liveness.suspect')).toBe(true);
    // Confirmed within the short window (not the 60 s probe), then re-initiated at once (dpd_action=restart).
    await m.advance(1500);
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(true);
    expect(a.manager.established('b')).toHaveLength(1);
    expect(a.manager.established('b')[0]).not.toBe(sa);
    expect(b2.manager.established('a')).toHaveLength(1);
  });
});
