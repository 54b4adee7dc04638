/*
 * Pools: the tasks of one listener as JS pushed them (relay_pool_set), the scheduler
 * over them, passive health and the counters, all under pool->lock.
 *
 * The schedulers are those of src/mesh/sched/, step for step, so a flow lands on the
 * task the JS relay would have chosen: rr, smooth wrr, lc/wlc with a rotating start,
 * sh and mh on tables JS built (the same on every node) looked up by hash32 of the
 * client address (src/mesh/hash.ts). Pool.pick's rule is kept: tasks in
 * back-off are skipped unless every untried task is backing off.
 */
#include "relay_engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* PROXY protocol v2 (haproxy proxy-protocol.txt section 2.2): signature, PROXY command, TCP over IPv4. */
static const char PROXY_V2_SIGNATURE[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
#define PROXY_V2_VERSION_CMD 0x21
#define PROXY_V2_TCP4 0x11
#define PROXY_V2_TCP4_LEN 12
/* hash32 constants (FNV-1a, then murmur3's fmix32), as src/mesh/hash.ts; probe seeds as src/mesh/sched/mh.ts */
#define FNV_OFFSET 0x811c9dc5u
#define FNV_PRIME 0x01000193u

uint32_t relay_hash32(const char *s, size_t n, uint32_t seed) {
  uint32_t h = FNV_OFFSET ^ seed;
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)s[i];
    h *= FNV_PRIME;
  }
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

struct pool *pool_find(struct relay_engine *e, uint32_t lid) {
  for (struct pool *p = e->pools; p; p = p->next)
    if (p->cfg.lid == lid) return p;
  return NULL;
}

static void free_backends(struct pool *p) {
  while (p->all) {
    struct backend *b = p->all;
    p->all = b->next;
    free(b);
  }
}

void pool_put(struct relay_engine *e, struct pool *p) {
  if (atomic_fetch_sub(&p->refs, 1) != 1) return;
  pthread_mutex_lock(&e->lock);
  for (struct pool **pp = &e->pools; *pp; pp = &(*pp)->next) {
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  }
  pthread_mutex_unlock(&e->lock);
  for (int i = 0; i < p->nlfd; i++) close(p->lfd[i]);
  free(p->lfd);
  free_backends(p);
  free(p->list);
  free(p->mh);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

/* ---- scheduling (under p->lock) ---- */

static int tried(const struct relay *r, const struct backend *b) {
  for (int i = 0; i < r->ntried; i++)
    if (r->tried[i] == b) return 1;
  return 0;
}

/* pass 0: not tried and not backing off; pass 1: not tried */
static int usable(const struct relay *r, const struct backend *b, int pass, int64_t now) {
  return !tried(r, b) && (pass == 1 || b->down_until <= now);
}

static struct backend *pick_rr(struct pool *p, const struct relay *r, int pass, int64_t now) {
  int n = p->nlist;
  for (int i = 0; i < n; i++) {
    uint32_t idx = (p->rr_next + (uint32_t)i) % (uint32_t)n;
    if (usable(r, p->list[idx], pass, now)) {
      p->rr_next = idx + 1;
      return p->list[idx];
    }
  }
  return NULL;
}

/* Smooth WRR (nginx): each usable task gains its weight, the richest pays the total. */
static struct backend *pick_wrr(struct pool *p, const struct relay *r, int pass, int64_t now) {
  struct backend *best = NULL;
  int64_t total = 0;
  for (int i = 0; i < p->nlist; i++) {
    struct backend *b = p->list[i];
    if (!usable(r, b, pass, now)) continue;
    b->credit += b->weight;
    total += b->weight;
    if (!best || b->credit > best->credit) best = b;
  }
  if (best) best->credit -= total;
  return best;
}

static int lc_less(const struct backend *a, const struct backend *b, int weighted) {
  if (!weighted) return a->active < b->active;
  return (int64_t)a->active * b->weight < (int64_t)b->active * a->weight;
}

static struct backend *pick_lc(struct pool *p, const struct relay *r, int pass, int64_t now, int weighted) {
  int n = p->nlist;
  struct backend *best = NULL;
  for (int i = 0; i < n; i++) {
    struct backend *b = p->list[(p->lc_start + (uint32_t)i) % (uint32_t)n];
    if (!usable(r, b, pass, now)) continue;
    if (!best || lc_less(b, best, weighted)) best = b;
  }
  p->lc_start = n ? (p->lc_start + 1) % (uint32_t)n : 0;
  return best;
}

/* The client address as text, the key sh and mh hash (as JS's a.b.c.d). */
static size_t ip_text(uint32_t ip, char *out) {
  return (size_t)snprintf(out, 16, "%u.%u.%u.%u", ip & 255, (ip >> 8) & 255, (ip >> 16) & 255, ip >> 24);
}

static struct backend *pick_sh(struct pool *p, const struct relay *r, int pass, int64_t now) {
  if (p->nlist == 0) return NULL;
  char key[16];
  uint32_t h = relay_hash32(key, ip_text(r->client_ip, key), 0);
  for (uint32_t off = 0; off < RELAY_SH_SIZE; off++) {
    struct backend *b = p->list[p->sh[(h + off) % RELAY_SH_SIZE]];
    if (usable(r, b, pass, now)) return b;
  }
  return NULL;
}

/* Maglev: the client address, then "addr#probe" on an unusable task (still the same on every node). */
static struct backend *pick_mh(struct pool *p, const struct relay *r, int pass, int64_t now) {
  if (p->nlist == 0 || p->mh_size == 0) return NULL;
  char key[32];
  size_t base = ip_text(r->client_ip, key);
  for (int probe = 0; probe <= p->nlist * 4; probe++) {
    size_t n = probe == 0 ? base : base + (size_t)snprintf(key + base, sizeof key - base, "#%d", probe);
    struct backend *b = p->list[p->mh[relay_hash32(key, n, 0) % p->mh_size]];
    if (usable(r, b, pass, now)) return b;
  }
  for (int i = 0; i < p->nlist; i++)
    if (usable(r, p->list[i], pass, now)) return p->list[i];
  return NULL;
}

static struct backend *sched_pick(struct pool *p, const struct relay *r, int pass, int64_t now) {
  switch (p->lb) {
  case LB_WRR: return pick_wrr(p, r, pass, now);
  case LB_LC: return pick_lc(p, r, pass, now, 0);
  case LB_WLC: return pick_lc(p, r, pass, now, 1);
  case LB_SH: return pick_sh(p, r, pass, now);
  case LB_MH: return pick_mh(p, r, pass, now);
  default: return pick_rr(p, r, pass, now);
  }
}

static void release_backend(struct pool *p, struct backend *b) {
  if (--b->refs > 0 || b->known) return;
  for (struct backend **pp = &p->all; *pp; pp = &(*pp)->next) {
    if (*pp == b) {
      *pp = b->next;
      free(b);
      return;
    }
  }
}

static void detach(struct relay *r) {
  if (!r->attached) return;
  r->attached = 0;
  r->b->active--;
}

struct backend *pool_pick(struct pool *p, struct relay *r, int64_t now) {
  pthread_mutex_lock(&p->lock);
  struct backend *b = sched_pick(p, r, 0, now);
  if (!b) b = sched_pick(p, r, 1, now);
  int limit = p->cfg.retries < RELAY_MAX_TRIES - 1 ? p->cfg.retries : RELAY_MAX_TRIES - 1;
  if (!b || r->ntried > limit) {
    p->no_backend++;
    pthread_mutex_unlock(&p->lock);
    return NULL;
  }
  r->tried[r->ntried++] = b;
  if (r->b != b) {
    if (r->b) release_backend(p, r->b);
    b->refs++;
    r->b = b;
  }
  r->attached = 1;
  b->active++;
  b->total++;
  pthread_mutex_unlock(&p->lock);
  return b;
}

static void count_errno(struct backend *b, int err) {
  int free_slot = -1;
  for (int i = 0; i < RELAY_ERRNO_SLOTS; i++) {
    if (b->err_count[i] && b->err_no[i] == err) {
      b->err_count[i]++;
      return;
    }
    if (!b->err_count[i] && free_slot < 0) free_slot = i;
  }
  int slot = free_slot >= 0 ? free_slot : RELAY_ERRNO_SLOTS - 1; /* full: the last slot takes the rest */
  if (free_slot >= 0) b->err_no[slot] = err;
  b->err_count[slot]++;
}

void pool_connect_timed(struct backend *b, int64_t ns) {
  static const uint64_t bounds[RELAY_CONNECT_BUCKETS] = RELAY_CONNECT_BOUNDS_NS;
  int i = 0;
  while (i < RELAY_CONNECT_BUCKETS && (uint64_t)ns > bounds[i]) i++;
  atomic_fetch_add_explicit(&b->connect_count[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&b->connect_sum_ns, (uint64_t)ns, memory_order_relaxed);
}

void pool_failed(struct pool *p, struct relay *r, int err, int empty, int64_t now) {
  pthread_mutex_lock(&p->lock);
  struct backend *b = r->b;
  detach(r);
  if (b) {
    if (empty) b->empty++;
    else count_errno(b, err);
    b->failures++;
    b->retried++;
    int64_t wait = p->cfg.backoff_base_ms;
    for (uint32_t i = 1; i < b->failures && wait < p->cfg.backoff_max_ms; i++) wait *= 2;
    if (wait > p->cfg.backoff_max_ms) wait = p->cfg.backoff_max_ms;
    b->down_until = now + wait;
  }
  p->retries++;
  pthread_mutex_unlock(&p->lock);
}

void pool_done(struct pool *p, struct relay *r, int err) {
  pthread_mutex_lock(&p->lock);
  struct backend *b = r->b;
  detach(r);
  if (b) {
    if (r->bytes_out > 0) {
      b->failures = 0;
      b->down_until = 0;
    }
    b->bytes_in += r->bytes_in;
    b->bytes_out += r->bytes_out;
    if (err && err != ECANCELED) b->reset++; /* ECANCELED: our own close */
    release_backend(p, b);
    r->b = NULL;
  }
  p->active--;
  p->bytes_in += r->bytes_in;
  p->bytes_out += r->bytes_out;
  pthread_mutex_unlock(&p->lock);
}

/*
 * v1 (section 2.1): "PROXY TCP4 <src> <dst> <sport> <dport>\r\n"
 * v2 (section 2.2): signature | ver/cmd | fam/proto | len (16 bit) | src | dst | sport | dport
 */
size_t pool_proxy_header(const struct pool *p, const struct relay *r, char *buf) {
  if (p->cfg.proxy == 1) {
    char src[16], dst[16];
    ip_text(r->client_ip, src);
    ip_text(r->local_ip, dst);
    return (size_t)snprintf(buf, 108, "PROXY TCP4 %s %s %u %u\r\n", src, dst, r->client_port, r->local_port);
  }
  uint8_t *o = (uint8_t *)buf;
  memcpy(o, PROXY_V2_SIGNATURE, sizeof PROXY_V2_SIGNATURE);
  o[12] = PROXY_V2_VERSION_CMD;
  o[13] = PROXY_V2_TCP4;
  o[14] = 0;
  o[15] = PROXY_V2_TCP4_LEN;
  memcpy(o + 16, &r->client_ip, 4);
  memcpy(o + 20, &r->local_ip, 4);
  uint16_t sport = htons(r->client_port), dport = htons(r->local_port);
  memcpy(o + 24, &sport, 2);
  memcpy(o + 26, &dport, 2);
  return 16 + PROXY_V2_TCP4_LEN;
}

/* ---- control (JS thread) ---- */

static struct backend *find_backend(struct pool *p, uint32_t bid) {
  for (struct backend *b = p->all; b; b = b->next)
    if (b->bid == bid && b->known) return b;
  return NULL;
}

int relay_pool_set(struct relay_engine *e, const struct relay_pool_args *a) {
  if (a->lb < LB_RR || a->lb > LB_MH || a->nlist < 0 || a->nknown < 0) return -EINVAL;
  if (a->lb == LB_SH && a->nlist > 0 && !a->sh) return -EINVAL;
  if (a->lb == LB_MH && a->nlist > 0 && (!a->mh || a->mh_size == 0)) return -EINVAL;
  for (int i = 0; i < RELAY_SH_SIZE && a->lb == LB_SH && a->nlist > 0; i++)
    if (a->sh[i] < 0 || a->sh[i] >= a->nlist) return -EINVAL;
  for (uint32_t i = 0; i < a->mh_size && a->lb == LB_MH && a->nlist > 0; i++)
    if (a->mh[i] < 0 || a->mh[i] >= a->nlist) return -EINVAL;
  struct backend **list = calloc((size_t)a->nlist + 1, sizeof *list);
  int32_t *mh = a->lb == LB_MH && a->mh_size ? malloc(a->mh_size * sizeof *mh) : NULL;
  if (!list || (a->lb == LB_MH && a->mh_size && !mh)) {
    free(list);
    free(mh);
    return -ENOMEM;
  }
  pthread_mutex_lock(&e->lock);
  struct pool *p = pool_find(e, a->lid);
  if (!p) {
    pthread_mutex_unlock(&e->lock);
    free(list);
    free(mh);
    return -ENOENT;
  }
  pthread_mutex_lock(&p->lock);
  int rc = 0;
  for (struct backend *b = p->all; b; b = b->next) b->known = 0;
  for (int i = 0; i < a->nknown && rc == 0; i++) {
    const struct relay_backend_spec *s = &a->known[i];
    struct backend *b = NULL;
    for (struct backend *x = p->all; x; x = x->next)
      if (x->bid == s->bid) b = x;
    if (!b) {
      b = calloc(1, sizeof *b);
      if (!b) {
        rc = -ENOMEM;
        break;
      }
      b->bid = s->bid;
      b->next = p->all;
      p->all = b;
    }
    b->known = 1;
    b->ip = s->ip;
    b->port = s->port;
    b->weight = s->weight;
  }
  for (int i = 0; i < a->nlist && rc == 0; i++)
    if (!(list[i] = find_backend(p, a->list[i]))) rc = -EINVAL;
  if (rc == 0) {
    /* wrr: a task that left the list starts over with no credit when it comes back */
    for (struct backend *b = p->all; b; b = b->next) {
      int listed = 0;
      for (int i = 0; i < a->nlist && !listed; i++) listed = list[i] == b;
      if (!listed || p->lb != a->lb) b->credit = 0;
    }
    if (p->lb != a->lb) p->rr_next = p->lc_start = 0;
    p->lb = a->lb;
    free(p->list);
    p->list = list;
    p->nlist = a->nlist;
    if (a->lb == LB_SH && a->nlist > 0) memcpy(p->sh, a->sh, sizeof p->sh);
    free(p->mh);
    p->mh = mh;
    p->mh_size = mh ? a->mh_size : 0;
    if (mh) memcpy(mh, a->mh, a->mh_size * sizeof *mh);
    list = NULL;
    mh = NULL;
  }
  /* forget tasks JS forgot once no relay points at them */
  for (struct backend **pp = &p->all; *pp;) {
    struct backend *b = *pp;
    if (!b->known && b->refs == 0) {
      *pp = b->next;
      free(b);
    } else {
      pp = &b->next;
    }
  }
  pthread_mutex_unlock(&p->lock);
  pthread_mutex_unlock(&e->lock);
  free(list);
  free(mh);
  return rc;
}

int relay_pool_stats(struct relay_engine *e, uint32_t lid, struct relay_pool_stats *ps, struct relay_backend_stats *bs, int max) {
  pthread_mutex_lock(&e->lock);
  struct pool *p = pool_find(e, lid);
  if (!p) {
    pthread_mutex_unlock(&e->lock);
    return -ENOENT;
  }
  int64_t now = relay_now_ms();
  pthread_mutex_lock(&p->lock);
  *ps = (struct relay_pool_stats){p->active, p->total, p->bytes_in, p->bytes_out, p->no_backend, p->retries, p->listening};
  int n = 0;
  for (struct backend *b = p->all; b; b = b->next, n++) {
    if (n >= max) continue;
    struct relay_backend_stats *o = &bs[n];
    *o = (struct relay_backend_stats){b->bid, b->active, b->total, b->bytes_in, b->bytes_out, b->failures, b->down_until > now ? b->down_until - now : 0, b->empty, b->reset, {0}, {0}, {0}, 0, 0};
    memcpy(o->err_no, b->err_no, sizeof o->err_no);
    memcpy(o->err_count, b->err_count, sizeof o->err_count);
    for (int i = 0; i <= RELAY_CONNECT_BUCKETS; i++) o->connect_count[i] = atomic_load_explicit(&b->connect_count[i], memory_order_relaxed);
    o->connect_sum_ns = atomic_load_explicit(&b->connect_sum_ns, memory_order_relaxed);
    o->retried = b->retried;
  }
  pthread_mutex_unlock(&p->lock);
  pthread_mutex_unlock(&e->lock);
  return n;
}
