/*
 * The DNS engine's state, shared by addon_dns.c (the servers' sockets, the Node-API calls)
 * and dns_forward.c (queries forwarded upstream from C). One engine per NodeDns; the loop
 * runs one callback at a time, so a batch's buffers are the engine's, shared by both.
 */
#ifndef SWARMNET_DNS_ENGINE_H
#define SWARMNET_DNS_ENGINE_H

#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "dns_fast.h"

#define DNS_BATCH 64
/* A wake-up serves at most this many batches, then lets the loop run other work. */
#define DNS_ROUNDS 16
#define DNS_MAX_SERVERS 1024
#define DNS_MAX_UPSTREAMS 16
/* Upstream latency buckets, microseconds: src/dns/metrics.ts UPSTREAM_BUCKETS (seconds). */
#define DNS_LATENCY_BUCKETS 12

struct dns_engine;
struct dns_forwarder;

struct dns_server {
  struct dns_engine *eng;
  uv_poll_t poll;
  int fd;
  uint16_t id;
  int closing;
  /* NULL: the server's misses and forwarded names are JavaScript's. */
  struct dns_forwarder *fwd;
};

/* What the forwarders did since the last dnsTakeForwardStats. */
struct dns_forward_stats {
  /* Queries sent upstream (once each, whatever the failovers). Signed: one handed back to
   * JavaScript is taken off here and counted there, in the same callback, so a scrape may
   * see -1 from C and +1 from JavaScript, never a total that goes down. */
  int64_t forwarded;
  uint64_t timeout, error;  /* exchanges with one upstream that failed (the next is tried) */
  /* Upstream datagrams dropped: unreadable (short, QR clear, truncated by the buffer), an id
   * not in flight, from another address than the one asked, another question (RFC 5452 section 9.1). */
  uint64_t malformed, bad_id, bad_source, bad_question;
  uint64_t latency[DNS_LATENCY_BUCKETS + 1];
  double latency_sum; /* seconds */
};

struct dns_engine {
  napi_env env;
  napi_ref on_miss;
  napi_ref on_answer; /* may be NULL: an engine made without it forwards nothing to cache */
  napi_async_context async;
  struct dnsf_table *table;
  struct dns_server *servers[DNS_MAX_SERVERS];
  struct dns_forward_stats fstats;
  /* One batch's buffers, shared by the servers and forwarders (the loop serves one at a time). */
  struct mmsghdr in[DNS_BATCH], out[DNS_BATCH];
  struct iovec in_iov[DNS_BATCH], out_iov[DNS_BATCH];
  struct sockaddr_in from[DNS_BATCH], to[DNS_BATCH];
  uint8_t in_buf[DNS_BATCH][DNSF_REPLY_MAX];
  uint8_t out_buf[DNS_BATCH][DNSF_REPLY_MAX];
  int miss[DNS_BATCH];
};

/* A datagram for JavaScript: a query to answer (reply NULL: onMiss), or an upstream's
 * reply to `msg` relayed from C for the forward cache (onAnswer). */
struct dns_js_item {
  const uint8_t *msg;
  size_t len;
  const uint8_t *reply;
  size_t reply_len;
  const struct sockaddr_in *from;
};

/* addon_dns.c: receives up to DNS_BATCH datagrams into e->in (recvmmsg's return); sends
 * e->out[0, n) from the server's socket; calls JavaScript for `items`. */
int dns_recv_batch(struct dns_engine *e, int fd);
void dns_send_batch(struct dns_server *s, int n);
void dns_call_js(struct dns_server *s, const struct dns_js_item *items, int n);

/* dns_forward.c */
/* A forwarder for `s` to `ups` (at most DNS_MAX_UPSTREAMS); NULL with errno set. */
struct dns_forwarder *dns_forward_new(struct dns_server *s, uv_loop_t *loop, const struct sockaddr_in *ups, int nup, uint32_t timeout_ms);
/* Sends `req` upstream; 0, or -errno when it is not taken (JavaScript answers it then). */
int dns_forward_start(struct dns_forwarder *f, const uint8_t *req, size_t len, const struct sockaddr_in *client, const struct dnsf_query *q);
/* Stops and frees (after libuv closed its handles); queries in flight get no reply. */
void dns_forward_close(struct dns_forwarder *f);

#endif
