/*
 * The UDP engine's tables (udp_engine.h): flows by (listener, client), tasks (dst)
 * by address with the pool sockets each flow toward them holds, the unanswered lists
 * early drop takes from, idle expiry, and the events that tell JS a flow ended.
 *
 * Flow life:  new (unbound) --JS gives a task--> bound --ICMP error--> unbound --> bound...
 *             any --idle, early drop, no port, no task, closed--> dead (freed at reap)
 */
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "udp_engine.h"

/* Tasks are few; this table only has to make reply lookups O(1). */
#define DST_BUCKETS 4096
/* A task without flows keeps its socket order this long (a late reply then finds no
 * flow rather than a new one), and the table is swept this often. */
#define DST_KEEP_MS 60000
#define DST_SWEEP_MS 10000
/* Freed flows kept for reuse; beyond, memory goes back after a flood. */
#define FREE_FLOWS_KEEP 4096
/* Hash buckets: a power of two at least max_flows, within these. */
#define BUCKETS_MIN 1024u
#define BUCKETS_MAX (1u << 22)

int64_t udp_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* murmur3's fmix64 of the key xor a random seed: clients cannot aim at one chain. */
static uint32_t mix(uint64_t x, uint64_t seed) {
  x ^= seed;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return (uint32_t)x;
}

static uint32_t flow_hash(const struct udp_engine *e, const struct udp_listener *l, const struct sockaddr_in *c) {
  uint64_t k = (uint64_t)c->sin_addr.s_addr << 32 | (uint64_t)c->sin_port << 16 | (l->lid & 0xffff);
  return mix(k, e->seed) & e->mask;
}

static uint32_t dst_hash(const struct udp_engine *e, uint32_t ip, uint16_t port_net) {
  return mix((uint64_t)ip << 16 | port_net, e->seed) & e->dmask;
}

int udp_table_init(struct udp_engine *e) {
  uint32_t n = BUCKETS_MIN;
  while (n < e->cfg.max_flows && n < BUCKETS_MAX) n <<= 1;
  e->buckets = calloc(n, sizeof *e->buckets);
  e->dbuckets = calloc(DST_BUCKETS, sizeof *e->dbuckets);
  if (!e->buckets || !e->dbuckets) return -ENOMEM;
  e->mask = n - 1;
  e->dmask = DST_BUCKETS - 1;
  if (getrandom(&e->seed, sizeof e->seed, 0) != sizeof e->seed) e->seed = (uint64_t)udp_now_ms() * 0x9e3779b97f4a7c15ULL;
  link_init(&e->unanswered);
  return 0;
}

struct udp_listener *udp_listener_find(const struct udp_engine *e, uint32_t lid) {
  for (struct udp_listener *l = e->listeners; l; l = l->next)
    if (l->lid == lid) return l;
  return NULL;
}

struct udp_flow *udp_flow_find(struct udp_engine *e, struct udp_listener *l, const struct sockaddr_in *c) {
  for (struct udp_flow *f = e->buckets[flow_hash(e, l, c)]; f; f = f->hnext)
    if (f->client.sin_addr.s_addr == c->sin_addr.s_addr && f->client.sin_port == c->sin_port && f->l == l) return f;
  return NULL;
}

struct udp_flow *udp_flow_new(struct udp_engine *e, struct udp_listener *l, const struct sockaddr_in *c) {
  if (e->nflows >= e->cfg.max_flows) {
    struct link *v = link_first(&e->unanswered);
    if (!v) {
      e->stats[UDP_S_TABLE_FULL]++;
      return NULL;
    }
    e->stats[UDP_S_EARLY_DROP]++;
    udp_flow_close(e, container_of(v, struct udp_flow, un), UDP_R_EARLY_DROP);
  }
  struct udp_flow *f = e->free_flows;
  if (f) {
    e->free_flows = f->hnext;
    e->nfree--;
  } else if (!(f = malloc(sizeof *f))) {
    e->stats[UDP_S_TABLE_FULL]++;
    return NULL;
  }
  memset(f, 0, sizeof *f);
  f->l = l;
  f->client.sin_family = AF_INET;
  f->client.sin_addr = c->sin_addr;
  f->client.sin_port = c->sin_port;
  f->last_ms = e->now;
  uint32_t h = flow_hash(e, l, c);
  f->hnext = e->buckets[h];
  e->buckets[h] = f;
  link_tail(&l->lru, &f->lru);
  e->nflows++;
  return f;
}

struct udp_dst *udp_dst_find(const struct udp_engine *e, uint32_t ip, uint16_t port_net) {
  for (struct udp_dst *d = e->dbuckets[dst_hash(e, ip, port_net)]; d; d = d->next)
    if (d->addr.sin_addr.s_addr == ip && d->addr.sin_port == port_net) return d;
  return NULL;
}

static struct udp_dst *dst_get(struct udp_engine *e, uint32_t ip, uint16_t port_net) {
  struct udp_dst *d = udp_dst_find(e, ip, port_net);
  if (d) return d;
  if (!(d = calloc(1, sizeof *d))) return NULL;
  d->addr.sin_family = AF_INET;
  d->addr.sin_addr.s_addr = ip;
  d->addr.sin_port = port_net;
  link_init(&d->unanswered);
  d->idle_since = e->now;
  uint32_t h = dst_hash(e, ip, port_net);
  d->next = e->dbuckets[h];
  e->dbuckets[h] = d;
  return d;
}

/* Room for index `hw` in by_sock and the free bitmap. */
static int dst_grow(struct udp_dst *d, uint32_t max) {
  uint32_t cap = d->cap ? d->cap * 2 : 64;
  if (cap > max) cap = (max + 63) & ~63u;
  struct udp_flow **by = calloc(cap, sizeof *by);
  uint64_t *bits = calloc(cap / 64, sizeof *bits);
  if (!by || !bits) {
    free(by);
    free(bits);
    return -ENOMEM;
  }
  if (d->cap) {
    memcpy(by, d->by_sock, d->cap * sizeof *by);
    memcpy(bits, d->free, d->cap / 64 * sizeof *bits);
  }
  free(d->by_sock);
  free(d->free);
  d->by_sock = by;
  d->free = bits;
  d->cap = cap;
  return 0;
}

static int is_free(const struct udp_dst *d, uint32_t k) {
  return k < d->hw && (d->free[k / 64] >> (k % 64) & 1);
}

/* The first free index at or after `from` and below `to`; `to` when none. */
static uint32_t next_free(const struct udp_dst *d, uint32_t from, uint32_t to) {
  while (from < to) {
    uint64_t w = d->free[from / 64] >> (from % 64);
    if (w) {
      uint32_t k = from + (uint32_t)__builtin_ctzll(w);
      return k < to ? k : to;
    }
    from = (from / 64 + 1) * 64;
  }
  return to;
}

/* A pool index free toward d: the hint, else next-fit from the cursor, else the next
 * never used (opening the pool socket if no task has needed that many yet); -errno
 * when none. */
static int dst_take(struct udp_engine *e, struct udp_dst *d, uint32_t hint) {
  uint32_t k = hint;
  if (!is_free(d, k)) {
    uint32_t c = d->cursor < d->hw ? d->cursor : 0;
    k = next_free(d, c, d->hw);
    if (k == d->hw) {
      k = next_free(d, 0, c);
      if (k == c) k = UINT32_MAX;
    }
    if (k != UINT32_MAX) d->cursor = k + 1;
  }
  if (k != UINT32_MAX) {
    d->free[k / 64] &= ~(1ULL << (k % 64));
    return (int)k;
  }
  if (d->hw >= e->cfg.max_sockets) return -EADDRNOTAVAIL;
  if (d->hw >= d->cap && dst_grow(d, e->cfg.max_sockets) < 0) return -ENOMEM;
  if (d->hw >= e->nsocks) {
    int rc = udp_pool_open(e);
    if (rc < 0) {
      e->stats[UDP_S_SOCKET_ERRORS]++;
      return rc;
    }
  }
  return (int)d->hw++;
}

int udp_flow_bind(struct udp_engine *e, struct udp_flow *f, uint32_t tag, uint32_t ip, uint16_t port_net, uint32_t *hint) {
  struct udp_dst *d = dst_get(e, ip, port_net);
  if (!d) return -ENOMEM;
  int k = dst_take(e, d, *hint);
  if (k == -EADDRNOTAVAIL) {
    /* Every pool socket carries a flow toward this task: the oldest of them that was
     * never answered makes room, as on a full table. */
    struct link *v = link_first(&d->unanswered);
    if (v) {
      e->stats[UDP_S_EARLY_DROP]++;
      udp_flow_close(e, container_of(v, struct udp_flow, dun), UDP_R_EARLY_DROP);
      k = dst_take(e, d, *hint);
    }
  }
  if (k < 0) {
    e->stats[UDP_S_NO_PORT]++;
    return k;
  }
  *hint = (uint32_t)k;
  d->by_sock[k] = f;
  d->nflows++;
  f->dst = d;
  f->sock = (uint32_t)k;
  f->tag = tag;
  if (f->tries++ == 0) e->stats[UDP_S_FLOWS_TOTAL]++;
  if (!f->answered) {
    link_tail(&e->unanswered, &f->un);
    link_tail(&d->unanswered, &f->dun);
  }
  return 0;
}

void udp_flow_unbind(struct udp_engine *e, struct udp_flow *f) {
  struct udp_dst *d = f->dst;
  if (!d) return;
  d->by_sock[f->sock] = NULL;
  d->free[f->sock / 64] |= 1ULL << (f->sock % 64);
  if (--d->nflows == 0) d->idle_since = e->now;
  link_del(&f->un);
  link_del(&f->dun);
  f->dst = NULL;
}

void udp_flow_answered(struct udp_engine *e, struct udp_flow *f) {
  f->answered = 1;
  link_del(&f->un);
  link_del(&f->dun);
}

static void unhash(struct udp_engine *e, struct udp_flow *f) {
  struct udp_flow **p = &e->buckets[flow_hash(e, f->l, &f->client)];
  while (*p && *p != f) p = &(*p)->hnext;
  if (*p) *p = f->hnext;
}

static void retire(struct udp_engine *e, struct udp_flow *f) {
  udp_flow_unbind(e, f);
  unhash(e, f);
  link_del(&f->lru);
  e->nflows--;
  f->dead = 1;
  f->hnext = e->reap;
  e->reap = f;
}

void udp_flow_discard(struct udp_engine *e, struct udp_flow *f) {
  if (!f->dead) retire(e, f);
}

void udp_flow_close(struct udp_engine *e, struct udp_flow *f, int reason) {
  if (f->dead) return;
  if (f->counted) udp_emit(e, UDP_EV_CLOSED, f, f->tag, reason);
  retire(e, f);
}

void udp_emit(struct udp_engine *e, int type, const struct udp_flow *f, uint32_t tag, double arg) {
  if (e->nev == UDP_EVENT_MAX) udp_flush_events(e);
  struct udp_event *ev = &e->hooks.ev[e->nev++];
  ev->type = type;
  ev->lid = f->l->lid;
  ev->tag = tag;
  ev->arg = arg;
  ev->bytes_in = (double)f->bytes_in;
  ev->bytes_out = (double)f->bytes_out;
  ev->client_ip = f->client.sin_addr.s_addr;
  ev->client_port = ntohs(f->client.sin_port);
}

void udp_flush_events(struct udp_engine *e) {
  unsigned n = e->nev;
  if (!n) return;
  e->nev = 0;
  e->in_hook++;
  e->hooks.events(e->hooks.ctx, n);
  e->in_hook--;
}

static void sweep_dsts(struct udp_engine *e) {
  for (uint32_t i = 0; i <= e->dmask; i++) {
    struct udp_dst **p = &e->dbuckets[i];
    while (*p) {
      struct udp_dst *d = *p;
      if (d->nflows == 0 && e->now - d->idle_since >= DST_KEEP_MS) {
        *p = d->next;
        free(d->by_sock);
        free(d->free);
        free(d);
      } else {
        p = &d->next;
      }
    }
  }
}

void udp_expire(struct udp_engine *e) {
  for (struct udp_listener *l = e->listeners; l; l = l->next) {
    struct link *v;
    while ((v = link_first(&l->lru))) {
      struct udp_flow *f = container_of(v, struct udp_flow, lru);
      if (e->now - f->last_ms < (int64_t)l->idle_ms) break;
      udp_flow_close(e, f, UDP_R_IDLE);
    }
  }
  if (e->now - e->last_dst_sweep >= DST_SWEEP_MS) {
    e->last_dst_sweep = e->now;
    sweep_dsts(e);
  }
}

void udp_reap(struct udp_engine *e) {
  while (e->reap) {
    struct udp_flow *f = e->reap;
    e->reap = f->hnext;
    if (e->nfree >= FREE_FLOWS_KEEP) {
      free(f);
      continue;
    }
    f->hnext = e->free_flows;
    e->free_flows = f;
    e->nfree++;
  }
}

static void free_chain(struct udp_flow *f) {
  while (f) {
    struct udp_flow *next = f->hnext;
    free(f);
    f = next;
  }
}

void udp_table_free(struct udp_engine *e) {
  if (e->buckets)
    for (uint32_t i = 0; i <= e->mask; i++) free_chain(e->buckets[i]);
  free_chain(e->reap);
  free_chain(e->free_flows);
  if (e->dbuckets)
    for (uint32_t i = 0; i <= e->dmask; i++) {
      struct udp_dst *d = e->dbuckets[i];
      while (d) {
        struct udp_dst *next = d->next;
        free(d->by_sock);
        free(d->free);
        free(d);
        d = next;
      }
    }
  free(e->buckets);
  free(e->dbuckets);
}
