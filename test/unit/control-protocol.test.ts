import { describe, expect, it } from 'vitest';
import {
  encodeLine,
  LineSplitter,
  MAX_PEER_NAME,
  parseEventLine,
  parseHello,
  parseRequestLine,
  parseResponse,
} from '../../src/control/protocol.js';

const line = (s: string | Buffer) => parseRequestLine(typeof s === 'string' ? Buffer.from(s) : s);
const req = (o: unknown) => line(JSON.stringify(o));

describe('control protocol: request validation', () => {
  const rejects: [string, Buffer | string, string, RegExp, number | null][] = [
    ['malformed JSON', '{"id":1,', 'BAD_REQUEST', /malformed JSON/, null],
    ['binary garbage', Buffer.from([0xff, 0xfe, 0x00, 0x9c, 0x80]), 'BAD_REQUEST', /not valid UTF-8/, null],
    ['valid UTF-8 garbage', '\u0000\u0001garbage', 'BAD_REQUEST', /malformed JSON/, null],
    ['array', '[1,2]', 'BAD_REQUEST', /must be a JSON object, got array/, null],
    ['string', '"status"', 'BAD_REQUEST', /got string/, null],
    ['null', 'null', 'BAD_REQUEST', /got null/, null],
    ['missing id', '{"v":1,"cmd":"status"}', 'BAD_REQUEST', /missing "id"/, null],
    ['string id', '{"id":"1","v":1,"cmd":"status"}', 'BAD_REQUEST', /"id" must be a non-negative integer/, null],
    ['fractional id', '{"id":1.5,"v":1,"cmd":"status"}', 'BAD_REQUEST', /"id"/, null],
    ['negative id', '{"id":-1,"v":1,"cmd":"status"}', 'BAD_REQUEST', /"id"/, null],
    ['missing v', '{"id":3,"cmd":"status"}', 'BAD_REQUEST', /missing "v"/, 3],
    ['string v', '{"id":3,"v":"1","cmd":"status"}', 'BAD_REQUEST', /"v" must be an integer/, 3],
    ['version 2', '{"id":3,"v":2,"cmd":"status"}', 'UNSUPPORTED_VERSION', /version 2 is not supported/, 3],
    ['unknown top-level key', '{"id":3,"v":1,"cmd":"status","x":1}', 'BAD_REQUEST', /unknown argument "x"/, 3],
    ['unknown command', '{"id":4,"v":1,"cmd":"reboot"}', 'UNKNOWN_COMMAND', /unknown command "reboot"/, 4],
    ['prototype command', '{"id":4,"v":1,"cmd":"toString"}', 'UNKNOWN_COMMAND', /toString/, 4],
    ['numeric cmd', '{"id":4,"v":1,"cmd":7}', 'BAD_REQUEST', /"cmd" must be a string/, 4],
    ['args array', '{"id":5,"v":1,"cmd":"status","args":[]}', 'BAD_REQUEST', /"args" must be an object, got array/, 5],
    [
      'status peer number',
      '{"id":5,"v":1,"cmd":"status","args":{"peer":7}}',
      'BAD_REQUEST',
      /"peer" must be a string, got number/,
      5,
    ],
    ['status empty peer', '{"id":5,"v":1,"cmd":"status","args":{"peer":""}}', 'BAD_REQUEST', /must not be empty/, 5],
    [
      'status control chars',
      '{"id":5,"v":1,"cmd":"status","args":{"peer":"a\\nb"}}',
      'BAD_REQUEST',
      /control characters/,
      5,
    ],
    [
      'status unknown args',
      '{"id":5,"v":1,"cmd":"status","args":{"peer":"a","verbose":1,"x":2}}',
      'BAD_REQUEST',
      /unknown arguments "verbose", "x"; allowed: peer/,
      5,
    ],
    ['initiate no target', '{"id":6,"v":1,"cmd":"initiate","args":{}}', 'BAD_REQUEST', /missing target/, 6],
    ['initiate both', '{"id":6,"v":1,"cmd":"initiate","args":{"peer":"a","all":true}}', 'BAD_REQUEST', /not both/, 6],
    [
      'initiate all false',
      '{"id":6,"v":1,"cmd":"initiate","args":{"all":false}}',
      'BAD_REQUEST',
      /"all" must be true, got false/,
      6,
    ],
    [
      'terminate all string',
      '{"id":6,"v":1,"cmd":"terminate","args":{"all":"yes"}}',
      'BAD_REQUEST',
      /"all" must be true/,
      6,
    ],
    [
      'rekey bad kind',
      '{"id":7,"v":1,"cmd":"rekey","args":{"peer":"a","kind":"esp"}}',
      'BAD_REQUEST',
      /"kind" must be "ike" or "child", got "esp"/,
      7,
    ],
    [
      'dpd unknown arg',
      '{"id":7,"v":1,"cmd":"dpd","args":{"peer":"a","timeout":5}}',
      'BAD_REQUEST',
      /unknown argument "timeout"; allowed: peer, all/,
      7,
    ],
    [
      'reload with args',
      '{"id":8,"v":1,"cmd":"reload","args":{"file":"x"}}',
      'BAD_REQUEST',
      /reload: unknown argument "file"; it takes no arguments/,
      8,
    ],
    ['keylog missing on', '{"id":9,"v":1,"cmd":"keylog","args":{}}', 'BAD_REQUEST', /missing "on"/, 9],
    [
      'keylog string on',
      '{"id":9,"v":1,"cmd":"keylog","args":{"on":"true"}}',
      'BAD_REQUEST',
      /"on" must be a boolean, got string/,
      9,
    ],
    [
      'events with args',
      '{"id":9,"v":1,"cmd":"events","args":{"follow":true}}',
      'BAD_REQUEST',
      /unknown argument "follow"/,
      9,
    ],
  ];
  it.each(rejects)('%s → %s', (_name, input, code, message, id) => {
    const r = line(input);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe(code);
    expect(r.error.message).toMatch(message);
    expect(r.id).toBe(id);
  });

  it('rejects an over-long peer name', () => {
    const r = req({ id: 1, v: 1, cmd: 'status', args: { peer: 'x'.repeat(MAX_PEER_NAME + 1) } });
    expect(r.ok ? 'ok' : r.error.message).toMatch(/longer than 255/);
  });

  const accepts: [string, unknown, unknown][] = [
    ['status without args', { id: 1, v: 1, cmd: 'status' }, { id: 1, cmd: 'status', args: {} }],
    [
      'status one peer',
      { id: 2, v: 1, cmd: 'status', args: { peer: 'db1' } },
      { id: 2, cmd: 'status', args: { peer: 'db1' } },
    ],
    [
      'initiate all',
      { id: 3, v: 1, cmd: 'initiate', args: { all: true } },
      { id: 3, cmd: 'initiate', args: { all: true } },
    ],
    [
      'terminate peer',
      { id: 4, v: 1, cmd: 'terminate', args: { peer: 'a' } },
      { id: 4, cmd: 'terminate', args: { peer: 'a' } },
    ],
    [
      'rekey child',
      { id: 5, v: 1, cmd: 'rekey', args: { peer: 'a', kind: 'child' } },
      { id: 5, cmd: 'rekey', args: { peer: 'a', kind: 'child' } },
    ],
    ['rekey default', { id: 6, v: 1, cmd: 'rekey', args: { all: true } }, { id: 6, cmd: 'rekey', args: { all: true } }],
    ['dpd', { id: 7, v: 1, cmd: 'dpd', args: { peer: 'a' } }, { id: 7, cmd: 'dpd', args: { peer: 'a' } }],
    ['reload', { id: 8, v: 1, cmd: 'reload', args: {} }, { id: 8, cmd: 'reload', args: {} }],
    ['restart', { id: 9, v: 1, cmd: 'restart' }, { id: 9, cmd: 'restart', args: {} }],
    [
      'keylog off',
      { id: 10, v: 1, cmd: 'keylog', args: { on: false } },
      { id: 10, cmd: 'keylog', args: { on: false } },
    ],
    ['events', { id: 0, v: 1, cmd: 'events' }, { id: 0, cmd: 'events', args: {} }],
  ];
  it.each(accepts)('accepts %s', (_name, input, expected) => {
    const r = req(input);
    expect(r).toEqual({ ok: true, request: expected });
  });
});

describe('control protocol: framing and encoding', () => {
  it('splits lines across chunks, strips CR and keeps multi-byte characters intact', () => {
    const s = new LineSplitter(100);
    const bytes = Buffer.from('{"a":"é"}\r\n{"b":1}\n{"c"');
    const r1 = s.push(bytes.subarray(0, 7)); // splits the 2-byte é
    expect(r1.lines).toEqual([]);
    const r2 = s.push(bytes.subarray(7));
    expect(r2.lines.map((b) => b.toString())).toEqual(['{"a":"é"}', '{"b":1}']);
    expect(s.flush()?.toString()).toBe('{"c"');
    expect(s.flush()).toBeUndefined();
  });

  it('reports overflow when a line exceeds the limit, even without a newline', () => {
    const s = new LineSplitter(10);
    expect(s.push(Buffer.from('0123456789\n')).overflow).toBe(false);
    expect(s.push(Buffer.from('01234')).overflow).toBe(false);
    expect(s.push(Buffer.from('567890')).overflow).toBe(true);
    const t = new LineSplitter(10);
    const r = t.push(Buffer.from('ok\n0123456789AB\n'));
    expect(r.lines.map(String)).toEqual(['ok']);
    expect(r.overflow).toBe(true);
  });

  it('encodes bigints as decimal strings', () => {
    expect(encodeLine({ n: 2n ** 64n - 1n })).toBe('{"n":"18446744073709551615"}\n');
  });

  it('parses hello, responses and events strictly', () => {
    expect(parseHello({ coati: 1, host: 'h', versions: [1] })).toEqual({ coati: 1, host: 'h', versions: [1] });
    expect(parseHello({ coati: 2, host: 'h' })).toBeUndefined();
    expect(parseHello({ coati: 1 })).toBeUndefined();
    expect(parseResponse({ id: 1, ok: true, result: { a: 1 } })).toEqual({ id: 1, ok: true, result: { a: 1 } });
    expect(parseResponse({ id: null, ok: false, error: { code: 'X', message: 'm' } })).toMatchObject({ id: null });
    expect(parseResponse({ id: '1', ok: true, result: 1 })).toBeUndefined();
    expect(parseResponse({ id: 1, ok: false, error: { code: 1 } })).toBeUndefined();
    expect(parseEventLine({ event: { type: 'ike.up', time: 't', peer: 'a' } })).toEqual({
      type: 'ike.up',
      time: 't',
      peer: 'a',
    });
    expect(parseEventLine({ event: { type: 1, time: 't' } })).toBeUndefined();
  });
});
