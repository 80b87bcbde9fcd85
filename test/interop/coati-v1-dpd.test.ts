/**
 * Interop: coati ↔ strongSwan charon, IKEv1 dead peer detection (RFC 3706), with coati as
 * Main Mode initiator and as responder.
 *
 * coati (198.51.100.1, memory kernel backend) runs DPD with delay 2 s / timeout 2 s;
 * charon (198.51.100.2, kernel-libipsec) with dpd_delay 1 s / dpd_timeout 2 s. IKEv1 DPD
 * probes only an idle SA and a peer's R-U-THERE is traffic: with equal delays whichever end
 * probes first keeps the other quiet (under load coati often won, and charon sent none), so
 * charon's shorter delay makes it the end that probes while both are up. Each case:
 *  1. coati answers charon's R-U-THEREs: after several of charon's DPD timeouts charon
 *     still has the same ISAKMP SA (same cookies, which coati's status lists too);
 *  2. charon is SIGKILLed: coati sends R-U-THEREs that go unanswered and declares charon
 *     dead within its dpd delay + timeout (measured from the kill, plus scheduling slack);
 *  3. the dpd action: `restart` keeps re-initiating Main Mode (new cookies each attempt)
 *     until charon is back, then the SAs are up again and agree (cookies, SPIs crosswise);
 *     `clear` drops the SAs and sends nothing more;
 *  4. tshark decrypts the whole capture with coati's key log: Main/Quick Mode, charon's
 *     ESP, and every R-U-THERE / R-U-THERE-ACK pair (same sequence number), no malformed frame.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerStatus } from '../../src/control/types.js';
import { Capture } from '../harness/capture.js';
import type { Charon, IkeSaInfo } from '../harness/charon.js';
import { type Lab, type Netns, type ProtectedSubnet, sleep, waitFor } from '../harness/netns.js';
import { ping } from '../harness/traffic.js';
import { CHARON, COATI, charonConn, charonPair, clearCharonSas, coatiPeer } from '../helpers/charon-pair.js';
import { Coati, decodeWithKeylog, keylogDisagreements, stopCapture, tsharkErrors } from '../helpers/coati-proc.js';

const PSK = 'coati-v1-interop-dpd-NOT-A-SECRET';
/** coati's DPD delay; charon's is half of it, so charon probes while both are up. */
const DPD_DELAY_MS = 2000;
const CHARON_DPD_DELAY_MS = 1000;
const DPD_TIMEOUT_MS = 2000;
/** Timer and process scheduling under CI load (2 cores, other suites running). */
const SLACK_MS = 1500;

const SUITE = { version: 1, ike: 'aes128-sha256-modp2048', esp: 'aes128-sha256', psk: PSK } as const;
const CONN = charonConn({
  ...SUITE,
  dpdDelay: `${CHARON_DPD_DELAY_MS / 1000}s`,
  dpdTimeout: '2s',
  child: { dpdAction: 'clear' },
});

type Ev = { type: string; time?: string; [k: string]: unknown };
const at = (e: Ev | undefined) => (e?.time ? Date.parse(e.time) : Number.NaN);

/** One tshark frame: its source, and the DPD notifies it carries (type, sequence). */
interface DpdFrame {
  src: string;
  kind: 'R-U-THERE' | 'R-U-THERE-ACK';
  seq: number;
}

function dpdFrames(verbose: string): DpdFrame[] {
  const out: DpdFrame[] = [];
  for (const block of verbose.split(/\n(?=Frame \d+:)/)) {
    const src = /Internet Protocol Version 4, Src: ([\d.]+)/.exec(block)?.[1];
    const kind = /Notify Message Type: (R-U-THERE-ACK|R-U-THERE) \(/.exec(block)?.[1] as DpdFrame['kind'] | undefined;
    // RFC 3706: the notification data is the 32-bit sequence number.
    const data = /Notification DATA: ([0-9a-f]{8})\b/.exec(block)?.[1];
    if (src && kind && data) out.push({ src, kind, seq: Number.parseInt(data, 16) });
  }
  return out;
}

describe('interop coati ↔ charon: IKEv1 DPD', () => {
  let lab: Lab;
  let a: Netns;
  let lanB: ProtectedSubnet;
  let charon: Charon;
  let coati: Coati | undefined;
  const context = () => `${coati?.logTail(50) ?? ''}\n${charon?.logTail(50) ?? ''}`;

  beforeAll(async () => {
    ({ lab, a, lanB, charon } = await charonPair('coati-v1-dpd', {
      logLevels: { ike: 2, cfg: 1, knl: 1 },
      retransmit: { timeout: 1, base: 1.4, tries: 2 },
    }));
    await charon.loadConns([CONN]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  /** charon's established ISAKMP SA with an installed CHILD_SA whose cookies differ from `not`. */
  const charonUp = (not?: string) =>
    waitFor(
      'charon: an ESTABLISHED IKEv1 SA with an INSTALLED CHILD_SA',
      async () => {
        for (const ike of await charon.listSas()) {
          if (ike.conn !== 'coati' || ike.state !== 'ESTABLISHED' || ike.initiatorSpi === not) continue;
          const child = ike.children.find((c) => c.name === 'net' && c.state === 'INSTALLED');
          if (child) return { ike, child };
        }
        return undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100, context },
    );

  /** coati's status lists the same ISAKMP SA (cookies) and phase 2 SAs (SPIs crosswise) as charon. */
  const coatiAgrees = (ike: IkeSaInfo) =>
    waitFor(
      "coati's status to list charon's SAs",
      async () => {
        const p = await coati!.peer('charon');
        const child = ike.children[0];
        const mine = p?.children.find((c) => c.state === 'installed' && c.spiIn === child?.spiOut);
        return p?.ike?.spiI === ike.initiatorSpi && p.ike.spiR === ike.responderSpi && mine?.spiOut === child?.spiIn
          ? p
          : undefined;
      },
      { timeoutMs: 5000, intervalMs: 100, context },
    );

  for (const action of ['restart', 'clear'] as const) {
    for (const initiator of ['coati', 'charon'] as const) {
      it(`dpd_action=${action}, ${initiator} initiates: coati answers R-U-THERE, declares a killed charon dead in time, ${action === 'restart' ? 're-initiates until it is back' : 'clears'}`, async () => {
        await coati?.stop();
        if (!charon.proc?.running) await charon.restart();
        await clearCharonSas(charon);
        const peer = coatiPeer({
          ...SUITE,
          pfs: false,
          dpdDelay: `${DPD_DELAY_MS}ms`,
          dpdTimeout: `${DPD_TIMEOUT_MS}ms`,
          dpdAction: action,
          retransmitBase: '500ms',
          retransmitTries: 2,
          restartBackoffMax: '2s',
        });
        coati = await Coati.start(a, `${action}-${initiator}`, { version: 1, listen: [COATI], peers: [peer] });
        const events = coati.follow();
        const cap = await Capture.start(a, 'wan0');
        if (initiator === 'coati') {
          const r = await coati.ctl(['initiate', 'charon'], { allowFail: true });
          expect(r.code, `${r.out}\n${context()}`).toBe(0);
        } else await charon.initiate('net', 'coati');
        const first = await charonUp();
        expect(first.ike.initiator).toBe(initiator === 'charon');
        await coatiAgrees(first.ike);
        await ping(lanB.host, '10.1.0.2', { count: 2, intervalS: 0.05, deadlineS: 0.2 });

        // 1. charon probes every second and gives up after 2 s without an answer: coati answers.
        const logFrom = charon.logText().length;
        await sleep(3 * CHARON_DPD_DELAY_MS + DPD_TIMEOUT_MS);
        const still = await charonUp();
        expect(still.ike.initiatorSpi, context()).toBe(first.ike.initiatorSpi);
        expect(still.ike.responderSpi).toBe(first.ike.responderSpi);
        expect(charon.logText().slice(logFrom), context()).not.toMatch(/DPD check timed out|giving up|deleting IKE_SA/);

        // 2. kill charon: coati's probes go unanswered and it declares charon dead in time.
        const killedAt = Date.now();
        charon.kill('SIGKILL');
        const dead = await waitFor(
          'coati to declare charon dead',
          async () => events.seen().find((e: Ev) => e.type === 'liveness.dead' && at(e) >= killedAt),
          { timeoutMs: DPD_DELAY_MS + DPD_TIMEOUT_MS + 10_000, intervalMs: 50, context },
        );
        const detectMs = at(dead) - killedAt;
        expect(detectMs, context()).toBeLessThanOrEqual(DPD_DELAY_MS * 1.05 + DPD_TIMEOUT_MS + SLACK_MS);
        const probes = events.seen().filter((e: Ev) => e.type === 'liveness.sent' && at(e) >= killedAt);
        // The first unanswered R-U-THERE, then its retries within the timeout.
        expect(probes.length, JSON.stringify(probes)).toBeGreaterThanOrEqual(2);
        expect(at(dead) - at(probes[0])).toBeGreaterThanOrEqual(DPD_TIMEOUT_MS * 0.9);
        await waitFor(
          'coati to report the peer down',
          async () => events.seen().some((e: Ev) => e.type === 'peer.down' && at(e) >= killedAt),
          { timeoutMs: 5000, context },
        );

        let statusAfter: PeerStatus | undefined;
        if (action === 'restart') {
          // 3a. coati keeps re-initiating while charon is away (new cookies each attempt) ...
          const attempts = await waitFor(
            'coati to start at least two new Main Modes while charon is down',
            async () => {
              const mm1 = events
                .seen()
                .filter((e: Ev) => e.type === 'ike.state' && e.reason === 'Main Mode 1 sent' && at(e) >= at(dead));
              return mm1.length >= 2 ? mm1 : undefined;
            },
            { timeoutMs: 15_000, intervalMs: 100, context },
          );
          expect(new Set(attempts.map((e: Ev) => e.sa)).size).toBe(attempts.length);
          // ... and is up again once charon is back (charon itself does not initiate).
          await charon.restart();
          const again = await charonUp(first.ike.initiatorSpi);
          expect(again.ike.initiator, context()).toBe(false);
          statusAfter = await coatiAgrees(again.ike);
          expect(statusAfter.state).toBe('up');
          expect(keylogDisagreements(coati, again.ike, COATI, CHARON), context()).toEqual([]);
          await ping(lanB.host, '10.1.0.2', { count: 2, intervalS: 0.05, deadlineS: 0.2 });
          console.log(
            `[coati-v1-dpd] restart, ${initiator} initiated: dead ${detectMs} ms after the kill; ${attempts.length}+ re-initiations while down; up again ${Date.now() - killedAt} ms after the kill`,
          );
        } else {
          // 3b. clear: the SAs are gone and coati stays quiet.
          const quietFrom = Date.now();
          await sleep(3000);
          statusAfter = await coati.peer('charon');
          expect(statusAfter?.ike, JSON.stringify(statusAfter)).toBeUndefined();
          expect(statusAfter?.children ?? []).toEqual([]);
          const mm = events
            .seen()
            .filter((e: Ev) => e.type === 'ike.state' && at(e) >= at(dead) && e.to === 'connecting');
          expect(mm, JSON.stringify(mm)).toEqual([]);
          expect(events.seen().filter((e: Ev) => e.type === 'liveness.sent' && at(e) >= quietFrom)).toEqual([]);
          console.log(`[coati-v1-dpd] clear, ${initiator} initiated: dead ${detectMs} ms after the kill`);
        }
        events.stop();
        const pcap = await stopCapture(cap);

        // 4. tshark: everything decrypts with coati's key log; DPD pairs match by sequence.
        const { dec, report } = await decodeWithKeylog(pcap, coati);
        expect(tsharkErrors(dec), report).toEqual([]);
        expect(dec.integrityIncorrect, report).toBe(0);
        const dpd = dpdFrames(dec.text);
        const fromCharon = dpd.filter((d) => d.src === CHARON && d.kind === 'R-U-THERE');
        const acks = dpd.filter((d) => d.src === COATI && d.kind === 'R-U-THERE-ACK');
        expect(fromCharon.length, report).toBeGreaterThanOrEqual(3);
        for (const r of fromCharon)
          expect(
            acks.map((x) => x.seq),
            report,
          ).toContain(r.seq);
        // coati's own probes after the kill, none answered.
        const ours = dpd.filter((d) => d.src === COATI && d.kind === 'R-U-THERE');
        expect(ours.length, report).toBeGreaterThanOrEqual(2);
        const answered = dpd.filter((d) => d.src === CHARON && d.kind === 'R-U-THERE-ACK').map((d) => d.seq);
        const unanswered = ours.filter((o) => !answered.includes(o.seq));
        expect(unanswered.length, report).toBeGreaterThanOrEqual(2);
        const icmp = dec.summary.filter((l) => /10\.2\.0\.2 → 10\.1\.0\.2 +ICMP .*Echo \(ping\) request/.test(l));
        expect(icmp.length, report).toBe(action === 'restart' ? 4 : 2);
      });
    }
  }
});
