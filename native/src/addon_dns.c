/*
 * Node-API surface of the DNS fast path (dns_fast.h): UDP sockets owned by C, polled on
 * Node's loop, served in batches:
 *
 *   readable -> recvmmsg (up to BATCH datagrams) -> dnsf_answer each
 *            -> replies: sendmmsg in one batch
 *            -> forwarded names (DNSF_FORWARD): upstream from C (dns_forward.c)
 *            -> misses: onMiss(server, datagram, ip, port) in JavaScript, one callback
 *               scope per batch (the slow path answers with dnsSend)
 *
 *   dnsEngine(onMiss)                          -> engine (External)
 *   dnsOpen(engine, ip, port)                  -> server id (>= 1) | -errno
 *   dnsClose(engine, id)                       -> 0 | -errno
 *   dnsSend(engine, id, reply, ip, port)       -> 0 | -errno
 *   dnsPut(engine, entry)                      -> 0 | -errno   (entry: see put_from below)
 *   dnsScopes(engine, pairs)                   -> 0 | -errno   (pairs: [ip(4) id(BE32)]...)
 *   dnsClear(engine)                           -> 0
 *   dnsTakeStats(engine) -> [hits, fwdHits, truncated, short, long, send, (qtype, rcode, n)...], zeroed
 *   dnsForward(engine, id, upstreams, timeoutMs) -> 0 | -errno  (names JS marked go upstream from C: dns_forward.c)
 *   dnsTakeForwardStats(engine) -> [forwarded, timeout, error, malformed, badId, badSource, badQuestion, latencySum, buckets...], zeroed
 *
 *   dnsEngine(onMiss, onAnswer?): onAnswer(server, query, reply, ip) gets the upstream
 *   replies C relayed that JavaScript's forward cache may keep.
 */
#define _GNU_SOURCE
#include "addon_dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "dns_engine.h"
#include "dns_fast.h"
#include "napi_util.h"

/* Ready answers kept before the table starts over (DEFAULTS.answerCacheEntries plus upstream answers). */
#define MAX_ENTRIES (65536 + 16384)

/* Sends replies [0, n); a datagram the kernel refuses is counted and skipped. */
void dns_send_batch(struct dns_server *s, int n) {
  struct dns_engine *e = s->eng;
  int at = 0;
  while (at < n) {
    int rc = sendmmsg(s->fd, e->out + at, (unsigned)(n - at), MSG_DONTWAIT);
    if (rc > 0) {
      at += rc;
      continue;
    }
    if (errno == EINTR) continue;
    dnsf_stats(e->table)->send++;
    at++;
  }
}

/* Datagrams to JavaScript, as libuv callbacks run JS: in a callback scope, so promise
 * continuations run when it closes. */
void dns_call_js(struct dns_server *s, const struct dns_js_item *items, int n) {
  struct dns_engine *e = s->eng;
  napi_env env = e->env;
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value resource, miss, answer = NULL, undef;
  if (napi_open_handle_scope(env, &hs) != napi_ok) return;
  napi_create_object(env, &resource);
  if (napi_open_callback_scope(env, resource, e->async, &cs) == napi_ok) {
    napi_get_undefined(env, &undef);
    napi_get_reference_value(env, e->on_miss, &miss);
    if (e->on_answer) napi_get_reference_value(env, e->on_answer, &answer);
    for (int m = 0; m < n && !s->closing; m++) {
      const struct dns_js_item *it = &items[m];
      napi_value argv[4];
      void *data;
      char ip[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &it->from->sin_addr, ip, sizeof ip);
      napi_create_uint32(env, s->id, &argv[0]);
      napi_create_buffer_copy(env, it->len, it->msg, &data, &argv[1]);
      napi_value cb = miss;
      if (it->reply) {
        if (!answer) continue;
        cb = answer;
        napi_create_buffer_copy(env, it->reply_len, it->reply, &data, &argv[2]);
        napi_create_string_utf8(env, ip, NAPI_AUTO_LENGTH, &argv[3]);
      } else {
        napi_create_string_utf8(env, ip, NAPI_AUTO_LENGTH, &argv[2]);
        napi_create_uint32(env, ntohs(it->from->sin_port), &argv[3]);
      }
      if (napi_call_function(env, undef, cb, 4, argv, NULL) == napi_pending_exception) {
        napi_value err;
        napi_get_and_clear_last_exception(env, &err);
        napi_fatal_exception(env, err);
      }
    }
    napi_close_callback_scope(env, cs);
  }
  napi_close_handle_scope(env, hs);
}

int dns_recv_batch(struct dns_engine *e, int fd) {
  for (int i = 0; i < DNS_BATCH; i++) {
    e->in_iov[i] = (struct iovec){e->in_buf[i], DNSF_REPLY_MAX};
    e->in[i].msg_hdr = (struct msghdr){.msg_name = &e->from[i], .msg_namelen = sizeof e->from[i], .msg_iov = &e->in_iov[i], .msg_iovlen = 1};
  }
  return recvmmsg(fd, e->in, DNS_BATCH, MSG_DONTWAIT, NULL);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  struct dns_server *s = h->data;
  struct dns_engine *e = s->eng;
  struct dns_js_item items[DNS_BATCH];
  for (int round = 0; round < DNS_ROUNDS && !s->closing; round++) {
    int n = dns_recv_batch(e, s->fd);
    if (n <= 0) break;
    int nout = 0, nmiss = 0;
    for (int i = 0; i < n; i++) {
      if (e->in[i].msg_hdr.msg_flags & MSG_TRUNC) {
        dnsf_stats(e->table)->long_++;
        continue;
      }
      struct dnsf_query q;
      int len = dnsf_answer(e->table, s->id, e->in_buf[i], e->in[i].msg_len, e->from[i].sin_addr.s_addr, e->out_buf[nout], DNSF_REPLY_MAX, &q);
      /* A forwarded name goes upstream from C; when C cannot take it, JavaScript forwards it. */
      if (len == DNSF_FORWARD && !(s->fwd && dns_forward_start(s->fwd, e->in_buf[i], e->in[i].msg_len, &e->from[i], &q) == 0)) len = DNSF_MISS;
      if (len == DNSF_MISS) {
        e->miss[nmiss++] = i;
      } else if (len > 0) {
        e->out_iov[nout] = (struct iovec){e->out_buf[nout], (size_t)len};
        e->out[nout].msg_hdr = (struct msghdr){.msg_name = &e->from[i], .msg_namelen = sizeof e->from[i], .msg_iov = &e->out_iov[nout], .msg_iovlen = 1};
        nout++;
      }
    }
    if (nout) dns_send_batch(s, nout);
    for (int m = 0; m < nmiss; m++) {
      int i = e->miss[m];
      items[m] = (struct dns_js_item){.msg = e->in_buf[i], .len = e->in[i].msg_len, .from = &e->from[i]};
    }
    if (nmiss) dns_call_js(s, items, nmiss);
    if (n < DNS_BATCH) break;
  }
}

static struct dns_engine *engine_of(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

static napi_value dns_engine_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], name, out;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct dns_engine *e = calloc(1, sizeof *e);
  if (!e) return ret_int(env, -ENOMEM);
  e->table = dnsf_table_new(MAX_ENTRIES);
  if (!e->table) {
    free(e);
    return ret_int(env, -ENOMEM);
  }
  e->env = env;
  NAPI_CHECK(napi_create_reference(env, argv[0], 1, &e->on_miss));
  napi_valuetype t = napi_undefined;
  if (argc >= 2) napi_typeof(env, argv[1], &t);
  if (t == napi_function) NAPI_CHECK(napi_create_reference(env, argv[1], 1, &e->on_answer));
  NAPI_CHECK(napi_create_string_utf8(env, "swarmnet-dns", NAPI_AUTO_LENGTH, &name));
  NAPI_CHECK(napi_async_init(env, NULL, name, &e->async));
  /* Lives as long as the process: servers refer to it from libuv handles. */
  NAPI_CHECK(napi_create_external(env, e, NULL, NULL, &out));
  return out;
}

static napi_value dns_open_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t ip;
  int32_t port;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct dns_engine *e = engine_of(env, argv[0]);
  if (!e || argc < 3 || get_ip(env, argv[1], &ip) < 0) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_int32(env, argv[2], &port));
  if (port <= 0 || port > 65535) return ret_int(env, -EINVAL);
  uint16_t id = 0;
  for (uint16_t i = 1; i < DNS_MAX_SERVERS; i++)
    if (!e->servers[i]) {
      id = i;
      break;
    }
  if (!id) return ret_int(env, -EMFILE);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ret_int(env, -errno);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = ip};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int err = errno;
    close(fd);
    return ret_int(env, -err);
  }
  struct dns_server *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return ret_int(env, -ENOMEM);
  }
  *s = (struct dns_server){.eng = e, .fd = fd, .id = id};
  uv_loop_t *loop;
  NAPI_CHECK(napi_get_uv_event_loop(env, &loop));
  int rc = uv_poll_init(loop, &s->poll, fd);
  if (rc == 0) {
    s->poll.data = s;
    rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  }
  if (rc != 0) {
    close(fd);
    free(s);
    return ret_int(env, rc);
  }
  e->servers[id] = s;
  return ret_int(env, id);
}

static void on_closed(uv_handle_t *h) {
  struct dns_server *s = h->data;
  close(s->fd);
  free(s);
}

static struct dns_server *server_arg(napi_env env, struct dns_engine *e, napi_value v) {
  uint32_t id;
  if (!e || napi_get_value_uint32(env, v, &id) != napi_ok || id == 0 || id >= DNS_MAX_SERVERS) return NULL;
  return e->servers[id];
}

static napi_value dns_close_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct dns_engine *e = engine_of(env, argv[0]);
  struct dns_server *s = argc < 2 ? NULL : server_arg(env, e, argv[1]);
  if (!s) return ret_int(env, -EBADF);
  e->servers[s->id] = NULL;
  s->closing = 1;
  if (s->fwd) dns_forward_close(s->fwd);
  s->fwd = NULL;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_closed);
  return ret_int(env, 0);
}

/* The (engine, server id, ...) arguments of a call taking `want` of them; the server or NULL. */
static struct dns_server *server_call(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return NULL;
  return server_arg(env, engine_of(env, argv[0]), argv[1]);
}

static napi_value dns_send_js(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  void *data;
  size_t len;
  uint32_t ip;
  int32_t port;
  struct dns_server *s = server_call(env, info, 5, argv);
  if (!s) return ret_int(env, -EBADF);
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok || get_ip(env, argv[3], &ip) < 0) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_int32(env, argv[4], &port));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = ip};
  if (sendto(s->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof sa) < 0) return ret_int(env, -errno);
  return ret_int(env, 0);
}

/*
 * An entry as JavaScript lays it out (src/dns/native.ts), big-endian:
 *   server(2) scope(4) qtype(2) variant(1) nameLen(1) flags(2) ttlMs(4) nrot(2) nttl(2)
 *   name(nameLen) ttlOffsets(2 x nttl) then nrot x [an(2) ns(2) ar(2) len(2) bytes(len)]
 */
#define PUT_HEAD 20
static int put_from(struct dnsf_table *t, const uint8_t *p, size_t len) {
  if (len < PUT_HEAD) return -EINVAL;
#define U16(o) ((uint16_t)(p[o] << 8 | p[(o) + 1]))
#define U32(o) ((uint32_t)p[o] << 24 | (uint32_t)p[(o) + 1] << 16 | (uint32_t)p[(o) + 2] << 8 | p[(o) + 3])
  struct dnsf_put_args a = {.server = U16(0), .scope = U32(2), .qtype = U16(6), .variant = p[8], .name_len = p[9], .flags = U16(10), .ttl_ms = U32(12), .nrot = U16(16), .nttl = U16(18)};
  size_t at = PUT_HEAD;
  if (a.nrot > 1024 || at + a.name_len + 2u * a.nttl > len) return -EINVAL;
  a.name = p + at;
  at += a.name_len;
  uint16_t ttl_at[512];
  if (a.nttl > 512) return -EINVAL;
  for (uint16_t i = 0; i < a.nttl; i++, at += 2) ttl_at[i] = U16(at);
  a.ttl_at = ttl_at;
  struct dnsf_records *rot = calloc(a.nrot ? a.nrot : 1, sizeof *rot);
  if (!rot) return -ENOMEM;
  int rc = 0;
  for (uint16_t i = 0; i < a.nrot && rc == 0; i++) {
    if (at + 8 > len) {
      rc = -EINVAL;
      break;
    }
    rot[i] = (struct dnsf_records){U16(at), U16(at + 2), U16(at + 4), U16(at + 6), p + at + 8};
    at += 8;
    if (at + rot[i].len > len) rc = -EINVAL;
    at += rot[i].len;
  }
#undef U16
#undef U32
  a.rot = rot;
  if (rc == 0) rc = dnsf_put(t, &a);
  free(rot);
  return rc;
}

/* The (engine, Buffer) arguments of dnsPut and dnsScopes; 0 or -EINVAL. */
static int engine_and_buffer(napi_env env, napi_callback_info info, struct dns_engine **e, uint8_t **data, size_t *len) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return -EINVAL;
  *e = engine_of(env, argv[0]);
  if (!*e || napi_get_buffer_info(env, argv[1], (void **)data, len) != napi_ok) return -EINVAL;
  return 0;
}

static napi_value dns_put_js(napi_env env, napi_callback_info info) {
  struct dns_engine *e;
  uint8_t *data;
  size_t len;
  int rc = engine_and_buffer(env, info, &e, &data, &len);
  return ret_int(env, rc < 0 ? rc : put_from(e->table, data, len));
}

static napi_value dns_scopes_js(napi_env env, napi_callback_info info) {
  struct dns_engine *e;
  uint8_t *data;
  size_t len;
  if (engine_and_buffer(env, info, &e, &data, &len) < 0 || len % 8) return ret_int(env, -EINVAL);
  size_t n = len / 8;
  uint32_t *ips = malloc((n + 1) * sizeof *ips), *ids = malloc((n + 1) * sizeof *ids);
  int rc = -ENOMEM;
  if (ips && ids) {
    for (size_t i = 0; i < n; i++) {
      memcpy(&ips[i], data + 8 * i, 4); /* the address's octets: network order */
      uint32_t id;
      memcpy(&id, data + 8 * i + 4, 4);
      ids[i] = ntohl(id);
    }
    rc = dnsf_set_scopes(e->table, ips, ids, n);
  }
  free(ips);
  free(ids);
  return ret_int(env, rc);
}

static napi_value dns_clear_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct dns_engine *e = engine_of(env, argv[0]);
  if (!e) return ret_int(env, -EINVAL);
  dnsf_clear(e->table);
  return ret_int(env, 0);
}

/* The engine of a call taking only it; NULL when it is not one. */
static struct dns_engine *engine_call(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return NULL;
  return engine_of(env, argv[0]);
}

static napi_value dns_take_stats_js(napi_env env, napi_callback_info info) {
  napi_value out, v;
  struct dns_engine *e = engine_call(env, info);
  if (!e) return ret_int(env, -EINVAL);
  struct dnsf_stats *st = dnsf_stats(e->table);
  NAPI_CHECK(napi_create_array(env, &out));
  uint32_t at = 0;
  uint64_t head[] = {st->hits, st->fwd_hits, st->truncated, st->short_, st->long_, st->send};
  for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) {
    napi_create_double(env, (double)head[i], &v);
    napi_set_element(env, out, at++, v);
  }
  for (int q = 0; q < DNSF_QTYPE_ROWS; q++)
    for (int r = 0; r < DNSF_RCODE_COLS; r++) {
      if (!st->replies[q][r]) continue;
      uint32_t triple[] = {(uint32_t)q, (uint32_t)r};
      for (int k = 0; k < 2; k++) {
        napi_create_uint32(env, triple[k], &v);
        napi_set_element(env, out, at++, v);
      }
      napi_create_double(env, (double)st->replies[q][r], &v);
      napi_set_element(env, out, at++, v);
    }
  memset(st, 0, sizeof *st);
  return out;
}

/* dnsForward(engine, id, upstreams, timeoutMs): upstreams [ip(4) port(BE16)]...; none: JavaScript forwards. */
static napi_value dns_forward_js(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  void *data;
  size_t len;
  uint32_t timeout_ms;
  struct dns_server *s = server_call(env, info, 4, argv);
  if (!s) return ret_int(env, -EBADF);
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok || len % 6 || len / 6 > DNS_MAX_UPSTREAMS || napi_get_value_uint32(env, argv[3], &timeout_ms) != napi_ok) return ret_int(env, -EINVAL);
  struct sockaddr_in ups[DNS_MAX_UPSTREAMS];
  int n = (int)(len / 6);
  for (int i = 0; i < n; i++) {
    const uint8_t *p = (const uint8_t *)data + 6 * i;
    ups[i] = (struct sockaddr_in){.sin_family = AF_INET};
    memcpy(&ups[i].sin_addr.s_addr, p, 4);
    memcpy(&ups[i].sin_port, p + 4, 2);
  }
  if (s->fwd) dns_forward_close(s->fwd);
  s->fwd = NULL;
  if (n == 0) return ret_int(env, 0);
  uv_loop_t *loop;
  NAPI_CHECK(napi_get_uv_event_loop(env, &loop));
  s->fwd = dns_forward_new(s, loop, ups, n, timeout_ms);
  return ret_int(env, s->fwd ? 0 : -errno);
}

/* [forwarded, timeout, error, malformed, badId, badSource, badQuestion, latencySum, latency buckets...], zeroed. */
static napi_value dns_take_forward_stats_js(napi_env env, napi_callback_info info) {
  napi_value out, v;
  struct dns_engine *e = engine_call(env, info);
  if (!e) return ret_int(env, -EINVAL);
  struct dns_forward_stats *st = &e->fstats;
  double head[] = {(double)st->forwarded, (double)st->timeout, (double)st->error, (double)st->malformed, (double)st->bad_id, (double)st->bad_source, (double)st->bad_question, st->latency_sum};
  NAPI_CHECK(napi_create_array(env, &out));
  uint32_t at = 0;
  for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) {
    napi_create_double(env, head[i], &v);
    napi_set_element(env, out, at++, v);
  }
  for (int b = 0; b <= DNS_LATENCY_BUCKETS; b++) {
    napi_create_double(env, (double)st->latency[b], &v);
    napi_set_element(env, out, at++, v);
  }
  memset(st, 0, sizeof *st);
  return out;
}

napi_status dns_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"dnsEngine", NULL, dns_engine_js, NULL, NULL, NULL, napi_default, NULL},
      {"dnsOpen", NULL, dns_open_js, NULL, NULL, NULL, napi_default, NULL},
      {"dnsClose", NULL, dns_close_js, NULL, NULL, NULL, napi_default, NULL},
      {"dnsSend", NULL, dns_send_js, NULL, NULL, NULL, napi_default, NULL},
      {"dnsPut", NULL, dns_put_js, NULL, NULL, NULL, napi_default, NULL},
      {"dnsScopes", NULL, dns_scopes_js, NULL, NULL, NULL, napi_default, NULL},
      {"dnsClear", NULL, dns_clear_js, NULL, NULL, NULL, napi_default, NULL},
      {"dnsTakeStats", NULL, dns_take_stats_js, NULL, NULL, NULL, napi_default, NULL},
      {"dnsForward", NULL, dns_forward_js, NULL, NULL, NULL, napi_default, NULL},
      {"dnsTakeForwardStats", NULL, dns_take_forward_stats_js, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
