/**
 * Runs INSIDE the test VM (see test/vm/README.md, "IKEv1 tests"): two real
 * `coatid` daemons with the xfrm backend and `version = 1` peers negotiate
 * IKEv1 (PSK, Main Mode + Quick Mode) and install ESP SAs and policies in the
 * Debian kernel; ping and two sequence-numbered UDP streams go through them.
 *
 *   ca: eth0 192.0.2.1/24, protected subnet address 10.1.0.1 (on lo)
 *   cb: eth0 192.0.2.2/24, protected subnet address 10.2.0.1 (on lo)
 *   tunnel mode 10.1.0.0/24 <-> 10.2.0.0/24; cb initiates (`start = "now"`).
 *   Main Mode aes128-sha256-modp2048, Quick Mode ESP aes128-sha256 with PFS
 *   (modp2048), child_lifetime 36 s, rekey_margin 14 s (cb rekeys Quick Mode
 *   ~22 s after it was set up; the responder's margin is half), DPD 2 s/4 s,
 *   dpd_action = "restart".
 *
 * Scenarios (one process, in this order):
 *   establish  time to the first installed pair; 5 pings; streams ca->cb and
 *              cb->ca (20 ms each); SPIs/algorithms cross-checked between both
 *              daemons' `coatictl status --json` and both kernels; every kernel
 *              SA counts the traffic; policies `level required`.
 *   rekey      the streams keep running until cb's Quick Mode rekey has
 *              replaced the pair and the old SAs are gone from both kernels:
 *              no datagram lost (make-before-break), new SPIs, new SAs count.
 *              Captures on both endpoints over both phases: ESP only, no clear
 *              text sent (decapsulated packets show up as received).
 *   restart    fresh daemons (1 h lifetime), then SIGKILL of cb during both
 *              streams, new coatid 3 s later (IKEv1 has no checkpoint: it
 *              negotiates afresh, with INITIAL-CONTACT):
 *              outage and loss measured, clear text counted on the wire, one
 *              ISAKMP SA and one pair per side afterwards, stale SAs purged.
 *   nat        (needs nft from the host) ca behind a masquerading NAT namespace:
 *              NAT-D detects it, IKE floats to 4500, ESP-in-UDP in the real
 *              kernel (encap espinudp), ESP aes128gcm16 without PFS; ping and a
 *              stream pass; only UDP 4500 (no ESP, no clear text) on cb's wire.
 *
 * One line per scenario on stdout: `RESULT {"name":...,"ok":...,"detail":...}`;
 * test/vm/ikev1.test.ts asserts them. Daemon logs (ms stamps) go to
 * .cache/vm/ikev1-logs/.
 *
 *   node dist/test/vm/guest/ikev1-e2e.js --pkg-tar ikev1-pkg.tar --tools-tar ikev1-tools.tar [--log debug]
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  arg,
  CACHE,
  Capture,
  crossCheck,
  type DaemonSettings,
  failureCount,
  type KSa,
  loadModules,
  mkNode,
  NFT,
  type Node,
  nft,
  pairNodes,
  pairStreams,
  pairTopology,
  peerOf,
  ping,
  report,
  reportFailure,
  type Stream,
  type StreamResult,
  sampleChanges,
  sh,
  sleep,
  stagePackage,
  startDaemon,
  status,
  stopAndFlush,
  stopDaemon,
  Taps,
  type Wire,
  waitSettled,
  writeConfig,
  xfrmStates,
} from './pair-lib.js';

const LOGS = join(CACHE, 'ikev1-logs');
const WORK = '/tmp/coati-ikev1-e2e';
const LOG_LEVEL = arg('--log') ?? 'info';
const INTERVAL_MS = 20;

const [A, B] = pairNodes(WORK);

const V1: Omit<DaemonSettings, 'start'> = {
  version: 1,
  ikeProposals: 'aes128-sha256-modp2048',
  espProposals: 'aes128-sha256-modp2048',
  pfs: true,
  mode: 'tunnel',
  dpdDelay: '2s',
  dpdTimeout: '4s',
  dpdAction: 'restart',
  restartBackoffMax: '2s',
  retransmitBase: '1s',
  childLifetime: '36s',
  rekeyMargin: '14s',
  rekeyJitter: '0s',
  log: LOG_LEVEL,
};

const CBC_SHA256 = {
  label: 'cbc(aes) 128-bit key + hmac(sha256) truncated to 128 bits',
  ok: (k: KSa) =>
    k.enc === 'cbc(aes)' && k.keyBits === 128 && k.auth === 'hmac(sha256)' && k.authTruncBits === 128 && k.aead === '',
};
const GCM = {
  label: 'rfc4106(gcm(aes)) with a 128-bit key (+ 32-bit salt)',
  ok: (k: KSa) => k.aead === 'rfc4106(gcm(aes))' && k.keyBits === 160,
};

/** Inbound SAs check replays (outbound ones have no window). */
function replayProblems(k: Record<string, KSa[]>, nodes: Node[]): string[] {
  return nodes.flatMap((n) =>
    (k[n.name] ?? [])
      .filter((s) => s.dst === n.addr && !(s.replayWindow >= 32))
      .map((s) => `${n.name} inbound SA ${s.spi} has replay window ${s.replayWindow}`),
  );
}

/** Both streams through the tunnel: ca -> cb and cb -> ca (both directions count as liveness). */
const streams = () => pairStreams(A, B, INTERVAL_MS);

async function stopStreams(ss: Stream[] | undefined): Promise<StreamResult[]> {
  return ss ? Promise.all(ss.map((s) => s.stop())) : [];
}

/** `ip -s xfrm policy`: the tunnel's policies and their template levels. */
async function policies(ns: string): Promise<{ count: number; tunnel: number; levels: string[]; text: string }> {
  const text = await sh(`ip -n ${ns} -s xfrm policy`);
  const blocks = text.split(/^(?=src )/m).filter((b) => b.startsWith('src '));
  const tunnel = blocks.filter((b) => /src 10\.\d\.0\.0\/24 dst 10\.\d\.0\.0\/24/.test(b));
  const levels = tunnel.flatMap((b) => [...b.matchAll(/level (\w+)/g)].map((m) => m[1] as string));
  return { count: blocks.length, tunnel: tunnel.length, levels, text };
}

const outSa = (k: KSa[], self: Node) => k.find((s) => s.dst !== self.addr);
const inSa = (k: KSa[], self: Node) => k.find((s) => s.dst === self.addr);

type V1Wire = Wire & { taps: Record<string, Wire> };

/**
 * The taps together: the first tap gives the IKE/ESP counts; `clear` sums
 * clear text sent on every tap (`-i any` on the two endpoints: the kernel
 * shows decapsulated packets as received, so only what a host *sends* in
 * clear text is a leak; the NAT's outer interface is a plain wire).
 */
async function stopTaps(t: Taps | undefined): Promise<V1Wire | string> {
  if (!t) return 'no capture tool';
  const taps = await t.stop();
  const first = Object.values(taps)[0] as Wire;
  const clear = Object.values(taps).reduce((n, w) => n + w.clear, 0);
  const clearSamples = Object.entries(taps).flatMap(([ns, w]) => w.clearSamples.map((x) => `${ns}: ${x}`));
  return { ...first, clear, clearSamples, taps };
}

const endpoints: [string, string][] = [
  ['cb', 'any'],
  ['ca', 'any'],
];

let capture: Taps | undefined;
let phaseStreams: Stream[] | undefined;
let pairUpAt = 0;

async function establish(): Promise<void> {
  const t0 = Date.now();
  try {
    capture = await Taps.start('ikev1-establish', endpoints);
    writeConfig(A, { ...V1, start: 'none' });
    writeConfig(B, { ...V1, start: 'now' });
    startDaemon(A, 'establish', LOGS);
    startDaemon(B, 'establish', LOGS);
    const upMs = await waitSettled(A, B, 90_000);
    pairUpAt = Date.now();
    const [sa, sb] = await Promise.all([status(A), status(B)]);
    // Main Mode + Quick Mode on the wire: from cb's daemon start to the ISAKMP SA, from there to the pair.
    const ike = peerOf(sb, 'ca')?.ike;
    const child = peerOf(sb, 'ca')?.children[0];
    const handshake = {
      daemonStartToSettledMs: upMs,
      cbUptimeAtIsakmpEstablishedMs: ike && sb ? Date.parse(ike.establishedAt) - Date.parse(sb.startedAt) : undefined,
      isakmpAlgorithms: ike?.algorithms,
      childAlgorithms: child?.algorithms,
    };
    const replies = await ping(A.inner, B.inner, 5);
    phaseStreams = streams();
    for (const s of phaseStreams) s.start();
    await sleep(3000);
    const check = await crossCheck(A, B, 'tunnel', CBC_SHA256);
    const k = check.kernel;
    const ka = k.ca ?? [];
    const kb = k.cb ?? [];
    // Each stream has sent >= 100 datagrams by now, plus the 5 pings both ways.
    const counted = [...ka, ...kb].every((s) => s.packets >= 100 + 5 && s.bytes > 0);
    const pol = { ca: await policies('ca'), cb: await policies('cb') };
    // in, out and fwd per side, each with an ESP template that is required.
    const required = [pol.ca, pol.cb].every(
      (p) => p.tunnel === 3 && p.levels.length === 3 && p.levels.every((l) => l === 'required'),
    );
    const problems = [...check.problems, ...replayProblems(check.kernel, [A, B])];
    if (replies !== 5) problems.push(`${replies} of 5 pings answered`);
    if (!counted) problems.push('a kernel SA counted fewer packets than the traffic sent through it');
    if (!required) problems.push('tunnel policies: expected in/out/fwd with level required on both sides');
    if (peerOf(sa, 'cb')?.version !== 1 || peerOf(sb, 'ca')?.version !== 1) problems.push('status does not say IKEv1');
    report('establish', problems.length === 0, {
      ...check,
      problems,
      handshake,
      upMs,
      replies,
      everySaCounted: counted,
      policies: { ca: { ...pol.ca, text: undefined }, cb: { ...pol.cb, text: undefined }, caText: pol.ca.text },
      ms: Date.now() - t0,
    });
  } catch (err) {
    await reportFailure('establish', t0, err);
  }
}

async function rekey(): Promise<void> {
  const t0 = Date.now();
  try {
    if (!phaseStreams) throw new Error('establish did not get as far as the streams');
    const before = await crossCheck(A, B, 'tunnel', CBC_SHA256);
    const oldSpis = new Set([...(before.kernel.ca ?? []), ...(before.kernel.cb ?? [])].map((s) => s.spi));
    // cb's soft lifetime: 36 s - 14 s after the pair was installed; allow a loaded TCG guest plenty.
    const deadline = Date.now() + 70_000;
    let rekeyedAt = 0;
    let check = before;
    for (;;) {
      if (Date.now() > deadline)
        throw new Error(`no Quick Mode rekey within ${Date.now() - pairUpAt} ms of the first pair`);
      const [ka, kb] = await Promise.all([xfrmStates('ca'), xfrmStates('cb')]);
      const all = [...ka, ...kb];
      if (!rekeyedAt && all.some((s) => !oldSpis.has(s.spi))) rekeyedAt = Date.now();
      if (all.length === 4 && all.every((s) => !oldSpis.has(s.spi))) {
        check = await crossCheck(A, B, 'tunnel', CBC_SHA256);
        if (check.ok) break;
      }
      await sleep(200);
    }
    const replacedAt = Date.now();
    // Let the new pair carry the streams for a while.
    await sleep(2500);
    const after = await crossCheck(A, B, 'tunnel', CBC_SHA256);
    const res = await stopStreams(phaseStreams);
    phaseStreams = undefined;
    const w = await stopTaps(capture);
    capture = undefined;
    const kernel = after.kernel;
    const newCounted = [...(kernel.ca ?? []), ...(kernel.cb ?? [])].every((s) => s.packets > 50);
    const problems = [...after.problems];
    for (const s of res) {
      if (s.lost > 0) problems.push(`${s.name}: ${s.lost} of ${s.sent} datagrams lost`);
      if (s.sent < 500) problems.push(`${s.name}: only ${s.sent} datagrams sent`);
    }
    if (!newCounted) problems.push('the new SAs did not carry the streams');
    if (typeof w === 'object') {
      if (w.clear > 0) problems.push(`${w.clear} clear-text packets on cb's wire`);
      const sent = res.reduce((n, s) => n + s.sent, 0);
      if (w.esp < sent + 10) problems.push(`only ${w.esp} ESP packets on the wire for ${sent} datagrams + 10 pings`);
    }
    report('rekey', problems.length === 0, {
      ...after,
      problems,
      streams: res,
      wire: w,
      oldSpis: [...oldSpis],
      rekeyAfterPairUpMs: rekeyedAt - pairUpAt,
      oldGoneAfterRekeyMs: replacedAt - rekeyedAt,
      ms: Date.now() - t0,
    });
  } catch (err) {
    await reportFailure('rekey', t0, err, { streams: phaseStreams });
    phaseStreams = undefined;
  }
}

async function restart(): Promise<void> {
  const t0 = Date.now();
  let ss: Stream[] | undefined;
  let cap: Taps | undefined;
  try {
    await stopTaps(capture).catch(() => undefined);
    capture = undefined;
    await stopStreams(phaseStreams);
    phaseStreams = undefined;
    // Fresh daemons without the short lifetimes: a Quick Mode rekey during the crash would blur what is measured.
    await stopAndFlush([A, B]);
    const long = { ...V1, childLifetime: '1h', rekeyMargin: '5m' };
    writeConfig(A, { ...long, start: 'none' });
    writeConfig(B, { ...long, start: 'now' });
    startDaemon(A, 'restart', LOGS);
    startDaemon(B, 'restart', LOGS);
    await waitSettled(A, B, 90_000);
    const before = await crossCheck(A, B, 'tunnel', CBC_SHA256);
    const oldSpis = [...(before.kernel.ca ?? [])].map((s) => s.spi);
    const oldIke = peerOf(await status(A), 'cb')?.ike;
    cap = await Taps.start('ikev1-restart', endpoints);
    ss = streams();
    for (const s of ss) s.start();
    await sleep(1500);
    const killAt = Date.now();
    const sampler = sampleChanges(killAt, async () => {
      const p = peerOf(await status(A), 'cb');
      const c = p?.children.map((x) => `${x.spiIn}/${x.spiOut}:${x.state}`).join(',');
      const [sasA, sasB] = await Promise.all([xfrmStates('ca'), xfrmStates('cb')]);
      return `ca: ${p?.state} isakmp=${p?.ike?.spiI ?? '-'} ${c ?? ''} | kernel ca ${sasA.map((x) => x.spi).join(',')} cb ${sasB.map((x) => x.spi).join(',')}`;
    });
    await stopDaemon(B, 'SIGKILL');
    await sleep(Math.max(0, killAt + 3000 - Date.now()));
    const restartAt = Date.now();
    startDaemon(B, 'restart', LOGS);
    const upMs = await waitSettled(A, B, 90_000);
    // Stale SAs (the killed daemon's) must go: wait for exactly one pair per namespace.
    let check = await crossCheck(A, B, 'tunnel', CBC_SHA256);
    const settleDeadline = Date.now() + 30_000;
    while (!check.ok && Date.now() < settleDeadline) {
      await sleep(500);
      check = await crossCheck(A, B, 'tunnel', CBC_SHA256);
    }
    const cleanMs = Date.now() - restartAt;
    await sleep(1500);
    const timeline = await sampler.stop();
    const res = await stopStreams(ss);
    ss = undefined;
    const w = await stopTaps(cap);
    cap = undefined;
    const replies = await ping(A.inner, B.inner, 3);
    check = await crossCheck(A, B, 'tunnel', CBC_SHA256);
    const kernel = check.kernel;
    const newSpis = (kernel.ca ?? []).map((s) => s.spi);
    const replaced = newSpis.every((s) => !oldSpis.includes(s));
    const newIke = peerOf(await status(A), 'cb')?.ike;
    const newCounted = [...(kernel.ca ?? []), ...(kernel.cb ?? [])].every((s) => s.packets > 0);
    const problems = [...check.problems];
    if (!replaced) problems.push('the old SPIs are still in use');
    if (!newCounted) problems.push('a new SA counted nothing');
    if (replies !== 3) problems.push(`${replies} of 3 pings answered`);
    if (newIke?.spiI === oldIke?.spiI) problems.push('same ISAKMP SA as before the crash');
    if (res.some((s) => s.received === 0)) problems.push('a stream received nothing');
    if (typeof w === 'object' && w.clear > 0) problems.push(`${w.clear} clear-text packets on cb's wire`);
    report('restart', problems.length === 0, {
      ...check,
      problems,
      replies,
      streams: res,
      wire: w,
      outageMs: Math.max(...res.map((s) => s.longestGapMs)),
      lost: res.map((s) => s.lost),
      settledAfterRestartMs: upMs,
      oneSaPerSideAfterRestartMs: cleanMs,
      killToRestartMs: restartAt - killAt,
      oldSpis,
      replaced,
      isakmp: { before: oldIke?.spiI, after: newIke?.spiI },
      timeline,
      ms: Date.now() - t0,
    });
  } catch (err) {
    await reportFailure('restart', t0, err, { streams: ss, taps: cap });
  }
}

// ---- NAT-T ---------------------------------------------------------------------

/**
 * ca (172.16.0.2, subnet 10.1.0.1) -- nat (172.16.0.1 | 192.0.2.1, masquerade) -- cb (192.0.2.2, 10.2.0.1).
 * The netfilter modules come from the full module tree on the 9p share (`loadModules`).
 */
async function natTopology(): Promise<void> {
  await loadModules(['nft_masq', 'nft_chain_nat']);
  await sh(`
set -e
for ns in ca cb nat; do ip netns del $ns 2>/dev/null || true; done
ip netns add ca; ip netns add cb; ip netns add nat
ip link add eth0 netns ca address 02:00:00:00:0d:0a type veth peer name eth0 netns nat address 02:00:00:00:0d:01
ip link add eth1 netns nat address 02:00:00:00:0d:02 type veth peer name eth0 netns cb address 02:00:00:00:0d:0b
ip -n ca -batch - <<END
link set lo up
addr add 172.16.0.2/24 dev eth0
addr add 10.1.0.1/32 dev lo
link set eth0 up
neigh replace 172.16.0.1 lladdr 02:00:00:00:0d:01 dev eth0 nud permanent
route add default via 172.16.0.1 src 10.1.0.1
END
ip -n nat -batch - <<END
link set lo up
addr add 172.16.0.1/24 dev eth0
addr add 192.0.2.1/24 dev eth1
link set eth0 up
link set eth1 up
neigh replace 172.16.0.2 lladdr 02:00:00:00:0d:0a dev eth0 nud permanent
neigh replace 192.0.2.2 lladdr 02:00:00:00:0d:0b dev eth1 nud permanent
END
ip netns exec nat sysctl -qw net.ipv4.ip_forward=1
ip -n cb -batch - <<END
link set lo up
addr add 192.0.2.2/24 dev eth0
addr add 10.2.0.1/32 dev lo
link set eth0 up
neigh replace 192.0.2.1 lladdr 02:00:00:00:0d:02 dev eth0 nud permanent
route add 10.1.0.0/24 via 192.0.2.1 src 10.2.0.1
END
${nft('nat', 'table ip nat {\n  chain post { type nat hook postrouting priority 100; oifname "eth1" masquerade; }\n}')}`);
}

const NA = mkNode(WORK, 'ca', 'cb', '172.16.0.2', '192.0.2.2', '10.1.0.1', '10.2.0.1');
const NB = mkNode(WORK, 'cb', 'ca', '192.0.2.2', '192.0.2.1', '10.2.0.1', '10.1.0.1');

async function nat(): Promise<void> {
  const t0 = Date.now();
  let ss: Stream[] | undefined;
  let cap: Taps | undefined;
  if (!existsSync(NFT)) {
    report('nat', false, { error: 'no nft in the tools tarball: the host has no nft' });
    return;
  }
  try {
    await Promise.all([A, B].map((n) => stopDaemon(n, 'SIGTERM')));
    await natTopology();
    const natV1: Omit<DaemonSettings, 'start'> = {
      ...V1,
      ikeProposals: 'aes256-sha256-modp2048',
      espProposals: 'aes128gcm16',
      pfs: false,
      childLifetime: '1h',
      rekeyMargin: '5m',
      natKeepalive: '2s',
    };
    writeConfig(NA, { ...natV1, start: 'now' }); // the NATed side initiates
    writeConfig(NB, { ...natV1, start: 'none', peerAddress: '192.0.2.1' });
    // The wire between the NAT and cb, and ca's side of the NAT.
    cap = await Taps.start('ikev1-nat', [
      ['nat', 'eth1'],
      ['ca', 'any'],
    ]);
    startDaemon(NB, 'nat', LOGS);
    startDaemon(NA, 'nat', LOGS);
    const upMs = await waitSettled(NA, NB, 90_000);
    const replies = await ping(NA.inner, NB.inner, 5);
    ss = pairStreams(NA, NB, INTERVAL_MS);
    for (const s of ss) s.start();
    await sleep(4000);
    const res = await stopStreams(ss);
    ss = undefined;
    const check = await crossCheck(NA, NB, 'tunnel', GCM);
    const [sa, sb] = await Promise.all([status(NA), status(NB)]);
    const pa = peerOf(sa, 'cb');
    const pb = peerOf(sb, 'ca');
    await sleep(2500); // a NAT-T keepalive or two
    const w = await stopTaps(cap);
    cap = undefined;
    const ka = check.kernel.ca ?? [];
    const kb = check.kernel.cb ?? [];
    const problems = [...check.problems];
    if (replies !== 5) problems.push(`${replies} of 5 pings answered`);
    for (const s of res) if (s.lost > 0) problems.push(`${s.name}: ${s.lost} of ${s.sent} lost`);
    if (![...ka, ...kb].every((s) => s.encap.startsWith('espinudp ')))
      problems.push('a kernel SA without encap espinudp');
    if (outSa(ka, NA)?.encap !== 'espinudp 4500 4500') problems.push(`ca's outbound encap is ${outSa(ka, NA)?.encap}`);
    if (outSa(kb, NB)?.dst !== '192.0.2.1')
      problems.push(`cb's outbound SA goes to ${outSa(kb, NB)?.dst}, not the NAT`);
    if (!pa?.natDetected.local || !pb?.natDetected.remote)
      problems.push(`NAT detection: ca ${JSON.stringify(pa?.natDetected)}, cb ${JSON.stringify(pb?.natDetected)}`);
    if (pa?.remotePort !== 4500) problems.push(`ca talks IKE to port ${pa?.remotePort}`);
    if (!pa?.children[0]?.encap || !pb?.children[0]?.encap) problems.push('status does not report encap');
    const counted = [...ka, ...kb].every((s) => s.packets >= 5 + 150);
    if (!counted) problems.push('a kernel SA counted less than the pings + stream');
    if (typeof w === 'object') {
      if (w.clear > 0) problems.push(`${w.clear} clear-text packets on cb's wire`);
      if (w.esp > 0) problems.push(`${w.esp} plain ESP packets (protocol 50) on cb's wire`);
      const sent = res.reduce((n, s) => n + s.sent, 0);
      if (w.espInUdp < sent + 10) problems.push(`${w.espInUdp} ESP-in-UDP packets for ${sent} datagrams + 10 pings`);
    }
    report('nat', problems.length === 0, {
      ...check,
      problems,
      upMs,
      replies,
      streams: res,
      wire: w,
      natDetected: { ca: pa?.natDetected, cb: pb?.natDetected },
      remotePort: { ca: pa?.remotePort, cb: pb?.remotePort },
      inbound: { ca: inSa(ka, NA), cb: inSa(kb, NB) },
      ms: Date.now() - t0,
    });
  } catch (err) {
    await reportFailure('nat', t0, err, { streams: ss, taps: cap });
  } finally {
    await Promise.all([NA, NB].map((n) => stopDaemon(n, 'SIGTERM')));
  }
}

async function main(): Promise<void> {
  try {
    rmSync(LOGS, { recursive: true, force: true });
    const stageMs = await stagePackage(arg('--pkg-tar'), arg('--tools-tar'));
    await pairTopology();
    process.stdout.write(`staged coatid in ${stageMs} ms; capture tool: ${Capture.available() ?? 'none'}\n`);
  } catch (err) {
    report('setup', false, { error: String(err) });
    process.exit(1);
  }
  const only = arg('--only');
  if (!only || only === 'establish') {
    await establish();
    await rekey();
  }
  if (!only || only === 'restart') await restart();
  if (!only || only === 'nat') await nat();
  await Promise.all([A, B].map((n) => stopDaemon(n, 'SIGTERM')));
  await sh('for ns in ca cb nat; do ip netns del $ns 2>/dev/null; done; true');
  process.exit(failureCount() ? 1 : 0);
}

void main();
