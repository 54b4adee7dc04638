/*
 * Node-API surface of the native addon: a few flat calls, each returning 0 or
 * -errno (TypeScript turns that into an Error with code/errno/syscall).
 *
 *   relayInit(onEvent)   onEvent(id, type, errno, bytesIn, bytesOut, a, b, c, d, e)
 *   relayListen(lid, ip, port, keepaliveS)                          -> 0 | -errno
 *   relayUnlisten(lid)                                              -> 0 | -errno
 *   relayConnect(id, ip, port, connectTimeoutMs, header?, replayLimit) -> 0 | -errno
 *   relayClose(id, graceful)                                        -> 0 | -errno
 *   relayInfo(id)        -> [bytesIn, bytesOut, idleMs, state] | undefined
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

#define CHECK(call)                     \
  do {                                  \
    if ((call) != napi_ok) return NULL; \
  } while (0)

static napi_threadsafe_function tsfn;

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  struct relay_event *ev = data;
  if (env && cb) {
    napi_value argv[10], undef;
    napi_get_undefined(env, &undef);
    napi_create_uint32(env, ev->id, &argv[0]);
    napi_create_int32(env, ev->type, &argv[1]);
    napi_create_int32(env, ev->err, &argv[2]);
    napi_create_double(env, (double)ev->bytes_in, &argv[3]);
    napi_create_double(env, (double)ev->bytes_out, &argv[4]);
    napi_create_uint32(env, ev->a, &argv[5]);
    napi_create_uint32(env, ev->b, &argv[6]);
    napi_create_uint32(env, ev->c, &argv[7]);
    napi_create_uint32(env, ev->d, &argv[8]);
    napi_create_uint32(env, ev->e, &argv[9]);
    napi_call_function(env, undef, cb, 10, argv, NULL);
  }
  free(ev);
}

static void emit(struct relay_event *ev, void *ctx) {
  if (napi_call_threadsafe_function(tsfn, ev, napi_tsfn_nonblocking) != napi_ok) free(ev);
}

static napi_value ret_int(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

static int get_ip(napi_env env, napi_value v, uint32_t *out) {
  char ip[64];
  size_t len;
  struct in_addr addr;
  if (napi_get_value_string_utf8(env, v, ip, sizeof ip, &len) != napi_ok) return -1;
  if (inet_pton(AF_INET, ip, &addr) != 1) return -1;
  *out = addr.s_addr;
  return 0;
}

static napi_value relay_init_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], name;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (tsfn) return ret_int(env, 0);
  CHECK(napi_create_string_utf8(env, "swarmnet-relay", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &tsfn));
  /* The engine must not keep the event loop alive on its own. */
  CHECK(napi_unref_threadsafe_function(env, tsfn));
  return ret_int(env, relay_engine_init(emit, NULL));
}

static napi_value relay_listen_js(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  uint32_t lid, ip;
  int32_t port, keepalive;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return ret_int(env, -EINVAL);
  CHECK(napi_get_value_uint32(env, argv[0], &lid));
  if (get_ip(env, argv[1], &ip) < 0) return ret_int(env, -EINVAL);
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_value_int32(env, argv[3], &keepalive));
  if (port < 0 || port > 65535) return ret_int(env, -EINVAL);
  return ret_int(env, relay_listen(lid, ip, (uint16_t)port, keepalive));
}

static napi_value relay_unlisten_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t lid;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_uint32(env, argv[0], &lid));
  return ret_int(env, relay_unlisten(lid));
}

static napi_value relay_connect_js(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) return ret_int(env, -EINVAL);
  struct relay_connect_args a;
  memset(&a, 0, sizeof a);
  int32_t port, timeout;
  double limit;
  CHECK(napi_get_value_uint32(env, argv[0], &a.id));
  if (get_ip(env, argv[1], &a.ip) < 0) return ret_int(env, -EINVAL);
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_value_int32(env, argv[3], &timeout));
  CHECK(napi_get_value_double(env, argv[5], &limit));
  if (port <= 0 || port > 65535) return ret_int(env, -EINVAL);
  bool is_buf = false;
  napi_is_buffer(env, argv[4], &is_buf);
  if (is_buf) {
    void *data;
    size_t len;
    CHECK(napi_get_buffer_info(env, argv[4], &data, &len));
    a.header = data;
    a.header_len = len;
  }
  a.port = (uint16_t)port;
  a.connect_timeout_ms = timeout;
  a.replay_limit = (size_t)limit;
  return ret_int(env, relay_connect(&a));
}

static napi_value relay_close_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t id;
  bool graceful = false;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_uint32(env, argv[0], &id));
  if (argc > 1) napi_get_value_bool(env, argv[1], &graceful);
  return ret_int(env, relay_close(id, graceful));
}

static napi_value relay_info_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  uint32_t id;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_uint32(env, argv[0], &id));
  struct relay_info ri;
  if (relay_get_info(id, &ri) < 0) {
    napi_get_undefined(env, &out);
    return out;
  }
  CHECK(napi_create_array_with_length(env, 4, &out));
  napi_create_double(env, (double)ri.bytes_in, &v);
  napi_set_element(env, out, 0, v);
  napi_create_double(env, (double)ri.bytes_out, &v);
  napi_set_element(env, out, 1, v);
  napi_create_double(env, (double)(relay_now_ms() - ri.last_ms), &v);
  napi_set_element(env, out, 2, v);
  napi_create_int32(env, ri.state, &v);
  napi_set_element(env, out, 3, v);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"relayInit", NULL, relay_init_js, NULL, NULL, NULL, napi_default, NULL},
      {"relayListen", NULL, relay_listen_js, NULL, NULL, NULL, napi_default, NULL},
      {"relayUnlisten", NULL, relay_unlisten_js, NULL, NULL, NULL, napi_default, NULL},
      {"relayConnect", NULL, relay_connect_js, NULL, NULL, NULL, napi_default, NULL},
      {"relayClose", NULL, relay_close_js, NULL, NULL, NULL, napi_default, NULL},
      {"relayInfo", NULL, relay_info_js, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
