/**
 * Interop: rekeying between coati and strongSwan charon (IKEv2 PSK, ESP aes256gcm16 with
 * PFS x25519, so every CREATE_CHILD_SA carries a KE payload).
 *
 * Child SA and IKE SA rekeys started by coati (`coatictl rekey --child/--ike`), by
 * charon (`swanctl --rekey`), and by the lifetimes of either side (short charon
 * rekey_time; short coati child_lifetime/ike_lifetime with rekey_margin). After each,
 * both sides list exactly one IKE SA and one Child SA, with new SPIs, agreeing with each
 * other; charon's ESP under the new keys and every CREATE_CHILD_SA in the capture are
 * decrypted by tshark with coati's key log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Capture } from '../harness/capture.js';
import type { Charon } from '../harness/charon.js';
import { type Lab, type Netns, type ProtectedSubnet, waitFor } from '../harness/netns.js';
import { ping } from '../harness/traffic.js';
import { CHARON, COATI, charonConn, charonPair, clearCharonSas, coatiPeer } from '../helpers/charon-pair.js';
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

const PSK = 'coati-interop-rekey-NOT-A-SECRET';

const SUITE = { version: 2, ike: 'aes256gcm16-prfsha256-x25519', esp: 'aes256gcm16-x25519', psk: PSK } as const;
const CHARON_CONN = charonConn(SUITE);
const COATI_PEER = coatiPeer(SUITE);

/**
 * Polls both sides until each has exactly one IKE SA with exactly one installed Child SA,
 * they agree, and `want` holds for the common view.
 */
async function settled(
  coati: Coati,
  charon: Charon,
  what: string,
  want: (v: SaView) => boolean,
  timeoutMs = 8000,
): Promise<SaView> {
  let last = '';
  return waitFor(
    what,
    async () => {
      const p = await coati.peer('charon');
      const sas = (await charon.listSas()).filter((s) => s.conn === 'coati');
      const installed = p?.children.filter((c) => c.state === 'installed') ?? [];
      last = `coati: ${JSON.stringify(p)}\ncharon: ${JSON.stringify(sas.map((s) => ({ ...s, raw: undefined })))}`;
      if (p?.ike?.state !== 'established' || installed.length !== 1 || p.children.length !== 1) return;
      // charon keeps replaced SAs listed for a while (REKEYED/DELETING IKE SAs, DELETED
      // CHILD_SAs until delete_rekeyed_delay): count only live ones.
      const live = sas.filter((s) => s.state === 'ESTABLISHED');
      if (
        live.length !== 1 ||
        sas.some((s) => s.state !== 'ESTABLISHED' && s.state !== 'REKEYED' && s.state !== 'DELETING')
      )
        return;
      const ike = live[0];
      const kids = ike?.children.filter((c) => c.state !== 'DELETED') ?? [];
      if (!ike || kids.length !== 1) return;
      const child = kids[0];
      if (child?.state !== 'INSTALLED') return;
      const cv = coatiView(p);
      const sv = charonView(ike, child);
      if (disagreements(cv, sv).length > 0) {
        last += `\ndisagreements: ${disagreements(cv, sv).join('; ')}`;
        return;
      }
      return want(cv) ? cv : undefined;
    },
    { timeoutMs, intervalMs: 100, context: () => `${last}\n${coati.logTail(30)}\n${charon.logTail(40)}` },
  );
}

describe('interop coati ↔ charon: Child SA and IKE SA rekeying', () => {
  let lab: Lab;
  let a: Netns;
  let lanB: ProtectedSubnet;
  let charon: Charon;
  let coati: Coati | undefined;
  let cap: Capture;
  let espPings = 0;

  /** charon's ESP under the current Child SA, for tshark to decrypt later. */
  const espTraffic = async () => {
    await ping(lanB.host, '10.1.0.2', { count: 2, intervalS: 0.05, deadlineS: 0.2 });
    espPings += 2;
  };

  /** tshark over the capture so far: every IKE message and every ESP packet decrypts. */
  const checkCapture = async (minCreateChild: number) => {
    const pcap = await stopCapture(cap);
    const { dec, report } = await decodeWithKeylog(pcap, coati as Coati);
    expect(tsharkProblems(dec), report).toEqual([]);
    const cc = dec.summary.filter((l) => /CREATE_CHILD_SA/.test(l)).length;
    expect(cc, report).toBeGreaterThanOrEqual(2 * minCreateChild);
    // Every encrypted IKE message checked [correct] (AES-GCM: tshark verifies the ICV).
    const encrypted = dec.summary.filter((l) => /IKE_AUTH|CREATE_CHILD_SA|INFORMATIONAL/.test(l)).length;
    expect(dec.integrityCorrect, report).toBeGreaterThanOrEqual(encrypted);
    const icmp = dec.summary.filter((l) => /10\.2\.0\.2 → 10\.1\.0\.2 +ICMP .*Echo \(ping\) request/.test(l)).length;
    expect(icmp, report).toBe(espPings);
    return cc;
  };

  /**
   * Rekeys by lifetime: from the initial SAs on, polls agreement until two IKE SA and
   * three Child SA generations were seen (or `windowMs` passed), then the relationship is
   * up and every generation's exchanges and ESP decrypt.
   */
  const lifetimeRekeys = async (windowMs: number) => {
    const c = coati as Coati;
    const first = await settled(c, charon, 'initial SAs', () => true);
    await espTraffic();
    const seenIke = new Set([first.spiI]);
    const seenChild = new Set([first.childSpiIn]);
    const t0 = Date.now();
    const seenAt: string[] = [`initial ike ${first.spiI} child ${first.childSpiIn}`];
    while (Date.now() - t0 < windowMs && (seenIke.size < 2 || seenChild.size < 3)) {
      const v = await settled(c, charon, 'agreement between rekeys', () => true);
      if (!seenIke.has(v.spiI)) seenAt.push(`+${Date.now() - t0} ms ike ${v.spiI}`);
      if (!seenChild.has(v.childSpiIn)) seenAt.push(`+${Date.now() - t0} ms child ${v.childSpiIn}`);
      seenIke.add(v.spiI);
      seenChild.add(v.childSpiIn);
      await new Promise((r) => setTimeout(r, 200));
    }
    console.log(`[coati-rekey] generations: ${seenAt.join(', ')}`);
    const why = `${seenAt.join('\n')}\n${c.logTail(60)}\n${charon.logTail(80)}`;
    expect(seenIke.size, `IKE SA generations seen\n${why}`).toBeGreaterThanOrEqual(2);
    expect(seenChild.size, `Child SA generations seen\n${why}`).toBeGreaterThanOrEqual(3);
    const p = await c.peer('charon');
    expect(p?.state).toBe('up');
    await espTraffic();
    await checkCapture(3);
  };

  /** Stops the current coati and clears every SA charon still has, so cases stay independent. */
  const reset = async () => {
    await coati?.stop();
    coati = undefined;
    await clearCharonSas(charon);
  };

  beforeAll(async () => {
    ({ lab, a, lanB, charon } = await charonPair('coati-rekey', { logLevels: { ike: 2, cfg: 1, knl: 1 } }));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  describe('on demand: coatictl rekey and swanctl --rekey', () => {
    beforeAll(async () => {
      await reset();
      await charon.loadConns([CHARON_CONN]);
      coati = await Coati.start(a, 'manual', { listen: [COATI], peers: [COATI_PEER] });
      cap = await liveCapture(a, 'wan0', CHARON);
      espPings = 0;
      await coati.action('initiate', 'charon');
      await settled(coati, charon, 'initial SAs', () => true);
      await espTraffic();
    });

    const steps: { by: string; kind: 'child' | 'ike'; run: () => Promise<unknown> }[] = [
      {
        by: 'coatictl rekey --child',
        kind: 'child',
        run: () => (coati as Coati).action('rekey', 'charon', ['--child']),
      },
      { by: 'coatictl rekey --ike', kind: 'ike', run: () => (coati as Coati).action('rekey', 'charon', ['--ike']) },
      { by: 'swanctl --rekey --child', kind: 'child', run: () => charon.rekey({ child: 'net' }) },
      { by: 'swanctl --rekey --ike', kind: 'ike', run: () => charon.rekey({ ike: 'coati' }) },
    ];
    for (const step of steps) {
      it(`${step.by}: ${step.kind === 'child' ? 'Child SPIs' : 'IKE SPIs'} change on both sides consistently`, async () => {
        const before = await settled(coati as Coati, charon, 'SAs before the rekey', () => true);
        const t0 = Date.now();
        await step.run();
        const after = await settled(coati as Coati, charon, `${step.by} to complete on both sides`, (v) =>
          step.kind === 'child'
            ? v.childSpiIn !== before.childSpiIn && v.childSpiOut !== before.childSpiOut
            : v.spiI !== before.spiI && v.spiR !== before.spiR,
        );
        const ms = Date.now() - t0;
        if (step.kind === 'child') {
          // Same IKE SA, new Child SA with the same algorithms and selectors.
          expect([after.spiI, after.spiR]).toEqual([before.spiI, before.spiR]);
        } else {
          // New IKE SA; the Child SA moved over to it unchanged.
          expect([after.childSpiIn, after.childSpiOut]).toEqual([before.childSpiIn, before.childSpiOut]);
        }
        expect(after.ikeAlgs).toBe('aes256gcm16/prfsha256/x25519');
        expect(after.childAlgs).toMatch(/^aes256gcm16(\/x25519)?$/);
        await espTraffic();
        console.log(`[coati-rekey] ${step.by}: settled on both sides after ${ms} ms`);
      });
    }

    it('tshark decrypts every exchange and charon ESP under each generation of keys', async () => {
      await checkCapture(4);
    });
  });

  it('charon rekeys by lifetime (child rekey_time 2s, IKE rekey_time 5s): relationship stays up', async () => {
    await reset();
    // The IKE rekey time is not a multiple of the child's: when charon's child rekey job
    // fires while charon is moving that child to its new IKE SA, charon drops the rekey
    // ("CHILD_SA ESP/0x... not found for rekey") and does not reschedule it, so with 2 s/4 s
    // the third Child SA generation sometimes never came within the window (1 CI run in
    // about 20; charon's log showed it, coati had nothing outstanding).
    await charon.loadConns([
      {
        ...CHARON_CONN,
        rekeyTime: '5s',
        extra: { rand_time: '0s', over_time: '20s' },
        children: CHARON_CONN.children.map((c) => ({
          ...c,
          rekeyTime: '2s',
          lifeTime: '30s',
          extra: { rand_time: '0s' },
        })),
      },
    ]);
    coati = await Coati.start(a, 'charon-lifetimes', {
      listen: [COATI],
      peers: [COATI_PEER],
    });
    cap = await liveCapture(a, 'wan0', CHARON);
    espPings = 0;
    await charon.initiate('net', 'coati');
    await lifetimeRekeys(8000);
  });

  it('coati rekeys by lifetime (child_lifetime 4s, ike_lifetime 7s, rekey_margin 2s): relationship stays up', async () => {
    await reset();
    await charon.loadConns([CHARON_CONN]);
    coati = await Coati.start(a, 'coati-lifetimes', {
      listen: [COATI],
      peers: [{ ...COATI_PEER, childLifetime: '4s', ikeLifetime: '7s', rekeyMargin: '2s', rekeyJitter: '0s' }],
    });
    cap = await liveCapture(a, 'wan0', CHARON);
    espPings = 0;
    await coati.action('initiate', 'charon');
    // coati started them: its IKE SA now is one it created by rekeying.
    await lifetimeRekeys(9000);
  });
});
