/**
 * INITIAL-CONTACT purge without a clear-text window: when a restarted peer
 * re-establishes with INITIAL-CONTACT, the old pairs are deleted before the new
 * Quick Mode installs its pair. With dpd_action = "restart" the relationship is
 * wanted, so its policies must stay (as traps) in between; without them the
 * kernel sends the protected traffic in clear text.
 *
 * Found in the qemu VM (test/vm/ikev1.test.ts, restart): the responder that
 * purged (start = "none", so never "wanted" before) removed its policies, and
 * a capture showed 39 datagrams of the 10.1.0.0/24 -> 10.2.0.0/24 stream leave
 * it in clear text during the ~1.3 s until the new pair was installed.
 */
import { describe, expect, it } from 'vitest';
import { flushMicrotasks } from '../../src/util/clock.js';
import { installedChildren, V1Mesh } from '../helpers/ike1-pair.js';

describe('IKEv1 INITIAL-CONTACT purge', () => {
  it('the purging responder keeps its policies until the new pair is installed (dpd_action = restart)', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    m.add('b', '10.0.0.2');
    m.pair({ dpdDelayMs: 0, dpdAction: 'restart', start: 'none' }, { mode: 'tunnel' });
    const b = m.node('b');
    await b.manager.initiate('a'); // a only ever responds
    await m.settle();
    expect(installedChildren(a, 'b')).toHaveLength(1);
    const policies = async () => (await a.kernel.listPolicies()).length;
    const before = await policies();
    expect(before).toBeGreaterThan(0);
    await m.advance(5000);

    const b2 = await m.reboot('b');
    b2.manager.initiate('a').catch(() => {});
    // Step the wire message by message: a's policies never disappear.
    const seen: number[] = [];
    for (let i = 0; i < 200; i++) {
      if (!m.queue.length) await flushMicrotasks(16);
      if (!m.queue.length) break;
      await m.step();
      seen.push(await policies());
    }
    await m.settle();
    expect(a.events.some((e) => e.type === 'initial_contact.purge')).toBe(true);
    expect(Math.min(...seen), `policy counts on a while b re-established: ${seen.join(' ')}`).toBe(before);
    const ca = installedChildren(a, 'b');
    const cb = installedChildren(b2, 'a');
    expect(ca).toHaveLength(1);
    expect(cb).toHaveLength(1);
    expect(ca[0]!.spiIn).toBe(cb[0]!.spiOut);
    expect(await policies()).toBe(before);
  });
});
