/** The fully resolved, typed configuration: every default applied, durations in ms. */
import type { Identity } from './identity.js';
import type { Proposal } from './proposal.js';
import type { Secret } from './secret.js';
import type { HostPort, Prefix, SpdHash } from './values.js';

export type LogLevel = 'error' | 'warn' | 'notice' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'notice', 'info', 'debug'];

export interface DaemonConfig {
  stateDir: string;
  socket: string;
  /** Group allowed on the admin socket; null = root only. */
  socketGroup: string | null;
  listen: string[];
  port: number;
  nattPort: number;
  /** Path of the NSS-style key log, or null (off). */
  keylog: string | null;
  /** What a plain stop does with kernel SAs; restarts always hand over. */
  shutdown: 'keep' | 'delete';
  allowInlineSecrets: boolean;
  /** Absolute or main-file-relative path as resolved. */
  peersDir: string;
}

export interface LogConfig {
  default: LogLevel;
  /** Per-subsystem levels, e.g. { ike: 'debug' }. */
  subsystems: Record<string, LogLevel>;
  format: 'journal' | 'json';
}

export interface KernelConfig {
  backend: 'xfrm' | 'memory';
  reqidMin: number;
  reqidMax: number;
  policyPriority: number;
  /**
   * SPD hash thresholds to set at start (netns-wide), per family; absent =
   * leave the kernel's (32/32 and 128/128 by default). See spd-hash.ts.
   */
  spdHash: { v4?: SpdHash; v6?: SpdHash };
}

export interface MetricsConfig {
  prometheusListen: HostPort | null;
  graphite: HostPort | null;
  graphitePrefix: string;
  graphiteIntervalMs: number;
}

export interface StartupConfig {
  maxConcurrentInitiations: number;
  initiationJitterMs: number;
}

/** Traffic selectors: the outer addresses (host-to-host) or explicit prefixes. */
export type TsSpec = { kind: 'host' } | { kind: 'prefixes'; prefixes: Prefix[] };

export interface ChildConfig {
  name: string;
  mode: 'tunnel' | 'transport';
  localTs: TsSpec;
  remoteTs: TsSpec;
  espProposals: Proposal[];
  lifetimeMs: number;
}

export interface PeerConfig {
  name: string;
  /** Source file, for messages. */
  file: string;
  address: string;
  /** Local address to use, or null (chosen by routing). */
  localAddress: string | null;
  version: 1 | 2;
  /** null: the IP address of the local end of the SA, known at runtime. */
  localId: Identity | null;
  remoteId: Identity;
  auth: 'psk' | 'pubkey';
  psk: Secret | null;
  certFile: string | null;
  key: Secret | null;
  caFiles: string[];
  ikeProposals: Proposal[];
  ikeLifetimeMs: number;
  rekeyMarginMs: number;
  rekeyJitterMs: number;
  /** 0 ("0s") = liveness checks off. */
  dpdDelayMs: number;
  dpdTimeoutMs: number;
  dpdAction: 'clear' | 'trap' | 'restart';
  start: 'none' | 'now' | 'trap';
  children: ChildConfig[];
  /** 0 ("0s") = off. */
  natKeepaliveMs: number;
  fragmentation: boolean;
  fragmentSize: number;
  aggressive: boolean;
  pfs: boolean;
  retransmitBaseMs: number;
  retransmitTries: number;
  /** Upper bound of one retransmission wait (the waits grow x1.8 from retransmitBaseMs). */
  retransmitMaxMs: number;
  restartBackoffMaxMs: number;
}

export interface Config {
  /** The main file as passed to loadConfig. */
  file: string;
  daemon: DaemonConfig;
  kernel: KernelConfig;
  metrics: MetricsConfig;
  startup: StartupConfig;
  log: LogConfig;
  peers: Map<string, PeerConfig>;
}

export type LoadResult = { ok: true; config: Config } | { ok: false; errors: import('./errors.js').ConfigError[] };
