/**
 * Interop across a NAT: coati ↔ strongSwan charon over IKEv1 (Main Mode + Quick Mode, PSK),
 * with a masquerading router between them (test/harness/nat.ts, nftables). Once with coati
 * behind the NAT initiating to charon, once with charon behind the NAT initiating to coati.
 *
 * Each case: NAT-D makes both ends see the NAT on the right side (coati's status and
 * charon's `--list-sas`), Main Mode 5 onwards floats to 4500, the Quick Mode negotiates
 * UDP-encapsulated tunnel mode and charon's ESP is ESP-in-UDP through the NAT mapping; the
 * side behind the NAT sends NAT keepalives on 4500 (coati: `nat_keepalive = 1s`; charon:
 * `keep_alive = 1s`); both sides list the same cookies and SPIs (coati's status and key log
 * against charon); pings from charon's protected address put ESP on the wire; and tshark
 * decrypts the capture on coati's own link with coati's key log (every Main Mode / Quick
 * Mode / Informational message and charon's ESP), with no malformed frame. Finally the side
 * outside deletes and the other drops its SAs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Capture } from '../harness/capture.js';
import { Charon } from '../harness/charon.js';
import { type NatTopology, natTopology } from '../harness/nat.js';
import { Lab, type Netns, sleep, waitFor } from '../harness/netns.js';
import { ping } from '../harness/traffic.js';
import { charonConn, coatiPeer } from '../helpers/charon-pair.js';
import { Coati, decodeWithKeylog, keylogDisagreements, stopCapture, tsharkErrors } from '../helpers/coati-proc.js';

const PSK = 'coati-v1-interop-nat-NOT-A-SECRET';

describe('interop coati ↔ charon: IKEv1 through a NAT', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await Lab.create({ label: 'coati-v1-nat' });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  for (const behind of ['coati', 'charon'] as const) {
    it(`${behind} behind the masquerading router initiates: NAT-D, float to 4500, ESP-in-UDP, keepalives, SAs agree, tshark decrypts`, async () => {
      const t: NatTopology = await natTopology(lab, {
        labels: { a: `v1-${behind}-in`, router: `v1-${behind}-nat`, b: `v1-${behind}-out` },
      });
      const coatiNs: Netns = behind === 'coati' ? t.a : t.b;
      const charonNs: Netns = behind === 'coati' ? t.b : t.a;
      const coatiIf = behind === 'coati' ? t.aIf : t.bIf;
      const coatiAddr = behind === 'coati' ? t.aAddr : t.bAddr;
      // Where coati sends to: charon outside is reachable directly; charon inside only
      // through the mapping its own packets create on the router's public address.
      const charonSeenAt = behind === 'coati' ? t.bAddr : t.routerWanAddr;
      // And where coati is seen from charon's side.
      const coatiSeenAt = behind === 'coati' ? t.routerWanAddr : t.bAddr;
      const charonLocal = behind === 'coati' ? t.bAddr : t.aAddr;
      // charon's protected address, the source of its ESP out of the libipsec TUN.
      await charonNs.addAddress('lo', '10.2.0.1/32');

      const charon = await Charon.start(charonNs, `charon-${behind}`, {
        logLevels: { ike: 2, knl: 1 },
        settings: { keep_alive: '1s' },
      });
      const suite = { version: 1, ike: 'aes256-sha256-modp2048', esp: 'aes256-sha256', psk: PSK } as const;
      await charon.loadConns([
        charonConn({ ...suite, localAddrs: [charonLocal], remoteAddrs: [behind === 'coati' ? '%any' : t.bAddr] }),
      ]);
      const coati = await Coati.start(coatiNs, `coati-${behind}`, {
        version: 1,
        listen: [coatiAddr],
        peers: [
          coatiPeer({ ...suite, address: charonSeenAt, localAddress: coatiAddr, pfs: false, natKeepalive: '1s' }),
        ],
      });
      const context = () => `${coati.logTail(40)}\n${charon.logTail(60)}`;
      const cap = await Capture.start(coatiNs, coatiIf);

      const t0 = Date.now();
      if (behind === 'coati') {
        const r = await coati.ctl(['initiate', 'charon'], { allowFail: true });
        expect(r.code, `${r.out}\n${context()}`).toBe(0);
      } else await charon.initiate('net', 'coati');
      const s = await charon.waitChild('coati', 'net', 15_000);
      const setupMs = Date.now() - t0;
      expect(s.ike.version).toBe(1);
      expect(s.ike.initiator).toBe(behind === 'charon');
      expect(s.ike.remoteHost, JSON.stringify(s.ike.raw)).toBe(coatiSeenAt);
      expect(s.child.encap).toBe(true);
      // NAT-D: charon sees the NAT on the side that has it (libipsec may add a faked local one).
      if (behind === 'coati') expect(s.ike.natRemote, JSON.stringify(s.ike.raw)).toBe(true);
      else expect(s.ike.natLocal, JSON.stringify(s.ike.raw)).toBe(true);

      // coati: the same cookies and SPIs (status and key log), NAT seen, on port 4500.
      const p = await waitFor(
        "coati's status to list charon's SAs",
        async () => {
          const x = await coati.peer('charon');
          const c = x?.children.find((k) => k.state === 'installed' && k.spiIn === s.child.spiOut);
          return x?.ike?.spiI === s.ike.initiatorSpi && x.ike.spiR === s.ike.responderSpi && c ? { x, c } : undefined;
        },
        { timeoutMs: 5000, intervalMs: 100, context },
      );
      expect(p.x.ike?.role).toBe(behind === 'coati' ? 'initiator' : 'responder');
      expect(p.c.spiOut).toBe(s.child.spiIn);
      expect(p.c.encap, JSON.stringify(p.c)).toBe(true);
      expect(p.x.remotePort, JSON.stringify(p.x)).not.toBe(500);
      if (behind === 'coati') expect(p.x.natDetected.local, JSON.stringify(p.x)).toBe(true);
      else {
        expect(p.x.natDetected.remote, JSON.stringify(p.x)).toBe(true);
        expect(p.x.address).toBe(t.routerWanAddr);
      }
      expect(keylogDisagreements(coati, s.ike, coatiAddr, charonSeenAt), context()).toEqual([]);

      // ESP from charon's protected address through the NAT; keepalives from the side behind it.
      await ping(charonNs, '10.1.0.2', { count: 3, intervalS: 0.05, deadlineS: 0.3, src: '10.2.0.1' });
      await sleep(3500);
      const after = await charon.waitChild('coati', 'net');
      expect(after.child.packetsOut).toBeGreaterThanOrEqual(3);

      // The side outside deletes; the one inside drops its SAs.
      if (behind === 'coati') await charon.terminate('coati');
      else {
        const r = await coati.ctl(['terminate', 'charon'], { allowFail: true });
        expect(r.code, r.out).toBe(0);
      }
      await waitFor(
        'both sides without SAs after the delete',
        async () => !(await coati.peer('charon'))?.ike && (await charon.listSas()).length === 0,
        { timeoutMs: 5000, intervalMs: 100, context },
      );
      const pcap = await stopCapture(cap);

      const { dec, report } = await decodeWithKeylog(pcap, coati);
      expect(tsharkErrors(dec), report).toEqual([]);
      expect(dec.integrityIncorrect, report).toBe(0);
      const frames = dec.text.split(/\n(?=Frame \d+:)/);
      const ports = (f: string) => /Src Port: (\d+), Dst Port: (\d+)/.exec(f)?.slice(1).map(Number) ?? [];
      const mm = frames.filter((f) => /Exchange type: Identity Protection \(Main Mode\)/.test(f));
      expect(mm.length, report).toBe(6);
      // MM1-MM4 on 500 (behind the NAT: mapped to some port on the outside), MM5/MM6 on 4500.
      expect(
        mm.slice(4).every((f) => ports(f).includes(4500)),
        report,
      ).toBe(true);
      expect(
        mm.slice(0, 4).every((f) => !ports(f).includes(4500)),
        report,
      ).toBe(true);
      // MM5/MM6 decrypted: the identities.
      expect(dec.text, report).toMatch(/Identification Data:.*coati\.interop\.test/);
      expect(dec.text, report).toMatch(/Identification Data:.*charon\.interop\.test/);
      expect(dec.summary.filter((l) => /Quick Mode/.test(l)).length, report).toBe(3);
      // The Quick Mode chose UDP-encapsulated tunnel mode (RFC 3947: 3).
      expect(dec.text, report).toMatch(/Encapsulation Mode: UDP-Encapsulated-Tunnel \(3\)/);
      expect(dec.text, report).toMatch(/Payload: Delete \(12\)/);
      // charon's ESP, in UDP to coati's 4500, decrypts with coati's inbound key.
      const icmp = frames.filter(
        (f) =>
          /Echo \(ping\) request/.test(f) && /Src: 10\.2\.0\.1, Dst: 10\.1\.0\.2/.test(f) && ports(f).includes(4500),
      );
      expect(icmp.length, report).toBe(3);
      // NAT keepalives (RFC 3948 2.3: one 0xFF octet) on 4500 from the side behind the NAT.
      const from = behind === 'coati' ? coatiAddr : t.routerWanAddr;
      const to = behind === 'coati' ? charonSeenAt : coatiAddr;
      const fromInside = dec.summary.filter(
        (l) => l.includes(`${from} → ${to} `) && / UDPENCAP \d+ NAT-keepalive/.test(l),
      );
      expect(fromInside.length, report).toBeGreaterThanOrEqual(2);
      console.log(`[coati-v1-nat] ${behind} behind the NAT: up in ${setupMs} ms, ${fromInside.length} keepalives seen`);
      await coati.stop();
      await charon.stop();
    });
  }
});
