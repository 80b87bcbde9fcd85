/**
 * XfrmKernel: KernelIpsec over Linux XFRM netlink. One socket for requests,
 * one subscribed to ACQUIRE/EXPIRE/MAPPING for events. Ownership tagging
 * (ownership.ts) keeps coati away from SAs and policies it did not install.
 */
import { KernelError } from '../errors.js';
import type { IpsecProto, KernelEvent, KernelIpsec, PolicyId, PolicySpec, SaId, SaInfo, SaSpec } from '../types.js';
import { afToFamily, familyToAf, formatAddr, parseAddr } from './addr.js';
import { XFRM_POLICY_DIR, XFRM_POLICY_TYPE_MAIN, XFRMNLGRP } from './constants.js';
import {
  describeSa,
  describeSelector,
  kernelToPolicy,
  kernelToSa,
  policyToKernel,
  protoName,
  protoNumber,
  rawToSelector,
  saIdToKernel,
  saToKernel,
  selectorToRaw,
  templateFromKernel,
} from './convert.js';
import { type KernelOp, mapKernelError } from './error-map.js';
import type { XfrmMessage } from './messages.js';
import {
  assertPolicy,
  assertReqid,
  DEFAULT_OWNERSHIP,
  DEFAULT_SPI_RANGE,
  type Ownership,
  ownsPolicy,
  ownsReqid,
} from './ownership.js';
import type { SpdHthresh } from './struct-types.js';
import { NetlinkRequestError, XfrmTransport } from './transport.js';

export interface XfrmKernelOptions {
  /** Network namespace (name under /run/netns, or a path); default: the process's. */
  netns?: string;
  ownership?: Partial<Ownership>;
  timeoutMs?: number;
  /** Subscribe to ACQUIRE/EXPIRE/MAPPING (default true). */
  events?: boolean;
  /** Set SPD hash thresholds at open (netns-wide; see setSpdHashThresholds). */
  hashThresholds?: { v4?: SpdHthresh; v6?: SpdHthresh };
  /** Called when the kernel dropped event messages for us (receive queue overrun). */
  onOverrun?: () => void;
}

export { DEFAULT_SPI_RANGE } from './ownership.js';

export class XfrmKernel implements KernelIpsec {
  readonly name = 'xfrm';
  readonly ownership: Ownership;
  private readonly req: XfrmTransport;
  private readonly ev: XfrmTransport | undefined;
  private readonly listeners = new Set<(ev: KernelEvent) => void>();
  /** Event messages dropped by the kernel (ENOBUFS) since open. */
  overruns = 0;

  private constructor(opts: XfrmKernelOptions) {
    this.ownership = { ...DEFAULT_OWNERSHIP, ...opts.ownership };
    const base = {
      ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    };
    this.req = new XfrmTransport(base);
    try {
      this.ev =
        opts.events === false
          ? undefined
          : new XfrmTransport({
              ...base,
              groups: [XFRMNLGRP.ACQUIRE, XFRMNLGRP.EXPIRE, XFRMNLGRP.MAPPING],
              onNotification: (m) => this.onNotification(m),
              onOverrun: () => {
                this.overruns++;
                opts.onOverrun?.();
              },
            });
    } catch (err) {
      this.req.close();
      throw err;
    }
  }

  /** Opens the netlink sockets (throws CoatiError NATIVE_NOT_BUILT or a socket error). */
  static async open(opts: XfrmKernelOptions = {}): Promise<XfrmKernel> {
    const k = new XfrmKernel(opts);
    if (opts.hashThresholds) {
      try {
        await k.setSpdHashThresholds(opts.hashThresholds);
      } catch (err) {
        await k.close();
        throw err;
      }
    }
    return k;
  }

  private async call(
    op: KernelOp,
    subject: string,
    fn: () => Promise<XfrmMessage[]>,
    sa?: Pick<SaSpec, 'algorithms' | 'proto'>,
  ): Promise<XfrmMessage[]> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof NetlinkRequestError) throw mapKernelError(op, subject, err, sa);
      throw err;
    }
  }

  async allocSpi(args: {
    src: string;
    dst: string;
    proto: IpsecProto;
    reqid: number;
    min?: number;
    max?: number;
  }): Promise<number> {
    const subject = `${args.proto} SPI for ${args.src} -> ${args.dst}`;
    assertReqid(this.ownership, 'allocSpi', subject, args.reqid);
    const src = parseAddr(args.src);
    const dst = parseAddr(args.dst);
    const replies = await this.call('allocSpi', subject, () =>
      this.req.request({
        kind: 'ALLOCSPI',
        header: {
          info: {
            sel: { family: familyToAf(src.family) },
            id: { daddr: dst.bytes, proto: protoNumber(args.proto) },
            saddr: src.bytes,
            family: familyToAf(src.family),
            reqid: args.reqid,
          },
          min: args.min ?? DEFAULT_SPI_RANGE.min,
          max: args.max ?? DEFAULT_SPI_RANGE.max,
        },
      }),
    );
    const r = replies.find((m) => m.kind === 'NEWSA');
    if (r?.kind !== 'NEWSA') {
      throw new KernelError('KERNEL_MALFORMED', 'allocSpi', subject, 'the kernel acknowledged without an SA');
    }
    return r.header.id.spi;
  }

  addSa(sa: SaSpec): Promise<void> {
    return this.writeSa('addSa', sa);
  }

  async updateSa(sa: SaSpec): Promise<void> {
    // UPDSA would replace anyone's SA with that id: check the current owner first.
    const cur = await this.getRaw({ dst: sa.dst, spi: sa.spi, proto: sa.proto, ...(sa.mark ? { mark: sa.mark } : {}) });
    if (cur && !ownsReqid(this.ownership, cur.reqid)) {
      throw new KernelError(
        'KERNEL_NOT_OWNED',
        'updateSa',
        describeSa(sa, sa.src),
        "the SA in the kernel is not coati's (foreign reqid)",
      );
    }
    return this.writeSa('updateSa', sa);
  }

  private async writeSa(op: 'addSa' | 'updateSa', sa: SaSpec): Promise<void> {
    const subject = describeSa(sa, sa.src);
    assertReqid(this.ownership, op, subject, sa.reqid);
    const { header, attrs } = saToKernel(sa);
    await this.call(
      op,
      subject,
      () => this.req.request({ kind: op === 'addSa' ? 'NEWSA' : 'UPDSA', header, attrs }),
      sa,
    );
  }

  async deleteSa(id: SaId): Promise<void> {
    const subject = describeSa(id);
    const cur = await this.getRaw(id);
    if (!cur) throw new KernelError('KERNEL_NOT_FOUND', 'deleteSa', subject, 'not found in the kernel');
    if (!ownsReqid(this.ownership, cur.reqid)) {
      throw new KernelError(
        'KERNEL_NOT_OWNED',
        'deleteSa',
        subject,
        "the SA is not coati's (foreign reqid); left alone",
      );
    }
    const { header, attrs } = saIdToKernel(id);
    await this.call('deleteSa', subject, () => this.req.request({ kind: 'DELSA', header, attrs }));
  }

  /** The SA as the kernel has it, owned or not (undefined if absent). */
  private async getRaw(id: SaId): Promise<SaInfo | undefined> {
    const { header, attrs } = saIdToKernel(id);
    try {
      const replies = await this.call('getSa', describeSa(id), () =>
        this.req.request({ kind: 'GETSA', header, attrs }),
      );
      const r = replies.find((m) => m.kind === 'NEWSA');
      return r && r.kind === 'NEWSA' ? kernelToSa(r.header, r.attrs) : undefined;
    } catch (err) {
      if (err instanceof KernelError && err.code === 'KERNEL_NOT_FOUND') return undefined;
      throw err;
    }
  }

  async getSa(id: SaId): Promise<SaInfo | undefined> {
    const sa = await this.getRaw(id);
    return sa && ownsReqid(this.ownership, sa.reqid) ? sa : undefined;
  }

  async listSas(): Promise<SaInfo[]> {
    const replies = await this.call('listSas', 'all SAs', () =>
      this.req.request({ kind: 'GETSA', header: {} }, { dump: true }),
    );
    const out: SaInfo[] = [];
    for (const m of replies) {
      if (m.kind !== 'NEWSA' || !ownsReqid(this.ownership, m.header.reqid)) continue;
      const sa = kernelToSa(m.header, m.attrs);
      if (sa) out.push(sa);
    }
    return out;
  }

  async addPolicy(p: PolicySpec): Promise<void> {
    const subject = describePolicy(p);
    assertPolicy(this.ownership, 'addPolicy', subject, p);
    const { header, attrs } = policyToKernel(p);
    await this.call('addPolicy', subject, () => this.req.request({ kind: 'NEWPOLICY', header, attrs }));
  }

  async updatePolicy(p: PolicySpec): Promise<void> {
    const subject = describePolicy(p);
    assertPolicy(this.ownership, 'updatePolicy', subject, p);
    const cur = await this.getPolicyRaw(p, 'updatePolicy');
    if (cur && !ownsPolicy(this.ownership, cur)) {
      throw new KernelError(
        'KERNEL_NOT_OWNED',
        'updatePolicy',
        subject,
        "the policy in the kernel is not coati's; left alone",
      );
    }
    const { header, attrs } = policyToKernel(p);
    await this.call('updatePolicy', subject, () => this.req.request({ kind: 'UPDPOLICY', header, attrs }));
  }

  private async getPolicyRaw(id: PolicyId, op: KernelOp): Promise<PolicySpec | undefined> {
    try {
      const replies = await this.call(op, describePolicy(id), () =>
        this.req.request({ kind: 'GETPOLICY', header: policyIdHeader(id), attrs: policyIdAttrs(id) }),
      );
      const r = replies.find((m) => m.kind === 'NEWPOLICY');
      return r && r.kind === 'NEWPOLICY' ? kernelToPolicy(r.header, r.attrs) : undefined;
    } catch (err) {
      if (err instanceof KernelError && err.code === 'KERNEL_NOT_FOUND') return undefined;
      throw err;
    }
  }

  async deletePolicy(id: PolicyId): Promise<void> {
    const subject = describePolicy(id);
    const cur = await this.getPolicyRaw(id, 'deletePolicy');
    if (!cur) throw new KernelError('KERNEL_NOT_FOUND', 'deletePolicy', subject, 'not found in the kernel');
    if (!ownsPolicy(this.ownership, cur)) {
      throw new KernelError('KERNEL_NOT_OWNED', 'deletePolicy', subject, "the policy is not coati's; left alone");
    }
    await this.call('deletePolicy', subject, () =>
      this.req.request({ kind: 'DELPOLICY', header: policyIdHeader(id), attrs: policyIdAttrs(id) }),
    );
  }

  async listPolicies(): Promise<PolicySpec[]> {
    const replies = await this.call('listPolicies', 'all policies', () =>
      this.req.request({ kind: 'GETPOLICY', header: {} }, { dump: true }),
    );
    const out: PolicySpec[] = [];
    for (const m of replies) {
      if (m.kind !== 'NEWPOLICY') continue;
      const p = kernelToPolicy(m.header, m.attrs);
      if (p && ownsPolicy(this.ownership, p)) out.push(p);
    }
    return out;
  }

  /**
   * Hash policies whose selector prefixes are at least lbits/rbits long
   * (XFRM_MSG_NEWSPDINFO). Netns-wide: it changes lookup structures, not
   * which policy matches.
   */
  async setSpdHashThresholds(t: { v4?: SpdHthresh; v6?: SpdHthresh }): Promise<void> {
    await this.call('setSpdHashThresholds', 'SPD', () =>
      this.req.request({
        kind: 'NEWSPDINFO',
        header: { flags: 0 },
        attrs: {
          ...(t.v4 ? { spdIpv4Hthresh: t.v4 } : {}),
          ...(t.v6 ? { spdIpv6Hthresh: t.v6 } : {}),
        },
      }),
    );
  }

  onEvent(listener: (ev: KernelEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(ev: KernelEvent): void {
    for (const l of [...this.listeners]) l(ev);
  }

  private onNotification(m: XfrmMessage): void {
    const ev = toEvent(m, this.ownership);
    if (ev) this.emit(ev);
  }

  async close(): Promise<void> {
    this.req.close();
    this.ev?.close();
    this.listeners.clear();
  }
}

function describePolicy(p: PolicyId): string {
  return `policy ${p.dir} ${describeSelector(p.selector)}`;
}

function policyIdHeader(id: PolicyId) {
  return { sel: selectorToRaw(id.selector), dir: XFRM_POLICY_DIR[id.dir] };
}
function policyIdAttrs(id: PolicyId) {
  return {
    policyType: { type: XFRM_POLICY_TYPE_MAIN, reserved1: 0, reserved2: 0 },
    ...(id.mark ? { mark: { v: id.mark.value, m: id.mark.mask } } : {}),
  };
}

/** Kernel notification -> KernelEvent, for owned objects only. */
export function toEvent(m: XfrmMessage, o: Ownership): KernelEvent | undefined {
  switch (m.kind) {
    case 'ACQUIRE': {
      const h = m.header;
      const tmpls = (m.attrs.tmpl ?? []).map(templateFromKernel);
      const policy = kernelToPolicy(h.policy, m.attrs);
      if (!policy || !ownsPolicy(o, { priority: h.policy.priority, templates: tmpls.filter((t) => t !== undefined) })) {
        return undefined;
      }
      const t0 = m.attrs.tmpl?.[0];
      const fam = afToFamily(t0?.family ?? h.sel.family) ?? 4;
      const proto = protoName(h.id.proto) ?? 'esp';
      return {
        type: 'acquire',
        selector: rawToSelector(h.sel),
        template: { src: formatAddr(h.saddr, fam), dst: formatAddr(h.id.daddr, fam), proto, reqid: t0?.reqid ?? 0 },
        policyIndex: h.policy.index,
      };
    }
    case 'EXPIRE': {
      const s = m.header.state;
      const fam = afToFamily(s.family);
      const proto = protoName(s.id.proto);
      if (!fam || !proto || !ownsReqid(o, s.reqid)) return undefined;
      const sa: SaId = { dst: formatAddr(s.id.daddr, fam), spi: s.id.spi, proto };
      if (m.attrs.mark) sa.mark = { value: m.attrs.mark.v, mask: m.attrs.mark.m };
      return { type: 'expire', sa, hard: m.header.hard !== 0, src: formatAddr(s.saddr, fam), reqid: s.reqid };
    }
    case 'POLEXPIRE': {
      const p = kernelToPolicy(m.header.pol, m.attrs);
      if (!p || !ownsPolicy(o, p)) return undefined;
      const policy: PolicyId = { selector: p.selector, dir: p.dir, ...(p.mark ? { mark: p.mark } : {}) };
      return { type: 'polexpire', policy, hard: m.header.hard !== 0 };
    }
    case 'MAPPING': {
      const h = m.header;
      const fam = afToFamily(h.id.family);
      const proto = protoName(h.id.proto);
      if (!fam || !proto || !ownsReqid(o, h.reqid)) return undefined;
      return {
        type: 'mapping',
        sa: { dst: formatAddr(h.id.daddr, fam), spi: h.id.spi, proto },
        oldAddr: formatAddr(h.oldSaddr, fam),
        oldPort: h.oldSport,
        newAddr: formatAddr(h.newSaddr, fam),
        newPort: h.newSport,
      };
    }
    default:
      return undefined;
  }
}
