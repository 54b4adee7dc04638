/*
 * Node-API surface of the native addon: a few flat calls, each returning 0 or
 * -errno (TypeScript turns that into an Error with code/errno/syscall).
 *
 * The TCP relay engine's calls are in addon_relay.c, the overlay calls (TAP, VXLAN
 * engine) in addon_overlay.c, the UDP engine's in addon_udp.c, the DNS fast path's in
 * addon_dns.c.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include "addon_dns.h"
#include "addon_overlay.h"
#include "addon_relay.h"
#include "addon_udp.h"
#include "napi_util.h"

static napi_value init(napi_env env, napi_value exports) {
  NAPI_CHECK(relay_register(env, exports));
  NAPI_CHECK(overlay_register(env, exports));
  NAPI_CHECK(udp_register(env, exports));
  NAPI_CHECK(dns_register(env, exports));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
