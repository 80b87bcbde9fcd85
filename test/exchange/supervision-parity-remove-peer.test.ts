/**
 * A peer removed by a configuration reload (Daemon.reload calls removePeer on both
 * engines) leaves nothing in the kernel: its SAs are deleted through the peer and its
 * trap policies go too. A `start = trap` peer's policies left behind would hold the
 * protected traffic for ever (an ACQUIRE for a reqid no peer owns starts nothing).
 * IKEv2 always untrapped; IKEv1 left them (fixed).
 */
import { describe, expect, it } from 'vitest';
import type { PolicySpec } from '../../src/kernel/types.js';
import type { PeerPolicy } from '../../src/sa/policy.js';
import { Mesh } from '../helpers/ike-pair.js';
import { V1Mesh } from '../helpers/ike1-pair.js';

interface Engine {
  start(): Promise<void>;
  removePeer(name: string): Promise<void>;
  onAcquire(reqid: number): Promise<void>;
  established(name: string): readonly unknown[];
  peer(name: string): unknown;
}

function nodes(version: 1 | 2, over: Partial<PeerPolicy>) {
  const m = version === 1 ? new V1Mesh(5) : new Mesh(5);
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  if (m instanceof V1Mesh) m.pair(over);
  else m.fullMesh(over);
  return {
    m,
    a: { ...a, engine: a.manager as unknown as Engine },
    b: { ...b, engine: b.manager as unknown as Engine },
  };
}

/** The trap (out) policy's reqid, as an ACQUIRE would carry it. */
function trapReqid(policies: PolicySpec[]): number {
  const out = policies.find((p) => p.dir === 'out' && p.templates.length > 0);
  const reqid = out?.templates[0]?.reqid;
  if (reqid === undefined) throw new Error('no out policy with a template');
  return reqid;
}

describe.each([1, 2] as const)('IKEv%i removePeer of a start = trap peer', (version) => {
  it('removes its trap policies when it never came up', async () => {
    const { a } = nodes(version, { start: 'trap', dpdAction: 'clear' });
    await a.engine.start();
    expect((await a.kernel.listPolicies()).length).toBeGreaterThanOrEqual(2);
    await a.engine.removePeer('b');
    expect(a.engine.peer('b')).toBeUndefined();
    expect(await a.kernel.listPolicies()).toEqual([]);
  });

  it('removes SAs and policies of a peer that came up on traffic (dpd_action = trap)', async () => {
    const { m, a, b } = nodes(version, { start: 'trap', dpdAction: 'trap' });
    await a.engine.start();
    await b.engine.start();
    await a.engine.onAcquire(trapReqid(await a.kernel.listPolicies()));
    await m.settle();
    await m.advance(3000);
    expect(a.engine.established('b')).toHaveLength(1);
    expect((await a.kernel.listSas()).length).toBeGreaterThanOrEqual(2);
    await a.engine.removePeer('b');
    await m.settle();
    await m.advance(3000);
    expect(await a.kernel.listSas()).toEqual([]);
    expect(await a.kernel.listPolicies()).toEqual([]);
    // The peer was told: its SAs went, its own traps (it still has `a` configured) stay.
    expect(b.engine.established('a')).toEqual([]);
    expect(await b.kernel.listSas()).toEqual([]);
  });
});
