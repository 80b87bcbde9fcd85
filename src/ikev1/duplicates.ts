/**
 * IKEv1 crossing streams: both ends initiated at the same moment, so a peer
 * has two ISAKMP SAs, or a configured child has two phase 2 pairs negotiated
 * independently. IKEv1 has no collision signalling, so both ends apply one
 * rule each computes alike from what both hold:
 *
 * - ISAKMP SAs: keep the one with the greatest cookieI|cookieR.
 * - Phase 2 pairs of one child: keep the one with the greatest
 *   [max(spiIn, spiOut), min(spiIn, spiOut)] as a 64-bit value (the same
 *   two SPIs on both ends, seen crosswise).
 *
 * Only the initiator of the losing exchange deletes it, after a grace period in
 * which the survivor carries traffic; the other end deletes it itself only
 * after a much longer grace (the peer's DELETE was lost). A rekey is not a
 * duplicate: its initiator replaces the old pair make-before-break.
 */
import { type ChildSa, spiHex } from '../ikev2/child-sa.js';
import type { EngineEnv } from '../ikev2/env.js';
import type { Timer } from '../util/clock.js';
import { deleteChildren, sendIsakmpDelete } from './informational.js';
import type { IsakmpSa } from './isakmp-sa.js';
import { quickModesInFlight } from './quick-mode.js';

/** How long the end that did not negotiate the loser waits for the peer's DELETE, in grace periods. */
export const FALLBACK_GRACES = 10;

export interface DuplicateHost {
  readonly env: EngineEnv;
  /** Every ISAKMP SA with the peer that is not destroyed. */
  sasOf(name: string): IsakmpSa[];
}

const live = (c: ChildSa) => (c.state === 'installed' || c.state === 'rekeying') && !c.replacedBy;

/** The phase 2 rule's rank: both ends hold the same two SPIs (crosswise), so both compute the same value. */
export function pairRank(c: ChildSa): bigint {
  const hi = Math.max(c.spiIn >>> 0, c.spiOut >>> 0);
  const lo = Math.min(c.spiIn >>> 0, c.spiOut >>> 0);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** The ISAKMP rule's rank: cookieI|cookieR, alike on both ends. */
export function isakmpRank(sa: IsakmpSa): Buffer {
  return Buffer.concat([sa.cookieI, sa.cookieR]);
}

export class Ikev1Duplicates {
  private readonly timers = new Set<Timer>();

  constructor(
    private readonly host: DuplicateHost,
    private readonly graceMs: number,
  ) {}

  private get env(): EngineEnv {
    return this.host.env;
  }

  /** Established ISAKMP SAs of a peer that the rule considers (not already superseded or retiring). */
  isakmpSas(name: string): IsakmpSa[] {
    return this.host.sasOf(name).filter((sa) => sa.isUp && !sa.replacedBy && !sa.retiring);
  }

  /** Live phase 2 pairs of one configured child, over every ISAKMP SA of the peer that is not retiring. */
  pairs(name: string, child: string): { sa: IsakmpSa; c: ChildSa }[] {
    return this.host
      .sasOf(name)
      .filter((sa) => !sa.retiring)
      .flatMap((sa) => [...sa.children.values()].map((c) => ({ sa, c })))
      .filter(({ c }) => c.name === child && live(c));
  }

  /** The pair of `child` both ends keep (undefined without any). */
  childSurvivor(name: string, child: string): ChildSa | undefined {
    let best: ChildSa | undefined;
    for (const { c } of this.pairs(name, child)) if (!best || pairRank(c) > pairRank(best)) best = c;
    return best;
  }

  private isakmpSurvivor(name: string): IsakmpSa | undefined {
    let best: IsakmpSa | undefined;
    for (const sa of this.isakmpSas(name)) if (!best || Buffer.compare(isakmpRank(sa), isakmpRank(best)) > 0) best = sa;
    return best;
  }

  private later(ms: number, fn: () => void): void {
    const t = this.env.clock.setTimer(ms, () => {
      this.timers.delete(t);
      fn();
    });
    this.timers.add(t);
  }

  private grace(): number {
    return this.graceMs * (0.75 + this.env.rand01() / 2);
  }

  /** An ISAKMP SA with the peer came up: with a sibling, resolve after a grace period. */
  onIsakmpEstablished(name: string): void {
    if (this.isakmpSas(name).length > 1) this.later(this.grace(), () => this.resolveIsakmp(name));
  }

  /** A phase 2 pair of `child` was installed: with a sibling, resolve after a grace period. */
  onPairInstalled(name: string, child: string): void {
    if (this.pairs(name, child).length > 1) this.later(this.grace(), () => this.resolvePairs(name, child));
  }

  // ---- ISAKMP SAs ----------------------------------------------------------------

  private resolveIsakmp(name: string): void {
    const survivor = this.isakmpSurvivor(name);
    if (!survivor) return;
    for (const sa of this.isakmpSas(name)) {
      if (sa === survivor) continue;
      if (sa.isInitiator) void sa.queue.run(() => this.retire(name, sa, 'duplicate ISAKMP SA (crossing streams)'));
      else this.later(this.graceMs * FALLBACK_GRACES, () => this.fallbackIsakmp(name, sa));
    }
  }

  /** The peer did not delete the duplicate it negotiated: delete it ourselves. */
  private fallbackIsakmp(name: string, sa: IsakmpSa): void {
    const survivor = this.isakmpSurvivor(name);
    if (!survivor || survivor === sa || !this.isakmpSas(name).includes(sa)) return;
    // Far apart in time it was not a crossing but a re-negotiation whose DELETE for the old SA was lost.
    const victim =
      Math.abs(sa.establishedAt - survivor.establishedAt) > this.graceMs * FALLBACK_GRACES
        ? sa.establishedAt < survivor.establishedAt
          ? sa
          : survivor
        : sa;
    void victim.queue.run(() => this.retire(name, victim, 'duplicate ISAKMP SA not deleted by peer'));
  }

  /**
   * Deletes a duplicate ISAKMP SA through the peer. Its phase 2 pairs go with
   * it, except those the phase 2 rule keeps: they move to the surviving SA (the
   * peer adopts them the same way when the DELETE arrives).
   */
  private async retire(name: string, sa: IsakmpSa, reason: string, waited = 0): Promise<void> {
    if (!sa.isUp || sa.replacedBy) return;
    const others = this.isakmpSas(name).filter((o) => o !== sa);
    if (others.length === 0) return;
    if (quickModesInFlight(sa) > 0 && waited < FALLBACK_GRACES) {
      // A Quick Mode under it is half done: let it finish (or fail) first.
      this.later(this.grace(), () => void sa.queue.run(() => this.retire(name, sa, reason, waited + 1)));
      return;
    }
    const heir = others.reduce((a, b) => (Buffer.compare(isakmpRank(a), isakmpRank(b)) >= 0 ? a : b));
    sa.replacedBy = heir;
    this.env.emit({
      type: 'duplicate.deleted',
      version: 1,
      peer: name,
      what: 'isakmp',
      sa: sa.label,
      survivor: heir.label,
    });
    const drop: ChildSa[] = [];
    for (const c of [...sa.children.values()]) {
      if (live(c) && this.childSurvivor(name, c.name) === c) {
        sa.children.delete(c.uid);
        heir.adopt(c);
      } else {
        drop.push(c);
      }
    }
    await deleteChildren(sa, drop, reason);
    sendIsakmpDelete(sa);
    sa.transition('deleting', reason);
    await sa.destroy(reason);
  }

  // ---- phase 2 pairs -------------------------------------------------------------

  private resolvePairs(name: string, child: string): void {
    const survivor = this.childSurvivor(name, child);
    if (!survivor) return;
    for (const { sa, c } of this.pairs(name, child)) {
      if (c === survivor) continue;
      if (c.initiator) void sa.queue.run(() => this.deletePair(name, c, 'duplicate phase 2 SA (crossing streams)'));
      else this.later(this.graceMs * FALLBACK_GRACES, () => this.fallbackPair(name, child, c));
    }
  }

  private fallbackPair(name: string, child: string, c: ChildSa): void {
    const survivor = this.childSurvivor(name, child);
    if (!survivor || survivor === c || !live(c)) return;
    // Far apart in time it was a rekey whose DELETE for the old pair was lost: the older one goes.
    const victim =
      Math.abs(c.createdAt - survivor.createdAt) > this.graceMs * FALLBACK_GRACES
        ? c.createdAt < survivor.createdAt
          ? c
          : survivor
        : c;
    const owner = this.owner(name, victim);
    if (owner)
      void owner.queue.run(() =>
        this.deletePair(name, victim, 'duplicate phase 2 SA not deleted by peer', victim === survivor),
      );
  }

  private owner(name: string, c: ChildSa): IsakmpSa | undefined {
    return this.host.sasOf(name).find((sa) => sa.children.get(c.uid) === c);
  }

  /**
   * Deletes a duplicate pair through the peer, if it still has a live sibling
   * and (unless `evenIfBest`: an old pair left over from a rekey) the rule
   * still keeps another.
   */
  private async deletePair(name: string, c: ChildSa, reason: string, evenIfBest = false): Promise<void> {
    // Re-read under the owning SA's queue: it may have moved, been deleted or lost its sibling.
    const sa = this.owner(name, c);
    if (!sa || !live(c)) return;
    if (!evenIfBest && this.childSurvivor(name, c.name) === c) return;
    const survivor = this.pairs(name, c.name)
      .map((p) => p.c)
      .filter((o) => o !== c)
      .reduce<ChildSa | undefined>((a, b) => (!a || pairRank(b) > pairRank(a) ? b : a), undefined);
    if (!survivor) return;
    c.replacedBy = survivor.uid;
    c.timers.rekey?.cancel();
    this.env.emit({
      type: 'duplicate.deleted',
      version: 1,
      peer: name,
      what: 'esp',
      child: c.name,
      spiIn: spiHex(c.spiIn),
      survivor: spiHex(survivor.spiIn),
    });
    await deleteChildren(sa, [c], reason);
  }

  /** Stops every pending resolution (the manager is closing). */
  close(): void {
    for (const t of this.timers) t.cancel();
    this.timers.clear();
  }
}
