/**
 * Runs INSIDE the test VM (see test/vm/README.md, "restart tests"): real
 * `coatid` daemons with the xfrm backend restarted and crashed while UDP
 * streams run through their ESP SAs. Evidence for "restart and crash without
 * dropping traffic": every datagram of the stream is sequence-numbered, so a
 * lost one is a gap; a packet capture of the IKE ports shows whether an
 * IKE_SA_INIT was sent; `coatictl status --json`, the daemons' continuous
 * checkpoints and `ip xfrm state` show which IKE and Child SAs exist.
 *
 *   ca: eth0 192.0.2.1/24, protected subnet address 10.1.0.1 (on lo)
 *   cb: eth0 192.0.2.2/24, protected subnet address 10.2.0.1 (on lo)
 *   tunnel mode 10.1.0.0/24 <-> 10.2.0.0/24, IKEv2 PSK, AES-GCM, DPD 10 s/10 s,
 *   `shutdown = "keep"`; cb initiates (`start = "now"`), ca does not.
 *
 * Scenarios (one process, in this order):
 *   planned  N restarts of cb in a row: SIGTERM (exit 0) or `coatictl restart`
 *            (exit 75), alternately, then a new coatid. Two streams (ca->cb and
 *            cb->ca, one datagram every 15 ms each) run throughout.
 *   crash    M SIGKILLs of cb, each followed at once by a new coatid (continuous
 *            checkpoint, message ID resync).
 *   mesh     five namespaces (n1..n5, routed through a hub namespace), full mesh
 *            in transport mode; every node restarted in turn (SIGTERM + start)
 *            while five streams (ni -> n(i+1)) run.
 *
 * One line per scenario on stdout: `RESULT {"name":...,"ok":...,"detail":...}`;
 * test/vm/restart.test.ts asserts them. Daemon logs (ms stamps) go to
 * .cache/vm/restart-logs/, the capture to .cache/vm/restart-ike.pcap.
 *
 *   probe    (opt-in, --dpd-probe) ca's DPD request in flight across a SIGKILL of cb.
 *
 *   node dist/test/vm/guest/restart-e2e.js [--restarts N] [--budget-s S] [--kills M] [--mesh] [--dpd-probe]
 *     [--dpd 60s/60s] [--log debug]
 *
 * --restarts N runs exactly N planned restarts; without it, as many as fit in
 * --budget-s seconds (default 90), at least 3.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { appendFileSync, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
const CACHE = join(REPO, '.cache', 'vm');
const LOGS = join(CACHE, 'restart-logs');
const WORK = '/tmp/coati-restart-e2e';
const PKG = '/tmp/coati-pkg';
const CAPTOOL = '/tmp/coati-captool';
const COATID = join(PKG, 'dist', 'src', 'daemon', 'coatid.js');
const COATICTL = join(PKG, 'dist', 'src', 'control', 'cli', 'coatictl.js');
const PSK = 'coati-vm-restart-test-secret-0123456789\n';
const INTERVAL_MS = 15;

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const LOG_LEVEL = arg('--log') ?? 'info';
/**
 * DPD delay/timeout. A coatid start takes 8-30 s in the TCG guest, so the
 * daemon is away longer than a typical DPD timeout; and the peer probes even
 * while ESP arrives (see test/vm/README.md, "restart tests"): 60 s/60 s.
 */
const DPD = (arg('--dpd') ?? '60s/60s').split('/') as [string, string];
let failures = 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The full results also go to the share (the harness removes its run folder afterwards). */
const RESULTS = join(CACHE, 'restart-results.jsonl');

function report(name: string, ok: boolean, detail: unknown = {}): void {
  if (!ok) failures++;
  const line = `RESULT ${JSON.stringify({ name, ok, detail }, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}\n`;
  process.stdout.write(line);
  appendFileSync(RESULTS, line);
}

async function sh(script: string): Promise<string> {
  const r = await run('bash', ['-c', script], { maxBuffer: 16 << 20 });
  return r.stdout;
}

// ---- daemons -----------------------------------------------------------------

interface PeerDef {
  name: string;
  addr: string;
  start: 'now' | 'none';
  localTs?: string;
  remoteTs?: string;
}

interface Node {
  name: string;
  ns: string;
  addr: string;
  peers: PeerDef[];
  mode: 'transport' | 'tunnel';
  dir: string;
  sock: string;
  proc?: ChildProcess;
  exited?: Promise<number | string>;
  starts: number;
}

function mkNode(name: string, addr: string, mode: Node['mode'], peers: PeerDef[]): Node {
  return { name, ns: name, addr, peers, mode, dir: join(WORK, name), sock: join(WORK, name, 'coati.sock'), starts: 0 };
}

function writeConfig(n: Node): void {
  rmSync(n.dir, { recursive: true, force: true });
  mkdirSync(join(n.dir, 'peers.d'), { recursive: true });
  mkdirSync(join(n.dir, 'secrets'), { recursive: true, mode: 0o700 });
  writeFileSync(join(n.dir, 'secrets', 'mesh.psk'), PSK, { mode: 0o600 });
  writeFileSync(
    join(n.dir, 'coati.conf'),
    `[daemon]
state_dir = "${join(n.dir, 'state')}"
socket = "${n.sock}"
listen = ["${n.addr}"]
shutdown = "keep"

[log]
default = "${LOG_LEVEL}"

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
psk_file = "secrets/mesh.psk"
ike_proposals = "aes256gcm16-prfsha256-x25519"
esp_proposals = "aes256gcm16-x25519"
dpd_delay = "${DPD[0]}"
dpd_timeout = "${DPD[1]}"
dpd_action = "restart"
restart_backoff_max = "1s"
retransmit_base = "500ms"
mode = "${n.mode}"
`,
  );
  for (const p of n.peers) {
    const ts = p.localTs ? `local_ts = "${p.localTs}"\nremote_ts = "${p.remoteTs}"\n` : '';
    writeFileSync(
      join(n.dir, 'peers.d', `${p.name}.toml`),
      `address = "${p.addr}"\nremote_id = "fqdn:${p.name}.vm"\nstart = "${p.start}"\n${ts}`,
    );
  }
}

function startDaemon(n: Node, tag: string): void {
  mkdirSync(LOGS, { recursive: true });
  const log = createWriteStream(join(LOGS, `${tag}-${n.name}-${String(++n.starts).padStart(2, '0')}.log`));
  const p = spawn('ip', ['netns', 'exec', n.ns, process.execPath, COATID, '--config', join(n.dir, 'coati.conf')], {
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
  n.exited = new Promise((r) =>
    p.once('exit', (code, signal) => {
      log.end();
      r(code ?? signal ?? 'unknown');
    }),
  );
}

/** Sends `signal` (or runs `coatictl restart`) and waits for the exit; returns the exit code or signal. */
async function stopDaemon(n: Node, how: 'SIGTERM' | 'SIGKILL' | 'coatictl restart'): Promise<number | string> {
  const p = n.proc;
  if (!p || p.exitCode !== null || p.signalCode !== null)
    return (p?.exitCode ?? p?.signalCode ?? 'not running') as string;
  if (how === 'coatictl restart') await coatictl(n, ['restart']);
  else p.kill(how);
  const code = await Promise.race([n.exited, sleep(15_000).then(() => 'timeout')]);
  if (code === 'timeout') {
    p.kill('SIGKILL');
    await n.exited;
  }
  return code as number | string;
}

async function coatictl(n: Node, args: string[]): Promise<string> {
  const r = await run('ip', ['netns', 'exec', n.ns, process.execPath, COATICTL, '--socket', n.sock, ...args]);
  return r.stdout;
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

/** Both ends up with one installed Child SA each, same IKE SA, Child SPIs equal crosswise. */
function pairSettled(a: PeerStatus | undefined, b: PeerStatus | undefined): boolean {
  if (a?.state !== 'up' || b?.state !== 'up' || !a.ike || !b.ike) return false;
  if (a.ike.spiI !== b.ike.spiI || a.ike.spiR !== b.ike.spiR) return false;
  const ac = a.children.filter((c) => c.state === 'installed');
  const bc = b.children.filter((c) => c.state === 'installed');
  return ac.length === 1 && bc.length === 1 && ac[0]?.spiIn === bc[0]?.spiOut && ac[0]?.spiOut === bc[0]?.spiIn;
}

/** Every configured pair among `nodes` settled; returns the ms waited. */
async function waitMeshSettled(nodes: Node[], ms: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const reports = new Map(await Promise.all(nodes.map(async (n) => [n.name, await status(n)] as const)));
    const ok = nodes.every((n) =>
      n.peers.every((p) => pairSettled(peerOf(reports.get(n.name), p.name), peerOf(reports.get(p.name), n.name))),
    );
    if (ok) return Date.now() - t0;
    await sleep(100);
  }
  throw new Error(`not every pair settled within ${ms} ms`);
}

/** A pair's IKE SPIs, Child SPIs and message IDs as one side reports them. */
interface PairView {
  ike: string;
  child: string;
  msgOut: number;
  msgIn: number;
}
function view(p: PeerStatus | undefined): PairView | undefined {
  if (!p?.ike) return undefined;
  const c = p.children.filter((x) => x.state === 'installed');
  return {
    ike: `${p.ike.spiI}_i/${p.ike.spiR}_r`,
    child: c.map((x) => `${x.spiIn}/${x.spiOut}`).join(','),
    msgOut: p.ike.messageIdOut,
    msgIn: p.ike.messageIdIn,
  };
}

/** IKE SAs in a daemon's continuous checkpoint (written <= 200 ms after each change): duplicates show here. */
function checkpointIkeSas(n: Node): { kind?: string; ikeSas: string[] } {
  try {
    const cp = JSON.parse(readFileSync(join(n.dir, 'state', 'checkpoint.json'), 'utf8')) as {
      kind: string;
      ikeSas: { spiI: string; spiR: string; peer: string | null }[];
    };
    return { kind: cp.kind, ikeSas: cp.ikeSas.map((s) => `${s.peer}:${s.spiI}_i/${s.spiR}_r`) };
  } catch {
    return { ikeSas: [] };
  }
}

interface KSa {
  src: string;
  dst: string;
  spi: string;
  packets: number;
  /** The kernel's `use` time (curlft.use_time) as `ip -s xfrm state` prints it. */
  use: string;
}

async function xfrmStates(ns: string): Promise<KSa[]> {
  const out = await sh(`ip -n ${ns} -s xfrm state`);
  const sas: KSa[] = [];
  for (const block of out.split(/^(?=src )/m)) {
    const head = block.match(/^src (\S+) dst (\S+)\s+proto esp spi (0x[0-9a-f]+)/);
    if (!head) continue;
    const cur = block.match(/lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)/);
    sas.push({
      src: head[1]!,
      dst: head[2]!,
      spi: head[3]!.replace(/^0x/, '').padStart(8, '0'),
      packets: Number(cur?.[2] ?? -1),
      use: block.match(/ use (\S+ \S+)/)?.[1] ?? '-',
    });
  }
  return sas;
}

// ---- streams -----------------------------------------------------------------

interface StreamResult {
  name: string;
  sent: number;
  received: number;
  lost: number;
  lostSeqs: number[];
  longestGapMs: number;
  gapAfterSeq: number;
  longestSendGapMs: number;
}

/** Sequence-numbered UDP datagrams from `src` (in netns `srcNs`) to `dst` (in `dstNs`), one every 15 ms. */
class Stream {
  private seq = 0;
  private readonly sentAt: number[] = [];
  private readonly arrivals = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly tx: IkeUdpSocket;
  private readonly rx: IkeUdpSocket;

  constructor(
    readonly name: string,
    srcNs: string,
    src: string,
    dstNs: string,
    private readonly dst: string,
    private readonly port: number,
  ) {
    this.rx = IkeUdpSocket.open({
      family: 4,
      port,
      bindAddress: dst,
      bypass: false,
      netns: dstNs,
      onMessage: (d) => {
        const s = d.payload.readUInt32BE(0);
        if (!this.arrivals.has(s)) this.arrivals.set(s, Date.now());
      },
    });
    this.tx = IkeUdpSocket.open({
      family: 4,
      port,
      bindAddress: src,
      bypass: false,
      netns: srcNs,
      onMessage: () => {},
    });
  }

  start(): void {
    const t0 = Date.now();
    const tick = () => {
      const b = Buffer.alloc(64);
      b.writeUInt32BE(this.seq, 0);
      this.sentAt.push(Date.now());
      this.seq++;
      try {
        this.tx.send(b, this.dst, this.port);
      } catch {
        // counted as lost: it never arrives
      }
      this.timer = setTimeout(tick, Math.max(0, t0 + this.seq * INTERVAL_MS - Date.now()));
    };
    tick();
  }

  get sent(): number {
    return this.seq;
  }

  async stop(): Promise<StreamResult> {
    clearTimeout(this.timer);
    await sleep(700); // the last datagrams in flight
    this.tx.close();
    this.rx.close();
    const sent = this.seq;
    let longestGapMs = 0;
    let gapAfterSeq = -1;
    let prev: number | undefined;
    let prevSeq = -1;
    const lostSeqs: number[] = [];
    let longestSendGapMs = 0;
    for (let s = 0; s < sent; s++) {
      if (s > 0) longestSendGapMs = Math.max(longestSendGapMs, (this.sentAt[s] ?? 0) - (this.sentAt[s - 1] ?? 0));
      const t = this.arrivals.get(s);
      if (t === undefined) {
        lostSeqs.push(s);
        continue;
      }
      if (prev !== undefined && t - prev > longestGapMs) {
        longestGapMs = t - prev;
        gapAfterSeq = prevSeq;
      }
      prev = t;
      prevSeq = s;
    }
    return {
      name: this.name,
      sent,
      received: this.arrivals.size,
      lost: lostSeqs.length,
      lostSeqs: lostSeqs.slice(0, 50),
      longestGapMs,
      gapAfterSeq,
      longestSendGapMs,
    };
  }
}

// ---- IKE packet capture --------------------------------------------------------

const EXCHANGES: Record<number, string> = {
  34: 'IKE_SA_INIT',
  35: 'IKE_AUTH',
  36: 'CREATE_CHILD_SA',
  37: 'INFORMATIONAL',
};

/**
 * dumpcap (or tcpdump) from the host, unpacked by restart.test.ts's tarball
 * (`.cache/vm/restart-captool.tar`: the binary and its `ldd` libraries),
 * capturing udp/500 and udp/4500 on one namespace's eth0 into a pcap file.
 */
class Capture {
  private proc: ChildProcess | undefined;
  readonly file: string;
  constructor(
    private readonly ns: string,
    tag: string,
  ) {
    this.file = join('/tmp', `restart-${tag}.pcap`);
  }

  static available(): string | undefined {
    for (const t of ['dumpcap', 'tcpdump']) if (existsSync(join(CAPTOOL, t))) return t;
    return undefined;
  }

  async start(): Promise<void> {
    const tool = Capture.available();
    if (!tool) throw new Error('no capture tool');
    rmSync(this.file, { force: true });
    const filter = 'udp port 500 or udp port 4500';
    const args =
      tool === 'dumpcap'
        ? ['-q', '-P', '-i', 'eth0', '-f', filter, '-w', this.file]
        : ['-i', 'eth0', '-U', '-n', '-w', this.file, filter];
    const p = spawn(
      'ip',
      ['netns', 'exec', this.ns, 'env', `LD_LIBRARY_PATH=${CAPTOOL}/lib`, join(CAPTOOL, tool), ...args],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    this.proc = p;
    let err = '';
    await new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`${tool} did not start: ${err}`)), 20_000);
      p.stderr?.on('data', (b: Buffer) => {
        err += b.toString();
        if (/Capturing on|listening on/.test(err)) {
          clearTimeout(timer);
          ok();
        }
      });
      p.once('exit', (c) => {
        clearTimeout(timer);
        fail(new Error(`${tool} exited ${c}: ${err}`));
      });
    });
  }

  /** Stops the capture and counts IKE messages by exchange type and direction (`I`nitiator/`R`esponse flags). */
  async stop(): Promise<{ packets: number; byExchange: Record<string, number>; ikeSaInit: number }> {
    const p = this.proc;
    if (p && p.exitCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGINT');
      await Promise.race([exited, sleep(5000)]);
    }
    const buf = readFileSync(this.file);
    const byExchange: Record<string, number> = {};
    let packets = 0;
    let ikeSaInit = 0;
    const le = buf.readUInt32LE(0) === 0xa1b2c3d4 || buf.readUInt32LE(0) === 0xa1b23c4d;
    const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
    const linkType = u32(20);
    if (linkType !== 1) throw new Error(`unexpected pcap link type ${linkType}`);
    for (let off = 24; off + 16 <= buf.length; ) {
      const incl = u32(off + 8);
      const pkt = buf.subarray(off + 16, off + 16 + incl);
      off += 16 + incl;
      if (pkt.length < 14 + 20 + 8 || pkt.readUInt16BE(12) !== 0x0800) continue;
      const ihl = (pkt[14]! & 0x0f) * 4;
      const udp = 14 + ihl;
      const dport = pkt.readUInt16BE(udp + 2);
      const sport = pkt.readUInt16BE(udp);
      let ike = udp + 8;
      if (dport === 4500 || sport === 4500) {
        if (pkt.length < ike + 4 || pkt.readUInt32BE(ike) !== 0) continue; // ESP-in-UDP, not IKE
        ike += 4;
      }
      if (pkt.length < ike + 28) continue;
      packets++;
      const exchange = pkt[ike + 18]!;
      const response = (pkt[ike + 19]! & 0x20) !== 0;
      const from = [...pkt.subarray(14 + 12, 14 + 16)].join('.');
      const key = `${EXCHANGES[exchange] ?? `exchange ${exchange}`} ${response ? 'response' : 'request'} from ${from}`;
      byExchange[key] = (byExchange[key] ?? 0) + 1;
      if (exchange === 34) ikeSaInit++;
    }
    return { packets, byExchange, ikeSaInit };
  }
}

// ---- setup -------------------------------------------------------------------

async function stage(): Promise<void> {
  const tar = join(CACHE, 'coati-pkg.tar');
  if (!existsSync(tar)) throw new Error(`${tar} missing (restart.test.ts packs it)`);
  rmSync(PKG, { recursive: true, force: true });
  mkdirSync(PKG, { recursive: true });
  await run('tar', ['-xf', tar, '-C', PKG]);
  const cap = join(CACHE, 'restart-captool.tar');
  rmSync(CAPTOOL, { recursive: true, force: true });
  if (existsSync(cap)) {
    mkdirSync(CAPTOOL, { recursive: true });
    await run('tar', ['-xf', cap, '-C', CAPTOOL]);
  }
}

const A = mkNode('ca', '192.0.2.1', 'tunnel', [
  { name: 'cb', addr: '192.0.2.2', start: 'none', localTs: '10.1.0.0/24', remoteTs: '10.2.0.0/24' },
]);
const B = mkNode('cb', '192.0.2.2', 'tunnel', [
  { name: 'ca', addr: '192.0.2.1', start: 'now', localTs: '10.2.0.0/24', remoteTs: '10.1.0.0/24' },
]);

async function pairTopology(): Promise<void> {
  await sh(`
set -e
for ns in ca cb; do ip netns del $ns 2>/dev/null || true; ip netns add $ns; done
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

/** What both sides, both kernels and both checkpoints say about the ca-cb relationship now. */
async function pairSnapshot() {
  const [sa, sb, ka, kb] = await Promise.all([status(A), status(B), xfrmStates('ca'), xfrmStates('cb')]);
  return {
    ca: view(peerOf(sa, 'cb')),
    cb: view(peerOf(sb, 'ca')),
    settled: pairSettled(peerOf(sa, 'cb'), peerOf(sb, 'ca')),
    kernel: { ca: ka, cb: kb },
    checkpoint: { ca: checkpointIkeSas(A), cb: checkpointIkeSas(B) },
  };
}

const outSa = (k: KSa[], dst: string) => k.find((s) => s.dst === dst);

/**
 * The pair scenarios: `planned` (SIGTERM / coatictl restart with handover) or
 * `crash` (SIGKILL, continuous checkpoint). cb is restarted `count` times (or,
 * with `budgetMs`, as often as fits) while both streams run.
 */
async function pairScenario(kind: 'planned' | 'crash', count: number, budgetMs: number | undefined): Promise<void> {
  const name = kind === 'planned' ? 'planned restarts' : 'SIGKILL + restart';
  const t0 = Date.now();
  const streams: Stream[] = [];
  let capture: Capture | undefined;
  try {
    if (!B.proc || B.proc.exitCode !== null || B.proc.signalCode !== null) throw new Error('cb is not running');
    await waitMeshSettled([A, B], 60_000);
    const before = await pairSnapshot();
    if (Capture.available()) {
      capture = new Capture('ca', kind);
      await capture.start();
    }
    streams.push(new Stream('ca->cb', 'ca', '10.1.0.1', 'cb', '10.2.0.1', 7001));
    streams.push(new Stream('cb->ca', 'cb', '10.2.0.1', 'ca', '10.1.0.1', 7002));
    for (const s of streams) s.start();
    await sleep(1000);
    const cycles: Record<string, unknown>[] = [];
    const problems: string[] = [];
    const loopStart = Date.now();
    for (let i = 0; i < count || (budgetMs !== undefined && Date.now() - loopStart < budgetMs); i++) {
      const how = kind === 'crash' ? 'SIGKILL' : i % 2 === 0 ? 'SIGTERM' : 'coatictl restart';
      const prev = await pairSnapshot();
      const stopAt = Date.now();
      const exit = await stopDaemon(B, how);
      const exitedMs = Date.now() - stopAt;
      const cp = checkpointIkeSas(B);
      startDaemon(B, kind);
      // Back: the new process answers status with the pair settled.
      let back = -1;
      let now = prev;
      while (Date.now() - stopAt < 60_000) {
        now = await pairSnapshot();
        if (now.settled) {
          back = Date.now() - stopAt;
          break;
        }
        await sleep(100);
      }
      const want = kind === 'crash' ? 'SIGKILL' : how === 'SIGTERM' ? 0 : 75;
      const c = {
        i: i + 1,
        how,
        exit,
        exitedMs,
        downToSettledMs: back,
        checkpointAtExit: cp.kind,
        ike: now.cb?.ike,
        child: now.cb?.child,
        msgIds: { before: prev.cb && [prev.cb.msgOut, prev.cb.msgIn], after: now.cb && [now.cb.msgOut, now.cb.msgIn] },
        sentSoFar: streams.map((s) => s.sent),
      };
      cycles.push(c);
      if (exit !== want) problems.push(`cycle ${i + 1}: ${how} exit ${exit}, expected ${want}`);
      if (back < 0) {
        problems.push(`cycle ${i + 1}: not settled within 60 s after ${how}`);
        break;
      }
      if (kind === 'planned' && cp.kind !== 'handover')
        problems.push(`cycle ${i + 1}: checkpoint at exit is ${cp.kind ?? 'missing'}, expected handover`);
      if (now.cb?.ike !== before.cb?.ike) problems.push(`cycle ${i + 1}: IKE SA ${before.cb?.ike} -> ${now.cb?.ike}`);
      if (now.cb?.child !== before.cb?.child)
        problems.push(`cycle ${i + 1}: Child SA ${before.cb?.child} -> ${now.cb?.child}`);
      if (kind === 'planned' && now.cb && prev.cb && (now.cb.msgOut < prev.cb.msgOut || now.cb.msgIn < prev.cb.msgIn))
        problems.push(`cycle ${i + 1}: message IDs went back ${JSON.stringify(c.msgIds)}`);
      if (budgetMs === undefined && i + 1 >= count) break;
    }
    const restartsMs = Date.now() - loopStart;
    // Let anything a restart set off (duplicate IKE SAs, DPD, stale-SA reaping) run its course.
    await sleep(3000);
    const sentDuring = streams.map((s) => s.sent);
    const results: StreamResult[] = [];
    for (const s of streams) results.push(await s.stop());
    streams.length = 0;
    const ike = capture ? await capture.stop() : undefined;
    capture = undefined;
    const after = await pairSnapshot();
    const k = after.kernel;
    if (k.ca.length !== 2 || k.cb.length !== 2)
      problems.push(`ESP SAs per namespace: ca ${k.ca.length}, cb ${k.cb.length} (want 2)`);
    if (after.checkpoint.ca.ikeSas.length !== 1 || after.checkpoint.cb.ikeSas.length !== 1)
      problems.push(`IKE SAs in the checkpoints: ${JSON.stringify(after.checkpoint)} (want one per side)`);
    if (!after.settled || after.ca?.ike !== before.ca?.ike || after.cb?.child !== before.cb?.child)
      problems.push(
        `SAs changed: before ${JSON.stringify([before.ca, before.cb])} after ${JSON.stringify([after.ca, after.cb])}`,
      );
    // Every datagram went through ESP: the outbound SAs (unchanged SPIs) counted at least the stream.
    const pktDelta = (side: 'ca' | 'cb', dst: string) =>
      (outSa(after.kernel[side], dst)?.packets ?? 0) - (outSa(before.kernel[side], dst)?.packets ?? 0);
    const esp = { 'ca->cb': pktDelta('ca', B.addr), 'cb->ca': pktDelta('cb', A.addr) };
    if (esp['ca->cb'] < (sentDuring[0] ?? 0) || esp['cb->ca'] < (sentDuring[1] ?? 0))
      problems.push(`ESP counters below the datagrams sent: ${JSON.stringify(esp)} vs ${sentDuring}`);
    for (const r of results) if (r.lost > 0) problems.push(`${r.name}: lost ${r.lost} of ${r.sent}`);
    if (ike && ike.ikeSaInit > 0) problems.push(`${ike.ikeSaInit} IKE_SA_INIT messages on the wire`);
    report(name, problems.length === 0, {
      problems,
      restarts: cycles.length,
      restartsMs,
      streams: results,
      espPacketsCounted: esp,
      ikeCapture: ike ?? 'no capture tool',
      dpd: DPD,
      guestClockAtEnd: new Date().toISOString(),
      before: { ca: before.ca, cb: before.cb, kernel: before.kernel },
      after: { ca: after.ca, cb: after.cb, kernel: after.kernel, checkpoint: after.checkpoint },
      cycles,
      ms: Date.now() - t0,
    });
  } catch (err) {
    report(name, false, {
      error: String((err as Error).stack ?? err),
      streams: await Promise.all(streams.map((s) => s.stop())),
      ikeCapture: await capture?.stop().catch((e) => String(e)),
      ms: Date.now() - t0,
    });
  }
}

/**
 * Opt-in (--dpd-probe): ca's DPD liveness request is in flight while cb is
 * SIGKILLed and restarted (continuous checkpoint, RFC 6311 message ID sync).
 * A live peer must not be declared dead: the same SAs must survive the probe's
 * whole timeout, with no datagram lost and no IKE_SA_INIT.
 */
async function probeAcrossCrash(): Promise<void> {
  const name = 'DPD probe in flight across a SIGKILL';
  const t0 = Date.now();
  const streams: Stream[] = [];
  let capture: Capture | undefined;
  try {
    await waitMeshSettled([A, B], 60_000);
    const before = await pairSnapshot();
    if (Capture.available()) {
      capture = new Capture('ca', 'probe');
      await capture.start();
    }
    streams.push(new Stream('ca->cb', 'ca', '10.1.0.1', 'cb', '10.2.0.1', 7001));
    streams.push(new Stream('cb->ca', 'cb', '10.2.0.1', 'ca', '10.1.0.1', 7002));
    for (const s of streams) s.start();
    // An exchange initiated by cb moves the message IDs: its continuous checkpoint (not a
    // handover one left by an earlier planned restart) is what the crashed cb restores, with
    // inexact IDs, so it re-synchronises them (RFC 6311) while ca's probe is pending.
    const own = await ControlClient.connect(B.sock, { timeoutMs: 30_000 });
    const ownProbe = await own.request('dpd', { peer: 'ca' });
    own.close();
    await sleep(1000);
    const cpBeforeKill = checkpointIkeSas(B).kind;
    await stopDaemon(B, 'SIGKILL');
    // The probe goes out while cb is away; its answer (or the verdict) comes after the DPD timeout.
    const client = await ControlClient.connect(A.sock, { timeoutMs: 300_000 });
    const probeAt = Date.now();
    const verdict = client.request('dpd', { peer: 'cb' }).then(
      (r) => ({ ms: Date.now() - probeAt, result: r as unknown }),
      (e) => ({ ms: Date.now() - probeAt, result: String(e) }),
    );
    await sleep(500);
    startDaemon(B, 'probe');
    const timeoutMs = Number.parseInt(DPD[1], 10) * 1000;
    const answered = await Promise.race([verdict, sleep(timeoutMs + 10_000).then(() => undefined)]);
    client.close();
    await sleep(2000);
    const results: StreamResult[] = [];
    for (const s of streams) results.push(await s.stop());
    streams.length = 0;
    const ike = capture ? await capture.stop() : undefined;
    capture = undefined;
    const after = await pairSnapshot();
    const problems: string[] = [];
    if (!after.settled || after.ca?.ike !== before.ca?.ike || after.cb?.child !== before.cb?.child)
      problems.push(
        `SAs changed: before ${JSON.stringify([before.ca, before.cb])} after ${JSON.stringify([after.ca, after.cb])}`,
      );
    if (after.kernel.ca.length !== 2 || after.kernel.cb.length !== 2)
      problems.push(`ESP SAs per namespace: ca ${after.kernel.ca.length}, cb ${after.kernel.cb.length} (want 2)`);
    for (const r of results) if (r.lost > 0) problems.push(`${r.name}: lost ${r.lost} of ${r.sent}`);
    if (ike && ike.ikeSaInit > 0) problems.push(`${ike.ikeSaInit} IKE_SA_INIT messages on the wire`);
    report(name, problems.length === 0, {
      problems,
      probe: answered ?? 'no verdict within the DPD timeout + 10 s',
      cbProbeFirst: ownProbe,
      cbCheckpointAtKill: cpBeforeKill,
      streams: results,
      ikeCapture: ike ?? 'no capture tool',
      before: { ca: before.ca, cb: before.cb },
      after: { ca: after.ca, cb: after.cb, kernel: after.kernel, checkpoint: after.checkpoint },
      ms: Date.now() - t0,
    });
  } catch (err) {
    report(name, false, {
      error: String((err as Error).stack ?? err),
      streams: await Promise.all(streams.map((s) => s.stop())),
      ikeCapture: await capture?.stop().catch((e) => String(e)),
      ms: Date.now() - t0,
    });
  }
}

// ---- mesh --------------------------------------------------------------------

const MESH = [1, 2, 3, 4, 5].map((i) => `n${i}`);
const meshAddr = (i: number) => `10.0.${i}.2`;

async function meshTopology(): Promise<Node[]> {
  let script = 'set -e\nip netns del hub 2>/dev/null || true\nip netns add hub\nip -n hub link set lo up\n';
  script += "ip netns exec hub bash -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'\n";
  for (let i = 1; i <= 5; i++) {
    script += `ip netns del n${i} 2>/dev/null || true
ip netns add n${i}
ip link add eth0 netns n${i} type veth peer name p${i} netns hub
ip -n n${i} link set lo up
ip -n n${i} addr add ${meshAddr(i)}/24 dev eth0
ip -n n${i} link set eth0 up
ip -n n${i} route add default via 10.0.${i}.1
ip -n hub addr add 10.0.${i}.1/24 dev p${i}
ip -n hub link set p${i} up
`;
  }
  await sh(script);
  return MESH.map((name, k) => {
    const i = k + 1;
    // The higher-numbered node of each pair initiates: no crossing streams at start-up.
    const peers = MESH.filter((p) => p !== name).map((p) => {
      const j = Number(p.slice(1));
      return { name: p, addr: meshAddr(j), start: i > j ? 'now' : 'none' } as PeerDef;
    });
    return mkNode(name, meshAddr(i), 'transport', peers);
  });
}

async function meshScenario(): Promise<void> {
  const name = 'mesh rolling restart';
  const t0 = Date.now();
  const streams: Stream[] = [];
  let nodes: Node[] = [];
  try {
    nodes = await meshTopology();
    for (const n of nodes) writeConfig(n);
    for (const n of nodes) startDaemon(n, 'mesh');
    const upMs = await waitMeshSettled(nodes, 180_000);
    const spis = async () => {
      const m: Record<string, string | undefined> = {};
      for (const n of nodes) {
        const r = await status(n);
        for (const p of n.peers)
          m[`${n.name}-${p.name}`] = `${view(peerOf(r, p.name))?.ike} ${view(peerOf(r, p.name))?.child}`;
      }
      return m;
    };
    const before = await spis();
    for (let i = 1; i <= 5; i++) {
      const j = (i % 5) + 1;
      streams.push(new Stream(`n${i}->n${j}`, `n${i}`, meshAddr(i), `n${j}`, meshAddr(j), 7100 + i));
    }
    for (const s of streams) s.start();
    await sleep(1000);
    const problems: string[] = [];
    const cycles: Record<string, unknown>[] = [];
    const rollStart = Date.now();
    for (const n of nodes) {
      const at = Date.now();
      const exit = await stopDaemon(n, 'SIGTERM');
      startDaemon(n, 'mesh');
      let back = -1;
      try {
        await waitMeshSettled(nodes, 90_000);
        back = Date.now() - at;
      } catch {
        problems.push(`${n.name}: the mesh did not settle after its restart`);
      }
      cycles.push({ node: n.name, exit, downToSettledMs: back });
      if (exit !== 0) problems.push(`${n.name}: SIGTERM exit ${exit}`);
      if (back < 0) break;
    }
    const rollMs = Date.now() - rollStart;
    await sleep(3000);
    const results: StreamResult[] = [];
    for (const s of streams) results.push(await s.stop());
    streams.length = 0;
    const after = await spis();
    for (const [pair, v] of Object.entries(before))
      if (after[pair] !== v) problems.push(`${pair}: ${v} -> ${after[pair]}`);
    const espCounts: Record<string, number> = {};
    for (const n of nodes) {
      const k = await xfrmStates(n.ns);
      espCounts[n.name] = k.length;
      if (k.length !== 8) problems.push(`${n.name}: ${k.length} ESP SAs (want 8: 4 peers x in/out)`);
      const cp = checkpointIkeSas(n);
      if (cp.ikeSas.length !== 4) problems.push(`${n.name}: ${cp.ikeSas.length} IKE SAs in its checkpoint (want 4)`);
    }
    for (const r of results) if (r.lost > 0) problems.push(`${r.name}: lost ${r.lost} of ${r.sent}`);
    report(name, problems.length === 0, {
      problems,
      nodes: nodes.length,
      pairs: 10,
      upMs,
      rollMs,
      cycles,
      streams: results,
      espSasPerNode: espCounts,
      ms: Date.now() - t0,
    });
  } catch (err) {
    report(name, false, {
      error: String((err as Error).stack ?? err),
      streams: await Promise.all(streams.map((s) => s.stop())),
      ms: Date.now() - t0,
    });
  } finally {
    await Promise.all(nodes.map((n) => stopDaemon(n, 'SIGKILL')));
    await sh(`for ns in hub ${MESH.join(' ')}; do ip netns del $ns 2>/dev/null; done; true`);
  }
}

async function main(): Promise<void> {
  const restarts = arg('--restarts');
  const budgetS = Number(arg('--budget-s') ?? 90);
  const kills = Number(arg('--kills') ?? 3);
  try {
    rmSync(LOGS, { recursive: true, force: true });
    rmSync(RESULTS, { force: true });
    await stage();
    await pairTopology();
    for (const n of [A, B]) writeConfig(n);
    for (const n of [A, B]) startDaemon(n, 'start');
    const upMs = await waitMeshSettled([A, B], 90_000);
    process.stdout.write(`pair up in ${upMs} ms; capture tool: ${Capture.available() ?? 'none'}\n`);
  } catch (err) {
    report('setup', false, { error: String((err as Error).stack ?? err) });
    process.exit(1);
  }
  if (restarts) await pairScenario('planned', Number(restarts), undefined);
  else await pairScenario('planned', 3, budgetS * 1000);
  if (kills > 0) await pairScenario('crash', kills, undefined);
  if (process.argv.includes('--dpd-probe')) await probeAcrossCrash();
  for (const n of [A, B]) await stopDaemon(n, 'SIGKILL');
  await sh('ip netns del ca; ip netns del cb').catch(() => '');
  if (process.argv.includes('--mesh')) await meshScenario();
  process.exit(failures ? 1 : 0);
}

void main();
