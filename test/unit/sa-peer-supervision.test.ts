import { describe, expect, it } from 'vitest';
import type { EngineEnv, EngineEvent } from '../../src/ikev2/env.js';
import { silentLog } from '../../src/ikev2/env.js';
import { PolicyBook } from '../../src/ikev2/policy-book.js';
import { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';

import { PeerSupervisor, type SupervisionOptions } from '../../src/sa/peer-supervision.js';
import type { PeerPolicy } from '../../src/sa/policy.js';
import { FakeClock, flushMicrotasks } from '../../src/util/clock.js';
import { meshPolicy } from '../helpers/pair-base.js';

const me = { name: 'me', addr: '192.0.2.1' };

function policy(name: string, addr: string, over: Partial<PeerPolicy> = {}): PeerPolicy {
  return meshPolicy(
    { version: 2, psk: 'unit-test-psk-0123456789', ikeProposals: [], espProposals: [], fragmentation: false },
    me,
    { name, addr },
    over,
  );
}

/** A manager stand-in: SAs per peer are plain lists the test sets; initiate records the call. */
function harness(opts: Partial<SupervisionOptions> = {}, rand = 0.5) {
  const clock = new FakeClock();
  const kernel = new MemoryKernel({ now: () => clock.now() });
  const events: EngineEvent[] = [];
  const env: EngineEnv = {
    clock,
    random: (n: number) => Buffer.alloc(n, 1),
    rand01: () => rand,
    kernel,
    send() {},
    emit: (ev) => events.push(ev),
    log: silentLog,
  };
  const up = new Map<string, unknown[]>();
  const connecting = new Map<string, unknown[]>();
  const initiated: string[] = [];
  let failInitiate: Error | undefined;
  const m = {
    env,
    book: new PolicyBook(kernel),
    established: (n: string) => up.get(n) ?? [],
    connecting: (n: string) => connecting.get(n) ?? [],
    initiate: async (n: string) => {
      sup.beginInitiate(n);
      initiated.push(n);
      if (failInitiate) throw failInitiate;
    },
  };
  const sup: PeerSupervisor = new PeerSupervisor(m, {
    version: 2,
    reqidBase: 0xc0a70100,
    ...opts,
  });
  return {
    clock,
    kernel,
    events,
    up,
    connecting,
    initiated,
    m,
    sup,
    failNext: (e: Error | undefined) => {
      failInitiate = e;
    },
  };
}

describe('PeerSupervisor', () => {
  it('hands out reqids per peer and child from the base, stable for the peer', () => {
    const h = harness();
    h.sup.setPolicy(policy('a', '192.0.2.2'));
    h.sup.setPolicy(policy('b', '192.0.2.3'));
    expect(h.sup.reqidFor('a', 'host')).toBe(0xc0a70100);
    expect(h.sup.reqidFor('b', 'host')).toBe(0xc0a70101);
    expect(h.sup.reqidFor('a', 'host')).toBe(0xc0a70100);
    expect(h.sup.ownerOf(0xc0a70101)?.policy.name).toBe('b');
    // A new policy for a known peer keeps its runtime state (reqids).
    h.sup.setPolicy(policy('a', '192.0.2.9'));
    expect(h.sup.reqidFor('a', 'host')).toBe(0xc0a70100);
    expect(h.sup.peers.get('a')?.policy.remoteAddress).toBe('192.0.2.9');
  });

  it('knows the owner of each reqid it handed out or adopted, and forgets a removed peer’s', () => {
    const h = harness();
    h.sup.setPolicy(policy('a', '192.0.2.2'));
    h.sup.setPolicy(policy('b', '192.0.2.3'));
    const ra = h.sup.reqidFor('a', 'host');
    const ra2 = h.sup.reqidFor('a', 'net');
    // A checkpoint's reqid for b (a predecessor handed it out).
    h.sup.adoptReqid('b', 'host', 0xc0a70177);
    h.sup.adoptReqid('nobody', 'host', 0xc0a70178);
    expect(h.sup.ownerOf(ra)?.policy.name).toBe('a');
    expect(h.sup.ownerOf(ra2)?.policy.name).toBe('a');
    expect(h.sup.ownerOf(0xc0a70177)?.policy.name).toBe('b');
    expect(h.sup.reqidFor('b', 'host')).toBe(0xc0a70177);
    expect(h.sup.ownerOf(0xc0a70178)).toBeUndefined();
    // A reqid for an unknown peer is fresh and owned by nobody.
    const stray = h.sup.reqidFor('nobody', 'host');
    expect(h.sup.ownerOf(stray)).toBeUndefined();
    h.sup.forget('a');
    expect(h.sup.ownerOf(ra)).toBeUndefined();
    expect(h.sup.ownerOf(ra2)).toBeUndefined();
    // Re-added under the same name: a fresh runtime, new reqids; the old ones stay unowned.
    h.sup.setPolicy(policy('a', '192.0.2.2'));
    const again = h.sup.reqidFor('a', 'host');
    expect(again).not.toBe(ra);
    expect(h.sup.ownerOf(again)?.policy.name).toBe('a');
    expect(h.sup.ownerOf(ra)).toBeUndefined();
  });

  it('refuses unknown peers and peers of the other version', () => {
    const h = harness();
    h.sup.setPolicy(policy('v1', '192.0.2.2', { version: 1 }));
    expect(() => h.sup.beginInitiate('nobody')).toThrow(/no peer named "nobody"/);
    expect(() => h.sup.beginInitiate('v1')).toThrow(/configured for IKEv1/);
  });

  it('retries a failed attempt after the backoff less the time already waited, and onUp cancels it', async () => {
    const h = harness({}, 1); // jitter factor 1: backoff 1 s, 2 s, 4 s ...
    const p = policy('a', '192.0.2.2');
    h.sup.setPolicy(p);
    const rt = h.sup.beginInitiate('a');
    await h.sup.afterLoss(rt, 'establish', 300);
    expect(rt.failures).toBe(1);
    expect(rt.nextRetryAt).toBe(h.clock.now() + 700);
    await h.clock.advance(699);
    expect(h.initiated).toEqual([]);
    await h.clock.advance(1);
    expect(h.initiated).toEqual(['a']);
    // Second failure: 2 s; an SA coming up in between cancels the retry and forgets the failures.
    await h.sup.afterLoss(rt, 'establish');
    expect(rt.nextRetryAt).toBe(h.clock.now() + 2000);
    h.sup.onUp('a');
    expect(rt.failures).toBe(0);
    await h.clock.advance(5000);
    expect(h.initiated).toEqual(['a']);
    expect(h.sup.wantsInitialContact(p)).toBe(false);
  });

  it('does not retry while the peer has an SA up or connecting, or is no longer wanted', async () => {
    const h = harness();
    h.sup.setPolicy(policy('a', '192.0.2.2'));
    const rt = h.sup.beginInitiate('a');
    h.connecting.set('a', [{}]);
    await h.sup.afterLoss(rt, 'establish');
    expect(rt.retryTimer).toBeUndefined();
    h.connecting.delete('a');
    await h.sup.afterLoss(rt, 'establish');
    expect(rt.retryTimer).toBeDefined();
    h.sup.stopWanting('a');
    expect(rt.wantUp).toBe(false);
    expect(rt.retryTimer).toBeUndefined();
    await h.clock.advance(120_000);
    expect(h.initiated).toEqual([]);
  });

  it('follows the dead-peer action after a loss: restart, trap, clear', async () => {
    const h = harness();
    h.sup.setPolicy(policy('r', '192.0.2.2', { dpdAction: 'restart' }));
    h.sup.setPolicy(policy('t', '192.0.2.3', { dpdAction: 'trap' }));
    h.sup.setPolicy(policy('c', '192.0.2.4', { dpdAction: 'clear' }));
    const [r, t, c] = ['r', 't', 'c'].map((n) => h.sup.peers.get(n)!);
    r!.failures = 3;
    await h.sup.afterLoss(r!, 'liveness');
    expect(h.initiated).toEqual(['r']);
    expect(r!.failures).toBe(0);
    await h.sup.afterLoss(t!, 'exchange');
    const reqid = h.sup.reqidFor('t', 'host');
    expect(h.m.book.isTrapped(reqid)).toBe(true);
    expect((await h.kernel.listPolicies()).length).toBeGreaterThan(0);
    c!.wantUp = true;
    await h.sup.afterLoss(c!, 'deleted');
    expect(c!.wantUp).toBe(false);
    expect(h.initiated).toEqual(['r']);
  });

  it('keeps the policies of a wanted restart peer as traps when its last pair releases them', async () => {
    const h = harness();
    h.sup.setPolicy(policy('r', '192.0.2.2', { dpdAction: 'restart', start: 'none' }));
    h.sup.setPolicy(policy('c', '192.0.2.3', { dpdAction: 'clear', start: 'none' }));
    const spec = (n: string) => ({
      selector: { src: '192.0.2.1/32', dst: n },
      dir: 'out' as const,
      action: 'allow' as const,
      priority: 1,
      templates: [],
    });
    const rr = h.sup.reqidFor('r', 'host');
    const rc = h.sup.reqidFor('c', 'host');
    await h.m.book.hold(rr, 'pair', [spec('192.0.2.2/32')]);
    await h.m.book.hold(rc, 'pair', [spec('192.0.2.3/32')]);
    h.sup.peers.get('r')!.wantUp = true;
    h.sup.peers.get('c')!.wantUp = true;
    await h.m.book.release(rr, 'pair');
    await h.m.book.release(rc, 'pair');
    expect(h.m.book.isTrapped(rr)).toBe(true);
    expect(h.m.book.isTrapped(rc)).toBe(false);
    expect((await h.kernel.listPolicies()).map((p) => p.selector.dst)).toEqual(['192.0.2.2/32']);
  });

  it('with a stopping gate initiates nothing of its own and refuses initiations', async () => {
    let stopping = false;
    const h = harness({ version: 2, stopping: () => stopping });
    h.sup.setPolicy(policy('a', '192.0.2.2'));
    const rt = h.sup.peers.get('a')!;
    await h.sup.installTraps(rt);
    const reqid = h.sup.reqidFor('a', 'host');
    stopping = true;
    await h.sup.onAcquire(reqid);
    rt.wantUp = true;
    await h.sup.afterLoss(rt, 'establish');
    await h.sup.afterLoss(rt, 'liveness');
    expect(rt.retryTimer).toBeUndefined();
    expect(h.initiated).toEqual([]);
    expect(() => h.sup.beginInitiate('a')).toThrow(/the daemon is stopping/);
    stopping = false;
    await h.sup.onAcquire(reqid);
    expect(h.initiated).toEqual(['a']);
    // Up or connecting: an ACQUIRE starts nothing more.
    h.up.set('a', [{}]);
    await h.sup.onAcquire(reqid);
    expect(h.initiated).toEqual(['a']);
  });

  it("a retry's rejection is logged and counts as a failure: the next retry follows the backoff", async () => {
    const h = harness({}, 1);
    const warned: unknown[] = [];
    h.m.env.log = { ...h.m.env.log, warn: (msg, fields) => warned.push({ msg, ...fields }) };
    h.sup.setPolicy(policy('a', '192.0.2.2'));
    const rt = h.sup.beginInitiate('a');
    h.failNext(new Error('no route'));
    await h.sup.afterLoss(rt, 'establish');
    await h.clock.advance(1000);
    await flushMicrotasks();
    expect(h.initiated).toEqual(['a']);
    expect(warned).toEqual([{ msg: 'retry: initiation failed', peer: 'a', error: 'no route', retryInMs: 2000 }]);
    expect(rt.failures).toBe(2);
    expect(rt.lastError).toMatchObject({ code: 'FAILED', message: 'no route' });
    h.failNext(undefined);
    await h.clock.advance(2000);
    await flushMicrotasks();
    expect(h.initiated).toEqual(['a', 'a']);
  });

  it('untraps and forgets a removed peer', async () => {
    const h = harness();
    h.sup.setPolicy(policy('t', '192.0.2.3', { start: 'trap' }));
    const rt = h.sup.peers.get('t')!;
    await h.sup.installTraps(rt);
    expect((await h.kernel.listPolicies()).length).toBeGreaterThan(0);
    await h.sup.untrapAll(rt);
    h.sup.forget('t');
    expect(await h.kernel.listPolicies()).toEqual([]);
    expect(h.sup.peers.has('t')).toBe(false);
    expect(h.sup.ownerOf(0xc0a70100)).toBeUndefined();
  });

  it('reports a failed SA by phase and remembers the error', () => {
    const h = harness();
    h.sup.setPolicy(policy('a', '192.0.2.2'));
    const rt = h.sup.peers.get('a');
    const sa = { peerName: 'a', role: 'initiator' as const, lastError: undefined, lastInboundAt: h.clock.now() - 42 };
    h.sup.onSaFailed(rt, sa, 'IKE_SA_INIT timed out', 'establish');
    h.sup.onSaFailed(rt, sa, 'liveness timed out', 'liveness');
    expect(h.events).toEqual([
      {
        type: 'handshake.failed',
        peer: 'a',
        version: 2,
        role: 'initiator',
        reason: 'TIMEOUT',
        detail: 'IKE_SA_INIT timed out',
      },
      { type: 'liveness.dead', peer: 'a', silentMs: 42 },
    ]);
    expect(rt?.lastError).toEqual({ code: 'FAILED', message: 'liveness timed out', at: h.clock.now() });
  });

  it('a deletion by the peer counts only once no SA is left', async () => {
    const h = harness();
    h.sup.setPolicy(policy('a', '192.0.2.2', { dpdAction: 'restart' }));
    const rt = h.sup.peers.get('a')!;
    h.up.set('a', [{}]);
    await h.sup.onDeletedByPeer(rt);
    expect(h.events).toEqual([]);
    h.up.delete('a');
    await h.sup.onDeletedByPeer(rt);
    expect(h.events).toEqual([{ type: 'peer.down', peer: 'a', reason: 'deleted by peer' }]);
    expect(h.initiated).toEqual(['a']);
  });

  it('starts its own version only, in configuration order: traps installed, start = now handed over', async () => {
    const h = harness({ version: 1 });
    h.sup.setPolicy(policy('n1', '192.0.2.2', { version: 1, start: 'now' }));
    h.sup.setPolicy(policy('t1', '192.0.2.3', { version: 1, start: 'trap' }));
    h.sup.setPolicy(policy('n2', '192.0.2.4', { version: 2, start: 'now' }));
    h.sup.setPolicy(policy('n3', '192.0.2.5', { version: 1, start: 'now' }));
    const handed: string[] = [];
    await h.sup.startPeers((rt) => handed.push(rt.policy.name));
    expect(handed).toEqual(['n1', 'n3']);
    expect(h.sup.peers.get('n1')?.wantUp).toBe(true);
    expect(h.sup.peers.get('n2')?.wantUp).toBe(false);
    expect(h.m.book.isTrapped(h.sup.reqidFor('t1', 'host'))).toBe(true);
    expect(h.sup.stillDue(h.sup.peers.get('n1'))).toBe(true);
    h.connecting.set('n1', [{}]);
    expect(h.sup.stillDue(h.sup.peers.get('n1'))).toBe(false);
    expect(h.sup.stillDue(h.sup.peers.get('n2'))).toBe(false);
    expect(h.sup.stillDue(undefined)).toBe(false);
  });
});
