/**
 * IKEv1 with the real data plane (see test/vm/README.md, "IKEv1 tests"): two
 * `coatid` daemons with `version = 1` peers and the xfrm backend, one per
 * network namespace inside the qemu VM, negotiate Main Mode + Quick Mode (PSK,
 * aes128-sha256-modp2048, ESP aes128-sha256 with PFS), install ESP SAs and
 * policies in a stock Debian kernel, and ping plus two 20 ms UDP streams go
 * through them. Then: a Quick Mode rekey under a 36 s lifetime with the
 * streams running (no datagram may be lost), a SIGKILL + restart of one daemon
 * (outage measured), and NAT-T through a masquerading namespace (ESP-in-UDP
 * decapsulated by the real kernel). Packet captures (the host's dumpcap) show
 * that nothing left either host in clear text.
 *
 * The guest side is test/vm/guest/ikev1-e2e.ts (shared pieces in
 * guest/pair-lib.ts); each scenario is one vitest test. One VM for the file.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GuestSuite, type PairResult, show, streamLine, type WireSummary } from './guest-suite.js';

type Result = PairResult<WireSummary>;

const suite = new GuestSuite<Result>();
beforeAll(
  () =>
    suite.run({
      script: 'ikev1-e2e',
      prefix: 'ikev1',
      tools: [['dumpcap', 'tcpdump'], ['nft']],
      args: process.env.COATI_IKEV1_LOG ? `--log ${process.env.COATI_IKEV1_LOG}` : '',
      timeoutMs: 400_000,
    }),
  560_000,
);
afterAll(() => suite.close());
const get = (name: string) => suite.get(name);

/** No clear text sent on any tap; the capture saw the traffic (only when the host has dumpcap/tcpdump). */
function assertWire(r: Result, kind: 'esp' | 'espInUdp'): void {
  const w = r.detail.wire;
  if (!suite.tools.some((t) => t === 'dumpcap' || t === 'tcpdump')) {
    console.log('no dumpcap/tcpdump on the host: the wire was not captured (kernel counters and policies checked)');
    return;
  }
  expect(typeof w, show(r)).toBe('object');
  const wire = w as WireSummary;
  expect(wire.clear, `clear text on the wire: ${wire.clearSamples.join('; ')}`).toBe(0);
  expect(wire[kind], show(r)).toBeGreaterThan(100);
}

describe('two coatid daemons negotiate IKEv1 in the VM (xfrm backend, real ESP)', () => {
  test('the guest script ran to the end', () => {
    expect(suite.results.has('setup'), suite.explain()).toBe(false);
    expect([...suite.results.keys()].sort(), suite.explain()).toEqual(['establish', 'nat', 'rekey', 'restart']);
  });

  test('Main Mode + Quick Mode (PSK, aes128-sha256-modp2048, ESP aes128-sha256 + PFS): ping and streams pass, SPIs and algorithms agree with the kernel, every SA counts, policies required', () => {
    const r = get('establish');
    console.log(
      `IKEv1 establish: ${JSON.stringify(r.detail.handshake)}; ${r.detail.replies}/5 pings; every SA counted: ${r.detail.everySaCounted}`,
    );
    expect(r.detail.error, show(r)).toBeUndefined();
    expect(r.detail.problems, show(r)).toEqual([]);
    expect(r.detail.replies, show(r)).toBe(5);
    const sas = Object.values(r.detail.kernel ?? {}).flat();
    expect(sas, show(r)).toHaveLength(4);
    for (const sa of sas) {
      expect(sa.mode).toBe('tunnel');
      expect(sa.enc).toBe('cbc(aes)');
      expect(sa.auth).toBe('hmac(sha256)');
      expect(sa.packets, show(r)).toBeGreaterThanOrEqual(105);
    }
    expect(r.ok, show(r)).toBe(true);
  });

  test('Quick Mode rekey under a 36 s lifetime with both streams running: new SPIs, old SAs gone, no datagram lost, no clear text', () => {
    const r = get('rekey');
    console.log(
      `IKEv1 rekey: ${r.detail.rekeyAfterPairUpMs} ms after the first pair, old SAs gone ${r.detail.oldGoneAfterRekeyMs} ms later; ${streamLine(r.detail.streams)}; wire ${JSON.stringify(r.detail.wire)}`,
    );
    expect(r.detail.error, show(r)).toBeUndefined();
    expect(r.detail.problems, show(r)).toEqual([]);
    for (const s of r.detail.streams ?? []) {
      expect(s.sent, show(r)).toBeGreaterThan(500);
      expect(s.lost, `${s.name}: ${show(r)}`).toBe(0);
    }
    expect(r.detail.streams, show(r)).toHaveLength(2);
    assertWire(r, 'esp');
    expect(r.ok, show(r)).toBe(true);
  });

  test('SIGKILL of one daemon during both streams, restart after 3 s: a new ISAKMP SA and pair, stale SAs purged, no clear text; outage measured', () => {
    const r = get('restart');
    console.log(
      `IKEv1 SIGKILL + restart: outage (longest gap) ${r.detail.outageMs} ms; ${streamLine(r.detail.streams)}; settled ${r.detail.settledAfterRestartMs} ms after the restart, one pair per side after ${r.detail.oneSaPerSideAfterRestartMs} ms\n  ${(r.detail.timeline ?? []).join('\n  ')}`,
    );
    expect(r.detail.error, show(r)).toBeUndefined();
    expect(r.detail.problems, show(r)).toEqual([]);
    expect(r.detail.replaced, show(r)).toBe(true);
    for (const s of r.detail.streams ?? []) expect(s.received, show(r)).toBeGreaterThan(0);
    assertWire(r, 'esp');
    expect(r.ok, show(r)).toBe(true);
  });

  test('NAT-T: initiator behind a masquerading NAT, IKE floats to 4500, ESP-in-UDP (aes128gcm16) decapsulated by the kernel, no plain ESP or clear text on the wire', () => {
    const r = get('nat');
    console.log(
      `IKEv1 NAT-T: up ${r.detail.upMs} ms after the daemons started; ${streamLine(r.detail.streams)}; wire ${JSON.stringify(r.detail.wire)}`,
    );
    expect(suite.tools, 'the host has no nft: the NAT namespace cannot be built').toContain('nft');
    expect(r.detail.error, show(r)).toBeUndefined();
    expect(r.detail.problems, show(r)).toEqual([]);
    const sas = Object.values(r.detail.kernel ?? {}).flat();
    expect(sas, show(r)).toHaveLength(4);
    for (const sa of sas) {
      expect(sa.encap, show(r)).toMatch(/^espinudp /);
      expect(sa.aead, show(r)).toBe('rfc4106(gcm(aes))');
    }
    assertWire(r, 'espInUdp');
    if (typeof r.detail.wire === 'object') expect(r.detail.wire.esp, show(r)).toBe(0);
    expect(r.ok, show(r)).toBe(true);
  });
});
