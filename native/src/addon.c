/*
 * Node-API surface of the native addon: a few flat calls, each returning 0 or
 * -errno (TypeScript turns that into an Error with code/errno/syscall).
 *
 * The TCP relay engine's calls are in addon_relay.c, the overlay calls (TAP, VXLAN
 * engine) in addon_overlay.c, the UDP engine's in addon_udp.c, the DNS fast path's in
 * addon_dns.c; threadSlice, the data-plane threads' scheduler slice, here.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>

#include "addon_dns.h"
#include "addon_overlay.h"
#include "addon_relay.h"
#include "addon_udp.h"
#include "napi_util.h"
#include "sched_slice.h"

/* threadSlice(us): the scheduler slice data-plane threads started from now on ask for
 * (sched_slice.h); 0 keeps the kernel's default. 0 or -EINVAL. */
static napi_value thread_slice_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t us;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_uint32(env, argv[0], &us) != napi_ok) return ret_int(env, -EINVAL);
  return ret_int(env, sched_slice_set(us));
}

static napi_value init(napi_env env, napi_value exports) {
  NAPI_CHECK(relay_register(env, exports));
  NAPI_CHECK(overlay_register(env, exports));
  NAPI_CHECK(udp_register(env, exports));
  NAPI_CHECK(dns_register(env, exports));
  napi_property_descriptor props[] = {{"threadSlice", NULL, thread_slice_js, NULL, NULL, NULL, napi_default, NULL}};
  NAPI_CHECK(napi_define_properties(env, exports, 1, props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
