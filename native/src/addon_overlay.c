/*
 * Node-API surface of the VXLAN engine (vxlan.h). One engine per process; every
 * call returns 0, an fd, or -errno.
 *
 *   tapOpen(name, mtu)                      -> fd | -errno
 *   vxlanOpen(ip, port, espPort, onControl) -> 0 | -errno (espPort 0: no ESP socket)
 *                                              onControl(vni, frame: Buffer) on the JS thread
 *   vxlanClose()                            -> 0
 *   vxlanAddTap(vni, fd, encrypted) / vxlanDelTap(vni) -> 0 | -errno
 *   vxlanFdbSet(vni, mac: Buffer, ip) / vxlanFdbDel(vni, mac) -> 0 | -errno
 *   vxlanPeers(ips: string[])               -> 0 | -errno (the nodes VXLAN is accepted from)
 *   vxlanTapWrite(vni, frame: Buffer)       -> 0 | -errno
 *   vxlanStats()                            -> number[VX_STAT_COUNT]
 *   espSaSet(dir, spi, vni, peer, key: Buffer, salt: Buffer, seq: bigint) -> 0 | -errno
 *                                              dir 0 in, 1 out; seq: out's first number (0: 1),
 *                                              in's highest already accepted (reinstalled; 0: none)
 *   espSaDel(dir, spi, peer)                -> 0 | -errno
 *   espSaList()                             -> [dir, spi, vni, peer, seq: bigint][]
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addon_overlay.h"
#include "napi_util.h"
#include "vxlan.h"
#include "esp.h"


/* Control frames queued to the JS thread; beyond this the engine drops (ARP retries). */
#define CONTROL_QUEUE 1024

static struct vx_engine *engine;
static napi_threadsafe_function control_fn;

struct control_frame {
  uint32_t vni;
  size_t len;
  uint8_t data[];
};

/* Engine TX thread: copy the frame and queue it; never block the data path. */
static void on_control(void *ctx, uint32_t vni, const uint8_t *frame, size_t len) {
  struct control_frame *c = malloc(sizeof *c + len);
  if (!c) return;
  c->vni = vni;
  c->len = len;
  memcpy(c->data, frame, len);
  if (napi_call_threadsafe_function(control_fn, c, napi_tsfn_nonblocking) != napi_ok) free(c);
}

/* JS thread. env is NULL when the function is being torn down with frames queued. */
static void call_control(napi_env env, napi_value cb, void *context, void *data) {
  struct control_frame *c = data;
  if (env && cb) {
    napi_value argv[2], undef;
    napi_get_undefined(env, &undef);
    napi_create_uint32(env, c->vni, &argv[0]);
    napi_create_buffer_copy(env, c->len, c->data, NULL, &argv[1]);
    napi_call_function(env, undef, cb, 2, argv, NULL);
  }
  free(c);
}

static int get_mac(napi_env env, napi_value v, uint8_t mac[6]) {
  void *data;
  size_t len;
  bool is_buf = false;
  napi_is_buffer(env, v, &is_buf);
  if (!is_buf || napi_get_buffer_info(env, v, &data, &len) != napi_ok || len != 6) return -1;
  memcpy(mac, data, 6);
  return 0;
}

static napi_value tap_open_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char name[64];
  size_t len;
  int32_t mtu;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return ret_int(env, -EINVAL);
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_int32(env, argv[1], &mtu));
  return ret_int(env, vx_tap_open(name, mtu));
}

static napi_value vxlan_open_js(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], name;
  uint32_t ip;
  int32_t port, esp_port;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return ret_int(env, -EINVAL);
  if (engine) return ret_int(env, -EBUSY);
  if (get_ip(env, argv[0], &ip) < 0) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_int32(env, argv[1], &port));
  NAPI_CHECK(napi_get_value_int32(env, argv[2], &esp_port));
  if (port < 0 || port > 65535 || esp_port < 0 || esp_port > 65535) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_create_string_utf8(env, "swarmnet-vxlan", NAPI_AUTO_LENGTH, &name));
  NAPI_CHECK(napi_create_threadsafe_function(env, argv[3], NULL, name, CONTROL_QUEUE, 1, NULL, NULL, NULL, call_control, &control_fn));
  /* The agent keeps itself alive; the engine must not keep a finished process running. */
  napi_unref_threadsafe_function(env, control_fn);
  int rc = vx_open(&engine, ip, (uint16_t)port, (uint16_t)esp_port, on_control, NULL);
  if (rc < 0) {
    napi_release_threadsafe_function(control_fn, napi_tsfn_abort);
    control_fn = NULL;
    engine = NULL;
  }
  return ret_int(env, rc);
}

static napi_value vxlan_close_js(napi_env env, napi_callback_info info) {
  if (!engine) return ret_int(env, 0);
  vx_close(engine); /* joins the threads: no control frame is queued after this */
  engine = NULL;
  napi_release_threadsafe_function(control_fn, napi_tsfn_abort);
  control_fn = NULL;
  return ret_int(env, 0);
}

static napi_value vxlan_add_tap_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t vni;
  int32_t fd;
  bool encrypted = false;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || !engine) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_uint32(env, argv[0], &vni));
  NAPI_CHECK(napi_get_value_int32(env, argv[1], &fd));
  NAPI_CHECK(napi_get_value_bool(env, argv[2], &encrypted));
  return ret_int(env, vx_add_tap(engine, vni, fd, encrypted));
}

static napi_value vxlan_del_tap_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t vni;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !engine) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_uint32(env, argv[0], &vni));
  return ret_int(env, vx_del_tap(engine, vni));
}

static napi_value vxlan_fdb_set_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t vni, ip;
  uint8_t mac[6];
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || !engine) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_uint32(env, argv[0], &vni));
  if (get_mac(env, argv[1], mac) < 0 || get_ip(env, argv[2], &ip) < 0) return ret_int(env, -EINVAL);
  return ret_int(env, vx_fdb_set(engine, vni, mac, ip));
}

static napi_value vxlan_fdb_del_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t vni;
  uint8_t mac[6];
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !engine) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_uint32(env, argv[0], &vni));
  if (get_mac(env, argv[1], mac) < 0) return ret_int(env, -EINVAL);
  return ret_int(env, vx_fdb_del(engine, vni, mac));
}

static napi_value vxlan_peers_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  uint32_t n;
  bool is_array = false;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !engine) return ret_int(env, -EINVAL);
  napi_is_array(env, argv[0], &is_array);
  if (!is_array) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_array_length(env, argv[0], &n));
  uint32_t *ips = malloc((n ? n : 1) * sizeof *ips);
  if (!ips) return ret_int(env, -ENOMEM);
  for (uint32_t i = 0; i < n; i++) {
    if (napi_get_element(env, argv[0], i, &v) != napi_ok || get_ip(env, v, &ips[i]) < 0) {
      free(ips);
      return ret_int(env, -EINVAL);
    }
  }
  int rc = vx_peers_set(engine, ips, n);
  free(ips);
  return ret_int(env, rc);
}

static napi_value vxlan_tap_write_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t vni;
  void *data;
  size_t len;
  bool is_buf = false;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || !engine) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_uint32(env, argv[0], &vni));
  napi_is_buffer(env, argv[1], &is_buf);
  if (!is_buf) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  return ret_int(env, vx_tap_write(engine, vni, data, len));
}

static napi_value vxlan_stats_js(napi_env env, napi_callback_info info) {
  napi_value out, v;
  uint64_t stats[VX_STAT_COUNT] = {0};
  if (engine) vx_stats(engine, stats);
  NAPI_CHECK(napi_create_array_with_length(env, VX_STAT_COUNT, &out));
  for (uint32_t i = 0; i < VX_STAT_COUNT; i++) {
    napi_create_double(env, (double)stats[i], &v);
    napi_set_element(env, out, i, v);
  }
  return out;
}

static int get_bytes(napi_env env, napi_value v, const uint8_t **data, size_t *len) {
  bool is_buf = false;
  napi_is_buffer(env, v, &is_buf);
  return is_buf && napi_get_buffer_info(env, v, (void **)data, len) == napi_ok ? 0 : -1;
}

static napi_value esp_sa_set_js(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  uint32_t dir, spi, vni, peer;
  const uint8_t *key, *salt;
  size_t key_len, salt_len;
  uint64_t seq = 0;
  bool lossless;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7 || !engine) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_uint32(env, argv[0], &dir));
  NAPI_CHECK(napi_get_value_uint32(env, argv[1], &spi));
  NAPI_CHECK(napi_get_value_uint32(env, argv[2], &vni));
  if (dir > ESP_OUT || get_ip(env, argv[3], &peer) < 0) return ret_int(env, -EINVAL);
  if (get_bytes(env, argv[4], &key, &key_len) < 0 || get_bytes(env, argv[5], &salt, &salt_len) < 0 || salt_len != 4) return ret_int(env, -EINVAL);
  if (napi_get_value_bigint_uint64(env, argv[6], &seq, &lossless) != napi_ok || !lossless) return ret_int(env, -EINVAL);
  struct esp_sa *sa = esp_sa_new((enum esp_dir)dir, spi, vni, peer, key, key_len, salt, seq);
  if (!sa) return ret_int(env, key_len == 16 || key_len == 32 ? -ENOMEM : -EINVAL);
  return ret_int(env, vx_sa_set(engine, sa));
}

static napi_value esp_sa_del_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t dir, spi, peer;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || !engine) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_uint32(env, argv[0], &dir));
  NAPI_CHECK(napi_get_value_uint32(env, argv[1], &spi));
  if (get_ip(env, argv[2], &peer) < 0) return ret_int(env, -EINVAL);
  return ret_int(env, vx_sa_del(engine, (int)dir, spi, peer));
}

static napi_value esp_sa_list_js(napi_env env, napi_callback_info info) {
  napi_value out, row, v;
  size_t n = engine ? vx_sa_list(engine, NULL, 0) : 0;
  struct vx_sa_info *sas = calloc(n ? n : 1, sizeof *sas);
  if (!sas) return NULL;
  size_t have = engine ? vx_sa_list(engine, sas, n) : 0;
  if (have < n) n = have; /* SAs removed in between */
  NAPI_CHECK(napi_create_array_with_length(env, n, &out));
  for (size_t i = 0; i < n; i++) {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sas[i].peer, ip, sizeof ip);
    napi_create_array_with_length(env, 5, &row);
    napi_create_uint32(env, (uint32_t)sas[i].dir, &v);
    napi_set_element(env, row, 0, v);
    napi_create_uint32(env, sas[i].spi, &v);
    napi_set_element(env, row, 1, v);
    napi_create_uint32(env, sas[i].vni, &v);
    napi_set_element(env, row, 2, v);
    napi_create_string_utf8(env, ip, NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, row, 3, v);
    napi_create_bigint_uint64(env, sas[i].seq, &v);
    napi_set_element(env, row, 4, v);
    napi_set_element(env, out, (uint32_t)i, row);
  }
  free(sas);
  return out;
}

napi_status overlay_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tapOpen", NULL, tap_open_js, NULL, NULL, NULL, napi_default, NULL},
      {"vxlanOpen", NULL, vxlan_open_js, NULL, NULL, NULL, napi_default, NULL},
      {"vxlanClose", NULL, vxlan_close_js, NULL, NULL, NULL, napi_default, NULL},
      {"vxlanAddTap", NULL, vxlan_add_tap_js, NULL, NULL, NULL, napi_default, NULL},
      {"vxlanDelTap", NULL, vxlan_del_tap_js, NULL, NULL, NULL, napi_default, NULL},
      {"vxlanFdbSet", NULL, vxlan_fdb_set_js, NULL, NULL, NULL, napi_default, NULL},
      {"vxlanFdbDel", NULL, vxlan_fdb_del_js, NULL, NULL, NULL, napi_default, NULL},
      {"vxlanPeers", NULL, vxlan_peers_js, NULL, NULL, NULL, napi_default, NULL},
      {"vxlanTapWrite", NULL, vxlan_tap_write_js, NULL, NULL, NULL, napi_default, NULL},
      {"vxlanStats", NULL, vxlan_stats_js, NULL, NULL, NULL, napi_default, NULL},
      {"espSaSet", NULL, esp_sa_set_js, NULL, NULL, NULL, napi_default, NULL},
      {"espSaDel", NULL, esp_sa_del_js, NULL, NULL, NULL, napi_default, NULL},
      {"espSaList", NULL, esp_sa_list_js, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
