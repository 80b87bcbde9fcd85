/**
 * The IKE UDP socket (500, or 4500 with ESP-in-UDP decapsulation) over the
 * native addon: wildcard-bound sockets learn each datagram's local address
 * (pktinfo) and can answer from it; IKE traffic bypasses IPsec policies.
 */
import { CoatiError } from '../errors.js';
import { isNativeSystemError, loadNative, type NativeUdpSocket } from '../native.js';

export interface UdpDatagram {
  payload: Buffer;
  remoteAddr: string;
  remotePort: number;
  /** Address the datagram was sent to (from IP_PKTINFO / IPV6_PKTINFO). */
  localAddr: string;
  /** Interface it arrived on. */
  ifindex: number;
}

export interface IkeUdpSocketOptions {
  family: 4 | 6;
  /** 0 picks a free port; see `localPort`. */
  port: number;
  /** Default: the wildcard address of the family. */
  bindAddress?: string;
  /** Port-4500 socket: the kernel decapsulates ESP-in-UDP (UDP_ENCAP_ESPINUDP). */
  encap?: boolean;
  /** Per-socket IPsec bypass policy; default true. */
  bypass?: boolean;
  /** Receive buffer in bytes (default 4 MiB; SO_RCVBUFFORCE, else capped by rmem_max). */
  rcvbuf?: number;
  /** Network namespace (name under /run/netns, or a path) to create the socket in. */
  netns?: string;
  onMessage: (d: UdpDatagram) => void;
  /** Non-fatal socket conditions (receive errors, truncated datagrams). */
  onError?: (err: CoatiError) => void;
}

/** CoatiError for a failed socket call; the native errno/code/syscall are in `cause`. */
export function udpError(op: string, err: unknown): CoatiError {
  if (isNativeSystemError(err)) {
    return new CoatiError('UDP_SOCKET', `${op}: ${err.syscall} failed with ${err.code}`, { cause: err });
  }
  if (err instanceof CoatiError) return err;
  return new CoatiError('UDP_SOCKET', `${op}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

export class IkeUdpSocket {
  private constructor(
    private readonly sock: NativeUdpSocket,
    readonly family: 4 | 6,
    readonly encap: boolean,
  ) {}

  private closed = false;

  /** Opens and binds the socket; throws CoatiError('UDP_SOCKET' | 'NATIVE_NOT_BUILT'). */
  static open(opts: IkeUdpSocketOptions): IkeUdpSocket {
    const native = loadNative();
    const where = `udp socket ${opts.bindAddress ?? (opts.family === 4 ? '0.0.0.0' : '[::]')}:${opts.port}`;
    let sock: NativeUdpSocket;
    try {
      sock = native.udpOpen({
        family: opts.family,
        port: opts.port,
        ...(opts.bindAddress !== undefined ? { bindAddress: opts.bindAddress } : {}),
        encap: opts.encap ?? false,
        bypass: opts.bypass ?? true,
        ...(opts.rcvbuf !== undefined ? { rcvbuf: opts.rcvbuf } : {}),
        ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
        onMessage: (payload, remoteAddr, remotePort, localAddr, ifindex) =>
          opts.onMessage({ payload, remoteAddr, remotePort, localAddr, ifindex }),
        onEvent: (kind, errno) => {
          const err = new CoatiError('UDP_SOCKET', `${where}: receive ${kind} (errno ${errno})`);
          (err as CoatiError & { errno?: number }).errno = errno;
          opts.onError?.(err);
        },
      });
    } catch (err) {
      throw udpError(`open ${where}${opts.netns ? ` in netns ${opts.netns}` : ''}`, err);
    }
    return new IkeUdpSocket(sock, opts.family, opts.encap ?? false);
  }

  get localPort(): number {
    return this.sock.localPort;
  }

  /** Sends one datagram; `localAddr` picks the source address (IP_PKTINFO). Throws CoatiError. */
  send(payload: Buffer, remoteAddr: string, remotePort: number, localAddr?: string): void {
    try {
      if (localAddr !== undefined && localAddr !== '') this.sock.send(payload, remoteAddr, remotePort, localAddr);
      else this.sock.send(payload, remoteAddr, remotePort);
    } catch (err) {
      throw udpError(`send to ${remoteAddr}:${remotePort}`, err);
    }
  }

  /** Lets the process exit while the socket is open (default: it keeps the loop alive). */
  unref(): void {
    if (!this.closed) this.sock.unref();
  }

  ref(): void {
    if (!this.closed) this.sock.ref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }
}
