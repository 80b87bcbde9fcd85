/**
 * The one kernel interface coati's SA engine talks to. Backends: `xfrm`
 * (real Linux XFRM netlink through the native addon) and `memory` (tests,
 * demo on machines without ESP). All addresses are textual IPv4/IPv6.
 */

export type IpFamily = 4 | 6;
export type IpsecProto = 'esp' | 'ah';
export type IpsecMode = 'tunnel' | 'transport';
export type PolicyDir = 'in' | 'out' | 'fwd';

/** Traffic selector as installed in the kernel (one range-free subnet form). */
export interface KernelSelector {
  src: string; // prefix, e.g. "10.1.0.0/24" or "fd00::/64"
  dst: string;
  proto?: number; // 0/undefined = any
  srcPort?: number; // 0/undefined = any
  dstPort?: number;
}

export interface Lifetime {
  softBytes?: bigint;
  hardBytes?: bigint;
  softPackets?: bigint;
  hardPackets?: bigint;
  softAddSeconds?: number;
  hardAddSeconds?: number;
}

export interface UdpEncap {
  sport: number;
  dport: number;
  /** NAT original address, optional (transport mode checksum fix-up). */
  oa?: string;
}

/** Algorithm names in the kernel's crypto-API spelling. */
export type SaAlgorithms =
  | { aead: { name: 'rfc4106(gcm(aes))' | 'rfc7539esp(chacha20,poly1305)'; key: Buffer; icvBits: number } }
  | {
      crypt: { name: string; key: Buffer }; // e.g. "cbc(aes)"
      auth: { name: string; key: Buffer; truncBits: number }; // e.g. "hmac(sha256)", 128
    };

export interface SaSpec {
  src: string; // outer source address
  dst: string; // outer destination address
  spi: number; // host order u32
  proto: IpsecProto;
  mode: IpsecMode;
  reqid: number;
  algorithms: SaAlgorithms;
  encap?: UdpEncap;
  replayWindow?: number; // default 32 (or ESN window if esn)
  esn?: boolean;
  lifetime?: Lifetime;
  mark?: { value: number; mask: number };
  /** Selector restricting the SA (optional; tunnel SAs usually leave it open). */
  selector?: KernelSelector;
}

export interface SaId {
  dst: string;
  spi: number;
  proto: IpsecProto;
  mark?: { value: number; mask: number };
}

export interface PolicyTemplate {
  src: string; // tunnel endpoints (tunnel mode) or '' for transport
  dst: string;
  proto: IpsecProto;
  mode: IpsecMode;
  reqid: number;
  /** Optional SPI pin; 0 = any. */
  spi?: number;
}

export interface PolicySpec {
  selector: KernelSelector;
  dir: PolicyDir;
  action: 'allow' | 'block';
  priority: number;
  templates: PolicyTemplate[];
  mark?: { value: number; mask: number };
  /** Kernel policy index, set by the kernel; used on update/delete when known. */
  index?: number;
}

export interface PolicyId {
  selector: KernelSelector;
  dir: PolicyDir;
  mark?: { value: number; mask: number };
}

export interface SaCounters {
  bytes: bigint;
  packets: bigint;
  /** Seconds since epoch the SA was added / last used (0 = never). */
  addTime: number;
  useTime: number;
  replayWindow?: number;
  integrityFailed?: number;
}

export interface SaInfo extends SaSpec {
  counters: SaCounters;
}

export type KernelEvent =
  | {
      type: 'acquire';
      selector: KernelSelector;
      template: { src: string; dst: string; proto: IpsecProto; reqid: number };
      policyIndex: number;
    }
  | { type: 'expire'; sa: SaId; hard: boolean; src: string; reqid: number }
  | { type: 'polexpire'; policy: PolicyId; hard: boolean }
  | { type: 'mapping'; sa: SaId; oldAddr: string; oldPort: number; newAddr: string; newPort: number };

export interface KernelIpsec {
  /** Human name of the backend ("xfrm", "memory"). */
  readonly name: string;
  /** Allocate an unused inbound SPI for (src -> dst) in the range [min, max]. */
  allocSpi(args: {
    src: string;
    dst: string;
    proto: IpsecProto;
    reqid: number;
    min?: number;
    max?: number;
  }): Promise<number>;
  addSa(sa: SaSpec): Promise<void>;
  /** Replace an existing SA (e.g. one that ALLOCSPI created as larval). */
  updateSa(sa: SaSpec): Promise<void>;
  deleteSa(id: SaId): Promise<void>;
  /** SA with counters, or undefined if the kernel has no such SA. */
  getSa(id: SaId): Promise<SaInfo | undefined>;
  /** All SAs this daemon owns (reqid in the configured range). */
  listSas(): Promise<SaInfo[]>;
  addPolicy(p: PolicySpec): Promise<void>;
  updatePolicy(p: PolicySpec): Promise<void>;
  deletePolicy(id: PolicyId): Promise<void>;
  /** All policies this daemon owns (priority/mark/reqid tag). */
  listPolicies(): Promise<PolicySpec[]>;
  /** Subscribe to kernel events; returns an unsubscribe function. */
  onEvent(listener: (ev: KernelEvent) => void): () => void;
  close(): Promise<void>;
}
