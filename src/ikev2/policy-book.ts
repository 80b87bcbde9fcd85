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
  holders: Set<string>;
  /** Trap policies stay when the last holder goes (on-demand / dpd_action=trap). */
  trap: boolean;
}

/**
 * Kernel policies per reqid, shared by the Child SAs of one configured child
 * (old and new during a make-before-break rekey) and by trap policies.
 * Policies are added with the first holder and removed with the last one.
 */
export class PolicyBook {
  private readonly entries = new Map<number, Entry>();

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
      e = { policies: new Map(), holders: new Set(), trap: false };
      this.entries.set(reqid, e);
    }
    return e;
  }

  /** Installs (or refreshes) policies for a holder; existing identical selectors are updated in place. */
  async hold(reqid: number, holder: string, relative: readonly PolicySpec[]): Promise<void> {
    const specs = this.banded(relative);
    const e = this.entry(reqid);
    e.holders.add(holder);
    for (const p of specs) {
      const k = key(p);
      if (e.policies.has(k)) await this.kernel.updatePolicy(p);
      else await this.addOrTakeOver(p);
      e.policies.set(k, p);
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

  /** Marks the reqid's policies as trap policies, installing them if needed. */
  async trap(reqid: number, relative: readonly PolicySpec[]): Promise<void> {
    const specs = this.banded(relative);
    const e = this.entry(reqid);
    e.trap = true;
    for (const p of specs) {
      const k = key(p);
      if (!e.policies.has(k)) {
        await this.addOrTakeOver(p);
        e.policies.set(k, p);
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
    if (e.holders.size === 0) await this.removeAll(reqid, e);
  }

  /** Drops a holder; with no holders left and no trap, the policies go. */
  async release(reqid: number, holder: string): Promise<void> {
    const e = this.entries.get(reqid);
    if (!e?.holders.delete(holder)) return;
    if (e.holders.size > 0 || e.trap) return;
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
    this.entries.delete(reqid);
    for (const p of e.policies.values()) {
      try {
        await this.kernel.deletePolicy({ selector: p.selector, dir: p.dir, ...(p.mark ? { mark: p.mark } : {}) });
      } catch {
        // Already gone (an operator or a flush): nothing left to remove.
      }
    }
  }

  /**
   * Re-learns policies that are already in the kernel (checkpoint restore
   * after a daemon restart): no kernel writes. `banded` as `snapshot()` gave them.
   */
  adopt(reqid: number, banded: readonly PolicySpec[], opts: { holder?: string; trap?: boolean }): void {
    const e = this.entry(reqid);
    if (opts.holder !== undefined) e.holders.add(opts.holder);
    if (opts.trap) e.trap = true;
    for (const p of banded) e.policies.set(key(p), { ...p });
  }

  /** Policies currently held, for status and checkpoints. */
  snapshot(): { reqid: number; holders: string[]; trap: boolean; policies: PolicySpec[] }[] {
    return [...this.entries].map(([reqid, e]) => ({
      reqid,
      holders: [...e.holders],
      trap: e.trap,
      policies: [...e.policies.values()],
    }));
  }
}
