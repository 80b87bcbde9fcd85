/** The logger as an event-bus subscriber: one line per event, at a level that fits it. */
import type { CoatiEvent, EventBus } from './events.js';
import type { Logger, LogLevel } from './log.js';

interface Line {
  level: LogLevel;
  subsystem: string;
  msg: string;
  bind?: Record<string, unknown>;
  fields?: Record<string, unknown>;
}

export function describeEvent(ev: CoatiEvent): Line {
  switch (ev.type) {
    case 'ike.state':
      return {
        level: ev.to === 'ESTABLISHED' ? 'info' : 'debug',
        subsystem: 'ike',
        msg: `IKE SA ${ev.from} -> ${ev.to}`,
        bind: { peer: ev.peer, sa: `${ev.spiI}/${ev.spiR}` },
        fields: { reason: ev.reason },
      };
    case 'child.state':
      return {
        level: ev.to === 'INSTALLED' ? 'info' : 'debug',
        subsystem: 'child',
        msg: `Child SA ${ev.child} ${ev.from} -> ${ev.to}`,
        bind: { peer: ev.peer, sa: `${ev.spiIn}/${ev.spiOut}` },
      };
    case 'handshake.completed':
      return {
        level: 'info',
        subsystem: 'ike',
        msg: `IKE SA established (IKEv${ev.version} ${ev.role})`,
        bind: { peer: ev.peer },
        fields: { latency_ms: ev.latencyMs },
      };
    case 'handshake.failed':
      return {
        level: 'warn',
        subsystem: 'ike',
        msg: `IKEv${ev.version} handshake failed: ${ev.reason}`,
        bind: { peer: ev.peer },
        fields: { detail: ev.detail },
      };
    case 'liveness.sent':
      return { level: 'debug', subsystem: 'ike', msg: 'liveness check sent', bind: { peer: ev.peer } };
    case 'liveness.dead':
      return {
        level: 'warn',
        subsystem: 'ike',
        msg: `peer dead: silent for ${ev.silentMs} ms`,
        bind: { peer: ev.peer },
      };
    case 'rekey.started':
      return {
        level: 'info',
        subsystem: 'ike',
        msg: `${ev.kind === 'ike' ? 'IKE' : 'Child'} SA rekey started`,
        bind: { peer: ev.peer },
      };
    case 'rekey.completed':
      return {
        level: 'info',
        subsystem: 'ike',
        msg: `${ev.kind === 'ike' ? 'IKE' : 'Child'} SA rekeyed`,
        bind: { peer: ev.peer },
      };
    case 'rekey.failed':
      return {
        level: 'warn',
        subsystem: 'ike',
        msg: `${ev.kind === 'ike' ? 'IKE' : 'Child'} SA rekey failed (${ev.code}): ${ev.reason}`,
        bind: { peer: ev.peer },
      };
    case 'retransmit':
      return {
        level: ev.attempt >= 3 ? 'info' : 'debug',
        subsystem: 'ike',
        msg: `retransmit ${ev.exchange} request #${ev.attempt}`,
        bind: { peer: ev.peer },
      };
    case 'cookie.sent':
      return { level: 'debug', subsystem: 'net', msg: 'COOKIE sent (half-open limit)', fields: { addr: ev.addr } };
    case 'kernel.error':
      return {
        level: 'error',
        subsystem: 'kernel',
        msg: `kernel ${ev.op} failed: ${ev.code}`,
        fields: { detail: ev.detail },
      };
    case 'peer.up':
      return { level: 'notice', subsystem: 'ike', msg: `peer up: ${ev.reason}`, bind: { peer: ev.peer } };
    case 'peer.down':
      return { level: 'notice', subsystem: 'ike', msg: `peer down: ${ev.reason}`, bind: { peer: ev.peer } };
    case 'packet.dropped':
      return { level: 'debug', subsystem: 'net', msg: `packet dropped: ${ev.reason}`, fields: { from: ev.from } };
    case 'config.reloaded':
      return {
        level: 'notice',
        subsystem: 'config',
        msg: `configuration reloaded: ${ev.added.length} added, ${ev.removed.length} removed, ${ev.changed.length} changed`,
        fields: ev.restartNeeded.length > 0 ? { restart_needed: ev.restartNeeded.join(',') } : {},
      };
  }
}

/** Logs every bus event; returns the unsubscribe function. */
export function attachLogger(bus: EventBus, logger: Logger): () => void {
  return bus.onAny((ev) => {
    const line = describeEvent(ev);
    const l = logger.child({ subsystem: line.subsystem, ...(line.bind ?? {}) });
    if (!l.enabled(line.level)) return;
    l.log(line.level, line.msg, { event: ev.type, ...(line.fields ?? {}) });
  });
}
