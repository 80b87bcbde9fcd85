import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { diffConfig } from '../config/diff.js';
import { type ConfigError, formatConfigError } from '../config/errors.js';
import { loadConfig } from '../config/loader.js';
import type { Config } from '../config/types.js';
import type { ControlServer } from '../control/server.js';
import { startControlServer } from '../control/server.js';
import type { DaemonControl } from '../control/types.js';
import { defaultRandom } from '../crypto/random.js';
import { Ikev1Manager } from '../ikev1/manager.js';
import type { EngineEnv, EngineEvent } from '../ikev2/env.js';
import { Ikev2Manager } from '../ikev2/manager.js';
import { pacedSlotHoldMs, type RetransmitSchedule } from '../ikev2/retransmit.js';
import { MemoryKernel } from '../kernel/memory/memory-kernel.js';
import type { KernelIpsec } from '../kernel/types.js';
import type { XfrmKernel } from '../kernel/xfrm/kernel.js';
import { DEFAULT_OWNERSHIP, type Ownership } from '../kernel/xfrm/ownership.js';
import {
  attachLogger,
  type CoatiEvent,
  CoatiMetrics,
  EVENT_TYPES,
  EventBus,
  Logger,
  type MetricsServer,
  type SaCounters,
  startMetricsServer,
} from '../obs/index.js';
import { systemClock } from '../util/clock.js';
import { InitiationGate } from '../util/paced.js';
import {
  CheckpointError,
  CheckpointWriter,
  eraseCheckpoint,
  readCheckpoint,
  writeCheckpointFile,
} from './checkpoint.js';
import { compilePeer } from './compile.js';
import { createControl } from './control.js';
import { IkeSockets, routeSource } from './net.js';
import { formatThresholds, type SpdThresholds, sameThresholds, spdThresholds } from './spd-hash.js';
import { Systemd } from './systemd.js';

export const VERSION = '0.1.0';

/** A config error without its file:line prefix (column and key stay). */
function locationless(e: ConfigError): string {
  return `${e.column ? `column ${e.column}: ` : ''}${e.key ? `key "${e.key}": ` : ''}${e.message}`;
}

export interface DaemonOptions {
  configPath: string;
  /** Replace the configured kernel backend (tests, demo). */
  kernel?: KernelIpsec;
  /** Log sink (default stderr). */
  logSink?: (line: string) => void;
  /** Network namespace for sockets and the xfrm backend (tests). */
  netns?: string;
  /** The V8 flags coatid set for this process (src/util/v8-flags.ts); logged at start. */
  v8Flags?: readonly string[];
}

/**
 * The composition root: the only place that wires real sockets, the kernel,
 * the clock and randomness into the engine, plus config, control, logs,
 * metrics and systemd.
 */
export class Daemon {
  config!: Config;
  manager!: Ikev2Manager;
  v1!: Ikev1Manager;
  private checkpoint: CheckpointWriter | undefined;
  kernel!: KernelIpsec;
  readonly bus = new EventBus();
  logger!: Logger;
  readonly startedAt = Date.now();
  private sockets: IkeSockets | undefined;
  private control: ControlServer | undefined;
  private metricsServer: MetricsServer | undefined;
  private metrics: CoatiMetrics | undefined;
  private readonly listeners = new Set<(ev: { type: string; time: string; [k: string]: unknown }) => void>();
  private keylogDir: string | null = null;
  readonly systemd = new Systemd();
  private stopping = false;
  /** The one budget of initiations started in bulk: start-up of both engines, and reload's. */
  private readonly gate = new InitiationGate(systemClock, Math.random);

  constructor(private readonly opts: DaemonOptions) {}

  /** The paced-initiation budget now (status, metrics). */
  initiations(): { queued: number; inFlight: number; maxConcurrent: number } {
    return { queued: this.gate.queued, inFlight: this.gate.inFlight, maxConcurrent: this.gate.maxConcurrent };
  }

  /** Loads and validates configuration; throws an Error listing every problem with file:line. */
  static async load(path: string): Promise<Config> {
    const r = await loadConfig(path);
    if (!r.ok)
      throw new Error(`configuration has ${r.errors.length} error(s):\n${r.errors.map(formatConfigError).join('\n')}`);
    return r.config;
  }

  async start(): Promise<void> {
    this.config = await Daemon.load(this.opts.configPath);
    const c = this.config;
    this.logger = new Logger({
      format: c.log.format,
      level: c.log.default,
      subsystems: c.log.subsystems,
      ...(this.opts.logSink ? { sink: this.opts.logSink } : {}),
    });
    attachLogger(this.bus, this.logger.child({ subsystem: 'ike' }));
    const log = this.logger.child({ subsystem: 'daemon' });
    const ownership: Ownership = {
      reqidMin: c.kernel.reqidMin,
      reqidMax: c.kernel.reqidMax,
      priorityMin: c.kernel.policyPriority || DEFAULT_OWNERSHIP.priorityMin,
      priorityMax: (c.kernel.policyPriority || DEFAULT_OWNERSHIP.priorityMin) + 0xffff,
    };
    this.kernel = this.opts.kernel ?? (await this.openKernel(c, ownership));
    await this.applySpdHash(c);
    this.keylogDir = c.daemon.keylog;
    const engineLog = this.logger.child({ subsystem: 'ike' });
    const env: EngineEnv = {
      clock: systemClock,
      random: defaultRandom,
      rand01: Math.random,
      kernel: this.kernel,
      send: (d) => this.sockets?.send(d),
      emit: (ev) => this.onEngineEvent(ev),
      log: engineLog,
      keylog: (table, line) => this.writeKeylog(table, line),
      sourceFor: (remote) => routeSource(remote),
    };
    this.manager = new Ikev2Manager(env, {
      reqidBase: ownership.reqidMin,
      ikePort: c.daemon.port,
      policyPriorityBase: ownership.priorityMin + 0x1000,
    });
    // IKEv1 shares the policy book; its reqids come from the upper half of the owned range.
    this.v1 = new Ikev1Manager(
      env,
      { reqidBase: ownership.reqidMin + Math.floor((ownership.reqidMax - ownership.reqidMin + 1) / 2) },
      this.manager.book,
    );
    // The orphan list (owned SAs a crashed predecessor left) covers IKEv1 peers too.
    this.v1.onPairInstalled = (remote, label) => this.manager.reapOrphansOf(remote, label);
    this.kernel.onEvent((ev) => {
      if (ev.type !== 'acquire') return;
      void this.manager.onAcquire(ev.template.reqid);
      void this.v1.onAcquire(ev.template.reqid);
    });
    for (const peer of c.peers.values()) {
      const policy = await compilePeer(peer, routeSource);
      if (peer.version === 1) this.v1.setPeer(policy);
      else this.manager.setPeer(policy);
    }
    await this.restoreCheckpoint(log);
    // The kernel SAs a crashed predecessor left, listed before the sockets open: once a peer
    // can negotiate, a listing could catch a new Child SA half installed and call it an orphan.
    await this.manager.adoptOrphans();
    this.sockets = new IkeSockets({
      listen: c.daemon.listen,
      port: c.daemon.port,
      nattPort: c.daemon.nattPort,
      bypass: this.kernel.name === 'xfrm',
      ...(this.opts.netns ? { netns: this.opts.netns } : {}),
      ikev2: (data, from, to) => this.manager.receive(data, from, to),
      ikev1: (data, from, to) => this.v1.receive(data, from, to),
      onDrop: (reason, from) => this.bus.emit({ type: 'packet.dropped', reason, from: `${from.addr}:${from.port}` }),
    });
    this.sockets.open();
    this.control = await startControlServer({
      path: c.daemon.socket,
      ...(c.daemon.socketGroup ? { group: c.daemon.socketGroup } : {}),
      control: this.controlApi(),
      logger: this.logger.child({ subsystem: 'control' }),
    });
    await this.startMetrics(c);
    const pacing = startPacing(c);
    this.gate.maxConcurrent = pacing.maxConcurrent;
    await this.manager.start({ ...pacing, gate: this.gate });
    // IKEv1 peers with start = "now" / "trap" (they were only brought up by a reload before).
    await this.v1.start({ ...pacing, gate: this.gate });
    const peers = this.manager.peerNames().length + this.v1.peerNames().length;
    log.notice(`coatid ${VERSION} started`, {
      peers,
      kernel: this.kernel.name,
      ...(this.opts.v8Flags ? { v8Flags: this.opts.v8Flags.join(' ') || 'V8 defaults' } : {}),
    });
    this.systemd.ready(`${peers} peers`);
  }

  private get checkpointPath(): string {
    return join(this.config.daemon.stateDir, 'checkpoint.json');
  }

  /** Resumes IKE state from the last checkpoint (planned restart or crash); anything wrong means a normal start. */
  private async restoreCheckpoint(log: Logger): Promise<void> {
    mkdirSync(this.config.daemon.stateDir, { recursive: true, mode: 0o700 });
    if (this.kernel.name === 'memory') {
      // Nothing of the memory backend outlives the process: resuming IKE SAs whose Child SAs
      // are gone only delays the fresh negotiation (with INITIAL_CONTACT) that must follow.
      log.info('memory kernel backend: no kernel state survives a restart, so no checkpoint is kept');
      return;
    }
    try {
      const cp = await readCheckpoint(this.checkpointPath);
      const r = await this.manager.restore(cp, { verifyKernel: true });
      if (r.skipped) log.warn(`checkpoint not used (${r.skipped.code}): ${r.skipped.message}; negotiating afresh`);
      else
        log.notice('resumed from checkpoint', {
          kind: cp.kind,
          ikeSas: r.ikeSas,
          children: r.children,
          droppedChildren: r.droppedChildren,
          resyncing: r.resyncing,
        });
    } catch (err) {
      if (err instanceof CheckpointError && err.code === 'CHECKPOINT_MISSING') log.info('no checkpoint: a fresh start');
      else log.warn(`checkpoint not used: ${(err as Error).message}; negotiating afresh`);
    }
    this.checkpoint = new CheckpointWriter({
      clock: systemClock,
      snapshot: () => this.manager.snapshot('continuous'),
      path: this.checkpointPath,
      log: this.logger.child({ subsystem: 'checkpoint' }),
    });
  }

  /** What applySpdHash last set (empty: nothing, the kernel's own thresholds). */
  private spdApplied: SpdThresholds = {};

  /** `[kernel] spd_hash_v4/v6` (see spd-hash.ts); a failure is logged, never fatal. */
  private async applySpdHash(c: Config): Promise<void> {
    const want = spdThresholds(c.kernel, c.peers.values());
    if (sameThresholds(want, this.spdApplied) || (!want.v4 && !want.v6)) return;
    const log = this.logger.child({ subsystem: 'kernel' });
    const k = this.kernel as Partial<Pick<XfrmKernel, 'setSpdHashThresholds'>>;
    if (!k.setSpdHashThresholds) {
      log.info('SPD hash thresholds not applicable to this kernel backend', { backend: this.kernel.name });
      return;
    }
    try {
      await k.setSpdHashThresholds.call(this.kernel, want);
      this.spdApplied = want;
      log.info('SPD hash thresholds set', { thresholds: formatThresholds(want) });
    } catch (err) {
      log.warn('could not set SPD hash thresholds; policy lookups stay as the kernel had them', {
        thresholds: formatThresholds(want),
        error: String(err),
      });
    }
  }

  private async openKernel(c: Config, ownership: Ownership): Promise<KernelIpsec> {
    if (c.kernel.backend === 'memory') return new MemoryKernel({ ownership });
    const { XfrmKernel } = await import('../kernel/xfrm/kernel.js');
    return XfrmKernel.open({ ownership, ...(this.opts.netns ? { netns: this.opts.netns } : {}) });
  }

  private async startMetrics(c: Config): Promise<void> {
    this.metrics = new CoatiMetrics({
      bus: this.bus,
      collectSa: () => this.collectSaCounters(),
      initiations: () => this.initiations(),
      onCollectError: (err) =>
        this.logger.warn('reading kernel SA counters for metrics failed', { error: String(err) }),
    });
    const l = c.metrics.prometheusListen;
    if (l) this.metricsServer = await startMetricsServer({ metrics: this.metrics, host: l.host, port: l.port });
  }

  /** Per-SA kernel counters for the metrics scrape (one GETSA per SA and direction). */
  private async collectSaCounters(): Promise<SaCounters[]> {
    const out: SaCounters[] = [];
    for (const sa of this.manager.allSas()) {
      for (const c of sa.children.values()) {
        if (c.state === 'destroyed') continue;
        for (const [direction, dst, spi] of [
          ['in', sa.local.addr, c.spiIn],
          ['out', sa.remote.addr, c.spiOut],
        ] as const) {
          const info = await this.kernel.getSa({ dst, spi, proto: 'esp' }).catch(() => undefined);
          if (!info) continue;
          out.push({
            peer: sa.peerName,
            child: c.name,
            spi: spi.toString(16).padStart(8, '0'),
            direction,
            bytes: info.counters.bytes,
            packets: info.counters.packets,
          });
        }
      }
    }
    return out;
  }

  /** Engine events go to the bus (typed catalogue), to event-stream subscribers, and to metrics. */
  private onEngineEvent(ev: EngineEvent): void {
    this.checkpoint?.onEvent(ev);
    const time = new Date().toISOString();
    for (const l of this.listeners) {
      try {
        l({ ...ev, time });
      } catch {
        // a subscriber's failure is the subscriber's
      }
    }
    if (ev.type === 'ike.state') {
      const [spiI = '', spiR = ''] = String(ev.sa ?? '').split(' ');
      this.bus.emit({
        type: 'ike.state',
        peer: String(ev.peer ?? ''),
        spiI: spiI.replace(/_i$/, ''),
        spiR: spiR.replace(/_r$/, ''),
        from: String(ev.from),
        to: String(ev.to),
        reason: String(ev.reason ?? ''),
      });
      return;
    }
    if ((EVENT_TYPES as readonly string[]).includes(ev.type)) {
      this.bus.emit(ev as unknown as CoatiEvent);
      return;
    }
    // Message-ID moves happen on every exchange (each liveness check): debug, not info.
    const level = ev.type === 'ike.msgid' ? 'debug' : 'info';
    if (!this.logger.enabled(level, 'ike')) return;
    this.logger.child({ subsystem: 'ike', ...(ev.peer ? { peer: ev.peer } : {}) })[level](ev.type, ev as never);
  }

  private writeKeylog(table: string, line: string): void {
    if (!this.keylogDir || !line) return;
    try {
      mkdirSync(this.keylogDir, { recursive: true, mode: 0o700 });
      appendFileSync(join(this.keylogDir, table), `${line}\n`, { mode: 0o600 });
    } catch (err) {
      this.logger.warn('cannot write key log', { error: String(err) });
    }
  }

  setKeylog(on: boolean): string | null {
    this.keylogDir = on ? (this.config.daemon.keylog ?? join(this.config.daemon.stateDir, 'keylog')) : null;
    return this.keylogDir;
  }

  subscribe(fn: (ev: { type: string; time: string; [k: string]: unknown }) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  localAddresses(): string[] {
    const out = new Set<string>();
    for (const rt of this.manager.peerNames().map((n) => this.manager.peer(n)))
      if (rt?.policy.localAddress) out.add(rt.policy.localAddress);
    for (const a of this.config.daemon.listen) if (a !== '0.0.0.0' && a !== '::') out.add(a);
    return [...out];
  }

  /** Re-reads the config; only peers whose config changed are touched. A bad config keeps the old one. */
  async reload(): Promise<
    | { ok: true; added: string[]; removed: string[]; changed: string[]; unchanged: string[] }
    | { ok: false; errors: { file: string; line: number; message: string }[] }
  > {
    const r = await loadConfig(this.opts.configPath);
    if (!r.ok) {
      this.logger.error('reload refused: configuration has errors; the running configuration stays', {
        errors: r.errors.map(formatConfigError),
      });
      return {
        ok: false,
        // The CLI prefixes file:line itself; the message keeps the column and the key.
        errors: r.errors.map((e) => ({ file: e.file, line: e.line, message: locationless(e) })),
      };
    }
    const d = diffConfig(this.config, r.config);
    for (const name of d.removed) {
      await this.manager.removePeer(name);
      await this.v1.removePeer(name);
    }
    // Negotiations the reload starts (a changed peer's new SAs, a new peer's first), paced
    // as at start-up: a change of the mesh defaults changes every peer, on every host.
    const negotiations: { name: string; retransmit: RetransmitSchedule; run: () => Promise<unknown> }[] = [];
    for (const name of [...d.added, ...d.changed]) {
      const peer = r.config.peers.get(name);
      if (!peer) continue;
      const policy = await compilePeer(peer, routeSource);
      // A peer that moved to the other IKE version leaves the engine that had it (its SAs
      // deleted through the peer, its traps removed) and is new to the other one.
      const other = peer.version === 1 ? this.manager : this.v1;
      if (other.peer(name)) await other.removePeer(name);
      const engine = peer.version === 1 ? this.v1 : this.manager;
      const changed = engine.peer(name) !== undefined;
      engine.setPeer(policy);
      if (peer.version === 1) {
        // A changed peer with SAs: new ISAKMP SA and pairs first, then the old ones go. Otherwise
        // as at start-up: not if the peer came up meanwhile; the slot until up or failed.
        if (changed || policy.start === 'now')
          negotiations.push({
            name,
            retransmit: policy.retransmit,
            run: () =>
              this.v1.peer(name)?.policy !== policy
                ? Promise.resolve()
                : changed && this.v1.sasOf(name).length > 0
                  ? this.v1.replace(name)
                  : this.v1.initiateInTurn(name),
          });
      } else if (changed) {
        // New settings take effect through a fresh IKE SA, made before the old one goes.
        negotiations.push({
          name,
          retransmit: policy.retransmit,
          run: () => (this.manager.peer(name)?.policy === policy ? this.manager.replace(name) : Promise.resolve()),
        });
      } else if (policy.start === 'now')
        negotiations.push({
          name,
          retransmit: policy.retransmit,
          run: () => this.manager.initiateInTurn(name),
        });
      // Traps as the new configuration says: installed for start = trap (new selectors in,
      // stale ones out), removed when it no longer is.
      await engine.syncTraps(name);
    }
    // Through the gate start-up uses: a reload during start-up does not add a second cap's
    // worth. Each holds its slot until its SA is up or gone, or its peer has not answered
    // its first retransmission.
    this.gate.maxConcurrent = r.config.startup.maxConcurrentInitiations;
    const jitterMs = Math.min(r.config.startup.initiationJitterMs, negotiations.length * START_SPACING_MS);
    for (const n of negotiations)
      void this.gate.run(n.run, jitterMs, pacedSlotHoldMs(n.retransmit)).catch((err: unknown) =>
        this.logger.warn('a negotiation after the reload failed', {
          peer: n.name,
          error: err instanceof Error ? err.message : String(err),
        }),
      );
    this.logger.setLevels(r.config.log.default, r.config.log.subsystems);
    this.config = r.config;
    await this.applySpdHash(r.config);
    this.bus.emit({
      type: 'config.reloaded',
      added: d.added,
      removed: d.removed,
      changed: d.changed,
      restartNeeded: d.daemonChanged,
    });
    return { ok: true, added: d.added, removed: d.removed, changed: d.changed, unchanged: d.unchanged };
  }

  /** Planned restart (`coatictl restart`): hand over and exit 75, which systemd restarts (RestartForceExitStatus). */
  async restart(): Promise<void> {
    await this.stop({ keepKernel: true });
    setTimeout(() => process.exit(75), 50);
  }

  controlApi(): DaemonControl {
    return createControl(this);
  }

  /**
   * Stops. `keepKernel` leaves kernel SAs and policies in place (planned
   * restart, or `shutdown = "keep"`); otherwise peers are told (Delete) and
   * the kernel state is removed.
   */
  async stop(opts: { keepKernel: boolean }): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.systemd.stopping();
    // Nothing new while stopping: an SA accepted now would be dropped without a Delete.
    this.manager.refuseNewSas();
    this.v1.refuseNewSas();
    this.checkpoint?.stop();
    if (opts.keepKernel) {
      // Hand over: finish in-flight exchanges briefly, write the state, leave the kernel as it is.
      try {
        const cp = await this.manager.prepareHandover();
        await writeCheckpointFile(this.checkpointPath, cp);
        this.logger.notice('state handed over', { ikeSas: cp.ikeSas.length });
      } catch (err) {
        this.logger.error(`could not write the handover checkpoint: ${(err as Error).message}`);
      }
    } else {
      await Promise.race([
        Promise.all([
          ...this.manager.peerNames().map((n) => this.manager.terminate(n)),
          ...this.v1.peerNames().map((n) => this.v1.terminate(n)),
        ]),
        new Promise((r) => setTimeout(r, 3000)),
      ]);
      await eraseCheckpoint(this.checkpointPath).catch(() => {});
    }
    await this.manager.close({ keepKernel: opts.keepKernel });
    await this.v1.close({ keepKernel: opts.keepKernel });
    this.sockets?.close();
    await this.control?.close();
    await this.metricsServer?.close();
    if (!this.opts.kernel) await this.kernel.close();
  }
}

/** Average spacing of start-up initiations: at most 100 per second per host. */
const START_SPACING_MS = 10;

/**
 * Start-up pacing. The jitter exists so that hundreds of initiations after a fleet-wide
 * restart do not leave at once; it scales with how many peers this host initiates to
 * (10 ms each), capped by `startup.initiation_jitter`. A host with two peers starts them
 * within 20 ms instead of waiting up to the full 5 s that 500 peers need.
 */
export function startPacing(c: Config): { maxConcurrent: number; jitterMs: number } {
  let initiating = 0;
  for (const p of c.peers.values()) if (p.start === 'now') initiating++;
  return {
    maxConcurrent: c.startup.maxConcurrentInitiations,
    jitterMs: Math.min(c.startup.initiationJitterMs, initiating * START_SPACING_MS),
  };
}
