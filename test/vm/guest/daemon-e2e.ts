/**
 * Runs INSIDE the test VM (node from the initramfs, this file from the 9p share
 * as dist/test/vm/guest/daemon-e2e.js): two real `coatid` daemons with the xfrm
 * kernel backend, one in each of the network namespaces "ca" and "cb" joined
 * by a veth, negotiate IKEv2 (PSK, AES-GCM) and install ESP SAs and policies
 * in the Debian kernel; traffic then flows through ESP.
 *
 *   ca: eth 192.0.2.1/24, protected subnet address 10.1.0.1 (on lo)
 *   cb: eth 192.0.2.2/24, protected subnet address 10.2.0.1 (on lo)
 *
 * Scenarios (in this order, one process):
 *   transport   host-to-host transport mode (the mesh default): ping, counters, SPIs
 *   tunnel      10.1.0.0/24 <-> 10.2.0.0/24 tunnel mode: ping, counters, SPIs
 *   sigkill     UDP stream (every 20 ms) through the tunnel; SIGKILL cb's daemon,
 *               restart it 3 s later; outage and loss measured; one IKE SA and one
 *               Child SA pair per side afterwards, stale kernel SAs purged
 *   hardreboot  the same, but cb's kernel SAs and policies are flushed too
 *
 * One line per check on stdout: `RESULT {"name":...,"ok":...,"detail":...}`;
 * exit status 0 only if every check passed. test/vm/daemon.test.ts asserts each.
 * Daemon logs go to .cache/vm/daemon-logs/ on the share (the console is slow).
 *
 *   node dist/test/vm/guest/daemon-e2e.js [--only NAME] [--pkg-tar daemon-pkg.tar]
 *
 * Shared pieces (topology, daemons, status, kernel SAs, streams) are in pair-lib.ts.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  arg,
  CACHE,
  failureCount,
  type KSa,
  killDaemon,
  PKG,
  crossCheck as pairCrossCheck,
  pairNodes,
  pairTopology,
  peerOf,
  ping,
  report,
  running,
  Stream as SeqStream,
  sh,
  sleep,
  stagePackage,
  startDaemon as start,
  status,
  waitSettled as waitPair,
  writeConfig as writePair,
  xfrmPolicyCount,
  xfrmStates,
} from './pair-lib.js';

const LOGS = join(CACHE, 'daemon-logs');
const WORK = '/tmp/coati-daemon-e2e';
const only = arg('--only');

const [A, B] = pairNodes(WORK);
const NODES = [A, B];

function writeConfig(n: typeof A, mode: 'transport' | 'tunnel'): void {
  writePair(n, {
    version: 2,
    ikeProposals: 'aes256gcm16-prfsha256-x25519',
    espProposals: 'aes256gcm16-x25519',
    start: n === B ? 'now' : 'none',
    dpdDelay: '1s',
    dpdTimeout: '2s',
    dpdAction: 'restart',
    restartBackoffMax: '1s',
    retransmitBase: '500ms',
    mode,
  });
}

const startDaemon = (n: typeof A, tag: string) => start(n, tag, LOGS);
const waitSettled = (ms: number) => waitPair(A, B, ms);
const GCM = { label: 'rfc4106(gcm(aes))', ok: (k: KSa) => k.aead.startsWith('rfc4106(gcm(aes))') };
const crossCheck = (mode: 'transport' | 'tunnel') => pairCrossCheck(A, B, mode, GCM);

async function stopAll(): Promise<void> {
  await Promise.all(NODES.map((n) => killDaemon(n, 'SIGTERM')));
  await sh('for ns in ca cb; do ip -n $ns xfrm state flush; ip -n $ns xfrm policy flush; done');
}

async function dataPlane(mode: 'transport' | 'tunnel'): Promise<void> {
  const name = `${mode} mode`;
  if (only && !name.includes(only) && only !== mode) return;
  const t0 = Date.now();
  try {
    for (const n of NODES) writeConfig(n, mode);
    for (const n of NODES) startDaemon(n, mode);
    const upMs = await waitSettled(60_000);
    const [src, dst] = mode === 'tunnel' ? [A.inner, B.inner] : [A.addr, B.addr];
    const replies = await ping(src, dst, 5);
    const check = await crossCheck(mode);
    const kernel = check.kernel as { ca: KSa[]; cb: KSa[] };
    const counted = [...kernel.ca, ...kernel.cb].every((s) => s.packets >= 5 && s.bytes > 0);
    const policies = { ca: await xfrmPolicyCount('ca'), cb: await xfrmPolicyCount('cb') };
    report(name, check.ok === true && replies === 5 && counted, {
      ...check,
      upMs,
      replies,
      everySaCounted: counted,
      policies,
      ms: Date.now() - t0,
    });
  } catch (err) {
    report(name, false, { error: String((err as Error).stack ?? err), ms: Date.now() - t0 });
  }
}

/** A sequence-numbered UDP stream from 10.1.0.1 (ca) to 10.2.0.1 (cb), one datagram every 20 ms. */
const newStream = () => new SeqStream('ca->cb', 'ca', A.inner, 'cb', B.inner, 7002, 20);

async function restartScenario(kind: 'sigkill' | 'hardreboot'): Promise<void> {
  const name = kind === 'sigkill' ? 'SIGKILL + restart after 3 s' : 'hard reboot (kill + flush) + restart after 3 s';
  if (only && !name.includes(only) && only !== kind) return;
  const t0 = Date.now();
  let stream: SeqStream | undefined;
  try {
    // Continue with the tunnel scenario's daemons (every daemon start costs 5-20 s under TCG).
    if (!NODES.every(running)) {
      await stopAll();
      for (const n of NODES) writeConfig(n, 'tunnel');
      for (const n of NODES) startDaemon(n, kind);
    }
    await waitSettled(60_000);
    const before = await crossCheck('tunnel');
    const oldSpis = [...(before.kernel as { ca: KSa[]; cb: KSa[] }).ca.map((s) => s.spi)];
    stream = newStream();
    stream.start();
    await sleep(1500);
    const killAt = Date.now();
    // What ca's daemon reports, every 250 ms, whenever it changes.
    const timeline: string[] = [];
    let sampling = true;
    const sampler = (async () => {
      let last = '';
      while (sampling) {
        const p = peerOf(await status(A), 'cb');
        const c = p?.children.map((x) => `${x.spiIn}/${x.spiOut}:${x.state}`).join(',');
        const [pols, sas] = await Promise.all([
          sh(`ip -n ca xfrm policy | grep -E '^src|dir' | paste -d ' ' - - | sed 's/  */ /g'`),
          xfrmStates('ca'),
        ]);
        const pol = pols
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => l.replace(/ priority \d+| ptype main/g, ''))
          .join('; ');
        const now = `${p?.state} ike=${p?.ike?.spiI ?? '-'} ${c ?? ''} | ca kernel: ${pol} policies, SAs ${sas.map((x) => x.spi).join(',')}`;
        if (now !== last) timeline.push(`+${Date.now() - killAt}ms ${now}`);
        last = now;
        await sleep(200);
      }
    })();
    await killDaemon(B, 'SIGKILL');
    if (kind === 'hardreboot') await sh('ip -n cb xfrm state flush; ip -n cb xfrm policy flush');
    const kernelAfterKill = { ca: (await xfrmStates('ca')).length, cb: (await xfrmStates('cb')).length };
    await sleep(Math.max(0, killAt + 3000 - Date.now()));
    const restartAt = Date.now();
    startDaemon(B, kind);
    const upMs = await waitSettled(60_000);
    // Let stale SAs be reaped and the stream run on the new SAs for a while.
    let check = await crossCheck('tunnel');
    for (let i = 0; i < 20 && check.ok !== true; i++) {
      await sleep(500);
      check = await crossCheck('tunnel');
    }
    await sleep(1500);
    sampling = false;
    await sampler;
    const res = await stream.stop();
    stream = undefined;
    // The stream runs ca -> cb only: a ping covers the other direction of the new SAs.
    const replies = await ping(A.inner, B.inner, 3);
    check = await crossCheck('tunnel');
    const kernel = check.kernel as { ca: KSa[]; cb: KSa[] };
    const newSpis = kernel.ca.map((s) => s.spi);
    const replaced = newSpis.every((s) => !oldSpis.includes(s));
    const newCounted = [...kernel.ca, ...kernel.cb].every((s) => s.packets > 0);
    const policies = { ca: await xfrmPolicyCount('ca'), cb: await xfrmPolicyCount('cb') };
    report(name, check.ok === true && replaced && newCounted && res.received > 0 && replies === 3, {
      ...check,
      replies,
      stream: res,
      outageMs: res.longestGapMs,
      lostPackets: res.lost,
      upAfterRestartMs: upMs,
      killToRestartMs: restartAt - killAt,
      kernelSaCountsAfterKill: kernelAfterKill,
      oldSpis,
      replaced,
      newSasCounted: newCounted,
      policies,
      timeline,
      ms: Date.now() - t0,
    });
  } catch (err) {
    report(name, false, {
      error: String((err as Error).stack ?? err),
      stream: await stream?.stop(),
      kernel: { ca: await xfrmStates('ca'), cb: await xfrmStates('cb') },
      ms: Date.now() - t0,
    });
  }
}

async function main(): Promise<void> {
  try {
    rmSync(LOGS, { recursive: true, force: true });
    const pkgTar = arg('--pkg-tar');
    const stageMs = await stagePackage(pkgTar?.startsWith('--') ? undefined : pkgTar);
    await pairTopology();
    process.stdout.write(`staged coatid to ${PKG} in ${stageMs} ms\n`);
  } catch (err) {
    report('setup', false, { error: String(err) });
    process.exit(1);
  }
  await dataPlane('transport');
  await stopAll();
  await dataPlane('tunnel');
  await restartScenario('sigkill');
  await restartScenario('hardreboot');
  await stopAll();
  await sh('ip netns del ca; ip netns del cb').catch(() => '');
  process.exit(failureCount() ? 1 : 0);
}

void main();
