/**
 * Interop: coati (responder) ↔ strongSwan charon, IKEv1 PSK under short lifetimes set on
 * charon's side: charon re-keys the Quick Mode SA (rekey_time 3 s) and re-authenticates
 * phase 1 (reauth_time 6 s). After each, charon's installed CHILD_SA SPIs and ISAKMP
 * initiator cookie are ones coati keyed (its key log), i.e. coati answered every new
 * Quick Mode and Main Mode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Charon } from '../harness/charon.js';
import { Lab, waitFor } from '../harness/netns.js';
import { pairTopology } from '../harness/topology.js';
import { Coati, keylogDisagreements } from '../helpers/coati-proc.js';

const PSK = 'coati-v1-interop-rekey-NOT-A-SECRET';
const COATI = '198.51.100.1';
const CHARON = '198.51.100.2';

describe('interop coati ↔ charon: IKEv1 rekeys', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await Lab.create({ label: 'coati-v1-rekey' });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('charon re-keys Quick Mode and re-authenticates phase 1; coati answers each, keys agree', async () => {
    const { a, b } = await pairTopology(lab);
    const charon = await Charon.start(b, 'charon', { logLevels: { ike: 2, cfg: 1 } });
    await charon.loadConns([
      {
        name: 'coati',
        version: 1,
        localAddrs: [CHARON],
        remoteAddrs: [COATI],
        localId: 'charon.interop.test',
        remoteId: 'coati.interop.test',
        auth: 'psk',
        psk: PSK,
        proposals: ['aes128-sha256-modp2048'],
        reauthTime: '8s',
        overTime: '4s',
        children: [
          {
            name: 'net',
            localTs: ['10.2.0.0/24'],
            remoteTs: ['10.1.0.0/24'],
            espProposals: ['aes128-sha256-modp2048'],
            rekeyTime: '3s',
            lifeTime: '6s',
          },
        ],
      },
    ]);
    const coati = await Coati.start(a, 'rekey', {
      version: 1,
      listen: [COATI],
      peers: [
        {
          name: 'charon',
          address: CHARON,
          localAddress: COATI,
          localId: 'fqdn:coati.interop.test',
          remoteId: 'fqdn:charon.interop.test',
          psk: PSK,
          ikeProposals: ['aes128-sha256-modp2048'],
          espProposals: ['aes128-sha256-modp2048'],
          pfs: true,
          mode: 'tunnel',
          localTs: ['10.1.0.0/24'],
          remoteTs: ['10.2.0.0/24'],
          dpdAction: 'clear',
        },
      ],
    });
    const context = () => `${coati.logTail(40)}\n${charon.logTail(80)}`;
    await charon.initiate('net', 'coati');
    const first = await charon.waitChild('coati', 'net');
    expect(keylogDisagreements(coati, first.ike, COATI, CHARON), context()).toEqual([]);

    // Quick Mode rekey: a CHILD_SA with new SPIs, keyed by coati.
    const rekeyed = await waitFor(
      'charon to re-key the CHILD_SA',
      async () => {
        const s = await charon.waitChild('coati', 'net').catch(() => undefined);
        return s && s.child.spiIn !== first.child.spiIn ? s : undefined;
      },
      { timeoutMs: 40_000, intervalMs: 200, context },
    );
    expect(keylogDisagreements(coati, rekeyed.ike, COATI, CHARON), context()).toEqual([]);

    // Phase 1 re-authentication: a new ISAKMP SA (new cookies) keyed by coati, with a CHILD_SA.
    const reauthed = await waitFor(
      'charon to re-authenticate phase 1',
      async () => {
        // Any established ISAKMP SA with new cookies and an installed CHILD_SA: charon can list
        // the old SA first while it re-authenticates (every few seconds with these lifetimes).
        for (const ike of await charon.listSas()) {
          if (ike.conn !== 'coati' || ike.state !== 'ESTABLISHED' || ike.initiatorSpi === first.ike.initiatorSpi)
            continue;
          const child = ike.children.find((c) => c.name === 'net' && c.state === 'INSTALLED');
          if (child) return { ike, child };
        }
        return undefined;
      },
      { timeoutMs: 40_000, intervalMs: 200, context },
    );
    expect(keylogDisagreements(coati, reauthed.ike, COATI, CHARON), context()).toEqual([]);
    expect(coati.cookies().length).toBeGreaterThanOrEqual(2);
  }, 120_000);
});
