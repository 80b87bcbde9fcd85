/**
 * Self-test of the end-to-end harness (test/harness) with two strongSwan charons and no
 * coati: IKEv2 PSK between two namespaces over kernel-libipsec, ping and a UDP stream
 * across the protected subnets, matching SPIs, a capture decrypted by tshark with the
 * keys from charon's log, and the outage when one charon is SIGKILLed and restarted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Capture, ikev2UatLine, tsharkDecode, tsharkIkev2Encr, tsharkIkev2Integ } from '../harness/capture.js';
import { Charon, ikev2KeysFromLog } from '../harness/charon.js';
import { partition, randomLoss } from '../harness/faults.js';
import { type NatTopology, natTopology } from '../harness/nat.js';
import { Lab, type Netns, NS_PREFIX, type ProtectedSubnet, reapStale, run, sleep, waitFor } from '../harness/netns.js';
import { type ConnSpec, mirrorConn } from '../harness/swanctl-conf.js';
import { pairTopology } from '../harness/topology.js';
import { expectNoPing, ping, UdpStream, waitPing } from '../harness/traffic.js';

const CONN: ConnSpec = {
  name: 'h2',
  version: 2,
  localAddrs: ['198.51.100.1'],
  remoteAddrs: ['198.51.100.2'],
  localId: 'left.harness.test',
  remoteId: 'right.harness.test',
  auth: 'psk',
  psk: 'harness-self-test-NOT-A-SECRET',
  proposals: ['aes128-sha256-x25519'],
  dpdDelay: '2s',
  children: [
    {
      name: 'h2-net',
      localTs: ['10.1.0.0/24'],
      remoteTs: ['10.2.0.0/24'],
      espProposals: ['aes128-sha256'],
      dpdAction: 'restart',
    },
  ],
};

describe('e2e harness: two charons, IKEv2 PSK, kernel-libipsec', () => {
  let lab: Lab;
  let a: Netns;
  let b: Netns;
  let lanA: ProtectedSubnet;
  let lanB: ProtectedSubnet;
  let left: Charon;
  let right: Charon;
  let capture: Capture;
  const context = () => `${left?.logTail(40) ?? ''}\n${right?.logTail(40) ?? ''}`;

  beforeAll(async () => {
    lab = await Lab.create({ label: 'selftest' });
    ({ a, b, lanA, lanB } = await pairTopology(lab));
    const retransmit = { timeout: 1, base: 1.4, tries: 2 };
    [left, right] = await Promise.all([
      Charon.start(a, 'left', { logLevels: { ike: 4, knl: 1 }, retransmit }),
      Charon.start(b, 'right', { retransmit }),
    ]);
    await left.loadConns([CONN]);
    await right.loadConns([mirrorConn(CONN)]);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it('links work and the protected subnets are not reachable before the tunnel', async () => {
    for (const [ns, dst] of [
      [a, '198.51.100.2'],
      [a, 'fd00:1::2'],
      [lanA.host, '10.1.0.1'],
    ] as const) {
      const r = await ping(ns, dst, { count: 1 });
      expect(r.received, r.output).toBe(1);
    }
    await expectNoPing(lanA.host, lanB.hostAddr, { count: 1 });
  });

  it('establishes IKE + CHILD SA, SPIs match, ping crosses, tshark decrypts the capture', async () => {
    capture = await Capture.start(a, 'wan0');
    const t0 = Date.now();
    await left.initiate('h2-net', 'h2');
    const initMs = Date.now() - t0;
    const l = await left.waitChild('h2', 'h2-net');
    const r = await right.waitChild('h2', 'h2-net');
    expect(l.ike.initiatorSpi).toBe(r.ike.initiatorSpi);
    expect(l.ike.responderSpi).toBe(r.ike.responderSpi);
    expect(l.ike.initiator).toBe(true);
    expect(r.ike.initiator).toBe(false);
    expect(l.child.spiIn).toMatch(/^[0-9a-f]{8}$/);
    expect(l.child.spiIn).toBe(r.child.spiOut);
    expect(l.child.spiOut).toBe(r.child.spiIn);
    expect(l.child.encap).toBe(true); // libipsec forces UDP encapsulation
    expect(l.child.localTs).toEqual(['10.1.0.0/24']);
    expect(r.child.localTs).toEqual(['10.2.0.0/24']);

    const pingMs = await waitPing(lanA.host, lanB.hostAddr, { context });
    const p = await ping(lanA.host, lanB.hostAddr, { count: 5, intervalS: 0.05 });
    expect(p.received, p.output).toBe(5);
    const after = await left.waitChild('h2', 'h2-net');
    expect(after.child.packetsOut).toBeGreaterThanOrEqual(5);
    console.log(`[harness] initiate ${initMs} ms (swanctl round trip), first ping after ${pingMs} ms`);

    const pcap = await capture.stop();
    const keys = ikev2KeysFromLog(left.logText()).find((k) => k.uniqueid === l.ike.uniqueid);
    expect(keys, `no Sk_* keys for IKE SA ${l.ike.uniqueid} in the left log\n${left.logTail()}`).toBeDefined();
    const raw = l.ike.raw;
    const table = ikev2UatLine({
      spiI: l.ike.initiatorSpi,
      spiR: l.ike.responderSpi,
      skEi: keys!.skEi,
      skEr: keys!.skEr,
      encr: tsharkIkev2Encr(String(raw['encr-alg']), Number(raw['encr-keysize'])),
      skAi: keys!.skAi,
      skAr: keys!.skAr,
      integ: tsharkIkev2Integ(raw['integ-alg'] as string | undefined),
    });
    const dec = await tsharkDecode(pcap, { ikev2Table: table });
    const report = `${dec.summary.join('\n')}\n${table}`;
    expect(dec.frames, report).toBeGreaterThanOrEqual(4);
    expect(dec.malformed, report).toEqual([]);
    expect(dec.summary.filter((s) => /IKE_SA_INIT/.test(s)).length, report).toBe(2);
    expect(dec.summary.filter((s) => /IKE_AUTH/.test(s)).length, report).toBe(2);
    // Both IKE_AUTH messages decrypt and their integrity checksums verify.
    expect(dec.integrityIncorrect, report).toBe(0);
    expect(dec.integrityCorrect, report).toBeGreaterThanOrEqual(2);
    expect(dec.text).toMatch(/Identification - Initiator[\s\S]*left\.harness\.test/);
    // ESP-in-UDP (the pings) is in the capture too.
    expect(
      dec.summary.some((s) => /ESP/.test(s)),
      report,
    ).toBe(true);
  });

  it('faults: partition and 100% loss stop traffic; heal restores it', async () => {
    const stream = await UdpStream.start({ from: lanA.host, to: lanB.host, dst: lanB.hostAddr, intervalMs: 10 });
    await stream.waitFlowing(5);
    const cut = await partition(a, { peer: '198.51.100.2' });
    await sleep(300);
    const during = stream.receivedCount();
    await sleep(300);
    expect(stream.receivedCount() - during, 'packets got through a partition').toBe(0);
    await cut.heal();
    await stream.waitFlowing(5, 3000);
    const loss = await randomLoss(b, 100, { udpPorts: [4500] });
    await sleep(300);
    const during2 = stream.receivedCount();
    await sleep(300);
    expect(stream.receivedCount() - during2, 'packets got through 100% loss').toBe(0);
    await loss.heal();
    await stream.waitFlowing(5, 3000);
    const s = await stream.stop();
    console.log(`[harness] faults: ${stream.describe(s)}`);
    expect(s.lost).toBeGreaterThan(30);
    expect(s.longestGapMs).toBeGreaterThanOrEqual(500);
  });

  it('a UDP stream survives a SIGKILL + restart of one charon; the outage is measured', async () => {
    const stream = await UdpStream.start({ from: lanA.host, to: lanB.host, dst: lanB.hostAddr, intervalMs: 10 });
    await stream.waitFlowing(10);
    const killedAt = Date.now();
    right.kill('SIGKILL');
    await right.proc!.wait(5000);
    const restartT0 = Date.now();
    await right.restart();
    const restartMs = Date.now() - restartT0;
    // The restarted responder initiates (as with start_action=start), sending INITIAL_CONTACT.
    await right.initiate('h2-net', 'h2');
    await stream.waitFlowing(20, 15_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${context()}`);
    });
    const s = await stream.stop();
    const recovered = s.gapStartMs + s.longestGapMs - killedAt;
    console.log(
      `[harness] SIGKILL+restart of right charon: charon restart ${restartMs} ms (vici ready ${right.lastStartMs} ms); ` +
        `${stream.describe(s)}; traffic back ${Math.round(recovered)} ms after the kill`,
    );
    expect(s.lost).toBeGreaterThan(0);
    expect(s.longestGapMs).toBeGreaterThan(s.intervalMs);
    expect(s.longestGapMs).toBeLessThan(15_000);
    // A's old IKE SA was replaced: exactly one established IKE SA with an installed child remains.
    const sas = (await left.listSas()).filter((x) => x.state === 'ESTABLISHED');
    expect(sas.length, JSON.stringify(sas, null, 1)).toBe(1);
    expect(sas[0]!.initiator).toBe(false);
  });
  it('survivor-driven recovery: DPD timeout + dpd_action=restart after the peer restarts silently', async () => {
    const stream = await UdpStream.start({ from: lanA.host, to: lanB.host, dst: lanB.hostAddr, intervalMs: 20 });
    await stream.waitFlowing(10);
    const killedAt = Date.now();
    right.kill('SIGKILL');
    await right.proc!.wait(5000);
    await sleep(1000);
    await right.restart(); // loads its conns but does not initiate
    // left: dpd_delay 2 s, retransmits 1 s * 1.4^n, 2 tries: dead after ~2 + 1 + 1.4 + 2 s.
    await stream.waitFlowing(20, 25_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${context()}`);
    });
    const s = await stream.stop();
    console.log(
      `[harness] SIGKILL, restart after 1 s, survivor DPD restart: ${stream.describe(s)}; ` +
        `traffic back ${Math.round(s.gapStartMs + s.longestGapMs - killedAt)} ms after the kill`,
    );
    expect(s.longestGapMs).toBeGreaterThan(3000);
    expect(s.longestGapMs).toBeLessThan(20_000);
    const sas = (await left.listSas()).filter((x) => x.state === 'ESTABLISHED');
    expect(sas.length, JSON.stringify(sas, null, 1)).toBe(1);
    expect(sas[0]!.initiator).toBe(true);
  }, 40_000);
  it('rekey: a CHILD_SA rekey yields new SPIs that still match on both sides', async () => {
    const before = await left.waitChild('h2', 'h2-net');
    await left.rekey({ child: 'h2-net' });
    const after = await waitFor(
      'rekeyed CHILD_SA on both sides',
      async () => {
        const l = await left.waitChild('h2', 'h2-net');
        const r = await right.waitChild('h2', 'h2-net');
        return l.child.spiIn !== before.child.spiIn && l.child.spiIn === r.child.spiOut && { l, r };
      },
      { context },
    );
    expect(after.l.child.spiOut).toBe(after.r.child.spiIn);
    await waitPing(lanA.host, lanB.hostAddr, { context });
  });

  it('IKEv1 Main Mode PSK (IDs = addresses) with terminate of the IKEv2 SA', async () => {
    await left.terminate('h2');
    const v1: ConnSpec = {
      ...CONN,
      name: 'h1',
      version: 1,
      localId: undefined,
      remoteId: undefined,
      proposals: ['aes128-sha256-modp2048'],
      dpdDelay: undefined,
      children: [{ ...CONN.children[0]!, name: 'h1-net', espProposals: ['aes128-sha256'], dpdAction: undefined }],
    };
    await left.loadConns([CONN, v1]);
    await right.loadConns([mirrorConn(CONN), mirrorConn(v1)]);
    expect(await left.listSas()).toEqual([]);
    await left.initiate('h1-net', 'h1');
    const l = await left.waitChild('h1', 'h1-net');
    const r = await right.waitChild('h1', 'h1-net');
    expect(l.ike.version).toBe(1);
    expect(l.ike.remoteId).toBe('198.51.100.2');
    expect(l.child.spiIn).toBe(r.child.spiOut);
    await waitPing(lanA.host, lanB.hostAddr, { context });
  });
});

describe('e2e harness: NAT topology (A behind masquerade) with charon NAT-T', () => {
  let lab: Lab;
  let nat: NatTopology;
  let left: Charon;
  let right: Charon;
  let lanA: ProtectedSubnet;
  let lanB: ProtectedSubnet;

  beforeAll(async () => {
    lab = await Lab.create({ label: 'nat' });
    nat = await natTopology(lab);
    lanA = await lab.protectedSubnet(nat.a, { gateway: '10.1.0.1/24', host: '10.1.0.2/24' });
    lanB = await lab.protectedSubnet(nat.b, { gateway: '10.2.0.1/24', host: '10.2.0.2/24' });
    [left, right] = await Promise.all([Charon.start(nat.a, 'left'), Charon.start(nat.b, 'right')]);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it('B sees A only as the router address; charon detects NAT and the tunnel carries traffic', async () => {
    const r = await ping(nat.a, nat.bAddr, { count: 1 });
    expect(r.received, r.output).toBe(1);
    // B has no route back to A's private network.
    expect((await ping(nat.b, nat.aAddr, { count: 1, deadlineS: 1 })).received).toBe(0);
    const conn: ConnSpec = {
      ...CONN,
      name: 'nat',
      localAddrs: [nat.aAddr],
      remoteAddrs: [nat.bAddr],
      children: [{ ...CONN.children[0]!, name: 'nat-net' }],
    };
    await left.loadConns([conn]);
    await right.loadConns([mirrorConn(conn, { localAddrs: [nat.bAddr], remoteAddrs: ['%any'] })]);
    const capture = await Capture.start(nat.b, nat.bIf);
    await left.initiate('nat-net', 'nat');
    const l = await left.waitChild('nat', 'nat-net');
    const rr = await right.waitChild('nat', 'nat-net');
    expect(rr.ike.remoteHost).toBe(nat.routerWanAddr);
    expect(l.ike.natLocal).toBe(true);
    expect(rr.ike.natRemote).toBe(true);
    expect(l.child.spiIn).toBe(rr.child.spiOut);
    await waitPing(lanA.host, lanB.hostAddr, { context: () => `${left.logTail(30)}\n${right.logTail(30)}` });
    const dec = await tsharkDecode(await capture.stop());
    expect(dec.malformed, dec.summary.join('\n')).toEqual([]);
    // IKE_SA_INIT on 500 from the router's address, then everything on 4500.
    expect(dec.summary.some((s) => s.includes(`${nat.routerWanAddr} → ${nat.bAddr}`) && /IKE_SA_INIT/.test(s))).toBe(
      true,
    );
    expect(dec.text).toMatch(/UDP Encapsulation of IPsec Packets|Non-ESP Marker/);
  });
});

describe('e2e harness: failure reporting, random loss, stale namespace reaping', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.create({ label: 'misc' });
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it('random loss drops roughly the requested share of packets', async () => {
    const x = await lab.netns('x');
    const y = await lab.netns('y');
    await lab.link(x, y, { a: ['192.0.2.1/24'], b: ['192.0.2.2/24'] });
    const stream = await UdpStream.start({ from: x, to: y, dst: '192.0.2.2', intervalMs: 4 });
    await stream.waitFlowing(5);
    const loss = await randomLoss(y, 30, { direction: 'in' });
    await sleep(1200);
    await loss.heal();
    await stream.waitFlowing(5);
    const s = await stream.stop();
    console.log(`[harness] 30% random loss: ${stream.describe(s)}`);
    // ~300 datagrams during the loss window: 30% of them is ~90 (binomial sd ~8).
    expect(s.lost).toBeGreaterThan(40);
    expect(s.lost).toBeLessThan(160);
  });

  it('a bad swanctl.conf and a charon that cannot start fail with the relevant output', async () => {
    const ns = await lab.netns('bad');
    const c = await Charon.start(ns, 'bad');
    // swanctl itself exits 0 for both of these; the harness must not.
    await expect(c.loadConns('connections {\n  broken {\n    version = 2\n\n}\n')).rejects.toThrow(
      /charon bad reported errors[\s\S]*syntax error[\s\S]*swanctl.conf/,
    );
    await expect(c.loadConns([{ ...CONN, proposals: ['no-such-cipher'], psk: undefined }])).rejects.toThrow(
      /invalid value for: proposals[\s\S]*proposals = no-such-cipher[\s\S]*charon bad log/,
    );
    await expect(Charon.start(ns, 'noplugin', { plugins: ['no-such-plugin'], startTimeoutMs: 3000 })).rejects.toThrow(
      /charon noplugin[\s\S]*(exited|timed out)[\s\S]*(plugin|log)/,
    );
  });

  it('reaps namespaces left behind by a dead test process', async () => {
    // pid 2^22+1 is above pid_max's default ceiling: never alive.
    const name = `${NS_PREFIX}4194305-dead-x`;
    await run(['ip', 'netns', 'add', name]);
    const reaped = await reapStale();
    expect(reaped).toContain(name);
    expect((await run(['ip', 'netns', 'list'])).stdout).not.toContain(name);
    // Our own namespaces are alive and untouched.
    expect((await run(['ip', 'netns', 'list'])).stdout).toContain(lab.id);
  });
});
