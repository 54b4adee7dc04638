/*
 * Node-API surface of the TCP relay engine (relay.h). Flat calls returning 0, a count
 * or -errno; snapshots come back as one Float64Array each (one call, no getters).
 * Addresses cross as host-order numbers (a << 24 | b << 16 | c << 8 | d).
 *
 *   relayInit(threads)                                  -> threads running | -errno
 *   relayListen(lid, ip, port, [keepaliveS, proxy, idleTimeoutMs, connectTimeoutMs,
 *               retries, replayLimit, backoffBaseMs, backoffMaxMs])   -> 0 | -errno
 *   relayUnlisten(lid)                                  -> 0 | -errno
 *   relayPool(lid, lb, known: Uint32Array [bid, ip, port, weight]*, list: Uint32Array
 *             of bids, sh?: Int32Array(256), mh?: Int32Array)          -> 0 | -errno
 *   relayStats(lid)   -> Float64Array [POOL_FIELDS..., n, n x BACKEND_FIELDS] | undefined once gone
 *   relayConns(lid)   -> Float64Array, CONN_FIELDS per relay
 *   relayCloseBackend(lid, bid)                         -> relays closed
 *   relayThreads()    -> Float64Array [accepted, open] per thread
 *   relayConnectBuckets() -> Float64Array: the connect histogram's upper bounds, seconds
 * Field orders: src/mesh/relay.ts reads them with the same constants.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addon_relay.h"
#include "napi_util.h"
#include "relay.h"

#define LISTEN_OPTS 8
#define POOL_FIELDS 7
#define CONNECT_FIELDS (RELAY_CONNECT_BUCKETS + 2) /* per-bucket connect counts, then their sum in seconds */
#define BACKEND_FIELDS (9 + 2 * RELAY_ERRNO_SLOTS + CONNECT_FIELDS + 1) /* the last: retried */
#define CONN_FIELDS 10
#define MAX_BACKENDS 65536
#define MAX_CONNS (1 << 20)

/* Per addon instance (no globals): the engine, started by relayInit. */
struct relay_addon {
  struct relay_engine *e;
};

static struct relay_addon *addon_of(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  void *data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, NULL, &data) != napi_ok) return NULL;
  return data;
}

/* The calls whose only argument is a listener id: the addon with a running engine, or NULL. */
static struct relay_addon *lid_call(napi_env env, napi_callback_info info, uint32_t *lid) {
  size_t argc = 1;
  napi_value argv[1];
  struct relay_addon *a = addon_of(env, info, &argc, argv);
  if (!a || !a->e || argc < 1 || napi_get_value_uint32(env, argv[0], lid) != napi_ok) return NULL;
  return a;
}

static napi_value float_array(napi_env env, const double *v, size_t n) {
  napi_value ab, out;
  void *mem;
  if (napi_create_arraybuffer(env, n * sizeof(double), &mem, &ab) != napi_ok) return NULL;
  memcpy(mem, v, n * sizeof(double));
  if (napi_create_typedarray(env, napi_float64_array, n, ab, 0, &out) != napi_ok) return NULL;
  return out;
}

/* A typed array's elements of the wanted type, or -EINVAL. */
static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  bool is = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return -EINVAL;
  if (napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok || type != want) return -EINVAL;
  return 0;
}

static napi_value init_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  struct relay_addon *a = addon_of(env, info, &argc, argv);
  int32_t threads;
  if (!a || argc < 1 || napi_get_value_int32(env, argv[0], &threads) != napi_ok) return ret_int(env, -EINVAL);
  if (!a->e) {
    a->e = relay_engine_start(threads);
    if (!a->e) return ret_int(env, -errno);
  }
  return ret_int(env, relay_engine_threads(a->e));
}

static napi_value listen_js(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  struct relay_addon *a = addon_of(env, info, &argc, argv);
  if (!a || !a->e || argc < 4) return ret_int(env, -EINVAL);
  uint32_t lid, ip, port;
  double o[LISTEN_OPTS];
  NAPI_CHECK(napi_get_value_uint32(env, argv[0], &lid));
  NAPI_CHECK(napi_get_value_uint32(env, argv[1], &ip));
  NAPI_CHECK(napi_get_value_uint32(env, argv[2], &port));
  for (uint32_t i = 0; i < LISTEN_OPTS; i++) {
    napi_value v;
    NAPI_CHECK(napi_get_element(env, argv[3], i, &v));
    if (napi_get_value_double(env, v, &o[i]) != napi_ok) return ret_int(env, -EINVAL);
  }
  if (port > 65535) return ret_int(env, -EINVAL);
  struct relay_listen_args l = {
      .lid = lid,
      .ip = htonl(ip),
      .port = (uint16_t)port,
      .keepalive_s = (int)o[0],
      .proxy = (int)o[1],
      .idle_timeout_ms = (int64_t)o[2],
      .connect_timeout_ms = (int)o[3],
      .retries = (int)o[4],
      .replay_limit = (size_t)o[5],
      .backoff_base_ms = (int64_t)o[6],
      .backoff_max_ms = (int64_t)o[7],
  };
  return ret_int(env, relay_listen(a->e, &l));
}

static napi_value unlisten_js(napi_env env, napi_callback_info info) {
  uint32_t lid;
  struct relay_addon *a = lid_call(env, info, &lid);
  if (!a) return ret_int(env, -EINVAL);
  return ret_int(env, relay_unlisten(a->e, lid));
}

static napi_value pool_js(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  struct relay_addon *a = addon_of(env, info, &argc, argv);
  if (!a || !a->e || argc < 4) return ret_int(env, -EINVAL);
  struct relay_pool_args p = {0};
  int32_t lb;
  uint32_t *known, *list;
  size_t nknown, nlist;
  NAPI_CHECK(napi_get_value_uint32(env, argv[0], &p.lid));
  NAPI_CHECK(napi_get_value_int32(env, argv[1], &lb));
  if (typed(env, argv[2], napi_uint32_array, (void **)&known, &nknown) < 0 || nknown % 4 || nknown / 4 > MAX_BACKENDS) return ret_int(env, -EINVAL);
  if (typed(env, argv[3], napi_uint32_array, (void **)&list, &nlist) < 0 || nlist > nknown / 4) return ret_int(env, -EINVAL);
  size_t len;
  void *sh = NULL, *mh = NULL;
  if (argc > 4 && typed(env, argv[4], napi_int32_array, &sh, &len) == 0 && len != RELAY_SH_SIZE) return ret_int(env, -EINVAL);
  if (argc > 5 && typed(env, argv[5], napi_int32_array, &mh, &len) == 0) p.mh_size = (uint32_t)len;
  struct relay_backend_spec *specs = calloc(nknown / 4 + 1, sizeof *specs);
  if (!specs) return ret_int(env, -ENOMEM);
  for (size_t i = 0; i < nknown / 4; i++) {
    const uint32_t *k = &known[4 * i];
    if (k[2] > 65535) {
      free(specs);
      return ret_int(env, -EINVAL);
    }
    specs[i] = (struct relay_backend_spec){.bid = k[0], .ip = htonl(k[1]), .port = (uint16_t)k[2], .weight = (int)k[3]};
  }
  p.lb = lb;
  p.known = specs;
  p.nknown = (int)(nknown / 4);
  p.list = list;
  p.nlist = (int)nlist;
  p.sh = sh;
  p.mh = mh;
  int rc = relay_pool_set(a->e, &p);
  free(specs);
  return ret_int(env, rc);
}

/* One snapshot call: fills up to max elements into out; returns how many it has (more
 * than max, or max itself, when the snapshot may not have fitted) or -errno. */
typedef int (*snapshot_fn)(struct relay_engine *e, uint32_t lid, void *ctx, void *out, int max);

/* Calls fill with a buffer of `size`-byte elements grown (from `first`, doubling, or to the
 * count it said it needs) until the snapshot fits or `limit` is reached. Returns the buffer
 * (free() it) with *n its element count (at most the buffer's), or NULL with *n < 0 (gone)
 * or 0 (no memory). */
static void *snapshot(struct relay_engine *e, uint32_t lid, size_t size, int first, int limit, snapshot_fn fill, void *ctx, int *n) {
  int max = first;
  for (;;) {
    void *out = calloc((size_t)max, size);
    if (!out) {
      *n = 0;
      return NULL;
    }
    *n = fill(e, lid, ctx, out, max);
    if (*n < 0) {
      free(out);
      return NULL;
    }
    if (*n < max || max >= limit) {
      if (*n > max) *n = max;
      return out;
    }
    free(out);
    int want = *n > 2 * max ? *n + 1 : 2 * max;
    max = want < limit ? want : limit;
  }
}

static int fill_stats(struct relay_engine *e, uint32_t lid, void *ps, void *out, int max) {
  return relay_pool_stats(e, lid, ps, out, max);
}

static int fill_conns(struct relay_engine *e, uint32_t lid, void *ctx, void *out, int max) {
  (void)ctx;
  return relay_conns(e, lid, out, max);
}

static napi_value stats_js(napi_env env, napi_callback_info info) {
  napi_value undef;
  uint32_t lid;
  struct relay_addon *a = lid_call(env, info, &lid);
  napi_get_undefined(env, &undef);
  if (!a) return undef;
  struct relay_pool_stats ps;
  int n;
  struct relay_backend_stats *bs = snapshot(a->e, lid, sizeof *bs, 64, MAX_BACKENDS, fill_stats, &ps, &n);
  if (!bs) return undef;
  size_t total = POOL_FIELDS + 1 + (size_t)n * BACKEND_FIELDS;
  double *v = malloc(total * sizeof *v);
  if (!v) {
    free(bs);
    return undef;
  }
  double pool[POOL_FIELDS] = {ps.active, ps.total, ps.bytes_in, ps.bytes_out, ps.no_backend, ps.retries, ps.listening};
  memcpy(v, pool, sizeof pool);
  v[POOL_FIELDS] = n;
  for (int i = 0; i < n; i++) {
    double *o = &v[POOL_FIELDS + 1 + (size_t)i * BACKEND_FIELDS];
    const struct relay_backend_stats *b = &bs[i];
    double fields[9] = {b->bid, b->active, b->total, b->bytes_in, b->bytes_out, b->failures, (double)b->down_in_ms, b->empty, b->reset};
    memcpy(o, fields, sizeof fields);
    for (int s = 0; s < RELAY_ERRNO_SLOTS; s++) {
      o[9 + 2 * s] = b->err_no[s];
      o[10 + 2 * s] = (double)b->err_count[s];
    }
    double *c = &o[9 + 2 * RELAY_ERRNO_SLOTS];
    for (int k = 0; k <= RELAY_CONNECT_BUCKETS; k++) c[k] = (double)b->connect_count[k];
    c[RELAY_CONNECT_BUCKETS + 1] = (double)b->connect_sum_ns / 1e9;
    c[CONNECT_FIELDS] = (double)b->retried;
  }
  napi_value out = float_array(env, v, total);
  free(v);
  free(bs);
  return out ? out : undef;
}

static napi_value conns_js(napi_env env, napi_callback_info info) {
  napi_value undef;
  uint32_t lid;
  struct relay_addon *a = lid_call(env, info, &lid);
  napi_get_undefined(env, &undef);
  if (!a) return undef;
  int n;
  struct relay_conn_info *c = snapshot(a->e, lid, sizeof *c, 1024, MAX_CONNS, fill_conns, NULL, &n);
  if (!c) return undef;
  double *v = malloc(((size_t)n * CONN_FIELDS + 1) * sizeof *v);
  if (!v) {
    free(c);
    return undef;
  }
  for (int i = 0; i < n; i++) {
    double fields[CONN_FIELDS] = {ntohl(c[i].client_ip), c[i].client_port, ntohl(c[i].local_ip), c[i].local_port, c[i].bid,
                                  c[i].running, (double)c[i].bytes_in, (double)c[i].bytes_out, (double)c[i].idle_ms, (double)c[i].idle_timeout_ms};
    memcpy(&v[(size_t)i * CONN_FIELDS], fields, sizeof fields);
  }
  napi_value out = float_array(env, v, (size_t)n * CONN_FIELDS);
  free(v);
  free(c);
  return out ? out : undef;
}

static napi_value close_backend_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  struct relay_addon *a = addon_of(env, info, &argc, argv);
  uint32_t lid, bid;
  if (!a || !a->e || argc < 2) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_uint32(env, argv[0], &lid));
  NAPI_CHECK(napi_get_value_uint32(env, argv[1], &bid));
  return ret_int(env, relay_close_backend(a->e, lid, bid));
}

static napi_value threads_js(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  napi_value undef;
  struct relay_addon *a = addon_of(env, info, &argc, NULL);
  napi_get_undefined(env, &undef);
  if (!a || !a->e) return undef;
  int n = relay_engine_threads(a->e);
  uint64_t *acc = calloc((size_t)n, sizeof *acc), *open = calloc((size_t)n, sizeof *open);
  double *v = calloc(2 * (size_t)n, sizeof *v);
  napi_value out = NULL;
  if (acc && open && v) {
    relay_thread_stats(a->e, acc, open, n);
    for (int i = 0; i < n; i++) {
      v[2 * i] = (double)acc[i];
      v[2 * i + 1] = (double)open[i];
    }
    out = float_array(env, v, 2 * (size_t)n);
  }
  free(acc);
  free(open);
  free(v);
  return out ? out : undef;
}

static napi_value connect_buckets_js(napi_env env, napi_callback_info info) {
  (void)info;
  static const uint64_t bounds[RELAY_CONNECT_BUCKETS] = RELAY_CONNECT_BOUNDS_NS;
  double v[RELAY_CONNECT_BUCKETS];
  for (int i = 0; i < RELAY_CONNECT_BUCKETS; i++) v[i] = (double)bounds[i] / 1e9;
  return float_array(env, v, RELAY_CONNECT_BUCKETS);
}

/* The engine's threads run until the process exits (Node's exit ends them with it). */
static void addon_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct relay_addon *a = data;
  if (!a->e) free(a); /* a running engine is still used by its threads */
}

napi_status relay_register(napi_env env, napi_value exports) {
  struct relay_addon *a = calloc(1, sizeof *a);
  if (!a) return napi_generic_failure;
  napi_status st = napi_add_finalizer(env, exports, a, addon_free, NULL, NULL);
  if (st != napi_ok) {
    free(a);
    return st;
  }
  napi_property_descriptor props[] = {
      {"relayInit", NULL, init_js, NULL, NULL, NULL, napi_default, a},
      {"relayListen", NULL, listen_js, NULL, NULL, NULL, napi_default, a},
      {"relayUnlisten", NULL, unlisten_js, NULL, NULL, NULL, napi_default, a},
      {"relayPool", NULL, pool_js, NULL, NULL, NULL, napi_default, a},
      {"relayStats", NULL, stats_js, NULL, NULL, NULL, napi_default, a},
      {"relayConns", NULL, conns_js, NULL, NULL, NULL, napi_default, a},
      {"relayCloseBackend", NULL, close_backend_js, NULL, NULL, NULL, napi_default, a},
      {"relayThreads", NULL, threads_js, NULL, NULL, NULL, napi_default, a},
      {"relayConnectBuckets", NULL, connect_buckets_js, NULL, NULL, NULL, napi_default, a},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
