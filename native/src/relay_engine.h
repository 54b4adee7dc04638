/*
 * Internals shared by the relay engine's files:
 *   relay_thread.c  threads, epoll loop, listeners, accept, sweeps, snapshots
 *   relay.c         one relay: connect, retry, replay, copy/splice, half-close
 *   relay_pool.c    pools: task table, schedulers, back-off, counters, PROXY header
 *
 * Locks, always taken in this order: thread->lock (a thread holds its own while it
 * handles a batch of events; the JS thread takes it to close or list that thread's
 * relays) -> e->lock (the listener table) -> pool->lock (scheduler state, counters).
 * A relay belongs to one thread for its whole life and is freed only by that thread,
 * after the batch, so no epoll event of a batch ever points at freed memory.
 */
#ifndef SWARMNET_RELAY_ENGINE_H
#define SWARMNET_RELAY_ENGINE_H

#define _GNU_SOURCE
#include "relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define COPY_CHUNK (64 * 1024)
#define MAX_LISTENERS 65536

enum { ST_CONNECTING = 2, ST_RUNNING = 3, ST_DEAD = 4 };
enum { MORE_DATA = 1, MORE_EOF = 2 };
enum { FIN_NONE = 0, FIN_DEFERRED = 1, FIN_SENT = 2 };

struct backend {
  uint32_t bid;
  uint32_t ip;
  uint16_t port;
  int weight;
  int known;   /* still in JS's pool; freed once it is not and no relay points at it */
  int refs;    /* relays pointing at it */
  int64_t credit; /* smooth WRR */
  uint32_t failures;
  int64_t down_until; /* monotonic ms */
  uint64_t active, total, bytes_in, bytes_out, empty, reset;
  uint64_t retried; /* relays moved to another task after this one failed them */
  int err_no[RELAY_ERRNO_SLOTS];
  uint64_t err_count[RELAY_ERRNO_SLOTS];
  /* connect times, bumped by the relay threads with relaxed atomics (no lock on the
   * success path); read by relay_pool_stats */
  _Atomic uint64_t connect_count[RELAY_CONNECT_BUCKETS + 1], connect_sum_ns;
  struct backend *next;
};

struct pool {
  pthread_mutex_t lock;
  atomic_int refs; /* the listener table's, plus one per relay */
  struct relay_listen_args cfg;
  int listening;
  int *lfd; /* one listening socket per relay thread (SO_REUSEPORT), lfd[t->index] */
  int nlfd;
  /* scheduler */
  int lb;
  struct backend *all; /* every backend, known or still referenced */
  struct backend **list;
  int nlist;
  int32_t sh[RELAY_SH_SIZE];
  int32_t *mh;
  uint32_t mh_size;
  uint32_t rr_next, lc_start;
  /* service counters */
  uint64_t active, total, bytes_in, bytes_out, no_backend, retries;
  struct pool *next;
};

struct relay_thread;

/* The epoll data of a relay side is its (malloc-aligned) address | side in bit 0. */
struct relay {
  struct relay_thread *t;
  struct pool *pool;
  struct backend *b; /* last task tried; attached (counted active on it) while `attached` */
  int attached;
  struct backend *tried[RELAY_MAX_TRIES];
  int ntried;
  uint32_t client_ip, local_ip;
  uint16_t client_port, local_port;
  int cfd, ufd;
  uint64_t u_batch; /* the thread's batch in which ufd was made */
  int state;
  int c_more, u_more; /* edge-triggered: MORE_DATA the side may hold bytes, MORE_EOF up to a FIN */
  int fin_c;          /* FIN toward the client after the task's: FIN_NONE, FIN_DEFERRED, FIN_SENT */
  int u_fin;          /* epoll said the task's FIN is queued (EPOLLRDHUP, no error) */
  int dn_more;        /* the task's last bytes went to the client with MSG_MORE: their FIN follows at once */
  uint64_t fin_batch; /* the batch that deferred it */
  struct relay *next_fin;
  int pcu[2], puc[2];
  size_t in_cu, in_uc;
  char *up; /* client -> task bytes not yet written */
  size_t up_len, up_off;
  char *dn; /* task -> client bytes not yet written */
  size_t dn_len, dn_off;
  char *replay;
  size_t replay_len;
  int replay_on, answered;
  int splice_up, splice_dn; /* a direction moves by splice() (bulk) rather than by copy */
  int c_eof, u_eof, shut_u, shut_c;
  int64_t deadline;
  int64_t connect_ns; /* monotonic ns when the connect to b started */
  uint64_t bytes_in, bytes_out;
  int64_t last_ms;
  int64_t born_ms;      /* accepted (monotonic ms) */
  int ka_c, ka_u;       /* keepalive set on the client / task leg (relay_keepalive) */
  struct relay *prev, *next; /* the thread's list */
  struct relay *next_dead;
};

struct relay_thread {
  struct relay_engine *e;
  pthread_t tid;
  pthread_mutex_t lock;
  int ep;
  int index; /* in e->threads: which of a pool's listening sockets is this thread's */
  struct relay *relays; /* live relays of this thread */
  struct relay *dead;   /* freed after the batch */
  struct relay *fins;   /* relays whose FIN to the client waits one poll round */
  int connecting;
  uint64_t accepted, open; /* counters under lock */
  uint64_t batch;       /* epoll_wait rounds */
  int64_t now;          /* monotonic ms, refreshed once per batch */
  int64_t last_sweep;
  char copybuf[COPY_CHUNK];
};

struct relay_engine {
  pthread_mutex_t lock;
  struct pool *pools;
  int nthreads;
  struct relay_thread *threads;
};

int64_t relay_now_ms(void);
int64_t relay_now_ns(void);

/* relay_pool.c */
struct pool *pool_find(struct relay_engine *e, uint32_t lid); /* under e->lock */
void pool_put(struct relay_engine *e, struct pool *p);        /* drops a ref; frees at zero */
/* Picks the next task for r (Pool.pick + the retry rule of tcp-native.ts); NULL: none, counted. */
struct backend *pool_pick(struct pool *p, struct relay *r, int64_t now);
/* A connect failure (err) or an empty reply (err 0, empty 1): detach, back-off, count the retry. */
void pool_failed(struct pool *p, struct relay *r, int err, int empty, int64_t now);
/* The relay ended: detach, counters, passive health. */
void pool_done(struct pool *p, struct relay *r, int err);
/* A connect to b (established or failed) took ns: into its histogram, lock-free. */
void pool_connect_timed(struct backend *b, int64_t ns);
/* PROXY header for r into buf (>= 108 bytes); returns its length. */
size_t pool_proxy_header(const struct pool *p, const struct relay *r, char *buf);
uint32_t relay_hash32(const char *s, size_t n, uint32_t seed);

/* relay.c */
void relay_start(struct relay *r);              /* pick and connect; may finish r */
void relay_ready(struct relay *r, int side, uint32_t events); /* epoll readiness; side 0 client, 1 task */
void relay_close(struct relay *r, int graceful); /* FIN both ways (graceful) or at once */
void relay_check_deadline(struct relay *r, int64_t now);
void relay_keepalive(struct relay *r);        /* keepalive on both legs, once each (see relay.c) */
void relay_fin_now(struct relay *r);          /* the deferred FIN toward the client */

/* relay_thread.c */
void relay_defer_fin(struct relay *r);

#endif
