import { ControlError } from '../control/errors.js';
import type { ActionResult, DaemonControl, PeerActionResult, Target } from '../control/types.js';
import type { IsakmpSa } from '../ikev1/isakmp-sa.js';
import type { IkeSa } from '../ikev2/ike-sa.js';
import type { Daemon } from './daemon.js';
import { statusReport } from './status.js';

/** Waits until `cond` holds or `ms` pass (polling; admin commands are rare). */
async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

/** The admin socket's commands, implemented on the daemon's managers. */
export function createControl(d: Daemon): DaemonControl {
  const names = (t: Target): string[] => {
    if ('all' in t) return [...d.manager.peerNames(), ...d.v1.peerNames()].sort();
    if (!d.manager.peer(t.peer) && !d.v1.peer(t.peer)) {
      throw new ControlError('UNKNOWN_PEER', `no peer named "${t.peer}" (see coatictl status)`);
    }
    return [t.peer];
  };
  /** The engine that serves a peer (IKEv1 or IKEv2). */
  const engine = (name: string) => (d.v1.peer(name) ? d.v1 : d.manager);
  const result = (peers: PeerActionResult[], _what: string): ActionResult => ({
    ok: peers.every((p) => p.ok),
    message: `${peers.filter((p) => p.ok).length}/${peers.length} ok`,
    peers,
  });
  const established = (name: string): IkeSa | undefined => d.manager.established(name)[0];
  const establishedV1 = (name: string): IsakmpSa | undefined => d.v1.established(name)[0];
  const isUp = (name: string) => !!(established(name) ?? establishedV1(name));

  return {
    async status(peer) {
      if (peer && !d.manager.peer(peer) && !d.v1.peer(peer))
        throw new ControlError('UNKNOWN_PEER', `no peer named "${peer}"`);
      return statusReport({
        manager: d.manager,
        v1: d.v1,
        kernel: d.kernel,
        localAddresses: d.localAddresses(),
        startedAt: d.startedAt,
        version: '0.1.0',
        initiations: d.initiations(),
        ...(peer ? { peer } : {}),
      });
    },

    async initiate(t) {
      const out: PeerActionResult[] = [];
      await Promise.all(
        names(t).map(async (peer) => {
          if (isUp(peer)) {
            out.push({ peer, ok: true, message: 'already up' });
            return;
          }
          try {
            await engine(peer).initiate(peer);
            const up = await waitFor(() => isUp(peer), 15_000);
            const err = engine(peer).peer(peer)?.lastError;
            out.push({
              peer,
              ok: up,
              message: up ? 'established' : `not established: ${err ? `${err.code}: ${err.message}` : 'timeout'}`,
            });
          } catch (err) {
            out.push({ peer, ok: false, message: (err as Error).message });
          }
        }),
      );
      return result(out, 'initiate');
    },

    async terminate(t) {
      const out: PeerActionResult[] = [];
      for (const peer of names(t)) {
        const n = await engine(peer).terminate(peer);
        out.push({ peer, ok: true, message: n ? `deleted ${n} IKE SA(s)` : 'nothing to delete' });
      }
      return result(out, 'terminate');
    },

    async rekey(t, kind) {
      const out: PeerActionResult[] = [];
      for (const peer of names(t)) {
        const v1 = establishedV1(peer);
        if (v1) {
          if (kind === 'ike') await d.v1.initiate(peer, v1);
          else for (const c of [...v1.children.values()]) await v1.queue.run(async () => v1.rekeyChild?.(c));
          out.push({ peer, ok: true, message: `${kind === 'ike' ? 'phase 1' : 'Quick Mode'} rekey started` });
          continue;
        }
        const sa = established(peer);
        if (!sa) {
          out.push({ peer, ok: false, message: 'not established' });
          continue;
        }
        if (kind === 'ike') await sa.queue.run(() => sa.rekeyIke());
        else for (const c of [...sa.children.values()]) await sa.queue.run(() => sa.rekeyChild(c));
        out.push({ peer, ok: true, message: `${kind === 'ike' ? 'IKE SA' : 'Child SA'} rekey started` });
      }
      return result(out, 'rekey');
    },

    async dpd(t) {
      const out = await Promise.all(
        names(t).map(async (peer): Promise<PeerActionResult> => {
          // IKEv1: one RFC 3706 R-U-THERE round (retransmitted within the DPD timeout).
          const v1 = establishedV1(peer);
          const v2 = v1 ? undefined : established(peer);
          const probe = v1 ? v1.probe : v2 ? () => v2.probe() : undefined;
          if (!probe) return { peer, ok: false, message: 'not established' };
          const t0 = Date.now();
          const r = await probe();
          return r === 'alive'
            ? { peer, ok: true, liveness: 'alive', rttMs: Date.now() - t0 }
            : { peer, ok: false, liveness: 'dead', message: 'no answer within the DPD timeout' };
        }),
      );
      return result(out, 'dpd');
    },

    async reload() {
      return d.reload();
    },

    async restart() {
      // Answer first; the handover and exit follow on the next tick.
      setTimeout(() => void d.restart(), 20);
      return {
        ok: true,
        message: 'handing over state and restarting (exit 75; systemd starts the new process)',
        peers: [],
      };
    },

    async keylog(on) {
      const dir = d.setKeylog(on);
      return { ok: true, message: on ? `key log on: ${dir}` : 'key log off', peers: [] };
    },

    subscribe(listener) {
      return d.subscribe(listener);
    },
  };
}
