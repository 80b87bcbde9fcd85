/**
 * Outage after the postmortem's failures, coati next to strongSwan charon, same run:
 *
 *   kill9   the peer daemon is SIGKILLed and restarted 3 s later
 *   reboot  the same, with the daemon's state directory deleted (charon keeps no state: same as kill9)
 *   part    an 8 s partition (longer than DPD 2 s + 3 s), then healed
 *   both    both daemons SIGKILLed and restarted at the same moment
 *
 * Two namespaces A (198.51.100.1) and B (198.51.100.2) from the harness's pairTopology.
 * coati: two coatid processes (memory kernel backend: the host kernel has no ESP), so the
 * figure is SA re-establishment: the moment both daemons have installed a Child SA pair
 * with crosswise SPIs, from their own JSON log timestamps. charon: kernel-libipsec (real
 * userspace ESP), a UDP stream every 10 ms from A's protected subnet to B's; the outage is
 * the longest gap in arrivals. Both: DPD 2 s / timeout 3 s, dpd_action restart, IKE
 * retransmits from 500 ms x1.8, 3 tries; coati restart_backoff_max 2 s; charon start_action
 * start (the restarted side initiates itself, like coati's start = "now").
 *
 *   npx tsc -p . && node dist/bench/outage.js [--runs 3] [--only coati|charon] [--out FILE]
 */
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Charon } from '../test/harness/charon.js';
import { partition } from '../test/harness/faults.js';
import { Lab, type Netns, type Proc, sleep, waitFor } from '../test/harness/netns.js';
import type { ConnSpec } from '../test/harness/swanctl-conf.js';
import { type PairTopology, pairTopology } from '../test/harness/topology.js';
import { UdpStream } from '../test/harness/traffic.js';
import { childFlowAt, readLogLines } from '../test/helpers/mesh-procs.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..', '..');
const COATID = join(ROOT, 'dist', 'src', 'daemon', 'coatid.js');
const SCENARIOS = ['kill9', 'reboot', 'part', 'both'] as const;
type Scenario = (typeof SCENARIOS)[number];
const PSK = 'coati-bench-outage-secret-NOT-FOR-PRODUCTION';

interface Result {
  impl: 'coati' | 'charon';
  scenario: Scenario;
  /** coati: fault -> Child SA pair on both ends; charon: longest UDP gap. */
  outageMs: number;
  /** After the restarted daemon is up (kill9/reboot/both) or after the heal (part). */
  recoveryMs: number;
  ikeSas?: number;
}

// ---- coati ---------------------------------------------------------------------

interface CoatiNode {
  name: string;
  ns: Netns;
  addr: string;
  dir: string;
  log: string;
  offset: number;
  proc?: Proc;
}

function coatiConfig(n: CoatiNode, peer: CoatiNode): void {
  mkdirSync(join(n.dir, 'peers.d'), { recursive: true });
  mkdirSync(join(n.dir, 'secrets'), { recursive: true, mode: 0o700 });
  writeFileSync(join(n.dir, 'secrets', 'mesh.psk'), `${PSK}\n`, { mode: 0o600 });
  writeFileSync(
    join(n.dir, 'coati.conf'),
    `[daemon]
state_dir = "${join(n.dir, 'state')}"
socket = "${join(n.dir, 'coati.sock')}"
listen = ["${n.addr}"]
peers_dir = "peers.d"
[log]
default = "debug"
format = "json"
[kernel]
backend = "memory"
[defaults]
local_address = "${n.addr}"
local_id = "fqdn:${n.name}.bench"
psk_file = "secrets/mesh.psk"
ike_proposals = "aes256gcm16-prfsha256-x25519"
esp_proposals = "aes256gcm16-x25519"
start = "now"
dpd_delay = "2s"
dpd_timeout = "3s"
dpd_action = "restart"
restart_backoff_max = "2s"
retransmit_base = "500ms"
retransmit_tries = 3
`,
  );
  writeFileSync(
    join(n.dir, 'peers.d', `${peer.name}.toml`),
    `address = "${peer.addr}"\nremote_id = "fqdn:${peer.name}.bench"\n`,
  );
}

function coatiStart(n: CoatiNode): number {
  n.offset = existsSync(n.log) ? statSync(n.log).size : 0;
  n.proc = n.ns.spawn([process.execPath, COATID, '--config', join(n.dir, 'coati.conf')], { logFile: n.log });
  return Date.now();
}

const lines = (n: CoatiNode) => readLogLines(n.log, n.offset);
const startedAt = (n: CoatiNode) =>
  waitFor(`${n.name} started`, () => {
    const l = lines(n).find((x) => /^coatid \S+ started$/.test(x.msg));
    return l ? Date.parse(l.ts) : undefined;
  });
const flow = (a: CoatiNode, b: CoatiNode, after: number) =>
  waitFor('Child SA pair on both coati daemons', () => childFlowAt(lines(a), b.name, lines(b), a.name, after), {
    timeoutMs: 30_000,
    intervalMs: 20,
  });
const liveIke = (n: CoatiNode) => {
  const st = new Map<string, string>();
  for (const l of lines(n)) {
    const m = /^IKE SA \w+ -> (\w+)$/.exec(l.msg);
    if (m && typeof l.sa === 'string') st.set(l.sa.split('/')[0] ?? '', m[1] as string);
  }
  return [...st.values()].filter((s) => s === 'established' || s === 'rekeying').length;
};

async function coatiRun(t: PairTopology, lab: Lab, scenario: Scenario): Promise<Result> {
  const mk = (name: string, ns: Netns, addr: string): CoatiNode => {
    const dir = lab.subdir(`coati-${scenario}-${name}-${Date.now()}`);
    return { name, ns, addr, dir, log: join(dir, 'coatid.log'), offset: 0 };
  };
  const a = mk('a', t.a, t.aAddr);
  const b = mk('b', t.b, t.bAddr);
  coatiConfig(a, b);
  coatiConfig(b, a);
  const t0 = coatiStart(a);
  coatiStart(b);
  await flow(a, b, t0);
  await sleep(3500); // past the crossing-streams duplicate grace
  let faultAt: number;
  let refAt: number;
  let after: number;
  try {
    if (scenario === 'part') {
      const f = await partition(t.b, { peer: t.aAddr });
      faultAt = Date.now();
      await sleep(8000);
      await f.heal();
      refAt = Date.now();
      after = refAt;
    } else {
      const victims = scenario === 'both' ? [a, b] : [b];
      faultAt = Date.now();
      for (const v of victims) v.proc?.kill('SIGKILL');
      for (const v of victims) await v.proc?.wait(5000);
      if (scenario === 'reboot') rmSync(join(b.dir, 'state'), { recursive: true, force: true });
      if (scenario !== 'both') await sleep(3000 - (Date.now() - faultAt));
      after = Date.now();
      for (const v of victims) coatiStart(v);
      refAt = Math.max(...(await Promise.all(victims.map(startedAt))));
    }
    const flowAt = await flow(a, b, after);
    await sleep(3500);
    return {
      impl: 'coati',
      scenario,
      outageMs: flowAt - faultAt,
      recoveryMs: flowAt - refAt,
      ikeSas: Math.max(liveIke(a), liveIke(b)),
    };
  } finally {
    for (const n of [a, b]) {
      n.proc?.kill('SIGKILL');
      await n.proc?.wait(5000).catch(() => {});
    }
  }
}

// ---- charon ----------------------------------------------------------------------

function conn(t: PairTopology, side: 'a' | 'b'): ConnSpec {
  const [l, r] = side === 'a' ? [t.aAddr, t.bAddr] : [t.bAddr, t.aAddr];
  const [ln, rn] = side === 'a' ? [t.netA, t.netB] : [t.netB, t.netA];
  return {
    name: 'bench',
    version: 2,
    localAddrs: [l],
    remoteAddrs: [r],
    localId: `${side}.bench`,
    remoteId: `${side === 'a' ? 'b' : 'a'}.bench`,
    auth: 'psk',
    psk: PSK,
    proposals: ['aes256gcm16-prfsha256-x25519'],
    mobike: false,
    dpdDelay: '2s',
    dpdTimeout: '3s',
    children: [
      {
        name: 'net',
        localTs: [ln],
        remoteTs: [rn],
        espProposals: ['aes256gcm16'],
        mode: 'tunnel',
        startAction: 'start',
        dpdAction: 'restart',
      },
    ],
  };
}

async function charonRun(t: PairTopology, scenario: Scenario): Promise<Result> {
  const opts = { retransmit: { timeout: 0.5, base: 1.8, tries: 3 }, logLevels: { ike: 1 } };
  const ca = await Charon.start(t.a, `a-${scenario}`, opts);
  const cb = await Charon.start(t.b, `b-${scenario}`, opts);
  try {
    await ca.loadConns([conn(t, 'a')]);
    await cb.loadConns([conn(t, 'b')]);
    await ca.waitChild('bench', 'net', 15_000);
    const stream = await UdpStream.start({
      from: t.lanA.host,
      to: t.lanB.host,
      dst: t.lanB.hostAddr,
      intervalMs: 10,
    });
    await stream.waitFlowing(20);
    await sleep(3500);
    let refAt: number;
    const faultAt = Date.now();
    if (scenario === 'part') {
      const f = await partition(t.b, { peer: t.aAddr });
      await sleep(8000);
      await f.heal();
      refAt = Date.now();
    } else {
      const victims = scenario === 'both' ? [ca, cb] : [cb];
      for (const v of victims) v.kill('SIGKILL');
      for (const v of victims) await v.proc?.wait(5000);
      if (scenario !== 'both') await sleep(3000 - (Date.now() - faultAt));
      await Promise.all(victims.map((v) => v.restart()));
      refAt = Date.now();
    }
    // Wait for the stream to come back (or give up after 60 s: the outage is then >= that).
    const before = stream.receivedCount();
    await waitFor('UDP stream flowing again', () => stream.receivedCount() > before + 20, {
      timeoutMs: 60_000,
      intervalMs: 50,
    }).catch(() => {});
    await sleep(3500);
    const stats = await stream.stop();
    const resumedAt = stats.gapStartMs + stats.longestGapMs;
    const sas = (await ca.listSas()).filter((s) => s.state === 'ESTABLISHED').length;
    return {
      impl: 'charon',
      scenario,
      outageMs: Math.round(stats.longestGapMs),
      recoveryMs: Math.round(resumedAt - refAt),
      ikeSas: sas,
    };
  } finally {
    await ca.stop().catch(() => {});
    await cb.stop().catch(() => {});
  }
}

// ---- main ----------------------------------------------------------------------

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length ? (s[Math.floor((s.length - 1) / 2)] as number) : Number.NaN;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '3' }, only: { type: 'string' }, out: { type: 'string' } },
  });
  const runs = Number(values.runs);
  const impls = values.only ? [values.only] : ['coati', 'charon'];
  const lab = await Lab.create({ label: 'bench-outage' });
  const results: Result[] = [];
  try {
    const t = await pairTopology(lab);
    for (const scenario of SCENARIOS)
      for (let i = 0; i < runs; i++)
        for (const impl of impls) {
          const r = impl === 'coati' ? await coatiRun(t, lab, scenario) : await charonRun(t, scenario);
          results.push(r);
          process.stdout.write(
            `${impl.padEnd(6)} ${scenario.padEnd(6)} run ${i + 1}: outage ${r.outageMs} ms, recovery ${r.recoveryMs} ms, IKE SAs ${r.ikeSas}\n`,
          );
        }
  } finally {
    await lab.destroy();
  }
  const what: Record<Scenario, string> = {
    kill9: 'kill -9, restart after 3 s',
    reboot: 'hard reboot (state wiped), 3 s',
    part: 'partition 8 s, healed',
    both: 'both restarted at once',
  };
  const rows = SCENARIOS.map((s) => {
    const of = (impl: string, k: 'outageMs' | 'recoveryMs') =>
      median(results.filter((r) => r.impl === impl && r.scenario === s).map((r) => r[k]));
    const maxSas = (impl: string) =>
      Math.max(...results.filter((r) => r.impl === impl && r.scenario === s).map((r) => r.ikeSas ?? 0));
    return {
      scenario: s,
      what: what[s],
      coati: { outageMs: of('coati', 'outageMs'), recoveryMs: of('coati', 'recoveryMs'), maxIkeSas: maxSas('coati') },
      charon: {
        outageMs: of('charon', 'outageMs'),
        recoveryMs: of('charon', 'recoveryMs'),
        maxIkeSas: maxSas('charon'),
      },
    };
  });
  const table = [
    `\noutage, medians of ${runs} run(s) (recovery = after the restarted daemon is up / after the heal)`,
    '| scenario | coati SA re-established: outage / recovery | charon ESP gap: outage / recovery | IKE SAs after (coati / charon) |',
    '|---|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.what} | ${r.coati.outageMs} / ${r.coati.recoveryMs} ms | ${r.charon.outageMs} / ${r.charon.recoveryMs} ms | ${r.coati.maxIkeSas} / ${r.charon.maxIkeSas} |`,
    ),
  ].join('\n');
  process.stdout.write(`${table}\n`);
  const stamp = new Date().toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', 'T');
  const out = values.out ?? join(ROOT, 'bench', 'results', `outage-${stamp}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, runs, results, medians: rows }, null, 2)}\n`,
  );
  process.stdout.write(`results: ${out}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
