/**
 * Interop across a NAT: coati ↔ strongSwan charon with a masquerading router between them
 * (test/harness/nat.ts), once with coati behind the NAT and once with charon behind it.
 * The side behind the NAT initiates; both sides detect the NAT, float to 4500 and
 * encapsulate ESP; the SAs agree (IKE SPIs, Child SPIs crosswise, algorithms); a Child SA
 * rekey and an IKE SA rekey go through the NAT mapping from the side outside; charon's
 * ESP (through the NAT) and every IKE message decrypt in tshark with coati's key log,
 * captured on coati's own link; finally a delete from one side clears the other.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Charon } from '../harness/charon.js';
import { type NatTopology, natTopology } from '../harness/nat.js';
import { Lab, type Netns, waitFor } from '../harness/netns.js';
import { ping } from '../harness/traffic.js';
import { charonConn, coatiPeer } from '../helpers/charon-pair.js';
import {
  Coati,
  charonView,
  coatiView,
  decodeWithKeylog,
  disagreements,
  liveCapture,
  type SaView,
  stopCapture,
  tsharkProblems,
} from '../helpers/coati-proc.js';

const PSK = 'coati-interop-nat-NOT-A-SECRET';

describe('interop coati ↔ charon through a NAT', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await Lab.create({ label: 'coati-nat' });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  for (const behind of ['coati', 'charon'] as const) {
    it(`${behind} behind the masquerading router: up, agree, rekey both ways, tshark decrypts, delete`, async () => {
      const t: NatTopology = await natTopology(lab, {
        labels: { a: `${behind}-in`, router: `${behind}-nat`, b: `${behind}-out` },
      });
      const coatiNs: Netns = behind === 'coati' ? t.a : t.b;
      const charonNs: Netns = behind === 'coati' ? t.b : t.a;
      const coatiIf = behind === 'coati' ? t.aIf : t.bIf;
      const coatiAddr = behind === 'coati' ? t.aAddr : t.bAddr;
      // Where each side sends to: the one outside is reachable directly; the one inside
      // only through the mapping its own packets create (203.0.113.1).
      const coatiPeerAddr = behind === 'coati' ? t.bAddr : t.routerWanAddr;
      const charonLocal = behind === 'coati' ? t.bAddr : t.aAddr;
      // charon's protected address (for ESP out of its libipsec TUN).
      await charonNs.addAddress('lo', '10.2.0.1/32');

      const charon = await Charon.start(charonNs, `charon-${behind}`, { logLevels: { ike: 2, knl: 1 } });
      const suite = { version: 2, ike: 'aes256gcm16-prfsha256-x25519', esp: 'aes256gcm16-x25519', psk: PSK } as const;
      await charon.loadConns([
        charonConn({ ...suite, localAddrs: [charonLocal], remoteAddrs: [behind === 'coati' ? '%any' : t.bAddr] }),
      ]);
      const coati = await Coati.start(coatiNs, `coati-${behind}`, {
        listen: [coatiAddr],
        peers: [coatiPeer({ ...suite, address: coatiPeerAddr, localAddress: coatiAddr, natKeepalive: '1s' })],
      });
      const context = () => `${coati.logTail(40)}\n${charon.logTail(40)}`;
      const cap = await liveCapture(coatiNs, coatiIf, coatiPeerAddr);
      let pings = 0;
      const espTraffic = async () => {
        await ping(charonNs, '10.1.0.2', { count: 2, intervalS: 0.05, deadlineS: 0.2, src: '10.2.0.1' });
        pings += 2;
      };
      const both = async (what: string, want: (v: SaView) => boolean = () => true) =>
        waitFor(
          what,
          async () => {
            const p = await coati.peer('charon');
            const live = (await charon.listSas()).filter((s) => s.state === 'ESTABLISHED');
            const kids = live[0]?.children.filter((c) => c.state === 'INSTALLED') ?? [];
            if (p?.ike?.state !== 'established' || p.children.length !== 1 || live.length !== 1) return;
            if (kids.length !== 1 || !live[0] || !kids[0]) return;
            const cv = coatiView(p);
            const sv = charonView(live[0], kids[0]);
            return disagreements(cv, sv).length === 0 && want(cv) ? { cv, p, ike: live[0] } : undefined;
          },
          { timeoutMs: 8000, intervalMs: 100, context },
        );

      if (behind === 'coati') await coati.action('initiate', 'charon');
      else await charon.initiate('net', 'coati');
      const up = await both('SAs established through the NAT');
      // The NAT is seen from both ends: coati's own side (behind) or the peer's (outside).
      if (behind === 'coati') expect(up.p.natDetected.local, JSON.stringify(up.p)).toBe(true);
      else {
        expect(up.p.natDetected.remote, JSON.stringify(up.p)).toBe(true);
        expect(up.p.address).toBe(t.routerWanAddr);
        expect(up.ike.natLocal).toBe(true);
      }
      expect(up.p.remotePort).not.toBe(500);
      expect(up.cv.encap).toBe(true);
      expect(up.cv.ikeAlgs).toBe('aes256gcm16/prfsha256/x25519');
      expect(up.cv.childAlgs).toBe('aes256gcm16');
      await espTraffic();

      // Rekeys started from the side outside the NAT must reach the inside through the mapping.
      const before = up.cv;
      if (behind === 'coati') await charon.rekey({ child: 'net' });
      else await coati.action('rekey', 'charon', ['--child']);
      const r1 = await both('Child SA rekey through the NAT', (v) => v.childSpiIn !== before.childSpiIn);
      await espTraffic();
      if (behind === 'coati') await charon.rekey({ ike: 'coati' });
      else await coati.action('rekey', 'charon', ['--ike']);
      const r2 = await both('IKE SA rekey through the NAT', (v) => v.spiI !== r1.cv.spiI);
      expect(r2.cv.childSpiIn).toBe(r1.cv.childSpiIn);
      await espTraffic();

      // Delete from the side behind the NAT this time; the other clears its SAs.
      if (behind === 'coati') await coati.action('terminate', 'charon');
      else await charon.terminate('coati');
      await waitFor(
        'both sides without SAs after the delete',
        async () => {
          const p = await coati.peer('charon');
          return !p?.ike && p?.children.length === 0 && (await charon.listSas()).length === 0;
        },
        { timeoutMs: 5000, intervalMs: 100, context },
      );

      const pcap = await stopCapture(cap);
      const { dec, report } = await decodeWithKeylog(pcap, coati);
      expect(tsharkProblems(dec), report).toEqual([]);
      expect(dec.summary.filter((l) => /CREATE_CHILD_SA/.test(l)).length, report).toBeGreaterThanOrEqual(4);
      const icmp = dec.summary.filter((l) => /10\.2\.0\.1 → 10\.1\.0\.2 +ICMP .*Echo \(ping\) request/.test(l));
      expect(icmp.length, report).toBe(pings);
      const encrypted = dec.summary.filter((l) => /IKE_AUTH|CREATE_CHILD_SA|INFORMATIONAL/.test(l)).length;
      expect(dec.integrityCorrect, report).toBeGreaterThanOrEqual(encrypted);
      await coati.stop();
      await charon.stop();
    });
  }
});
