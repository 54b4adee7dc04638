/*
 * TCP relay engine: the routing mesh's TCP data plane in C, on N threads.
 *
 * Each thread has its own epoll set and, for every listener, a listening socket of its
 * own (SO_REUSEPORT: the kernel spreads new connections over the group), and
 * the thread that accepts a client keeps its relay to the end: no cross-thread
 * wake-up on any data path. A thread accepts, picks the task (the listener's pool:
 * the scheduler and the task table that JS pushes, see relay_pool_set), connects,
 * retries another task on a failure and moves the bytes, all without calling into
 * JS. JS keeps the policy (membership, weights, health, drain) and reads counters and
 * the connection table as snapshots.
 *
 * Relay life:
 *   accept -> pick --connect--> CONNECTING --ok--> RUNNING --> DONE
 *              ^                    | fail/timeout        |
 *              +-- back-off, retry -+                     |
 *              +-- EMPTY (task closed/reset before answering a waiting client)
 * RUNNING moves client->task by read()/write() while the client's bytes are kept for
 * a replay (until the task answers or replay_limit), and any direction by copying
 * while its reads are small, by splice() through a pipe (zero-copy in the kernel)
 * while they fill the buffer (bulk).
 * After EMPTY the kept bytes are replayed to the next task the scheduler picks.
 *
 * Every call returns 0 (or a count) or -errno.
 */
#ifndef SWARMNET_RELAY_H
#define SWARMNET_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct relay_engine;

/* Schedulers (ipvsadm -s); the same order as src/mesh/relay.ts LB_CODES. */
enum relay_lb { LB_RR = 0, LB_WRR = 1, LB_LC = 2, LB_WLC = 3, LB_SH = 4, LB_MH = 5 };

#define RELAY_SH_SIZE 256 /* as IPVS's IP_VS_SH_TAB_SIZE and src/mesh/constants.ts */
#define RELAY_MAX_TRIES 16 /* retries are capped below this */
#define RELAY_ERRNO_SLOTS 6 /* distinct connect errnos counted per task */
/* Connect-latency histogram per task: upper bounds in ns, the same as src/mesh/constants.ts
 * CONNECT_BUCKETS_S (NativeRelay checks them through relayConnectBuckets); a last bucket
 * counts the connects past the highest bound. */
#define RELAY_CONNECT_BUCKETS 15
#define RELAY_CONNECT_BOUNDS_NS                                                                                                      \
  {100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000, \
   2500000000, 5000000000}

struct relay_listen_args {
  uint32_t lid;
  uint32_t ip;   /* network order */
  uint16_t port; /* host order */
  int keepalive_s;
  int proxy; /* 0 none, 1 PROXY v1, 2 PROXY v2 */
  int64_t idle_timeout_ms;
  int connect_timeout_ms;
  int retries;
  size_t replay_limit; /* 0 disables replay */
  int64_t backoff_base_ms, backoff_max_ms;
};

/* One task as JS knows it; bid is JS's stable number for it within the listener. */
struct relay_backend_spec {
  uint32_t bid;
  uint32_t ip;
  uint16_t port;
  int weight;
};

/* The scheduler's view: the schedulable tasks in order, and the hash tables JS built. */
struct relay_pool_args {
  uint32_t lid;
  int lb;
  const struct relay_backend_spec *known; /* every task the pool has (draining ones too) */
  int nknown;
  const uint32_t *list; /* bids of the schedulable tasks, sorted by task id */
  int nlist;
  const int32_t *sh; /* RELAY_SH_SIZE indexes into list, for LB_SH */
  const int32_t *mh; /* mh_size indexes into list, for LB_MH */
  uint32_t mh_size;
};

struct relay_backend_stats {
  uint32_t bid;
  uint64_t active, total, bytes_in, bytes_out;
  uint32_t failures;
  int64_t down_in_ms; /* > 0 while in back-off */
  uint64_t empty, reset;
  int err_no[RELAY_ERRNO_SLOTS];
  uint64_t err_count[RELAY_ERRNO_SLOTS];
  /* connects (established or failed) per bucket, not cumulative, and their sum */
  uint64_t connect_count[RELAY_CONNECT_BUCKETS + 1];
  uint64_t connect_sum_ns;
  uint64_t retried; /* relays moved to another task after this one failed them */
};

struct relay_pool_stats {
  uint64_t active, total, bytes_in, bytes_out, no_backend, retries;
  int listening;
};

struct relay_conn_info {
  uint32_t client_ip, local_ip; /* network order */
  uint16_t client_port, local_port;
  uint32_t bid; /* 0: none yet */
  int running;
  uint64_t bytes_in, bytes_out;
  int64_t idle_ms, idle_timeout_ms;
};

/* Starts `threads` relay threads; returns the engine or NULL (errno set). */
struct relay_engine *relay_engine_start(int threads);
int relay_engine_threads(const struct relay_engine *e);
int relay_listen(struct relay_engine *e, const struct relay_listen_args *a);
/* Stops accepting; the pool and its relays live on until the last relay ends. */
int relay_unlisten(struct relay_engine *e, uint32_t lid);
int relay_pool_set(struct relay_engine *e, const struct relay_pool_args *a);
/* Fills at most max backend entries; returns how many the pool has, or -ENOENT once it is gone. */
int relay_pool_stats(struct relay_engine *e, uint32_t lid, struct relay_pool_stats *ps, struct relay_backend_stats *bs, int max);
/* The listener's relays (max entries); returns the number written. */
int relay_conns(struct relay_engine *e, uint32_t lid, struct relay_conn_info *out, int max);
/* Per thread: connections accepted, relays open now. Fills at most max; returns the thread count. */
int relay_thread_stats(struct relay_engine *e, uint64_t *accepted, uint64_t *open, int max);
/* FIN both ways on every relay of task bid (drain timeout); returns how many. */
int relay_close_backend(struct relay_engine *e, uint32_t lid, uint32_t bid);

#endif
