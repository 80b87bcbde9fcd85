import { describe, expect, it } from 'vitest';
import { PolicyBook } from '../../src/ikev2/policy-book.js';
import { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import type { PolicySpec } from '../../src/kernel/types.js';

/** Reqid n of coati's owned range (the kernel backend refuses others). */
const R = (n: number) => 0xc0a70000 + n;

/** A tunnel-mode outbound policy for a host pair, its template tagged with the reqid. */
function spec(dst: string, reqid: number): PolicySpec {
  return {
    selector: { src: '192.0.2.1/32', dst },
    dir: 'out',
    action: 'allow',
    priority: 1,
    templates: [{ src: '192.0.2.1', dst: '192.0.2.2', proto: 'esp', mode: 'tunnel', reqid }],
  };
}

async function kernelReqids(kernel: MemoryKernel): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const p of await kernel.listPolicies()) out[p.selector.dst] = p.templates.map((t) => t.reqid);
  return out;
}

describe('PolicyBook', () => {
  it('a selector another reqid also holds stays in the kernel, with the remaining owner’s template', async () => {
    const kernel = new MemoryKernel({ now: () => 0 });
    const book = new PolicyBook(kernel);
    // A child renamed by a reload: reqid 2 takes over the selector reqid 1 installed.
    await book.hold(R(1), 'old', [spec('10.0.0.1/32', R(1)), spec('10.0.0.9/32', R(1))]);
    await book.hold(R(2), 'new', [spec('10.0.0.1/32', R(2))]);
    expect(await kernelReqids(kernel)).toEqual({ '10.0.0.1/32': [R(2)], '10.0.0.9/32': [R(1)] });
    // The old reqid leaving must not delete the shared policy; its own selector goes.
    await book.hold(R(1), 'old', [spec('10.0.0.1/32', R(1)), spec('10.0.0.9/32', R(1))]); // re-templates the shared policy to 1
    expect(await kernelReqids(kernel)).toEqual({ '10.0.0.1/32': [R(1)], '10.0.0.9/32': [R(1)] });
    await book.release(R(1), 'old');
    expect(await kernelReqids(kernel)).toEqual({ '10.0.0.1/32': [R(2)] });
    // The last owner leaving removes it.
    await book.release(R(2), 'new');
    expect(await kernel.listPolicies()).toEqual([]);
  });

  it('of several remaining owners, the oldest entry’s policy goes back in; a removed entry no longer counts', async () => {
    const kernel = new MemoryKernel({ now: () => 0 });
    const book = new PolicyBook(kernel);
    await book.hold(R(7), 'a', [spec('10.0.0.1/32', R(7))]);
    await book.hold(R(5), 'b', [spec('10.0.0.1/32', R(5))]);
    await book.hold(R(6), 'c', [spec('10.0.0.1/32', R(6))]);
    await book.release(R(6), 'c');
    expect(await kernelReqids(kernel)).toEqual({ '10.0.0.1/32': [R(7)] });
    await book.release(R(7), 'a');
    expect(await kernelReqids(kernel)).toEqual({ '10.0.0.1/32': [R(5)] });
    // 7 is gone from the book: once 5 goes too, nobody holds the selector.
    await book.release(R(5), 'b');
    expect(await kernel.listPolicies()).toEqual([]);
    // Held again under 7, it is 7's alone.
    await book.hold(R(7), 'a2', [spec('10.0.0.1/32', R(7))]);
    expect(await kernelReqids(kernel)).toEqual({ '10.0.0.1/32': [R(7)] });
    await book.release(R(7), 'a2');
    expect(await kernel.listPolicies()).toEqual([]);
  });

  it('an exact trap prunes a selector it no longer has, unless another reqid holds it', async () => {
    const kernel = new MemoryKernel({ now: () => 0 });
    const book = new PolicyBook(kernel);
    await book.trap(R(1), [spec('10.0.0.1/32', R(1)), spec('10.0.0.2/32', R(1))]);
    await book.hold(R(2), 'x', [spec('10.0.0.2/32', R(2))]);
    await book.trap(R(1), [spec('10.0.0.3/32', R(1))], { exact: true });
    expect(await kernelReqids(kernel)).toEqual({ '10.0.0.2/32': [R(2)], '10.0.0.3/32': [R(1)] });
    await book.release(R(2), 'x');
    expect(await kernelReqids(kernel)).toEqual({ '10.0.0.3/32': [R(1)] });
  });

  it('policies adopted from a checkpoint count as owned', async () => {
    const kernel = new MemoryKernel({ now: () => 0 });
    const book = new PolicyBook(kernel);
    await book.hold(R(1), 'old', [spec('10.0.0.1/32', R(1))]);
    const banded = book.snapshot()[0]!.policies;
    const restarted = new PolicyBook(kernel);
    restarted.adopt(R(1), banded, { holder: 'old' });
    await restarted.hold(R(2), 'new', [spec('10.0.0.1/32', R(2))]);
    await restarted.release(R(2), 'new');
    expect(await kernelReqids(kernel)).toEqual({ '10.0.0.1/32': [R(1)] });
    await restarted.release(R(1), 'old');
    expect(await kernel.listPolicies()).toEqual([]);
  });
});
