import { describe, expect, it } from 'vitest';
import { goldenCaptures, goldenIke, ikeMajorVersion } from '../helpers/golden.js';

describe('golden captures', () => {
  it('every capture yields IKE datagrams with a sane header', () => {
    const names = goldenCaptures();
    expect(names.length).toBeGreaterThanOrEqual(11);
    for (const name of names) {
      const msgs = goldenIke(name);
      if (name === 'basic-libipsec-trap') continue; // libipsec never raises ACQUIRE: empty capture
      expect(msgs.length, name).toBeGreaterThan(0);
      for (const m of msgs) {
        expect([1, 2]).toContain(ikeMajorVersion(m.ike));
        expect(m.ike.readUInt32BE(24), `${name}#${m.index} length`).toBe(m.ike.length);
      }
    }
  });
});
