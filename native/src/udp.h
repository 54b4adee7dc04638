/*
 * UDP routing-mesh engine: the published UDP ports, a flow table in C, and a bounded
 * pool of upstream sockets shared by every flow (no file descriptor per flow).
 *
 *   client -> listener: recvmmsg -> flow lookup (listener, client ip:port)
 *     new flow: one call into JS per batch of new flows (the schedulers live in
 *     TypeScript) -> a task -> a pool socket k free toward that task
 *     -> sendmmsg from socket k to the task (runs of equal datagrams as UDP GSO trains)
 *   task -> socket k: recvmmsg -> flow = (socket k, task ip:port) -> sendmmsg to the
 *     client from the listener (GSO trains too)
 *   ICMP unreachable (IP_RECVERR, MSG_ERRQUEUE on socket k names the task) -> event
 *     FAILED (JS: back-off) -> JS picks another task -> the datagram quoted in the ICMP
 *     error is replayed when the flow was unanswered and the quote is whole
 *   tick: idle flows expire (per listener, oldest first)
 *
 * Replies find their flow without a socket per flow because two flows toward one
 * task never share a pool socket: the task sees a distinct source port per flow.
 * So flows toward one task are at most the pool size (max_sockets), and the pool is
 * the only file descriptors the engine opens besides its listeners.
 *
 * Bound: max_flows. A new flow on a full table evicts the oldest unanswered flow
 * (one that never got a reply; like nf_conntrack's early_drop); when every flow has
 * been answered the new flow is refused. Both are counted.
 *
 * Single-threaded: every call runs on the caller's thread (Node's event loop), and
 * the hooks into JS are called synchronously from udp_process, udp_tick and the
 * calls that close flows. A hook must not call back into the calls that change
 * state (they return -EBUSY then).
 */
#ifndef SWARMNET_UDP_H
#define SWARMNET_UDP_H

#include <stdint.h>

/* Decisions per call of the decide hook, events per call of the events hook. */
#define UDP_DECIDE_MAX 256
#define UDP_EVENT_MAX 256

/* One decision JS makes: a task for a new flow, or another task after the flow's task
 * failed. Shared with TypeScript as 9 uint32 per record (src/mesh/udp-engine.ts). */
struct udp_decision {
  uint32_t lid;
  uint32_t client_ip;   /* network order */
  uint32_t client_port; /* host order */
  uint32_t exclude;     /* the tag of the task that just failed the flow; 0: a new flow */
  uint32_t tries;       /* tasks this flow has been given so far */
  uint32_t tag;         /* out: the task's tag (JS's name for it), 0: none, the flow is dropped */
  uint32_t ip;          /* out: the task's address, network order */
  uint32_t port;        /* out: host order */
  uint32_t flags;       /* out: UDP_DEC_* */
};

/* Decision flags. WATCH: report the flow's first answer (event ANSWERED), so JS can
 * clear a task's failure state (passive health) once it answers again. */
#define UDP_DEC_WATCH 1u

enum udp_event_type {
  UDP_EV_CLOSED = 1, /* tag: the task JS last gave the flow (0: none); arg: reason */
  UDP_EV_FAILED = 2, /* tag: the task that sent an ICMP error; arg: its errno */
  UDP_EV_ANSWERED = 3, /* tag: the task that answered a watched flow first */
};

enum udp_close_reason {
  UDP_R_IDLE = 1,       /* idle past the listener's timeout */
  UDP_R_EARLY_DROP = 2, /* unanswered, evicted for a new flow (table or task's ports full) */
  UDP_R_NO_PORT = 3,    /* no pool socket free toward its task (or none could be opened) */
  UDP_R_NO_BACKEND = 4, /* its task failed and JS had no other */
  UDP_R_CLOSED = 5,     /* closed by the control plane: drain timeout, listener removed */
};

/* Shared with TypeScript as 8 doubles per record. */
struct udp_event {
  double type, lid, tag, arg;
  double bytes_in, bytes_out; /* client -> task, task -> client */
  double client_ip, client_port;
};

#define UDP_STATS(X)                                                                         \
  X(FLOWS, "flows")                 /* open now */                                           \
  X(SOCKETS, "sockets")             /* pool sockets open now */                              \
  X(FLOWS_TOTAL, "flowsTotal")      /* flows given a task */                                 \
  X(EARLY_DROP, "earlyDrop")        /* unanswered flows evicted for new ones */              \
  X(TABLE_FULL, "tableFull")        /* new flows refused: table full of answered flows */    \
  X(NO_PORT, "noPort")              /* flows dropped: no pool socket toward their task */    \
  X(RX_PACKETS, "rxPackets")        /* datagrams from clients */                             \
  X(TX_PACKETS, "txPackets")        /* datagrams to clients */                               \
  X(TRUNCATED, "truncated")         /* datagrams longer than the receive buffer, dropped */  \
  X(BAD_SOURCE, "badSource")        /* datagrams from port 0 or not IPv4, dropped */         \
  X(STRAY, "stray")                 /* datagrams on a pool socket from no flow's task */     \
  X(ICMP, "icmp")                   /* ICMP errors read from pool sockets */                 \
  X(REPLAYED, "replayed")           /* unanswered datagrams resent to another task */        \
  X(REPLAY_LOST, "replayLost")      /* ... not resent: the ICMP quote was not whole */       \
  X(UNFORWARDED, "unforwarded")     /* datagrams of flows dropped before they could go */    \
  X(TX_ERRORS, "txErrors")          /* datagrams the kernel refused to send */               \
  X(SOCKET_ERRORS, "socketErrors")  /* pool sockets that could not be opened */

#define UDP_STAT_ENUM(name, js) UDP_S_##name,
enum udp_stat { UDP_STATS(UDP_STAT_ENUM) UDP_S_COUNT };
#undef UDP_STAT_ENUM

extern const char *const udp_stat_names[UDP_S_COUNT];

struct udp_hooks {
  /* JS fills tag/ip/port of dec[0..n). */
  void (*decide)(void *ctx, unsigned n);
  /* JS reads ev[0..n). */
  void (*events)(void *ctx, unsigned n);
  void *ctx;
  struct udp_decision *dec; /* UDP_DECIDE_MAX records, memory JS can see */
  struct udp_event *ev;     /* UDP_EVENT_MAX records */
};

struct udp_config {
  uint32_t max_flows;
  uint32_t max_sockets; /* pool size: fds, and flows toward one task at most */
  /* Listeners bind with SO_REUSEPORT: an engine per data-plane thread binds the same
   * ip:port and the kernel hashes each flow's 4-tuple to one of them. */
  uint32_t reuseport;
};

struct udp_flow_info {
  uint32_t client_ip; /* network order */
  uint16_t client_port;
  uint32_t tag;
  int64_t idle_ms;
  uint64_t bytes_in, bytes_out;
  int answered;
};

struct udp_engine;

/* Returns 0 or -errno; *out is the engine. */
int udp_create(const struct udp_config *c, const struct udp_hooks *h, struct udp_engine **out);
/* The engine's epoll fd: poll it for readability, then call udp_process. */
int udp_fd(const struct udp_engine *e);
void udp_process(struct udp_engine *e);
/* Idle expiry; call every ~100 ms. */
void udp_tick(struct udp_engine *e);
/* Binds ip:port (network-order ip, host-order port); flows idle idle_ms expire. */
int udp_listen(struct udp_engine *e, uint32_t lid, uint32_t ip, uint16_t port, uint32_t idle_ms);
/* Closes the listener and its flows (events follow). */
int udp_unlisten(struct udp_engine *e, uint32_t lid);
/* Closes the listener's flows on task `tag`; returns how many or -errno. */
int udp_close_tag(struct udp_engine *e, uint32_t lid, uint32_t tag);
/* Calls fn for each flow of the listener; returns how many or -errno. */
int udp_flows(const struct udp_engine *e, uint32_t lid, void (*fn)(void *ctx, const struct udp_flow_info *f), void *ctx);
void udp_stats(const struct udp_engine *e, uint64_t out[UDP_S_COUNT]);
/* The engine's clock: CLOCK_MONOTONIC in milliseconds (its idle times and ticks). */
int64_t udp_now_ms(void);
/* Closes every socket and frees the engine; no events. */
void udp_destroy(struct udp_engine *e);

#endif
