/**
 * Interop: coati ↔ strongSwan charon, IKEv2 with certificate authentication.
 *
 * ECDSA P-256: the golden strongSwan PKI (test/fixtures/golden/pki; coati is
 * left.cert.rig.test, charon right.cert.rig.test). RSA: a PKI generated here
 * (test/helpers/pki.ts) with a validity window around the real clock, since both daemons
 * check certificates against it. Both directions each; both sides agree on SPIs and
 * algorithms; each side saw the other's identity authenticated by its certificate; tshark
 * decrypts the exchanges with coati's key log, and the IKE_AUTH messages carry the
 * certificates.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Charon } from '../harness/charon.js';
import type { Lab, Netns, ProtectedSubnet } from '../harness/netns.js';
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
import {
  Coati,
  charonView,
  coatiView,
  decodeWithKeylog,
  disagreements,
  liveCapture,
  stopCapture,
  tsharkProblems,
} from '../helpers/coati-proc.js';
import { GOLDEN_DIR } from '../helpers/golden.js';
import { issue } from '../helpers/pki.js';

interface Creds {
  label: string;
  caPem: string;
  coatiCertPem: string;
  coatiKeyPem: string;
  charonCertPem: string;
  charonKeyPem: string;
  coatiId: string;
  charonId: string;
  /** The signature algorithm tshark shows in the RFC 7427 AUTH payloads. */
  authMethod: RegExp;
}

function goldenEcdsa(): Creds {
  const f = (n: string) => readFileSync(join(GOLDEN_DIR, 'pki', n), 'utf8');
  return {
    label: 'ECDSA P-256 (golden strongSwan PKI)',
    caPem: f('ca.cert.pem'),
    coatiCertPem: f('left.cert.pem'),
    coatiKeyPem: f('left.key.pem'),
    charonCertPem: f('right.cert.pem'),
    charonKeyPem: f('right.key.pem'),
    coatiId: 'left.cert.rig.test',
    charonId: 'right.cert.rig.test',
    authMethod: /OID: [\d.]+ \(ecdsa-with-SHA(256|384|512)\)/,
  };
}

function generatedRsa(): Creds {
  const now = Date.now();
  const window = { notBefore: now - 3_600_000, notAfter: now + 30 * 24 * 3_600_000 };
  const subject = (cn: string): [string, string][] => [
    ['C', 'XX'],
    ['O', 'coati interop'],
    ['CN', cn],
  ];
  const ca = issue('interop-rsa-ca', { subject: subject('coati interop RSA CA'), ca: true, ...window });
  const leaf = (cn: string) =>
    issue(`interop-rsa-${cn}`, { subject: subject(cn), issuer: ca, san: { dns: [cn] }, ...window });
  const a = leaf('coati.rsa.interop.test');
  const b = leaf('charon.rsa.interop.test');
  const pem = (i: typeof a) => i.key.export({ type: 'pkcs8', format: 'pem' }) as string;
  return {
    label: 'RSA 2048 (generated PKI)',
    caPem: ca.pem,
    coatiCertPem: a.pem,
    coatiKeyPem: pem(a),
    charonCertPem: b.pem,
    charonKeyPem: pem(b),
    coatiId: 'coati.rsa.interop.test',
    charonId: 'charon.rsa.interop.test',
    authMethod: /OID: [\d.]+ \((sha(256|384|512)WithRSAEncryption|id-RSASSA-PSS)\)/,
  };
}

describe('interop coati ↔ charon: IKEv2 certificate authentication', () => {
  let lab: Lab;
  let a: Netns;
  let lanB: ProtectedSubnet;
  let charon: Charon;
  let coati: Coati | undefined;

  beforeAll(async () => {
    ({ lab, a, lanB, charon } = await charonPair('coati-certs', { logLevels: { ike: 2, cfg: 2, knl: 1 } }));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  const sets = [goldenEcdsa, generatedRsa];
  for (const make of sets) {
    for (const initiator of ['coati', 'charon'] as const) {
      it(`${make.name === 'goldenEcdsa' ? 'ECDSA P-256' : 'RSA'}: ${initiator} initiates, both authenticate by certificate, SAs agree, tshark decrypts`, async () => {
        const c = make();
        await coati?.stop();
        await clearCharonSas(charon);
        const certName = installCharonCreds(charon, lab.subdir(`creds-${c.coatiId}`), c);
        const suite = { version: 2, ike: 'aes256gcm16-prfsha256-x25519', esp: 'aes256gcm16-x25519' } as const;
        await charon.loadConns([
          charonConn({ ...suite, localId: c.charonId, remoteId: c.coatiId, localCert: certName }),
        ]);
        coati = await Coati.start(a, `${initiator}-${c.coatiId}`, {
          listen: [COATI],
          peers: [
            coatiPeer({
              ...suite,
              localId: `fqdn:${c.coatiId}`,
              remoteId: `fqdn:${c.charonId}`,
              auth: 'pubkey',
              certPem: c.coatiCertPem,
              keyPem: c.coatiKeyPem,
              caPems: [c.caPem],
            }),
          ],
        });
        const cap = await liveCapture(a, 'wan0', CHARON);
        if (initiator === 'coati') await coati.action('initiate', 'charon');
        else await charon.initiate('net', 'coati');
        const up = await coati.waitUp('charon');
        const s = await charon.waitChild('coati', 'net');
        expect(disagreements(coatiView(up.peer), charonView(s.ike, s.child)), coati.logTail()).toEqual([]);
        expect(up.peer.remoteId).toBe(`fqdn:${c.charonId}`);
        expect(s.ike.remoteId).toBe(c.coatiId);
        // charon authenticated coati by its certificate (not by anything else).
        expect(charon.logText()).toMatch(
          new RegExp(
            `authentication of '${c.coatiId.replace(/\./g, '\\.')}' with [A-Z_0-9 -]*(ECDSA|RSA)[^\\n]* successful`,
          ),
        );
        await ping(lanB.host, '10.1.0.2', { count: 2, intervalS: 0.05, deadlineS: 0.2 });
        const pcap = await stopCapture(cap);
        const { dec, report } = await decodeWithKeylog(pcap, coati);
        expect(tsharkProblems(dec), report).toEqual([]);
        expect(dec.summary.filter((l) => /IKE_AUTH/.test(l)).length, report).toBeGreaterThanOrEqual(2);
        expect(dec.integrityCorrect, report).toBeGreaterThanOrEqual(2);
        // coati's IKE_AUTH carries its certificate and a signature AUTH payload.
        expect(dec.text, report).toMatch(/Payload: Certificate \(37\)/);
        // RFC 7427 signatures both ways, with the key type of the PKI.
        expect(dec.text.match(/Authentication Method: Digital Signature \(14\)/g)?.length, report).toBe(2);
        expect(dec.text.match(new RegExp(c.authMethod.source, 'g'))?.length, report).toBe(2);
        const icmp = dec.summary.filter((l) => /10\.2\.0\.2 → 10\.1\.0\.2 +ICMP .*Echo \(ping\) request/.test(l));
        expect(icmp.length, report).toBe(2);
      });
    }
  }
});
