/** KernelIpsec shapes (types.ts) <-> XFRM structs and attributes. Pure. */
import type {
  IpsecMode,
  IpsecProto,
  KernelSelector,
  Lifetime,
  PolicyDir,
  PolicySpec,
  PolicyTemplate,
  SaId,
  SaInfo,
  SaSpec,
} from '../types.js';
import { afToFamily, familyToAf, formatAddr, formatPrefix, parseAddr, parsePrefix } from './addr.js';
import type { XfrmAttrs } from './attrs.js';
import {
  IPPROTO,
  UDP_ENCAP_ESPINUDP,
  XFRM_INF,
  XFRM_MODE,
  XFRM_POLICY_ACTION,
  XFRM_POLICY_DIR,
  XFRM_POLICY_TYPE_MAIN,
  XFRM_STATE_FLAG,
} from './constants.js';
import type { Fill, LifetimeCfg, Selector, UserpolicyInfo, UsersaId, UsersaInfo, UserTmpl } from './struct-types.js';

export const protoNumber = (p: IpsecProto): number => (p === 'esp' ? IPPROTO.ESP : IPPROTO.AH);
export function protoName(n: number): IpsecProto | undefined {
  return n === IPPROTO.ESP ? 'esp' : n === IPPROTO.AH ? 'ah' : undefined;
}
const modeName = (m: number): IpsecMode => (m === XFRM_MODE.tunnel ? 'tunnel' : 'transport');
const DIR_NAMES: PolicyDir[] = ['in', 'out', 'fwd'];
export const dirName = (d: number): PolicyDir | undefined => DIR_NAMES[d];

export function familyOf(addr: string): 4 | 6 {
  return parseAddr(addr).family;
}

export function selectorToRaw(s: KernelSelector): Fill<Selector> {
  const src = parsePrefix(s.src);
  const dst = parsePrefix(s.dst);
  if (src.family !== dst.family) throw new RangeError(`selector mixes address families: ${s.src} -> ${s.dst}`);
  return {
    saddr: src.bytes,
    daddr: dst.bytes,
    prefixlenS: src.len,
    prefixlenD: dst.len,
    family: familyToAf(src.family),
    proto: s.proto ?? 0,
    sport: s.srcPort ?? 0,
    sportMask: s.srcPort ? 0xffff : 0,
    dport: s.dstPort ?? 0,
    dportMask: s.dstPort ? 0xffff : 0,
  };
}

/** An any-to-any selector of the family (SAs without a selector). */
export function anySelector(family: 4 | 6): Fill<Selector> {
  return { family: familyToAf(family) };
}

export function rawToSelector(s: Selector): KernelSelector {
  const family = afToFamily(s.family) ?? 4;
  const out: KernelSelector = {
    src: formatPrefix(s.saddr, family, s.prefixlenS),
    dst: formatPrefix(s.daddr, family, s.prefixlenD),
  };
  if (s.proto) out.proto = s.proto;
  if (s.sportMask) out.srcPort = s.sport;
  if (s.dportMask) out.dstPort = s.dport;
  return out;
}

export function describeSelector(s: KernelSelector): string {
  const ports = (p?: number) => (p ? `:${p}` : '');
  return `${s.src}${ports(s.srcPort)} -> ${s.dst}${ports(s.dstPort)}${s.proto ? ` proto ${s.proto}` : ''}`;
}

export function describeSa(id: { spi: number; dst: string; proto: IpsecProto }, src?: string): string {
  const spi = `0x${id.spi.toString(16).padStart(8, '0')}`;
  return `SA ${id.proto} spi ${spi} ${src ? `${src} -> ` : 'to '}${id.dst}`;
}

export function lifetimeToCfg(l: Lifetime | undefined): Fill<LifetimeCfg> {
  return {
    softByteLimit: l?.softBytes ?? XFRM_INF,
    hardByteLimit: l?.hardBytes ?? XFRM_INF,
    softPacketLimit: l?.softPackets ?? XFRM_INF,
    hardPacketLimit: l?.hardPackets ?? XFRM_INF,
    softAddExpiresSeconds: BigInt(l?.softAddSeconds ?? 0),
    hardAddExpiresSeconds: BigInt(l?.hardAddSeconds ?? 0),
  };
}

function cfgToLifetime(c: LifetimeCfg): Lifetime | undefined {
  const l: Lifetime = {};
  if (c.softByteLimit !== XFRM_INF) l.softBytes = c.softByteLimit;
  if (c.hardByteLimit !== XFRM_INF) l.hardBytes = c.hardByteLimit;
  if (c.softPacketLimit !== XFRM_INF) l.softPackets = c.softPacketLimit;
  if (c.hardPacketLimit !== XFRM_INF) l.hardPackets = c.hardPacketLimit;
  if (c.softAddExpiresSeconds) l.softAddSeconds = Number(c.softAddExpiresSeconds);
  if (c.hardAddExpiresSeconds) l.hardAddSeconds = Number(c.hardAddExpiresSeconds);
  return Object.keys(l).length ? l : undefined;
}

/** NEWSA/UPDSA header and attributes for an SA. */
export function saToKernel(sa: SaSpec): { header: Fill<UsersaInfo>; attrs: XfrmAttrs } {
  const src = parseAddr(sa.src);
  const dst = parseAddr(sa.dst);
  if (src.family !== dst.family) throw new RangeError(`SA mixes address families: ${sa.src} -> ${sa.dst}`);
  const window = sa.replayWindow ?? 32;
  const useEsnAttr = !!sa.esn || window > 255;
  const attrs: XfrmAttrs = {};
  const a = sa.algorithms;
  if ('aead' in a) attrs.algAead = { name: a.aead.name, key: a.aead.key, icvBits: a.aead.icvBits };
  else {
    attrs.algCrypt = { name: a.crypt.name, key: a.crypt.key };
    attrs.algAuthTrunc = { name: a.auth.name, key: a.auth.key, truncBits: a.auth.truncBits };
  }
  if (sa.encap) {
    attrs.encap = {
      encapType: UDP_ENCAP_ESPINUDP,
      encapSport: sa.encap.sport,
      encapDport: sa.encap.dport,
      encapOa: sa.encap.oa ? parseAddr(sa.encap.oa).bytes : Buffer.alloc(16),
    };
  }
  if (useEsnAttr) {
    const bmpLen = Math.ceil(window / 32);
    attrs.replayEsnVal = {
      bmpLen,
      oseq: 0,
      seq: 0,
      oseqHi: 0,
      seqHi: 0,
      replayWindow: window,
      bmp: new Array(bmpLen).fill(0),
    };
  }
  if (sa.mark) attrs.mark = { v: sa.mark.value, m: sa.mark.mask };
  const header: Fill<UsersaInfo> = {
    sel: sa.selector ? selectorToRaw(sa.selector) : anySelector(src.family),
    id: { daddr: dst.bytes, spi: sa.spi, proto: protoNumber(sa.proto) },
    saddr: src.bytes,
    lft: lifetimeToCfg(sa.lifetime),
    reqid: sa.reqid,
    family: familyToAf(src.family),
    mode: XFRM_MODE[sa.mode],
    replayWindow: useEsnAttr ? 0 : window,
    flags: sa.esn ? XFRM_STATE_FLAG.ESN : 0,
  };
  return { header, attrs };
}

/** SA from a NEWSA reply/dump entry (a larval SA from ALLOCSPI has empty algorithm names). */
export function kernelToSa(h: UsersaInfo, attrs: XfrmAttrs): SaInfo | undefined {
  const family = afToFamily(h.family);
  const proto = protoName(h.id.proto);
  if (!family || !proto) return undefined;
  const empty = Buffer.alloc(0);
  const algorithms: SaSpec['algorithms'] = attrs.algAead
    ? {
        aead: {
          name: attrs.algAead.name as 'rfc4106(gcm(aes))',
          key: attrs.algAead.key,
          icvBits: attrs.algAead.icvBits,
        },
      }
    : {
        crypt: { name: attrs.algCrypt?.name ?? '', key: attrs.algCrypt?.key ?? empty },
        auth: {
          name: attrs.algAuthTrunc?.name ?? attrs.algAuth?.name ?? '',
          key: attrs.algAuthTrunc?.key ?? attrs.algAuth?.key ?? empty,
          truncBits: attrs.algAuthTrunc?.truncBits ?? 0,
        },
      };
  const sa: SaInfo = {
    src: formatAddr(h.saddr, family),
    dst: formatAddr(h.id.daddr, family),
    spi: h.id.spi,
    proto,
    mode: modeName(h.mode),
    reqid: h.reqid,
    algorithms,
    replayWindow: attrs.replayEsnVal?.replayWindow ?? h.replayWindow,
    counters: {
      bytes: h.curlft.bytes,
      packets: h.curlft.packets,
      addTime: Number(h.curlft.addTime),
      useTime: Number(h.curlft.useTime),
      replayWindow: h.stats.replayWindow,
      integrityFailed: h.stats.integrityFailed,
    },
  };
  if (h.flags & XFRM_STATE_FLAG.ESN) sa.esn = true;
  const lifetime = cfgToLifetime(h.lft);
  if (lifetime) sa.lifetime = lifetime;
  if (attrs.mark) sa.mark = { value: attrs.mark.v, mask: attrs.mark.m };
  if (attrs.encap) {
    sa.encap = { sport: attrs.encap.encapSport, dport: attrs.encap.encapDport };
    if (attrs.encap.encapOa.some((b) => b !== 0)) sa.encap.oa = formatAddr(attrs.encap.encapOa, family);
  }
  if (h.sel.prefixlenD || h.sel.prefixlenS || h.sel.proto) sa.selector = rawToSelector(h.sel);
  return sa;
}

export function saIdToKernel(id: SaId): { header: Fill<UsersaId>; attrs: XfrmAttrs } {
  const dst = parseAddr(id.dst);
  const attrs: XfrmAttrs = id.mark ? { mark: { v: id.mark.value, m: id.mark.mask } } : {};
  return {
    header: { daddr: dst.bytes, spi: id.spi, family: familyToAf(dst.family), proto: protoNumber(id.proto) },
    attrs,
  };
}

function tmplToKernel(t: PolicyTemplate, selFamily: 4 | 6): Fill<UserTmpl> {
  const tunnel = t.mode === 'tunnel';
  const dst = tunnel ? parseAddr(t.dst) : undefined;
  const src = tunnel ? parseAddr(t.src) : undefined;
  return {
    id: { daddr: dst?.bytes ?? Buffer.alloc(16), spi: t.spi ?? 0, proto: protoNumber(t.proto) },
    family: familyToAf(dst?.family ?? selFamily),
    saddr: src?.bytes ?? Buffer.alloc(16),
    reqid: t.reqid,
    mode: XFRM_MODE[t.mode],
    aalgos: 0xffffffff,
    ealgos: 0xffffffff,
    calgos: 0xffffffff,
  };
}

export function policyToKernel(p: PolicySpec): { header: Fill<UserpolicyInfo>; attrs: XfrmAttrs } {
  const sel = selectorToRaw(p.selector);
  const fam = afToFamily(sel.family!)!;
  const attrs: XfrmAttrs = { policyType: { type: XFRM_POLICY_TYPE_MAIN, reserved1: 0, reserved2: 0 } };
  if (p.templates.length) attrs.tmpl = p.templates.map((t) => tmplToKernel(t, fam) as UserTmpl);
  if (p.mark) attrs.mark = { v: p.mark.value, m: p.mark.mask };
  const header: Fill<UserpolicyInfo> = {
    sel,
    lft: lifetimeToCfg(undefined),
    priority: p.priority,
    index: p.index ?? 0,
    dir: XFRM_POLICY_DIR[p.dir],
    action: XFRM_POLICY_ACTION[p.action],
  };
  return { header, attrs };
}

export function templateFromKernel(t: UserTmpl): PolicyTemplate | undefined {
  const proto = protoName(t.id.proto);
  const fam = afToFamily(t.family);
  if (!proto || !fam) return undefined;
  const tunnel = t.mode === XFRM_MODE.tunnel;
  const out: PolicyTemplate = {
    src: tunnel ? formatAddr(t.saddr, fam) : '',
    dst: tunnel ? formatAddr(t.id.daddr, fam) : '',
    proto,
    mode: modeName(t.mode),
    reqid: t.reqid,
  };
  if (t.id.spi) out.spi = t.id.spi;
  return out;
}

export function kernelToPolicy(h: UserpolicyInfo, attrs: XfrmAttrs): PolicySpec | undefined {
  const dir = dirName(h.dir);
  if (!dir || !afToFamily(h.sel.family)) return undefined;
  const templates: PolicyTemplate[] = [];
  for (const t of attrs.tmpl ?? []) {
    const pt = templateFromKernel(t);
    if (!pt) return undefined;
    templates.push(pt);
  }
  const p: PolicySpec = {
    selector: rawToSelector(h.sel),
    dir,
    action: h.action === XFRM_POLICY_ACTION.block ? 'block' : 'allow',
    priority: h.priority,
    templates,
    index: h.index,
  };
  if (attrs.mark) p.mark = { value: attrs.mark.v, mask: attrs.mark.m };
  return p;
}
