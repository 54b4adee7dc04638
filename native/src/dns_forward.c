/*
 * Forwarding from C: the names a server forwards (a marker in the table, put by JavaScript
 * once its handler chain passed the name to the upstreams) go upstream without a round
 * through JavaScript, as src/dns/upstream-udp.ts and forward.ts do it:
 *
 *   query (DNSF_FORWARD) -> a copy with a fresh random id of ours, not in flight
 *          -> sendto the first upstream from the forwarder's socket (one per server, its
 *             source port chosen at random by the kernel once, as upstream-udp.ts)
 *   upstream readable -> recvmmsg -> reply matched on id, source address and question
 *          (RFC 5452 section 9.1; anything else dropped and counted)
 *          -> the client's id back -> relayed as it came (its own OPT, or none: RFC 6891
 *             is the upstream's to answer) in one sendmmsg batch from the server's socket
 *          -> a cacheable answer (records, NOERROR or NXDOMAIN) also to JavaScript's
 *             forward cache (onAnswer), which puts it in the table for the next queries
 *          -> TC set, or larger than the client takes: the query back to JavaScript, which
 *             retries over TCP (RFC 7766 section 5) or cuts the reply (RFC 2181 section 9)
 *   tick -> a query unanswered after the timeout: counted, the next upstream asked with a
 *           new id; after the last, SERVFAIL (with our OPT if the query had one)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "dns_engine.h"

#define HEADER 12
#define ID_SPACE 65536
/* As upstream-udp.ts: at most half the ids in flight, so a fresh one is quick to find and hard to guess. */
#define MAX_INFLIGHT (ID_SPACE / 2)
#define TICK_MS 10
#define F_QR 0x8000
#define F_TC 0x0200
#define RCODE_MASK 0xf
#define RCODE_NOERROR 0
#define RCODE_SERVFAIL 2
#define RCODE_NXDOMAIN 3
#define RANDOM_IDS 256

static const uint32_t LATENCY_US[DNS_LATENCY_BUCKETS] = {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2000000};

struct pending {
  struct pending *prev, *next; /* the forwarder's FIFO: the timeout is one, so oldest deadline first */
  int64_t deadline_ms;
  uint64_t sent_ns;
  struct sockaddr_in client;
  struct dnsf_query q;
  uint16_t id;        /* ours, on the wire upstream */
  uint16_t client_id;
  uint8_t up;         /* the upstream asked */
  uint16_t len;
  uint8_t query[];    /* as sent upstream (our id) */
};

struct dns_forwarder {
  struct dns_server *srv;
  int fd;
  int open_handles;
  uv_poll_t poll;
  uv_timer_t timer;
  struct sockaddr_in up[DNS_MAX_UPSTREAMS];
  int nup;
  uint32_t timeout_ms;
  uint32_t inflight;
  struct pending *head, *tail;
  uint16_t rnd[RANDOM_IDS];
  unsigned nrnd;
  struct pending *slot[ID_SPACE];
};

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Random ids ready: 1, or 0 when the kernel's CSPRNG has none yet (early boot). */
static int have_random(struct dns_forwarder *f) {
  if (f->nrnd) return 1;
  if (getrandom(f->rnd, sizeof f->rnd, GRND_NONBLOCK) != (ssize_t)sizeof f->rnd) return 0;
  f->nrnd = RANDOM_IDS;
  return 1;
}

/* A fresh id not in flight, from the kernel's CSPRNG in batches (RFC 5452 section 9.2); -1 if none. */
static int fresh_id(struct dns_forwarder *f) {
  for (int tries = 0; tries < 64; tries++) {
    if (!have_random(f)) return -1;
    uint16_t id = f->rnd[--f->nrnd];
    if (!f->slot[id]) return id;
  }
  return -1;
}

static void unlink_pending(struct dns_forwarder *f, struct pending *p) {
  if (p->prev) p->prev->next = p->next;
  else f->head = p->next;
  if (p->next) p->next->prev = p->prev;
  else f->tail = p->prev;
  p->prev = p->next = NULL;
  f->slot[p->id] = NULL;
  f->inflight--;
}

static void on_tick(uv_timer_t *t);

/* Asks upstreams from `from` on until a send succeeds: 1, or 0 when none is left. */
static int ask(struct dns_forwarder *f, struct pending *p, int from) {
  struct dns_forward_stats *st = &f->srv->eng->fstats;
  for (int i = from; i < f->nup; i++) {
    int id = fresh_id(f);
    if (id < 0) return 0;
    put16(p->query, (uint16_t)id);
    if (sendto(f->fd, p->query, p->len, MSG_DONTWAIT, (const struct sockaddr *)&f->up[i], sizeof f->up[i]) != (ssize_t)p->len) {
      st->error++;
      continue;
    }
    p->id = (uint16_t)id;
    p->up = (uint8_t)i;
    p->sent_ns = now_ns();
    p->deadline_ms = (int64_t)(p->sent_ns / 1000000u) + f->timeout_ms;
    p->prev = f->tail;
    p->next = NULL;
    if (f->tail) f->tail->next = p;
    else f->head = p;
    f->tail = p;
    f->slot[id] = p;
    f->inflight++;
    if (!uv_is_active((uv_handle_t *)&f->timer)) uv_timer_start(&f->timer, on_tick, TICK_MS, TICK_MS);
    return 1;
  }
  return 0;
}

/* Every upstream failed: SERVFAIL, as forward.ts answers then. */
static void servfail(struct dns_forwarder *f, struct pending *p) {
  uint8_t out[DNSF_REPLY_MAX];
  put16(p->query, p->client_id);
  int len = dnsf_error_reply(p->query, &p->q, RCODE_SERVFAIL, out);
  struct dns_server *s = f->srv;
  if (sendto(s->fd, out, (size_t)len, MSG_DONTWAIT, (const struct sockaddr *)&p->client, sizeof p->client) < 0) dnsf_stats(s->eng->table)->send++;
  else dnsf_count_reply(s->eng->table, p->q.qtype, RCODE_SERVFAIL);
}

static void on_tick(uv_timer_t *t) {
  struct dns_forwarder *f = t->data;
  int64_t now = (int64_t)(now_ns() / 1000000u);
  while (f->head && f->head->deadline_ms <= now) {
    struct pending *p = f->head;
    unlink_pending(f, p);
    f->srv->eng->fstats.timeout++;
    if (!ask(f, p, p->up + 1)) {
      servfail(f, p);
      free(p);
    }
  }
  if (!f->head) uv_timer_stop(&f->timer);
}

int dns_forward_start(struct dns_forwarder *f, const uint8_t *req, size_t len, const struct sockaddr_in *client, const struct dnsf_query *q) {
  if (f->inflight >= MAX_INFLIGHT || f->nup == 0) return -EBUSY;
  /* No random ids yet: JavaScript forwards (crypto.randomInt waits for the pool) rather than SERVFAIL. */
  if (!have_random(f)) return -EAGAIN;
  struct pending *p = malloc(sizeof *p + len);
  if (!p) return -ENOMEM;
  memset(p, 0, sizeof *p);
  memcpy(p->query, req, len);
  p->len = (uint16_t)len;
  p->client_id = be16(req);
  p->client = *client;
  p->q = *q;
  f->srv->eng->fstats.forwarded++;
  if (!ask(f, p, 0)) {
    servfail(f, p);
    free(p);
  }
  return 0;
}

/* The reply repeats the question (RFC 5452 section 9.1): the name in any letter case
 * (0x20 randomisation upstream), type and class exactly. The query's question is plain
 * labels (dnsf_answer took it), so a byte-wise case fold cannot confuse a length byte. */
static int same_question(const struct pending *p, const uint8_t *r, size_t len) {
  size_t qend = p->q.qend;
  if (len < qend || be16(r + 4) != 1) return 0;
  for (size_t i = HEADER; i < qend - 4; i++) {
    uint8_t a = p->query[i], b = r[i];
    if (a != b && (a | 0x20) != (b | 0x20)) return 0;
    if (a != b && !(((a | 0x20) >= 'a') && ((a | 0x20) <= 'z'))) return 0;
  }
  return memcmp(p->query + qend - 4, r + qend - 4, 4) == 0;
}

static void observe(struct dns_forward_stats *st, uint64_t ns) {
  uint64_t us = ns / 1000u;
  int b = 0;
  while (b < DNS_LATENCY_BUCKETS && us > LATENCY_US[b]) b++;
  st->latency[b]++;
  st->latency_sum += (double)ns / 1e9;
}

static void on_upstream(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  struct dns_forwarder *f = h->data;
  struct dns_server *s = f->srv;
  struct dns_engine *e = s->eng;
  struct dns_forward_stats *st = &e->fstats;
  struct dns_js_item items[DNS_BATCH];
  struct pending *done[DNS_BATCH];
  for (int round = 0; round < DNS_ROUNDS && !s->closing; round++) {
    int n = dns_recv_batch(e, f->fd);
    if (n <= 0) break;
    int nout = 0, njs = 0, ndone = 0;
    for (int i = 0; i < n; i++) {
      uint8_t *b = e->in_buf[i];
      size_t len = e->in[i].msg_len;
      if ((e->in[i].msg_hdr.msg_flags & MSG_TRUNC) || len < HEADER || !(be16(b + 2) & F_QR)) {
        st->malformed++;
        continue;
      }
      struct pending *p = f->slot[be16(b)];
      if (!p) {
        st->bad_id++;
        continue;
      }
      const struct sockaddr_in *up = &f->up[p->up];
      if (e->from[i].sin_addr.s_addr != up->sin_addr.s_addr || e->from[i].sin_port != up->sin_port) {
        st->bad_source++;
        continue;
      }
      if (!same_question(p, b, len)) {
        st->bad_question++;
        continue;
      }
      unlink_pending(f, p);
      observe(st, now_ns() - p->sent_ns);
      done[ndone++] = p;
      put16(p->query, p->client_id);
      uint16_t flags = be16(b + 2);
      if ((flags & F_TC) || len > p->q.max) {
        st->forwarded--; /* JavaScript counts it when it asks again: one query, counted once */
        items[njs++] = (struct dns_js_item){.msg = p->query, .len = p->len, .from = &p->client};
        continue;
      }
      put16(b, p->client_id);
      e->out_iov[nout] = (struct iovec){b, len};
      e->out[nout].msg_hdr = (struct msghdr){.msg_name = &p->client, .msg_namelen = sizeof p->client, .msg_iov = &e->out_iov[nout], .msg_iovlen = 1};
      nout++;
      int rcode = flags & RCODE_MASK;
      dnsf_count_reply(e->table, p->q.qtype, rcode);
      /* Records or an SOA to keep (RFC 2308 section 5): JavaScript's forward cache decides. */
      if ((be16(b + 6) || be16(b + 8)) && (rcode == RCODE_NOERROR || rcode == RCODE_NXDOMAIN) && e->on_answer)
        items[njs++] = (struct dns_js_item){.msg = p->query, .len = p->len, .reply = b, .reply_len = len, .from = &p->client};
    }
    if (nout) dns_send_batch(s, nout);
    if (njs) dns_call_js(s, items, njs);
    for (int d = 0; d < ndone; d++) free(done[d]);
    if (n < DNS_BATCH) break;
  }
  if (!f->head && uv_is_active((uv_handle_t *)&f->timer)) uv_timer_stop(&f->timer);
}

struct dns_forwarder *dns_forward_new(struct dns_server *s, uv_loop_t *loop, const struct sockaddr_in *ups, int nup, uint32_t timeout_ms) {
  if (nup <= 0 || nup > DNS_MAX_UPSTREAMS || timeout_ms == 0) {
    errno = EINVAL;
    return NULL;
  }
  struct dns_forwarder *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->srv = s;
  memcpy(f->up, ups, (size_t)nup * sizeof *ups);
  f->nup = nup;
  f->timeout_ms = timeout_ms;
  f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in any = {.sin_family = AF_INET};
  if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&any, sizeof any) < 0) goto fail;
  int rc = uv_poll_init(loop, &f->poll, f->fd);
  if (rc == 0) {
    f->poll.data = f;
    f->open_handles++;
    rc = uv_timer_init(loop, &f->timer);
  }
  if (rc == 0) {
    f->timer.data = f;
    f->open_handles++;
    /* The servers keep the agent alive, not the forwarding. */
    uv_unref((uv_handle_t *)&f->timer);
    rc = uv_poll_start(&f->poll, UV_READABLE, on_upstream);
  }
  if (rc == 0) return f;
  dns_forward_close(f);
  errno = -rc;
  return NULL;
fail:;
  int err = errno;
  if (f->fd >= 0) close(f->fd);
  free(f);
  errno = err;
  return NULL;
}

static void on_closed(uv_handle_t *h) {
  struct dns_forwarder *f = h->data;
  if (--f->open_handles > 0) return;
  while (f->head) {
    struct pending *p = f->head;
    unlink_pending(f, p);
    free(p);
  }
  close(f->fd);
  free(f);
}

void dns_forward_close(struct dns_forwarder *f) {
  if (f->open_handles == 0) {
    close(f->fd);
    free(f);
    return;
  }
  uv_poll_stop(&f->poll);
  uv_timer_stop(&f->timer);
  int handles = f->open_handles;
  uv_close((uv_handle_t *)&f->poll, on_closed);
  if (handles > 1) uv_close((uv_handle_t *)&f->timer, on_closed);
}
