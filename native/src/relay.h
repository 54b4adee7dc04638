/*
 * TCP relay engine: one epoll set of listeners and relays. The engine
 * accepts clients on its listeners, asks JS (event ACCEPTED) which task to use,
 * connects, and moves the bytes; JS only decides.
 *
 * Single-threaded: everything runs on the caller's thread (Node's event loop).
 *
 * Relay life:
 *   ACCEPTED -> PENDING --relay_connect--> CONNECTING --ok--> RUNNING --> DONE
 *                  ^                           | fail/timeout        |
 *                  +------ CONNECT_FAILED -----+                     |
 *                  +------ EMPTY (task closed/reset before answering a waiting client)
 * RUNNING moves client->task by read()/write() while the client's bytes are kept for
 * a replay (until the task answers or 64 KiB), and any direction by copying for its
 * first 64 KiB; after that by splice() through a pipe, zero-copy in the kernel.
 * After EMPTY the kept bytes are replayed to the next task JS chooses.
 */
#ifndef SWARMNET_RELAY_H
#define SWARMNET_RELAY_H

#include <stddef.h>
#include <stdint.h>

enum relay_event_type {
  RELAY_ACCEPTED = 1,       /* a: listener id; b: client ip (network order); c: client port; d: local ip; e: local port */
  RELAY_CONNECT_FAILED = 2, /* err */
  RELAY_EMPTY = 3,          /* err (0 = orderly close) */
  RELAY_DONE = 4,           /* err; bytes */
};

struct relay_event {
  uint32_t id;
  int type;
  int err;
  uint64_t bytes_in;  /* client -> task */
  uint64_t bytes_out; /* task -> client */
  uint32_t a, b, c, d, e;
};

typedef void (*relay_emit_fn)(struct relay_event *ev, void *ctx);

struct relay_connect_args {
  uint32_t id;
  uint32_t ip;   /* network order */
  uint16_t port; /* host order */
  int connect_timeout_ms;
  const char *header; /* PROXY header sent first; copied */
  size_t header_len;
  size_t replay_limit; /* 0 disables replay */
};

struct relay_info {
  uint64_t bytes_in, bytes_out;
  int64_t last_ms; /* CLOCK_MONOTONIC ms of the last byte */
  int state;       /* 1 pending, 2 connecting, 3 running */
};

/* Creates the engine once; returns its epoll fd (to be polled for readability by the
 * caller's event loop) or -errno. emit is called synchronously from the calls below. */
int relay_engine_init(relay_emit_fn emit, void *ctx);
/* Handles whatever is ready (call when the epoll fd is readable); returns events handled. */
int relay_process(void);
/* Connect deadlines; call every ~100 ms. */
void relay_timer(void);
/* Binds and listens on ip:port. Returns 0 or -errno. */
int relay_listen(uint32_t lid, uint32_t ip, uint16_t port, int keepalive_s);
int relay_unlisten(uint32_t lid);
int relay_connect(const struct relay_connect_args *a);
/* graceful: FIN both ways; else close at once. A DONE event follows. */
int relay_close(uint32_t id, int graceful);
int relay_get_info(uint32_t id, struct relay_info *out);
int64_t relay_now_ms(void);

#endif
