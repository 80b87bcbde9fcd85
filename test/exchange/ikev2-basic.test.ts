import { describe, expect, it } from 'vitest';
import { Mesh } from '../helpers/ike-pair.js';

function pair() {
  const m = new Mesh();
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  m.fullMesh();
  return { m, a, b };
}

describe('IKEv2 two engines in one process', () => {
  it('establishes IKE + first Child SA with PSK and installs matching kernel SAs', async () => {
    const { m, a, b } = pair();
    await a.manager.initiate('b');
    await m.settle();
    const [sa] = a.manager.established('b');
    const [sb] = b.manager.established('a');
    expect(sa?.state).toBe('established');
    expect(sb?.state).toBe('established');
    expect(sa?.spiI.equals(sb!.spiI) && sa?.spiR.equals(sb!.spiR)).toBe(true);
    const ca = [...sa!.children.values()];
    const cb = [...sb!.children.values()];
    expect(ca).toHaveLength(1);
    expect(cb).toHaveLength(1);
    expect(ca[0]!.spiIn).toBe(cb[0]!.spiOut);
    expect(ca[0]!.spiOut).toBe(cb[0]!.spiIn);
    expect(ca[0]!.keysOut.encKey.equals(cb[0]!.keysIn.encKey)).toBe(true);
    const ka = await a.kernel.listSas();
    const kb = await b.kernel.listSas();
    expect(ka.map((s) => s.spi).sort()).toEqual(kb.map((s) => s.spi).sort());
    expect(ka).toHaveLength(2);
    expect((await a.kernel.listPolicies()).length).toBeGreaterThanOrEqual(2);
    expect(a.events.some((e) => e.type === 'handshake.completed')).toBe(true);
    expect(m.sent).toHaveLength(4);
    expect(sa?.nat).toEqual({ local: false, remote: false });
    expect(sb?.nat).toEqual({ local: false, remote: false });
    expect(ca[0]!.encap).toBe(false);
    expect(cb[0]!.encap).toBe(false);
  });
});
