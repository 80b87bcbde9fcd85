import type { PeerPolicy } from '../sa/policy.js';
import type { Timer } from '../util/clock.js';

/**
 * What the manager remembers per configured peer between IKE SAs: whether
 * the relationship should be up, and the re-initiation backoff after
 * failures (jittered, exponential, capped; bounded memory by construction).
 */
export interface PeerRuntime {
  policy: PeerPolicy;
  /** The relationship should be up (start=now, operator initiate, trap hit, or dpd restart). */
  wantUp: boolean;
  /** Consecutive failed attempts since the last success. */
  failures: number;
  retryTimer: Timer | undefined;
  nextRetryAt: number;
  lastError: { code: string; message: string; at: number } | undefined;
  /** An initiation is being set up (between the call and the SA existing). */
  initiating: boolean;
  /** Serial numbers of reqids per child name, stable for the peer's lifetime. */
  reqids: Map<string, number>;
}

export function newPeerRuntime(policy: PeerPolicy): PeerRuntime {
  return {
    policy,
    wantUp: false,
    failures: 0,
    retryTimer: undefined,
    nextRetryAt: 0,
    lastError: undefined,
    initiating: false,
    reqids: new Map(),
  };
}

/** Backoff before attempt n+1 after n failures: 1 s, 2 s, 4 s ... capped, with jitter in [0.5, 1]. */
export function restartBackoff(failures: number, capMs: number, rand01: () => number): number {
  if (failures <= 0) return 0;
  const raw = Math.min(capMs, 1000 * 2 ** Math.min(20, failures - 1));
  return Math.round(raw * (0.5 + rand01() / 2));
}
