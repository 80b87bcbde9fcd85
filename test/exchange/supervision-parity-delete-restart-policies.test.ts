/**
 * A relationship this side only ever answered (the peer initiated; start = "none" here)
 * with dpd_action = "restart", whose peer deletes its SAs (a graceful stop there, or an
 * operator's terminate): this side re-initiates, and its policies must stay (as traps)
 * from the Delete until the new SAs are in. The relationship used to be marked wanted
 * only after the Delete's teardown, which had already released the policies with the
 * last pair: the protected traffic had no policy (left in clear text) until the
 * re-initiation's traps. Same gap, same fix as for a dead peer
 * (supervision-parity-v1-restart-policies, ikev2-responder-restart-policies).
 */
import { describe, expect, it } from 'vitest';
import type { KernelIpsec } from '../../src/kernel/types.js';
import type { PeerPolicy } from '../../src/sa/policy.js';
import { Mesh } from '../helpers/ike-pair.js';
import { V1Mesh } from '../helpers/ike1-pair.js';

interface Engine {
  initiate(name: string): Promise<unknown>;
  terminate(name: string): Promise<number>;
  established(name: string): readonly unknown[];
  peer(name: string): { wantUp: boolean } | undefined;
}

/** Records the kernel's policy count after every policy change. */
function watchPolicies(kernel: KernelIpsec): number[] {
  const counts: number[] = [];
  const k = kernel as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  for (const op of ['addPolicy', 'updatePolicy', 'deletePolicy']) {
    const orig = (k[op] as (...a: unknown[]) => Promise<unknown>).bind(kernel);
    k[op] = async (...args: unknown[]) => {
      const r = await orig(...args);
      counts.push((await kernel.listPolicies()).length);
      return r;
    };
  }
  return counts;
}

describe.each([1, 2] as const)('IKEv%i responder-only relationship, dpd_action = restart, peer deletes', (version) => {
  it('keeps its policies from the Delete until the re-initiated SAs are in', async () => {
    const m = version === 1 ? new V1Mesh(17) : new Mesh(17);
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    const over: Partial<PeerPolicy> = { start: 'none', dpdAction: 'restart', restartBackoffMaxMs: 1000 };
    if (m instanceof V1Mesh) m.pair(over);
    else m.fullMesh(over);
    const ea = a.manager as unknown as Engine;
    const eb = b.manager as unknown as Engine;
    await eb.initiate('a'); // a only answers
    await m.settle();
    await m.advance(1000);
    expect(ea.established('b')).toHaveLength(1);
    expect(ea.peer('b')?.wantUp).toBe(false);
    const full = (await a.kernel.listPolicies()).length;
    expect(full).toBeGreaterThanOrEqual(2);
    const counts = watchPolicies(a.kernel);
    await eb.terminate('a'); // b sends its Deletes; b is not wanted there any more
    await m.settle();
    await m.advance(10_000, 25);
    // a re-initiated (dpd_action = restart) and is up again.
    expect(ea.established('b')).toHaveLength(1);
    expect(ea.peer('b')?.wantUp).toBe(true);
    expect(counts.length).toBeGreaterThan(0); // the teardown and the new SAs touched the policies
    expect(Math.min(...counts)).toBe(full);
  });
});
