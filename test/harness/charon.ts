/**
 * An independent strongSwan charon per network namespace.
 *
 * charon hard-codes /var/run/charon.pid, so each instance runs with a private /run:
 * `ip netns exec` already gives the command its own mount namespace (slave of the host),
 * and inside it the instance's own `<dir>/run` is bind-mounted over /run. The vici socket
 * lives in that directory too, so `swanctl --uri unix://<dir>/run/charon.vici` reaches it
 * from the host. ESP goes through the kernel-libipsec plugin (userspace ESP over a TUN
 * device, always UDP-encapsulated), since the host kernel has no ESP; kernel-netlink stays
 * loaded for routes (table 220) and policies.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileTail, HarnessError, type Netns, type Proc, randomId, run, waitFor } from './netns.js';
import { type ConnSpec, parsePretty, swanctlConf, type ViciSection, type ViciValue } from './swanctl-conf.js';

export const CHARON_BIN = '/usr/lib/ipsec/charon';

export const CHARON_PLUGINS = [
  'random',
  'nonce',
  'openssl',
  'kdf',
  'hmac',
  'sha2',
  'sha1',
  'aes',
  'pem',
  'pkcs1',
  'pkcs8',
  'x509',
  'pubkey',
  'constraints',
  'kernel-libipsec',
  'kernel-netlink',
  'socket-default',
  'vici',
];

/** Credential folders swanctl scans (missing ones make it print an error per folder). */
const SWANCTL_SUBDIRS = [
  'x509',
  'x509ca',
  'x509ocsp',
  'x509aa',
  'x509ac',
  'x509crl',
  'pubkey',
  'private',
  'rsa',
  'ecdsa',
  'bliss',
  'pkcs8',
  'pkcs12',
];

export interface CharonOptions {
  /** Log levels per subsystem (default: default=1 ike=2 knl=1 cfg=1). Use ike=4 to log keys. */
  logLevels?: Record<string, number>;
  /** Retransmission knobs (charon.retransmit_*). */
  retransmit?: { timeout?: number; base?: number; tries?: number; jitter?: number; limit?: number };
  /** false: use the host kernel's XFRM (no ESP here: CHILD_SAs fail to install). */
  libipsec?: boolean;
  plugins?: string[];
  /** Extra `charon { key = value }` settings (dotted keys allowed: `plugins.vici.x`). */
  settings?: Record<string, string | number | boolean>;
  /** Start-up timeout for the vici socket. */
  startTimeoutMs?: number;
}

export interface ChildSaInfo {
  key: string;
  name: string;
  uniqueid: string;
  reqid: string;
  state: string;
  mode: string;
  protocol: string;
  encap: boolean;
  spiIn: string;
  spiOut: string;
  localTs: string[];
  remoteTs: string[];
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  raw: ViciSection;
}

export interface IkeSaInfo {
  conn: string;
  uniqueid: string;
  version: number;
  state: string;
  initiator: boolean;
  localHost: string;
  remoteHost: string;
  localId: string;
  remoteId: string;
  initiatorSpi: string;
  responderSpi: string;
  natLocal: boolean;
  natRemote: boolean;
  children: ChildSaInfo[];
  raw: ViciSection;
}

const str = (v: ViciValue | undefined): string => (typeof v === 'string' ? v : '');
const strs = (v: ViciValue | undefined): string[] => (Array.isArray(v) ? v : typeof v === 'string' ? [v] : []);
const num = (v: ViciValue | undefined): number => (typeof v === 'string' ? Number(v) : 0);
const sec = (v: ViciValue | undefined): ViciSection => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});

/** Turns `swanctl --list-sas --pretty` output into typed IKE/CHILD SA records. */
export function parseListSas(text: string): IkeSaInfo[] {
  const out: IkeSaInfo[] = [];
  for (const msg of parsePretty(text)) {
    if (msg.name !== 'list-sa event') continue;
    for (const [conn, v] of Object.entries(msg.body)) {
      const s = sec(v);
      const children = Object.entries(sec(s['child-sas'])).map(([key, cv]): ChildSaInfo => {
        const c = sec(cv);
        return {
          key,
          name: str(c.name),
          uniqueid: str(c.uniqueid),
          reqid: str(c.reqid),
          state: str(c.state),
          mode: str(c.mode),
          protocol: str(c.protocol),
          encap: str(c.encap) === 'yes',
          spiIn: str(c['spi-in']),
          spiOut: str(c['spi-out']),
          localTs: strs(c['local-ts']),
          remoteTs: strs(c['remote-ts']),
          bytesIn: num(c['bytes-in']),
          bytesOut: num(c['bytes-out']),
          packetsIn: num(c['packets-in']),
          packetsOut: num(c['packets-out']),
          raw: c,
        };
      });
      out.push({
        conn,
        uniqueid: str(s.uniqueid),
        version: num(s.version),
        state: str(s.state),
        initiator: str(s.initiator) === 'yes',
        localHost: str(s['local-host']),
        remoteHost: str(s['remote-host']),
        localId: str(s['local-id']),
        remoteId: str(s['remote-id']),
        initiatorSpi: str(s['initiator-spi']),
        responderSpi: str(s['responder-spi']),
        natLocal: str(s['nat-local']) === 'yes',
        natRemote: str(s['nat-remote']) === 'yes',
        children,
        raw: s,
      });
    }
  }
  return out;
}

/** strongswan.conf text for one instance. */
export function strongswanConf(dir: string, opts: CharonOptions): string {
  const levels = { default: 1, ike: 2, knl: 1, cfg: 1, ...opts.logLevels };
  const plugins = opts.plugins ?? CHARON_PLUGINS.filter((p) => opts.libipsec !== false || p !== 'kernel-libipsec');
  const rt = opts.retransmit ?? {};
  const settings: string[] = [];
  for (const [k, v] of Object.entries(opts.settings ?? {})) {
    const path = k.split('.');
    const last = path.pop()!;
    settings.push(
      `${path.map((p) => `${p} {`).join(' ')} ${last} = ${v === true ? 'yes' : v === false ? 'no' : v} ${path.map(() => '}').join(' ')}`,
    );
  }
  return `# generated by test/harness/charon.ts
charon {
  load_modular = no
  load = ${plugins.join(' ')}
  port = 500
  port_nat_t = 4500
  install_virtual_ip = no
${rt.timeout !== undefined ? `  retransmit_timeout = ${rt.timeout}\n` : ''}${rt.base !== undefined ? `  retransmit_base = ${rt.base}\n` : ''}${rt.tries !== undefined ? `  retransmit_tries = ${rt.tries}\n` : ''}${rt.jitter !== undefined ? `  retransmit_jitter = ${rt.jitter}\n` : ''}${rt.limit !== undefined ? `  retransmit_limit = ${rt.limit}\n` : ''}  filelog {
    main {
      path = ${join(dir, 'charon.log')}
      time_format = %H:%M:%S
      time_add_ms = yes
      ike_name = yes
      flush_line = yes
      append = yes
${Object.entries(levels)
  .map(([k, v]) => `      ${k} = ${v}`)
  .join('\n')}
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
  plugins {
    vici {
      socket = unix://${join(dir, 'run', 'charon.vici')}
    }
  }
${settings.map((s) => `  ${s}`).join('\n')}
}
swanctl {
  load = pem pkcs1 pkcs8 x509 pubkey openssl random nonce
  socket = unix://${join(dir, 'run', 'charon.vici')}
}
`;
}

/** One running (or stopped) charon instance in a namespace. */
export class Charon {
  readonly dir: string;
  readonly swanctlDir: string;
  readonly logFile: string;
  readonly confFile: string;
  readonly viciUri: string;
  proc: Proc | undefined;
  private conns: string | undefined;
  /** ms from spawning charon until its vici socket answered, for the last start. */
  lastStartMs = 0;

  private constructor(
    readonly ns: Netns,
    readonly label: string,
    readonly opts: CharonOptions,
  ) {
    this.dir = ns.lab.subdir(`charon-${label}-${randomId(2)}`);
    this.swanctlDir = join(this.dir, 'swanctl');
    mkdirSync(join(this.dir, 'run'), { recursive: true });
    for (const d of SWANCTL_SUBDIRS) mkdirSync(join(this.swanctlDir, d), { recursive: true });
    this.logFile = join(this.dir, 'charon.log');
    this.confFile = join(this.dir, 'strongswan.conf');
    this.viciUri = `unix://${join(this.dir, 'run', 'charon.vici')}`;
    writeFileSync(this.confFile, strongswanConf(this.dir, opts));
    writeFileSync(join(this.swanctlDir, 'swanctl.conf'), 'connections {\n}\n');
  }

  /** Creates the instance's files and starts charon inside `ns`. */
  static async start(ns: Netns, label: string, opts: CharonOptions = {}): Promise<Charon> {
    const c = new Charon(ns, label, opts);
    ns.lab.onDestroy(() => c.proc?.stop(2000));
    await c.startProcess();
    return c;
  }

  private async startProcess(): Promise<void> {
    const run_ = join(this.dir, 'run');
    // A stale pid file or socket from a killed instance would make charon refuse to start.
    await run(['rm', '-f', join(run_, 'charon.pid'), join(run_, 'charon.vici')]);
    this.proc = this.ns.spawn(['sh', '-c', `mount --bind '${run_}' /run && exec ${CHARON_BIN}`], {
      env: { STRONGSWAN_CONF: this.confFile },
      logFile: join(this.dir, 'stdout.log'),
    });
    const t0 = Date.now();
    const proc = this.proc;
    await waitFor(
      `charon ${this.label} to open its vici socket`,
      async () => {
        if (!proc.running) throw new HarnessError(`charon ${this.label} exited: ${JSON.stringify(proc.exit)}`);
        const r = await this.swanctl(['--stats'], { allowFail: true });
        return r.code === 0;
      },
      { timeoutMs: this.opts.startTimeoutMs ?? 10_000, context: () => this.logTail() },
    );
    this.lastStartMs = Date.now() - t0;
  }

  /** Runs swanctl against this instance; throws with the charon log tail on failure. */
  async swanctl(
    args: string[],
    opts: { allowFail?: boolean; timeoutMs?: number } = {},
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const r = await run(['swanctl', ...args, '--uri', this.viciUri], {
      env: { STRONGSWAN_CONF: this.confFile, SWANCTL_DIR: this.swanctlDir },
      allowFail: true,
      timeoutMs: opts.timeoutMs ?? 15_000,
    });
    if (r.code !== 0 && !opts.allowFail) {
      throw new HarnessError(
        `swanctl ${args.join(' ')} on charon ${this.label} failed (exit ${r.code ?? r.signal})\n` +
          `--- swanctl output ---\n${r.stdout}${r.stderr}\n${this.logTail()}`,
      );
    }
    return r;
  }

  /** Copies a credential file into SWANCTL_DIR/<kind>/ and returns its base name. */
  installFile(
    kind: 'x509' | 'x509ca' | 'x509crl' | 'pubkey' | 'private' | 'ecdsa' | 'rsa' | 'pkcs8',
    src: string,
  ): string {
    const name = basename(src);
    copyFileSync(src, join(this.swanctlDir, kind, name));
    return name;
  }

  /** Writes swanctl.conf (text or typed connections) and loads everything (`--load-all`). */
  async loadConns(conf: string | ConnSpec[]): Promise<void> {
    this.conns = typeof conf === 'string' ? conf : swanctlConf(conf);
    writeFileSync(join(this.swanctlDir, 'swanctl.conf'), this.conns);
    await this.loadAll();
  }

  /**
   * `swanctl --load-all`, failing on any problem. swanctl exits 0 on a syntax error in
   * swanctl.conf ("invalid config file") and on connections that fail to load, so the
   * output is checked as well.
   */
  private async loadAll(): Promise<void> {
    const r = await this.swanctl(['--load-all', '--noprompt'], { allowFail: true });
    const out = r.stdout + r.stderr;
    if (r.code !== 0 || /invalid config file|syntax error|failed to load|loading .* failed|\bfailed\b/i.test(out)) {
      throw new HarnessError(
        `swanctl --load-all on charon ${this.label} reported errors (exit ${r.code}):\n${out}\n` +
          `--- swanctl.conf ---\n${this.conns ?? ''}\n${this.logTail(20)}`,
      );
    }
  }

  async initiate(child: string, ike?: string, timeoutS = 10): Promise<string> {
    const args = ['--initiate', '--child', child, '--timeout', String(timeoutS)];
    if (ike) args.push('--ike', ike);
    return (await this.swanctl(args, { timeoutMs: (timeoutS + 5) * 1000 })).stdout;
  }

  async initiateIke(ike: string, timeoutS = 10): Promise<string> {
    return (await this.swanctl(['--initiate', '--ike', ike, '--timeout', String(timeoutS)])).stdout;
  }

  async terminate(ike: string, timeoutS = 5): Promise<string> {
    return (await this.swanctl(['--terminate', '--ike', ike, '--timeout', String(timeoutS), '--force'])).stdout;
  }

  /** Rekeys an IKE SA (`ike`) or CHILD_SA (`child`) by name, or by unique id. */
  async rekey(target: { ike?: string; child?: string; ikeId?: string; childId?: string; reauth?: boolean }) {
    const args = ['--rekey'];
    if (target.ike) args.push('--ike', target.ike);
    if (target.child) args.push('--child', target.child);
    if (target.ikeId) args.push('--ike-id', target.ikeId);
    if (target.childId) args.push('--child-id', target.childId);
    if (target.reauth) args.push('--reauth');
    return (await this.swanctl(args)).stdout;
  }

  async listSas(): Promise<IkeSaInfo[]> {
    return parseListSas((await this.swanctl(['--list-sas', '--pretty'])).stdout);
  }

  /** Waits until an ESTABLISHED IKE SA of `conn` has an INSTALLED CHILD_SA `child`. */
  async waitChild(conn: string, child: string, timeoutMs = 10_000): Promise<{ ike: IkeSaInfo; child: ChildSaInfo }> {
    return waitFor(
      `charon ${this.label}: CHILD_SA ${conn}/${child} INSTALLED`,
      async () => {
        for (const ike of await this.listSas()) {
          if (ike.conn !== conn || ike.state !== 'ESTABLISHED') continue;
          const c = ike.children.find((x) => x.name === child && x.state === 'INSTALLED');
          if (c) return { ike, child: c };
        }
        return undefined;
      },
      { timeoutMs, intervalMs: 100, context: () => this.logTail() },
    );
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.proc?.kill(signal);
  }

  /** Stops (SIGTERM, then SIGKILL) and waits for exit. */
  async stop(): Promise<void> {
    await this.proc?.stop(3000);
  }

  /** Starts again (after kill/stop) and reloads the last swanctl.conf. */
  async restart(opts: { reload?: boolean } = {}): Promise<void> {
    if (this.proc?.running) await this.stop();
    await this.startProcess();
    if (this.conns !== undefined && opts.reload !== false) await this.loadAll();
  }

  logText(): string {
    return fileTail(this.logFile, 1_000_000);
  }

  logTail(lines = 60): string {
    return `--- charon ${this.label} log ${this.logFile} (last ${lines} lines) ---\n${fileTail(this.logFile, lines)}`;
  }
}

/** IKEv2 keys of one IKE SA as logged by charon at `ike=4` (`Sk_ei secret => ...`). */
export interface Ikev2Keys {
  conn: string;
  uniqueid: string;
  skEi: Buffer;
  skEr: Buffer;
  skAi: Buffer;
  skAr: Buffer;
}

/** Extracts `Sk_{ei,er,ai,ar} secret` dumps per IKE SA (`<conn|id>`) from a charon log. */
export function ikev2KeysFromLog(log: string): Ikev2Keys[] {
  const head = /<(?:([^|>]*)\|)?(\d+)> Sk_(ei|er|ai|ar) secret => (\d+) bytes/;
  const dump = /<[^>]*>\s+(\d+): ((?:[0-9A-F]{2} ){1,16})/;
  const lines = log.split('\n');
  const bySa = new Map<string, Partial<Ikev2Keys> & { conn: string; uniqueid: string }>();
  for (let i = 0; i < lines.length; i++) {
    const m = head.exec(lines[i] ?? '');
    if (!m) continue;
    const size = Number(m[4]);
    let hex = '';
    for (let j = i + 1; hex.length < size * 2 && j < lines.length; j++) {
      const d = dump.exec(lines[j] ?? '');
      if (!d) break;
      hex += (d[2] ?? '').replace(/ /g, '');
    }
    const key = `${m[1] ?? ''}|${m[2]}`;
    const entry = bySa.get(key) ?? { conn: m[1] ?? '', uniqueid: m[2] ?? '' };
    const buf = Buffer.from(hex.slice(0, size * 2), 'hex');
    if (m[3] === 'ei') entry.skEi = buf;
    if (m[3] === 'er') entry.skEr = buf;
    if (m[3] === 'ai') entry.skAi = buf;
    if (m[3] === 'ar') entry.skAr = buf;
    bySa.set(key, entry);
  }
  return [...bySa.values()].filter((e): e is Ikev2Keys => !!(e.skEi && e.skEr && e.skAi && e.skAr));
}
