/**
 * An initiation the supervisor starts on its own (a scheduled retry, a dead-peer restart)
 * that throws before anything is sent: a peer without `local_address` asks the kernel for
 * the route's source address at every initiation, and while the network is unreachable
 * that fails (connect ENETUNREACH). Such a failure is logged with the peer and the reason,
 * counts as a failed attempt, and the next one follows per the backoff: never an unhandled
 * rejection (IKEv2 left it to the process handler) and never the end of the retries (both
 * engines stopped trying: the peer stayed down after the route came back).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PeerRuntime } from '../../src/ikev2/peer-runtime.js';
import type { PeerPolicy } from '../../src/sa/policy.js';
import { Mesh } from '../helpers/ike-pair.js';
import { V1Mesh } from '../helpers/ike1-pair.js';
import type { LinkNode } from '../helpers/pair-base.js';

interface Engine {
  initiate(name: string): Promise<unknown>;
  established(name: string): readonly unknown[];
  connecting(name: string): readonly unknown[];
  peer(name: string): PeerRuntime | undefined;
  env: {
    sourceFor?: (remote: string) => Promise<string>;
    send: (d: { data: Buffer; local: unknown; remote: unknown }) => void;
    log: { warn: (m: string, f?: object) => void };
  };
}

const FAST = { baseMs: 500, factor: 1, maxTimeoutMs: 500, tries: 1, jitter: 0 };

/** Node a (no local_address: its source comes from the "routing table") and node b. */
function setup(version: 1 | 2, over: Partial<PeerPolicy> = {}) {
  const m = version === 1 ? new V1Mesh(3) : new Mesh(3);
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  const policy: Partial<PeerPolicy> = { start: 'none', retransmit: FAST, restartBackoffMaxMs: 4000, ...over };
  if (m instanceof V1Mesh) m.pair(policy);
  else m.fullMesh(policy);
  const engine = (n: LinkNode) => n.manager as unknown as Engine;
  const ea = engine(a);
  const pa = ea.peer('b');
  if (!pa) throw new Error('a has no peer b');
  pa.policy = { ...pa.policy };
  delete pa.policy.localAddress;
  const route = { up: true, lookups: 0 };
  ea.env.sourceFor = async (remote) => {
    route.lookups++;
    if (!route.up) throw new Error(`connect ENETUNREACH ${remote}:9`);
    return a.addr;
  };
  const warnings: { message: string; fields: Record<string, unknown> }[] = [];
  ea.env.log.warn = (message, fields = {}) => warnings.push({ message, fields: fields as Record<string, unknown> });
  return { m, a, b, ea, eb: engine(b), rt: pa, route, warnings };
}

let rejections: unknown[] = [];
const onRejection = (reason: unknown) => rejections.push(reason);
beforeEach(() => {
  rejections = [];
  process.on('unhandledRejection', onRejection);
});
afterEach(() => {
  process.off('unhandledRejection', onRejection);
});

/** Lets Node report unhandled rejections (it does so after the microtask queue drains). */
const macrotask = () => new Promise((r) => setImmediate(r));

describe.each([1, 2] as const)('IKEv%i: an initiation of its own that throws', (version) => {
  it('a scheduled retry: logged with the peer and reason, the retries go on, the peer comes up once routed', async () => {
    const { m, b, ea, rt, route, warnings } = setup(version);
    b.up = false;
    await ea.initiate('b');
    // IKE_SA_INIT / Main Mode 1 times out (500 ms + one 500 ms retransmission): a retry is due.
    for (let t = 0; t < 5000 && !rt.retryTimer; t += 50) await m.advance(50, 50);
    expect(ea.connecting('b')).toEqual([]);
    expect(rt.failures).toBe(1);
    expect(rt.retryTimer).toBeDefined();
    route.up = false; // the network goes away
    const lookups = route.lookups;
    await m.advance(12_000, 50);
    await macrotask();
    // Several attempts, each failed at the route lookup, each followed by the next one.
    expect(route.lookups - lookups).toBeGreaterThanOrEqual(3);
    expect(rt.retryTimer).toBeDefined();
    expect(rt.wantUp).toBe(true);
    expect(rt.lastError?.message).toMatch(/ENETUNREACH/);
    const failed = warnings.filter((w) => w.fields.peer === 'b' && /ENETUNREACH/.test(String(w.fields.error)));
    expect(failed.length).toBe(route.lookups - lookups);
    expect(rejections).toEqual([]);
    route.up = true;
    b.up = true;
    await m.advance(10_000, 50);
    expect(ea.established('b')).toHaveLength(1);
    await macrotask();
    expect(rejections).toEqual([]);
  });

  it('a retry whose first send throws: the half-made SA goes, the retries go on', async () => {
    const { m, b, ea, rt, warnings } = setup(version);
    const send = ea.env.send.bind(ea.env);
    let sendFails = false;
    ea.env.send = (d) => {
      if (sendFails) throw new Error('send EPERM');
      send(d);
    };
    b.up = false;
    await ea.initiate('b');
    for (let t = 0; t < 5000 && !rt.retryTimer; t += 50) await m.advance(50, 50);
    expect(rt.retryTimer).toBeDefined();
    sendFails = true;
    await m.advance(12_000, 50);
    await macrotask();
    const failed = warnings.filter((w) => w.fields.peer === 'b' && /EPERM/.test(String(w.fields.error)));
    expect(failed.length).toBeGreaterThanOrEqual(3);
    // No SA left half-made (it would count as connecting and block every later attempt).
    expect(ea.connecting('b')).toEqual([]);
    expect(rt.retryTimer).toBeDefined();
    expect(rejections).toEqual([]);
    sendFails = false;
    b.up = true;
    await m.advance(10_000, 50);
    expect(ea.established('b')).toHaveLength(1);
  });

  it('a kernel failure while establishing (SPI allocation): the attempt fails, the next one brings the peer up', async () => {
    const { m, a, ea, rt } = setup(version);
    a.kernel.injectError('allocSpi', 'KERNEL_ERROR');
    await ea.initiate('b');
    await m.settle();
    await m.advance(30_000, 100);
    expect(rt.wantUp).toBe(true);
    expect(ea.established('b')).toHaveLength(1);
    const pairs = (await a.kernel.listSas()).length;
    expect(pairs).toBe(2);
    await macrotask();
    expect(rejections).toEqual([]);
  });

  it('a dead-peer restart: logged, retried per the backoff, the peer comes up once routed', async () => {
    const { m, b, ea, eb, rt, route, warnings } = setup(version, { dpdDelayMs: 2000, dpdTimeoutMs: 3000 });
    await ea.initiate('b');
    await m.settle();
    await m.advance(1000, 50);
    expect(ea.established('b')).toHaveLength(1);
    // The path goes: b no longer hears a, a's route is gone too when it restarts.
    b.up = false;
    route.up = false;
    await m.advance(20_000, 50);
    await macrotask();
    expect(ea.established('b')).toEqual([]);
    expect(rt.wantUp).toBe(true);
    expect(rt.retryTimer).toBeDefined();
    expect(warnings.some((w) => w.fields.peer === 'b' && /ENETUNREACH/.test(String(w.fields.error)))).toBe(true);
    expect(rejections).toEqual([]);
    route.up = true;
    b.up = true;
    await m.advance(15_000, 50);
    expect(ea.established('b')).toHaveLength(1);
    expect(eb.established('a')).toHaveLength(1);
    await macrotask();
    expect(rejections).toEqual([]);
  });
});
