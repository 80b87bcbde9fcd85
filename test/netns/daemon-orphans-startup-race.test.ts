/**
 * The orphan list (kernel SAs a crashed predecessor left) must be taken before
 * the daemon can negotiate: only then is every SA on it the predecessor's.
 *
 * Found in the qemu VM (test/vm/daemon.test.ts, SIGKILL + restart): coatid
 * opened its IKE sockets, then listed the kernel's SAs. The peer, retransmitting
 * towards the restarted host, completed a handshake in between. The listing
 * caught the new Child SA half installed (inbound SA in the kernel, the outbound
 * not yet, the child not yet on its IKE SA), called the inbound SA an orphan,
 * and deleted it 2 s after the new pair was up: traffic from the peer stopped.
 *
 * Two in-process daemons (memory kernels, sockets in two harness namespaces).
 * a initiates and retransmits while b is down. b's kernel holds a pair with a,
 * as a SIGKILLed predecessor left it, and its `listSas` answers only once the
 * first inbound SA is installed (or after 3 s): the listing lands in the middle
 * of an install whenever an install can happen before it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import type { SaInfo, SaSpec } from '../../src/kernel/types.js';
import { waitFor } from '../harness/netns.js';
import { pairTopology } from '../harness/topology.js';
import { useInprocLab, writeNode, writePeer } from '../helpers/inproc-daemon.js';

/** A memory kernel whose first SA listing waits for the first inbound SA install (at most 3 s). */
class ListsDuringInstall extends MemoryKernel {
  private installed: () => void = () => {};
  private readonly firstInstall = new Promise<void>((r) => {
    this.installed = r;
  });
  listedBeforeInstall: boolean | undefined;

  override async updateSa(spec: SaSpec): Promise<void> {
    await super.updateSa(spec);
    this.installed();
  }

  override async listSas(): Promise<SaInfo[]> {
    if (this.listedBeforeInstall === undefined) {
      const first = await Promise.race([this.firstInstall.then(() => false), sleep(3000).then(() => true)]);
      this.listedBeforeInstall = first;
    }
    return super.listSas();
  }
}

describe('restart with a peer that negotiates at once: the new Child SA is not taken for an orphan', () => {
  const { lab: labOf, start } = useInprocLab('orphan-race');

  it('the predecessor pair goes, the new pair stays (both SAs), and the listing came before any install', async () => {
    const { a, b, aAddr, bAddr } = await pairTopology(labOf());
    const kernelB = new ListsDuringInstall();
    const reqid = kernelB.ownership.reqidMin + 7;
    const base = {
      proto: 'esp',
      mode: 'transport',
      reqid,
      algorithms: { aead: { name: 'rfc4106(gcm(aes))', key: Buffer.alloc(36, 1), icvBits: 128 } },
    } as const;
    await kernelB.addSa({ ...base, src: aAddr, dst: bAddr, spi: 0xc0ffee01 });
    await kernelB.addSa({ ...base, src: bAddr, dst: aAddr, spi: 0xc0ffee02 });

    const logs: string[] = [];
    const dirA = labOf().subdir('a');
    const confA = writeNode(dirA, aAddr, 'b', bAddr, 'now', 2);
    writePeer(dirA, 'b', bAddr, 2, 'retransmit_base = "500ms"\n');
    await start(confA, { netns: a.name, logs, tag: 'a' });
    // a's first IKE_SA_INIT finds nobody; its retransmissions reach b as soon as b listens.
    await sleep(300);
    const db = await start(writeNode(labOf().subdir('b'), bAddr, 'a', aAddr, 'none', 2), {
      netns: b.name,
      logs,
      tag: 'b',
      kernel: kernelB,
    });

    const child = () =>
      [...(db.manager.established('a')[0]?.children.values() ?? [])].find((c) => c.state === 'installed');
    await waitFor('the IKEv2 pair between a and b', async () => child() !== undefined, {
      timeoutMs: 20_000,
      intervalMs: 50,
      context: () => logs.slice(-30).join(''),
    });
    // The duplicate grace (2 s) after the install, then the orphans with a are gone.
    const spis = async () => (await kernelB.listSas()).map((s) => s.spi.toString(16)).sort();
    let last: string[] = [];
    await waitFor(
      'the predecessor pair with a to be deleted',
      async () => {
        last = await spis();
        return !last.some((s) => s === 'c0ffee01' || s === 'c0ffee02');
      },
      { timeoutMs: 10_000, intervalMs: 100, context: () => `kernel b: ${last.join(' ')}\n${logs.slice(-30).join('')}` },
    );
    await sleep(2500); // past the grace of anything the orphan reaper might still have queued
    const c = child();
    expect(c).toBeDefined();
    expect((await kernelB.listSas()).map((s) => s.spi).sort()).toEqual([c?.spiIn, c?.spiOut].sort());
    expect(kernelB.listedBeforeInstall).toBe(true);
  }, 60_000);
});
