/**
 * What the coati ↔ charon interop tests (test/interop/coati-*.test.ts) share: the pair
 * topology (test/harness/topology.ts) with coati on A and charon on B, the identities
 * and protected subnets both sides are configured with, charon's connection `coati`
 * (child `net`) and coati's peer `charon` for it, and the lab set-up itself.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Charon, type CharonOptions } from '../harness/charon.js';
import { Lab } from '../harness/netns.js';
import type { ChildSpec, ConnSpec } from '../harness/swanctl-conf.js';
import { type PairTopology, pairTopology } from '../harness/topology.js';
import type { CoatiPeerSpec } from './coati-proc.js';

/** coati's and charon's addresses on the pair topology's link (A and B). */
export const COATI = '198.51.100.1';
export const CHARON = '198.51.100.2';
/** The protected subnets behind coati (A) and charon (B). */
export const COATI_NET = '10.1.0.0/24';
export const CHARON_NET = '10.2.0.0/24';
export const COATI_ID = 'coati.interop.test';
export const CHARON_ID = 'charon.interop.test';

export interface CharonPair extends PairTopology {
  lab: Lab;
  charon: Charon;
}

/** A lab with the pair topology and charon started on B (the lab is destroyed if that fails). */
export async function charonPair(label: string, opts: CharonOptions): Promise<CharonPair> {
  const lab = await Lab.create({ label });
  try {
    const topo = await pairTopology(lab);
    const charon = await Charon.start(topo.b, 'charon', opts);
    return { ...topo, lab, charon };
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}

/**
 * charon's connection `coati` (charon on B towards coati on A): PSK when `psk` is given,
 * else pubkey; one child `net` tunnelling CHARON_NET ↔ COATI_NET with `esp`, then
 * `child`. IKEv2 connections have MOBIKE off. The other fields override the defaults.
 */
export function charonConn(
  o: { version: 1 | 2; ike: string; esp: string; psk?: string; child?: Partial<ChildSpec> } & Partial<
    Omit<ConnSpec, 'version' | 'children' | 'psk'>
  >,
): ConnSpec {
  const { version, ike, esp, psk, child, ...over } = o;
  return {
    name: 'coati',
    version,
    localAddrs: [CHARON],
    remoteAddrs: [COATI],
    localId: CHARON_ID,
    remoteId: COATI_ID,
    ...(psk !== undefined ? { auth: 'psk' as const, psk } : { auth: 'pubkey' as const }),
    proposals: [ike],
    ...(version === 2 ? { mobike: false } : {}),
    ...over,
    children: [{ name: 'net', localTs: [CHARON_NET], remoteTs: [COATI_NET], espProposals: [esp], ...child }],
  };
}

/**
 * coati's peer `charon` (coati on A towards charon on B) in tunnel mode between
 * COATI_NET and CHARON_NET: for IKEv2 one child `net`, for IKEv1 the peer's own
 * selectors. `dpdAction` is `clear`, so a Delete from charon keeps the relationship down.
 * The other fields (`psk`, or `auth: 'pubkey'` with PEMs, ...) are added or override.
 */
export function coatiPeer(o: { version: 1 | 2; ike: string; esp: string } & Partial<CoatiPeerSpec>): CoatiPeerSpec {
  const { version, ike, esp, ...over } = o;
  const selectors: Partial<CoatiPeerSpec> =
    version === 1
      ? { mode: 'tunnel', localTs: [COATI_NET], remoteTs: [CHARON_NET] }
      : { children: [{ name: 'net', mode: 'tunnel', localTs: [COATI_NET], remoteTs: [CHARON_NET] }] };
  return {
    name: 'charon',
    address: CHARON,
    localAddress: COATI,
    localId: `fqdn:${COATI_ID}`,
    remoteId: `fqdn:${CHARON_ID}`,
    ikeProposals: [ike],
    espProposals: [esp],
    dpdAction: 'clear',
    ...selectors,
    ...over,
  };
}

/** charon's side of a certificate set-up: its identity and PEM contents. */
export interface CharonCreds {
  charonId: string;
  caPem: string;
  charonCertPem: string;
  charonKeyPem: string;
}

/**
 * Installs charon's CA, certificate and key into its SWANCTL_DIR (through files written
 * into `dir`); returns the certificate's name for `localCert`.
 */
export function installCharonCreds(charon: Charon, dir: string, c: CharonCreds): string {
  const w = (n: string, t: string) => {
    writeFileSync(join(dir, n), t, { mode: 0o600 });
    return join(dir, n);
  };
  charon.installFile('x509ca', w(`${c.charonId}-ca.pem`, c.caPem));
  const certName = charon.installFile('x509', w(`${c.charonId}.pem`, c.charonCertPem));
  charon.installFile('private', w(`${c.charonId}.key.pem`, c.charonKeyPem));
  return certName;
}

/** Terminates every IKE SA charon still has (forced, 2 s each), so test cases stay independent. */
export async function clearCharonSas(charon: Charon): Promise<void> {
  for (const s of await charon.listSas())
    await charon.swanctl(['--terminate', '--ike-id', s.uniqueid, '--force', '--timeout', '2'], { allowFail: true });
}
