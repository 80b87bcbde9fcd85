/**
 * Resolves one peer: its file's keys over the main file's [defaults] over
 * built-in defaults, children, secrets, and the cross-key checks.
 */

import { access, constants } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { identityForAddress } from './identity.js';
import { parseProposals } from './proposal.js';
import {
  CHILD_SPEC,
  type FileErrors,
  type PEER_SPEC,
  type PeerValues,
  readSection,
  type SectionRead,
} from './schema.js';
import { readSecretFile, Secret } from './secret.js';
import type { LEntry, Loc } from './toml-tree.js';
import { describeNode } from './toml-tree.js';
import type { ChildConfig, PeerConfig, TsSpec } from './types.js';
import type { Prefix } from './values.js';

/** Keys of a peer table handled outside PEER_SPEC. */
export const PEER_EXTRA_KEYS = ['children'] as const;

export interface PeerLayer {
  errs: FileErrors;
  read: SectionRead<typeof PEER_SPEC>;
  children?: LEntry;
}

export interface PeerContext {
  /** Relative paths are resolved against this directory (the main file's). */
  baseDir: string;
  allowInlineSecrets: boolean;
  uid: number;
}

const must = (p: ReturnType<typeof parseProposals>) => {
  if (!p.ok) throw new Error(p.message);
  return p.proposals;
};

export const PEER_DEFAULTS = {
  version: 2,
  auth: 'psk',
  ike_proposals: must(parseProposals(['aes256gcm16-prfsha256-x25519'], 'ike')),
  esp_proposals: must(parseProposals(['aes256gcm16-x25519'], 'esp')),
  ike_lifetime: 4 * 3_600_000,
  child_lifetime: 3_600_000,
  rekey_margin: 9 * 60_000,
  rekey_jitter: 3 * 60_000,
  dpd_delay: 30_000,
  dpd_timeout: 30_000,
  dpd_action: 'restart',
  start: 'trap',
  mode: 'transport',
  nat_keepalive: 20_000,
  fragmentation: true,
  fragment_size: 1280,
  aggressive: false,
  pfs: true,
  retransmit_base: 2_000,
  retransmit_tries: 5,
  retransmit_max: 30_000,
  restart_backoff_max: 30_000,
} satisfies PeerValues;

interface Picked<T> {
  value: T;
  loc: Loc | undefined;
  errs: FileErrors;
  fromPeer: boolean;
}

function tsFamilies(ts: TsSpec, outer: string | null): Set<number> {
  if (ts.kind === 'prefixes') return new Set(ts.prefixes.map((p) => p.family));
  const f = outer === null ? 0 : isIP(outer);
  return new Set(f === 0 ? [] : [f]);
}

function toTs(p: Prefix[] | undefined): TsSpec {
  return p === undefined || p.length === 0 ? { kind: 'host' } : { kind: 'prefixes', prefixes: p };
}

export async function resolvePeer(
  stem: string,
  defaults: PeerLayer | undefined,
  peer: PeerLayer,
  ctx: PeerContext,
): Promise<PeerConfig | undefined> {
  const errs = peer.errs;
  const before = errs.sink.length;
  function pick<K extends keyof PeerValues>(key: K): Picked<NonNullable<PeerValues[K]>> | undefined {
    const pv = peer.read.values[key];
    if (pv !== undefined) return { value: pv as never, loc: peer.read.locs.get(key), errs, fromPeer: true };
    const dv = defaults?.read.values[key];
    if (dv !== undefined && defaults !== undefined)
      return { value: dv as never, loc: defaults.read.locs.get(key), errs: defaults.errs, fromPeer: false };
    return undefined;
  }
  function get<K extends keyof typeof PEER_DEFAULTS>(key: K): (typeof PEER_DEFAULTS)[K] {
    return (pick(key)?.value ?? PEER_DEFAULTS[key]) as (typeof PEER_DEFAULTS)[K];
  }
  const fail = (p: Picked<unknown> | undefined, key: string, message: string) => {
    if (p?.loc !== undefined) p.errs.at(p.loc, key, message);
    else errs.at({ line: 1, column: 1 }, key, message);
  };
  const path = (p: string) => (isAbsolute(p) ? p : resolve(ctx.baseDir, p));

  const name = peer.read.values.name ?? stem;
  const address = peer.read.values.address;
  if (address === undefined) {
    errs.whole('key "address": missing; every peer file needs the remote address (IP or host name)');
  }
  const localAddress = pick('local_address')?.value ?? null;
  const version = get('version') as 1 | 2;

  // Identities
  const localId = pick('local_id')?.value ?? (localAddress === null ? null : identityForAddress(localAddress));
  const remoteId = pick('remote_id')?.value ?? identityForAddress(address ?? '0.0.0.0');

  // Authentication: keys of the other method written in the peer file are errors;
  // inherited from [defaults] they are ignored.
  const auth = get('auth') as 'psk' | 'pubkey';
  const authPick = pick('auth');
  const pskFile = pick('psk_file');
  const pskInline = pick('psk');
  const certFile = pick('cert_file');
  const keyFile = pick('key_file');
  const caFiles = pick('ca_files');
  const wrong =
    auth === 'psk'
      ? { cert_file: certFile, key_file: keyFile, ca_files: caFiles }
      : { psk_file: pskFile, psk: pskInline };
  for (const [k, p] of Object.entries(wrong)) {
    if (p?.fromPeer)
      fail(
        p,
        k,
        `does not apply with auth = "${auth}"${authPick?.fromPeer ? '' : ' (the default)'}; remove it or set auth = "${auth === 'psk' ? 'pubkey' : 'psk'}"`,
      );
  }
  let psk: PeerConfig['psk'] = null;
  let key: PeerConfig['key'] = null;
  if (auth === 'psk') {
    if (pskInline !== undefined && pskFile !== undefined && pskInline.fromPeer === pskFile.fromPeer) {
      fail(pskInline, 'psk', 'both psk and psk_file are set; keep psk_file');
    } else if (pskInline !== undefined && (pskFile === undefined || pskInline.fromPeer)) {
      if (!ctx.allowInlineSecrets) {
        fail(
          pskInline,
          'psk',
          'inline secrets are refused; put the key in a file (chmod 600) and set psk_file, or set allow_inline_secrets = true in [daemon]',
        );
      } else {
        psk = new Secret(Buffer.from(pskInline.value, 'utf8'), 'inline');
      }
    } else if (pskFile !== undefined) {
      const r = await readSecretFile(path(pskFile.value), { uid: ctx.uid, stripNewline: true, minBytes: 16 });
      if (r.ok) psk = r.secret;
      else fail(pskFile, 'psk_file', r.message);
    } else {
      errs.whole(
        'key "psk_file": missing; auth = "psk" needs psk_file (or set auth = "pubkey" with cert_file and key_file)',
      );
    }
  } else {
    if (certFile === undefined) errs.whole('key "cert_file": missing; auth = "pubkey" needs cert_file and key_file');
    for (const [k, p] of [
      ['cert_file', certFile] as const,
      ...(caFiles?.value ?? []).map((f) => ['ca_files', { ...caFiles!, value: f }] as const),
    ]) {
      if (p === undefined) continue;
      try {
        await access(path(p.value), constants.R_OK);
      } catch {
        fail(p, k, `cannot read ${path(p.value)}: file not found or not readable`);
      }
    }
    if (keyFile === undefined) errs.whole('key "key_file": missing; auth = "pubkey" needs cert_file and key_file');
    else {
      const r = await readSecretFile(path(keyFile.value), { uid: ctx.uid, stripNewline: false, minBytes: 1 });
      if (r.ok) key = r.secret;
      else fail(keyFile, 'key_file', r.message);
    }
  }

  // Proposals and PFS
  const ikeProposals = get('ike_proposals');
  if (version === 1) {
    const multi = ikeProposals.find((p) => [p.encr, p.integ, p.prf, p.ke].some((l) => l.length > 1));
    if (multi !== undefined)
      fail(
        pick('ike_proposals'),
        'ike_proposals',
        `IKEv1 proposals take one algorithm of each kind; split "${multi.text}" into several proposals`,
      );
  }
  const pfs = get('pfs');
  const checkPfs = (list: typeof ikeProposals, where: Picked<unknown> | undefined, key: string) => {
    for (const p of list) {
      if (pfs && p.ke.length === 0)
        fail(
          where,
          key,
          `pfs = true but ESP proposal "${p.text}" has no key exchange group; add one (e.g. "-x25519") or set pfs = false`,
        );
      if (!pfs && p.ke.length > 0)
        fail(
          where,
          key,
          `pfs = false but ESP proposal "${p.text}" has a key exchange group; remove it or set pfs = true`,
        );
    }
  };
  const espPick = pick('esp_proposals');
  checkPfs(get('esp_proposals'), espPick ?? pick('pfs'), 'esp_proposals');

  const aggressive = get('aggressive');
  if (aggressive && version !== 1)
    fail(pick('aggressive'), 'aggressive', 'aggressive mode exists only in IKEv1; set version = 1 or remove it');

  // Timers
  const ikeLifetime = get('ike_lifetime');
  const childLifetime = get('child_lifetime');
  const margin = get('rekey_margin');
  const jitter = get('rekey_jitter');
  if (margin + jitter >= Math.min(ikeLifetime, childLifetime)) {
    fail(
      pick('rekey_margin') ?? pick('rekey_jitter'),
      'rekey_margin',
      'rekey_margin + rekey_jitter must be shorter than ike_lifetime and child_lifetime',
    );
  }
  const dpdDelay = get('dpd_delay');
  const dpdTimeout = get('dpd_timeout');
  // The liveness check retransmits inside its timeout on its own short schedule.
  if (dpdDelay > 0 && dpdTimeout < 200)
    fail(pick('dpd_timeout'), 'dpd_timeout', 'must be at least 200ms while dpd_delay is on');
  if (get('retransmit_max') < get('retransmit_base'))
    fail(pick('retransmit_max'), 'retransmit_max', 'must not be shorter than retransmit_base');

  // Children
  const mode = get('mode') as ChildConfig['mode'];
  const children: ChildConfig[] = [];
  const peerChild = (): ChildConfig => ({
    name,
    mode,
    localTs: toTs(pick('local_ts')?.value),
    remoteTs: toTs(pick('remote_ts')?.value),
    espProposals: get('esp_proposals'),
    lifetimeMs: childLifetime,
  });
  const childrenEntry = peer.children ?? defaults?.children;
  const childErrs = peer.children !== undefined ? errs : (defaults?.errs ?? errs);
  if (childrenEntry === undefined) {
    children.push(peerChild());
  } else if (childrenEntry.node.kind !== 'array' || childrenEntry.node.items.some((i) => i.kind !== 'table')) {
    childErrs.at(
      childrenEntry.node.loc,
      'children',
      `expected an array of tables ([[children]]), found ${describeNode(childrenEntry.node)}`,
    );
  } else {
    childrenEntry.node.items.forEach((item, i) => {
      if (item.kind !== 'table') return;
      const r = readSection(childErrs, item, CHILD_SPEC, `children[${i}].`);
      const v = r.values;
      const esp = v.esp_proposals ?? get('esp_proposals');
      if (v.esp_proposals !== undefined)
        checkPfs(
          esp,
          { value: esp, loc: r.locs.get('esp_proposals'), errs: childErrs, fromPeer: true },
          `children[${i}].esp_proposals`,
        );
      const child: ChildConfig = {
        name: v.name ?? `${name}-${i + 1}`,
        mode: v.mode ?? mode,
        localTs: toTs(v.local_ts ?? pick('local_ts')?.value),
        remoteTs: toTs(v.remote_ts ?? pick('remote_ts')?.value),
        espProposals: esp,
        lifetimeMs: v.child_lifetime ?? childLifetime,
      };
      if (children.some((c) => c.name === child.name))
        childErrs.at(item.loc, `children[${i}].name`, `duplicate child name "${child.name}"`);
      children.push(child);
    });
  }
  for (const c of children) {
    const lf = tsFamilies(c.localTs, localAddress);
    const rf = tsFamilies(c.remoteTs, address ?? null);
    const mismatch = lf.size > 0 && rf.size > 0 && ![...lf].some((f) => rf.has(f));
    if (mismatch) {
      const where = pick('remote_ts') ?? pick('local_ts');
      fail(
        where,
        'remote_ts',
        `child "${c.name}": local_ts is IPv${[...lf].join('/')} but remote_ts is IPv${[...rf].join('/')}; traffic selectors need a common address family`,
      );
    }
  }

  if (errs.sink.length !== before || address === undefined) return undefined;
  return {
    name,
    file: errs.file,
    address,
    localAddress,
    version,
    localId,
    remoteId,
    auth,
    psk,
    certFile: certFile === undefined || auth !== 'pubkey' ? null : path(certFile.value),
    key,
    caFiles: auth === 'pubkey' ? (caFiles?.value ?? []).map(path) : [],
    ikeProposals,
    ikeLifetimeMs: ikeLifetime,
    rekeyMarginMs: margin,
    rekeyJitterMs: jitter,
    dpdDelayMs: dpdDelay,
    dpdTimeoutMs: dpdTimeout,
    dpdAction: get('dpd_action') as PeerConfig['dpdAction'],
    start: get('start') as PeerConfig['start'],
    children,
    natKeepaliveMs: get('nat_keepalive'),
    fragmentation: get('fragmentation'),
    fragmentSize: get('fragment_size'),
    aggressive,
    pfs,
    retransmitBaseMs: get('retransmit_base'),
    retransmitTries: get('retransmit_tries'),
    retransmitMaxMs: get('retransmit_max'),
    restartBackoffMaxMs: get('restart_backoff_max'),
  };
}
