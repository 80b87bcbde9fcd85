/* A unix datagram listener: what Node's dgram lacks (AF_UNIX SOCK_DGRAM).
 *
 * unixDgramListen(path, onMessage(buf)) -> { close(), ref(), unref(), fd, path }
 *
 * `path` is a filesystem path, or an abstract name written '@name'. Used by
 * tests as a NOTIFY_SOCKET that systemd would otherwise own, and generally to
 * receive datagrams from unix senders. Binding a path that exists fails with
 * EADDRINUSE (nothing is unlinked for the caller); close() removes the file
 * it bound, so a listener leaves no stale socket behind. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "coati.h"

#define DGRAM_BUF 65536

napi_value coati_unixdgram_listen(napi_env env, napi_callback_info info);

/* Listener state: the shared handle first, so a coati_handle* is also a listener*. */
typedef struct {
  coati_handle h;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* filesystem path to unlink, or "" */
} listener;

static void dgram_drain(coati_handle *h) {
  for (int i = 0; i < 256 && !h->closing; i++) {
    ssize_t n = recv(h->fd, h->buf, h->buflen, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      coati_handle_event(h, "error", errno);
      return;
    }
    if ((size_t)n > h->buflen) {
      coati_handle_event(h, "truncated", EMSGSIZE);
      continue;
    }
    napi_value buf;
    void *copy;
    napi_create_buffer_copy(h->env, (size_t)n, h->buf, &copy, &buf);
    coati_handle_call(h, h->on_message, 1, &buf);
  }
}

/* close() of the handle, then unlink of the bound file (abstract names have none). */
static napi_value dgram_close(napi_env env, napi_callback_info info) {
  napi_value self, fn, result;
  void *data = NULL;
  size_t argc = 0;
  napi_get_cb_info(env, info, &argc, NULL, &self, NULL);
  if (napi_unwrap(env, self, &data) != napi_ok || !data) return coati_throw_type(env, "not a coati socket");
  listener *l = data;
  if (l->path[0]) {
    unlink(l->path);
    l->path[0] = 0;
  }
  if (napi_get_named_property(env, self, "closeHandle", &fn) != napi_ok) return NULL;
  napi_call_function(env, self, fn, 0, NULL, &result);
  return NULL;
}

napi_value coati_unixdgram_listen(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  size_t plen;
  napi_valuetype t = napi_undefined;
  if (argc >= 2) napi_typeof(env, argv[1], &t);
  if (argc < 2 || t != napi_function ||
      napi_get_value_string_utf8(env, argv[0], sun.sun_path, sizeof sun.sun_path, &plen) != napi_ok || plen == 0 ||
      plen >= sizeof sun.sun_path - 1)
    return coati_throw_type(env, "unixDgramListen(path, onMessage): a non-empty path ('@' = abstract) and a function");
  char given[sizeof sun.sun_path];
  memcpy(given, sun.sun_path, plen + 1);
  int abstract = sun.sun_path[0] == '@';
  if (abstract) sun.sun_path[0] = 0;
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (abstract ? 0 : 1));

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return coati_throw_errno(env, errno, "socket");
  if (bind(fd, (struct sockaddr *)&sun, alen) < 0) {
    int e = errno;
    close(fd);
    return coati_throw_errno(env, e, "bind");
  }
  listener *l = calloc(1, sizeof *l);
  unsigned char *buf = malloc(DGRAM_BUF);
  if (!l || !buf) {
    free(l);
    free(buf);
    close(fd);
    if (!abstract) unlink(sun.sun_path);
    return coati_throw_errno(env, ENOMEM, "malloc");
  }
  if (!abstract) memcpy(l->path, sun.sun_path, plen + 1);
  l->h.fd = fd;
  l->h.buf = buf;
  l->h.buflen = DGRAM_BUF;
  l->h.drain = dgram_drain;
  napi_value obj = coati_handle_start(env, &l->h, argv[1], NULL, "coati.unixdgram");
  if (!obj) {
    if (!abstract) unlink(sun.sun_path);
    return NULL;
  }
  /* Wrap the generic close so the bound file goes with the socket. */
  napi_value generic, jpath;
  napi_get_named_property(env, obj, "close", &generic);
  napi_set_named_property(env, obj, "closeHandle", generic);
  coati_set_fn(env, obj, "close", dgram_close);
  napi_create_string_utf8(env, given, plen, &jpath);
  napi_set_named_property(env, obj, "path", jpath);
  return obj;
}
