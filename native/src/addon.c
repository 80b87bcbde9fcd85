/* coati native addon: only what Node lacks (netlink XFRM socket, UDP socket
 * options, unix datagram for sd_notify). Entry point. */
#include <node_api.h>

static napi_value Init(napi_env env, napi_value exports) {
  napi_value v;
  napi_create_uint32(env, 1, &v);
  napi_set_named_property(env, exports, "abiVersion", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
