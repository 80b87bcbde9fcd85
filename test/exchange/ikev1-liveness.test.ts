import { describe, expect, it } from 'vitest';
import { installedChildren, V1Mesh } from '../helpers/ike1-pair.js';

function setup(over = {}) {
  const m = new V1Mesh();
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  m.pair({ dpdDelayMs: 10_000, dpdTimeoutMs: 6_000, ...over });
  return { m, a, b };
}

const isInformational = (d: Buffer) => d[18] === 5;

describe('IKEv1 DPD (RFC 3706) and INITIAL-CONTACT', () => {
  it('a live but idle peer answers R-U-THERE with the same sequence number; nothing else happens', async () => {
    const { m, a } = setup();
    await a.manager.initiate('b');
    await m.settle();
    await m.advance(25_000, 500);
    const sent = a.events.filter((e) => e.type === 'liveness.sent');
    const ok = a.events.filter((e) => e.type === 'liveness.ok');
    expect(sent.length).toBeGreaterThanOrEqual(1);
    expect(ok.map((e) => e.seq)).toEqual(expect.arrayContaining([sent[0]!.seq]));
    expect(a.manager.established('b')).toHaveLength(1);
    expect(installedChildren(a, 'b')).toHaveLength(1);
  });

  it('no probes while ESP traffic comes in (kernel use time counts)', async () => {
    const { m, a, b } = setup();
    await a.manager.initiate('b');
    await m.settle();
    const [ca] = installedChildren(a, 'b');
    const [cb] = installedChildren(b, 'a');
    for (let t = 0; t < 40_000; t += 2000) {
      a.kernel.simulateTraffic({ dst: a.addr, spi: ca!.spiIn, proto: 'esp' }, 100);
      b.kernel.simulateTraffic({ dst: b.addr, spi: cb!.spiIn, proto: 'esp' }, 100);
      await m.advance(2000, 500);
    }
    expect(a.events.filter((e) => e.type === 'liveness.sent')).toHaveLength(0);
    expect(b.events.filter((e) => e.type === 'liveness.sent')).toHaveLength(0);
    expect(m.sent.filter((w) => isInformational(w.data))).toHaveLength(0);
  });

  it('a silent peer is declared dead within delay + timeout, then restart re-initiates', async () => {
    const { m, a, b } = setup({ dpdAction: 'restart' });
    await a.manager.initiate('b');
    await m.settle();
    const t0 = m.clock.now();
    b.up = false;
    await m.advance(16_500, 250);
    const dead = a.events.find((e) => e.type === 'liveness.dead');
    expect(dead).toBeDefined();
    expect(m.clock.now() - t0).toBeLessThanOrEqual(16_500);
    const probes = a.events.filter((e) => e.type === 'liveness.sent');
    expect(probes.length).toBeGreaterThanOrEqual(2);
    expect(new Set(probes.map((e) => e.seq)).size).toBe(probes.length);
    expect(a.events.some((e) => e.type === 'peer.down')).toBe(true);
    expect(await a.kernel.listSas()).toHaveLength(0);
    // The restart action started a new Main Mode.
    const connecting = a.manager.connecting('b');
    expect(connecting).toHaveLength(1);
    // b comes back as a fresh daemon (it had crashed) and answers the retransmitted Main Mode.
    await m.reboot('b');
    await m.advance(20_000, 500);
    expect(a.manager.established('b')).toHaveLength(1);
    expect(installedChildren(a, 'b')).toHaveLength(1);
  });

  it('an operator probe (coatictl dpd) resolves alive on an ACK and dead after the timeout; a second call joins the round', async () => {
    const { m, a, b } = setup({ dpdAction: 'clear' });
    await a.manager.initiate('b');
    await m.settle();
    const sa = a.manager.established('b')[0]!;
    const first = sa.probe!();
    const joined = sa.probe!();
    await m.settle();
    expect(await first).toBe('alive');
    expect(await joined).toBe('alive');
    expect(a.events.filter((e) => e.type === 'liveness.sent')).toHaveLength(1);
    b.up = false;
    let verdict: string | undefined;
    void sa.probe!().then((v) => {
      verdict = v;
    });
    await m.advance(3000, 250);
    expect(verdict).toBeUndefined();
    await m.advance(4000, 250);
    expect(verdict).toBe('dead');
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(true);
  });

  it('clear action: the dead peer stays down', async () => {
    const { m, a, b } = setup({ dpdAction: 'clear' });
    await a.manager.initiate('b');
    await m.settle();
    b.up = false;
    await m.advance(40_000, 500);
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(true);
    expect(a.manager.sasOf('b')).toHaveLength(0);
    expect(await a.kernel.listPolicies()).toHaveLength(0);
  });

  it('trap action: traps installed after the peer died', async () => {
    const { m, a, b } = setup({ dpdAction: 'trap' });
    await a.manager.initiate('b');
    await m.settle();
    b.up = false;
    await m.advance(40_000, 500);
    expect(a.manager.sasOf('b')).toHaveLength(0);
    expect((await a.kernel.listPolicies()).length).toBeGreaterThan(0);
    expect(await a.kernel.listSas()).toHaveLength(0);
  });

  it('INITIAL-CONTACT after a peer restart purges the SAs of its previous incarnation', async () => {
    const { m, a } = setup({ dpdDelayMs: 0 });
    await a.manager.initiate('b');
    await m.settle();
    const [old] = a.manager.established('b');
    await m.advance(5000);
    const b2 = await m.reboot('b');
    await b2.manager.initiate('a');
    await m.settle();
    expect(a.events.some((e) => e.type === 'initial_contact.purge')).toBe(true);
    expect(old!.state).toBe('destroyed');
    expect(a.manager.established('b')).toHaveLength(1);
    const ca = installedChildren(a, 'b');
    const cb = installedChildren(b2, 'a');
    expect(ca).toHaveLength(1);
    expect(cb).toHaveLength(1);
    expect(ca[0]!.spiIn).toBe(cb[0]!.spiOut);
    expect(await a.kernel.listSas()).toHaveLength(2);
    // Re-negotiation with a peer that did not restart carries no INITIAL-CONTACT.
    expect(a.manager.established('b')[0]!.initialContactSent).toBe(false);
  });
});
