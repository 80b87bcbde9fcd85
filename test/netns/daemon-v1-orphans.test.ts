/**
 * Kernel SAs a crashed coatid left behind (orphans) with an IKEv1 peer go once
 * the relationship is re-established, as they do for IKEv2 peers.
 *
 * Found in the qemu VM (test/vm/ikev1.test.ts, restart): after a SIGKILL and a
 * restart of one IKEv1 daemon, its kernel kept the dead process's pair next to
 * the new one: the orphan list is taken at start for every owned SA, but only
 * an IKEv2 Child SA install reaped the orphans of its peer, so IKEv1 orphans
 * stayed until the 120 s catch-all.
 *
 * Two in-process daemons (sockets in two harness namespaces), each with its own
 * memory kernel; node b's kernel holds a pair with a's address before b starts,
 * as a SIGKILLed predecessor would have left it.
 */
import { describe, expect, it } from 'vitest';
import { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import { waitFor } from '../harness/netns.js';
import { pairTopology } from '../harness/topology.js';
import { useInprocLab, writeNode } from '../helpers/inproc-daemon.js';

describe('IKEv1 peer re-established after a crash: the predecessor kernel SAs go', () => {
  const { lab: labOf, start } = useInprocLab('v1-orphans');

  it('the orphan pair with the peer is deleted after the new pair is installed, other orphans stay', async () => {
    const { a, b, aAddr, bAddr } = await pairTopology(labOf());
    const kernelA = new MemoryKernel();
    const kernelB = new MemoryKernel();
    const reqid = kernelB.ownership.reqidMin + 7;
    const algorithms = {
      crypt: { name: 'cbc(aes)', key: Buffer.alloc(16, 1) },
      auth: { name: 'hmac(sha256)', key: Buffer.alloc(32, 2), truncBits: 128 },
    };
    const base = { proto: 'esp', mode: 'transport', reqid, algorithms } as const;
    // What a SIGKILLed coatid on b left: a pair with a, and an SA with a host that is no peer.
    await kernelB.addSa({ ...base, src: aAddr, dst: bAddr, spi: 0xc0ffee01 });
    await kernelB.addSa({ ...base, src: bAddr, dst: aAddr, spi: 0xc0ffee02 });
    await kernelB.addSa({ ...base, src: bAddr, dst: '198.51.100.99', spi: 0xc0ffee03 });

    const logs: string[] = [];
    await start(writeNode(labOf().subdir('a'), aAddr, 'b', bAddr, 'none'), {
      netns: a.name,
      logs,
      tag: 'a',
      kernel: kernelA,
    });
    const db = await start(writeNode(labOf().subdir('b'), bAddr, 'a', aAddr, 'now'), {
      netns: b.name,
      logs,
      tag: 'b',
      kernel: kernelB,
    });

    const spis = async () => (await kernelB.listSas()).map((s) => s.spi.toString(16)).sort();
    await waitFor(
      'the IKEv1 pair between a and b',
      async () => db.v1.established('a').some((sa) => [...sa.children.values()].some((c) => c.state === 'installed')),
      { timeoutMs: 15_000, intervalMs: 50, context: () => logs.slice(-30).join('') },
    );
    // The IKEv2 manager's duplicate grace (2 s) after the install, then the orphans with a are gone.
    let last: string[] = [];
    await waitFor(
      'the orphan pair with a to be deleted',
      async () => {
        last = await spis();
        return !last.some((s) => s === 'c0ffee01' || s === 'c0ffee02');
      },
      { timeoutMs: 10_000, intervalMs: 100, context: () => `kernel b: ${last.join(' ')}\n${logs.slice(-30).join('')}` },
    );
    const left = await kernelB.listSas();
    // The new pair and the orphan that belongs to no peer (it waits for the 120 s catch-all).
    expect(left.map((s) => s.spi.toString(16))).toContain('c0ffee03');
    expect(left.filter((s) => s.dst === aAddr || s.src === aAddr)).toHaveLength(2);
    const [child] = [...(db.v1.established('a')[0]?.children.values() ?? [])];
    expect(
      left
        .filter((s) => s.spi !== 0xc0ffee03)
        .map((s) => s.spi)
        .sort(),
    ).toEqual([child?.spiIn, child?.spiOut].sort());
  }, 40_000);
});
