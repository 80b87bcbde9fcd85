/**
 * Runs INSIDE the test VM (node from the initramfs, this file from the 9p share
 * as dist/test/vm/guest/esp-backend.js): coati's XFRM backend installs ESP SAs
 * and policies between the network namespaces "a" and "b" that
 * test/vm/guest/xfrm-lib.sh `topo_setup` built, and pings through them.
 *
 * One line per check on stdout: `RESULT {"name":...,"ok":true|false,"detail":...}`;
 * exit status 0 only if every check passed. test/vm/esp.test.ts asserts each one.
 *
 *   node dist/test/vm/guest/esp-backend.js [--only SUBSTRING]
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type {
  IpsecMode,
  KernelEvent,
  PolicySpec,
  SaAlgorithms,
  SaId,
  SaSpec,
  UdpEncap,
} from '../../../src/kernel/types.js';
import { XfrmKernel } from '../../../src/kernel/xfrm/kernel.js';
import { DEFAULT_OWNERSHIP } from '../../../src/kernel/xfrm/ownership.js';
import { IkeUdpSocket } from '../../../src/net/udp-socket.js';

const run = promisify(execFile);

type Fam = 4 | 6;
type Alg = 'gcm' | 'cbc';

// Same addressing as xfrm-lib.sh.
const OUTER = { 4: { a: '192.0.2.1', b: '192.0.2.2' }, 6: { a: '2001:db8:1::1', b: '2001:db8:1::2' } } as const;
const INNER = { 4: { a: '10.1.0.1', b: '10.2.0.1' }, 6: { a: 'fd00:1::1', b: 'fd00:2::1' } } as const;
const HOST = { 4: 32, 6: 128 } as const;
/** Bytes the kernel counts per ICMP echo of busybox ping (56 B payload): the inner packet. */
const INNER_BYTES = { tunnel: { 4: 84, 6: 104 }, transport: { 4: 64, 6: 64 } } as const;
const PRIORITY = DEFAULT_OWNERSHIP.priorityMin + 0x100;

let nextReqid = DEFAULT_OWNERSHIP.reqidMin + 1;
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
let failures = 0;

function report(name: string, ok: boolean, detail: unknown = {}): void {
  if (!ok) failures++;
  process.stdout.write(
    `RESULT ${JSON.stringify({ name, ok, detail }, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}\n`,
  );
}

async function check(name: string, fn: () => Promise<Record<string, unknown>>): Promise<void> {
  if (only && !name.includes(only)) return;
  const t0 = Date.now();
  try {
    const detail = await fn();
    const ok = detail.ok !== false;
    report(name, ok, { ...detail, ms: Date.now() - t0 });
  } catch (err) {
    const e = err as Error & { code?: string; errno?: number };
    report(name, false, {
      error: `${e.code ?? e.name}: ${e.message}`,
      errno: e.errno,
      stack: e.stack,
      ms: Date.now() - t0,
    });
  }
}

function algorithms(alg: Alg): SaAlgorithms {
  if (alg === 'gcm') return { aead: { name: 'rfc4106(gcm(aes))', key: randomBytes(36), icvBits: 128 } };
  return {
    crypt: { name: 'cbc(aes)', key: randomBytes(32) },
    auth: { name: 'hmac(sha256)', key: randomBytes(32), truncBits: 128 },
  };
}

/**
 * busybox ping from namespace a; returns how many replies came back. Counted
 * from the reply lines: busybox exits without a summary when sendto fails
 * (e.g. EAGAIN once an outbound SA hard-expired).
 */
async function ping(fam: Fam, src: string, dst: string, count: number, waitSec = 2): Promise<number> {
  const args = ['netns', 'exec', 'a', 'ping', `-${fam}`, '-c', String(count), '-i', '0.2', '-W', String(waitSec)];
  const r = await run('ip', [...args, '-I', src, dst]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  return r.stdout.split('\n').filter((l) => / bytes from .* seq=/.test(l)).length;
}

interface Pair {
  mode: IpsecMode;
  fam: Fam;
  ab: SaSpec; // a -> b, inbound at b
  ba: SaSpec; // b -> a, inbound at a
  policiesA: PolicySpec[];
  policiesB: PolicySpec[];
}

/**
 * The IKE flow: the responder (b) and the initiator (a) each allocate their
 * inbound SPI (larval SA), then update it with keys; outbound SAs are added.
 */
async function installPair(
  ka: XfrmKernel,
  kb: XfrmKernel,
  mode: IpsecMode,
  fam: Fam,
  alg: Alg,
  extra: { encap?: UdpEncap; lifetimeAb?: SaSpec['lifetime'] } = {},
): Promise<Pair> {
  const o = OUTER[fam];
  const reqidAb = nextReqid++;
  const reqidBa = nextReqid++;
  const spiAb = await kb.allocSpi({ src: o.a, dst: o.b, proto: 'esp', reqid: reqidAb });
  const spiBa = await ka.allocSpi({ src: o.b, dst: o.a, proto: 'esp', reqid: reqidBa });
  const base = (src: string, dst: string, spi: number, reqid: number): SaSpec => ({
    src,
    dst,
    spi,
    proto: 'esp',
    mode,
    reqid,
    algorithms: algorithms(alg),
    replayWindow: 32,
    ...(extra.encap ? { encap: extra.encap } : {}),
  });
  const ab = base(o.a, o.b, spiAb, reqidAb);
  if (extra.lifetimeAb) ab.lifetime = extra.lifetimeAb;
  const ba = base(o.b, o.a, spiBa, reqidBa);
  // a: outbound a->b (add), inbound b->a (update the larval SA); b mirrored.
  await ka.addSa(ab);
  await kb.updateSa(ab);
  await kb.addSa(ba);
  await ka.updateSa(ba);

  const ends = mode === 'tunnel' ? INNER[fam] : o;
  const sel = (from: 'a' | 'b') => {
    const to = from === 'a' ? 'b' : 'a';
    return { src: `${ends[from]}/${HOST[fam]}`, dst: `${ends[to]}/${HOST[fam]}` };
  };
  const tmpl = (sa: SaSpec) => ({
    src: mode === 'tunnel' ? sa.src : '',
    dst: mode === 'tunnel' ? sa.dst : '',
    proto: 'esp' as const,
    mode,
    reqid: sa.reqid,
  });
  const pol = (selector: { src: string; dst: string }, dir: 'in' | 'out', sa: SaSpec): PolicySpec => ({
    selector,
    dir,
    action: 'allow',
    priority: PRIORITY,
    templates: [tmpl(sa)],
  });
  const policiesA = [pol(sel('a'), 'out', ab), pol(sel('b'), 'in', ba)];
  const policiesB = [pol(sel('b'), 'out', ba), pol(sel('a'), 'in', ab)];
  for (const p of policiesA) await ka.addPolicy(p);
  for (const p of policiesB) await kb.addPolicy(p);
  return { mode, fam, ab, ba, policiesA, policiesB };
}

async function removePair(ka: XfrmKernel, kb: XfrmKernel, p: Pair): Promise<void> {
  for (const pol of p.policiesA) await ka.deletePolicy({ selector: pol.selector, dir: pol.dir });
  for (const pol of p.policiesB) await kb.deletePolicy({ selector: pol.selector, dir: pol.dir });
  for (const k of [ka, kb]) {
    for (const sa of [p.ab, p.ba]) await k.deleteSa({ dst: sa.dst, spi: sa.spi, proto: 'esp' });
  }
}

const saId = (sa: SaSpec): SaId => ({ dst: sa.dst, spi: sa.spi, proto: 'esp' });

/** Counters of both SAs in both namespaces. */
async function counters(ka: XfrmKernel, kb: XfrmKernel, p: Pair) {
  const get = async (k: XfrmKernel, sa: SaSpec) => {
    const info = await k.getSa(saId(sa));
    return info ? { packets: Number(info.counters.packets), bytes: Number(info.counters.bytes) } : undefined;
  };
  return {
    aOut: await get(ka, p.ab),
    bIn: await get(kb, p.ab),
    bOut: await get(kb, p.ba),
    aIn: await get(ka, p.ba),
  };
}

function countersMatch(c: Awaited<ReturnType<typeof counters>>, packets: number, bytesEach: number): boolean {
  return Object.values(c).every((v) => v !== undefined && v.packets === packets && v.bytes === packets * bytesEach);
}

async function pingThrough(p: Pair, count: number, waitSec = 2): Promise<number> {
  const ends = p.mode === 'tunnel' ? INNER[p.fam] : OUTER[p.fam];
  return ping(p.fam, ends.a, ends.b, count, waitSec);
}

async function main(): Promise<void> {
  // Leftovers from the ip-xfrm suite are not coati's (the backend never flushes): clear them here.
  for (const ns of ['a', 'b']) {
    await run('ip', ['-n', ns, 'xfrm', 'policy', 'flush']);
    await run('ip', ['-n', ns, 'xfrm', 'state', 'flush']);
  }
  const ka = await XfrmKernel.open({ netns: 'a' });
  const kb = await XfrmKernel.open({ netns: 'b' });
  const events: Array<KernelEvent & { at: number; ns: string }> = [];
  const t0 = Date.now();
  ka.onEvent((ev) => events.push({ ...ev, at: Date.now() - t0, ns: 'a' }));
  kb.onEvent((ev) => events.push({ ...ev, at: Date.now() - t0, ns: 'b' }));

  // Time lifetimes first: the clock runs while the traffic scenarios do.
  let timed: SaSpec | undefined;
  let timedAt = 0;
  if (!only || 'expire: soft 2 s / hard 4 s add-time lifetime'.includes(only)) {
    const o = OUTER[4];
    const reqid = nextReqid++;
    const spi = await ka.allocSpi({ src: o.b, dst: o.a, proto: 'esp', reqid });
    timed = {
      src: o.b,
      dst: o.a,
      spi,
      proto: 'esp',
      mode: 'tunnel',
      reqid,
      algorithms: algorithms('gcm'),
      lifetime: { softAddSeconds: 2, hardAddSeconds: 4 },
    };
    await ka.updateSa(timed);
    timedAt = Date.now() - t0;
  }

  for (const mode of ['tunnel', 'transport'] as const) {
    for (const fam of [4, 6] as const) {
      for (const alg of ['gcm', 'cbc'] as const) {
        await check(`${mode} IPv${fam} ${alg}`, async () => {
          const p = await installPair(ka, kb, mode, fam, alg);
          const replies = await pingThrough(p, 5);
          const c = await counters(ka, kb, p);
          const spis = new Set([p.ab.spi, p.ba.spi]);
          const ours = async (k: XfrmKernel) => (await k.listSas()).filter((sa) => spis.has(sa.spi)).length;
          const listed = await ours(ka);
          await removePair(ka, kb, p);
          const after = (await ours(ka)) + (await ours(kb));
          const policiesAfter = (await ka.listPolicies()).length + (await kb.listPolicies()).length;
          const ok =
            replies === 5 &&
            countersMatch(c, 5, INNER_BYTES[mode][fam]) &&
            listed === 2 &&
            after === 0 &&
            policiesAfter === 0;
          return { ok, replies, counters: c, listedInA: listed, sasAfterDelete: after, policiesAfter };
        });
      }
    }
  }

  for (const fam of [4, 6] as const) {
    await check(`ESP-in-UDP IPv${fam} tunnel gcm over coati's 4500 sockets`, async () => {
      const sockets: IkeUdpSocket[] = [];
      try {
        for (const ns of ['a', 'b']) {
          sockets.push(IkeUdpSocket.open({ family: fam, port: 4500, encap: true, netns: ns, onMessage: () => {} }));
        }
        const p = await installPair(ka, kb, 'tunnel', fam, 'gcm', { encap: { sport: 4500, dport: 4500 } });
        const replies = await pingThrough(p, 5);
        const c = await counters(ka, kb, p);
        const info = await kb.getSa(saId(p.ab));
        // Without b's UDP_ENCAP socket the kernel cannot decapsulate: proof the packets were ESP-in-UDP.
        sockets[1]?.close();
        const repliesWithoutSocket = await pingThrough(p, 1, 1);
        const c2 = await counters(ka, kb, p);
        await removePair(ka, kb, p);
        const ok =
          replies === 5 &&
          countersMatch(c, 5, INNER_BYTES.tunnel[fam]) &&
          info?.encap?.sport === 4500 &&
          info.encap.dport === 4500 &&
          repliesWithoutSocket === 0 &&
          c2.aOut?.packets === 6 &&
          c2.bIn?.packets === 5;
        return { ok, replies, counters: c, encap: info?.encap, repliesWithoutSocket, countersAfter: c2 };
      } finally {
        for (const s of sockets) s.close();
      }
    });
  }

  await check('expire: soft 2 / hard 4 packet lifetime', async () => {
    const p = await installPair(ka, kb, 'tunnel', 4, 'gcm', { lifetimeAb: { softPackets: 2n, hardPackets: 4n } });
    const replies = await pingThrough(p, 6, 1);
    await new Promise((r) => setTimeout(r, 300));
    const mine = events.filter((e) => e.type === 'expire' && e.sa.spi === p.ab.spi);
    const soft = mine.filter((e) => e.type === 'expire' && !e.hard);
    const hard = mine.filter((e) => e.type === 'expire' && e.hard);
    const aGone = (await ka.getSa(saId(p.ab))) === undefined;
    await removePair(ka, kb, p).catch(() => {});
    // Both namespaces hold the a->b SA with the same lifetime: each reports its own.
    const ok =
      soft.some((e) => e.ns === 'a') && hard.some((e) => e.ns === 'a') && aGone && replies >= 2 && replies <= 4;
    return { ok, replies, events: mine, aSaGoneAfterHard: aGone };
  });

  if (timed) {
    const sa = timed;
    await check('expire: soft 2 s / hard 4 s add-time lifetime', async () => {
      const deadline = Date.now() + 10_000;
      const mine = () => events.filter((e) => e.type === 'expire' && e.sa.spi === sa.spi);
      while (Date.now() < deadline && !mine().some((e) => e.type === 'expire' && e.hard)) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const evs = mine();
      const soft = evs.find((e) => e.type === 'expire' && !e.hard);
      const hard = evs.find((e) => e.type === 'expire' && e.hard);
      const softAfter = soft ? (soft.at - timedAt) / 1000 : undefined;
      const hardAfter = hard ? (hard.at - timedAt) / 1000 : undefined;
      const gone = (await ka.getSa(saId(sa))) === undefined;
      const ok =
        softAfter !== undefined &&
        hardAfter !== undefined &&
        // The kernel keeps add time in whole seconds: events come up to 1 s early.
        softAfter > 0.9 &&
        softAfter < 3.5 &&
        hardAfter > 2.9 &&
        hardAfter < 6 &&
        softAfter < hardAfter &&
        soft?.type === 'expire' &&
        soft.reqid === sa.reqid &&
        soft.src === sa.src &&
        gone;
      return { ok, softAfter, hardAfter, events: evs, gone };
    });
  }

  await ka.close();
  await kb.close();
}

main().then(
  () => process.exit(failures === 0 ? 0 : 1),
  (err) => {
    report('setup', false, { error: String(err), stack: (err as Error).stack });
    process.exit(2);
  },
);
