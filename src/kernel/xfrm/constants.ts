/** Netlink and XFRM constants (linux/netlink.h, linux/xfrm.h), with names for logs. */

export const NETLINK_XFRM = 6;

export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

export const NLM_F = {
  REQUEST: 0x01,
  MULTI: 0x02,
  ACK: 0x04,
  ECHO: 0x08,
  DUMP_INTR: 0x10,
  ROOT: 0x100,
  MATCH: 0x200,
  DUMP: 0x300,
  /** On NLMSG_ERROR: the request payload was not echoed (NETLINK_CAP_ACK). */
  CAPPED: 0x100,
  /** On NLMSG_ERROR: extended-ack TLVs follow. */
  ACK_TLVS: 0x200,
} as const;

export const NLMSGERR_ATTR = { MSG: 1, OFFS: 2 } as const;

export const XFRM_MSG = {
  NEWSA: 0x10,
  DELSA: 0x11,
  GETSA: 0x12,
  NEWPOLICY: 0x13,
  DELPOLICY: 0x14,
  GETPOLICY: 0x15,
  ALLOCSPI: 0x16,
  ACQUIRE: 0x17,
  EXPIRE: 0x18,
  UPDPOLICY: 0x19,
  UPDSA: 0x1a,
  POLEXPIRE: 0x1b,
  FLUSHSA: 0x1c,
  FLUSHPOLICY: 0x1d,
  NEWSPDINFO: 0x24,
  GETSPDINFO: 0x25,
  MAPPING: 0x26,
} as const;
export type XfrmMsgName = keyof typeof XFRM_MSG;

/** enum xfrm_attr_type_t */
export const XFRMA = {
  ALG_AUTH: 1,
  ALG_CRYPT: 2,
  ALG_COMP: 3,
  ENCAP: 4,
  TMPL: 5,
  SA: 6,
  POLICY: 7,
  SEC_CTX: 8,
  LTIME_VAL: 9,
  REPLAY_VAL: 10,
  REPLAY_THRESH: 11,
  ETIMER_THRESH: 12,
  SRCADDR: 13,
  COADDR: 14,
  LASTUSED: 15,
  POLICY_TYPE: 16,
  MIGRATE: 17,
  ALG_AEAD: 18,
  KMADDRESS: 19,
  ALG_AUTH_TRUNC: 20,
  MARK: 21,
  TFCPAD: 22,
  REPLAY_ESN_VAL: 23,
  SA_EXTRA_FLAGS: 24,
  PROTO: 25,
  ADDRESS_FILTER: 26,
  PAD: 27,
  OFFLOAD_DEV: 28,
  SET_MARK: 29,
  SET_MARK_MASK: 30,
  IF_ID: 31,
  MTIMER_THRESH: 32,
} as const;

/** Attributes of XFRM_MSG_NEWSPDINFO / GETSPDINFO (a separate attribute space). */
export const XFRMA_SPD = { INFO: 1, HINFO: 2, IPV4_HTHRESH: 3, IPV6_HTHRESH: 4 } as const;

export const XFRMNLGRP = {
  ACQUIRE: 1,
  EXPIRE: 2,
  SA: 3,
  POLICY: 4,
  AEVENTS: 5,
  REPORT: 6,
  MIGRATE: 7,
  MAPPING: 8,
} as const;

export const XFRM_POLICY_DIR = { in: 0, out: 1, fwd: 2 } as const;
export const XFRM_POLICY_ACTION = { allow: 0, block: 1 } as const;
export const XFRM_POLICY_TYPE_MAIN = 0;
export const XFRM_MODE = { transport: 0, tunnel: 1 } as const;
export const XFRM_STATE_FLAG = {
  NOECN: 1,
  DECAP_DSCP: 2,
  NOPMTUDISC: 4,
  WILDRECV: 8,
  ICMP: 16,
  AF_UNSPEC: 32,
  ALIGN4: 64,
  ESN: 128,
} as const;
export const XFRM_SA_XFLAG = { DONT_ENCAP_DSCP: 1, OSEQ_MAY_WRAP: 2 } as const;

export const IPPROTO = { ESP: 50, AH: 51, UDP: 17, TCP: 6, ICMP: 1, ICMPV6: 58 } as const;
export const AF = { INET: 2, INET6: 10 } as const;
export const UDP_ENCAP_ESPINUDP = 2;

/** XFRM_INF: "no limit" in xfrm_lifetime_cfg. */
export const XFRM_INF = 0xffffffffffffffffn;

const MSG_NAMES = new Map<number, string>(Object.entries(XFRM_MSG).map(([k, v]) => [v, k]));
export function msgTypeName(type: number): string {
  if (type === NLMSG.ERROR) return 'NLMSG_ERROR';
  if (type === NLMSG.DONE) return 'NLMSG_DONE';
  if (type === NLMSG.NOOP) return 'NLMSG_NOOP';
  return MSG_NAMES.get(type) ?? `type ${type}`;
}
