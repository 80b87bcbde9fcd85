import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KernelError } from '../../src/kernel/errors.js';
import type { KernelEvent, PolicySpec } from '../../src/kernel/types.js';
import { XfrmKernel } from '../../src/kernel/xfrm/kernel.js';
import { DEFAULT_OWNERSHIP } from '../../src/kernel/xfrm/ownership.js';
import { Netns, requireNetnsPrivileges, waitFor } from './netns-helpers.js';

const REQID = DEFAULT_OWNERSHIP.reqidMin + 7;
const PRIO = DEFAULT_OWNERSHIP.priorityMin + 100;

const spaces: Netns[] = [];
function fresh(): Netns {
  const ns = new Netns();
  spaces.push(ns);
  return ns;
}
const kernels: XfrmKernel[] = [];
async function open(ns: Netns): Promise<XfrmKernel> {
  const k = await XfrmKernel.open({ netns: ns.name, timeoutMs: 3000 });
  kernels.push(k);
  return k;
}

beforeAll(() => requireNetnsPrivileges());
afterAll(async () => {
  for (const k of kernels) await k.close();
  for (const ns of spaces) ns.delete();
});

function tunnelPolicy(v: 4 | 6, dir: 'in' | 'out' | 'fwd'): PolicySpec {
  const [l, r, a, b] =
    v === 4
      ? ['10.1.0.0/24', '10.2.0.0/24', '192.0.2.1', '192.0.2.2']
      : ['fd01::/64', 'fd02::/64', '2001:db8::1', '2001:db8::2'];
  const out = dir === 'out';
  return {
    selector: { src: out ? l : r, dst: out ? r : l },
    dir,
    action: 'allow',
    priority: PRIO,
    templates: [{ src: out ? a : b, dst: out ? b : a, proto: 'esp', mode: 'tunnel', reqid: REQID }],
  };
}

describe('XfrmKernel on the host kernel (netns)', () => {
  for (const v of [4, 6] as const) {
    it(`policies: add, dump, update, delete (IPv${v}, tunnel and transport)`, async () => {
      const ns = fresh();
      const k = await open(ns);
      const out = tunnelPolicy(v, 'out');
      const inn = tunnelPolicy(v, 'in');
      const host = v === 4 ? ['192.0.2.1/32', '192.0.2.2/32'] : ['2001:db8::1/128', '2001:db8::2/128'];
      const transport: PolicySpec = {
        selector: { src: host[0]!, dst: host[1]!, proto: 17, dstPort: 4789 },
        dir: 'out',
        action: 'allow',
        priority: PRIO + 1,
        templates: [{ src: '', dst: '', proto: 'esp', mode: 'transport', reqid: REQID + 1 }],
      };
      await Promise.all([k.addPolicy(out), k.addPolicy(inn), k.addPolicy(transport)]);
      const listed = await k.listPolicies();
      expect(listed).toHaveLength(3);
      const got = listed.find((p) => p.dir === 'out' && p.templates[0]?.mode === 'tunnel')!;
      expect(got.selector).toEqual(out.selector);
      expect(got.templates).toEqual(out.templates);
      expect(got.priority).toBe(PRIO);
      expect(got.index).toBeGreaterThan(0);
      const tr = listed.find((p) => p.templates[0]?.mode === 'transport')!;
      expect(tr.selector).toEqual(transport.selector);
      expect(tr.templates[0]).toEqual(transport.templates[0]);
      // `ip xfrm` agrees on what is installed.
      expect(ns.ip('xfrm', 'policy')).toContain(`reqid ${REQID}`);

      await expect(k.addPolicy(out)).rejects.toMatchObject({ code: 'KERNEL_EXISTS' });
      await k.updatePolicy({ ...out, priority: PRIO + 5, action: 'block', templates: [] });
      const after = (await k.listPolicies()).find((p) => p.dir === 'out' && p.selector.src === out.selector.src)!;
      expect(after).toMatchObject({ priority: PRIO + 5, action: 'block', templates: [] });

      await k.deletePolicy({ selector: out.selector, dir: 'out' });
      await k.deletePolicy({ selector: inn.selector, dir: 'in' });
      await k.deletePolicy({ selector: transport.selector, dir: 'out' });
      expect(await k.listPolicies()).toEqual([]);
      await expect(k.deletePolicy({ selector: out.selector, dir: 'out' })).rejects.toMatchObject({
        code: 'KERNEL_NOT_FOUND',
      });
    });
  }

  it('ALLOCSPI returns distinct SPIs in the requested range', async () => {
    const k = await open(fresh());
    const spis = await Promise.all(
      Array.from({ length: 50 }, () =>
        k.allocSpi({
          src: '192.0.2.2',
          dst: '192.0.2.1',
          proto: 'esp',
          reqid: REQID,
          min: 0xc0000100,
          max: 0xc00001ff,
        }),
      ),
    );
    expect(new Set(spis).size).toBe(50);
    for (const s of spis) expect(s >= 0xc0000100 && s <= 0xc00001ff).toBe(true);
    const sa = await k.getSa({ dst: '192.0.2.1', spi: spis[0]!, proto: 'esp' });
    expect(sa).toMatchObject({ src: '192.0.2.2', dst: '192.0.2.1', reqid: REQID, spi: spis[0] });
    expect((await k.listSas()).length).toBe(50);
    await expect(k.allocSpi({ src: '192.0.2.2', dst: '192.0.2.1', proto: 'esp', reqid: 5 })).rejects.toMatchObject({
      code: 'KERNEL_NOT_OWNED',
    });
  });

  it('traffic hitting an out policy without SA raises an ACQUIRE event with the selector', async () => {
    const ns = fresh();
    ns.ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    ns.ip('addr', 'add', '10.55.0.1/24', 'dev', 'v0');
    ns.ip('link', 'set', 'v0', 'up');
    ns.ip('link', 'set', 'v1', 'up');
    ns.ip('route', 'add', '10.99.0.0/24', 'via', '10.55.0.2');
    const k = await open(ns);
    const events: KernelEvent[] = [];
    k.onEvent((e) => events.push(e));
    await k.addPolicy({
      selector: { src: '10.55.0.1/32', dst: '10.99.0.0/24' },
      dir: 'out',
      action: 'allow',
      priority: PRIO,
      templates: [{ src: '10.55.0.1', dst: '10.55.0.2', proto: 'esp', mode: 'tunnel', reqid: REQID }],
    });
    ns.exec(['bash', '-c', 'echo hello > /dev/udp/10.99.0.7/9999']);
    const ev = await waitFor('ACQUIRE', () => events.find((e) => e.type === 'acquire'));
    expect(ev).toMatchObject({
      type: 'acquire',
      selector: { src: '10.55.0.1/32', dst: '10.99.0.7/32', proto: 17, dstPort: 9999 },
      template: { src: '10.55.0.1', dst: '10.55.0.2', proto: 'esp', reqid: REQID },
    });
    expect(ev.type === 'acquire' && ev.policyIndex).toBeGreaterThan(0);
  });

  it('SA install on this kernel fails with KERNEL_NO_ESP naming SPI and addresses', async () => {
    const k = await open(fresh());
    const base = {
      src: '192.0.2.1',
      dst: '192.0.2.2',
      spi: 0xc1234567,
      proto: 'esp' as const,
      mode: 'tunnel' as const,
      reqid: REQID,
    };
    const err = await k
      .addSa({
        ...base,
        algorithms: {
          crypt: { name: 'cbc(aes)', key: Buffer.alloc(16, 1) },
          auth: { name: 'hmac(sha256)', key: Buffer.alloc(32, 2), truncBits: 128 },
        },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelError);
    const ke = err as KernelError;
    if (ke.code !== 'KERNEL_NO_ESP')
      throw new Error(`expected KERNEL_NO_ESP on the host kernel, got ${ke.code}: ${ke.message}`);
    expect(ke.errno).toBe(93);
    expect(ke.message).toContain('0xc1234567');
    expect(ke.message).toContain('192.0.2.1 -> 192.0.2.2');
    expect(ke.message).toMatch(/no ESP support/);
    const aead = await k
      .addSa({ ...base, algorithms: { aead: { name: 'rfc4106(gcm(aes))', key: Buffer.alloc(20), icvBits: 128 } } })
      .catch((e: unknown) => e);
    expect(aead).toMatchObject({ code: 'KERNEL_NO_ALGORITHM' });
    expect((aead as Error).message).toContain('rfc4106(gcm(aes))');
  });

  it('leaves policies it did not install alone', async () => {
    const ns = fresh();
    const k = await open(ns);
    ns.ip(
      'xfrm',
      'policy',
      'add',
      'src',
      '10.8.0.0/24',
      'dst',
      '10.9.0.0/24',
      'dir',
      'out',
      'tmpl',
      'src',
      '192.0.2.1',
      'dst',
      '192.0.2.2',
      'proto',
      'esp',
      'mode',
      'tunnel',
      'reqid',
      '42',
    );
    const mine = tunnelPolicy(4, 'out');
    await k.addPolicy(mine);
    expect((await k.listPolicies()).map((p) => p.selector)).toEqual([mine.selector]);
    await expect(
      k.deletePolicy({ selector: { src: '10.8.0.0/24', dst: '10.9.0.0/24' }, dir: 'out' }),
    ).rejects.toMatchObject({
      code: 'KERNEL_NOT_OWNED',
    });
    // cleanup of everything coati owns
    for (const p of await k.listPolicies()) await k.deletePolicy({ selector: p.selector, dir: p.dir });
    expect(ns.ip('xfrm', 'policy')).toContain('10.8.0.0/24');
    expect(ns.ip('xfrm', 'policy')).not.toContain('10.1.0.0/24');
  });
});
