/*
 * Internals of the UDP engine (udp.h), shared by udp_table.c (flows, tasks' socket
 * slots, eviction, expiry) and udp.c (sockets, batches, ICMP errors).
 *
 *   listener --hash (listener, client ip:port)--> flow --> dst (task ip:port), socket k
 *   socket k + reply's source ip:port --dst table--> dst --by_sock[k]--> flow
 *
 * A flow is on up to three lists: its listener's activity list (oldest first: idle
 * expiry), and while bound and unanswered the engine's and its dst's unanswered lists
 * (oldest first: early drop).
 */
#ifndef SWARMNET_UDP_ENGINE_H
#define SWARMNET_UDP_ENGINE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "udp.h"

/* Datagrams per recvmmsg; the most UDP GSO segments per send (UDP_MAX_SEGMENTS is 64
 * on older kernels). */
#define UDP_BATCH 64
/* Largest IPv4 UDP payload (65535 - 20 - 8) fits a receive slot. */
#define UDP_SLOT 65536
/* Datagrams queued for sending before a flush. */
#define UDP_TX_MAX 512
/* GSO segments no larger than a 1500-byte Ethernet payload, so a train never needs IP
 * fragmentation on a usual path; a train at most 64 KiB (one IP packet). */
#define UDP_GSO_SEG_MAX 1472
#define UDP_GSO_TOTAL_MAX 65000
/* An ICMP error quotes at most 576 bytes of the datagram (RFC 1812 4.3.2.3). */
#define UDP_QUOTE_MAX 576

struct link {
  struct link *prev, *next;
};

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static inline void link_init(struct link *h) { h->prev = h->next = h; }
static inline int link_linked(const struct link *n) { return n->next != NULL; }
static inline void link_tail(struct link *h, struct link *n) {
  n->prev = h->prev;
  n->next = h;
  h->prev->next = n;
  h->prev = n;
}
static inline void link_del(struct link *n) {
  if (!n->next) return;
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = NULL;
}
static inline struct link *link_first(const struct link *h) { return h->next == h ? NULL : h->next; }

struct udp_listener;
struct udp_dst;

struct udp_flow {
  struct udp_flow *hnext; /* hash chain; then the reap list once dead */
  struct link lru;        /* listener's activity order */
  struct link un;         /* engine's unanswered (bound) flows */
  struct link dun;        /* dst's unanswered flows */
  struct udp_listener *l;
  struct udp_dst *dst; /* NULL while unbound (new, or between tasks) */
  struct sockaddr_in client;
  uint32_t sock; /* pool index while bound */
  uint32_t tag;
  uint16_t last_len; /* of the last datagram sent: is an ICMP quote of it whole? */
  uint8_t answered, tries, dead;
  uint8_t counted; /* JS counted it open (gave it a task once): its end is an event */
  uint8_t watch;   /* its first answer is an event (UDP_DEC_WATCH) */
  int64_t last_ms;
  uint64_t bytes_in, bytes_out;
};

/* A task address and which pool sockets carry a flow toward it. */
struct udp_dst {
  struct udp_dst *next;
  struct sockaddr_in addr;
  uint32_t nflows;
  uint32_t hw;  /* sockets [0, hw) have been used toward this task */
  uint32_t cap; /* of by_sock and free (a multiple of 64) */
  struct udp_flow **by_sock;
  /* Free indices < hw, taken next-fit from the cursor: a freed socket is reused only
   * after the others (a late reply of an old flow rarely reaches a new one). */
  uint64_t *free;
  uint32_t cursor;
  struct link unanswered;
  int64_t idle_since; /* when nflows fell to 0, for reclaiming */
};

struct udp_listener {
  struct udp_listener *next;
  uint32_t lid;
  int fd;
  uint32_t idle_ms;
  struct link lru;
};

struct udp_rx {
  struct mmsghdr msg[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  struct sockaddr_in from[UDP_BATCH];
  uint8_t *buf; /* UDP_BATCH slots of UDP_SLOT bytes */
  unsigned used; /* slots still referenced by a queued send */
};

struct udp_tx {
  unsigned n;
  int fd[UDP_TX_MAX];
  struct sockaddr_in to[UDP_TX_MAX];
  struct iovec iov[UDP_TX_MAX];
  /* One flush's messages: single datagrams or GSO trains. */
  struct mmsghdr out[UDP_TX_MAX];
  unsigned out_first[UDP_TX_MAX], out_count[UDP_TX_MAX];
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctl[UDP_TX_MAX];
};

struct udp_engine {
  int epfd;
  struct udp_config cfg;
  struct udp_hooks hooks;
  uint64_t seed;
  struct udp_flow **buckets;
  uint32_t mask;
  struct udp_dst **dbuckets;
  uint32_t dmask;
  struct udp_listener *listeners;
  int *socks; /* pool: socks[0, nsocks) open */
  uint32_t nsocks;
  struct link unanswered;
  uint32_t nflows;
  struct udp_flow *free_flows, *reap;
  uint32_t nfree;
  int in_hook;
  int gso; /* UDP GSO works; cleared on the first refusal */
  int64_t now, last_dst_sweep;
  /* Pending decisions and what they are for. */
  unsigned ndec;
  struct udp_flow *dec_flow[UDP_DECIDE_MAX];
  int32_t replay_len[UDP_DECIDE_MAX]; /* -1: nothing to replay */
  uint8_t replay[UDP_DECIDE_MAX][UDP_QUOTE_MAX];
  unsigned nev;
  uint64_t stats[UDP_S_COUNT];
  struct udp_rx fwd, rep; /* from clients; from tasks */
  struct udp_tx up, down; /* to tasks; to clients */
  /* Per receive batch: the flow of each datagram. */
  struct udp_flow *batch_flow[UDP_BATCH];
};

/* udp_table.c */
struct udp_listener *udp_listener_find(const struct udp_engine *e, uint32_t lid);
struct udp_flow *udp_flow_find(struct udp_engine *e, struct udp_listener *l, const struct sockaddr_in *client);
/* A new unbound flow, evicting an unanswered one if the table is full; NULL: refused. */
struct udp_flow *udp_flow_new(struct udp_engine *e, struct udp_listener *l, const struct sockaddr_in *client);
/* Gives an unbound flow a socket toward ip:port, socket *hint if it is free toward that
 * task (new flows of one batch toward different tasks then share a socket: one send
 * for them all, their replies read together); sets *hint to the socket taken. 0 or
 * -errno (the flow stays unbound). */
int udp_flow_bind(struct udp_engine *e, struct udp_flow *f, uint32_t tag, uint32_t ip, uint16_t port_net, uint32_t *hint);
void udp_flow_unbind(struct udp_engine *e, struct udp_flow *f);
/* Ends a flow without an event (JS found no task for it, so never counted it). */
void udp_flow_discard(struct udp_engine *e, struct udp_flow *f);
/* Ends a flow: event CLOSED when JS counted it; unlinked now, freed at udp_reap (a
 * batch being handled may still point at it: it is marked dead). */
void udp_flow_close(struct udp_engine *e, struct udp_flow *f, int reason);
void udp_flow_answered(struct udp_engine *e, struct udp_flow *f);
static inline void udp_flow_touch(struct udp_flow *f, int64_t now) {
  f->last_ms = now;
  if (f->l->lru.prev != &f->lru) { /* not already the newest: to the tail */
    link_del(&f->lru);
    link_tail(&f->l->lru, &f->lru);
  }
}
struct udp_dst *udp_dst_find(const struct udp_engine *e, uint32_t ip, uint16_t port_net);
void udp_expire(struct udp_engine *e);
void udp_reap(struct udp_engine *e);
void udp_emit(struct udp_engine *e, int type, const struct udp_flow *f, uint32_t tag, double arg);
void udp_flush_events(struct udp_engine *e);
int udp_table_init(struct udp_engine *e);
void udp_table_free(struct udp_engine *e);

/* udp.c */
int udp_pool_open(struct udp_engine *e);

#endif
