/* A netlink socket (NETLINK_XFRM for coati) polled by libuv.
 *
 * nlOpen({ protocol, groups?: number[], netns?, rcvbuf?, onMessage(buf, groups, pid), onEvent?(kind, errno) })
 * -> { send(buf), close(), ref(), unref(), fd, portId }
 *
 * Each readable event drains the socket without blocking and hands every
 * datagram to onMessage; `groups` is the sender's multicast group mask (0 for
 * unicast replies). A full receive queue (ENOBUFS: the kernel dropped
 * messages) is reported as onEvent('overrun', ENOBUFS), never thrown. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "coati.h"

#define NL_BUF (256 * 1024)
#define NL_MAX_GROUPS 32
#define DRAIN_BATCH 1024 /* datagrams per readable event; level-triggered poll resumes */

static void nl_drain(coati_handle *h) {
  for (int i = 0; i < DRAIN_BATCH && !h->closing; i++) {
    struct sockaddr_nl sa;
    socklen_t salen = sizeof sa;
    ssize_t n = recvfrom(h->fd, h->buf, h->buflen, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&sa, &salen);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == ENOBUFS) {
        coati_handle_event(h, "overrun", ENOBUFS);
        continue;
      }
      coati_handle_event(h, "error", errno);
      return;
    }
    if ((size_t)n > h->buflen) {
      coati_handle_event(h, "truncated", EMSGSIZE);
      continue;
    }
    napi_value argv[3];
    void *copy;
    napi_create_buffer_copy(h->env, (size_t)n, h->buf, &copy, &argv[0]);
    napi_create_uint32(h->env, sa.nl_groups, &argv[1]);
    napi_create_uint32(h->env, sa.nl_pid, &argv[2]);
    coati_handle_call(h, h->on_message, 3, argv);
  }
}

static napi_value nl_send(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  coati_handle *h = coati_handle_this(env, info, &argc, argv);
  if (!h) return NULL;
  void *data;
  size_t len;
  bool is_buf = false;
  if (argc < 1 || napi_is_buffer(env, argv[0], &is_buf) != napi_ok || !is_buf)
    return coati_throw_type(env, "send(buf): buf must be a Buffer");
  napi_get_buffer_info(env, argv[0], &data, &len);
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t n;
  do n = sendto(h->fd, data, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0) return coati_throw_errno(env, errno, "sendto");
  napi_value r;
  napi_create_int64(env, n, &r);
  return r;
}

static int read_groups(napi_env env, napi_value opts, uint32_t *groups, uint32_t *count) {
  napi_value arr;
  bool is_arr = false;
  *count = 0;
  napi_get_named_property(env, opts, "groups", &arr);
  napi_valuetype t;
  napi_typeof(env, arr, &t);
  if (t == napi_undefined) return 0;
  if (napi_is_array(env, arr, &is_arr) != napi_ok || !is_arr) {
    coati_throw_type(env, "option 'groups' must be an array of group numbers");
    return -1;
  }
  napi_get_array_length(env, arr, count);
  if (*count > NL_MAX_GROUPS) {
    coati_throw_type(env, "too many netlink groups");
    return -1;
  }
  for (uint32_t i = 0; i < *count; i++) {
    napi_value v;
    napi_get_element(env, arr, i, &v);
    if (napi_get_value_uint32(env, v, &groups[i]) != napi_ok) {
      coati_throw_type(env, "option 'groups' must be an array of group numbers");
      return -1;
    }
  }
  return 0;
}

/* Creates and configures the socket; returns fd or -errno with *syscall set. */
static int nl_socket(int protocol, int rcvbuf, const uint32_t *groups, uint32_t ngroups, const char **syscall) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
  if (fd < 0) {
    *syscall = "socket";
    return -errno;
  }
  /* FORCE ignores rmem_max but needs CAP_NET_ADMIN; fall back to the capped one. */
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  /* Best effort: error strings from the kernel, and acks without the echoed request. */
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
    *syscall = "bind";
    goto fail;
  }
  for (uint32_t i = 0; i < ngroups; i++) {
    if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof groups[i]) < 0) {
      *syscall = "setsockopt NETLINK_ADD_MEMBERSHIP";
      goto fail;
    }
  }
  return fd;
fail: {
  int e = errno;
  close(fd);
  return -e;
}
}

napi_value coati_nl_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts, on_message, on_event;
  napi_get_cb_info(env, info, &argc, &opts, NULL, NULL);
  if (argc < 1) return coati_throw_type(env, "nlOpen(options) needs an options object");
  int64_t protocol, rcvbuf;
  uint32_t groups[NL_MAX_GROUPS], ngroups;
  char ns[256];
  if (coati_opt_int(env, opts, "protocol", -1, &protocol) || coati_opt_int(env, opts, "rcvbuf", 8 << 20, &rcvbuf) ||
      coati_opt_str(env, opts, "netns", ns, sizeof ns) || coati_opt_fn(env, opts, "onMessage", 1, &on_message) ||
      coati_opt_fn(env, opts, "onEvent", 0, &on_event) || read_groups(env, opts, groups, &ngroups))
    return NULL;
  if (protocol < 0 || protocol > 31) return coati_throw_type(env, "option 'protocol' must be a netlink protocol");
  if (rcvbuf < 4096 || rcvbuf > (1 << 30)) return coati_throw_type(env, "option 'rcvbuf' out of range");

  const char *syscall = "socket";
  int saved;
  int err = coati_netns_enter(ns, &saved, &syscall);
  if (err) return coati_throw_errno(env, err, syscall);
  int fd = nl_socket((int)protocol, (int)rcvbuf, groups, ngroups, &syscall);
  coati_netns_leave(saved);
  if (fd < 0) return coati_throw_errno(env, -fd, syscall);

  struct sockaddr_nl local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) < 0) {
    int e = errno;
    close(fd);
    return coati_throw_errno(env, e, "getsockname");
  }
  coati_handle *h = calloc(1, sizeof *h);
  unsigned char *buf = malloc(NL_BUF);
  if (!h || !buf) {
    free(h);
    free(buf);
    close(fd);
    return coati_throw_errno(env, ENOMEM, "malloc");
  }
  h->fd = fd;
  h->buf = buf;
  h->buflen = NL_BUF;
  h->drain = nl_drain;
  napi_value obj = coati_handle_start(env, h, on_message, on_event, "coati.netlink");
  if (!obj) return NULL;
  coati_set_fn(env, obj, "send", nl_send);
  coati_set_int(env, obj, "portId", local.nl_pid);
  return obj;
}
