import { describe, expect, it } from 'vitest';
import { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import type { KernelEvent, SaSpec } from '../../src/kernel/types.js';
import { DEFAULT_OWNERSHIP } from '../../src/kernel/xfrm/ownership.js';

const REQID = DEFAULT_OWNERSHIP.reqidMin + 1;
const PRIO = DEFAULT_OWNERSHIP.priorityMin;

function setup(opts: ConstructorParameters<typeof MemoryKernel>[0] = {}) {
  let t = 1_000_000;
  const k = new MemoryKernel({ now: () => t, ...opts });
  const events: KernelEvent[] = [];
  k.onEvent((e) => events.push(e));
  const advance = (ms: number): void => {
    t += ms;
    k.tick();
  };
  return { k, events, advance };
}

const sa = (over: Partial<SaSpec> = {}): SaSpec => ({
  src: '192.0.2.1',
  dst: '192.0.2.2',
  spi: 0xc0000001,
  proto: 'esp',
  mode: 'tunnel',
  reqid: REQID,
  algorithms: { aead: { name: 'rfc4106(gcm(aes))', key: Buffer.alloc(20, 7), icvBits: 128 } },
  ...over,
});

describe('MemoryKernel', () => {
  it('allocates SPIs unique per (dst, proto) and leaves a larval SA that updateSa completes', async () => {
    const { k, advance } = setup({ random: () => 0 }); // always proposes `min` first
    const a = await k.allocSpi({
      src: '192.0.2.2',
      dst: '192.0.2.1',
      proto: 'esp',
      reqid: REQID,
      min: 0x1000,
      max: 0x1002,
    });
    const b = await k.allocSpi({
      src: '192.0.2.2',
      dst: '192.0.2.1',
      proto: 'esp',
      reqid: REQID,
      min: 0x1000,
      max: 0x1002,
    });
    const c = await k.allocSpi({
      src: '192.0.2.2',
      dst: '192.0.2.9',
      proto: 'esp',
      reqid: REQID,
      min: 0x1000,
      max: 0x1002,
    });
    expect(a).toBe(0x1000);
    expect(b).toBe(0x1001);
    expect(c).toBe(0x1000); // other destination: same SPI is fine
    const spec = sa({ src: '192.0.2.2', dst: '192.0.2.1', spi: a });
    await expect(k.addSa(spec)).rejects.toMatchObject({ code: 'KERNEL_EXISTS' });
    await k.updateSa(spec);
    expect((await k.getSa({ dst: '192.0.2.1', spi: a, proto: 'esp' }))?.algorithms).toEqual(spec.algorithms);
    // The uncompleted larval SA (b) disappears after 30 s; the completed one stays.
    advance(31_000);
    expect(await k.getSa({ dst: '192.0.2.1', spi: b, proto: 'esp' })).toBeUndefined();
    expect(await k.getSa({ dst: '192.0.2.1', spi: a, proto: 'esp' })).toBeDefined();
  });

  it('has the typed EEXIST/ENOENT/ownership semantics of the xfrm backend', async () => {
    const { k } = setup();
    await k.addSa(sa());
    await expect(k.addSa(sa())).rejects.toMatchObject({ code: 'KERNEL_EXISTS' });
    await expect(k.updateSa(sa({ spi: 5 }))).rejects.toMatchObject({ code: 'KERNEL_NOT_FOUND' });
    await expect(k.deleteSa({ dst: '192.0.2.2', spi: 5, proto: 'esp' })).rejects.toMatchObject({
      code: 'KERNEL_NOT_FOUND',
    });
    await expect(k.addSa(sa({ spi: 6, reqid: 1 }))).rejects.toMatchObject({ code: 'KERNEL_NOT_OWNED' });
    const pol = {
      selector: { src: '10.0.0.0/24', dst: '10.1.0.0/24' },
      dir: 'out' as const,
      action: 'allow' as const,
      priority: PRIO,
      templates: [],
    };
    await k.addPolicy(pol);
    await expect(k.addPolicy({ ...pol, selector: { src: '10.0.0.0/24', dst: '10.1.0.00/24' } })).rejects.toThrow();
    await expect(k.addPolicy(pol)).rejects.toMatchObject({ code: 'KERNEL_EXISTS' });
    await expect(k.addPolicy({ ...pol, priority: 1 })).rejects.toMatchObject({ code: 'KERNEL_NOT_OWNED' });
    k.addForeignPolicy({ ...pol, selector: { src: '10.5.0.0/16', dst: '10.6.0.0/16' }, priority: 0 });
    expect(await k.listPolicies()).toHaveLength(1);
    await expect(
      k.deletePolicy({ selector: { src: '10.5.0.0/16', dst: '10.6.0.0/16' }, dir: 'out' }),
    ).rejects.toMatchObject({
      code: 'KERNEL_NOT_OWNED',
    });
    await k.deleteSa({ dst: '192.0.2.2', spi: 0xc0000001, proto: 'esp' });
    await k.deletePolicy({ selector: pol.selector, dir: 'out' });
    expect(await k.listSas()).toEqual([]);
    expect(await k.listPolicies()).toEqual([]);
    k.injectError('addSa', 'KERNEL_NO_ALGORITHM');
    await expect(k.addSa(sa())).rejects.toMatchObject({ code: 'KERNEL_NO_ALGORITHM' });
    await k.addSa(sa());
  });

  it('counts traffic and fires soft then hard byte expiry', async () => {
    const { k, events } = setup();
    await k.addSa(sa({ lifetime: { softBytes: 1000n, hardBytes: 2000n } }));
    const id = { dst: '192.0.2.2', spi: 0xc0000001, proto: 'esp' as const };
    k.simulateTraffic(id, 600, 2);
    expect((await k.getSa(id))?.counters).toMatchObject({ bytes: 600n, packets: 2n });
    expect(events).toEqual([]);
    k.simulateTraffic(id, 600);
    k.simulateTraffic(id, 100);
    expect(events).toEqual([{ type: 'expire', sa: id, hard: false, src: '192.0.2.1', reqid: REQID }]);
    k.simulateTraffic(id, 1000);
    expect(events[1]).toMatchObject({ type: 'expire', hard: true });
    expect(await k.getSa(id)).toBeUndefined();
  });

  it('enforces time lifetimes against the injected clock', async () => {
    const { k, events, advance } = setup();
    await k.addSa(sa({ lifetime: { softAddSeconds: 10, hardAddSeconds: 20 } }));
    advance(9_999);
    expect(events).toHaveLength(0);
    advance(1);
    advance(5_000);
    expect(events.map((e) => e.type === 'expire' && e.hard)).toEqual([false]);
    advance(5_000);
    expect(events.map((e) => e.type === 'expire' && e.hard)).toEqual([false, true]);
    expect(await k.listSas()).toEqual([]);
  });

  it('raises ACQUIRE for traffic matching an out policy without SA', async () => {
    const { k, events } = setup();
    await k.addPolicy({
      selector: { src: '10.0.0.0/24', dst: '10.1.0.0/24' },
      dir: 'out',
      action: 'allow',
      priority: PRIO + 2,
      templates: [{ src: '192.0.2.1', dst: '192.0.2.2', proto: 'esp', mode: 'tunnel', reqid: REQID }],
    });
    expect(k.simulateAcquire({ src: '10.9.0.1', dst: '10.1.0.5' })).toBe(false);
    expect(k.simulateAcquire({ src: '10.0.0.1', dst: '10.1.0.5', proto: 17, dstPort: 53 })).toBe(true);
    expect(events[0]).toMatchObject({
      type: 'acquire',
      selector: { src: '10.0.0.1/32', dst: '10.1.0.5/32', proto: 17, dstPort: 53 },
      template: { src: '192.0.2.1', dst: '192.0.2.2', proto: 'esp', reqid: REQID },
    });
    await k.addSa(sa());
    expect(k.simulateAcquire({ src: '10.0.0.1', dst: '10.1.0.5' })).toBe(false);
  });

  it('rejects everything after close', async () => {
    const { k } = setup();
    await k.close();
    await expect(k.listSas()).rejects.toMatchObject({ code: 'KERNEL_CLOSED' });
  });
});
