/* Lifetime of a polled socket handle shared by the netlink and UDP sockets.
 *
 * The JS object wraps a coati_handle. While open, a strong reference keeps the
 * object (and so the handle) alive. close() stops polling, drops the JS
 * references and uv_close()s the poll; the fd is closed in the close callback.
 * The struct is freed once both the uv close callback and the JS finalizer ran. */
#include <stdlib.h>
#include <unistd.h>

#include "coati.h"

static void maybe_free(coati_handle *h) {
  if (h->poll_closed && h->finalized) {
    free(h->buf);
    free(h);
  }
}

static void on_poll_closed(uv_handle_t *p) {
  coati_handle *h = p->data;
  if (h->fd >= 0) close(h->fd);
  h->fd = -1;
  h->poll_closed = 1;
  maybe_free(h);
}

static void stop(coati_handle *h) {
  if (h->closing) return;
  h->closing = 1;
  if (h->polling) {
    uv_poll_stop(&h->poll);
    uv_close((uv_handle_t *)&h->poll, on_poll_closed);
  } else {
    if (h->fd >= 0) close(h->fd);
    h->fd = -1;
    h->poll_closed = 1;
  }
}

static void release_js(coati_handle *h) {
  napi_env env = h->env;
  if (h->on_message) napi_delete_reference(env, h->on_message);
  if (h->on_event) napi_delete_reference(env, h->on_event);
  if (h->self) napi_delete_reference(env, h->self);
  if (h->actx) napi_async_destroy(env, h->actx);
  h->on_message = h->on_event = h->self = NULL;
  h->actx = NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  coati_handle *h = data;
  stop(h);
  h->finalized = 1;
  maybe_free(h);
}

static void on_readable(uv_poll_t *p, int status, int events) {
  coati_handle *h = p->data;
  (void)events;
  if (h->closing) return;
  napi_handle_scope scope;
  napi_open_handle_scope(h->env, &scope);
  h->in_drain = 1;
  if (status < 0) coati_handle_event(h, "error", -status);
  else h->drain(h);
  h->in_drain = 0;
  if (h->closing) release_js(h); /* close() was called from a callback */
  napi_close_handle_scope(h->env, scope);
}

coati_handle *coati_handle_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data = NULL;
  size_t zero = 0;
  napi_get_cb_info(env, info, argc ? argc : &zero, argv, &self, NULL);
  if (napi_unwrap(env, self, &data) != napi_ok || !data) {
    coati_throw_type(env, "not a coati socket");
    return NULL;
  }
  coati_handle *h = data;
  if (h->closing) {
    coati_throw_errno(env, 9 /* EBADF */, "closed socket");
    return NULL;
  }
  return h;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value self;
  void *data = NULL;
  size_t argc = 0;
  napi_get_cb_info(env, info, &argc, NULL, &self, NULL);
  if (napi_unwrap(env, self, &data) == napi_ok && data) {
    coati_handle *h = data;
    if (!h->closing) {
      stop(h);
      if (!h->in_drain) release_js(h);
    }
  }
  return NULL;
}

static napi_value js_ref(napi_env env, napi_callback_info info) {
  coati_handle *h = coati_handle_this(env, info, NULL, NULL);
  if (h && h->polling) uv_ref((uv_handle_t *)&h->poll);
  return NULL;
}

static napi_value js_unref(napi_env env, napi_callback_info info) {
  coati_handle *h = coati_handle_this(env, info, NULL, NULL);
  if (h && h->polling) uv_unref((uv_handle_t *)&h->poll);
  return NULL;
}

napi_value coati_handle_start(napi_env env, coati_handle *h, napi_value on_message, napi_value on_event,
                              const char *resource_name) {
  napi_value obj, name;
  struct uv_loop_s *loop;
  h->env = env;
  napi_create_object(env, &obj);
  if (napi_wrap(env, obj, h, finalize, NULL, NULL) != napi_ok) {
    close(h->fd);
    free(h->buf);
    free(h);
    return NULL;
  }
  coati_set_fn(env, obj, "close", js_close);
  coati_set_fn(env, obj, "ref", js_ref);
  coati_set_fn(env, obj, "unref", js_unref);
  coati_set_int(env, obj, "fd", h->fd);
  napi_create_reference(env, obj, 1, &h->self);
  napi_create_reference(env, on_message, 1, &h->on_message);
  if (on_event) napi_create_reference(env, on_event, 1, &h->on_event);
  napi_create_string_utf8(env, resource_name, NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, obj, name, &h->actx);
  napi_get_uv_event_loop(env, &loop);
  int rc = uv_poll_init(loop, &h->poll, h->fd);
  if (rc == 0) {
    h->poll.data = h;
    h->polling = 1;
    rc = uv_poll_start(&h->poll, UV_READABLE, on_readable);
  }
  if (rc < 0) {
    stop(h);
    release_js(h);
    return coati_throw_errno(env, -rc, "uv_poll_start");
  }
  return obj;
}

int coati_handle_call(coati_handle *h, napi_ref fn, size_t argc, napi_value *argv) {
  napi_value cb, recv, result;
  if (!fn || napi_get_reference_value(h->env, fn, &cb) != napi_ok || !cb) return 0;
  /* napi_make_callback needs an object receiver: the socket object itself. */
  if (!h->self || napi_get_reference_value(h->env, h->self, &recv) != napi_ok || !recv) return 0;
  napi_status s = napi_make_callback(h->env, h->actx, recv, cb, argc, argv, &result);
  if (s != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(h->env, &pending);
    if (pending) {
      napi_value err;
      napi_get_and_clear_last_exception(h->env, &err);
      napi_fatal_exception(h->env, err);
    }
    return -1;
  }
  return 0;
}

void coati_handle_event(coati_handle *h, const char *kind, int err) {
  if (!h->on_event) return;
  napi_value argv[2];
  napi_create_string_utf8(h->env, kind, NAPI_AUTO_LENGTH, &argv[0]);
  napi_create_int32(h->env, err, &argv[1]);
  coati_handle_call(h, h->on_event, 2, argv);
}
