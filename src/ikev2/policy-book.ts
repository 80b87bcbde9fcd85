import { KernelError } from '../kernel/errors.js';
import type { KernelIpsec, PolicySpec } from '../kernel/types.js';
import { DEFAULT_OWNERSHIP } from '../kernel/xfrm/ownership.js';

/** Joined, not a template literal: a kept template result is a rope of one object per piece. */
function key(p: PolicySpec): string {
  const s = p.selector;
  return [p.dir, s.src, s.dst, s.proto ?? 0, s.srcPort ?? 0, s.dstPort ?? 0].join('|');
}

interface Entry {
  policies: Map<string, PolicySpec>;
  /** Each Child SA holding the reqid, with the selectors (keys) it installed. */
  holders: Map<string, ReadonlySet<string>>;
  /** Trap policies stay when the last holder goes (on-demand / dpd_action=trap). */
  trap: boolean;
  /** Set by an exact trap (reload): the only selectors left once no Child SA holds the reqid. */
  exact?: Set<string>;
  /** Creation order: of several other owners of a selector, the oldest entry's policy goes back in. */
  seq: number;
}

/**
 * Kernel policies per reqid, shared by the Child SAs of one configured child
 * (old and new during a make-before-break rekey) and by trap policies.
 * Policies are added with the first holder and removed with the last one.
 */
export class PolicyBook {
  private readonly entries = new Map<number, Entry>();
  /**
   * The entries (in `entries`) holding each selector key: `ownedElsewhere` asks this once
   * per removed policy, so tearing down K pairs costs O(K), not O(K²) (it was a scan of
   * every entry per policy).
   */
  private readonly bySelector = new Map<string, Set<Entry>>();
  private entrySeq = 0;

  /**
   * `priorityBase` places coati's policies in the kernel backend's owned
   * priority band; callers give priorities relative to it (smaller = preferred).
   */
  constructor(
    private readonly kernel: KernelIpsec,
    private readonly priorityBase = DEFAULT_OWNERSHIP.priorityMin + 0x1000,
  ) {}

  private banded(specs: readonly PolicySpec[]): PolicySpec[] {
    return specs.map((p) => ({ ...p, priority: this.priorityBase + p.priority }));
  }

  private entry(reqid: number): Entry {
    let e = this.entries.get(reqid);
    if (!e) {
      e = { policies: new Map(), holders: new Map(), trap: false, seq: this.entrySeq++ };
      this.entries.set(reqid, e);
    }
    return e;
  }

  /** Records (or replaces) an entry's policy for a selector key, keeping `bySelector` in step. */
  private put(e: Entry, k: string, p: PolicySpec): void {
    e.policies.set(k, p);
    let owners = this.bySelector.get(k);
    if (!owners) {
      owners = new Set();
      this.bySelector.set(k, owners);
    }
    owners.add(e);
  }

  private unindex(e: Entry, k: string): void {
    const owners = this.bySelector.get(k);
    if (!owners) return;
    owners.delete(e);
    if (owners.size === 0) this.bySelector.delete(k);
  }

  /** The entry leaves `entries` (its policies stay on it for the caller to remove). */
  private drop(reqid: number, e: Entry): void {
    this.entries.delete(reqid);
    for (const k of e.policies.keys()) this.unindex(e, k);
  }

  /** Installs (or refreshes) policies for a holder; existing identical selectors are updated in place. */
  async hold(reqid: number, holder: string, relative: readonly PolicySpec[]): Promise<void> {
    const specs = this.banded(relative);
    const e = this.entry(reqid);
    e.holders.set(holder, new Set(specs.map(key)));
    for (const p of specs) {
      const k = key(p);
      if (e.policies.has(k)) await this.kernel.updatePolicy(p);
      else await this.addOrTakeOver(p);
      this.put(e, k, p);
    }
  }

  /**
   * Adds a policy; if an owned policy with the same selector exists (left by a
   * previous incarnation of the daemon), it is taken over in place.
   */
  private async addOrTakeOver(p: PolicySpec): Promise<void> {
    try {
      await this.kernel.addPolicy(p);
    } catch (err) {
      if (!(err instanceof KernelError) || err.code !== 'KERNEL_EXISTS') throw err;
      await this.kernel.updatePolicy(p);
    }
  }

  /**
   * Trap policies for a reqid (missing selectors added). With `exact` (a reload that
   * changed the peer) and no Child SA holding the reqid, selectors not among `relative`
   * go too, after the new ones are in: a changed traffic selector's old trap would
   * otherwise stay and hold traffic no negotiation can carry.
   */
  async trap(reqid: number, relative: readonly PolicySpec[], opts: { exact?: boolean } = {}): Promise<void> {
    const specs = this.banded(relative);
    const e = this.entry(reqid);
    e.trap = true;
    for (const p of specs) {
      const k = key(p);
      if (!e.policies.has(k)) {
        await this.addOrTakeOver(p);
        this.put(e, k, p);
      }
    }
    if (!opts.exact) return;
    e.exact = new Set(specs.map(key));
    if (e.holders.size === 0) await this.prune(e);
  }

  /**
   * An exact trap's entry: selectors neither the trap's nor a remaining holder's go (after
   * the new ones are in).
   */
  private async prune(e: Entry): Promise<void> {
    const trap = e.exact;
    if (!trap) return;
    for (const [k, p] of [...e.policies]) {
      if (trap.has(k) || [...e.holders.values()].some((held) => held.has(k))) continue;
      e.policies.delete(k);
      this.unindex(e, k);
      if (await this.ownedElsewhere(k, e)) continue;
      try {
        await this.kernel.deletePolicy({ selector: p.selector, dir: p.dir, ...(p.mark ? { mark: p.mark } : {}) });
      } catch {
        // Already gone: nothing left to remove.
      }
    }
  }

  isTrapped(reqid: number): boolean {
    return this.entries.get(reqid)?.trap ?? false;
  }

  async untrap(reqid: number): Promise<void> {
    const e = this.entries.get(reqid);
    if (!e) return;
    e.trap = false;
    e.exact = undefined;
    if (e.holders.size === 0) await this.removeAll(reqid, e);
  }

  /** Drops a holder; with no holders left and no trap, the policies go. */
  async release(reqid: number, holder: string): Promise<void> {
    const e = this.entries.get(reqid);
    if (!e?.holders.delete(holder)) return;
    if (e.holders.size > 0 || e.trap) {
      // A reload changed the trap's selectors while a pair held the old ones: they go now.
      await this.prune(e);
      return;
    }
    if (this.retainers.some((keep) => keep(reqid))) {
      // The relationship is still wanted (being re-established): the policies stay as
      // traps, so traffic is held (and raises ACQUIRE) instead of leaving in clear text.
      e.trap = true;
      return;
    }
    await this.removeAll(reqid, e);
  }

  /**
   * Predicates consulted when the last Child SA of a reqid goes: any true
   * keeps the policies as trap policies. Each engine registers one.
   */
  private readonly retainers: ((reqid: number) => boolean)[] = [];

  addRetainer(keep: (reqid: number) => boolean): void {
    this.retainers.push(keep);
  }

  private async removeAll(reqid: number, e: Entry): Promise<void> {
    this.drop(reqid, e);
    for (const [k, p] of e.policies) {
      if (await this.ownedElsewhere(k, e)) continue;
      try {
        await this.kernel.deletePolicy({ selector: p.selector, dir: p.dir, ...(p.mark ? { mark: p.mark } : {}) });
      } catch {
        // Already gone (an operator or a flush): nothing left to remove.
      }
    }
  }

  /**
   * Whether another reqid's entry has a policy with this selector and direction (a child
   * renamed by a reload gets a new reqid for the same selectors and takes the kernel
   * policy over): removing the old entry must not delete the policy the new one uses, and
   * the kernel gets the remaining owner's version of it.
   */
  private async ownedElsewhere(k: string, e: Entry): Promise<boolean> {
    let owner: Entry | undefined;
    for (const o of this.bySelector.get(k) ?? []) if (o !== e && (!owner || o.seq < owner.seq)) owner = o;
    const mine = owner?.policies.get(k);
    if (!mine) return false;
    // The kernel's policy may still carry the leaving entry's template: the owner's goes back in.
    try {
      await this.kernel.updatePolicy(mine);
    } catch {
      // Gone meanwhile (an operator or a flush): the owner's next install adds it.
    }
    return true;
  }

  /**
   * Re-learns policies that are already in the kernel (checkpoint restore
   * after a daemon restart): no kernel writes. `banded` as `snapshot()` gave them.
   */
  adopt(reqid: number, banded: readonly PolicySpec[], opts: { holder?: string; trap?: boolean }): void {
    const e = this.entry(reqid);
    if (opts.holder !== undefined)
      e.holders.set(opts.holder, new Set([...(e.holders.get(opts.holder) ?? []), ...banded.map(key)]));
    if (opts.trap) e.trap = true;
    for (const p of banded) this.put(e, key(p), { ...p });
  }

  /** Policies currently held, for status and checkpoints. */
  snapshot(): { reqid: number; holders: string[]; trap: boolean; policies: PolicySpec[] }[] {
    return [...this.entries].map(([reqid, e]) => ({
      reqid,
      holders: [...e.holders.keys()],
      trap: e.trap,
      policies: [...e.policies.values()],
    }));
  }
}
