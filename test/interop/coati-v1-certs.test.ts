/**
 * Interop: coati ↔ strongSwan charon, IKEv1 Main Mode with certificate authentication
 * (RSA signatures, auth method 3, and ECDSA P-256, RFC 4754 auth method 9), each with coati
 * as initiator and as responder.
 *
 * Both PKIs are generated here (test/helpers/pki.ts) with a validity window around the real
 * clock, since both daemons check certificates against it. coati (198.51.100.1) runs with its
 * memory kernel backend; charon (198.51.100.2) with kernel-libipsec. Each case: the chosen
 * auth method is the key's, charon authenticated coati by its certificate and coati saw
 * charon's certificate identity, charon's ISAKMP initiator cookie and CHILD_SA SPIs are the
 * ones coati keyed (its key log) and that coati's status lists (crosswise), tshark decrypts
 * Main Mode 5/6 (ID, CERT, SIG), the Quick Mode and charon's ESP with coati's key log, with
 * no malformed frame.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerStatus } from '../../src/control/types.js';
import { Capture } from '../harness/capture.js';
import type { Charon } from '../harness/charon.js';
import { type Lab, type Netns, type ProtectedSubnet, waitFor } from '../harness/netns.js';
import { ping } from '../harness/traffic.js';
import {
  CHARON,
  COATI,
  charonConn,
  charonPair,
  clearCharonSas,
  coatiPeer,
  installCharonCreds,
} from '../helpers/charon-pair.js';
import { Coati, decodeWithKeylog, keylogDisagreements, stopCapture, tsharkErrors } from '../helpers/coati-proc.js';
import { type Issued, issue } from '../helpers/pki.js';

interface Creds {
  label: string;
  caPem: string;
  coatiCertPem: string;
  coatiKeyPem: string;
  charonCertPem: string;
  charonKeyPem: string;
  coatiId: string;
  charonId: string;
  /** Main Mode auth method, as tshark names it in the SA payload. */
  tsharkMethod: RegExp;
  /** charon's log line naming the method it verified coati's signature with. */
  charonMethod: RegExp;
}

function makeCreds(kind: 'rsa' | 'ec'): Creds {
  const now = Date.now();
  const window = { notBefore: now - 3_600_000, notAfter: now + 30 * 24 * 3_600_000 };
  const subject = (cn: string): [string, string][] => [
    ['C', 'XX'],
    ['O', 'coati v1 interop'],
    ['CN', cn],
  ];
  const keyType = kind === 'rsa' ? 'rsa' : 'ec';
  const ca = issue(`v1-interop-${kind}-ca`, { subject: subject(`coati v1 ${kind} CA`), ca: true, keyType, ...window });
  const leaf = (cn: string) =>
    issue(`v1-interop-${kind}-${cn}`, { subject: subject(cn), issuer: ca, keyType, san: { dns: [cn] }, ...window });
  const coatiId = `coati.${kind}.v1.interop.test`;
  const charonId = `charon.${kind}.v1.interop.test`;
  const a = leaf(coatiId);
  const b = leaf(charonId);
  const pem = (i: Issued) => i.key.export({ type: 'pkcs8', format: 'pem' }) as string;
  return {
    label: kind === 'rsa' ? 'RSA 2048' : 'ECDSA P-256',
    caPem: ca.pem,
    coatiCertPem: a.pem,
    coatiKeyPem: pem(a),
    charonCertPem: b.pem,
    charonKeyPem: pem(b),
    coatiId,
    charonId,
    tsharkMethod:
      kind === 'rsa'
        ? /Authentication Method: RSA signatures \(3\)/
        : /Authentication Method: ECDSA with SHA-256 on the P-256 curve \(9\)/,
    // strongSwan signs and verifies HASH_I/HASH_R itself as the digest (no DigestInfo, no re-hash).
    charonMethod: kind === 'rsa' ? / with RSA_EMSA_PKCS1_NULL successful/ : / with ECDSA_WITH_NULL successful/,
  };
}

describe('interop coati ↔ charon: IKEv1 Main Mode with certificates', () => {
  let lab: Lab;
  let a: Netns;
  let lanB: ProtectedSubnet;
  let charon: Charon;
  let coati: Coati | undefined;
  const context = () => `${coati?.logTail(60) ?? ''}\n${charon?.logTail(60) ?? ''}`;

  beforeAll(async () => {
    ({ lab, a, lanB, charon } = await charonPair('coati-v1-certs', { logLevels: { ike: 2, cfg: 2, knl: 1 } }));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  for (const kind of ['rsa', 'ec'] as const) {
    for (const initiator of ['coati', 'charon'] as const) {
      it(`${kind === 'rsa' ? 'RSA' : 'ECDSA P-256'}: ${initiator} initiates, both authenticate by certificate, SAs agree, tshark decrypts`, async () => {
        const c = makeCreds(kind);
        await coati?.stop();
        await clearCharonSas(charon);
        const certName = installCharonCreds(charon, lab.subdir(`creds-${kind}-${initiator}`), c);
        const suite = { version: 1, ike: 'aes256-sha256-modp2048', esp: 'aes256-sha256' } as const;
        await charon.loadConns([
          charonConn({ ...suite, localId: c.charonId, remoteId: c.coatiId, localCert: certName }),
        ]);
        const peer = coatiPeer({
          ...suite,
          localId: `fqdn:${c.coatiId}`,
          remoteId: `fqdn:${c.charonId}`,
          auth: 'pubkey',
          certPem: c.coatiCertPem,
          keyPem: c.coatiKeyPem,
          caPems: [c.caPem],
          pfs: false,
          start: 'none',
        });
        coati = await Coati.start(a, `${kind}-${initiator}`, { version: 1, listen: [COATI], peers: [peer] });
        const cap = await Capture.start(a, 'wan0');
        const t0 = Date.now();
        if (initiator === 'coati') {
          const r = await coati.ctl(['initiate', 'charon'], { allowFail: true });
          expect(r.code, `${r.out}\n${context()}`).toBe(0);
        } else await charon.initiate('net', 'coati');
        const s = await charon.waitChild('coati', 'net');
        const setupMs = Date.now() - t0;
        expect(s.ike.version, context()).toBe(1);
        expect(s.ike.initiator).toBe(initiator === 'charon');
        expect(s.ike.localId).toBe(c.charonId);
        expect(s.ike.remoteId).toBe(c.coatiId);
        // charon verified coati's signature against coati's certificate (not anything else).
        const authLine = charon
          .logText()
          .split('\n')
          .find((l) => l.includes(`authentication of '${c.coatiId}' with`) && l.includes('successful'));
        expect(authLine, context()).toBeDefined();
        expect(authLine).toMatch(c.charonMethod);

        // What coati keyed is what charon installed; coati's status lists the same SAs.
        await waitFor('coati to log its phase 2 keys', async () => coati!.espSas().length >= 2, {
          timeoutMs: 5000,
          context,
        });
        expect(keylogDisagreements(coati, s.ike, COATI, CHARON), context()).toEqual([]);
        const p = await waitFor(
          'coati to list the ISAKMP SA and its phase 2 SA',
          async () => {
            const x = await coati!.peer('charon');
            return x?.ike && x.children.some((ch) => ch.state === 'installed') ? x : undefined;
          },
          { timeoutMs: 5000, context },
        );
        expectSameSas(p, s, initiator);
        expect(p.remoteId).toBe(`fqdn:${c.charonId}`);

        await ping(lanB.host, '10.1.0.2', { count: 2, intervalS: 0.05, deadlineS: 0.2 });
        const after = await charon.waitChild('coati', 'net');
        expect(after.child.packetsOut).toBeGreaterThanOrEqual(2);
        await charon.terminate('coati');
        await waitFor('coati to drop the SAs charon deleted', async () => !(await coati!.peer('charon'))?.ike, {
          timeoutMs: 5000,
          intervalMs: 100,
          context,
        });
        const pcap = await stopCapture(cap);

        const { dec, report } = await decodeWithKeylog(pcap, coati);
        expect(tsharkErrors(dec), report).toEqual([]);
        expect(dec.summary.filter((l) => /Identity Protection \(Main Mode\)/.test(l)).length, report).toBe(6);
        expect(dec.summary.filter((l) => /Quick Mode/.test(l)).length, report).toBe(3);
        // The proposal's auth method is the key's; MM5/MM6 decrypt to ID + CERT + SIG each way.
        expect(dec.text, report).toMatch(c.tsharkMethod);
        expect(dec.text, report).toMatch(new RegExp(`Identification Data:.*${c.coatiId.replace(/\./g, '\\.')}`));
        expect(dec.text, report).toMatch(new RegExp(`Identification Data:.*${c.charonId.replace(/\./g, '\\.')}`));
        expect(dec.text.match(/Payload: Certificate \(6\)/g)?.length, report).toBeGreaterThanOrEqual(2);
        expect(dec.text.match(/Payload: Signature \(9\)/g)?.length, report).toBe(2);
        expect(dec.text, report).toMatch(/Payload: Delete \(12\)/);
        const icmp = dec.summary.filter((l) => /10\.2\.0\.2 → 10\.1\.0\.2 +ICMP .*Echo \(ping\) request/.test(l));
        expect(icmp.length, report).toBe(2);
        console.log(`[coati-v1-certs] ${c.label}, ${initiator} initiates: up in ${setupMs} ms`);
      });
    }
  }
});

/** coati's status against charon's `--list-sas`: cookies, role, SPIs and selectors crosswise. */
function expectSameSas(
  p: PeerStatus,
  s: Awaited<ReturnType<Charon['waitChild']>>,
  initiator: 'coati' | 'charon',
): void {
  expect(p.version).toBe(1);
  expect(p.ike?.spiI).toBe(s.ike.initiatorSpi);
  expect(p.ike?.spiR).toBe(s.ike.responderSpi);
  expect(p.ike?.role).toBe(initiator === 'coati' ? 'initiator' : 'responder');
  const child = p.children.find((x) => x.state === 'installed' && x.spiIn === s.child.spiOut);
  expect(child, JSON.stringify(p.children)).toBeDefined();
  expect(child?.spiOut).toBe(s.child.spiIn);
  expect(child?.localTs).toEqual(s.child.remoteTs);
  expect(child?.remoteTs).toEqual(s.child.localTs);
}
