/* Errors thrown to JS carry errno/code/syscall like Node's system errors,
 * plus small accessors for the option objects the entry points take. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "coati.h"

static const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *n = strerrorname_np(err);
  if (n) return n;
#endif
  return NULL;
}

napi_value coati_errno_error(napi_env env, int err, const char *syscall) {
  char code[32];
  const char *n = errno_name(err);
  if (n) snprintf(code, sizeof code, "%s", n);
  else snprintf(code, sizeof code, "E%d", err);
  char msg[256];
  snprintf(msg, sizeof msg, "%s %s (%s)", syscall, code, strerror(err));
  napi_value jmsg, jcode, error, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode);
  napi_create_error(env, jcode, jmsg, &error);
  napi_create_int32(env, err, &v);
  napi_set_named_property(env, error, "errno", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, error, "syscall", v);
  return error;
}

napi_value coati_throw_errno(napi_env env, int err, const char *syscall) {
  napi_throw(env, coati_errno_error(env, err, syscall));
  return NULL;
}

napi_value coati_throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", msg);
  return NULL;
}

/* Looks up obj[key]; *present = 0 for undefined/null. */
static int get_opt(napi_env env, napi_value obj, const char *key, napi_value *out, int *present) {
  napi_valuetype t;
  if (napi_get_named_property(env, obj, key, out) != napi_ok) return -1;
  napi_typeof(env, *out, &t);
  *present = !(t == napi_undefined || t == napi_null);
  return 0;
}

static int type_fail(napi_env env, const char *key, const char *what) {
  char msg[128];
  snprintf(msg, sizeof msg, "option '%s' must be %s", key, what);
  coati_throw_type(env, msg);
  return -1;
}

int coati_opt_int(napi_env env, napi_value obj, const char *key, int64_t dflt, int64_t *out) {
  napi_value v;
  int present;
  if (get_opt(env, obj, key, &v, &present)) return -1;
  if (!present) {
    *out = dflt;
    return 0;
  }
  if (napi_get_value_int64(env, v, out) != napi_ok) return type_fail(env, key, "a number");
  return 0;
}

int coati_opt_bool(napi_env env, napi_value obj, const char *key, int dflt, int *out) {
  napi_value v;
  int present;
  bool b;
  if (get_opt(env, obj, key, &v, &present)) return -1;
  if (!present) {
    *out = dflt;
    return 0;
  }
  if (napi_get_value_bool(env, v, &b) != napi_ok) return type_fail(env, key, "a boolean");
  *out = b;
  return 0;
}

int coati_opt_str(napi_env env, napi_value obj, const char *key, char *buf, size_t len) {
  napi_value v;
  int present;
  size_t n;
  buf[0] = 0;
  if (get_opt(env, obj, key, &v, &present)) return -1;
  if (!present) return 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return type_fail(env, key, "a string");
  if (n + 1 > len) return type_fail(env, key, "a shorter string");
  napi_get_value_string_utf8(env, v, buf, len, &n);
  return 0;
}

int coati_opt_fn(napi_env env, napi_value obj, const char *key, int required, napi_value *out) {
  int present;
  napi_valuetype t;
  *out = NULL;
  napi_value v;
  if (get_opt(env, obj, key, &v, &present)) return -1;
  if (!present) return required ? type_fail(env, key, "a function") : 0;
  napi_typeof(env, v, &t);
  if (t != napi_function) return type_fail(env, key, "a function");
  *out = v;
  return 0;
}

void coati_set_fn(napi_env env, napi_value obj, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, obj, name, fn);
}

void coati_set_int(napi_env env, napi_value obj, const char *name, int64_t v) {
  napi_value n;
  napi_create_int64(env, v, &n);
  napi_set_named_property(env, obj, name, n);
}
