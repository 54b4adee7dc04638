/*
 * Node-API surface of the native addon: a few flat calls, each returning 0 or
 * -errno (TypeScript turns that into an Error with code/errno/syscall).
 *
 *   relayInit(onEvent)   onEvent(id, type, errno, bytesIn, bytesOut, a, b, c, d, e), called
 *                        synchronously on the JS thread (also from inside the calls below)
 *   relayListen(lid, ip, port, keepaliveS)                          -> 0 | -errno
 *   relayUnlisten(lid)                                              -> 0 | -errno
 *   relayConnect(id, ip, port, connectTimeoutMs, header?, replayLimit) -> 0 | -errno
 *   relayClose(id, graceful)                                        -> 0 | -errno
 *   relayInfo(id)        -> [bytesIn, bytesOut, idleMs, state] | undefined
 *
 * The overlay calls (TAP, VXLAN engine) are in addon_overlay.c, the UDP engine's in addon_udp.c,
 * the DNS fast path's in addon_dns.c.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addon_dns.h"
#include "addon_overlay.h"
#include "addon_udp.h"
#include "napi_util.h"
#include "relay.h"

#define CHECK(call)                     \
  do {                                  \
    if ((call) != napi_ok) return NULL; \
  } while (0)

/* The engine runs on Node's loop: libuv polls its epoll fd, and events are passed to
 * the JS callback synchronously, inside one callback scope per batch. */
static napi_env cb_env;
static napi_ref cb_ref;
static napi_async_context cb_async;
static uv_poll_t poll_handle;
static uv_timer_t timer_handle;
static int started;

static void emit(struct relay_event *ev, void *ctx) {
  napi_env env = cb_env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[10], undef, cb;
  napi_get_undefined(env, &undef);
  napi_get_reference_value(env, cb_ref, &cb);
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
  if (napi_call_function(env, undef, cb, 10, argv, NULL) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err); /* as an uncaught exception in a callback would be */
  }
  napi_close_handle_scope(env, scope);
}

/* Runs `fn` as libuv callbacks run JS: in a callback scope, so microtasks (promise
 * continuations) are processed when it closes. */
static void in_callback_scope(void (*fn)(void)) {
  napi_env env = cb_env;
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value resource;
  if (napi_open_handle_scope(env, &hs) != napi_ok) return;
  napi_create_object(env, &resource);
  if (napi_open_callback_scope(env, resource, cb_async, &cs) == napi_ok) {
    fn();
    napi_close_callback_scope(env, cs);
  }
  napi_close_handle_scope(env, hs);
}

static void process_ready(void) {
  relay_process();
}

static void on_poll(uv_poll_t *h, int status, int events) {
  in_callback_scope(process_ready);
}

static void on_timer(uv_timer_t *h) {
  in_callback_scope(relay_timer);
}

static napi_value relay_init_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], name;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (started) return ret_int(env, 0);
  int fd = relay_engine_init(emit, NULL);
  if (fd < 0) return ret_int(env, fd);
  cb_env = env;
  CHECK(napi_create_reference(env, argv[0], 1, &cb_ref));
  CHECK(napi_create_string_utf8(env, "swarmnet-relay", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &cb_async));
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  int rc = uv_poll_init(loop, &poll_handle, fd);
  if (rc == 0) rc = uv_poll_start(&poll_handle, UV_READABLE, on_poll);
  if (rc == 0) rc = uv_timer_init(loop, &timer_handle);
  if (rc == 0) rc = uv_timer_start(&timer_handle, on_timer, 100, 100);
  if (rc != 0) return ret_int(env, rc); /* libuv errors are already -errno */
  /* Listeners are owned by the mesh, which the agent keeps alive; the engine's own
   * handles must not keep a finished process running. */
  uv_unref((uv_handle_t *)&poll_handle);
  uv_unref((uv_handle_t *)&timer_handle);
  started = 1;
  return ret_int(env, 0);
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
  CHECK(overlay_register(env, exports));
  CHECK(udp_register(env, exports));
  CHECK(dns_register(env, exports));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
