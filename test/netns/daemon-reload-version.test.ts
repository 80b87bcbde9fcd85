/**
 * A reload that moves a peer to the other IKE version: the engine that had the peer
 * deletes its SAs (through the peer) and forgets it, and the other engine brings the
 * relationship up. Before, Daemon.reload gave the peer to the new engine only: the old
 * engine kept its SAs and its supervision (two relationships with one host, the old one
 * re-established after every loss with the old settings).
 *
 * Two in-process daemons (sockets in two harness namespaces), memory kernels.
 */
import { describe, expect, it } from 'vitest';
import { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import { waitFor } from '../harness/netns.js';
import { pairTopology } from '../harness/topology.js';
import { useInprocLab, writeNode, writePeer } from '../helpers/inproc-daemon.js';

describe('reload: a peer moved from IKEv2 to IKEv1', () => {
  const { lab: labOf, start } = useInprocLab('reload-version');

  it('the IKEv2 SAs go, the IKEv1 relationship comes up, the IKEv2 engine forgets the peer', async () => {
    const { a, b, aAddr, bAddr } = await pairTopology(labOf());
    const logs: string[] = [];
    const dirA = labOf().subdir('a');
    const dirB = labOf().subdir('b');
    const kernelA = new MemoryKernel();
    const da = await start(writeNode(dirA, aAddr, 'b', bAddr, 'none', 2), {
      netns: a.name,
      logs,
      tag: 'a',
      kernel: kernelA,
    });
    const db = await start(writeNode(dirB, bAddr, 'a', aAddr, 'now', 2), { netns: b.name, logs, tag: 'b' });
    const context = () => logs.slice(-40).join('');
    await waitFor('the IKEv2 SA between a and b', async () => da.manager.established('b').length === 1 || undefined, {
      timeoutMs: 15_000,
      intervalMs: 50,
      context,
    });

    // Both ends move the peer to IKEv1 (b first: it initiates once reloaded).
    writePeer(dirA, 'b', bAddr, 1);
    writePeer(dirB, 'a', aAddr, 1);
    const ra = await da.reload();
    const rb = await db.reload();
    expect(ra).toMatchObject({ ok: true, changed: ['b'] });
    expect(rb).toMatchObject({ ok: true, changed: ['a'] });

    await waitFor(
      'the IKEv1 pair between a and b, and no IKEv2 SA left',
      async () =>
        da.v1.established('b').some((sa) => [...sa.children.values()].some((c) => c.state === 'installed')) &&
        da.manager.sasOf('b').length === 0 &&
        db.manager.sasOf('a').length === 0
          ? true
          : undefined,
      { timeoutMs: 20_000, intervalMs: 50, context },
    );
    expect(da.manager.peer('b')).toBeUndefined();
    expect(db.manager.peer('a')).toBeUndefined();
    // The kernel holds the IKEv1 pair only.
    const [child] = [...(da.v1.established('b')[0]?.children.values() ?? [])];
    expect((await kernelA.listSas()).map((s) => s.spi).sort()).toEqual([child?.spiIn, child?.spiOut].sort());
    // The status shows the relationship once.
    const st = await da.controlApi().status();
    expect(st.peers.filter((p) => p.name === 'b')).toHaveLength(1);
  }, 60_000);
});
