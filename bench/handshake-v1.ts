/**
 * IKEv1 handshake throughput, CPU and memory: coati against strongSwan charon
 * and against a crypto-only ceiling, all measured in the same run. The IKEv1
 * twin of bench/handshake.ts (same namespaces, arguments, figures and JSON
 * shape; it imports that bench's machinery).
 *
 *   npx tsc -p . && node dist/bench/handshake-v1.js [--k 50,200] [--seconds 3]
 *        [--runs 1] [--scenarios coati,charon,mixed] [--deadline 60] [--profile DIR] [--out FILE]
 *
 * Each scenario: K ISAKMP SAs, Main Mode PSK aes128-sha256-modp2048, each with
 * one Quick Mode ESP aes128-sha256 (no PFS) in tunnel mode, all initiated at
 * once from namespace A (198.51.100.1) to namespace B (198.51.100.2). A handshake
 * counts as done when its phase 2 SA pair is installed on both sides:
 *   coati   coati -> coati: two forked processes (bench/handshake-v1-peer.ts), MemoryKernel.
 *   charon  charon -> charon: kernel-libipsec, raised limits (as in the IKEv2 bench);
 *           completion from vici `child-updown` events (bench/vici-events.ts).
 *   mixed   coati -> charon.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Charon } from '../test/harness/charon.js';
import { Lab, run } from '../test/harness/netns.js';
import type { ConnSpec } from '../test/harness/swanctl-conf.js';
import {
  ADDR_A,
  ADDR_B,
  CHARON_OPTS,
  countInstalled,
  f0,
  f2,
  finishRun,
  type HandshakeBenchOptions,
  kb,
  NAMES,
  NET_A,
  NET_B,
  PSK,
  pair,
  parseArgs,
  procCpuS,
  procRss,
  type RunResult,
  ratios,
  type Scenario,
  type SideFigures,
  type Summary,
  setupMsg,
  stopPeer,
  summarize,
  udpRcvbufErrors,
  waitMsg,
} from './handshake.js';
import { type MemSample, type PeerDone, tsHost } from './handshake-common.js';
import { v1CryptoCeiling } from './handshake-v1-crypto.js';
import { ViciClient } from './vici.js';
import { ViciChildCounter } from './vici-events.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const IKE = 'aes128-sha256-modp2048';
const ESP = 'aes128-sha256';
export const V1_SUITE = `IKEv1 Main Mode PSK ${IKE}; Quick Mode ESP ${ESP} (no PFS) tunnel`;

type V1Done = PeerDone & { phase1: number };

function forkPeer(opts: HandshakeBenchOptions, label: string): ChildProcess {
  const execArgv = ['--expose-gc'];
  if (opts.profileDir)
    execArgv.push('--cpu-prof', '--cpu-prof-dir', opts.profileDir, '--cpu-prof-name', `${label}.cpuprofile`);
  return fork(join(HERE, 'handshake-v1-peer.js'), [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function charonConns(role: 'initiator' | 'responder', k: number): ConnSpec[] {
  const out: ConnSpec[] = [];
  const ini = role === 'initiator';
  const [local, remote] = ini ? [ADDR_A, ADDR_B] : [ADDR_B, ADDR_A];
  const [localNet, remoteNet] = ini ? [NET_A, NET_B] : [NET_B, NET_A];
  for (let i = 0; i < k; i++) {
    out.push({
      name: ini ? `r${i}` : `i${i}`,
      version: 1,
      localAddrs: [local],
      remoteAddrs: [remote],
      localId: ini ? `i${i}.bench` : 'r.bench',
      remoteId: ini ? 'r.bench' : `i${i}.bench`,
      auth: 'psk',
      psk: PSK,
      proposals: [IKE],
      children: [
        {
          name: 'c',
          localTs: [tsHost(localNet, i)],
          remoteTs: [tsHost(remoteNet, i)],
          espProposals: [ESP],
          mode: 'tunnel',
        },
      ],
    });
  }
  return out;
}

const drift = (a: number[], b: number[]) => ({
  initiator: (b[0] ?? 0) - (a[0] ?? 0),
  responder: (b[1] ?? 0) - (a[1] ?? 0),
});

// ---- scenarios ------------------------------------------------------------------

async function runCoati(lab: Lab, k: number, runNo: number, o: HandshakeBenchOptions): Promise<RunResult> {
  const { a, b } = await pair(lab, `v${k}r${runNo}`, k);
  const resp = forkPeer(o, `v1-coati-resp-k${k}-r${runNo}`);
  const init = forkPeer(o, `v1-coati-init-k${k}-r${runNo}`);
  try {
    const rReady = waitMsg<{ mem: MemSample }>(resp, 'ready', 20_000);
    const iReady = waitMsg<{ mem: MemSample }>(init, 'ready', 20_000);
    resp.send(setupMsg('responder', k, b, o.deadlineS));
    init.send(setupMsg('initiator', k, a, o.deadlineS));
    const [r0, i0] = await Promise.all([rReady, iReady]);
    const drops0 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const rDoneP = waitMsg<V1Done>(resp, 'done', (o.deadlineS + 20) * 1000);
    const iDoneP = waitMsg<V1Done>(init, 'done', (o.deadlineS + 20) * 1000);
    resp.send({ type: 'start' });
    init.send({ type: 'start' });
    const [rDone, iDone] = await Promise.all([rDoneP, iDoneP]);
    const drops1 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const rStatsP = waitMsg<{ mem: MemSample }>(resp, 'stats', 20_000);
    const iStatsP = waitMsg<{ mem: MemSample }>(init, 'stats', 20_000);
    resp.send({ type: 'stats' });
    init.send({ type: 'stats' });
    const [r1, i1] = await Promise.all([rStatsP, iStatsP]);
    const side = (d: V1Done, m0: MemSample, m1: MemSample): SideFigures => ({
      impl: 'coati',
      role: d.role,
      cpuS: (d.cpuUserUs + d.cpuSystemUs) / 1e6,
      rssDelta: m1.rss - m0.rss,
      heapDelta: m1.heapUsed + m1.external - (m0.heapUsed + m0.external),
      established: d.established,
      retransmits: d.retransmits,
    });
    const ok = !iDone.timedOut && !rDone.timedOut && iDone.established >= k && rDone.established >= k;
    return finishRun({
      scenario: 'coati',
      k,
      run: runNo,
      ok,
      ...(ok ? {} : { note: `initiator ${JSON.stringify(iDone)}; responder ${JSON.stringify(rDone)}` }),
      wallS: Math.max(iDone.elapsedMs, rDone.elapsedMs) / 1000,
      sides: [side(iDone, i0.mem, i1.mem), side(rDone, r0.mem, r1.mem)],
      udpRcvbufErrors: drift(drops0, drops1),
      childSasInstalled: Math.min(iDone.kernelSas, rDone.kernelSas) / 2,
    });
  } finally {
    await Promise.all([stopPeer(init), stopPeer(resp)]);
    await a.destroy();
    await b.destroy();
  }
}

async function runCharon(lab: Lab, k: number, runNo: number, o: HandshakeBenchOptions): Promise<RunResult> {
  const { a, b } = await pair(lab, `w${k}r${runNo}`, k);
  const ini = await Charon.start(a, `v1ini-k${k}-r${runNo}`, CHARON_OPTS);
  const res = await Charon.start(b, `v1res-k${k}-r${runNo}`, CHARON_OPTS);
  const vi = await ViciClient.open(ini.viciUri);
  const vr = await ViciClient.open(res.viciUri);
  const ei = await ViciChildCounter.open(ini.viciUri);
  const er = await ViciChildCounter.open(res.viciUri);
  try {
    await res.loadConns(charonConns('responder', k));
    await ini.loadConns(charonConns('initiator', k));
    const pi = ini.proc?.pid as number;
    const pr = res.proc?.pid as number;
    const drops0 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const cpu0 = [procCpuS(pi), procCpuS(pr)];
    const rss0 = [procRss(pi), procRss(pr)];
    const t0 = performance.now();
    const deadline = t0 + o.deadlineS * 1000;
    const answers = await Promise.all(
      Array.from({ length: k }, (_, i) =>
        vi.request('initiate', { child: 'c', ike: `r${i}`, timeout: '-1', 'init-limits': 'no' }),
      ),
    );
    const refused = answers.filter((m) => m.success !== 'yes');
    // Both CPU figures are read when the LAST side installed its K-th CHILD_SA.
    const [iOk, rOk] = await Promise.all([ei.waitUp(k, deadline), er.waitUp(k, deadline)]);
    const wallS = (performance.now() - t0) / 1000;
    const cpu1 = [procCpuS(pi), procCpuS(pr)];
    const rss1 = [procRss(pi), procRss(pr)];
    const drops1 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const installed = Math.min(await countInstalled(ini), await countInstalled(res));
    const side = (i: 0 | 1): SideFigures => ({
      impl: 'charon',
      role: i === 0 ? 'initiator' : 'responder',
      cpuS: (cpu1[i] as number) - (cpu0[i] as number),
      rssDelta: (rss1[i] as number) - (rss0[i] as number),
      established: i === 0 ? ei.up : er.up,
    });
    const ok = iOk && rOk && refused.length === 0 && installed >= k;
    return finishRun({
      scenario: 'charon',
      k,
      run: runNo,
      ok,
      ...(ok
        ? {}
        : {
            note: `children up ${ei.up}/${er.up} (down ${ei.down}/${er.down}) refused=${refused.length} ${JSON.stringify(refused[0] ?? {})} installed=${installed} ike=${JSON.stringify(await Promise.all([vi.ikeSas(), vr.ikeSas()]))}`,
          }),
      wallS,
      sides: [side(0), side(1)],
      udpRcvbufErrors: drift(drops0, drops1),
      childSasInstalled: installed,
    });
  } finally {
    for (const c of [vi, vr, ei, er]) c.close();
    await ini.stop();
    await res.stop();
    await a.destroy();
    await b.destroy();
  }
}

async function runMixed(lab: Lab, k: number, runNo: number, o: HandshakeBenchOptions): Promise<RunResult> {
  const { a, b } = await pair(lab, `x${k}r${runNo}`, k);
  const res = await Charon.start(b, `v1mres-k${k}-r${runNo}`, CHARON_OPTS);
  const vr = await ViciClient.open(res.viciUri);
  const er = await ViciChildCounter.open(res.viciUri);
  const init = forkPeer(o, `v1-mixed-init-k${k}-r${runNo}`);
  try {
    await res.loadConns(charonConns('responder', k));
    const iReady = waitMsg<{ mem: MemSample }>(init, 'ready', 20_000);
    init.send(setupMsg('initiator', k, a, o.deadlineS));
    const i0 = await iReady;
    const pr = res.proc?.pid as number;
    const drops0 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const cpu0 = procCpuS(pr);
    const rss0 = procRss(pr);
    const iDoneP = waitMsg<V1Done>(init, 'done', (o.deadlineS + 20) * 1000);
    const t0 = performance.now();
    init.send({ type: 'start' });
    const [iDone, charonDone] = await Promise.all([iDoneP, er.waitUp(k, t0 + o.deadlineS * 1000)]);
    const wallS = (performance.now() - t0) / 1000;
    const cpu1 = procCpuS(pr);
    const rss1 = procRss(pr);
    const drops1 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const iStatsP = waitMsg<{ mem: MemSample }>(init, 'stats', 20_000);
    init.send({ type: 'stats' });
    const i1 = await iStatsP;
    const installed = await countInstalled(res);
    const ok = !iDone.timedOut && charonDone && iDone.established >= k && installed >= k;
    return finishRun({
      scenario: 'mixed',
      k,
      run: runNo,
      ok,
      ...(ok
        ? {}
        : {
            note: `coati ${JSON.stringify(iDone)}; charon children up ${er.up} down ${er.down} ike ${JSON.stringify(await vr.ikeSas())} installed=${installed}`,
          }),
      wallS,
      sides: [
        {
          impl: 'coati',
          role: 'initiator',
          cpuS: (iDone.cpuUserUs + iDone.cpuSystemUs) / 1e6,
          rssDelta: i1.mem.rss - i0.mem.rss,
          heapDelta: i1.mem.heapUsed + i1.mem.external - (i0.mem.heapUsed + i0.mem.external),
          established: iDone.established,
          retransmits: iDone.retransmits,
        },
        { impl: 'charon', role: 'responder', cpuS: cpu1 - cpu0, rssDelta: rss1 - rss0, established: er.up },
      ],
      udpRcvbufErrors: drift(drops0, drops1),
      childSasInstalled: installed,
    });
  } finally {
    vr.close();
    er.close();
    await stopPeer(init);
    await res.stop();
    await a.destroy();
    await b.destroy();
  }
}

// ---- report -----------------------------------------------------------------------

function printReport(
  summaries: Summary[],
  rs: ReturnType<typeof ratios>,
  ceiling: { perSecond: number; rounds: number[]; wallRounds: number[] },
): string {
  const lines: string[] = [];
  lines.push(
    `crypto-only ceiling (both peers' crypto of one Main + Quick Mode, one core): ${f0(ceiling.perSecond)} handshakes/CPU-s ` +
      `(rounds ${ceiling.rounds.map(f0).join(', ')}; per wall-s ${ceiling.wallRounds.map(f0).join(', ')})`,
    '',
    `${'scenario'.padEnd(16)}${'K'.padStart(6)} ${'ok'.padStart(4)} ${'hs/s wall'.padStart(10)} ${'hs/CPU-s'.padStart(9)} ` +
      `${'CPU µs/hs I'.padStart(12)} ${'CPU µs/hs R'.padStart(12)} ${'RSS KB/SA I'.padStart(12)} ${'RSS KB/SA R'.padStart(12)} ` +
      `${'heap KB/SA I'.padStart(13)} ${'heap KB/SA R'.padStart(13)} ${'rcvbuf drops'.padStart(13)} ${'retx'.padStart(5)}`,
  );
  for (const s of summaries) {
    lines.push(
      `${NAMES[s.scenario].padEnd(16)}${String(s.k).padStart(6)} ${(s.ok ? 'yes' : 'NO').padStart(4)} ${f0(s.perSecondWall).padStart(10)} ` +
        `${f0(s.perCpuSecond).padStart(9)} ${f0(s.initiatorCpuUs).padStart(12)} ${f0(s.responderCpuUs).padStart(12)} ` +
        `${kb(s.initiatorRssPerSa).padStart(12)} ${kb(s.responderRssPerSa).padStart(12)} ` +
        `${kb(s.initiatorHeapPerSa ?? Number.NaN).padStart(13)} ${kb(s.responderHeapPerSa ?? Number.NaN).padStart(13)} ` +
        `${String(s.udpRcvbufErrors).padStart(13)} ${String(s.retransmits).padStart(5)}`,
    );
  }
  lines.push('');
  for (const r of rs) {
    const parts = [`K=${r.k}:`];
    if (r.coatiOverCharonPerCpuSecond !== undefined)
      parts.push(
        `coati/charon per CPU-s ${f2(r.coatiOverCharonPerCpuSecond)};` +
          ` initiator ${f2(r.coatiInitiatorOverCharonInitiator ?? Number.NaN)}, responder ${f2(r.coatiResponderOverCharonResponder ?? Number.NaN)} (charon CPU/hs ÷ coati's);`,
      );
    if (r.coatiOverCeiling !== undefined) parts.push(`coati/crypto-ceiling ${f2(r.coatiOverCeiling)}`);
    lines.push(parts.join(' '));
  }
  return lines.join('\n');
}

// ---- main -------------------------------------------------------------------------

export async function handshakeV1Bench(o: HandshakeBenchOptions): Promise<{ file: string; report: string }> {
  if (process.getuid?.() !== 0) throw new Error('bench/handshake-v1 needs root (network namespaces)');
  const started = new Date();
  console.log(`IKEv1 handshake bench: K=${o.ks.join(',')} runs=${o.runs} scenarios=${o.scenarios.join(',')}`);
  const ceiling = v1CryptoCeiling(o.seconds);
  console.log(`crypto-only ceiling: ${f0(ceiling.perSecond)} Main+Quick Mode handshakes per CPU-second (both peers, one core)`);
  const lab = await Lab.create({ label: 'bench-hs1' });
  const results: RunResult[] = [];
  const fns: Record<Scenario, typeof runCoati> = { coati: runCoati, charon: runCharon, mixed: runMixed };
  try {
    for (const k of o.ks) {
      for (let runNo = 0; runNo < o.runs; runNo++) {
        for (const sc of o.scenarios) {
          let r: RunResult;
          try {
            r = await fns[sc](lab, k, runNo, o);
          } catch (err) {
            console.log(`  ${NAMES[sc]} K=${k}: FAILED ${(err as Error).message.split('\n').slice(0, 6).join(' | ')}`);
            continue;
          }
          results.push(r);
          console.log(
            `  ${NAMES[sc].padEnd(15)} K=${String(k).padEnd(5)} ${r.ok ? 'ok' : 'INCOMPLETE'} wall ${f2(r.wallS)} s, ` +
              `${f0(r.perSecondWall)}/s wall, ${f0(r.perCpuSecond)} per CPU-s` +
              (r.note ? `\n    ${r.note.slice(0, 600)}` : ''),
          );
        }
      }
    }
  } finally {
    await lab.destroy().catch((e: Error) => console.error(e.message));
  }
  const summaries = summarize(results);
  const rs = ratios(summaries, ceiling.perSecond).map(
    ({ targetCharonMet: _a, targetCeilingMet: _b, ...r }) => r as ReturnType<typeof ratios>[number],
  );
  const report = printReport(summaries, rs, ceiling);
  console.log(`\n${report}`);
  const charonVersion = (
    await run(['swanctl', '--version'], { allowFail: true }).catch(() => undefined)
  )?.stdout.trim();
  const stamp = started.toISOString().slice(0, 16).replace(':', '');
  const file = o.out ?? join(HERE, '..', '..', 'bench', 'results', `handshake-v1-${stamp}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        started: started.toISOString(),
        node: process.version,
        openssl: process.versions.openssl,
        charon: charonVersion,
        cpus: cpus().map((c) => c.model)[0],
        ncpu: cpus().length,
        options: { ...o },
        suite: V1_SUITE,
        cryptoCeiling: ceiling,
        summaries,
        ratios: rs,
        runs: results,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nwrote ${file}`);
  return { file, report };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const o = parseArgs(argv);
  // Main Mode with MODP-2048 costs several times an IKEv2 X25519 handshake: smaller default K.
  if (!argv.includes('--k')) o.ks = [50, 200];
  handshakeV1Bench(o).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
