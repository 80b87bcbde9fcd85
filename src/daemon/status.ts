import { hostname } from 'node:os';
import type { ChildSaStatus, IkeSaStatus, PeerState, PeerStatus, StatusReport } from '../control/types.js';
import type { IsakmpSa } from '../ikev1/isakmp-sa.js';
import type { Ikev1Manager } from '../ikev1/manager.js';
import type { ChildSa } from '../ikev2/child-sa.js';
import { spiHex } from '../ikev2/child-sa.js';
import type { IkeSa } from '../ikev2/ike-sa.js';
import type { Ikev2Manager } from '../ikev2/manager.js';
import type { KernelIpsec } from '../kernel/types.js';
import { suiteName } from '../sa/proposal.js';
import { formatTrafficSelector } from '../sa/traffic-selector.js';

const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : '');

function ikeStatus(sa: IkeSa): IkeSaStatus {
  const ids = sa.tm.ids;
  return {
    spiI: sa.spiI.toString('hex'),
    spiR: sa.spiR.toString('hex'),
    role: sa.role,
    state: sa.state,
    algorithms: sa.suite ? suiteName(sa.suite) : '',
    establishedAt: iso(sa.establishedAt),
    rekeyAt: iso(sa.rekeyAt),
    expiresAt: iso(sa.expireAt),
    messageIdOut: ids.nextOut,
    messageIdIn: ids.nextIn,
  };
}

/** ISAKMP SA (IKEv1): cookies stand where IKEv2 has SPIs; phase 1 has no message IDs to show. */
function isakmpStatus(sa: IsakmpSa): IkeSaStatus {
  const s = sa.suite;
  const ke: Record<number, string> = {
    14: 'modp2048',
    15: 'modp3072',
    16: 'modp4096',
    19: 'ecp256',
    20: 'ecp384',
    21: 'ecp521',
  };
  return {
    spiI: sa.cookieI.toString('hex'),
    spiR: sa.cookieR.toString('hex'),
    role: sa.isInitiator ? 'initiator' : 'responder',
    state: sa.state,
    algorithms: s ? `aes${s.keyLen}/${s.hash}/${ke[s.group] ?? `group${s.group}`}` : '',
    establishedAt: iso(sa.establishedAt),
    rekeyAt: iso(sa.rekeyAt),
    expiresAt: iso(sa.expireAt),
    messageIdOut: 0,
    messageIdIn: 0,
  };
}

type AnySa = IkeSa | IsakmpSa;
type AnyManager = Ikev2Manager | Ikev1Manager;

async function childStatus(kernel: KernelIpsec, sa: AnySa, c: ChildSa): Promise<ChildSaStatus> {
  const counters = async (dst: string, spi: number) => {
    try {
      return (await kernel.getSa({ dst, spi, proto: 'esp' }))?.counters;
    } catch {
      return undefined;
    }
  };
  const [inC, outC] = await Promise.all([counters(sa.local.addr, c.spiIn), counters(sa.remote.addr, c.spiOut)]);
  const lastUse = Math.max(inC?.useTime ?? 0, outC?.useTime ?? 0);
  return {
    name: c.name,
    state: c.state,
    spiIn: spiHex(c.spiIn),
    spiOut: spiHex(c.spiOut),
    mode: c.mode,
    localTs: c.localTs.map(formatTrafficSelector),
    remoteTs: c.remoteTs.map(formatTrafficSelector),
    algorithms: suiteName(c.suite),
    encap: c.encap,
    rekeyAt: iso(c.rekeyAt),
    expiresAt: iso(c.expireAt),
    bytesIn: String(inC?.bytes ?? 0n),
    bytesOut: String(outC?.bytes ?? 0n),
    packetsIn: String(inC?.packets ?? 0n),
    packetsOut: String(outC?.packets ?? 0n),
    ...(lastUse > 0 ? { lastUsedAt: new Date(lastUse * 1000).toISOString() } : {}),
  };
}

function peerState(m: AnyManager, name: string, trapped: boolean): PeerState {
  const sas: AnySa[] = m.sasOf(name);
  if (sas.some((s) => s.state === 'rekeying')) return 'rekeying';
  if (sas.some((s) => s.state === 'established')) return 'up';
  if (sas.some((s) => s.state === 'created' || s.state === 'connecting' || s.state === 'authenticating'))
    return 'connecting';
  if (trapped) return 'trap';
  return m.peer(name)?.wantUp ? 'down' : 'idle';
}

export async function peerStatus(m: AnyManager, kernel: KernelIpsec, name: string): Promise<PeerStatus | undefined> {
  const rt = m.peer(name);
  if (!rt) return undefined;
  const p = rt.policy;
  const trapped = [...rt.reqids.values()].some((r) => m.book.isTrapped(r));
  const all: AnySa[] = m.sasOf(name);
  const sa: AnySa | undefined = m.established(name)[0] ?? all[all.length - 1];
  const v2 = sa && 'tm' in sa ? sa : undefined;
  const childrenOf = (x: AnySa) =>
    Promise.all([...x.children.values()].filter((c) => c.state !== 'destroyed').map((c) => childStatus(kernel, x, c)));
  const children = sa ? await childrenOf(sa) : [];
  const others = await Promise.all(
    all
      .filter((x) => x !== sa)
      .map(async (x) => ({ ...('tm' in x ? ikeStatus(x) : isakmpStatus(x)), children: await childrenOf(x) })),
  );
  const err = sa?.lastError ?? rt.lastError;
  return {
    name,
    address: sa?.remote.addr ?? p.remoteAddress,
    version: p.version,
    localId: p.localId.text,
    remoteId: p.remoteId.text,
    state: peerState(m, name, trapped),
    natDetected: { ...(sa?.nat ?? { local: false, remote: false }) },
    remotePort: sa?.remote.port ?? p.remotePort,
    ...(sa?.lastInboundAt ? { lastInboundAt: iso(sa.lastInboundAt) } : {}),
    ...(v2?.lastLivenessAt ? { lastLivenessCheckAt: iso(v2.lastLivenessAt) } : {}),
    livenessFailures: v2?.livenessFailures ?? 0,
    ...(sa && ['established', 'rekeying', 'authenticating', 'connecting'].includes(sa.state)
      ? { ike: 'tm' in sa ? ikeStatus(sa) : isakmpStatus(sa) }
      : {}),
    children,
    ...(others.length ? { otherIkeSas: others } : {}),
    ...(err ? { lastError: { code: err.code, message: err.message, at: iso(err.at) } } : {}),
  };
}

export async function statusReport(args: {
  manager: Ikev2Manager;
  v1?: Ikev1Manager;
  kernel: KernelIpsec;
  localAddresses: string[];
  startedAt: number;
  version: string;
  peer?: string;
  initiations?: StatusReport['initiations'];
}): Promise<StatusReport> {
  const managers: AnyManager[] = args.v1 ? [args.manager, args.v1] : [args.manager];
  const peers: PeerStatus[] = [];
  for (const m of managers) {
    for (const n of (args.peer ? [args.peer] : m.peerNames()).filter((name) => m.peer(name))) {
      const p = await peerStatus(m, args.kernel, n);
      if (p) peers.push(p);
    }
  }
  peers.sort((a, b) => a.name.localeCompare(b.name));
  const now = Date.now();
  return {
    host: hostname(),
    localAddresses: args.localAddresses,
    daemonVersion: args.version,
    pid: process.pid,
    uptimeSec: Math.round((now - args.startedAt) / 1000),
    startedAt: new Date(args.startedAt).toISOString(),
    generatedAt: new Date(now).toISOString(),
    ...(args.initiations ? { initiations: args.initiations } : {}),
    peers,
  };
}
