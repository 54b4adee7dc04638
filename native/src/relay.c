/*
 * TCP relay engine (see relay.h for the state machine).
 *
 * Threading: JS calls relay_start/relay_close, which only queue commands and wake the
 * engine through an eventfd; the engine thread owns every relay and is the only one
 * that touches sockets, pipes and relay memory. relay_get_info reads counters under
 * `mu`, which the engine holds while it handles a batch, and relays are freed only at
 * the end of a batch, so no event can point at freed memory.
 *
 * Data path per wakeup (level-triggered epoll, "pump until EAGAIN"):
 *   client->task: pending bytes (header/replay/partial write) -> copy or splice
 *   task->client: splice socket -> pipe -> socket
 *   EOF on one side -> shutdown(SHUT_WR) on the other once its pipe is empty
 */
#define _GNU_SOURCE
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HASH_BUCKETS 4096
#define SPLICE_CHUNK (1 << 20)
#define COPY_CHUNK (64 * 1024)
#define PIPE_BYTES (1 << 20)
#define MAX_EVENTS 256
#define TICK_MS 100

enum { ST_CONNECTING = 1, ST_RUNNING = 2, ST_DEAD = 3 };

struct relay;
struct endpoint {
  struct relay *r;
  int side; /* 0 client, 1 task */
};

struct relay {
  uint32_t id;
  int cfd, ufd;
  int state;
  struct endpoint ec, eu;
  uint32_t mask_c, mask_u;
  int reg_c, reg_u;
  int pcu[2], puc[2];
  size_t in_cu, in_uc;
  char *pending;
  size_t pending_len, pending_off;
  char *replay;
  size_t replay_len, replay_limit;
  int replay_on, answered;
  int c_eof, u_eof, shut_u, shut_c;
  int64_t deadline;
  uint64_t bytes_in, bytes_out;
  int64_t last_ms;
  struct relay *next_hash, *next_dead;
};

struct cmd {
  int close; /* 0 start, 1 close */
  int graceful;
  struct relay_start_args a;
  char *prefix;
  struct cmd *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;  /* relays, hash */
static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER; /* command queue */
static struct cmd *q_head, *q_tail;
static struct relay *buckets[HASH_BUCKETS];
static struct relay *dead;
static int epfd = -1, evfd = -1, connecting;
static relay_emit_fn emit_fn;
static void *emit_ctx;
static char copybuf[COPY_CHUNK];

int64_t relay_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct relay **slot_of(uint32_t id) {
  struct relay **p = &buckets[id % HASH_BUCKETS];
  while (*p && (*p)->id != id) p = &(*p)->next_hash;
  return p;
}

static void emit(struct relay *r, int type, int err, char *replay, size_t replay_len) {
  struct relay_event *ev = calloc(1, sizeof *ev);
  if (!ev) return;
  ev->id = r->id;
  ev->type = type;
  ev->err = err;
  ev->bytes_in = r->bytes_in;
  ev->bytes_out = r->bytes_out;
  ev->replay = replay;
  ev->replay_len = replay_len;
  emit_fn(ev, emit_ctx);
}

static void set_mask(struct relay *r, int side, uint32_t mask) {
  int fd = side ? r->ufd : r->cfd;
  int *reg = side ? &r->reg_u : &r->reg_c;
  uint32_t *cur = side ? &r->mask_u : &r->mask_c;
  if (*reg && *cur == mask) return;
  struct epoll_event ev = {.events = mask, .data.ptr = side ? &r->eu : &r->ec};
  if (epoll_ctl(epfd, *reg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0) {
    *reg = 1;
    *cur = mask;
  }
}

/* Ends a relay: deregisters both fds (the client fd before JS may close it), closes
 * what the engine owns, and queues the memory for release at the end of the batch. */
static void destroy(struct relay *r) {
  if (r->state == ST_DEAD) return;
  if (r->state == ST_CONNECTING) connecting--;
  if (r->reg_c) epoll_ctl(epfd, EPOLL_CTL_DEL, r->cfd, NULL);
  if (r->reg_u) epoll_ctl(epfd, EPOLL_CTL_DEL, r->ufd, NULL);
  if (r->ufd >= 0) close(r->ufd);
  for (int i = 0; i < 2; i++) {
    if (r->pcu[i] >= 0) close(r->pcu[i]);
    if (r->puc[i] >= 0) close(r->puc[i]);
  }
  free(r->pending);
  r->pending = NULL;
  struct relay **p = slot_of(r->id);
  if (*p == r) *p = r->next_hash;
  r->state = ST_DEAD;
  r->next_dead = dead;
  dead = r;
}

static void finish(struct relay *r, int type, int err) {
  char *replay = NULL;
  size_t len = 0;
  if (type == RELAY_EMPTY) {
    replay = r->replay;
    len = r->replay_len;
    r->replay = NULL;
  }
  free(r->replay);
  r->replay = NULL;
  destroy(r);
  emit(r, type, err, replay, len);
}

/* Replay is possible while every client byte is still held and the client still waits. */
static int can_replay(struct relay *r) {
  return r->replay_on && !r->c_eof;
}

static void stop_replay(struct relay *r) {
  r->replay_on = 0;
  free(r->replay);
  r->replay = NULL;
  r->replay_len = 0;
}

static int keep_replay(struct relay *r, const char *p, size_t n) {
  if (r->replay_len + n > r->replay_limit) {
    stop_replay(r);
    return 0;
  }
  char *grown = realloc(r->replay, r->replay_len + n);
  if (!grown) {
    stop_replay(r);
    return 0;
  }
  memcpy(grown + r->replay_len, p, n);
  r->replay = grown;
  r->replay_len += n;
  return 0;
}

static int queue_pending(struct relay *r, const char *p, size_t n) {
  char *buf = malloc(n);
  if (!buf) return -ENOMEM;
  memcpy(buf, p, n);
  free(r->pending);
  r->pending = buf;
  r->pending_len = n;
  r->pending_off = 0;
  return 0;
}

static void update_masks(struct relay *r) {
  int pending = r->pending_off < r->pending_len;
  uint32_t mc = 0, mu_ = 0;
  if (!r->shut_u && !pending && r->in_cu == 0 && !r->c_eof) mc |= EPOLLIN;
  if (!r->shut_c && r->in_uc > 0) mc |= EPOLLOUT;
  if (!r->shut_c && r->in_uc == 0 && !r->u_eof) mu_ |= EPOLLIN;
  if (!r->shut_u && (pending || r->in_cu > 0)) mu_ |= EPOLLOUT;
  set_mask(r, 0, mc);
  set_mask(r, 1, mu_);
}

/* client -> task. Returns 1 on progress, 0 when blocked, -errno on failure (<<8 marks the client side). */
static int pump_up(struct relay *r) {
  if (r->shut_u) return 0;
  if (r->pending_off < r->pending_len) {
    ssize_t w = send(r->ufd, r->pending + r->pending_off, r->pending_len - r->pending_off, MSG_NOSIGNAL);
    if (w > 0) {
      r->pending_off += (size_t)w;
      return 1;
    }
    return errno == EAGAIN ? 0 : -errno;
  }
  if (r->in_cu > 0) {
    ssize_t w = splice(r->pcu[0], NULL, r->ufd, NULL, r->in_cu, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (w > 0) {
      r->in_cu -= (size_t)w;
      return 1;
    }
    return errno == EAGAIN ? 0 : -errno;
  }
  if (r->c_eof) {
    shutdown(r->ufd, SHUT_WR);
    r->shut_u = 1;
    return 1;
  }
  if (r->replay_on) {
    ssize_t n = recv(r->cfd, copybuf, sizeof copybuf, 0);
    if (n == 0) {
      r->c_eof = 1;
      return 1;
    }
    if (n < 0) return errno == EAGAIN ? 0 : -(errno << 8);
    r->bytes_in += (uint64_t)n;
    r->last_ms = relay_now_ms();
    keep_replay(r, copybuf, (size_t)n);
    ssize_t w = send(r->ufd, copybuf, (size_t)n, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) return -errno;
    if (w < n) {
      size_t off = w > 0 ? (size_t)w : 0;
      if (queue_pending(r, copybuf + off, (size_t)n - off) < 0) return -ENOMEM;
    }
    return 1;
  }
  ssize_t n = splice(r->cfd, NULL, r->pcu[1], NULL, SPLICE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n == 0) {
    r->c_eof = 1;
    return 1;
  }
  if (n < 0) return errno == EAGAIN ? 0 : -(errno << 8);
  r->in_cu += (size_t)n;
  r->bytes_in += (uint64_t)n;
  r->last_ms = relay_now_ms();
  return 1;
}

/* task -> client. Same return convention; 2 means "task gave up before answering". */
static int pump_down(struct relay *r, int *empty_err) {
  if (r->shut_c) return 0;
  if (r->in_uc > 0) {
    ssize_t w = splice(r->puc[0], NULL, r->cfd, NULL, r->in_uc, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (w > 0) {
      r->in_uc -= (size_t)w;
      return 1;
    }
    return errno == EAGAIN ? 0 : -(errno << 8);
  }
  if (r->u_eof) {
    shutdown(r->cfd, SHUT_WR);
    r->shut_c = 1;
    return 1;
  }
  ssize_t n = splice(r->ufd, NULL, r->puc[1], NULL, SPLICE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n > 0) {
    r->in_uc += (size_t)n;
    r->bytes_out += (uint64_t)n;
    r->last_ms = relay_now_ms();
    if (!r->answered) {
      r->answered = 1;
      stop_replay(r);
    }
    return 1;
  }
  if (n < 0 && errno == EAGAIN) return 0;
  if (!r->answered && can_replay(r)) {
    *empty_err = n == 0 ? 0 : errno;
    return 2;
  }
  if (n == 0) {
    r->u_eof = 1;
    return 1;
  }
  return -errno;
}

static void pump(struct relay *r) {
  for (;;) {
    int empty_err = 0;
    int up = pump_up(r);
    if (up < 0) {
      int client_side = ((-up) >> 8) != 0;
      int err = client_side ? (-up) >> 8 : -up;
      /* The task reset while we were still sending the request: replay elsewhere. */
      if (!client_side && !r->answered && can_replay(r)) return finish(r, RELAY_EMPTY, err);
      return finish(r, RELAY_DONE, err);
    }
    int down = pump_down(r, &empty_err);
    if (down == 2) return finish(r, RELAY_EMPTY, empty_err);
    if (down < 0) return finish(r, RELAY_DONE, (-down) >> 8 ? (-down) >> 8 : -down);
    if (r->shut_u && r->shut_c) return finish(r, RELAY_DONE, 0);
    if (up == 0 && down == 0) break;
  }
  update_masks(r);
}

static int make_pipe(int p[2]) {
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) return -errno;
  fcntl(p[0], F_SETPIPE_SZ, PIPE_BYTES); /* best effort: capped by fs.pipe-max-size */
  return 0;
}

static void on_connect(struct relay *r) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(r->ufd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err == 0) {
    int e1 = make_pipe(r->pcu), e2 = e1 ? 0 : make_pipe(r->puc);
    err = e1 ? -e1 : e2 ? -e2 : 0;
  }
  if (err) return finish(r, RELAY_CONNECT_FAILED, err);
  r->state = ST_RUNNING;
  connecting--;
  emit(r, RELAY_CONNECTED, 0, NULL, 0);
  pump(r);
}

static void do_start(struct cmd *c) {
  struct relay *r = calloc(1, sizeof *r);
  if (!r) return;
  r->id = c->a.id;
  r->cfd = c->a.client_fd;
  r->ufd = -1;
  r->pcu[0] = r->pcu[1] = r->puc[0] = r->puc[1] = -1;
  r->ec = (struct endpoint){r, 0};
  r->eu = (struct endpoint){r, 1};
  r->replay_limit = c->a.replay_limit;
  r->replay_on = c->a.replay_limit > 0;
  r->last_ms = relay_now_ms();
  r->deadline = r->last_ms + c->a.connect_timeout_ms;
  r->state = ST_CONNECTING;
  connecting++;
  struct relay **slot = slot_of(r->id);
  if (*slot) { /* id reuse while alive would be a JS bug; refuse it */
    connecting--;
    free(r);
    return;
  }
  *slot = r;
  if (c->a.prefix_len) {
    queue_pending(r, c->prefix, c->a.prefix_len);
    if (r->replay_on && c->a.replay_have) keep_replay(r, c->prefix + c->a.prefix_len - c->a.replay_have, c->a.replay_have);
  }
  r->ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r->ufd < 0) return finish(r, RELAY_CONNECT_FAILED, errno);
  int one = 1;
  setsockopt(r->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(r->ufd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(c->a.port), .sin_addr.s_addr = c->a.ip};
  if (connect(r->ufd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) return finish(r, RELAY_CONNECT_FAILED, errno);
  set_mask(r, 1, EPOLLOUT);
}

static void do_close(uint32_t id, int graceful) {
  struct relay *r = *slot_of(id);
  if (!r) return;
  if (graceful && r->state == ST_RUNNING) {
    shutdown(r->cfd, SHUT_WR);
    shutdown(r->ufd, SHUT_WR);
  }
  finish(r, RELAY_DONE, graceful ? 0 : ECANCELED);
}

static void drain_commands(void) {
  uint64_t v;
  if (read(evfd, &v, sizeof v) < 0) { /* spurious wakeup */
  }
  pthread_mutex_lock(&qmu);
  struct cmd *c = q_head;
  q_head = q_tail = NULL;
  pthread_mutex_unlock(&qmu);
  while (c) {
    struct cmd *next = c->next;
    if (c->close) do_close(c->a.id, c->graceful);
    else do_start(c);
    free(c->prefix);
    free(c);
    c = next;
  }
}

static void check_deadlines(int64_t now) {
  for (int b = 0; b < HASH_BUCKETS && connecting > 0; b++) {
    for (struct relay *r = buckets[b], *next; r; r = next) {
      next = r->next_hash;
      if (r->state == ST_CONNECTING && now >= r->deadline) finish(r, RELAY_CONNECT_FAILED, ETIMEDOUT);
    }
  }
}

static void *engine(void *arg) {
  struct epoll_event events[MAX_EVENTS];
  int64_t last_tick = relay_now_ms();
  for (;;) {
    int n = epoll_wait(epfd, events, MAX_EVENTS, TICK_MS);
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n; i++) {
      struct endpoint *e = events[i].data.ptr;
      if (!e) {
        drain_commands();
        continue;
      }
      struct relay *r = e->r;
      if (r->state == ST_DEAD) continue;
      if (r->state == ST_CONNECTING) {
        if (e->side == 1) on_connect(r);
      } else {
        pump(r);
      }
    }
    int64_t now = relay_now_ms();
    if (connecting > 0 && now - last_tick >= TICK_MS) {
      check_deadlines(now);
      last_tick = now;
    }
    while (dead) {
      struct relay *d = dead;
      dead = d->next_dead;
      free(d);
    }
    pthread_mutex_unlock(&mu);
  }
  return NULL;
}

int relay_engine_init(relay_emit_fn emit_cb, void *ctx) {
  if (epfd >= 0) return 0;
  emit_fn = emit_cb;
  emit_ctx = ctx;
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return -errno;
  evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (evfd < 0) return -errno;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, &ev) < 0) return -errno;
  pthread_t t;
  int rc = pthread_create(&t, NULL, engine, NULL);
  if (rc) return -rc;
  pthread_detach(t);
  return 0;
}

static int enqueue(struct cmd *c) {
  pthread_mutex_lock(&qmu);
  if (q_tail) q_tail->next = c;
  else q_head = c;
  q_tail = c;
  pthread_mutex_unlock(&qmu);
  uint64_t one = 1;
  if (write(evfd, &one, sizeof one) < 0 && errno != EAGAIN) return -errno;
  return 0;
}

int relay_start(const struct relay_start_args *a) {
  if (epfd < 0) return -EINVAL;
  struct cmd *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->a = *a;
  if (a->prefix_len) {
    c->prefix = malloc(a->prefix_len);
    if (!c->prefix) {
      free(c);
      return -ENOMEM;
    }
    memcpy(c->prefix, a->prefix, a->prefix_len);
  }
  c->a.prefix = NULL;
  return enqueue(c);
}

int relay_close(uint32_t id, int graceful) {
  if (epfd < 0) return -EINVAL;
  struct cmd *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->close = 1;
  c->graceful = graceful;
  c->a.id = id;
  return enqueue(c);
}

int relay_get_info(uint32_t id, struct relay_info *out) {
  pthread_mutex_lock(&mu);
  struct relay *r = *slot_of(id);
  int rc = -ENOENT;
  if (r) {
    out->bytes_in = r->bytes_in;
    out->bytes_out = r->bytes_out;
    out->last_ms = r->last_ms;
    out->state = r->state;
    rc = 0;
  }
  pthread_mutex_unlock(&mu);
  return rc;
}
