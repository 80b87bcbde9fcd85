/**
 * Shared pieces of the guest scripts that run real `coatid` daemons in the
 * qemu VM (test/vm/guest/daemon-e2e.ts for IKEv2, ikev1-e2e.ts for IKEv1,
 * restart-e2e.ts for restarts and crashes): staging coatid into tmpfs, the
 * two-namespace topology, writing a daemon's configuration, starting/stopping
 * daemons with stamped logs, status over the admin socket, `ip -s xfrm state`
 * parsing, pings, sequence-numbered UDP streams, a packet capture of one
 * interface (with a pcap reader), and the `RESULT {json}` lines the host side
 * asserts.
 *
 *   ca: eth0 192.0.2.1/24, protected subnet address 10.1.0.1 (on lo)
 *   cb: eth0 192.0.2.2/24, protected subnet address 10.2.0.1 (on lo)
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ControlClient } from '../../../src/control/client.js';
import type { PeerStatus, StatusReport } from '../../../src/control/types.js';
import { IkeUdpSocket } from '../../../src/net/udp-socket.js';

export const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const DIST = resolve(here, '..', '..', '..');
export const REPO = resolve(DIST, '..');
export const CACHE = join(REPO, '.cache', 'vm');
/** coatid/coatictl run from a tmpfs copy: loading their module graph over 9p took 10-28 s per start. */
export const PKG = '/tmp/coati-pkg';
export const COATID = join(PKG, 'dist', 'src', 'daemon', 'coatid.js');
export const COATICTL = join(PKG, 'dist', 'src', 'control', 'cli', 'coatictl.js');
/** The host's dumpcap/tcpdump and its libraries, unpacked from the tarball test/vm/pack.ts builds. */
export const CAPTOOL = '/tmp/coati-captool';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `--name value` from the command line. */
export function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

let failures = 0;
export const failureCount = () => failures;
let resultsFile: string | undefined;

/** Every `RESULT` line also goes to `file` (on the share: the harness removes its run folder afterwards). */
export function copyResultsTo(file: string): void {
  rmSync(file, { force: true });
  resultsFile = file;
}

/** One `RESULT {json}` line on stdout per check (the host side turns each into a vitest test). */
export function report(name: string, ok: boolean, detail: unknown = {}): void {
  if (!ok) failures++;
  const line = `RESULT ${JSON.stringify({ name, ok, detail }, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}\n`;
  process.stdout.write(line);
  if (resultsFile) appendFileSync(resultsFile, line);
}

export async function sh(script: string): Promise<string> {
  const r = await run('bash', ['-c', script], { maxBuffer: 16 << 20 });
  return r.stdout;
}

/**
 * Unpacks the tarball the host side packed (`.cache/vm/<tarName>`: one file
 * over 9p, fast) into PKG, or else copies dist/src, the native addon and the
 * runtime dependency closure (hoisted node_modules) there. Also unpacks the
 * capture tool tarball when `capTar` names one that exists.
 */
export async function stagePackage(tarName: string | undefined, capTar?: string): Promise<number> {
  const t0 = Date.now();
  rmSync(PKG, { recursive: true, force: true });
  const tar = tarName ? join(CACHE, tarName) : undefined;
  if (tar && existsSync(tar)) {
    mkdirSync(PKG, { recursive: true });
    await run('tar', ['-xf', tar, '-C', PKG]);
  } else {
    cpSync(join(REPO, 'dist', 'src'), join(PKG, 'dist', 'src'), {
      recursive: true,
      filter: (f) => !f.endsWith('.map'),
    });
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
  }
  rmSync(CAPTOOL, { recursive: true, force: true });
  if (capTar && existsSync(join(CACHE, capTar))) {
    mkdirSync(CAPTOOL, { recursive: true });
    await run('tar', ['-xf', join(CACHE, capTar), '-C', CAPTOOL]);
  }
  return Date.now() - t0;
}

/** One coatid: its namespace (= name), configuration directory, admin socket and current process. */
export interface Daemon {
  name: string;
  addr: string;
  dir: string;
  sock: string;
  proc?: ChildProcess;
  /** The current process's exit: its exit code or signal. */
  exited?: Promise<number | string>;
  starts: number;
  /** When the current process logged `coatid ... started` (its control socket is up by then). */
  startedAt?: number;
  /** The current process's log lines (ms timestamps), for events the test times (e.g. `peer dead`). */
  lines?: { t: number; line: string }[];
}

/** A daemon of a pair: one peer, one protected subnet each. */
export interface Node extends Daemon {
  peer: string;
  peerAddr: string;
  inner: string;
  subnet: string;
  peerSubnet: string;
}

const slash24 = (a: string) => `${a.split('.').slice(0, 3).join('.')}.0/24`;

export function mkNode(
  work: string,
  name: string,
  peer: string,
  addr: string,
  peerAddr: string,
  inner: string,
  peerInner: string,
): Node {
  return {
    name,
    peer,
    addr,
    peerAddr,
    inner,
    subnet: slash24(inner),
    peerSubnet: slash24(peerInner),
    dir: join(work, name),
    sock: join(work, name, 'coati.sock'),
    starts: 0,
  };
}

/** The pair ca (192.0.2.1, 10.1.0.1) <-> cb (192.0.2.2, 10.2.0.1); `work` holds their configuration. */
export function pairNodes(work: string): [Node, Node] {
  return [
    mkNode(work, 'ca', 'cb', '192.0.2.1', '192.0.2.2', '10.1.0.1', '10.2.0.1'),
    mkNode(work, 'cb', 'ca', '192.0.2.2', '192.0.2.1', '10.2.0.1', '10.1.0.1'),
  ];
}

/** Namespaces ca and cb joined by one veth, static neighbours (no ARP: counters equal datagrams). */
export async function pairTopology(): Promise<void> {
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

/** What goes into a daemon's coati.conf ([defaults]) and its one peer file. */
export interface DaemonSettings {
  version?: 1 | 2;
  ikeProposals: string;
  espProposals: string;
  pfs?: boolean;
  mode: 'transport' | 'tunnel';
  /** `[defaults] start` (omitted: per peer, see PeerFile). */
  start?: 'now' | 'none' | 'trap';
  dpdDelay: string;
  dpdTimeout: string;
  dpdAction: 'restart' | 'clear' | 'trap';
  restartBackoffMax?: string;
  retransmitBase?: string;
  retransmitTries?: number;
  retransmitMax?: string;
  ikeLifetime?: string;
  childLifetime?: string;
  rekeyMargin?: string;
  rekeyJitter?: string;
  natKeepalive?: string;
  shutdown?: 'delete' | 'keep';
  log?: string;
  /** The peer's address when it differs from `n.peerAddr` (a NAT in between). */
  peerAddress?: string;
}

const q = JSON.stringify;

/** One file in peers.d. */
export interface PeerFile {
  name: string;
  address: string;
  version?: 1 | 2;
  start?: 'now' | 'none' | 'trap';
  localTs?: string;
  remoteTs?: string;
}

/** The pair's configuration: `n`'s one peer, with its subnets as traffic selectors in tunnel mode. */
export function writeConfig(n: Node, s: DaemonSettings, psk?: string): void {
  const ts = s.mode === 'tunnel' ? { localTs: n.subnet, remoteTs: n.peerSubnet } : {};
  writeDaemonConfig(n, s, [{ name: n.peer, address: s.peerAddress ?? n.peerAddr, version: s.version, ...ts }], psk);
}

/** coati.conf ([defaults] from `s`) plus one peers.d file per peer, and the shared PSK. */
export function writeDaemonConfig(
  n: Daemon,
  s: DaemonSettings,
  peers: PeerFile[],
  psk = 'coati-vm-daemon-test-secret-0123456789',
): void {
  rmSync(n.dir, { recursive: true, force: true });
  mkdirSync(join(n.dir, 'peers.d'), { recursive: true });
  mkdirSync(join(n.dir, 'secrets'), { recursive: true, mode: 0o700 });
  writeFileSync(join(n.dir, 'secrets', 'pair.psk'), `${psk}\n`, { mode: 0o600 });
  const opt = (k: string, v: string | boolean | undefined) => (v === undefined ? '' : `${k} = ${q(v)}\n`);
  writeFileSync(
    join(n.dir, 'coati.conf'),
    `[daemon]
state_dir = "${join(n.dir, 'state')}"
socket = "${n.sock}"
listen = ["${n.addr}"]
shutdown = "${s.shutdown ?? 'delete'}"

[log]
default = "${s.log ?? 'info'}"

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
ike_proposals = "${s.ikeProposals}"
esp_proposals = "${s.espProposals}"
${opt('start', s.start)}dpd_delay = "${s.dpdDelay}"
dpd_timeout = "${s.dpdTimeout}"
dpd_action = "${s.dpdAction}"
mode = "${s.mode}"
${opt('restart_backoff_max', s.restartBackoffMax)}${opt('retransmit_base', s.retransmitBase)}${s.retransmitTries === undefined ? '' : `retransmit_tries = ${s.retransmitTries}\n`}${opt('retransmit_max', s.retransmitMax)}${opt('ike_lifetime', s.ikeLifetime)}${opt('child_lifetime', s.childLifetime)}${opt('rekey_margin', s.rekeyMargin)}${opt('rekey_jitter', s.rekeyJitter)}${opt('nat_keepalive', s.natKeepalive)}${s.pfs === undefined ? '' : `pfs = ${s.pfs}\n`}`,
  );
  for (const p of peers) {
    const ts = p.localTs ? `local_ts = ${q(p.localTs)}\nremote_ts = ${q(p.remoteTs)}\n` : '';
    writeFileSync(
      join(n.dir, 'peers.d', `${p.name}.toml`),
      `${p.version === undefined ? '' : `version = ${p.version}\n`}address = ${q(p.address)}\nremote_id = "fqdn:${p.name}.vm"\n${opt('start', p.start)}${ts}`,
    );
  }
}

/** Starts coatid in the node's namespace; its stdout/stderr (with ms stamps) go to `logs/<tag>-<node>-<nn>.log`. */
export function startDaemon(n: Daemon, tag: string, logs: string): void {
  mkdirSync(logs, { recursive: true });
  const log = createWriteStream(join(logs, `${tag}-${n.name}-${String(++n.starts).padStart(2, '0')}.log`));
  const p = spawn('ip', ['netns', 'exec', n.name, process.execPath, COATID, '--config', join(n.dir, 'coati.conf')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const t0 = Date.now();
  const lines: { t: number; line: string }[] = [];
  n.lines = lines;
  n.startedAt = undefined;
  const stamp = (b: Buffer) => {
    const now = Date.now();
    const text = b.toString('utf8');
    log.write(text.replace(/^(?=.)/gm, `[+${String(now - t0).padStart(6)}ms] `));
    for (const line of text.split('\n')) {
      if (!line) continue;
      if (lines.length < 20_000) lines.push({ t: now, line });
      if (n.proc === p && n.startedAt === undefined && /coatid \S+ started/.test(line)) n.startedAt = now;
    }
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

/** Waits for the current process's `coatid ... started` line; returns its time. */
export async function waitStarted(n: Daemon, ms: number): Promise<number> {
  const t0 = Date.now();
  while (n.startedAt === undefined) {
    if (Date.now() - t0 > ms) throw new Error(`${n.name}: no "coatid ... started" log line within ${ms} ms`);
    if (!running(n)) throw new Error(`${n.name}: coatid exited before it started`);
    await sleep(50);
  }
  return n.startedAt;
}

export const running = (n: Daemon) => !!n.proc && n.proc.exitCode === null && n.proc.signalCode === null;

/**
 * Sends `how` (or runs `coatictl restart`) and waits up to `waitMs` for the
 * exit, then SIGKILLs; returns the exit code or signal ('timeout' when it had
 * to be killed).
 */
export async function stopDaemon(
  n: Daemon,
  how: NodeJS.Signals | 'coatictl restart',
  waitMs = 8000,
): Promise<number | string> {
  const p = n.proc;
  if (!p || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? p?.signalCode ?? 'not running';
  if (how === 'coatictl restart') await coatictl(n, ['restart']);
  else p.kill(how);
  const code = await Promise.race([n.exited, sleep(waitMs).then(() => 'timeout')]);
  if (code === 'timeout') {
    p.kill('SIGKILL');
    await n.exited;
  }
  return code ?? 'unknown';
}

export async function coatictl(n: Daemon, args: string[]): Promise<string> {
  const r = await run('ip', ['netns', 'exec', n.name, process.execPath, COATICTL, '--socket', n.sock, ...args]);
  return r.stdout;
}

export async function status(n: Daemon): Promise<StatusReport | undefined> {
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

export const peerOf = (r: StatusReport | undefined, name: string) => r?.peers.find((p) => p.name === name);

/** Up on both sides with an installed Child SA, and both sides agree on the IKE SA and the SPIs. */
export function settled(a: PeerStatus | undefined, b: PeerStatus | undefined): boolean {
  if (a?.state !== 'up' || b?.state !== 'up' || !a.ike || !b.ike) return false;
  if (a.ike.spiI !== b.ike.spiI || a.ike.spiR !== b.ike.spiR) return false;
  const ac = a.children.filter((c) => c.state === 'installed');
  const bc = b.children.filter((c) => c.state === 'installed');
  return ac.length === 1 && bc.length === 1 && ac[0]?.spiIn === bc[0]?.spiOut && ac[0]?.spiOut === bc[0]?.spiIn;
}

/** Waits until `settled` holds for the pair; returns the time it took. */
export async function waitSettled(a: Node, b: Node, ms: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const [sa, sb] = await Promise.all([status(a), status(b)]);
    if (settled(peerOf(sa, a.peer), peerOf(sb, b.peer))) return Date.now() - t0;
    await sleep(100);
  }
  throw new Error(`no settled IKE SA + Child SA on both sides within ${ms} ms`);
}

export interface KSa {
  src: string;
  dst: string;
  spi: string;
  mode: string;
  reqid: number;
  /** `rfc4106(gcm(aes))` etc., or '' when not AEAD. */
  aead: string;
  /** `cbc(aes)` etc. */
  enc: string;
  /** Key length of `enc` (or of the AEAD key incl. salt) in bits. */
  keyBits: number;
  /** `hmac(sha256)` etc. */
  auth: string;
  /** ICV truncation in bits (auth-trunc). */
  authTruncBits: number;
  /** `espinudp 4500 4500` when UDP-encapsulated. */
  encap: string;
  /** Anti-replay window (0 for outbound SAs). */
  replayWindow: number;
  bytes: number;
  packets: number;
  /** The kernel's `use` time (curlft.use_time, set on first use) as `ip -s xfrm state` prints it. */
  use: string;
}

/** `ip -s xfrm state` of one namespace, parsed. */
export async function xfrmStates(ns: string): Promise<KSa[]> {
  const out = await sh(`ip -n ${ns} -s xfrm state`);
  const sas: KSa[] = [];
  for (const block of out.split(/^(?=src )/m)) {
    const head = block.match(
      /^src (\S+) dst (\S+)\s+proto esp spi (0x[0-9a-f]+)(?:\(\d+\))? reqid (\d+)(?:\(0x[0-9a-f]+\))? mode (\w+)/,
    );
    if (!head) continue;
    const cur = block.match(/lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)/);
    // `auth-trunc hmac(sha256) 0xKEY (256 bits) 128`, `enc cbc(aes) 0xKEY (128 bits)`, `aead NAME 0xKEY (160 bits) 128`
    const trunc = block.match(/auth-trunc (\S+) 0x[0-9a-f]+(?: \(\d+ bits\))? (\d+)/);
    const key = block.match(/(?:\benc|\baead) \S+ 0x[0-9a-f]+ \((\d+) bits\)/);
    const encap = block.match(/encap type (\S+) sport (\d+) dport (\d+)/);
    sas.push({
      src: head[1]!,
      dst: head[2]!,
      spi: head[3]!.replace(/^0x/, '').padStart(8, '0'),
      reqid: Number(head[4]),
      mode: head[5]!,
      aead: block.match(/aead (\S+)/)?.[1] ?? '',
      enc: block.match(/\benc (\S+)/)?.[1] ?? '',
      keyBits: Number(key?.[1] ?? 0),
      replayWindow: Number(block.match(/replay-window (\d+)/)?.[1] ?? -1),
      auth: trunc?.[1] ?? block.match(/\bauth (\S+)/)?.[1] ?? '',
      authTruncBits: Number(trunc?.[2] ?? 0),
      encap: encap ? `${encap[1]} ${encap[2]} ${encap[3]}` : '',
      bytes: Number(cur?.[1] ?? -1),
      packets: Number(cur?.[2] ?? -1),
      use: block.match(/ use (\S+ \S+)/)?.[1] ?? '-',
    });
  }
  return sas;
}

export async function xfrmPolicyCount(ns: string): Promise<number> {
  const out = await sh(`ip -n ${ns} xfrm policy`);
  return (out.match(/^src /gm) ?? []).length;
}

export async function coatictlJson(n: Daemon): Promise<StatusReport> {
  return JSON.parse(await coatictl(n, ['status', '--json'])) as StatusReport;
}

/** busybox ping from namespace `ns`; returns the number of replies. */
export async function ping(src: string, dst: string, count: number, ns = 'ca'): Promise<number> {
  const r = await run(
    'ip',
    ['netns', 'exec', ns, 'ping', '-c', String(count), '-i', '0.2', '-W', '2', '-I', src, dst],
    {},
  ).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  return (r.stdout.match(/bytes from/g) ?? []).length;
}

export interface StreamResult {
  name: string;
  sent: number;
  received: number;
  lost: number;
  /** The first lost sequence numbers (up to 50). */
  lostSeqs: number[];
  /** Longest time between two consecutive datagrams received. */
  longestGapMs: number;
  gapAfterSeq: number;
  /** Longest time between two sends (an event-loop stall of the sender is not an outage). */
  longestSendGapMs: number;
  sendErrors: number;
}

/** Sequence-numbered UDP datagrams (64 B) from `src` (in netns `srcNs`) to `dst` (in `dstNs`), one every `intervalMs`. */
export class Stream {
  private seq = 0;
  private readonly sentAt: number[] = [];
  readonly arrivals = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly tx: IkeUdpSocket;
  private readonly rx: IkeUdpSocket;
  private sendErrors = 0;

  constructor(
    readonly name: string,
    srcNs: string,
    src: string,
    dstNs: string,
    private readonly dst: string,
    private readonly port: number,
    private readonly intervalMs = 20,
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
        this.sendErrors++; // counted as lost: it never arrives
      }
      // Fixed schedule (not drifting with the event loop).
      this.timer = setTimeout(tick, Math.max(0, t0 + this.seq * this.intervalMs - Date.now()));
    };
    tick();
  }

  get sent(): number {
    return this.seq;
  }

  /** The first arrival at or after `t` (ms timestamp), if any. */
  firstArrivalAfter(t: number): number | undefined {
    let first: number | undefined;
    for (const at of this.arrivals.values()) if (at >= t && (first === undefined || at < first)) first = at;
    return first;
  }

  /** The last arrival before `t` (ms timestamp), if any. */
  lastArrivalBefore(t: number): number | undefined {
    let last: number | undefined;
    for (const at of this.arrivals.values()) if (at < t && (last === undefined || at > last)) last = at;
    return last;
  }

  /** Silences between consecutive arrivals longer than `minMs`, in arrival order ({ from, to } ms timestamps). */
  gaps(minMs: number): { from: number; to: number; ms: number }[] {
    const ts = [...this.arrivals.values()].sort((x, y) => x - y);
    const out: { from: number; to: number; ms: number }[] = [];
    for (let i = 1; i < ts.length; i++) {
      const ms = (ts[i] as number) - (ts[i - 1] as number);
      if (ms > minMs) out.push({ from: ts[i - 1] as number, to: ts[i] as number, ms });
    }
    return out;
  }

  /** Datagrams sent in [from, to) (ms timestamps) that never arrived. */
  lostBetween(from: number, to: number): number {
    let n = 0;
    for (let s = 0; s < this.seq; s++) {
      const t = this.sentAt[s] ?? 0;
      if (t >= from && t < to && !this.arrivals.has(s)) n++;
    }
    return n;
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
    let longestSendGapMs = 0;
    const lostSeqs: number[] = [];
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
      sendErrors: this.sendErrors,
    };
  }
}

/** Datagrams from `from`'s subnet address to `to`'s through the tunnel (namespaces = node names). */
export const pairStream = (from: Node, to: Node, port: number, intervalMs = 20) =>
  new Stream(`${from.name}->${to.name}`, from.name, from.inner, to.name, to.inner, port, intervalMs);

/** Both directions of the pair: a -> b on port 7002, b -> a on 7003. */
export const pairStreams = (a: Node, b: Node, intervalMs = 20) => [
  pairStream(a, b, 7002, intervalMs),
  pairStream(b, a, 7003, intervalMs),
];

/** One captured IPv4 packet, reduced to what the checks need. */
export interface CapturedPacket {
  /** ms since the capture's first packet. */
  t: number;
  src: string;
  dst: string;
  /** IP protocol: 1 ICMP, 17 UDP, 50 ESP. */
  proto: number;
  sport?: number;
  dport?: number;
  /** UDP payload (up to the capture length). */
  udp?: Buffer;
  /** With `-i any` (Linux cooked capture): sent by this host, or received. */
  dir?: 'in' | 'out';
  /** With `-i any`: on the loopback device. */
  loopback?: boolean;
}

/**
 * A packet capture on one namespace's interface with the host's dumpcap or
 * tcpdump (see CAPTOOL), read back from the pcap file. With `iface = 'any'`
 * the packets carry their direction: on an IPsec endpoint the kernel hands
 * decapsulated tunnel-mode packets to the capture again as received on the
 * interface, so clear text *sent* is what tells a leak.
 */
export class Capture {
  private proc: ChildProcess | undefined;
  readonly file: string;
  constructor(
    private readonly ns: string,
    tag: string,
    private readonly filter = '',
    private readonly iface = 'eth0',
  ) {
    this.file = join('/tmp', `capture-${tag}.pcap`);
  }

  static available(): string | undefined {
    for (const t of ['dumpcap', 'tcpdump']) if (existsSync(join(CAPTOOL, t))) return t;
    return undefined;
  }

  async start(): Promise<void> {
    const tool = Capture.available();
    if (!tool) throw new Error('no capture tool');
    rmSync(this.file, { force: true });
    const f = this.filter ? [this.filter] : [];
    const args =
      tool === 'dumpcap'
        ? ['-q', '-P', '-i', this.iface, ...(this.filter ? ['-f', this.filter] : []), '-w', this.file]
        : ['-i', this.iface, '-U', '-n', '-w', this.file, ...f];
    const p = spawn(
      'ip',
      ['netns', 'exec', this.ns, 'env', `LD_LIBRARY_PATH=${CAPTOOL}/lib`, join(CAPTOOL, tool), ...args],
      { stdio: ['ignore', 'ignore', 'pipe'] },
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

  /** Stops the capture and returns its IPv4 packets. */
  async stop(): Promise<CapturedPacket[]> {
    const p = this.proc;
    if (p && p.exitCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGINT');
      await Promise.race([exited, sleep(5000)]);
    }
    return readPcap(readFileSync(this.file));
  }
}

/** IPv4 packets of a classic pcap file (Ethernet or Linux cooked; microsecond or nanosecond, either byte order). */
export function readPcap(buf: Buffer): CapturedPacket[] {
  const magicLe = buf.readUInt32LE(0);
  const le = magicLe === 0xa1b2c3d4 || magicLe === 0xa1b23c4d;
  const nano = magicLe === 0xa1b23c4d || buf.readUInt32BE(0) === 0xa1b23c4d;
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const link = u32(20);
  if (link !== 1 && link !== 113) throw new Error(`unexpected pcap link type ${link}`);
  // Ethernet: 14-byte header, type at 12. Linux cooked (SLL): 16 bytes, packet type at 0, ARPHRD at 2, protocol at 14.
  const hdr = link === 1 ? 14 : 16;
  const typeAt = link === 1 ? 12 : 14;
  const out: CapturedPacket[] = [];
  let first: number | undefined;
  for (let off = 24; off + 16 <= buf.length; ) {
    const ts = u32(off) * 1000 + u32(off + 4) / (nano ? 1e6 : 1e3);
    const incl = u32(off + 8);
    const pkt = buf.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (pkt.length < hdr + 20 || pkt.readUInt16BE(typeAt) !== 0x0800) continue;
    first ??= ts;
    const ihl = (pkt[hdr]! & 0x0f) * 4;
    const proto = pkt[hdr + 9]!;
    const ip = (o: number) => [...pkt.subarray(hdr + o, hdr + o + 4)].join('.');
    const p: CapturedPacket = { t: Math.round(ts - first), src: ip(12), dst: ip(16), proto };
    if (link === 113) {
      p.dir = pkt.readUInt16BE(0) === 4 ? 'out' : 'in';
      p.loopback = pkt.readUInt16BE(2) === 772;
    }
    if (proto === 17 && pkt.length >= hdr + ihl + 8) {
      p.sport = pkt.readUInt16BE(hdr + ihl);
      p.dport = pkt.readUInt16BE(hdr + ihl + 2);
      p.udp = pkt.subarray(hdr + ihl + 8);
    }
    out.push(p);
  }
  return out;
}

/**
 * What crossed the wire: IKE (UDP 500, or 4500 with the non-ESP marker),
 * ESP (IP protocol 50), ESP-in-UDP (4500 without the marker), NAT-T
 * keepalives (one 0xff byte), and anything else, which between two protected
 * endpoints is clear text (ICMP, the test stream's UDP). Loopback packets are
 * skipped; with a direction (`-i any` on an endpoint), only clear text sent
 * counts as `clear`, received clear text (the kernel's decapsulated packets)
 * is counted as `clearIn`.
 */
export function classify(
  pkts: CapturedPacket[],
  /** Which packets the policies protect (e.g. between the tunnel's subnets); others count as `other`. */
  isProtected: (p: CapturedPacket) => boolean = () => true,
): {
  ike: number;
  esp: number;
  espInUdp: number;
  keepalive: number;
  clear: number;
  clearIn: number;
  other: number;
  clearSamples: string[];
} {
  const r = { ike: 0, esp: 0, espInUdp: 0, keepalive: 0, clear: 0, clearIn: 0, other: 0, clearSamples: [] as string[] };
  for (const p of pkts) {
    if (p.loopback) continue;
    if (p.proto === 50) r.esp++;
    else if (p.proto === 17 && (p.sport === 500 || p.dport === 500)) r.ike++;
    else if (p.proto === 17 && (p.sport === 4500 || p.dport === 4500)) {
      if (p.udp?.length === 1 && p.udp[0] === 0xff) r.keepalive++;
      else if (p.udp && p.udp.length >= 4 && p.udp.readUInt32BE(0) === 0) r.ike++;
      else r.espInUdp++;
    } else if (!isProtected(p)) {
      r.other++;
    } else if (p.dir === 'in') {
      r.clearIn++;
    } else {
      r.clear++;
      if (r.clearSamples.length < 10)
        r.clearSamples.push(
          `+${p.t}ms ${p.src}${p.sport ? `:${p.sport}` : ''} > ${p.dst}${p.dport ? `:${p.dport}` : ''} proto ${p.proto}`,
        );
    }
  }
  return r;
}

const EXCHANGES: Record<number, string> = {
  34: 'IKE_SA_INIT',
  35: 'IKE_AUTH',
  36: 'CREATE_CHILD_SA',
  37: 'INFORMATIONAL',
};

/** IKE messages in a capture by exchange type, request/response (the `R` flag) and sender. */
export function countIke(pkts: CapturedPacket[]): {
  packets: number;
  byExchange: Record<string, number>;
  ikeSaInit: number;
} {
  const byExchange: Record<string, number> = {};
  let packets = 0;
  let ikeSaInit = 0;
  for (const p of pkts) {
    if (p.proto !== 17 || !p.udp) continue;
    let ike = p.udp;
    if (p.dport === 4500 || p.sport === 4500) {
      if (ike.length < 4 || ike.readUInt32BE(0) !== 0) continue; // ESP-in-UDP, not IKE
      ike = ike.subarray(4);
    }
    if (ike.length < 28) continue;
    packets++;
    const exchange = ike[18]!;
    const response = (ike[19]! & 0x20) !== 0;
    const key = `${EXCHANGES[exchange] ?? `exchange ${exchange}`} ${response ? 'response' : 'request'} from ${p.src}`;
    byExchange[key] = (byExchange[key] ?? 0) + 1;
    if (exchange === 34) ikeSaInit++;
  }
  return { packets, byExchange, ikeSaInit };
}

/** The pair's protected traffic: 10.1.0.0/24 <-> 10.2.0.0/24 (ICMP errors between the outer addresses are no leak). */
export const inTunnel = (p: CapturedPacket) => /^10\.[12]\.0\./.test(p.src) && /^10\.[12]\.0\./.test(p.dst);

export type Wire = ReturnType<typeof classify>;

/** Captures on several [namespace, interface] at once, each classified (`inTunnel` is the protected traffic). */
export class Taps {
  private constructor(private readonly caps: [string, Capture][]) {}

  /** undefined when there is no capture tool. */
  static async start(tag: string, where: [ns: string, iface: string][]): Promise<Taps | undefined> {
    if (!Capture.available()) return undefined;
    const caps: [string, Capture][] = where.map(([ns, iface]) => [ns, new Capture(ns, `${tag}-${ns}`, '', iface)]);
    await Promise.all(caps.map(([, c]) => c.start()));
    return new Taps(caps);
  }

  /** Per tap, over the whole capture. */
  async stop(): Promise<Record<string, Wire>> {
    const out: Record<string, Wire> = {};
    for (const [ns, c] of this.caps) out[ns] = classify(await c.stop(), inTunnel);
    return out;
  }
}

/** The host's nft (tools tarball) loading `script` in namespace `ns`, as a shell command. */
export const NFT = join(CAPTOOL, 'nft');
export const nft = (ns: string, script: string) =>
  `ip netns exec ${ns} env LD_LIBRARY_PATH=${CAPTOOL}/lib ${NFT} -f - <<'END'\n${script}\nEND\n`;

/** Loads modules that are not in the initramfs: the full module tree of the same kernel is on the 9p share. */
export async function loadModules(mods: string[]): Promise<void> {
  await sh(`
set -e
KV=$(uname -r)
grep -q " /lib/modules/$KV " /proc/mounts || mount --bind /repo/.cache/vm/kernel/lib/modules/$KV /lib/modules/$KV
for m in ${mods.join(' ')}; do modprobe $m; done`);
}

/** Calls `sample` every 200 ms until stopped; keeps each value that differs from the one before, as `+<ms since t0>ms value`. */
export function sampleChanges(t0: number, sample: () => Promise<string>): { stop: () => Promise<string[]> } {
  const timeline: string[] = [];
  let sampling = true;
  const done = (async () => {
    let last = '';
    while (sampling) {
      const now = await sample();
      if (now !== last) timeline.push(`+${Date.now() - t0}ms ${now}`);
      last = now;
      await sleep(200);
    }
  })();
  return {
    stop: async () => {
      sampling = false;
      await done;
      return timeline;
    },
  };
}

/** SIGTERM for each daemon, then their namespaces' kernel SAs and policies flushed. */
export async function stopAndFlush(nodes: Daemon[]): Promise<void> {
  await Promise.all(nodes.map((n) => stopDaemon(n, 'SIGTERM')));
  await sh(
    `for ns in ${nodes.map((n) => n.name).join(' ')}; do ip -n $ns xfrm state flush; ip -n $ns xfrm policy flush; done`,
  );
}

/**
 * A failed scenario: the error, the streams' and taps' results so far (both
 * stopped here), and the kernel SAs of the pair's namespaces.
 */
export async function reportFailure(
  name: string,
  t0: number,
  err: unknown,
  o: { streams?: Stream[]; taps?: Taps; namespaces?: string[] } = {},
): Promise<void> {
  const kernel: Record<string, KSa[]> = {};
  for (const ns of o.namespaces ?? ['ca', 'cb']) kernel[ns] = await xfrmStates(ns).catch(() => []);
  report(name, false, {
    error: String((err as Error | undefined)?.stack ?? err),
    ...(o.streams ? { streams: await Promise.all(o.streams.map((s) => s.stop().catch(() => undefined))) } : {}),
    ...(o.taps ? { wire: await o.taps.stop().catch((e) => String(e)) } : {}),
    kernel,
    ms: Date.now() - t0,
  });
}

/**
 * Cross-checks `coatictl status --json` of both daemons against both kernels:
 * both peers up on the same IKE SA, one Child SA per side, exactly 2 ESP SAs
 * per namespace, each side's spiIn an inbound kernel SA of its own namespace
 * and the other side's spiOut, mode and algorithms as expected.
 */
export async function crossCheck(
  a: Node,
  b: Node,
  mode: 'transport' | 'tunnel',
  alg: { label: string; ok: (k: KSa) => boolean },
): Promise<Record<string, unknown> & { ok: boolean; problems: string[]; kernel: Record<string, KSa[]> }> {
  const [sa, sb, ka, kb] = await Promise.all([
    coatictlJson(a),
    coatictlJson(b),
    xfrmStates(a.name),
    xfrmStates(b.name),
  ]);
  const pa = peerOf(sa, a.peer);
  const pb = peerOf(sb, b.peer);
  const ca = pa?.children ?? [];
  const cb = pb?.children ?? [];
  const inA = ka.find((s) => s.dst === a.addr);
  const outA = ka.find((s) => s.dst !== a.addr);
  const inB = kb.find((s) => s.dst === b.addr);
  const outB = kb.find((s) => s.dst !== b.addr);
  const problems: string[] = [];
  const want = (cond: boolean, what: string) => {
    if (!cond) problems.push(what);
  };
  want(pa?.state === 'up' && pb?.state === 'up', 'both peers up');
  want(!!pa?.ike && pa.ike.spiI === pb?.ike?.spiI && pa.ike.spiR === pb?.ike?.spiR, 'same IKE SA on both sides');
  want(ca.length === 1 && cb.length === 1, 'one Child SA per side');
  want(ka.length === 2 && kb.length === 2, 'two kernel ESP SAs per namespace');
  want(ca[0]?.spiIn === cb[0]?.spiOut && ca[0]?.spiOut === cb[0]?.spiIn, 'Child SPIs equal crosswise');
  want(inA?.spi === ca[0]?.spiIn && outA?.spi === ca[0]?.spiOut, `${a.name} kernel SPIs = ${a.name} status SPIs`);
  want(inB?.spi === cb[0]?.spiIn && outB?.spi === cb[0]?.spiOut, `${b.name} kernel SPIs = ${b.name} status SPIs`);
  want(outA?.spi === inB?.spi && outB?.spi === inA?.spi, 'kernel SPIs equal crosswise');
  want(
    [...ka, ...kb].every((s) => s.mode === mode),
    `kernel SAs in ${mode} mode`,
  );
  want([...ka, ...kb].every(alg.ok), `kernel SAs use ${alg.label}`);
  want(ca[0]?.mode === mode && cb[0]?.mode === mode, `status reports ${mode} mode`);
  return {
    ok: problems.length === 0,
    problems,
    ike: { [a.name]: pa?.ike, [b.name]: pb?.ike },
    children: {
      [a.name]: ca.map(({ spiIn, spiOut, mode: m, algorithms, encap }) => ({
        spiIn,
        spiOut,
        mode: m,
        algorithms,
        encap,
      })),
      [b.name]: cb.map(({ spiIn, spiOut }) => ({ spiIn, spiOut })),
    },
    kernel: { [a.name]: ka, [b.name]: kb },
  };
}
