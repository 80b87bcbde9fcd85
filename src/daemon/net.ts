import type { Endpoint, OutboundDatagram } from '../ikev2/env.js';
import { IkeUdpSocket } from '../net/udp-socket.js';
import { ipFamily } from '../util/ip.js';

/** Receives one IKE message (marker stripped) with its endpoints. */
export type IkeReceiver = (data: Buffer, from: Endpoint, to: Endpoint) => void;

export interface IkeSocketsOptions {
  /** Addresses to listen on ("0.0.0.0", "::" or specific ones). */
  listen: string[];
  port: number;
  nattPort: number;
  /** Per-socket IPsec bypass policies (needs CAP_NET_ADMIN; off with the memory backend). */
  bypass: boolean;
  netns?: string;
  ikev2: IkeReceiver;
  ikev1?: IkeReceiver;
  onDrop?: (reason: string, from: Endpoint) => void;
}

const MARKER = Buffer.alloc(4);

/**
 * The UDP side of IKE: a plain socket on the IKE port and a UDP_ENCAP socket
 * on the NAT-T port per listen address. Port 4500 traffic carries the 4-byte
 * non-ESP marker (RFC 3948), added and stripped here; NAT-T keepalives are
 * absorbed; ISAKMP version 1 and 2 are routed to their engines.
 */
export class IkeSockets {
  private readonly sockets: { family: 4 | 6; port: number; sock: IkeUdpSocket }[] = [];

  constructor(private readonly opts: IkeSocketsOptions) {}

  open(): void {
    for (const addr of this.opts.listen) {
      const family = ipFamily(addr);
      if (!family) throw new Error(`listen address "${addr}" is not an IP address`);
      for (const port of [this.opts.port, this.opts.nattPort]) {
        const natt = port === this.opts.nattPort;
        const sock = IkeUdpSocket.open({
          family,
          port,
          bindAddress: addr,
          encap: natt,
          bypass: this.opts.bypass,
          ...(this.opts.netns ? { netns: this.opts.netns } : {}),
          onMessage: (d) =>
            this.onMessage(d.payload, { addr: d.remoteAddr, port: d.remotePort }, { addr: d.localAddr, port }, natt),
        });
        this.sockets.push({ family, port, sock });
      }
    }
  }

  private onMessage(payload: Buffer, from: Endpoint, to: Endpoint, natt: boolean): void {
    let data = payload;
    if (natt) {
      if (payload.length === 1 && payload[0] === 0xff) return; // NAT-T keepalive
      if (payload.length < 4 || !payload.subarray(0, 4).equals(MARKER)) {
        this.opts.onDrop?.('ESP on the NAT-T port that the kernel did not decapsulate', from);
        return;
      }
      data = payload.subarray(4);
    }
    if (data.length < 28) {
      this.opts.onDrop?.(`datagram of ${data.length} bytes is shorter than an IKE header`, from);
      return;
    }
    const major = (data[17] ?? 0) >> 4;
    if (major === 2) this.opts.ikev2(data, from, to);
    else if (major === 1 && this.opts.ikev1) this.opts.ikev1(data, from, to);
    else this.opts.onDrop?.(`IKE major version ${major}`, from);
  }

  send(d: OutboundDatagram): void {
    const family = ipFamily(d.remote.addr);
    const natt = d.local.port === this.opts.nattPort || d.local.port === 4500;
    const port = natt ? this.opts.nattPort : this.opts.port;
    const s =
      this.sockets.find((x) => x.family === family && x.port === port) ?? this.sockets.find((x) => x.family === family);
    if (!s) return;
    const keepalive = d.data.length === 1 && d.data[0] === 0xff;
    const payload = natt && !keepalive ? Buffer.concat([MARKER, d.data]) : d.data;
    const unspecified = d.local.addr === '0.0.0.0' || d.local.addr === '::';
    try {
      s.sock.send(payload, d.remote.addr, d.remote.port, unspecified ? undefined : d.local.addr);
    } catch (err) {
      this.opts.onDrop?.(`send failed: ${(err as Error).message}`, d.remote);
    }
  }

  close(): void {
    for (const s of this.sockets.splice(0)) s.sock.close();
  }
}

/** The local address the kernel would pick towards `remote` (a connected UDP socket's name). */
export async function routeSource(remote: string): Promise<string> {
  const { createSocket } = await import('node:dgram');
  const family = ipFamily(remote) === 6 ? 'udp6' : 'udp4';
  const s = createSocket(family);
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.connect(9, remote, () => resolve());
    });
    return s.address().address;
  } finally {
    s.close();
  }
}
