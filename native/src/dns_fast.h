/*
 * The DNS serving hot path in C: ready answers in a hash table, looked up and copied
 * behind the request's own header and question (the JS fast path, src/dns/wire.ts, in C).
 *
 *   datagram -> dnsf_answer: plain query? (header, one question of simple labels, class IN,
 *               at most an OPT ending the message) -> client's scope (IPv4 -> scope id)
 *            -> entry (0, scope, qtype, name) or (server, scope, qtype, name, variant)
 *            -> reply: request header and question + records (+ our OPT), TC when too big
 *            -> anything else: DNSF_MISS (JavaScript answers it)
 *
 * The table is filled by JavaScript (dnsf_put) with the records it built, and emptied by
 * it when the view changes (dnsf_clear). Server 0 holds the cluster's answers (shared by
 * every server of the node); a server's own ids hold its cached upstream answers, which
 * expire and whose TTLs count down (RFC 1035 section 7.4, RFC 2308 section 5).
 */
#ifndef SWARMNET_DNS_FAST_H
#define SWARMNET_DNS_FAST_H

#include <stddef.h>
#include <stdint.h>

/* Return of dnsf_answer besides a length: JavaScript must answer; drop silently. */
#define DNSF_MISS 0
#define DNSF_DROP (-1)
/* A name this server forwards (a marker JavaScript put after the cluster declined it):
 * the caller sends it upstream from C (dns_forward.c), with the query's facts in `info`. */
#define DNSF_FORWARD (-2)

/* Counters, read and zeroed by dnsf_take_stats. Reply counts by (qtype, rcode): qtypes
 * above 255 share row 256; rcode 16 is BADVERS (RFC 6891). */
#define DNSF_QTYPE_ROWS 257
#define DNSF_RCODE_COLS 17
struct dnsf_stats {
  uint64_t replies[DNSF_QTYPE_ROWS][DNSF_RCODE_COLS];
  uint64_t hits;      /* cluster answers served from the table */
  uint64_t fwd_hits;  /* upstream answers served from the table */
  uint64_t truncated; /* cut to the question with TC */
  uint64_t short_;    /* under a header: dropped */
  uint64_t long_;     /* over the receive buffer (DNSF_REPLY_MAX): dropped */
  uint64_t send;      /* replies the kernel refused */
};

/* One rotation of an entry's records as dnsf_put receives them. */
struct dnsf_records {
  uint16_t an, ns, ar;
  uint16_t len;
  const uint8_t *bytes;
};

struct dnsf_put_args {
  uint16_t server;  /* 0: cluster answers */
  uint32_t scope;
  uint16_t qtype;
  uint8_t variant;  /* DO and CD bits of the query (upstream answers only) */
  const uint8_t *name; /* lower case, labels joined by dots */
  size_t name_len;
  uint16_t flags;   /* ORed into the reply's flags: AA and the rcode */
  uint32_t ttl_ms;  /* 0: until cleared; else the entry expires and TTLs count down */
  const struct dnsf_records *rot;
  uint16_t nrot;
  const uint16_t *ttl_at; /* offsets of the 32-bit TTLs in rot[0].bytes (ttl_ms only) */
  uint16_t nttl;
};
/* nrot 0 (no records, no TTL) puts a forward marker: the key's queries go upstream from C. */

/* What dnsf_answer read of a query it returned DNSF_FORWARD for. */
struct dnsf_query {
  uint16_t qtype;
  uint16_t qend;      /* end of the question: the header and question are req[0, qend) */
  uint16_t max;       /* the largest UDP reply the client takes (512, or its EDNS size up to 4096) */
  uint8_t edns;       /* the query had an OPT */
  uint8_t dnssec_ok;  /* ... with DO set */
};

struct dnsf_table;

struct dnsf_table *dnsf_table_new(uint32_t max_entries);
void dnsf_table_free(struct dnsf_table *t);
/* Empties the table and the scope map. */
void dnsf_clear(struct dnsf_table *t);
int dnsf_put(struct dnsf_table *t, const struct dnsf_put_args *a);
/* Client addresses (network order) and their scope ids; other clients are scope 0. */
int dnsf_set_scopes(struct dnsf_table *t, const uint32_t *ips, const uint32_t *ids, size_t n);
struct dnsf_stats *dnsf_stats(struct dnsf_table *t);

/*
 * The reply to `req` from `client` (network order) on `server` written into `out`
 * (`cap` bytes, at least DNSF_REPLY_MAX): its length, DNSF_MISS or DNSF_DROP.
 */
#define DNSF_REPLY_MAX 4096
int dnsf_answer(struct dnsf_table *t, uint16_t server, const uint8_t *req, size_t len, uint32_t client, uint8_t *out, size_t cap, struct dnsf_query *info);

/* A reply of `rcode` with no records to the query read into `q` (its header and question,
 * RD kept, RA set, our OPT if it had one), written into `out` (DNSF_REPLY_MAX): its length. */
int dnsf_error_reply(const uint8_t *req, const struct dnsf_query *q, int rcode, uint8_t *out);
/* One reply sent (by type and rcode), counted as dnsf_answer counts its own. */
void dnsf_count_reply(struct dnsf_table *t, uint16_t qtype, int rcode);

#endif
