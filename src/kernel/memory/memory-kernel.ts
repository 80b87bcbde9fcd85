/**
 * MemoryKernel: an in-memory model of the XFRM backend for tests and the demo.
 * Same ownership rules and typed errors as XfrmKernel (EEXIST -> KERNEL_EXISTS,
 * missing -> KERNEL_NOT_FOUND, foreign -> KERNEL_NOT_OWNED), SPIs unique per
 * (dst, proto) with a larval SA left by allocSpi (so updateSa, not addSa,
 * completes it), byte/packet/time lifetimes enforced against an injected clock.
 */
import { KernelError, type KernelErrorCode } from '../errors.js';
import type {
  IpsecProto,
  KernelEvent,
  KernelIpsec,
  KernelSelector,
  PolicyId,
  PolicySpec,
  SaId,
  SaInfo,
  SaSpec,
} from '../types.js';
import { formatAddr, formatPrefix, parseAddr, parsePrefix } from '../xfrm/addr.js';
import { describeSa, describeSelector } from '../xfrm/convert.js';
import {
  assertPolicy,
  assertReqid,
  DEFAULT_OWNERSHIP,
  DEFAULT_SPI_RANGE,
  type Ownership,
  ownsPolicy,
  ownsReqid,
} from '../xfrm/ownership.js';

export interface MemoryKernelOptions {
  /** Clock in milliseconds (default Date.now). */
  now?: () => number;
  /** Uniform [0, 1) source for SPI choice (default Math.random). */
  random?: () => number;
  ownership?: Partial<Ownership>;
  /** Behave like a kernel without ESP: addSa/updateSa fail with KERNEL_NO_ESP. */
  noEsp?: boolean;
}

/** The kernel drops a larval SA (from ALLOCSPI) that is not completed in this time. */
export const LARVAL_LIFETIME_MS = 30_000;

interface SaEntry {
  sa: SaInfo;
  larval: boolean;
  addedAt: number;
  softFired: boolean;
}

/**
 * Canonical text of addresses and prefixes, memoised: every SA and policy
 * operation canonicalises its keys, and a mesh repeats the same few strings
 * (parsing them each time was ~10 % of a bench handshake's CPU). Bounded:
 * the cache starts over when full.
 */
const CANON_CACHE_MAX = 1 << 16;
const canonAddrCache = new Map<string, string>();
const canonPrefixCache = new Map<string, string>();
function memo(cache: Map<string, string>, text: string, compute: (t: string) => string): string {
  let v = cache.get(text);
  if (v === undefined) {
    v = flat(compute(text)); // throws on bad input: nothing cached
    if (cache.size >= CANON_CACHE_MAX) cache.clear();
    cache.set(text, v);
  }
  return v;
}
const canonAddr = (a: string): string =>
  memo(canonAddrCache, a, (t) => {
    const r = parseAddr(t);
    return formatAddr(r.bytes, r.family);
  });
const canonPrefix = (p: string): string =>
  memo(canonPrefixCache, p, (t) => {
    const r = parsePrefix(t);
    return formatPrefix(r.bytes, r.family, r.len);
  });
const markKey = (m?: { value: number; mask: number }) => (m ? `${m.value & m.mask}/${m.mask}` : '');
/*
 * Keys are joined, not built with template literals: a template makes a rope
 * (one ConsString per piece) and a stored key keeps the whole rope alive,
 * ~1.4 KB per SA across the kernel's keys.
 */
const saKey = (id: SaId) => [canonAddr(id.dst), id.spi >>> 0, id.proto, markKey(id.mark)].join('|');
function canonSelector(s: KernelSelector): KernelSelector {
  const out: KernelSelector = { src: canonPrefix(s.src), dst: canonPrefix(s.dst) };
  if (s.proto) out.proto = s.proto;
  if (s.srcPort) out.srcPort = s.srcPort;
  if (s.dstPort) out.dstPort = s.dstPort;
  return out;
}
/** Key of a policy by its canonical selector, direction and mark. */
const policyKey = (canon: KernelSelector, id: Omit<PolicyId, 'selector'>) =>
  [canon.src, canon.srcPort || 0, canon.dst, canon.dstPort || 0, canon.proto || 0, id.dir, markKey(id.mark)].join('|');
/** A flat copy of a string that may be a rope (cached values live as long as the cache). */
const flat = (s: string): string => (s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8'));
const EMPTY = Buffer.alloc(0);

function inPrefix(addr: string, prefix: string): boolean {
  const a = parseAddr(addr);
  const p = parsePrefix(prefix);
  if (a.family !== p.family) return false;
  for (let bit = 0; bit < p.len; bit++) {
    const byte = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    if (((a.bytes[byte] ?? 0) & mask) !== ((p.bytes[byte] ?? 0) & mask)) return false;
  }
  return true;
}

/**
 * Field-by-field copy of a policy (structuredClone cost ~10 % of a bench
 * handshake's CPU: 3 policies per Child SA per side).
 */
function clone(p: PolicySpec): PolicySpec {
  const c: PolicySpec = {
    selector: { ...p.selector },
    dir: p.dir,
    action: p.action,
    priority: p.priority,
    templates: p.templates.map((t) => ({ ...t })),
  };
  if (p.mark) c.mark = { ...p.mark };
  if (p.index !== undefined) c.index = p.index;
  return c;
}
/** A copy with its own backing store: a pooled copy would pin an 8 KiB pool slab per stored key. */
function keyCopy(b: Buffer): Buffer {
  const c = Buffer.allocUnsafeSlow(b.length);
  b.copy(c);
  return c;
}
/**
 * Deep copy of an SA (spec or stored info), field by field: structuredClone
 * turned Buffers into Uint8Arrays and cost ~2-3 % of a bench handshake.
 */
function cloneSa<T extends SaSpec>(s: T): T {
  const a = s.algorithms;
  const counters = (s as Partial<SaInfo>).counters;
  // One object shape for every copy (a spread of specs built with optional fields is a slow path).
  const c: SaSpec & { counters?: SaInfo['counters'] } = {
    src: s.src,
    dst: s.dst,
    spi: s.spi,
    proto: s.proto,
    mode: s.mode,
    reqid: s.reqid,
    algorithms:
      'aead' in a
        ? { aead: { name: a.aead.name, key: keyCopy(a.aead.key), icvBits: a.aead.icvBits } }
        : {
            crypt: { name: a.crypt.name, key: keyCopy(a.crypt.key) },
            auth: { name: a.auth.name, key: keyCopy(a.auth.key), truncBits: a.auth.truncBits },
          },
    counters: undefined,
  };
  if (s.encap) c.encap = { ...s.encap };
  if (s.replayWindow !== undefined) c.replayWindow = s.replayWindow;
  if (s.esn !== undefined) c.esn = s.esn;
  if (s.lifetime) c.lifetime = { ...s.lifetime };
  if (s.mark) c.mark = { ...s.mark };
  if (s.selector) c.selector = { ...s.selector };
  // Stored SAs always have counters; a spec gets them from install() right after.
  if (counters) c.counters = { ...counters };
  return c as T;
}

export class MemoryKernel implements KernelIpsec {
  readonly name = 'memory';
  readonly ownership: Ownership;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly sas = new Map<string, SaEntry>();
  private readonly policies = new Map<string, PolicySpec>();
  private readonly listeners = new Set<(ev: KernelEvent) => void>();
  private readonly injected = new Map<string, KernelErrorCode>();
  private nextIndex = 1;
  private closed = false;

  constructor(private readonly opts: MemoryKernelOptions = {}) {
    this.ownership = { ...DEFAULT_OWNERSHIP, ...opts.ownership };
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  /** Makes the next call of `op` (e.g. 'addSa') fail with `code`. */
  injectError(op: keyof KernelIpsec, code: KernelErrorCode): void {
    this.injected.set(op, code);
  }

  /**
   * Closed backend and injected failures. Subjects (error texts) are built
   * only when something fails: they are not free and every call has one.
   */
  private check(op: keyof KernelIpsec, subject: () => string): void {
    if (!this.closed && this.injected.size === 0) return;
    if (this.closed) throw new KernelError('KERNEL_CLOSED', op, subject(), 'the kernel backend is closed');
    const code = this.injected.get(op);
    if (code) {
      this.injected.delete(op);
      throw new KernelError(code, op, subject(), 'injected failure');
    }
  }

  private checkReqid(op: keyof KernelIpsec, subject: () => string, reqid: number): void {
    if (!ownsReqid(this.ownership, reqid)) assertReqid(this.ownership, op, subject(), reqid);
  }

  private checkPolicy(op: keyof KernelIpsec, subject: () => string, p: PolicySpec): void {
    if (!ownsPolicy(this.ownership, p)) assertPolicy(this.ownership, op, subject(), p);
  }

  async allocSpi(args: {
    src: string;
    dst: string;
    proto: IpsecProto;
    reqid: number;
    min?: number;
    max?: number;
  }): Promise<number> {
    const subject = () => `${args.proto} SPI for ${args.src} -> ${args.dst}`;
    this.check('allocSpi', subject);
    this.checkReqid('allocSpi', subject, args.reqid);
    const min = args.min ?? DEFAULT_SPI_RANGE.min;
    const max = args.max ?? DEFAULT_SPI_RANGE.max;
    if (min > max || min < 256)
      throw new KernelError('KERNEL_INVALID', 'allocSpi', subject(), `bad SPI range ${min}..${max}`);
    const span = max - min + 1;
    const free = (spi: number) => !this.sas.has(saKey({ dst: args.dst, spi, proto: args.proto }));
    let spi: number | undefined;
    for (let i = 0; i < 64 && spi === undefined; i++) {
      const c = min + Math.floor(this.random() * span);
      if (free(c)) spi = c;
    }
    for (let c = min; spi === undefined && c <= max && c - min < 1_000_000; c++) if (free(c)) spi = c;
    if (spi === undefined)
      throw new KernelError('KERNEL_ERROR', 'allocSpi', subject(), 'no free SPI in range', { errno: 2 });
    const sa: SaInfo = {
      src: canonAddr(args.src),
      dst: canonAddr(args.dst),
      spi,
      proto: args.proto,
      mode: 'transport',
      reqid: args.reqid,
      algorithms: { crypt: { name: '', key: EMPTY }, auth: { name: '', key: EMPTY, truncBits: 0 } },
      counters: { bytes: 0n, packets: 0n, addTime: Math.floor(this.now() / 1000), useTime: 0 },
    };
    this.sas.set(saKey(sa), { sa, larval: true, addedAt: this.now(), softFired: false });
    return spi;
  }

  private install(op: 'addSa' | 'updateSa', key: string, spec: SaSpec, existing: SaEntry | undefined): void {
    if (this.opts.noEsp) {
      throw new KernelError(
        'KERNEL_NO_ESP',
        op,
        describeSa(spec, spec.src),
        'this kernel has no ESP support (memory backend: noEsp)',
        { errno: 93 },
      );
    }
    const sa = cloneSa(spec) as SaInfo;
    sa.src = canonAddr(spec.src);
    sa.dst = canonAddr(spec.dst);
    sa.counters =
      existing && !existing.larval
        ? existing.sa.counters
        : { bytes: 0n, packets: 0n, addTime: Math.floor(this.now() / 1000), useTime: 0 };
    const addedAt = existing && !existing.larval ? existing.addedAt : this.now();
    this.sas.set(key, { sa, larval: false, addedAt, softFired: false });
  }

  async addSa(spec: SaSpec): Promise<void> {
    const subject = () => describeSa(spec, spec.src);
    this.check('addSa', subject);
    this.checkReqid('addSa', subject, spec.reqid);
    const key = saKey(spec);
    if (this.sas.has(key))
      throw new KernelError('KERNEL_EXISTS', 'addSa', subject(), 'already exists in the kernel', { errno: 17 });
    this.install('addSa', key, spec, undefined);
  }

  async updateSa(spec: SaSpec): Promise<void> {
    const subject = () => describeSa(spec, spec.src);
    this.check('updateSa', subject);
    this.checkReqid('updateSa', subject, spec.reqid);
    const key = saKey(spec);
    const cur = this.sas.get(key);
    if (!cur) throw new KernelError('KERNEL_NOT_FOUND', 'updateSa', subject(), 'not found in the kernel', { errno: 3 });
    if (!ownsReqid(this.ownership, cur.sa.reqid)) {
      throw new KernelError(
        'KERNEL_NOT_OWNED',
        'updateSa',
        subject(),
        "the SA in the kernel is not coati's (foreign reqid)",
      );
    }
    this.install('updateSa', key, spec, cur);
  }

  async deleteSa(id: SaId): Promise<void> {
    const subject = () => describeSa(id);
    this.check('deleteSa', subject);
    const key = saKey(id);
    const cur = this.sas.get(key);
    if (!cur) throw new KernelError('KERNEL_NOT_FOUND', 'deleteSa', subject(), 'not found in the kernel', { errno: 3 });
    if (!ownsReqid(this.ownership, cur.sa.reqid)) {
      throw new KernelError(
        'KERNEL_NOT_OWNED',
        'deleteSa',
        subject(),
        "the SA is not coati's (foreign reqid); left alone",
      );
    }
    this.sas.delete(key);
  }

  async getSa(id: SaId): Promise<SaInfo | undefined> {
    this.check('getSa', () => describeSa(id));
    const e = this.sas.get(saKey(id));
    return e && ownsReqid(this.ownership, e.sa.reqid) ? cloneSa(e.sa) : undefined;
  }

  async listSas(): Promise<SaInfo[]> {
    this.check('listSas', () => 'all SAs');
    return [...this.sas.values()].filter((e) => ownsReqid(this.ownership, e.sa.reqid)).map((e) => cloneSa(e.sa));
  }

  async addPolicy(p: PolicySpec): Promise<void> {
    const subject = () => `policy ${p.dir} ${describeSelector(p.selector)}`;
    this.check('addPolicy', subject);
    this.checkPolicy('addPolicy', subject, p);
    const canon = canonSelector(p.selector);
    const key = policyKey(canon, p);
    if (this.policies.has(key))
      throw new KernelError('KERNEL_EXISTS', 'addPolicy', subject(), 'already exists in the kernel', { errno: 17 });
    this.storePolicy(key, canon, p, undefined);
  }

  async updatePolicy(p: PolicySpec): Promise<void> {
    const subject = () => `policy ${p.dir} ${describeSelector(p.selector)}`;
    this.check('updatePolicy', subject);
    this.checkPolicy('updatePolicy', subject, p);
    const canon = canonSelector(p.selector);
    const key = policyKey(canon, p);
    const cur = this.policies.get(key);
    if (cur && !ownsPolicy(this.ownership, cur)) {
      throw new KernelError(
        'KERNEL_NOT_OWNED',
        'updatePolicy',
        subject(),
        "the policy in the kernel is not coati's; left alone",
      );
    }
    this.storePolicy(key, canon, p, cur);
  }

  private storePolicy(key: string, canon: KernelSelector, p: PolicySpec, cur: PolicySpec | undefined): void {
    const dirBits = p.dir === 'in' ? 0 : p.dir === 'out' ? 1 : 2;
    const stored = clone(p);
    stored.selector = canon;
    stored.index = cur?.index ?? (this.nextIndex++ << 3) | dirBits;
    this.policies.set(key, stored);
  }

  async deletePolicy(id: PolicyId): Promise<void> {
    const subject = () => `policy ${id.dir} ${describeSelector(id.selector)}`;
    this.check('deletePolicy', subject);
    const key = policyKey(canonSelector(id.selector), id);
    const cur = this.policies.get(key);
    if (!cur)
      throw new KernelError('KERNEL_NOT_FOUND', 'deletePolicy', subject(), 'not found in the kernel', { errno: 2 });
    if (!ownsPolicy(this.ownership, cur)) {
      throw new KernelError('KERNEL_NOT_OWNED', 'deletePolicy', subject(), "the policy is not coati's; left alone");
    }
    this.policies.delete(key);
  }

  async listPolicies(): Promise<PolicySpec[]> {
    this.check('listPolicies', () => 'all policies');
    return [...this.policies.values()].filter((p) => ownsPolicy(this.ownership, p)).map(clone);
  }

  onEvent(listener: (ev: KernelEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(ev: KernelEvent): void {
    for (const l of [...this.listeners]) l(ev);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
  }

  // ---- test controls ----

  /** Installs an object coati does not own (as another daemon would). */
  addForeignPolicy(p: PolicySpec): void {
    const canon = canonSelector(p.selector);
    this.policies.set(policyKey(canon, p), {
      ...clone(p),
      selector: canon,
      index: (this.nextIndex++ << 3) | 1,
    });
  }

  /** Counts traffic on an SA; fires soft/hard byte and packet expiry like the kernel. */
  simulateTraffic(id: SaId, bytes: number | bigint, packets: number | bigint = 1): void {
    const e = this.sas.get(saKey(id));
    if (!e || e.larval) throw new Error(`simulateTraffic: no installed ${describeSa(id)}`);
    e.sa.counters.bytes += BigInt(bytes);
    e.sa.counters.packets += BigInt(packets);
    // As Linux (xfrm_state_check_expire): use_time is the time of the FIRST use, never updated.
    if (!e.sa.counters.useTime) e.sa.counters.useTime = Math.floor(this.now() / 1000);
    const l = e.sa.lifetime ?? {};
    const c = e.sa.counters;
    if (
      (l.hardBytes !== undefined && c.bytes >= l.hardBytes) ||
      (l.hardPackets !== undefined && c.packets >= l.hardPackets)
    ) {
      this.expire(e, true);
    } else if (
      !e.softFired &&
      ((l.softBytes !== undefined && c.bytes >= l.softBytes) ||
        (l.softPackets !== undefined && c.packets >= l.softPackets))
    ) {
      this.expire(e, false);
    }
  }

  /** Emits an expire event for the SA; a hard expire removes it (as the kernel does). */
  simulateExpire(id: SaId, hard: boolean): void {
    const e = this.sas.get(saKey(id));
    if (!e) throw new Error(`simulateExpire: no ${describeSa(id)}`);
    this.expire(e, hard);
  }

  private expire(e: SaEntry, hard: boolean): void {
    if (hard) this.sas.delete(saKey(e.sa));
    else e.softFired = true;
    if (!ownsReqid(this.ownership, e.sa.reqid)) return;
    const sa: SaId = { dst: e.sa.dst, spi: e.sa.spi, proto: e.sa.proto, ...(e.sa.mark ? { mark: e.sa.mark } : {}) };
    this.emit({ type: 'expire', sa, hard, src: e.sa.src, reqid: e.sa.reqid });
  }

  /**
   * A packet leaves the host: the best-priority matching out policy with
   * templates and no installed SA for its first template raises an ACQUIRE.
   * Returns whether an acquire was emitted.
   */
  simulateAcquire(pkt: { src: string; dst: string; proto?: number; srcPort?: number; dstPort?: number }): boolean {
    const match = [...this.policies.values()]
      .filter((p) => p.dir === 'out' && matches(p.selector, pkt))
      .sort((a, b) => a.priority - b.priority)[0];
    const t = match?.templates[0];
    if (match?.action !== 'allow' || !t || !ownsPolicy(this.ownership, match)) return false;
    const tdst = t.mode === 'tunnel' ? t.dst : pkt.dst;
    const have = [...this.sas.values()].some(
      (e) => !e.larval && e.sa.reqid === t.reqid && e.sa.dst === canonAddr(tdst),
    );
    if (have) return false;
    const host = (a: string) => `${canonAddr(a)}/${parseAddr(a).family === 4 ? 32 : 128}`;
    const selector: KernelSelector = { src: host(pkt.src), dst: host(pkt.dst) };
    if (pkt.proto) selector.proto = pkt.proto;
    if (pkt.srcPort) selector.srcPort = pkt.srcPort;
    if (pkt.dstPort) selector.dstPort = pkt.dstPort;
    this.emit({
      type: 'acquire',
      selector,
      template: {
        src: canonAddr(t.mode === 'tunnel' ? t.src : pkt.src),
        dst: canonAddr(tdst),
        proto: t.proto,
        reqid: t.reqid,
      },
      policyIndex: match.index ?? 0,
    });
    return true;
  }

  /** Applies time lifetimes at the current clock: soft/hard add-expiry, larval timeout. */
  tick(): void {
    const now = this.now();
    for (const e of [...this.sas.values()]) {
      const age = now - e.addedAt;
      if (e.larval) {
        if (age >= LARVAL_LIFETIME_MS) this.sas.delete(saKey(e.sa));
        continue;
      }
      const l = e.sa.lifetime;
      if (l?.hardAddSeconds && age >= l.hardAddSeconds * 1000) this.expire(e, true);
      else if (l?.softAddSeconds && !e.softFired && age >= l.softAddSeconds * 1000) this.expire(e, false);
    }
  }
}

function matches(
  s: KernelSelector,
  pkt: { src: string; dst: string; proto?: number; srcPort?: number; dstPort?: number },
): boolean {
  if (!inPrefix(pkt.src, s.src) || !inPrefix(pkt.dst, s.dst)) return false;
  if (s.proto && s.proto !== pkt.proto) return false;
  if (s.srcPort && s.srcPort !== pkt.srcPort) return false;
  if (s.dstPort && s.dstPort !== pkt.dstPort) return false;
  return true;
}
