/*
 * Ready DNS answers in C (see dns_fast.h for the pipeline). The wire format, RFC 1035
 * section 4.1:
 *
 *    0     2       4        6        8        10       12
 *   | id  | flags | qdcount| ancount| nscount| arcount| qname (labels, 0) | qtype | qclass | [OPT]
 *
 *   OPT (RFC 6891 section 6.1.2):
 *   | 0 (root) | type 41 | class: UDP payload size | TTL: ext-rcode(8) version(8) DO(1) Z(15) | rdlen | options
 *
 * A reply is the request's bytes up to the end of its question (the client's id and letter
 * case come back as sent: RFC 1035 section 7.3, 0x20 randomisation works), then the entry's
 * records, whose owners point at the question (0xc00c, section 4.1.4), then our OPT when
 * the query had one. Only the plain shape is read here; the rest is JavaScript's.
 */
#include "dns_fast.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEADER 12
#define MAX_NAME 255
#define MAX_LABEL 63
#define QTYPE_OPT 41
#define CLASS_IN 1
#define OPT_BYTES 11
#define UDP_PLAIN_MAX 512
#define UDP_EDNS_MAX 4096
#define EDNS_VERSION 0
#define RCODE_BADVERS 16
#define DO_BIT 0x8000
#define F_QR 0x8000
#define F_OPCODE 0x7800
#define F_AA 0x0400
#define F_TC 0x0200
#define F_RD 0x0100
#define F_RA 0x0080
#define F_CD 0x0010 /* RFC 4035 section 3.2.2: copied from the query */
#define RCODE_MASK 0xf
/* Query bits that may change an upstream's answer: a separate cache entry each. */
#define VARIANT_DO 1
#define VARIANT_CD 2

struct rot {
  uint16_t an, ns, ar, len;
  uint32_t off;
};

struct entry {
  struct entry *next;
  uint32_t hash, scope;
  uint16_t server, qtype;
  uint8_t variant, name_len;
  uint16_t flags, nrot, next_rot, nttl;
  int64_t born_ms, expires_ms; /* expires_ms 0: until cleared */
  struct rot *rots;
  uint16_t *ttl_at;
  uint8_t *data;
  uint8_t name[];
};

struct dnsf_table {
  struct entry **buckets;
  uint32_t mask, count, max;
  /* Scope map: open addressing on the client address, 0 = empty slot. */
  uint32_t *scope_ip, *scope_id;
  uint32_t scope_mask;
  struct dnsf_stats stats;
};

/* Label byte -> lower case, 0 for bytes the fast path does not take (as wire.ts). */
static inline uint8_t label_char(uint8_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') return c;
  if (c >= 'A' && c <= 'Z') return (uint8_t)(c + 32);
  return 0;
}

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static inline void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a over the key. */
static uint32_t key_hash(uint16_t server, uint32_t scope, uint16_t qtype, uint8_t variant, const uint8_t *name, size_t n) {
  uint32_t h = 2166136261u;
  uint8_t head[9] = {server >> 8, server & 0xff, scope >> 24, scope >> 16, scope >> 8, scope & 0xff, qtype >> 8, qtype & 0xff, variant};
  for (size_t i = 0; i < sizeof head; i++) h = (h ^ head[i]) * 16777619u;
  for (size_t i = 0; i < n; i++) h = (h ^ name[i]) * 16777619u;
  return h;
}

struct dnsf_table *dnsf_table_new(uint32_t max_entries) {
  struct dnsf_table *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  uint32_t n = 1024;
  while (n < max_entries) n <<= 1;
  t->buckets = calloc(n, sizeof *t->buckets);
  if (!t->buckets) {
    free(t);
    return NULL;
  }
  t->mask = n - 1;
  t->max = max_entries;
  return t;
}

static void clear_entries(struct dnsf_table *t) {
  for (uint32_t i = 0; i <= t->mask; i++) {
    struct entry *e = t->buckets[i];
    while (e) {
      struct entry *next = e->next;
      free(e);
      e = next;
    }
    t->buckets[i] = NULL;
  }
  t->count = 0;
}

void dnsf_clear(struct dnsf_table *t) {
  clear_entries(t);
  free(t->scope_ip);
  free(t->scope_id);
  t->scope_ip = t->scope_id = NULL;
  t->scope_mask = 0;
}

void dnsf_table_free(struct dnsf_table *t) {
  if (!t) return;
  dnsf_clear(t);
  free(t->buckets);
  free(t);
}

struct dnsf_stats *dnsf_stats(struct dnsf_table *t) { return &t->stats; }

int dnsf_set_scopes(struct dnsf_table *t, const uint32_t *ips, const uint32_t *ids, size_t n) {
  free(t->scope_ip);
  free(t->scope_id);
  t->scope_ip = t->scope_id = NULL;
  t->scope_mask = 0;
  if (n == 0) return 0;
  uint32_t size = 16;
  while (size < n * 2) size <<= 1;
  t->scope_ip = calloc(size, sizeof *t->scope_ip);
  t->scope_id = calloc(size, sizeof *t->scope_id);
  if (!t->scope_ip || !t->scope_id) {
    dnsf_clear(t);
    return -ENOMEM;
  }
  t->scope_mask = size - 1;
  for (size_t i = 0; i < n; i++) {
    if (ips[i] == 0) continue;
    uint32_t s = (ips[i] * 2654435761u) & t->scope_mask;
    while (t->scope_ip[s] && t->scope_ip[s] != ips[i]) s = (s + 1) & t->scope_mask;
    t->scope_ip[s] = ips[i];
    t->scope_id[s] = ids[i];
  }
  return 0;
}

static uint32_t scope_of(const struct dnsf_table *t, uint32_t ip) {
  if (!t->scope_mask) return 0;
  uint32_t s = (ip * 2654435761u) & t->scope_mask;
  while (t->scope_ip[s]) {
    if (t->scope_ip[s] == ip) return t->scope_id[s];
    s = (s + 1) & t->scope_mask;
  }
  return 0;
}

/* The link that points at the entry of this key (or the chain's end). */
static struct entry **find(struct dnsf_table *t, uint16_t server, uint32_t scope, uint16_t qtype, uint8_t variant, const uint8_t *name, size_t n) {
  uint32_t h = key_hash(server, scope, qtype, variant, name, n);
  struct entry **link = &t->buckets[h & t->mask];
  for (; *link; link = &(*link)->next) {
    struct entry *e = *link;
    if (e->hash == h && e->server == server && e->scope == scope && e->qtype == qtype && e->variant == variant && e->name_len == n && memcmp(e->name, name, n) == 0) break;
  }
  return link;
}

int dnsf_put(struct dnsf_table *t, const struct dnsf_put_args *a) {
  if (a->name_len == 0 || a->name_len > MAX_NAME) return -EINVAL;
  if (a->nrot == 0 && (a->server == 0 || a->nttl || a->ttl_ms)) return -EINVAL; /* a forward marker: a server's, for good */
  if (a->nttl && (a->nrot != 1 || !a->ttl_ms)) return -EINVAL;
  size_t body = 0;
  for (uint16_t i = 0; i < a->nrot; i++) body += a->rot[i].len;
  for (uint16_t i = 0; i < a->nttl; i++)
    if ((size_t)a->ttl_at[i] + 4 > a->rot[0].len) return -EINVAL;
  size_t size = sizeof(struct entry) + a->name_len + a->nrot * sizeof(struct rot) + a->nttl * sizeof(uint16_t) + body + 8;
  struct entry *e = malloc(size);
  if (!e) return -ENOMEM;
  memset(e, 0, sizeof *e);
  /* Bounded: when full, start over (as the JavaScript cache does). */
  struct entry **link = find(t, a->server, a->scope, a->qtype, a->variant, a->name, a->name_len);
  if (*link) {
    struct entry *old = *link;
    *link = old->next;
    free(old);
    t->count--;
  } else if (t->count >= t->max) {
    clear_entries(t);
  }
  memcpy(e->name, a->name, a->name_len);
  uint8_t *p = e->name + a->name_len;
  p += (8 - ((uintptr_t)p & 7)) & 7; /* aligned for the arrays */
  e->rots = (struct rot *)p;
  p += a->nrot * sizeof(struct rot);
  e->ttl_at = (uint16_t *)p;
  p += a->nttl * sizeof(uint16_t);
  e->data = p;
  uint32_t off = 0;
  for (uint16_t i = 0; i < a->nrot; i++) {
    e->rots[i] = (struct rot){a->rot[i].an, a->rot[i].ns, a->rot[i].ar, a->rot[i].len, off};
    memcpy(e->data + off, a->rot[i].bytes, a->rot[i].len);
    off += a->rot[i].len;
  }
  if (a->nttl) memcpy(e->ttl_at, a->ttl_at, a->nttl * sizeof(uint16_t));
  e->hash = key_hash(a->server, a->scope, a->qtype, a->variant, a->name, a->name_len);
  e->scope = a->scope;
  e->server = a->server;
  e->qtype = a->qtype;
  e->variant = a->variant;
  e->name_len = (uint8_t)a->name_len;
  e->flags = a->flags;
  e->nrot = a->nrot;
  e->nttl = a->nttl;
  e->born_ms = now_ms();
  e->expires_ms = a->ttl_ms ? e->born_ms + a->ttl_ms : 0;
  struct entry **head = &t->buckets[e->hash & t->mask];
  e->next = *head;
  *head = e;
  t->count++;
  return 0;
}

/* Our OPT (RFC 6891 section 6.1.3): version 0, our payload size, DO echoed (RFC 3225). */
static void write_opt(uint8_t *p, int dnssec_ok, int ext_rcode) {
  p[0] = 0;
  put16(p + 1, QTYPE_OPT);
  put16(p + 3, UDP_EDNS_MAX);
  p[5] = (uint8_t)(ext_rcode >> 4);
  p[6] = EDNS_VERSION;
  put16(p + 7, dnssec_ok ? DO_BIT : 0);
  put16(p + 9, 0);
}

static inline void count_reply(struct dnsf_table *t, uint16_t qtype, int rcode) {
  t->stats.replies[qtype < DNSF_QTYPE_ROWS - 1 ? qtype : DNSF_QTYPE_ROWS - 1][rcode < DNSF_RCODE_COLS ? rcode : DNSF_RCODE_COLS - 1]++;
}

void dnsf_count_reply(struct dnsf_table *t, uint16_t qtype, int rcode) { count_reply(t, qtype, rcode); }

/* A reply of `rcode` with no records: the query's header and question, the query's
 * `keep` flags, RA, and our OPT if the query had one (the rcode's upper bits in it). */
static int error_reply(const uint8_t *req, size_t qend, int edns, int dnssec_ok, uint16_t keep, int rcode, uint8_t *out) {
  memcpy(out, req, qend);
  put16(out + 2, (uint16_t)(F_QR | F_RA | (be16(req + 2) & keep) | (rcode & RCODE_MASK)));
  put16(out + 6, 0);
  put16(out + 8, 0);
  put16(out + 10, edns ? 1 : 0);
  if (edns) write_opt(out + qend, dnssec_ok, rcode);
  return (int)(qend + (edns ? OPT_BYTES : 0));
}

int dnsf_error_reply(const uint8_t *req, const struct dnsf_query *q, int rcode, uint8_t *out) {
  return error_reply(req, q->qend, q->edns, q->dnssec_ok, F_RD, rcode, out);
}

int dnsf_answer(struct dnsf_table *t, uint16_t server, const uint8_t *req, size_t len, uint32_t client, uint8_t *out, size_t cap, struct dnsf_query *info) {
  if (len < HEADER) {
    t->stats.short_++;
    return DNSF_DROP;
  }
  if (len < HEADER + 5 || cap < DNSF_REPLY_MAX) return DNSF_MISS;
  uint16_t qflags = be16(req + 2);
  if (qflags & (F_QR | F_OPCODE)) return DNSF_MISS;
  if (be16(req + 4) != 1 || be16(req + 6) || be16(req + 8)) return DNSF_MISS;
  uint16_t arcount = be16(req + 10);
  if (arcount > 1) return DNSF_MISS;
  /* The question: simple labels, lowered into `name`. */
  uint8_t name[MAX_NAME + 1];
  size_t at = HEADER, n = 0;
  for (;;) {
    if (at >= len) return DNSF_MISS;
    uint8_t l = req[at++];
    if (l > MAX_LABEL) return DNSF_MISS;
    if (l == 0) break;
    if (at + l > len || n + l + 1 > MAX_NAME) return DNSF_MISS;
    if (n > 0) name[n++] = '.';
    for (uint8_t i = 0; i < l; i++) {
      uint8_t c = label_char(req[at + i]);
      if (!c) return DNSF_MISS;
      name[n++] = c;
    }
    at += l;
  }
  if (n == 0 || at + 4 > len) return DNSF_MISS;
  uint16_t qtype = be16(req + at);
  if (be16(req + at + 2) != CLASS_IN) return DNSF_MISS;
  size_t qend = at + 4;
  int edns = 0, dnssec_ok = 0;
  size_t max = UDP_PLAIN_MAX;
  if (arcount == 1) {
    const uint8_t *o = req + qend;
    if (qend + OPT_BYTES > len || o[0] != 0 || be16(o + 1) != QTYPE_OPT || qend + OPT_BYTES + be16(o + 9) != len) return DNSF_MISS;
    edns = 1;
    dnssec_ok = (be16(o + 7) & DO_BIT) != 0;
    size_t size = be16(o + 3);
    max = size < UDP_PLAIN_MAX ? UDP_PLAIN_MAX : size > UDP_EDNS_MAX ? UDP_EDNS_MAX : size;
    if (o[6] > EDNS_VERSION) {
      /* RFC 6891 section 6.1.3: BADVERS and our version, nothing else. */
      count_reply(t, qtype, RCODE_BADVERS);
      return error_reply(req, qend, 1, dnssec_ok, F_RD | F_CD, RCODE_BADVERS, out);
    }
  } else if (qend != len) {
    return DNSF_MISS;
  }
  uint32_t scope = scope_of(t, client);
  struct entry **link = find(t, 0, scope, qtype, 0, name, n);
  int forwarded = 0;
  if (!*link) {
    uint8_t variant = (dnssec_ok ? VARIANT_DO : 0) | (qflags & F_CD ? VARIANT_CD : 0);
    link = find(t, server, scope, qtype, variant, name, n);
    forwarded = 1;
  }
  struct entry *e = *link;
  if (!e) return DNSF_MISS;
  int64_t now = 0;
  if (e->expires_ms) {
    now = now_ms();
    if (now >= e->expires_ms) {
      *link = e->next;
      free(e);
      t->count--;
      return DNSF_MISS;
    }
  }
  if (e->nrot == 0) {
    *info = (struct dnsf_query){.qtype = qtype, .qend = (uint16_t)qend, .max = (uint16_t)max, .edns = (uint8_t)edns, .dnssec_ok = (uint8_t)dnssec_ok};
    return DNSF_FORWARD;
  }
  const struct rot *r = &e->rots[e->nrot == 1 ? 0 : e->next_rot++ % e->nrot];
  size_t opt = edns ? OPT_BYTES : 0;
  uint16_t flags = F_QR | F_RA | (qflags & (F_RD | F_CD)) | e->flags;
  size_t body = r->len;
  uint16_t an = r->an, ns = r->ns, ar = r->ar;
  if (qend + body + opt > max) {
    /* RFC 2181 section 9: what does not fit is not sent; TC tells the client to use TCP. */
    body = 0;
    an = ns = ar = 0;
    flags |= F_TC;
    t->stats.truncated++;
  }
  memcpy(out, req, qend);
  put16(out + 2, flags);
  put16(out + 6, an);
  put16(out + 8, ns);
  put16(out + 10, (uint16_t)(ar + (edns ? 1 : 0)));
  if (body) {
    memcpy(out + qend, e->data + r->off, body);
    /* Upstream answers: each TTL less the seconds the entry has been held (RFC 1035 section 7.4). */
    uint32_t held = (uint32_t)((now - e->born_ms) / 1000);
    for (uint16_t i = 0; i < e->nttl; i++) {
      uint8_t *p = out + qend + e->ttl_at[i];
      uint32_t ttl = be32(p);
      put32(p, ttl > held ? ttl - held : 0);
    }
  }
  if (edns) write_opt(out + qend + body, dnssec_ok, 0);
  count_reply(t, qtype, e->flags & RCODE_MASK);
  if (forwarded) t->stats.fwd_hits++;
  else t->stats.hits++;
  return (int)(qend + body + opt);
}
