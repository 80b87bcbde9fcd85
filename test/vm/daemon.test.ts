/**
 * The real data plane end to end (see test/vm/README.md, "daemon tests"): two
 * `coatid` daemons with the xfrm backend, one per network namespace inside the
 * qemu VM, negotiate IKEv2 (PSK, AES-GCM), install ESP SAs and policies in a
 * stock Debian kernel, and traffic flows through them. Then the postmortem's
 * liveness scenarios with UDP streams (20 ms) through the tunnel, each of which
 * must end with exactly one IKE SA and one Child SA pair per side:
 *  1. one daemon SIGKILLed and restarted 3 s later;
 *  2. a hard reboot: the same, plus its kernel SAs/policies flushed and its
 *     state directory deleted;
 *  3. an 8 s partition (nftables, both ways) with DPD 2 s / 3 s: both declare
 *     the peer dead in time, no clear text leaves either host (captures), and
 *     the streams flow again soon after the heal;
 *  5. both daemons SIGKILLed and restarted at the same moment: no duplicate IKE
 *     SA, no orphaned kernel SA after the grace period.
 * The outages, losses and restart/heal-to-flowing times are printed.
 *
 * The guest side is test/vm/guest/daemon-e2e.ts (one `RESULT {json}` line per
 * scenario); each scenario is one vitest test here. One VM for the file.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GuestSuite, type PairResult, show, streamLine, type WireSummary } from './guest-suite.js';

type Result = PairResult<Record<string, WireSummary>>;

// The peers' timers in guest/daemon-e2e.ts.
const DPD_DELAY = 2000;
const DPD_TIMEOUT = 3000;
/**
 * Peer declared dead, measured from the last datagram the daemon received: a liveness check
 * starts after dpd_delay of silence and fails after dpd_timeout. With the kernel's ESP
 * counters read once per dpd_delay (guest/daemon-e2e.ts, BOUND_DEAD_MS), the silence may be
 * seen one dpd_delay late. 1 s either way for TCG stalls and the log pipe.
 */
const DEAD_MIN_MS = DPD_DELAY + DPD_TIMEOUT - 1000;
const DEAD_MAX_MS = 2 * DPD_DELAY + DPD_TIMEOUT + 1000;

const suite = new GuestSuite<Result>();
beforeAll(
  () =>
    suite.run({ script: 'daemon-e2e', prefix: 'daemon', tools: [['dumpcap', 'tcpdump'], ['nft']], timeoutMs: 560_000 }),
  660_000,
);
afterAll(() => suite.close());
const get = (name: string) => suite.get(name);

/** No clear text sent by either host; the capture saw the ESP traffic (only when the host has dumpcap/tcpdump). */
function assertWire(r: Result): void {
  if (!suite.tools.some((t) => t === 'dumpcap' || t === 'tcpdump')) {
    console.log('no dumpcap/tcpdump on the host: the wire was not captured (stream arrivals and policies checked)');
    return;
  }
  expect(typeof r.detail.wire, show(r)).toBe('object');
  for (const [ns, w] of Object.entries(r.detail.wire as Record<string, WireSummary>)) {
    expect(w.clear, `${ns} sent clear text: ${w.clearSamples.join('; ')}`).toBe(0);
    expect(w.esp, `${ns}: ${show(r)}`).toBeGreaterThan(100);
  }
}

describe('two coatid daemons with the xfrm backend in the VM', () => {
  test('the guest script ran to the end', () => {
    suite.expectRanToTheEnd();
  });

  for (const mode of ['transport', 'tunnel'] as const) {
    test(`${mode} mode, AES-GCM: pings pass through ESP, kernel counters > 0 in both namespaces, SPIs equal crosswise`, () => {
      const r = get(`${mode} mode`);
      expect(r.detail.problems, show(r)).toEqual([]);
      expect(r.detail.replies, show(r)).toBe(5);
      const sas = [...(r.detail.kernel?.ca ?? []), ...(r.detail.kernel?.cb ?? [])];
      expect(sas, show(r)).toHaveLength(4);
      for (const sa of sas) {
        expect(sa.mode).toBe(mode);
        expect(sa.aead).toMatch(/^rfc4106\(gcm\(aes\)\)/);
        expect(sa.packets, show(r)).toBeGreaterThanOrEqual(5);
      }
      expect(r.ok, show(r)).toBe(true);
    });
  }

  for (const [name, label] of [
    ['SIGKILL + restart after 3 s', '1. SIGKILL'],
    ['hard reboot (kill + flush + state dir gone) + restart after 3 s', '2. hard reboot'],
  ] as const) {
    test(`${label} of one daemon during a 20 ms UDP stream: comes back with one IKE SA and one Child SA pair per side, stale SAs purged`, () => {
      const r = get(name);
      const s = r.detail.stream;
      const d = r.detail;
      console.log(
        `${label}: outage (longest gap) ${s?.longestGapMs} ms, lost ${s?.lost} of ${s?.sent} datagrams; ` +
          `restart-to-flowing ${d.restartToFlowingMs} ms from the "started" line (spawn to started ${d.spawnToStartedMs} ms), ` +
          `no silence > 300 ms after ${d.restartToStableMs} ms; settled ${d.startedToSettledMs} ms, one pair per side ${d.startedToOneSaPerSideMs} ms after the started line; ` +
          `ca declared cb dead ${d.caDeclaredDeadAfterKillMs} ms after the kill; gaps ${JSON.stringify(d.gaps)}\n  ${(d.timeline ?? []).join('\n  ')}`,
      );
      expect(r.detail.error, show(r)).toBeUndefined();
      expect(r.detail.problems, show(r)).toEqual([]);
      expect(r.detail.replaced, show(r)).toBe(true);
      expect(r.detail.newSasCounted, show(r)).toBe(true);
      expect(s?.received, show(r)).toBeGreaterThan(0);
      expect(d.restartToFlowingMs, show(r)).not.toBeNull();
      expect(r.ok, show(r)).toBe(true);
    });
  }

  test('3. partition of 8 s (> DPD delay 2 s + timeout 3 s) during streams both ways: peer declared dead in time, out policies stay as traps, no clear text, flowing within 2.5 s of the heal, one IKE SA and one pair', () => {
    const r = get('partition 8 s (> DPD 2 s + 3 s), then healed');
    const d = r.detail as Result['detail'] & {
      declaredDeadMs: { ca: number | null; cb: number | null };
      silentBeforeCutMs: { ca: number; cb: number };
      healToFlowingMs: (number | null)[];
      policyChecks: { ca: boolean; cb: boolean }[];
      lostDuringPartition: number[];
    };
    console.log(
      `3. partition: declared dead ${JSON.stringify(d.declaredDeadMs)} ms after the last datagram each received (bounds ${DEAD_MIN_MS}-${DEAD_MAX_MS}; ` +
        `last datagram ${JSON.stringify(d.silentBeforeCutMs)} ms before the cut command returned); ` +
        `heal-to-flowing ${JSON.stringify(d.healToFlowingMs)} ms (ca->cb, cb->ca; heal command ${d.healCommandMs} ms); ` +
        `one pair per side ${d.healToOneSaPerSideMs} ms after the heal; ${streamLine(d.streams)}; ` +
        `lost during the partition ${JSON.stringify(d.lostDuringPartition)}; wire ${JSON.stringify(d.wire)}\n  ${(d.timeline ?? []).join('\n  ')}`,
    );
    expect(suite.tools, 'the host has no nft: the partition cannot be made').toContain('nft');
    expect(d.error, show(r)).toBeUndefined();
    for (const ns of ['ca', 'cb'] as const) {
      expect(d.declaredDeadMs?.[ns], `${ns}: ${show(r)}`).not.toBeNull();
      expect(d.declaredDeadMs[ns], `${ns}: ${show(r)}`).toBeGreaterThanOrEqual(DEAD_MIN_MS);
      expect(d.declaredDeadMs[ns], `${ns}: ${show(r)}`).toBeLessThanOrEqual(DEAD_MAX_MS);
    }
    expect(d.policyChecks.length, show(r)).toBeGreaterThanOrEqual(5);
    for (const p of d.policyChecks) expect(p, show(r)).toMatchObject({ ca: true, cb: true });
    expect(d.healToFlowingMs, show(r)).toHaveLength(2);
    for (const f of d.healToFlowingMs) {
      expect(f, show(r)).not.toBeNull();
      expect(f, show(r)).toBeLessThanOrEqual(2500);
    }
    assertWire(r);
    expect(d.problems, show(r)).toEqual([]);
    expect(d.replies, show(r)).toBe(3);
    expect(r.ok, show(r)).toBe(true);
  });

  test('5. both daemons SIGKILLed and restarted at the same moment during streams both ways: flowing after both are up, one IKE SA and one pair, no duplicate, no orphaned kernel SA after the grace period, no clear text', () => {
    const r = get('both daemons SIGKILLed and restarted at the same moment');
    const d = r.detail;
    console.log(
      `5. both restarted: spawn to started ${JSON.stringify(d.spawnToStartedMs)} ms (skew ${d.startedSkewMs}); ` +
        `both-up-to-flowing ${JSON.stringify(d.bothUpToFlowingMs)} ms, no silence > 300 ms after ${JSON.stringify(d.bothUpToStableMs)} ms; ` +
        `settled ${d.bothUpToSettledMs} ms, one pair per side ${d.bothUpToOneSaPerSideMs} ms after both were up; ` +
        `old SPIs kept ${JSON.stringify(d.kept)}; gaps ${JSON.stringify(d.gaps)}; ${streamLine(d.streams)}; wire ${JSON.stringify(d.wire)}\n  ${(d.timeline ?? []).join('\n  ')}`,
    );
    expect(d.error, show(r)).toBeUndefined();
    expect(d.problems, show(r)).toEqual([]);
    expect(d.otherIkeSas, show(r)).toEqual({ ca: [], cb: [] });
    const kernel = d.kernel ?? { ca: [], cb: [] };
    expect(kernel.ca, show(r)).toHaveLength(2);
    expect(kernel.cb, show(r)).toHaveLength(2);
    expect(d.flowingAfterSettle, show(r)).toEqual([true, true]);
    for (const s of d.streams ?? []) expect(s.received, show(r)).toBeGreaterThan(0);
    assertWire(r);
    expect(d.replies, show(r)).toBe(3);
    expect(r.ok, show(r)).toBe(true);
  });
});
