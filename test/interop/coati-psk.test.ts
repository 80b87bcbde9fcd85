/**
 * Interop: coati ↔ strongSwan charon, IKEv2 PSK, both directions, two suites.
 *
 * coati (namespace A, 198.51.100.1) runs with its memory kernel backend; charon
 * (namespace B, 198.51.100.2) with kernel-libipsec, so charon's ESP is real and always
 * UDP-encapsulated (libipsec fakes NAT-D, coati floats to 4500 and marks its children
 * encap). Each case: both sides list the same IKE SPIs, Child SPIs crosswise and the same
 * algorithms; pings from charon's protected host put real ESP on the wire; tshark decrypts
 * the whole capture with coati's key log (IKE and charon's ESP); then one side deletes and
 * the other removes its SAs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Charon } from '../harness/charon.js';
import { type Lab, type Netns, type ProtectedSubnet, waitFor } from '../harness/netns.js';
import { ping } from '../harness/traffic.js';
import { CHARON, COATI, charonConn, charonPair, coatiPeer } from '../helpers/charon-pair.js';
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

const PSK = 'coati-interop-psk-NOT-A-SECRET';

interface Suite {
  label: string;
  ike: string;
  /** charon's esp_proposals and coati's (with pfs) */
  esp: string;
  pfs: boolean;
  ikeAlgs: string;
  childAlgs: string;
}

const SUITES: Suite[] = [
  {
    label: 'aes256gcm16-prfsha256-x25519 / ESP aes256gcm16',
    ike: 'aes256gcm16-prfsha256-x25519',
    esp: 'aes256gcm16-x25519',
    pfs: true,
    ikeAlgs: 'aes256gcm16/prfsha256/x25519',
    childAlgs: 'aes256gcm16',
  },
  {
    label: 'aes128-sha256-modp2048 / ESP aes128-sha256',
    ike: 'aes128-sha256-modp2048',
    esp: 'aes128-sha256',
    pfs: false,
    ikeAlgs: 'aes128/sha256/prfsha256/modp2048',
    childAlgs: 'aes128/sha256',
  },
];

describe('interop coati ↔ charon: IKEv2 PSK', () => {
  let lab: Lab;
  let a: Netns;
  let lanB: ProtectedSubnet;
  let charon: Charon;
  let coati: Coati | undefined;
  const context = () => `${coati?.logTail(40) ?? ''}\n${charon?.logTail(40) ?? ''}`;

  beforeAll(async () => {
    ({ lab, a, lanB, charon } = await charonPair('coati-psk', { logLevels: { ike: 2, cfg: 2, knl: 1, enc: 1 } }));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  const cases = SUITES.flatMap((suite, i) => [
    { suite, initiator: 'coati' as const, deleter: i === 0 ? ('coati' as const) : ('charon' as const) },
    { suite, initiator: 'charon' as const, deleter: i === 0 ? ('charon' as const) : ('coati' as const) },
  ]);

  for (const { suite, initiator, deleter } of cases) {
    it(`${suite.label}: ${initiator} initiates, SAs agree, tshark decrypts IKE and ESP, ${deleter} deletes`, async () => {
      await coati?.stop();
      await charon.loadConns([charonConn({ version: 2, ike: suite.ike, esp: suite.esp, psk: PSK })]);
      // A Delete from charon follows coatiPeer's dpd_action: "clear" keeps the relationship down.
      coati = await Coati.start(a, `${initiator}-init-${suite.pfs ? 'gcm' : 'cbc'}`, {
        listen: [COATI],
        peers: [coatiPeer({ version: 2, ike: suite.ike, esp: suite.esp, psk: PSK, pfs: suite.pfs })],
      });
      const cap = await liveCapture(a, 'wan0', CHARON);
      const t0 = Date.now();
      if (initiator === 'coati') await coati.action('initiate', 'charon');
      else await charon.initiate('net', 'coati');
      const c = await coati.waitUp('charon');
      const s = await charon.waitChild('coati', 'net');
      const setupMs = Date.now() - t0;

      const cv = coatiView(c.peer);
      const sv = charonView(s.ike, s.child);
      expect(disagreements(cv, sv), context()).toEqual([]);
      expect(cv.ikeAlgs).toBe(suite.ikeAlgs);
      expect(cv.childAlgs).toBe(suite.childAlgs);
      expect(c.peer.ike.role).toBe(initiator === 'coati' ? 'initiator' : 'responder');
      expect(s.ike.initiator).toBe(initiator === 'charon');
      // libipsec fakes NAT-D, so both float to 4500 and encapsulate ESP.
      expect(c.peer.natDetected.remote || c.peer.natDetected.local, JSON.stringify(c.peer)).toBe(true);
      expect(c.peer.remotePort).toBe(4500);
      expect(cv.encap).toBe(true);
      expect(sv.encap).toBe(true);
      // The operator's view (compiled coatictl --json) says the same.
      const js = (await coati.statusJson()).peers.find((p) => p.name === 'charon');
      expect(js && disagreements(coatiView(js), sv)).toEqual([]);

      // Real ESP from charon's side: pings from its protected host into the tunnel.
      // coati has no data plane (memory backend), so no replies; the packets are on the wire.
      await ping(lanB.host, '10.1.0.2', { count: 3, intervalS: 0.05, deadlineS: 0.3 });
      const after = await charon.waitChild('coati', 'net');
      expect(after.child.packetsOut).toBeGreaterThanOrEqual(3);

      // Delete from one side; the other removes its SAs.
      if (deleter === 'coati') await coati.action('terminate', 'charon');
      else await charon.terminate('coati');
      await waitFor(
        `${deleter === 'coati' ? 'charon' : 'coati'} to remove the deleted SAs`,
        async () => {
          const p = await coati?.peer('charon');
          const sas = await charon.listSas();
          return !p?.ike && p?.children.length === 0 && sas.length === 0;
        },
        { timeoutMs: 5000, intervalMs: 100, context },
      );
      const pcap = await stopCapture(cap);

      const { dec, report } = await decodeWithKeylog(pcap, coati);
      expect(tsharkProblems(dec), report).toEqual([]);
      expect(dec.summary.filter((l) => /IKE_SA_INIT/.test(l)).length, report).toBe(2);
      expect(dec.summary.filter((l) => /IKE_AUTH/.test(l)).length, report).toBeGreaterThanOrEqual(2);
      expect(dec.summary.filter((l) => /INFORMATIONAL/.test(l)).length, report).toBeGreaterThanOrEqual(2);
      // Every encrypted IKE message (IKE_AUTH x2, INFORMATIONAL x2) verified.
      expect(dec.integrityCorrect, report).toBeGreaterThanOrEqual(4);
      expect(dec.text).toMatch(/Identification - (Initiator|Responder)[\s\S]*coati\.interop\.test/);
      // charon's ESP packets (UDP-encapsulated) decrypt with coati's inbound keys: tshark
      // shows the inner ICMP instead of ESP, and CBC+HMAC packets' ICVs check [correct].
      const icmp = dec.summary.filter((l) => /10\.2\.0\.2 → 10\.1\.0\.2 +ICMP .*Echo \(ping\) request/.test(l));
      expect(icmp.length, report).toBeGreaterThanOrEqual(3);
      expect(
        dec.summary.filter((l) => / ESP /.test(l)),
        report,
      ).toEqual([]);
      expect(dec.text).toMatch(/Encapsulating Security Payload[\s\S]*Internet Control Message Protocol/);
      console.log(`[coati-psk] ${suite.label}, ${initiator} initiates: up on both in ${setupMs} ms`);
    });
  }
});
