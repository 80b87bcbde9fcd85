/* The IKE UDP socket: what Node's dgram cannot do.
 *
 * udpOpen({ family: 4|6, port, bindAddress?, encap?, bypass? = true, rcvbuf? = 4 MiB, netns?,
 *           onMessage(payload, remoteAddr, remotePort, localAddr, ifindex), onEvent?(kind, errno) })
 * -> { send(buf, addr, port, localAddr?, ifindex?), close(), ref(), unref(), fd, localPort }
 *
 * - IP_PKTINFO / IPV6_RECVPKTINFO: each datagram reports the address it was sent
 *   to, so a socket bound to the wildcard answers from the right address;
 * - per-socket IPsec bypass (IP_XFRM_POLICY / IPV6_XFRM_POLICY, allow in+out):
 *   IKE traffic never matches the policies coati itself installs;
 * - UDP_ENCAP_ESPINUDP when `encap` (port 4500): the kernel takes ESP-in-UDP,
 *   and only non-ESP-marker traffic reaches us. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/xfrm.h>

#include "coati.h"

#ifndef UDP_ENCAP
#define UDP_ENCAP 100
#endif
#ifndef UDP_ENCAP_ESPINUDP
#define UDP_ENCAP_ESPINUDP 2
#endif

#define UDP_BUF 65536

union addr {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
  struct sockaddr_storage ss;
};

static void format_addr(const union addr *a, char *out, size_t len) {
  if (a->sa.sa_family == AF_INET) {
    inet_ntop(AF_INET, &a->v4.sin_addr, out, len);
  } else {
    inet_ntop(AF_INET6, &a->v6.sin6_addr, out, len);
    if (a->v6.sin6_scope_id) {
      size_t n = strlen(out);
      snprintf(out + n, len - n, "%%%u", a->v6.sin6_scope_id);
    }
  }
}

/* Parses "1.2.3.4" / "fe80::1%eth0" / "fe80::1%3" into a, with port. 0 ok, -1 bad. */
static int parse_addr(int family, const char *text, int port, union addr *a) {
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  memset(a, 0, sizeof *a);
  snprintf(host, sizeof host, "%s", text);
  if (family == 4) {
    a->v4.sin_family = AF_INET;
    a->v4.sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &a->v4.sin_addr) == 1 ? 0 : -1;
  }
  a->v6.sin6_family = AF_INET6;
  a->v6.sin6_port = htons((uint16_t)port);
  char *pct = strchr(host, '%');
  if (pct) {
    *pct++ = 0;
    char *end;
    unsigned long idx = strtoul(pct, &end, 10);
    a->v6.sin6_scope_id = (*end || !*pct) ? if_nametoindex(pct) : (uint32_t)idx;
    if (!a->v6.sin6_scope_id) return -1;
  }
  return inet_pton(AF_INET6, host, &a->v6.sin6_addr) == 1 ? 0 : -1;
}

static void udp_drain(coati_handle *h) {
  for (int i = 0; i < 256 && !h->closing; i++) {
    union addr from;
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
    } ctl;
    struct iovec iov = {.iov_base = h->buf, .iov_len = h->buflen};
    struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n = recvmsg(h->fd, &msg, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      coati_handle_event(h, "error", errno);
      return;
    }
    if (msg.msg_flags & MSG_TRUNC) {
      coati_handle_event(h, "truncated", EMSGSIZE);
      continue;
    }
    char local[INET6_ADDRSTRLEN] = "";
    uint32_t ifindex = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        struct in_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        inet_ntop(AF_INET, &pi.ipi_addr, local, sizeof local);
        ifindex = (uint32_t)pi.ipi_ifindex;
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        struct in6_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        inet_ntop(AF_INET6, &pi.ipi6_addr, local, sizeof local);
        ifindex = pi.ipi6_ifindex;
      }
    }
    char remote[INET6_ADDRSTRLEN + 12];
    format_addr(&from, remote, sizeof remote);
    int port = ntohs(from.sa.sa_family == AF_INET ? from.v4.sin_port : from.v6.sin6_port);
    napi_value argv[5];
    void *copy;
    napi_create_buffer_copy(h->env, (size_t)n, h->buf, &copy, &argv[0]);
    napi_create_string_utf8(h->env, remote, NAPI_AUTO_LENGTH, &argv[1]);
    napi_create_int32(h->env, port, &argv[2]);
    napi_create_string_utf8(h->env, local, NAPI_AUTO_LENGTH, &argv[3]);
    napi_create_uint32(h->env, ifindex, &argv[4]);
    coati_handle_call(h, h->on_message, 5, argv);
  }
}

static napi_value udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  coati_handle *h = coati_handle_this(env, info, &argc, argv);
  if (!h) return NULL;
  void *data;
  size_t len;
  bool is_buf = false;
  char addr[INET6_ADDRSTRLEN + IF_NAMESIZE + 2], local[INET6_ADDRSTRLEN] = "";
  size_t n;
  int32_t port;
  uint32_t ifindex = 0;
  if (argc < 3 || napi_is_buffer(env, argv[0], &is_buf) != napi_ok || !is_buf ||
      napi_get_value_string_utf8(env, argv[1], addr, sizeof addr, &n) != napi_ok ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok || port <= 0 || port > 65535)
    return coati_throw_type(env, "send(buf, addr, port, localAddr?, ifindex?)");
  if (argc >= 4) {
    napi_valuetype t;
    napi_typeof(env, argv[3], &t);
    if (t == napi_string) napi_get_value_string_utf8(env, argv[3], local, sizeof local, &n);
  }
  if (argc >= 5) napi_get_value_uint32(env, argv[4], &ifindex);
  napi_get_buffer_info(env, argv[0], &data, &len);
  union addr to;
  if (parse_addr(h->family, addr, port, &to)) return coati_throw_type(env, "send: bad remote address for family");
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {.iov_base = data, .iov_len = len};
  struct msghdr msg = {.msg_name = &to, .msg_namelen = h->family == 4 ? sizeof to.v4 : sizeof to.v6,
                       .msg_iov = &iov, .msg_iovlen = 1};
  if (local[0] || ifindex) {
    struct cmsghdr *c = (struct cmsghdr *)ctl.buf;
    msg.msg_control = ctl.buf;
    if (h->family == 4) {
      struct in_pktinfo pi = {.ipi_ifindex = (int)ifindex};
      if (local[0] && inet_pton(AF_INET, local, &pi.ipi_spec_dst) != 1)
        return coati_throw_type(env, "send: bad local IPv4 address");
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof pi);
      memcpy(CMSG_DATA(c), &pi, sizeof pi);
      msg.msg_controllen = CMSG_SPACE(sizeof pi);
    } else {
      struct in6_pktinfo pi = {.ipi6_ifindex = ifindex};
      if (local[0] && inet_pton(AF_INET6, local, &pi.ipi6_addr) != 1)
        return coati_throw_type(env, "send: bad local IPv6 address");
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof pi);
      memcpy(CMSG_DATA(c), &pi, sizeof pi);
      msg.msg_controllen = CMSG_SPACE(sizeof pi);
    }
  }
  ssize_t sent;
  do sent = sendmsg(h->fd, &msg, MSG_DONTWAIT);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return coati_throw_errno(env, errno, "sendmsg");
  napi_value r;
  napi_create_int64(env, sent, &r);
  return r;
}

#define TRY(call, name)     \
  if ((call) < 0) {         \
    *syscall = name;        \
    goto fail;              \
  }

/* Creates the configured, bound socket; returns fd or -errno with *syscall set. */
static int udp_socket(int family, const union addr *bind_to, int encap, int bypass, int rcvbuf, const char **syscall) {
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_UDP);
  if (fd < 0) {
    *syscall = "socket";
    return -errno;
  }
  int one = 1;
  TRY(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), "setsockopt SO_REUSEADDR");
  /* A start-up herd of IKE_SA_INITs must not overflow the default ~200 KB queue:
   * try past rmem_max with CAP_NET_ADMIN, else take what rmem_max allows. */
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (family == 4) {
    TRY(setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one), "setsockopt IP_PKTINFO");
  } else {
    TRY(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one), "setsockopt IPV6_V6ONLY");
    TRY(setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one), "setsockopt IPV6_RECVPKTINFO");
  }
  if (bypass) {
    /* An allow-all socket policy per direction: zero selector, no templates, infinite lifetime. */
    for (int dir = XFRM_POLICY_IN; dir <= XFRM_POLICY_OUT; dir++) {
      struct xfrm_userpolicy_info pol;
      memset(&pol, 0, sizeof pol);
      pol.action = XFRM_POLICY_ALLOW;
      pol.dir = (uint8_t)dir;
      pol.sel.family = family == 4 ? AF_INET : AF_INET6;
      pol.lft.soft_byte_limit = pol.lft.hard_byte_limit = XFRM_INF;
      pol.lft.soft_packet_limit = pol.lft.hard_packet_limit = XFRM_INF;
      if (family == 4) {
        TRY(setsockopt(fd, IPPROTO_IP, IP_XFRM_POLICY, &pol, sizeof pol), "setsockopt IP_XFRM_POLICY");
      } else {
        TRY(setsockopt(fd, IPPROTO_IPV6, IPV6_XFRM_POLICY, &pol, sizeof pol), "setsockopt IPV6_XFRM_POLICY");
      }
    }
  }
  if (encap) {
    int type = UDP_ENCAP_ESPINUDP;
    TRY(setsockopt(fd, IPPROTO_UDP, UDP_ENCAP, &type, sizeof type), "setsockopt UDP_ENCAP");
  }
  TRY(bind(fd, &bind_to->sa, family == 4 ? sizeof bind_to->v4 : sizeof bind_to->v6), "bind");
  return fd;
fail: {
  int e = errno;
  close(fd);
  return -e;
}
}

napi_value coati_udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts, on_message, on_event;
  napi_get_cb_info(env, info, &argc, &opts, NULL, NULL);
  if (argc < 1) return coati_throw_type(env, "udpOpen(options) needs an options object");
  int64_t family, port, rcvbuf;
  int encap, bypass;
  char ns[256], bind_addr[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (coati_opt_int(env, opts, "family", 4, &family) || coati_opt_int(env, opts, "port", 0, &port) ||
      coati_opt_bool(env, opts, "encap", 0, &encap) || coati_opt_bool(env, opts, "bypass", 1, &bypass) ||
      coati_opt_int(env, opts, "rcvbuf", 4 << 20, &rcvbuf) ||
      coati_opt_str(env, opts, "bindAddress", bind_addr, sizeof bind_addr) ||
      coati_opt_str(env, opts, "netns", ns, sizeof ns) || coati_opt_fn(env, opts, "onMessage", 1, &on_message) ||
      coati_opt_fn(env, opts, "onEvent", 0, &on_event))
    return NULL;
  if (family != 4 && family != 6) return coati_throw_type(env, "option 'family' must be 4 or 6");
  if (port < 0 || port > 65535) return coati_throw_type(env, "option 'port' out of range");
  if (rcvbuf < 0 || rcvbuf > (1 << 30)) return coati_throw_type(env, "option 'rcvbuf' out of range");
  if (!bind_addr[0]) snprintf(bind_addr, sizeof bind_addr, "%s", family == 4 ? "0.0.0.0" : "::");
  union addr bind_to;
  if (parse_addr((int)family, bind_addr, (int)port, &bind_to))
    return coati_throw_type(env, "option 'bindAddress' is not an address of that family");

  const char *syscall = "socket";
  int saved;
  int err = coati_netns_enter(ns, &saved, &syscall);
  if (err) return coati_throw_errno(env, err, syscall);
  int fd = udp_socket((int)family, &bind_to, encap, bypass, (int)rcvbuf, &syscall);
  coati_netns_leave(saved);
  if (fd < 0) return coati_throw_errno(env, -fd, syscall);

  union addr local;
  socklen_t len = sizeof local;
  if (getsockname(fd, &local.sa, &len) < 0) {
    int e = errno;
    close(fd);
    return coati_throw_errno(env, e, "getsockname");
  }
  coati_handle *h = calloc(1, sizeof *h);
  unsigned char *buf = malloc(UDP_BUF);
  if (!h || !buf) {
    free(h);
    free(buf);
    close(fd);
    return coati_throw_errno(env, ENOMEM, "malloc");
  }
  h->fd = fd;
  h->family = (int)family;
  h->buf = buf;
  h->buflen = UDP_BUF;
  h->drain = udp_drain;
  napi_value obj = coati_handle_start(env, h, on_message, on_event, "coati.udp");
  if (!obj) return NULL;
  coati_set_fn(env, obj, "send", udp_send);
  coati_set_int(env, obj, "localPort", ntohs(family == 4 ? local.v4.sin_port : local.v6.sin6_port));
  return obj;
}
