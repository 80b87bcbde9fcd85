/**
 * The contract between the admin control socket and the daemon.
 *
 * Everything here is plain JSON-serialisable data: SPIs are lower-case hex
 * strings without `0x`, times are ISO-8601 strings, 64-bit counters are
 * decimal strings. The same types are what `coatictl status --json` prints and
 * what `coatictl mesh-check` reads back, so a status report taken on one host
 * can be compared offline with the reports of all the others.
 */

/** A relationship as the operator sees it. */
export type PeerState = 'up' | 'connecting' | 'down' | 'rekeying' | 'idle' | 'trap';

export const PEER_STATES: readonly PeerState[] = ['up', 'connecting', 'down', 'rekeying', 'idle', 'trap'];

export interface IkeSaStatus {
  spiI: string;
  spiR: string;
  role: 'initiator' | 'responder';
  /** Engine state name, e.g. `established`, `rekeying`, `deleting`. */
  state: string;
  /** e.g. `aes256gcm16/prfsha256/x25519` */
  algorithms: string;
  establishedAt: string;
  rekeyAt: string;
  expiresAt: string;
  messageIdOut: number;
  messageIdIn: number;
}

export interface ChildSaStatus {
  name: string;
  /** Engine state name, e.g. `installed`, `rekeying`, `deleting`. */
  state: string;
  spiIn: string;
  spiOut: string;
  mode: 'tunnel' | 'transport';
  localTs: string[];
  remoteTs: string[];
  /** e.g. `aes256gcm16` or `aes128/sha256` */
  algorithms: string;
  /** UDP encapsulation (NAT-T) in use. */
  encap: boolean;
  rekeyAt: string;
  expiresAt: string;
  /** Decimal strings (64-bit counters). */
  bytesIn: string;
  bytesOut: string;
  packetsIn: string;
  packetsOut: string;
  lastUsedAt?: string;
}

export interface PeerError {
  /** Stable code, e.g. `AUTH_FAILED`, `NO_PROPOSAL_CHOSEN`, `TIMEOUT`. */
  code: string;
  message: string;
  at: string;
}

export interface PeerStatus {
  /** Configured connection name. */
  name: string;
  /** The remote host's IKE address (as configured or learned). */
  address: string;
  version: 1 | 2;
  localId: string;
  remoteId: string;
  state: PeerState;
  natDetected: { local: boolean; remote: boolean };
  remotePort: number;
  lastInboundAt?: string;
  lastLivenessCheckAt?: string;
  livenessFailures: number;
  /** The IKE SA the relationship runs on (the established one, else the newest). */
  ike?: IkeSaStatus;
  /** The Child SAs of `ike`. */
  children: ChildSaStatus[];
  /**
   * Every other IKE SA with this peer, with its Child SAs: a predecessor being
   * rekeyed or deleted, a handshake in progress, or a duplicate. Absent from
   * reports of older daemons.
   */
  otherIkeSas?: OtherIkeSaStatus[];
  lastError?: PeerError;
}

export interface OtherIkeSaStatus extends IkeSaStatus {
  children: ChildSaStatus[];
}

export interface StatusReport {
  /** Host name of the reporting daemon. */
  host: string;
  /**
   * The addresses this daemon sends and receives IKE on. `mesh-check` uses
   * them (together with `host` and every peer's `localId`) to recognise this
   * host when another host's report names it as a peer `address`/`remoteId`.
   */
  localAddresses: string[];
  daemonVersion: string;
  pid: number;
  uptimeSec: number;
  startedAt: string;
  /** When this report was taken. */
  generatedAt: string;
  /**
   * The paced initiations of start-up and reload (one budget per host): waiting for a
   * slot, holding one, and the cap. Absent from daemons before it was reported.
   */
  initiations?: { queued: number; inFlight: number; maxConcurrent: number };
  peers: PeerStatus[];
}

/** Which relationships an action applies to. */
export type Target = { peer: string } | { all: true };

export interface PeerActionResult {
  peer: string;
  ok: boolean;
  /** Human-readable outcome or failure reason. */
  message?: string;
  /** Only for `dpd`: what the liveness probe found. */
  liveness?: 'alive' | 'dead' | 'timeout';
  /** Only for `dpd` with `alive`: round-trip time in milliseconds. */
  rttMs?: number;
}

export interface ActionResult {
  /** True when every peer action succeeded. */
  ok: boolean;
  message?: string;
  peers: PeerActionResult[];
}

export interface ConfigError {
  file: string;
  line: number;
  message: string;
}

export type ReloadResult =
  | { ok: true; added: string[]; removed: string[]; changed: string[]; unchanged: string[] }
  | { ok: false; errors: ConfigError[] };

export interface ControlEvent {
  /** Dotted event name, e.g. `ike.established`, `child.rekeyed`, `peer.dead`. */
  type: string;
  time: string;
  [k: string]: unknown;
}

export type EventListener = (ev: ControlEvent) => void;

/**
 * What the daemon exposes to the control server. Implementations reject with
 * a `ControlError` (see errors.ts) carrying `UNKNOWN_PEER` (or another code in
 * `DAEMON_ERROR_CODES`) for expected failures; any other rejection is
 * reported to the client as `INTERNAL` with its message.
 */
export interface DaemonControl {
  status(peer?: string): Promise<StatusReport>;
  initiate(target: Target): Promise<ActionResult>;
  terminate(target: Target): Promise<ActionResult>;
  rekey(target: Target, kind: 'ike' | 'child'): Promise<ActionResult>;
  dpd(target: Target): Promise<ActionResult>;
  reload(): Promise<ReloadResult>;
  restart(): Promise<ActionResult>;
  keylog(on: boolean): Promise<ActionResult>;
  /** Returns an unsubscribe function. */
  subscribe(listener: EventListener): () => void;
}
