/* coati native addon: only what Node lacks.
 *   - a NETLINK_XFRM socket (requests, dumps, ACQUIRE/EXPIRE multicast) on libuv;
 *   - the IKE UDP socket options (UDP_ENCAP_ESPINUDP, IP_PKTINFO, IPsec bypass);
 *   - a unix datagram send for systemd's NOTIFY_SOCKET, and a unix datagram
 *     listener (unixdgram.c);
 *   - errors that carry errno, code and syscall like Node's system errors.
 *
 * Why own this instead of using the npm `netlink` package: the UDP options
 * need native code anyway, and owning a few hundred lines of plain C (N-API
 * only, built by node-gyp at `npm install`) avoids prebuilt binaries and a
 * second native dependency whose socket lifecycle we would not control.
 * All protocol encoding/decoding lives in TypeScript (src/kernel/xfrm). */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "coati.h"

/* sdNotify(socketPath, message): one datagram to NOTIFY_SOCKET ('@' = abstract). */
static napi_value sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  char msg[4096];
  size_t plen, mlen;
  if (argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], sun.sun_path, sizeof sun.sun_path, &plen) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], msg, sizeof msg, &mlen) != napi_ok || plen == 0 ||
      plen >= sizeof sun.sun_path - 1 || mlen >= sizeof msg - 1)
    return coati_throw_type(env, "sdNotify(socketPath, message): two non-empty strings");
  if (sun.sun_path[0] == '@') sun.sun_path[0] = 0;
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (sun.sun_path[0] ? 1 : 0));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return coati_throw_errno(env, errno, "socket");
  ssize_t n;
  do n = sendto(fd, msg, mlen, MSG_NOSIGNAL, (struct sockaddr *)&sun, alen);
  while (n < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (n < 0) return coati_throw_errno(env, e, "sendto");
  return NULL;
}

napi_value coati_unixdgram_listen(napi_env env, napi_callback_info info);

static napi_value Init(napi_env env, napi_value exports) {
  napi_value v;
  napi_create_uint32(env, 2, &v);
  napi_set_named_property(env, exports, "abiVersion", v);
  coati_set_fn(env, exports, "nlOpen", coati_nl_open);
  coati_set_fn(env, exports, "udpOpen", coati_udp_open);
  coati_set_fn(env, exports, "sdNotify", sd_notify);
  coati_set_fn(env, exports, "unixDgramListen", coati_unixdgram_listen);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
