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
 *   node dist/test/vm/guest/daemon-e2e.js [--only NAME]
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cpSync, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ControlClient } from '../../../src/control/client.js';
import type { PeerStatus, StatusReport } from '../../../src/control/types.js';
import { IkeUdpSocket } from '../../../src/net/udp-socket.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const DIST = resolve(here, '..', '..', '..');
const REPO = resolve(DIST, '..');
const LOGS = join(REPO, '.cache', 'vm', 'daemon-logs');
const WORK = '/tmp/coati-daemon-e2e';
/** coatid/coatictl run from a tmpfs copy: loading their module graph over 9p took 10-28 s per start. */
const PKG = '/tmp/coati-pkg';
const COATID = join(PKG, 'dist', 'src', 'daemon', 'coatid.js');
const COATICTL = join(PKG, 'dist', 'src', 'control', 'cli', 'coatictl.js');

/**
 * Unpacks the tarball test/vm/daemon.test.ts builds on the host (one file over
 * 9p: fast), or else copies dist/src, the native addon and the runtime dependency closure (hoisted node_modules) to PKG. */
async function stagePackage(): Promise<number> {
  const t0 = Date.now();
  rmSync(PKG, { recursive: true, force: true });
  const tar = join(REPO, '.cache', 'vm', 'coati-pkg.tar');
  if (process.argv.includes('--pkg-tar') && existsSync(tar)) {
    mkdirSync(PKG, { recursive: true });
    await run('tar', ['-xf', tar, '-C', PKG]);
    return Date.now() - t0;
  }
  cpSync(join(REPO, 'dist', 'src'), join(PKG, 'dist', 'src'), { recursive: true, filter: (f) => !f.endsWith('.map') });
  cpSync(join(REPO, 'package.json'), join(PKG, 'package.json'));
  for (const f of ['binding.gyp', 'build/Release/coati_native.node'])
    cpSync(join(REPO, 'native', f), join(PKG, 'native', f));
  const seen = new Set<string>();
  const visit = (pkgJson: string) => {
    const deps = Object.keys(
      (JSON.parse(readFileSync(pkgJson, 'utf8')) as { dependencies?: object }).dependencies ?? {},
    );
    for (const d of deps) {
      if (seen.has(d) || !existsSync(join(REPO, 'node_modules', d))) continue;
      seen.add(d);
      cpSync(join(REPO, 'node_modules', d), join(PKG, 'node_modules', d), { recursive: true });
      visit(join(REPO, 'node_modules', d, 'package.json'));
    }
  };
  visit(join(REPO, 'package.json'));
  return Date.now() - t0;
}

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
let failures = 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function report(name: string, ok: boolean, detail: unknown = {}): void {
  if (!ok) failures++;
  process.stdout.write(
    `RESULT ${JSON.stringify({ name, ok, detail }, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}\n`,
  );
}

interface Node {
  name: 'ca' | 'cb';
  peer: 'ca' | 'cb';
  addr: string;
  peerAddr: string;
  inner: string;
  subnet: string;
  dir: string;
  sock: string;
  proc?: ChildProcess;
  exited?: Promise<void>;
  starts: number;
}

const mk = (name: 'ca' | 'cb', peer: 'ca' | 'cb', addr: string, peerAddr: string, inner: string): Node => ({
  name,
  peer,
  addr,
  peerAddr,
  inner,
  subnet: `${inner.split('.').slice(0, 3).join('.')}.0/24`,
  dir: join(WORK, name),
  sock: join(WORK, name, 'coati.sock'),
  starts: 0,
});
const A = mk('ca', 'cb', '192.0.2.1', '192.0.2.2', '10.1.0.1');
const B = mk('cb', 'ca', '192.0.2.2', '192.0.2.1', '10.2.0.1');
const NODES = [A, B];

async function sh(script: string): Promise<string> {
  const r = await run('bash', ['-c', script], { maxBuffer: 16 << 20 });
  return r.stdout;
}

async function topology(): Promise<void> {
  await sh(`
set -e
ip netns del ca 2>/dev/null || true
ip netns del cb 2>/dev/null || true
ip netns add ca
ip netns add cb
ip link add eth0 netns ca address 02:00:00:00:0c:0a type veth peer name eth0 netns cb address 02:00:00:00:0c:0b
ip -n ca -batch - <<END
link set lo up
addr add 192.0.2.1/24 dev eth0
addr add 10.1.0.1/32 dev lo
link set eth0 up
neigh replace 192.0.2.2 lladdr 02:00:00:00:0c:0b dev eth0 nud permanent
route add 10.2.0.0/24 via 192.0.2.2 src 10.1.0.1
END
ip -n cb -batch - <<END
link set lo up
addr add 192.0.2.2/24 dev eth0
addr add 10.2.0.1/32 dev lo
link set eth0 up
neigh replace 192.0.2.1 lladdr 02:00:00:00:0c:0a dev eth0 nud permanent
route add 10.1.0.0/24 via 192.0.2.1 src 10.2.0.1
END`);
}

function writeConfig(n: Node, mode: 'transport' | 'tunnel'): void {
  rmSync(n.dir, { recursive: true, force: true });
  mkdirSync(join(n.dir, 'peers.d'), { recursive: true });
  mkdirSync(join(n.dir, 'secrets'), { recursive: true, mode: 0o700 });
  writeFileSync(join(n.dir, 'secrets', 'pair.psk'), 'coati-vm-daemon-test-secret-0123456789\n', { mode: 0o600 });
  writeFileSync(
    join(n.dir, 'coati.conf'),
    `[daemon]
state_dir = "${join(n.dir, 'state')}"
socket = "${n.sock}"
listen = ["${n.addr}"]
shutdown = "delete"

[log]
default = "info"

[kernel]
backend = "xfrm"

[metrics]
prometheus_listen = "off"

[startup]
max_concurrent_initiations = 4
initiation_jitter = "0s"

[defaults]
local_address = "${n.addr}"
local_id = "fqdn:${n.name}.vm"
psk_file = "secrets/pair.psk"
ike_proposals = "aes256gcm16-prfsha256-x25519"
esp_proposals = "aes256gcm16-x25519"
start = "${n === B ? 'now' : 'none'}"
dpd_delay = "1s"
dpd_timeout = "2s"
dpd_action = "restart"
restart_backoff_max = "1s"
retransmit_base = "500ms"
mode = "${mode}"
`,
  );
  const ts = mode === 'tunnel' ? `local_ts = "${n.subnet}"\nremote_ts = "${n === A ? B.subnet : A.subnet}"\n` : '';
  writeFileSync(
    join(n.dir, 'peers.d', `${n.peer}.toml`),
    `address = "${n.peerAddr}"\nremote_id = "fqdn:${n.peer}.vm"\n${ts}`,
  );
}

function startDaemon(n: Node, tag: string): void {
  mkdirSync(LOGS, { recursive: true });
  const log = createWriteStream(join(LOGS, `${tag}-${n.name}-${++n.starts}.log`));
  const p = spawn('ip', ['netns', 'exec', n.name, process.execPath, COATID, '--config', join(n.dir, 'coati.conf')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const t0 = Date.now();
  const stamp = (b: Buffer) => {
    const t = `[+${String(Date.now() - t0).padStart(6)}ms] `;
    log.write(b.toString('utf8').replace(/^(?=.)/gm, t));
  };
  p.stdout?.on('data', stamp);
  p.stderr?.on('data', stamp);
  n.proc = p;
  n.exited = new Promise((r) => p.once('exit', () => r()));
}

const running = (n: Node) => !!n.proc && n.proc.exitCode === null && n.proc.signalCode === null;

async function killDaemon(n: Node, signal: NodeJS.Signals): Promise<void> {
  const p = n.proc;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  p.kill(signal);
  await Promise.race([n.exited, sleep(8000)]);
  if (p.exitCode === null && p.signalCode === null) {
    p.kill('SIGKILL');
    await n.exited;
  }
}

async function status(n: Node): Promise<StatusReport | undefined> {
  try {
    const c = await ControlClient.connect(n.sock, { timeoutMs: 2000 });
    try {
      return (await c.request('status', {})) as StatusReport;
    } finally {
      c.close();
    }
  } catch {
    return undefined;
  }
}

const peerOf = (r: StatusReport | undefined, name: string) => r?.peers.find((p) => p.name === name);

/** Up on both sides with an installed Child SA, and both sides agree on the IKE SA and the SPIs. */
function settled(a: PeerStatus | undefined, b: PeerStatus | undefined): boolean {
  if (a?.state !== 'up' || b?.state !== 'up' || !a.ike || !b.ike) return false;
  if (a.ike.spiI !== b.ike.spiI || a.ike.spiR !== b.ike.spiR) return false;
  const ac = a.children.filter((c) => c.state === 'installed');
  const bc = b.children.filter((c) => c.state === 'installed');
  return ac.length === 1 && bc.length === 1 && ac[0]?.spiIn === bc[0]?.spiOut && ac[0]?.spiOut === bc[0]?.spiIn;
}

async function waitSettled(ms: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const [a, b] = await Promise.all([status(A), status(B)]);
    if (settled(peerOf(a, 'cb'), peerOf(b, 'ca'))) return Date.now() - t0;
    await sleep(100);
  }
  throw new Error(`no settled IKE SA + Child SA on both sides within ${ms} ms`);
}

interface KSa {
  src: string;
  dst: string;
  spi: string;
  mode: string;
  reqid: number;
  aead: string;
  bytes: number;
  packets: number;
}

/** `ip -s xfrm state` of one namespace, parsed. */
async function xfrmStates(ns: string): Promise<KSa[]> {
  const out = await sh(`ip -n ${ns} -s xfrm state`);
  const sas: KSa[] = [];
  for (const block of out.split(/^(?=src )/m)) {
    const head = block.match(
      /^src (\S+) dst (\S+)\s+proto esp spi (0x[0-9a-f]+)(?:\(\d+\))? reqid (\d+)(?:\(0x[0-9a-f]+\))? mode (\w+)/,
    );
    if (!head) continue;
    const cur = block.match(/lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)/);
    sas.push({
      src: head[1]!,
      dst: head[2]!,
      spi: head[3]!.replace(/^0x/, '').padStart(8, '0'),
      reqid: Number(head[4]),
      mode: head[5]!,
      aead: block.match(/aead (\S+)/)?.[1] ?? '',
      bytes: Number(cur?.[1] ?? -1),
      packets: Number(cur?.[2] ?? -1),
    });
  }
  return sas;
}

async function xfrmPolicyCount(ns: string): Promise<number> {
  const out = await sh(`ip -n ${ns} xfrm policy`);
  return (out.match(/^src /gm) ?? []).length;
}

async function coatictlJson(n: Node): Promise<StatusReport> {
  const r = await run('ip', [
    'netns',
    'exec',
    n.name,
    process.execPath,
    COATICTL,
    '--socket',
    n.sock,
    'status',
    '--json',
  ]);
  return JSON.parse(r.stdout) as StatusReport;
}

async function ping(src: string, dst: string, count: number): Promise<number> {
  const r = await run(
    'ip',
    ['netns', 'exec', 'ca', 'ping', '-c', String(count), '-i', '0.2', '-W', '2', '-I', src, dst],
    {},
  ).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  return (r.stdout.match(/bytes from/g) ?? []).length;
}

/**
 * Cross-checks coatictl status --json of both daemons against both kernels:
 * each side's spiIn is an inbound kernel SA of its own namespace and the
 * other side's spiOut; exactly one Child SA pair (2 ESP SAs) per namespace.
 */
async function crossCheck(mode: 'transport' | 'tunnel'): Promise<Record<string, unknown>> {
  const [sa, sb, ka, kb] = await Promise.all([coatictlJson(A), coatictlJson(B), xfrmStates('ca'), xfrmStates('cb')]);
  const pa = peerOf(sa, 'cb');
  const pb = peerOf(sb, 'ca');
  const ca = pa?.children ?? [];
  const cb = pb?.children ?? [];
  const inA = ka.find((s) => s.dst === A.addr);
  const outA = ka.find((s) => s.dst === B.addr);
  const inB = kb.find((s) => s.dst === B.addr);
  const outB = kb.find((s) => s.dst === A.addr);
  const problems: string[] = [];
  const want = (cond: boolean, what: string) => {
    if (!cond) problems.push(what);
  };
  want(pa?.state === 'up' && pb?.state === 'up', 'both peers up');
  want(!!pa?.ike && pa.ike.spiI === pb?.ike?.spiI && pa.ike.spiR === pb?.ike?.spiR, 'same IKE SA on both sides');
  want(ca.length === 1 && cb.length === 1, 'one Child SA per side');
  want(ka.length === 2 && kb.length === 2, 'two kernel ESP SAs per namespace');
  want(ca[0]?.spiIn === cb[0]?.spiOut && ca[0]?.spiOut === cb[0]?.spiIn, 'Child SPIs equal crosswise');
  want(inA?.spi === ca[0]?.spiIn && outA?.spi === ca[0]?.spiOut, 'ca kernel SPIs = ca status SPIs');
  want(inB?.spi === cb[0]?.spiIn && outB?.spi === cb[0]?.spiOut, 'cb kernel SPIs = cb status SPIs');
  want(outA?.spi === inB?.spi && outB?.spi === inA?.spi, 'kernel SPIs equal crosswise');
  want(
    [...ka, ...kb].every((s) => s.mode === mode),
    `kernel SAs in ${mode} mode`,
  );
  want(
    [...ka, ...kb].every((s) => s.aead.startsWith('rfc4106(gcm(aes))')),
    'kernel SAs use rfc4106(gcm(aes))',
  );
  want(ca[0]?.mode === mode && cb[0]?.mode === mode, `status reports ${mode} mode`);
  return {
    ok: problems.length === 0,
    problems,
    ike: { ca: pa?.ike, cb: pb?.ike },
    children: {
      ca: ca.map(({ spiIn, spiOut, mode: m }) => ({ spiIn, spiOut, mode: m })),
      cb: cb.map(({ spiIn, spiOut }) => ({ spiIn, spiOut })),
    },
    kernel: { ca: ka, cb: kb },
  };
}

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
class Stream {
  private seq = 0;
  readonly arrivals = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly tx: IkeUdpSocket;
  private readonly rx: IkeUdpSocket;
  sendErrors = 0;

  constructor() {
    this.rx = IkeUdpSocket.open({
      family: 4,
      port: 7002,
      bindAddress: B.inner,
      bypass: false,
      netns: 'cb',
      onMessage: (d) => {
        const s = d.payload.readUInt32BE(0);
        if (!this.arrivals.has(s)) this.arrivals.set(s, Date.now());
      },
    });
    this.tx = IkeUdpSocket.open({
      family: 4,
      port: 7001,
      bindAddress: A.inner,
      bypass: false,
      netns: 'ca',
      onMessage: () => {},
    });
  }

  start(): void {
    const t0 = Date.now();
    const tick = () => {
      const b = Buffer.alloc(64);
      b.writeUInt32BE(this.seq++, 0);
      try {
        this.tx.send(b, B.inner, 7002);
      } catch {
        this.sendErrors++;
      }
      // Fixed 20 ms schedule (not drifting with the event loop).
      this.timer = setTimeout(tick, Math.max(0, t0 + this.seq * 20 - Date.now()));
    };
    tick();
  }

  async stop(): Promise<{ sent: number; received: number; lost: number; longestGapMs: number; gapAfterSeq: number }> {
    clearTimeout(this.timer);
    await sleep(500); // the last datagrams in flight
    this.tx.close();
    this.rx.close();
    const sent = this.seq;
    let longestGapMs = 0;
    let gapAfterSeq = -1;
    let prev: number | undefined;
    let prevSeq = -1;
    for (let s = 0; s < sent; s++) {
      const t = this.arrivals.get(s);
      if (t === undefined) continue;
      if (prev !== undefined && t - prev > longestGapMs) {
        longestGapMs = t - prev;
        gapAfterSeq = prevSeq;
      }
      prev = t;
      prevSeq = s;
    }
    return { sent, received: this.arrivals.size, lost: sent - this.arrivals.size, longestGapMs, gapAfterSeq };
  }
}

async function restartScenario(kind: 'sigkill' | 'hardreboot'): Promise<void> {
  const name = kind === 'sigkill' ? 'SIGKILL + restart after 3 s' : 'hard reboot (kill + flush) + restart after 3 s';
  if (only && !name.includes(only) && only !== kind) return;
  const t0 = Date.now();
  let stream: Stream | undefined;
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
    stream = new Stream();
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
    const stageMs = await stagePackage();
    await topology();
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
  process.exit(failures ? 1 : 0);
}

void main();
