/**
 * Interop: coati ↔ strongSwan charon, IKEv1 (Main Mode + Quick Mode), PSK.
 *
 * coati (namespace A, 198.51.100.1) runs with its memory kernel backend; charon
 * (namespace B, 198.51.100.2) with kernel-libipsec, so charon's ESP is real and
 * UDP-encapsulated on 4500. Matrix: both suites × both initiators, PFS on and off (each
 * suite once with and once without). Each case: charon's CHILD_SA SPIs and ISAKMP
 * initiator cookie are the ones coati keyed (coati's key log), coati's status (admin
 * socket and `coatictl status --json`) lists the same cookies and SPIs crosswise, pings
 * from charon's protected host put ESP on the wire, tshark decrypts every Main Mode /
 * Quick Mode / Informational message and charon's ESP with coati's key log with no
 * malformed frame; then one side deletes (coati: stop with `shutdown = "delete"`;
 * charon: `swanctl --terminate`) and the other drops its SAs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Capture } from '../harness/capture.js';
import type { Charon } from '../harness/charon.js';
import { type Lab, type Netns, type ProtectedSubnet, waitFor } from '../harness/netns.js';
import { ping } from '../harness/traffic.js';
import { CHARON, COATI, charonConn, charonPair, coatiPeer } from '../helpers/charon-pair.js';
import { Coati, decodeWithKeylog, keylogDisagreements, stopCapture, tsharkErrors } from '../helpers/coati-proc.js';

const PSK = 'coati-v1-interop-psk-NOT-A-SECRET';

interface Case {
  ike: string;
  esp: string;
  pfs: boolean;
  initiator: 'coati' | 'charon';
  deleter: 'coati' | 'charon';
}

const CASES: Case[] = [
  { ike: 'aes128-sha256-modp2048', esp: 'aes128-sha256', pfs: false, initiator: 'coati', deleter: 'charon' },
  { ike: 'aes128-sha256-modp2048', esp: 'aes128-sha256', pfs: true, initiator: 'charon', deleter: 'coati' },
  { ike: 'aes256-sha1-modp2048', esp: 'aes256-sha1', pfs: true, initiator: 'coati', deleter: 'coati' },
  { ike: 'aes256-sha1-modp2048', esp: 'aes256-sha1', pfs: false, initiator: 'charon', deleter: 'charon' },
];

const espProposal = (c: Case) => (c.pfs ? `${c.esp}-modp2048` : c.esp);

const suite = (c: Case) => ({ version: 1, ike: c.ike, esp: espProposal(c), psk: PSK }) as const;

describe('interop coati ↔ charon: IKEv1 PSK', () => {
  let lab: Lab;
  let a: Netns;
  let lanB: ProtectedSubnet;
  let charon: Charon;
  let coati: Coati | undefined;
  const context = () => `${coati?.logTail(60) ?? ''}\n${charon?.logTail(60) ?? ''}`;

  beforeAll(async () => {
    ({ lab, a, lanB, charon } = await charonPair('coati-v1-psk', { logLevels: { ike: 4, cfg: 2, knl: 1, enc: 1 } }));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  for (const c of CASES) {
    const label = `${c.ike} / ESP ${espProposal(c)}${c.pfs ? ' (PFS)' : ''}`;
    it(`${label}: ${c.initiator} initiates, SAs agree, tshark decrypts, ${c.deleter} deletes`, async () => {
      await coati?.stop();
      await charon.loadConns([charonConn(suite(c))]);
      const cap = await Capture.start(a, 'wan0');
      const t0 = Date.now();
      const peer = coatiPeer({ ...suite(c), pfs: c.pfs, start: c.initiator === 'coati' ? 'now' : 'none' });
      // coati initiates when a reload adds the `start = "now"` peer (see Coati.addPeer).
      coati = await Coati.start(a, `${c.initiator}-${c.ike}-${c.pfs ? 'pfs' : 'nopfs'}`, {
        version: 1,
        listen: [COATI],
        peers: c.initiator === 'coati' ? [] : [peer],
      });
      const events = coati.follow();
      if (c.initiator === 'coati') await coati.addPeer(peer);
      else await charon.initiate('net', 'coati');
      const s = await charon.waitChild('coati', 'net');
      const setupMs = Date.now() - t0;
      expect(s.ike.version, context()).toBe(1);
      expect(s.ike.initiator).toBe(c.initiator === 'charon');
      expect(s.child.encap).toBe(true);
      // charon's algorithms are what was proposed.
      expect(s.ike.raw['encr-alg']).toBe('AES_CBC');
      expect(s.ike.raw['encr-keysize']).toBe(c.ike.startsWith('aes128') ? '128' : '256');
      expect(s.ike.raw['dh-group']).toBe('MODP_2048');
      expect(s.child.raw['dh-group'] ?? null).toBe(c.pfs ? 'MODP_2048' : null);

      // What coati keyed (its key log) is what charon installed.
      await waitFor('coati to log its phase 2 keys', async () => coati!.espSas().length >= 2, {
        timeoutMs: 5000,
        context,
      });
      expect(keylogDisagreements(coati, s.ike, COATI, CHARON), context()).toEqual([]);

      // Real ESP from charon's side: coati has no data plane (memory backend), so no
      // replies, but the packets are on the wire for tshark.
      await ping(lanB.host, '10.1.0.2', { count: 3, intervalS: 0.05, deadlineS: 0.3 });
      const after = await charon.waitChild('coati', 'net');
      expect(after.child.packetsOut).toBeGreaterThanOrEqual(3);

      // coati's status lists the same ISAKMP SA and Quick Mode SAs (cookies, SPIs crosswise).
      const js = (await coati.ctl(['status', '--json'], { allowFail: true })).json as
        | { peers: import('../../src/control/types.js').PeerStatus[] }
        | undefined;
      const p = js?.peers.find((x) => x.name === 'charon');
      expect.soft(p, `coatictl status --json has no IKEv1 peer "charon": ${JSON.stringify(js)}`).toBeDefined();
      expect.soft(p?.version).toBe(1);
      expect.soft(p?.state).toBe('up');
      expect.soft(p?.ike?.spiI).toBe(s.ike.initiatorSpi);
      expect.soft(p?.ike?.spiR).toBe(s.ike.responderSpi);
      expect.soft(p?.ike?.role).toBe(c.initiator === 'coati' ? 'initiator' : 'responder');
      const child = p?.children.find((x) => x.state === 'installed');
      expect.soft(child?.spiIn).toBe(s.child.spiOut);
      expect.soft(child?.spiOut).toBe(s.child.spiIn);
      expect.soft(child?.localTs).toEqual(s.child.remoteTs);
      expect.soft(child?.remoteTs).toEqual(s.child.localTs);

      // Delete from one side; the other drops its SAs. coati deletes by dropping the peer
      // from its configuration (a reload; coati-v1-nat deletes with coatictl terminate).
      if (c.deleter === 'coati') await coati.removePeer('charon');
      else await charon.terminate('coati');
      await waitFor(
        `${c.deleter === 'coati' ? 'charon' : 'coati'} to remove the deleted SAs`,
        async () => {
          if ((await charon.listSas()).length !== 0) return false;
          if (c.deleter === 'coati') return (await coati!.peer('charon')) === undefined;
          // coati keeps listing the configured peer (without SAs, checked below); its event
          // stream says why it went down.
          return events
            .seen()
            .some((e) => e.type === 'peer.down' && e.peer === 'charon' && e.reason === 'deleted by peer');
        },
        { timeoutMs: 5000, intervalMs: 100, context },
      );
      if (c.deleter === 'charon') {
        const after = (await coati.status()).peers.find((x) => x.name === 'charon');
        expect.soft(after?.ike, JSON.stringify(after)).toBeUndefined();
        expect.soft(after?.children ?? [{}], JSON.stringify(after)).toEqual([]);
      }
      events.stop();
      const pcap = await stopCapture(cap);

      const { dec, report } = await decodeWithKeylog(pcap, coati);
      expect(tsharkErrors(dec), report).toEqual([]);
      expect(dec.integrityIncorrect, report).toBe(0);
      // 6 Main Mode + 3 Quick Mode messages, all parsed; the encrypted ones decrypted
      // (tshark shows their inner payloads: the IDs of MM5/MM6, the Delete).
      expect(dec.summary.filter((l) => /Identity Protection \(Main Mode\)/.test(l)).length, report).toBe(6);
      expect(dec.summary.filter((l) => /Quick Mode/.test(l)).length, report).toBe(3);
      expect(dec.text, report).toMatch(/Identification Data:.*coati\.interop\.test/);
      expect(dec.text, report).toMatch(/Identification Data:.*charon\.interop\.test/);
      expect(dec.text, report).toMatch(/Payload: Delete \(12\)/);
      // charon's ESP decrypts with coati's inbound key: tshark shows the inner ICMP.
      const icmp = dec.summary.filter((l) => /10\.2\.0\.2 → 10\.1\.0\.2 +ICMP .*Echo \(ping\) request/.test(l));
      expect(icmp.length, report).toBeGreaterThanOrEqual(3);
      console.log(`[coati-v1-psk] ${label}, ${c.initiator} initiates: up in ${setupMs} ms`);
    });
  }
});
