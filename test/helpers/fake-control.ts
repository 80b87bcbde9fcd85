/**
 * In-memory DaemonControl for control-socket and CLI tests: three peers in
 * different states, actions that change them, recorded calls, and an
 * `emit()` to push events to subscribers.
 */
import { ControlError } from '../../src/control/errors.js';
import type {
  ActionResult,
  ControlEvent,
  DaemonControl,
  EventListener,
  PeerStatus,
  ReloadResult,
  StatusReport,
  Target,
} from '../../src/control/types.js';

export const FAKE_NOW = Date.parse('2024-05-01T12:00:00.000Z');
const iso = (offsetSec: number): string => new Date(FAKE_NOW + offsetSec * 1000).toISOString();

export function fakePeers(): PeerStatus[] {
  return [
    {
      name: 'db1',
      address: '10.0.0.2',
      version: 2,
      localId: 'web1.example',
      remoteId: 'db1.example',
      state: 'up',
      natDetected: { local: false, remote: true },
      remotePort: 4500,
      lastInboundAt: iso(-5),
      lastLivenessCheckAt: iso(-60),
      livenessFailures: 0,
      ike: {
        spiI: '0123456789abcdef',
        spiR: 'fedcba9876543210',
        role: 'initiator',
        state: 'established',
        algorithms: 'aes256gcm16/prfsha256/x25519',
        establishedAt: iso(-192),
        rekeyAt: iso(3000),
        expiresAt: iso(3600),
        messageIdOut: 4,
        messageIdIn: 2,
      },
      children: [
        {
          name: 'db1-net',
          state: 'installed',
          spiIn: 'c1000001',
          spiOut: 'c2000001',
          mode: 'transport',
          localTs: ['10.0.0.1/32'],
          remoteTs: ['10.0.0.2/32'],
          algorithms: 'aes256gcm16',
          encap: true,
          rekeyAt: iso(2800),
          expiresAt: iso(3300),
          bytesIn: '18446744073709551615',
          bytesOut: '2048',
          packetsIn: '12',
          packetsOut: '20',
          lastUsedAt: iso(-1),
        },
      ],
    },
    {
      name: 'cache1',
      address: '10.0.0.3',
      version: 1,
      localId: 'web1.example',
      remoteId: 'cache1.example',
      state: 'connecting',
      natDetected: { local: false, remote: false },
      remotePort: 500,
      livenessFailures: 2,
      children: [],
      lastError: { code: 'TIMEOUT', message: 'no response to IKE_SA_INIT after 5 retransmits', at: iso(-30) },
    },
    {
      name: 'mq1',
      address: '10.0.0.4',
      version: 2,
      localId: 'web1.example',
      remoteId: 'mq1.example',
      state: 'trap',
      natDetected: { local: false, remote: false },
      remotePort: 500,
      livenessFailures: 0,
      children: [],
    },
  ];
}

export interface FakeCall {
  method: string;
  args: unknown[];
}

export class FakeControl implements DaemonControl {
  readonly calls: FakeCall[] = [];
  peers: PeerStatus[] = fakePeers();
  private readonly listeners = new Set<EventListener>();
  /** Set to make the next call of that method reject with this error. */
  failNext: Partial<Record<keyof DaemonControl, unknown>> = {};
  reloadResult: ReloadResult = {
    ok: true,
    added: ['new1'],
    removed: [],
    changed: ['db1'],
    unchanged: ['cache1', 'mq1'],
  };

  get subscriberCount(): number {
    return this.listeners.size;
  }

  emit(ev: Omit<ControlEvent, 'time'> & { time?: string }): void {
    const full = { time: new Date(FAKE_NOW).toISOString(), ...ev } as ControlEvent;
    for (const l of this.listeners) l(full);
  }

  private enter(method: keyof DaemonControl, ...args: unknown[]): void {
    this.calls.push({ method, args });
    if (method in this.failNext) {
      const err = this.failNext[method];
      delete this.failNext[method];
      throw err;
    }
  }

  private select(target: Target): PeerStatus[] {
    if ('all' in target) return this.peers;
    const p = this.peers.find((x) => x.name === target.peer);
    if (!p) throw new ControlError('UNKNOWN_PEER', `no peer named ${JSON.stringify(target.peer)}`);
    return [p];
  }

  private act(target: Target, fn: (p: PeerStatus) => { ok: boolean; message?: string }): ActionResult {
    const peers = this.select(target).map((p) => ({ peer: p.name, ...fn(p) }));
    return { ok: peers.every((p) => p.ok), peers };
  }

  /** The paced-initiation budget the status report carries (none: not reported). */
  initiations: StatusReport['initiations'];

  async status(peer?: string): Promise<StatusReport> {
    this.enter('status', peer);
    const peers = peer === undefined ? this.peers : this.select({ peer });
    return {
      host: 'web1',
      localAddresses: ['10.0.0.1'],
      daemonVersion: '0.1.0-test',
      pid: 4242,
      uptimeSec: 3725,
      startedAt: iso(-3725),
      generatedAt: iso(0),
      ...(this.initiations ? { initiations: { ...this.initiations } } : {}),
      peers: structuredClone(peers),
    };
  }

  async initiate(target: Target): Promise<ActionResult> {
    this.enter('initiate', target);
    return this.act(target, (p) => {
      if (p.state === 'up') return { ok: true, message: 'already up' };
      p.state = 'connecting';
      return { ok: true, message: 'initiating' };
    });
  }

  async terminate(target: Target): Promise<ActionResult> {
    this.enter('terminate', target);
    return this.act(target, (p) => {
      p.state = 'down';
      delete p.ike;
      p.children = [];
      return { ok: true, message: 'deleted' };
    });
  }

  async rekey(target: Target, kind: 'ike' | 'child'): Promise<ActionResult> {
    this.enter('rekey', target, kind);
    return this.act(target, (p) =>
      p.state === 'up' ? { ok: true, message: `${kind} rekey started` } : { ok: false, message: `peer is ${p.state}` },
    );
  }

  async dpd(target: Target): Promise<ActionResult> {
    this.enter('dpd', target);
    return this.act(target, (p) =>
      p.state === 'up'
        ? { ok: true, liveness: 'alive', rttMs: 3 }
        : { ok: false, liveness: 'timeout', message: 'no answer in 10s' },
    );
  }

  async reload(): Promise<ReloadResult> {
    this.enter('reload');
    return structuredClone(this.reloadResult);
  }

  async restart(): Promise<ActionResult> {
    this.enter('restart');
    return { ok: true, message: 'restart scheduled, state handed over', peers: [] };
  }

  async keylog(on: boolean): Promise<ActionResult> {
    this.enter('keylog', on);
    return { ok: true, message: `keylog ${on ? 'enabled' : 'disabled'}`, peers: [] };
  }

  subscribe(listener: EventListener): () => void {
    this.calls.push({ method: 'subscribe', args: [] });
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
