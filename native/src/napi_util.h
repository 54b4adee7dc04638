/* Small Node-API helpers shared by the addon's files (addon.c and every addon_*.c). */
#ifndef SWARMNET_NAPI_UTIL_H
#define SWARMNET_NAPI_UTIL_H

#include <node_api.h>
#include <arpa/inet.h>
#include <stdint.h>

/* Returns NULL (undefined in JS) from a napi callback when a Node-API call fails. */
#define NAPI_CHECK(call)                \
  do {                                  \
    if ((call) != napi_ok) return NULL; \
  } while (0)

/* Calls return 0, an fd or -errno as a JS number. */
static inline napi_value ret_int(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

/* A dotted IPv4 string -> network byte order; -1 when not one. */
static inline int get_ip(napi_env env, napi_value v, uint32_t *out) {
  char ip[64];
  size_t len;
  struct in_addr addr;
  if (napi_get_value_string_utf8(env, v, ip, sizeof ip, &len) != napi_ok) return -1;
  if (inet_pton(AF_INET, ip, &addr) != 1) return -1;
  *out = addr.s_addr;
  return 0;
}

#endif
