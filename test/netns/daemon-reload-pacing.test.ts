/**
 * A reload that adds (or changes) many peers starts their negotiations paced as at
 * start-up: at most `startup.max_concurrent_initiations` in flight. A change of the mesh
 * defaults changes every peer on every host at once; before, each reload started all of
 * them in the same instant.
 *
 * Start-up of both engines and the reload draw on one budget: a reload during start-up,
 * or IKEv1 and IKEv2 peers together, do not each get a cap of their own (they did: up to
 * three times the cap in flight).
 *
 * One in-process daemon (socket in a harness namespace, memory kernel); the added peers'
 * addresses answer nothing, so every initiation stays in flight (its first message
 * retransmits).
 */
import { describe, expect, it } from 'vitest';
import { waitFor } from '../harness/netns.js';
import { pairTopology } from '../harness/topology.js';
import { useInprocLab, writeNode, writePeer } from '../helpers/inproc-daemon.js';

const ADDED = 12;
const MAX = 3;

/** The most initiations in flight over 2 s, from the first one on. */
async function mostInFlight(inFlight: () => number, logs: readonly string[]): Promise<number> {
  await waitFor('the first initiations', async () => inFlight() > 0 || undefined, {
    timeoutMs: 5000,
    intervalMs: 20,
    context: () => logs.slice(-20).join(''),
  });
  let most = 0;
  for (let t = 0; t < 2000; t += 20) {
    most = Math.max(most, inFlight());
    await new Promise((res) => setTimeout(res, 20));
  }
  return most;
}

describe('reload: many peers added at once', () => {
  const { lab: labOf, start } = useInprocLab('reload-pacing');

  it(`initiates to them at most ${MAX} at a time`, async () => {
    const { a, aAddr, bAddr } = await pairTopology(labOf());
    const dir = labOf().subdir('a');
    const logs: string[] = [];
    const da = await start(writeNode(dir, aAddr, 'b', bAddr, 'none', 2, `max_concurrent_initiations = ${MAX}`), {
      netns: a.name,
      logs,
    });
    const names = Array.from({ length: ADDED }, (_, i) => `p${i}`);
    for (const [i, n] of names.entries()) writePeer(dir, n, `198.51.100.${100 + i}`, 2, 'start = "now"\n');
    const r = await da.reload();
    expect(r).toMatchObject({ ok: true, added: [...names].sort() });
    const inFlight = () => names.filter((n) => da.manager.connecting(n).length > 0).length;
    const most = await mostInFlight(inFlight, logs);
    // Unanswered, each holds its slot (until its second retransmission, 5.6 s): exactly MAX
    // in flight, the others wait their turn.
    expect(most).toBe(MAX);
    expect(inFlight()).toBe(MAX);
    // At their second retransmission the first MAX give their slots up and go on without:
    // the next MAX start (before, each unanswered peer held its slot for about 75 s).
    await waitFor(
      "the next initiations, past the first ones' slot hold",
      async () => inFlight() >= 2 * MAX || undefined,
      {
        timeoutMs: 8000,
        intervalMs: 50,
        context: () => `${inFlight()} in flight\n${logs.slice(-20).join('')}`,
      },
    );
    expect(da.initiations()).toMatchObject({ inFlight: MAX });
  }, 30_000);
});

describe('reload during start-up', () => {
  const { lab: labOf, start } = useInprocLab('reload-pacing-shared');

  it(`shares the ${MAX} with start-up of IKEv1 and IKEv2 peers`, async () => {
    const { a, aAddr, bAddr } = await pairTopology(labOf());
    const dir = labOf().subdir('shared');
    const logs: string[] = [];
    const conf = writeNode(dir, aAddr, 'b', bAddr, 'none', 2, `max_concurrent_initiations = ${MAX}`);
    const v1 = Array.from({ length: 4 }, (_, i) => `v1p${i}`);
    const v2 = Array.from({ length: 4 }, (_, i) => `v2p${i}`);
    for (const [i, n] of v1.entries()) writePeer(dir, n, `198.51.100.${60 + i}`, 1, 'start = "now"\n');
    for (const [i, n] of v2.entries()) writePeer(dir, n, `198.51.100.${70 + i}`, 2, 'start = "now"\n');
    const da = await start(conf, { netns: a.name, logs });
    const added = Array.from({ length: 6 }, (_, i) => `r${i}`);
    for (const [i, n] of added.entries()) writePeer(dir, n, `198.51.100.${80 + i}`, 2, 'start = "now"\n');
    expect(await da.reload()).toMatchObject({ ok: true, added: [...added].sort() });
    const inFlight = () =>
      v1.filter((n) => da.v1.connecting(n).length > 0).length +
      [...v2, ...added].filter((n) => da.manager.connecting(n).length > 0).length;
    const most = await mostInFlight(inFlight, logs);
    // One budget for IKEv1 start-up, IKEv2 start-up and the reload: MAX in flight, not 3 x MAX.
    expect(most).toBe(MAX);
    expect(inFlight()).toBe(MAX);
    // What status and metrics report: 8 start-up + 6 reload initiations, MAX of them in flight.
    expect(da.initiations()).toEqual({ queued: 14 - MAX, inFlight: MAX, maxConcurrent: MAX });
    const report = await da.controlApi().status();
    expect(report.initiations).toEqual({ queued: 14 - MAX, inFlight: MAX, maxConcurrent: MAX });
  }, 30_000);
});
