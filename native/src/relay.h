/*
 * TCP relay engine: one thread, one epoll set, many relays. Each relay owns the
 * upstream socket (connected here, non-blocking) and moves bytes between it and a
 * client socket whose fd belongs to Node (never closed here).
 *
 * Per relay:
 *   CONNECTING --connect ok--> send PROXY header + replay bytes
 *              --fail/timeout--> event CONNECT_FAILED (JS picks another task)
 *   COPY   client->task by read()/write(), keeping a copy (replay) until the task
 *          answers or the copy exceeds its limit; task->client by splice()
 *   SPLICE both ways by splice() through a pipe: zero-copy in the kernel
 * A task that closes or resets before answering a still-waiting client ends the
 * relay with event EMPTY and the replay bytes, so JS can retry on another task.
 */
#ifndef SWARMNET_RELAY_H
#define SWARMNET_RELAY_H

#include <stddef.h>
#include <stdint.h>

enum relay_event_type {
  RELAY_CONNECTED = 1,
  RELAY_CONNECT_FAILED = 2,
  RELAY_EMPTY = 3,
  RELAY_DONE = 4,
};

struct relay_event {
  uint32_t id;
  int type;
  int err; /* errno, 0 if none */
  uint64_t bytes_in;  /* client -> task */
  uint64_t bytes_out; /* task -> client */
  char *replay;       /* RELAY_EMPTY: malloc'ed client bytes to replay (owned by receiver) */
  size_t replay_len;
};

typedef void (*relay_emit_fn)(struct relay_event *ev, void *ctx);

struct relay_start_args {
  uint32_t id;
  int client_fd;
  uint32_t ip;   /* network order */
  uint16_t port; /* host order */
  int connect_timeout_ms;
  const char *prefix; /* PROXY header + replay bytes, sent first; copied */
  size_t prefix_len;
  size_t replay_have;  /* how many bytes of prefix are replay (already counted as client bytes) */
  size_t replay_limit; /* 0 disables replay */
};

struct relay_info {
  uint64_t bytes_in, bytes_out;
  int64_t last_ms; /* CLOCK_MONOTONIC ms of the last byte */
  int state;
};

/* Starts the engine thread once; events are delivered via emit on that thread. */
int relay_engine_init(relay_emit_fn emit, void *ctx);
/* Queues a relay; returns 0 or -errno. */
int relay_start(const struct relay_start_args *a);
/* Queues a close: graceful sends FIN both ways, else ends at once. Events follow. */
int relay_close(uint32_t id, int graceful);
/* Snapshot of a live relay; -ENOENT when gone. */
int relay_get_info(uint32_t id, struct relay_info *out);
int64_t relay_now_ms(void);

#endif
