/**
 * A reload that changes an IKEv1 peer on both ends (here its ESP proposals): the relationship
 * moves to a new ISAKMP SA and a new pair with the new settings, made before the old ones
 * go, so the kernels are never without a pair. Before, coatid deleted the old SAs first and
 * negotiated anew (a gap on every changed relationship, and a change of the mesh defaults
 * changes all of them).
 *
 * Two in-process daemons (sockets in two harness namespaces), memory kernels sampled every
 * 2 ms while the reload runs.
 */
import { describe, expect, it } from 'vitest';
import { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import { waitFor } from '../harness/netns.js';
import { pairTopology } from '../harness/topology.js';
import { useInprocLab, writeNode, writePeer } from '../helpers/inproc-daemon.js';

describe('reload: a changed IKEv1 peer', () => {
  const { lab: labOf, start } = useInprocLab('reload-v1');

  it('gets a new ISAKMP SA and pair before the old ones go: both kernels always hold a pair', async () => {
    const { a, b, aAddr, bAddr } = await pairTopology(labOf());
    const logs: string[] = [];
    const kernelA = new MemoryKernel();
    const kernelB = new MemoryKernel();
    const dirA = labOf().subdir('a');
    const dirB = labOf().subdir('b');
    const da = await start(writeNode(dirA, aAddr, 'b', bAddr, 'now', 1), {
      netns: a.name,
      logs,
      tag: 'a',
      kernel: kernelA,
    });
    const db = await start(writeNode(dirB, bAddr, 'a', aAddr, 'none', 1), {
      netns: b.name,
      logs,
      tag: 'b',
      kernel: kernelB,
    });
    const context = () => logs.slice(-40).join('');
    const pairOf = (d: typeof da, peer: string) =>
      d.v1
        .established(peer)
        .flatMap((sa) => [...sa.children.values()])
        .filter((c) => c.state === 'installed');
    const bothKernels = async () =>
      (await kernelA.listSas()).length === 2 && (await kernelB.listSas()).length === 2 ? true : undefined;
    await waitFor(
      'the IKEv1 pair between a and b, in both kernels',
      async () => (pairOf(da, 'b').length === 1 && pairOf(db, 'a').length === 1 ? bothKernels() : undefined),
      {
        timeoutMs: 15_000,
        intervalMs: 20,
        context,
      },
    );
    const [oldSa] = da.v1.established('b');
    const [oldPair] = pairOf(da, 'b');
    expect(oldPair?.suite.encr.id).toBe(12);

    // Sample both kernels while the reload runs: each must always hold an inbound and an outbound SA.
    let samples = 0;
    let gaps = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const k of [kernelA, kernelB]) {
          // Keyed SAs only (a larval SA, reserved by allocSpi, has an empty cipher name).
          const sas = (await k.listSas()).filter(
            (s) => ('crypt' in s.algorithms && s.algorithms.crypt.name !== '') || 'aead' in s.algorithms,
          );
          if (!sas.some((s) => s.dst === aAddr) || !sas.some((s) => s.dst === bAddr)) gaps++;
        }
        samples++;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();

    const gcm = 'esp_proposals = "aes256gcm16-modp2048"\n';
    writePeer(dirA, 'b', bAddr, 1, gcm);
    writePeer(dirB, 'a', aAddr, 1, gcm);
    expect(await db.reload()).toMatchObject({ ok: true, changed: ['a'] });
    expect(await da.reload()).toMatchObject({ ok: true, changed: ['b'] });
    await waitFor(
      'one ISAKMP SA on each side, with an AES-GCM pair, the old SA gone',
      async () =>
        oldSa?.state === 'destroyed' &&
        da.v1.sasOf('b').length === 1 &&
        db.v1.sasOf('a').length === 1 &&
        pairOf(da, 'b').length === 1 &&
        pairOf(da, 'b')[0]?.suite.encr.id === 20 &&
        pairOf(db, 'a').length === 1
          ? true
          : undefined,
      { timeoutMs: 20_000, intervalMs: 20, context },
    );
    sampling = false;
    await sampler;
    expect(samples).toBeGreaterThan(5);
    expect(gaps).toBe(0);
    // The kernels hold the new pair only.
    const [pa] = pairOf(da, 'b');
    const [pb] = pairOf(db, 'a');
    expect([pa?.spiIn, pa?.spiOut]).toEqual([pb?.spiOut, pb?.spiIn]);
    expect((await kernelA.listSas()).map((s) => s.spi).sort()).toEqual([pa?.spiIn, pa?.spiOut].sort());
    expect((await kernelB.listSas()).map((s) => s.spi).sort()).toEqual([pb?.spiIn, pb?.spiOut].sort());
  }, 60_000);
});
