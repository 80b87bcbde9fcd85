/**
 * A reload that changed a peer leaves its trap policies as the new configuration says
 * (Daemon.reload calls setPeer then syncTraps on the peer's engine), IKEv1 as IKEv2:
 * - start = trap with a changed traffic selector: the new selectors trapped, the old
 *   ones gone (they held traffic no negotiation could carry);
 * - start = trap -> none: the traps go (they held the traffic for ever: the ACQUIRE
 *   starts nothing for a peer not wanted), unless dpd_action = trap keeps them;
 * - a child no longer configured: its traps go;
 * - IKEv1: a changed trap peer is terminated by the reload and trapped again (before,
 *   IKEv1 left its old traps and never installed new ones).
 */
import { describe, expect, it } from 'vitest';
import type { PolicySpec } from '../../src/kernel/types.js';
import type { PeerPolicy } from '../../src/sa/policy.js';
import { parseTrafficSelector } from '../../src/sa/traffic-selector.js';
import { Mesh, peerPolicy } from '../helpers/ike-pair.js';
import { V1Mesh, v1Policy } from '../helpers/ike1-pair.js';
import type { LinkNode } from '../helpers/pair-base.js';

interface Engine {
  setPeer(p: PeerPolicy): void;
  start(): Promise<void>;
  syncTraps(name: string): Promise<void>;
  terminate(name: string): Promise<number>;
  onAcquire(reqid: number): Promise<void>;
  established(name: string): readonly unknown[];
}
const engine = (n: LinkNode) => n.manager as unknown as Engine;

function nodes(version: 1 | 2) {
  const m = version === 1 ? new V1Mesh(23) : new Mesh(23);
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  const policy = (from: LinkNode, to: LinkNode, over: Partial<PeerPolicy>, child: Record<string, unknown> = {}) =>
    version === 1 ? v1Policy(from, to, over, child) : peerPolicy(from, to, over, child);
  return { m, a, b, policy };
}

/** The remote side of every out policy's selector, as text. */
const outRemotes = (ps: PolicySpec[]) =>
  ps
    .filter((p) => p.dir === 'out')
    .map((p) => p.selector.dst)
    .sort();

/** The change a reload makes: the new policy set, then the traps synchronised. */
async function reload(n: LinkNode, p: PeerPolicy): Promise<void> {
  engine(n).setPeer(p);
  await engine(n).syncTraps(p.name);
}

describe.each([1, 2] as const)('IKEv%i reload of a trap peer', (version) => {
  it('a changed traffic selector: the new one trapped, the old one gone', async () => {
    const { a, b, policy } = nodes(version);
    const tunnel = { mode: 'tunnel', localTs: [parseTrafficSelector('10.1.0.0/24')] };
    engine(a).setPeer(
      policy(
        a,
        b,
        { start: 'trap', dpdAction: 'clear' },
        { ...tunnel, remoteTs: [parseTrafficSelector('10.2.0.0/24')] },
      ),
    );
    await engine(a).start();
    expect(outRemotes(await a.kernel.listPolicies())).toEqual(['10.2.0.0/24']);
    await reload(
      a,
      policy(
        a,
        b,
        { start: 'trap', dpdAction: 'clear' },
        { ...tunnel, remoteTs: [parseTrafficSelector('10.3.0.0/24')] },
      ),
    );
    expect(outRemotes(await a.kernel.listPolicies())).toEqual(['10.3.0.0/24']);
  });

  it('start = trap -> none: the traps go; with dpd_action = trap they stay', async () => {
    const { a, b, policy } = nodes(version);
    engine(a).setPeer(policy(a, b, { start: 'trap', dpdAction: 'clear' }));
    await engine(a).start();
    const trapped = (await a.kernel.listPolicies()).length;
    expect(trapped).toBeGreaterThanOrEqual(2);
    await reload(a, policy(a, b, { start: 'none', dpdAction: 'trap' }));
    expect(await a.kernel.listPolicies()).toHaveLength(trapped);
    await reload(a, policy(a, b, { start: 'none', dpdAction: 'clear' }));
    expect(await a.kernel.listPolicies()).toEqual([]);
  });

  it('a child no longer configured loses its traps; the renamed one is trapped', async () => {
    const { a, b, policy } = nodes(version);
    engine(a).setPeer(policy(a, b, { start: 'trap', dpdAction: 'clear' }));
    await engine(a).start();
    const before = await a.kernel.listPolicies();
    const reqidOf = (ps: PolicySpec[]) => new Set(ps.flatMap((p) => p.templates.map((t) => t.reqid)));
    await reload(a, policy(a, b, { start: 'trap', dpdAction: 'clear' }, { name: 'renamed' }));
    const after = await a.kernel.listPolicies();
    expect(after).toHaveLength(before.length);
    const [oldReqid] = [...reqidOf(before)];
    expect(reqidOf(after).has(oldReqid as number)).toBe(false);
  });

  it('a changed trap peer that is up: the reload renegotiates it; afterwards only the new selectors are trapped', async () => {
    const { m, a, b, policy } = nodes(version);
    const over: Partial<PeerPolicy> = { start: 'trap', dpdAction: 'clear' };
    engine(a).setPeer(policy(a, b, over));
    engine(b).setPeer(policy(b, a, { start: 'none', dpdAction: 'clear' }));
    await engine(a).start();
    const reqid = (await a.kernel.listPolicies()).find((p) => p.dir === 'out')?.templates[0]?.reqid as number;
    await engine(a).onAcquire(reqid);
    await m.settle();
    await m.advance(3000);
    expect(engine(a).established('b')).toHaveLength(1);
    expect(outRemotes(await a.kernel.listPolicies())).toEqual(['10.0.0.2/32']);
    // The reload on both ends: the child becomes a tunnel between two subnets. The daemon
    // terminates a changed IKEv1 peer and replaces a changed IKEv2 peer's SAs.
    const net = (l: string, r: string) => ({
      mode: 'tunnel',
      localTs: [parseTrafficSelector(l)],
      remoteTs: [parseTrafficSelector(r)],
    });
    engine(b).setPeer(policy(b, a, { start: 'none', dpdAction: 'clear' }, net('10.9.0.0/24', '10.1.0.0/24')));
    engine(a).setPeer(policy(a, b, over, net('10.1.0.0/24', '10.9.0.0/24')));
    if (version === 1) await engine(a).terminate('b');
    else void (a.manager as unknown as { replace(n: string): Promise<void> }).replace('b');
    await engine(a).syncTraps('b');
    await m.settle();
    await m.advance(20_000, 25);
    // IKEv1 waits for traffic; IKEv2 made the new SA before the old one went.
    expect(engine(a).established('b')).toHaveLength(version === 1 ? 0 : 1);
    expect(outRemotes(await a.kernel.listPolicies())).toEqual(['10.9.0.0/24']);
  });
});
