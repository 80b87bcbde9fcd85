import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import type { Proposal } from '../config/proposal.js';
import type { PeerConfig, TsSpec } from '../config/types.js';
import { DEFAULT_RETRANSMIT } from '../ikev2/retransmit.js';
import { type Identity, IdentityError, parseIdentity } from '../sa/identity.js';
import type { AuthPolicy, ChildPolicy, PeerPolicy } from '../sa/policy.js';
import type { EncrChoice, EspProposalSpec, IkeProposalSpec } from '../sa/proposal.js';
import { parseTrafficSelector, type TrafficSelector } from '../sa/traffic-selector.js';
import { ipFamily } from '../util/ip.js';

/**
 * Compiles a resolved peer configuration into the engine's PeerPolicy:
 * proposal strings become transform lists, identities and selectors become
 * typed values, secrets are read, host names resolved.
 */
export class CompileError extends Error {
  override name = 'CompileError';
  constructor(
    readonly peer: string,
    readonly file: string,
    message: string,
  ) {
    super(`${file}: peer "${peer}": ${message}`);
  }
}

/** Ciphers with a fixed key size carry no Key Length attribute. */
const FIXED_KEY = new Set([3, 28]);

function encr(p: Proposal): EncrChoice[] {
  return p.encr.map((t) =>
    t.keyBits === undefined || FIXED_KEY.has(t.id) ? { id: t.id } : { id: t.id, keyLen: t.keyBits },
  );
}

export function ikeSpec(p: Proposal): IkeProposalSpec {
  return { encr: encr(p), prf: p.prf.map((t) => t.id), integ: p.integ.map((t) => t.id), ke: p.ke.map((t) => t.id) };
}

export function espSpec(p: Proposal, pfs: boolean): EspProposalSpec {
  return {
    encr: encr(p),
    integ: p.integ.map((t) => t.id),
    ke: pfs ? p.ke.map((t) => t.id) : [],
    esn: p.esn.length ? p.esn.map((t) => t.id === 1) : [false],
  };
}

function identity(cfg: PeerConfig, id: { type: string; value: string }): Identity {
  try {
    return parseIdentity(`${id.type}:${id.value}`);
  } catch (err) {
    const why = err instanceof IdentityError ? err.message : String(err);
    throw new CompileError(cfg.name, cfg.file, why);
  }
}

function selectors(spec: TsSpec, host: string): TrafficSelector[] {
  if (spec.kind === 'host') return [parseTrafficSelector(host)];
  return spec.prefixes.map((p) => parseTrafficSelector(p.text));
}

async function resolveAddress(cfg: PeerConfig): Promise<string> {
  if (ipFamily(cfg.address)) return cfg.address;
  try {
    return (await lookup(cfg.address)).address;
  } catch (err) {
    throw new CompileError(cfg.name, cfg.file, `cannot resolve address "${cfg.address}": ${(err as Error).message}`);
  }
}

async function auth(cfg: PeerConfig): Promise<AuthPolicy> {
  if (cfg.auth === 'psk') {
    if (!cfg.psk) throw new CompileError(cfg.name, cfg.file, 'auth = "psk" but no psk_file');
    return { kind: 'psk', secret: Buffer.from(cfg.psk.reveal()) };
  }
  const { loadCertificates, loadPrivateKey } = await import('../sa/certs.js');
  if (!cfg.certFile || !cfg.key)
    throw new CompileError(cfg.name, cfg.file, 'auth = "pubkey" needs cert_file and key_file');
  try {
    return {
      kind: 'pubkey',
      certs: loadCertificates(readFileSync(cfg.certFile)),
      privateKey: loadPrivateKey(cfg.key.reveal()),
      cas: cfg.caFiles.flatMap((f) => loadCertificates(readFileSync(f))),
    };
  } catch (err) {
    throw new CompileError(cfg.name, cfg.file, `certificate setup: ${(err as Error).message}`);
  }
}

/**
 * `sourceFor` tells the local address the kernel would use towards a peer
 * (for peers without local_address: identities and host selectors need it).
 */
export async function compilePeer(
  cfg: PeerConfig,
  sourceFor: (remote: string) => Promise<string>,
): Promise<PeerPolicy> {
  const remoteAddress = await resolveAddress(cfg);
  const local = cfg.localAddress ?? (await sourceFor(remoteAddress));
  const localId = cfg.localId ? identity(cfg, cfg.localId) : parseIdentity(`ip:${local}`);
  const remoteId = identity(cfg, cfg.remoteId);
  const children: ChildPolicy[] = cfg.children.map((c) => ({
    name: c.name,
    mode: c.mode,
    localTs: selectors(c.localTs, local),
    remoteTs: selectors(c.remoteTs, remoteAddress),
    espProposals: c.espProposals.map((p) => espSpec(p, cfg.pfs)),
    lifetimeMs: c.lifetimeMs,
    rekeyMarginMs: Math.min(cfg.rekeyMarginMs, Math.floor(c.lifetimeMs / 2)),
  }));
  return {
    name: cfg.name,
    version: cfg.version,
    remoteAddress,
    remotePort: 500,
    ...(cfg.localAddress ? { localAddress: cfg.localAddress } : {}),
    localId,
    remoteId,
    auth: await auth(cfg),
    ikeProposals: cfg.ikeProposals.map(ikeSpec),
    ikeLifetimeMs: cfg.ikeLifetimeMs,
    rekeyMarginMs: cfg.rekeyMarginMs,
    rekeyJitter: cfg.rekeyMarginMs > 0 ? Math.min(1, cfg.rekeyJitterMs / cfg.rekeyMarginMs) : 0,
    children,
    dpdDelayMs: cfg.dpdDelayMs,
    dpdTimeoutMs: cfg.dpdTimeoutMs,
    dpdAction: cfg.dpdAction,
    start: cfg.start,
    retransmit: {
      ...DEFAULT_RETRANSMIT,
      baseMs: cfg.retransmitBaseMs,
      tries: cfg.retransmitTries,
      maxTimeoutMs: cfg.retransmitMaxMs,
    },
    restartBackoffMaxMs: cfg.restartBackoffMaxMs,
    natKeepaliveMs: cfg.natKeepaliveMs,
    fragmentation: cfg.fragmentation,
    fragmentSize: cfg.fragmentSize,
    ...(cfg.aggressive ? { aggressive: true } : {}),
  };
}
