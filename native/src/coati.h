/* Shared declarations of the coati native addon. */
#ifndef COATI_H
#define COATI_H

#include <node_api.h>
#include <stddef.h>
#include <uv.h>

/* ---- errors.c: JS errors shaped like Node's system errors ---- */
/* Throws Error{message, errno (positive), code ('EPERM'), syscall}. Returns NULL. */
napi_value coati_throw_errno(napi_env env, int err, const char *syscall);
/* Builds (does not throw) the same error object. */
napi_value coati_errno_error(napi_env env, int err, const char *syscall);
/* Throws a TypeError for bad arguments. Returns NULL. */
napi_value coati_throw_type(napi_env env, const char *msg);

/* ---- errors.c: option-object accessors (return 0 ok, -1 = JS exception pending) ---- */
int coati_opt_int(napi_env env, napi_value obj, const char *key, int64_t dflt, int64_t *out);
int coati_opt_bool(napi_env env, napi_value obj, const char *key, int dflt, int *out);
/* Copies a string option into buf (empty string when absent). */
int coati_opt_str(napi_env env, napi_value obj, const char *key, char *buf, size_t len);
/* Function option; *out NULL when absent and !required. */
int coati_opt_fn(napi_env env, napi_value obj, const char *key, int required, napi_value *out);
void coati_set_fn(napi_env env, napi_value obj, const char *name, napi_callback cb);
void coati_set_int(napi_env env, napi_value obj, const char *name, int64_t v);

/* ---- netns.c: run socket creation inside another network namespace ---- */
/* Enters `ns` (a name under /run/netns or an absolute path); no-op for "".
 * On success *saved holds the original namespace (or -1). On failure returns
 * errno and sets *syscall; the thread is still in its original namespace. */
int coati_netns_enter(const char *ns, int *saved, const char **syscall);
/* Returns to the saved namespace; aborts the process if that is impossible,
 * because continuing in the wrong namespace would silently misroute. */
void coati_netns_leave(int saved);

/* ---- handle.c: an fd polled by libuv whose readable events call `drain` ---- */
typedef struct coati_handle coati_handle;
typedef void (*coati_drain_fn)(coati_handle *h);

struct coati_handle {
  int fd;
  int family;      /* udp: 4 or 6 */
  uv_poll_t poll;
  napi_env env;
  napi_ref self;   /* strong while open: the JS object must outlive the poll */
  napi_ref on_message;
  napi_ref on_event; /* may be NULL */
  napi_async_context actx;
  coati_drain_fn drain;
  unsigned char *buf;
  size_t buflen;
  int polling, closing, poll_closed, finalized;
  int in_drain; /* JS callbacks running: defer releasing JS state on close */
};

/* Wraps `h` into a new JS object with close/ref/unref methods and starts polling.
 * Takes ownership of h (and h->fd) even on failure. Returns NULL on failure (exception pending). */
napi_value coati_handle_start(napi_env env, coati_handle *h, napi_value on_message, napi_value on_event,
                              const char *resource_name);
/* `this` of a method call -> open handle, or throws (closed / wrong object). */
coati_handle *coati_handle_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv);
/* Invokes a JS callback from the poll callback. Returns -1 if it threw (reported as uncaught). */
int coati_handle_call(coati_handle *h, napi_ref fn, size_t argc, napi_value *argv);
/* Emits on_event(kind, errno) when an event callback is set. */
void coati_handle_event(coati_handle *h, const char *kind, int err);

/* ---- module parts ---- */
napi_value coati_nl_open(napi_env env, napi_callback_info info);
napi_value coati_udp_open(napi_env env, napi_callback_info info);
napi_value coati_sd_notify(napi_env env, napi_callback_info info);

#endif
