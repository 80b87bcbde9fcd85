/**
 * Retransmission schedules. The default ladder backs off exponentially with
 * jitter and is bounded in tries and total time; liveness checks use their
 * own short ladder so a dead peer is declared within delay + timeout.
 */
export interface RetransmitSchedule {
  /** First timeout in ms. */
  baseMs: number;
  /** Multiplier per attempt (RFC 7296 suggests exponential backoff). */
  factor: number;
  /** Upper bound for a single timeout. */
  maxTimeoutMs: number;
  /** Number of retransmissions after the first send. */
  tries: number;
  /** Fraction of each timeout removed at random (0..1), to de-synchronise peers. */
  jitter: number;
}

export const DEFAULT_RETRANSMIT: RetransmitSchedule = {
  baseMs: 2000,
  factor: 1.8,
  maxTimeoutMs: 30_000,
  tries: 5,
  jitter: 0.2,
};

/** Timeout before retransmission `attempt` (0 = wait after the first send). */
export function retransmitTimeout(s: RetransmitSchedule, attempt: number, random: () => number): number {
  const raw = Math.min(s.maxTimeoutMs, s.baseMs * s.factor ** attempt);
  return Math.max(1, Math.round(raw * (1 - s.jitter * random())));
}

/** Worst-case time from first send until the request is declared failed. */
export function totalRetransmitTime(s: RetransmitSchedule): number {
  let total = 0;
  for (let i = 0; i <= s.tries; i++) total += Math.min(s.maxTimeoutMs, s.baseMs * s.factor ** i);
  return total;
}

/**
 * How long a paced initiation (start-up, reload) holds its slot at most: until its second
 * retransmission would go. A peer that answered neither the first send nor the first
 * retransmission is most likely down; its initiation goes on (retransmitting, then the
 * retry backoff) without the slot, so a fleet-wide restart with part of the fleet down is
 * not held up by the dead peers' full retransmission time (about 75 s each by default).
 */
export function pacedSlotHoldMs(s: RetransmitSchedule): number {
  return Math.min(totalRetransmitTime(s), s.baseMs + Math.min(s.maxTimeoutMs, s.baseMs * s.factor));
}

/**
 * A liveness schedule that declares the peer dead within `timeoutMs` of the
 * first probe: evenly spread short retries.
 */
export function livenessSchedule(timeoutMs: number, tries = 3): RetransmitSchedule {
  const base = Math.max(50, Math.floor(timeoutMs / (tries + 1)));
  return { baseMs: base, factor: 1, maxTimeoutMs: base, tries, jitter: 0 };
}
