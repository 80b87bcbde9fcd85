import { describe, expect, test } from 'vitest';
import { Secret } from '../../src/config/index.js';
import { attachLogger, EventBus, Logger, type LoggerOptions } from '../../src/obs/index.js';

function capture(opts: Partial<LoggerOptions> = {}) {
  const lines: string[] = [];
  const log = new Logger({
    format: 'journal',
    level: 'info',
    sink: (l) => lines.push(l),
    now: () => new Date('2024-05-01T12:00:00Z'),
    ...opts,
  });
  return { log, lines };
}

describe('journal format', () => {
  test('severity prefix, subsystem, peer and short SA tag, key=value fields', () => {
    const { log, lines } = capture();
    log.child({ subsystem: 'ike', peer: 'web7', sa: '1a2b3c4d5e6f7081/99aabbccddeeff00' }).info('IKE SA established', {
      latency_ms: 42,
      note: 'two words',
    });
    log.warn('plain');
    expect(lines).toEqual([
      '<6>ike[web7 1a2b..]: IKE SA established latency_ms=42 note="two words"',
      '<4>coati: plain',
    ]);
  });

  test('levels map to syslog severities', () => {
    const { log, lines } = capture({ level: 'debug' });
    log.error('e');
    log.warn('w');
    log.notice('n');
    log.info('i');
    log.debug('d');
    expect(lines.map((l) => l.slice(0, 3))).toEqual(['<3>', '<4>', '<5>', '<6>', '<7>']);
  });
});

test('JSON format keeps the full SA label and structured fields', () => {
  const { log, lines } = capture({ format: 'json' });
  log.child({ subsystem: 'kernel', sa: 'c0ffee01/deadbeef' }).error('add SA failed', { errno: 17, op: 'addSa' });
  expect(JSON.parse(lines[0]!)).toEqual({
    ts: '2024-05-01T12:00:00.000Z',
    level: 'error',
    subsystem: 'kernel',
    sa: 'c0ffee01/deadbeef',
    msg: 'add SA failed',
    errno: 17,
    op: 'addSa',
  });
});

describe('redaction', () => {
  const key = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  test.each(['journal', 'json'] as const)('%s: Buffers print as <N bytes>, secrets as <redacted>', (format) => {
    const { log, lines } = capture({ format });
    const psk = new Secret(Buffer.from('super-secret-psk-bytes'), '/etc/coati/secrets/web7.psk');
    log.info('keys derived', { skd: key, nested: { sk_ei: key, list: [key] }, psk, view: new Uint8Array(key) });
    const out = lines.join('\n');
    expect(out).not.toContain('00112233');
    expect(out).not.toContain('super-secret');
    expect(out).toContain('<16 bytes>');
    expect(out).toContain('<redacted>');
  });

  test('allow-listed fields may print Buffers as hex', () => {
    const { log, lines } = capture({ allowHex: ['nonce'] });
    log.info('nonce', { nonce: Buffer.from([0xab, 0xcd]), skd: Buffer.from([1, 2]) });
    expect(lines).toEqual(['<6>coati: nonce nonce=abcd skd="<2 bytes>"']);
  });

  test('bound fields are redacted too', () => {
    const { log, lines } = capture({ format: 'json' });
    log.child({ subsystem: 'ike', secret: new Secret(Buffer.from('bound-secret-value'), 'inline') }).info('x');
    expect(lines[0]).not.toContain('bound-secret');
    expect(JSON.parse(lines[0]!).secret).toBe('<redacted>');
  });
});

describe('per-subsystem levels', () => {
  test('a subsystem level overrides the default, both ways', () => {
    const { log, lines } = capture({ level: 'info', subsystems: { ike: 'debug', kernel: 'error' } });
    log.child({ subsystem: 'ike' }).debug('ike debug');
    log.child({ subsystem: 'kernel' }).warn('kernel warn');
    log.child({ subsystem: 'kernel' }).error('kernel error');
    log.child({ subsystem: 'net' }).debug('net debug');
    log.child({ subsystem: 'net' }).info('net info');
    expect(lines).toEqual(['<7>ike: ike debug', '<3>kernel: kernel error', '<6>net: net info']);
  });

  test('setLevels on the root applies to existing children (reload)', () => {
    const { log, lines } = capture({ level: 'info' });
    const ike = log.child({ subsystem: 'ike' });
    ike.debug('hidden');
    log.setLevels('warn', { ike: 'debug' });
    ike.debug('shown');
    log.info('hidden too');
    expect(lines).toEqual(['<7>ike: shown']);
  });
});

test('bus events become log lines', () => {
  const { log, lines } = capture({ level: 'debug' });
  const bus = new EventBus();
  attachLogger(bus, log);
  bus.emit({ type: 'handshake.completed', peer: 'web7', version: 2, role: 'initiator', latencyMs: 12 });
  bus.emit({ type: 'kernel.error', op: 'addSa', code: 'EEXIST' });
  bus.emit({
    type: 'ike.state',
    peer: 'web7',
    spiI: 'aabbccdd11223344',
    spiR: '5566778899001122',
    from: 'CONNECTING',
    to: 'ESTABLISHED',
    reason: 'auth ok',
  });
  expect(lines).toEqual([
    '<6>ike[web7]: IKE SA established (IKEv2 initiator) event=handshake.completed latency_ms=12',
    '<3>kernel: kernel addSa failed: EEXIST event=kernel.error',
    '<6>ike[web7 aabb..]: IKE SA CONNECTING -> ESTABLISHED event=ike.state reason="auth ok"',
  ]);
});
