/**
 * Shared between the handshake benches (bench/handshake.ts, bench/handshake-v1.ts),
 * their harness (bench/handshake-harness.ts) and their peer processes
 * (bench/handshake-peer-harness.ts): addressing and the IPC message shapes.
 */

/**
 * Protected host of SA i in a /16 (`10.1` -> `10.1.0.7/32`): each SA has its own
 * tunnel selectors, as a mesh of distinct peers would (charon also refuses to
 * install a second policy with the same selectors through kernel-libipsec).
 */
export const tsHost = (net: string, i: number) => `${net}.${i >> 8}.${i & 255}/32`;

/** Identities of the bench's SAs, shared with the charon configs. */
export const initiatorId = (i: number) => `fqdn:i${i}.bench`;
export const responderId = 'fqdn:r.bench';

export interface PeerSetup {
  type: 'setup';
  role: 'initiator' | 'responder';
  k: number;
  /**
   * Handshakes run in a warm-up phase before the measured K, in the same process
   * (SAs k .. k+warmup-1, deleted again before the K start). 0: the measured K are
   * the process's first.
   */
  warmup: number;
  /** Peers configured beyond those (k+warmup .. k+warmup+idle-1), never initiated. */
  idle: number;
  netns: string;
  localAddr: string;
  remoteAddr: string;
  /** Protected hosts of SA i: `${localNet}.${i >> 8}.${i & 255}/32` (tunnel-mode traffic selectors). */
  localNet: string;
  remoteNet: string;
  psk: string;
  /** Give up after this long (ms) after `start`. */
  deadlineMs: number;
}

export interface MemSample {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** A peer's answer to `warmup`: its counters over the warm-up. */
export interface PeerWarm {
  type: 'warm';
  established: number;
  failures: number;
  retransmits: number;
  timedOut: boolean;
}

/** A peer's answer to `cooldown`: what is left of the warm-up's SAs, and memory after their deletion. */
export interface PeerCool {
  type: 'cool';
  /** IKE (ISAKMP) SAs still in the engine. */
  sas: number;
  kernelSas: number;
  mem: MemSample;
}

export interface PeerDone {
  type: 'done';
  role: 'initiator' | 'responder';
  /** Handshakes complete on this side (what counts as complete is the peer's choice). */
  established: number;
  childFailures: number;
  failures: number;
  retransmits: number;
  drops: number;
  /** ms from `start` to the K-th completed handshake, measured in this process. */
  elapsedMs: number;
  cpuUserUs: number;
  cpuSystemUs: number;
  /** ESP SAs in the memory kernel (2 per Child SA). */
  kernelSas: number;
  timedOut: boolean;
}
