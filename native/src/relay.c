/*
 * TCP relay engine (see relay.h for the life of a relay).
 *
 * Threading: none of its own. The engine is an epoll set that Node's event loop
 * polls (uv_poll on the epoll fd, see addon.c); relay_process() handles what is
 * ready and calls back into JS synchronously. Accept, decide, connect and copy all
 * happen on the JS thread, like HAProxy's single thread: no locks, no cross-thread
 * wakeups (which cost more than the work itself on small machines). Relays are
 * freed only after a batch, so no epoll event of the batch points at freed memory;
 * every callback into JS is the last thing a step does with its relay.
 *
 * Data path per readiness (level-triggered, "pump until EAGAIN"):
 *   client->task: pending bytes (header, replay, partial write) -> copy or splice
 *   task->client: pending bytes -> copy or splice
 *   EOF on one side -> shutdown(SHUT_WR) toward the other once nothing is buffered
 */
#define _GNU_SOURCE
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HASH_BUCKETS 4096
#define SPLICE_CHUNK (1 << 20)
#define COPY_CHUNK (64 * 1024)
#define PIPE_BYTES (1 << 20)
/* A direction switches from copying to splice() after this many bytes: short
 * exchanges (most connections) never pay for pipes and their setup. */
#define COPY_SWITCH (64 * 1024)
#define MAX_EVENTS 256
#define ACCEPT_BATCH 64
#define LISTEN_BACKLOG 4096
#define TICK_MS 100

enum { ST_PENDING = 1, ST_CONNECTING = 2, ST_RUNNING = 3, ST_DEAD = 4 };
enum { K_RELAY = 1, K_LISTENER = 2 };

struct relay;
struct endpoint {
  int kind; /* K_RELAY */
  int side; /* 0 client, 1 task */
  struct relay *r;
};

struct listener {
  int kind; /* K_LISTENER */
  uint32_t lid;
  int fd;
  uint32_t ip;
  uint16_t port;
  int keepalive_s;
  struct listener *next;
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
  char *up; /* client -> task bytes not yet written */
  size_t up_len, up_off;
  char *dn; /* task -> client bytes not yet written */
  size_t dn_len, dn_off;
  char *replay;
  size_t replay_len, replay_limit;
  int replay_on, answered;
  int c_eof, u_eof, shut_u, shut_c;
  int64_t deadline;
  uint64_t bytes_in, bytes_out;
  int64_t last_ms;
  struct relay *next_hash, *next_dead;
};



static struct relay *buckets[HASH_BUCKETS];
static struct relay *dead;
static struct listener *listeners, *dead_listeners;
static int epfd = -1, connecting;
static int64_t last_tick;
static uint32_t next_id = 1;
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

static struct relay_event event_of(struct relay *r, int type, int err, const uint32_t *extra) {
  struct relay_event ev = {.id = r->id, .type = type, .err = err, .bytes_in = r->bytes_in, .bytes_out = r->bytes_out};
  if (extra) {
    ev.a = extra[0];
    ev.b = extra[1];
    ev.c = extra[2];
    ev.d = extra[3];
    ev.e = extra[4];
  }
  return ev;
}

/* Calls into JS, which may call back in (connect, close) before this returns. */
static void emit(struct relay_event ev) {
  emit_fn(&ev, emit_ctx);
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

static void close_pipe(int p[2]) {
  for (int i = 0; i < 2; i++) {
    if (p[i] >= 0) close(p[i]);
    p[i] = -1;
  }
}

/* Drops everything of the task side, keeping the client and the replay bytes. */
static void reset_task_side(struct relay *r) {
  if (r->state == ST_CONNECTING) connecting--;
  if (r->reg_u) epoll_ctl(epfd, EPOLL_CTL_DEL, r->ufd, NULL);
  r->reg_u = 0;
  if (r->ufd >= 0) close(r->ufd);
  r->ufd = -1;
  free(r->up);
  r->up = NULL;
  r->up_len = r->up_off = 0;
  free(r->dn);
  r->dn = NULL;
  r->dn_len = r->dn_off = 0;
  close_pipe(r->pcu);
  close_pipe(r->puc);
  r->in_cu = r->in_uc = 0;
  r->u_eof = r->shut_u = 0;
  if (r->reg_c) { /* stop watching the client until the next task (a hang-up would spin) */
    epoll_ctl(epfd, EPOLL_CTL_DEL, r->cfd, NULL);
    r->reg_c = 0;
  }
}

/* Ends a relay: closes both sockets and queues the memory for release after the batch. */
static void destroy(struct relay *r) {
  if (r->state == ST_DEAD) return;
  reset_task_side(r);
  if (r->reg_c) epoll_ctl(epfd, EPOLL_CTL_DEL, r->cfd, NULL);
  close(r->cfd);
  free(r->replay);
  r->replay = NULL;
  struct relay **p = slot_of(r->id);
  if (*p == r) *p = r->next_hash;
  r->state = ST_DEAD;
  r->next_dead = dead;
  dead = r;
}

static void finish(struct relay *r, int err) {
  struct relay_event ev = event_of(r, RELAY_DONE, err, NULL);
  destroy(r);
  emit(ev);
}

/* The task failed before answering: back to PENDING, JS picks the next task. */
static void back_to_pending(struct relay *r, int type, int err) {
  reset_task_side(r);
  r->state = ST_PENDING;
  emit(event_of(r, type, err, NULL));
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

static void keep_replay(struct relay *r, const char *p, size_t n) {
  if (r->replay_len + n > r->replay_limit) return stop_replay(r);
  char *grown = realloc(r->replay, r->replay_len + n);
  if (!grown) return stop_replay(r);
  memcpy(grown + r->replay_len, p, n);
  r->replay = grown;
  r->replay_len += n;
}

static int queue_bytes(char **buf, size_t *len, size_t *off, const char *p, size_t n) {
  char *copy = malloc(n);
  if (!copy) return -ENOMEM;
  memcpy(copy, p, n);
  free(*buf);
  *buf = copy;
  *len = n;
  *off = 0;
  return 0;
}

/* Pipes are made on first splice only; a large pipe lets one splice move more. */
static int ensure_pipe(int p[2]) {
  if (p[0] >= 0) return 0;
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) return -errno;
  fcntl(p[0], F_SETPIPE_SZ, PIPE_BYTES); /* best effort: capped by fs.pipe-max-size */
  return 0;
}

static void update_masks(struct relay *r) {
  int up = r->up_off < r->up_len;
  int dn = r->dn_off < r->dn_len;
  uint32_t mc = 0, mt = 0;
  if (!r->shut_u && !up && r->in_cu == 0 && !r->c_eof) mc |= EPOLLIN;
  if (!r->shut_c && (dn || r->in_uc > 0)) mc |= EPOLLOUT;
  if (!r->shut_c && !dn && r->in_uc == 0 && !r->u_eof) mt |= EPOLLIN;
  if (!r->shut_u && (up || r->in_cu > 0)) mt |= EPOLLOUT;
  set_mask(r, 0, mc);
  set_mask(r, 1, mt);
}

/* Moves buffered bytes `*buf[*off..*len]` to fd. 1 progress, 0 blocked, -errno. */
static int flush_buf(int fd, char *buf, size_t len, size_t *off) {
  ssize_t w = send(fd, buf + *off, len - *off, MSG_NOSIGNAL);
  if (w > 0) {
    *off += (size_t)w;
    return 1;
  }
  return errno == EAGAIN ? 0 : -errno;
}

/* Result of one step in one direction. */
enum { STEP_BLOCKED = 0, STEP_PROGRESS = 1, STEP_FAIL_CLIENT = 2, STEP_FAIL_TASK = 3, STEP_EMPTY = 4 };

/* client -> task */
static int pump_up(struct relay *r, int *err) {
  if (r->shut_u) return STEP_BLOCKED;
  if (r->up_off < r->up_len) {
    int rc = flush_buf(r->ufd, r->up, r->up_len, &r->up_off);
    if (rc < 0) *err = -rc;
    return rc < 0 ? STEP_FAIL_TASK : rc;
  }
  if (r->in_cu > 0) {
    ssize_t w = splice(r->pcu[0], NULL, r->ufd, NULL, r->in_cu, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (w > 0) {
      r->in_cu -= (size_t)w;
      return STEP_PROGRESS;
    }
    if (errno == EAGAIN) return STEP_BLOCKED;
    *err = errno;
    return STEP_FAIL_TASK;
  }
  if (r->c_eof) {
    shutdown(r->ufd, SHUT_WR);
    r->shut_u = 1;
    return STEP_PROGRESS;
  }
  if (r->replay_on || r->bytes_in < COPY_SWITCH) {
    ssize_t n = recv(r->cfd, copybuf, sizeof copybuf, 0);
    if (n == 0) {
      r->c_eof = 1;
      return STEP_PROGRESS;
    }
    if (n < 0) {
      if (errno == EAGAIN) return STEP_BLOCKED;
      *err = errno;
      return STEP_FAIL_CLIENT;
    }
    r->bytes_in += (uint64_t)n;
    r->last_ms = relay_now_ms();
    if (r->replay_on) keep_replay(r, copybuf, (size_t)n);
    ssize_t w = send(r->ufd, copybuf, (size_t)n, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) {
      *err = errno;
      return STEP_FAIL_TASK;
    }
    if (w < n) {
      size_t off = w > 0 ? (size_t)w : 0;
      if (queue_bytes(&r->up, &r->up_len, &r->up_off, copybuf + off, (size_t)n - off) < 0) {
        *err = ENOMEM;
        return STEP_FAIL_CLIENT;
      }
    }
    return STEP_PROGRESS;
  }
  int perr = ensure_pipe(r->pcu);
  if (perr) {
    *err = -perr;
    return STEP_FAIL_CLIENT;
  }
  ssize_t n = splice(r->cfd, NULL, r->pcu[1], NULL, SPLICE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n == 0) {
    r->c_eof = 1;
    return STEP_PROGRESS;
  }
  if (n < 0) {
    if (errno == EAGAIN) return STEP_BLOCKED;
    *err = errno;
    return STEP_FAIL_CLIENT;
  }
  r->in_cu += (size_t)n;
  r->bytes_in += (uint64_t)n;
  r->last_ms = relay_now_ms();
  return STEP_PROGRESS;
}

/* task -> client */
static int pump_down(struct relay *r, int *err) {
  if (r->shut_c) return STEP_BLOCKED;
  if (r->dn_off < r->dn_len) {
    int rc = flush_buf(r->cfd, r->dn, r->dn_len, &r->dn_off);
    if (rc < 0) *err = -rc;
    return rc < 0 ? STEP_FAIL_CLIENT : rc;
  }
  if (r->in_uc > 0) {
    ssize_t w = splice(r->puc[0], NULL, r->cfd, NULL, r->in_uc, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (w > 0) {
      r->in_uc -= (size_t)w;
      return STEP_PROGRESS;
    }
    if (errno == EAGAIN) return STEP_BLOCKED;
    *err = errno;
    return STEP_FAIL_CLIENT;
  }
  if (r->u_eof) {
    shutdown(r->cfd, SHUT_WR);
    r->shut_c = 1;
    return STEP_PROGRESS;
  }
  ssize_t n;
  int copy = r->bytes_out < COPY_SWITCH;
  if (copy) {
    n = recv(r->ufd, copybuf, sizeof copybuf, 0);
  } else {
    int perr = ensure_pipe(r->puc);
    if (perr) {
      *err = -perr;
      return STEP_FAIL_CLIENT;
    }
    n = splice(r->ufd, NULL, r->puc[1], NULL, SPLICE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  }
  if (n > 0) {
    r->bytes_out += (uint64_t)n;
    r->last_ms = relay_now_ms();
    if (!r->answered) {
      r->answered = 1;
      stop_replay(r);
    }
    if (!copy) {
      r->in_uc += (size_t)n;
      return STEP_PROGRESS;
    }
    ssize_t w = send(r->cfd, copybuf, (size_t)n, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN) {
      *err = errno;
      return STEP_FAIL_CLIENT;
    }
    if (w < n) {
      size_t off = w > 0 ? (size_t)w : 0;
      if (queue_bytes(&r->dn, &r->dn_len, &r->dn_off, copybuf + off, (size_t)n - off) < 0) {
        *err = ENOMEM;
        return STEP_FAIL_CLIENT;
      }
    }
    return STEP_PROGRESS;
  }
  if (n < 0 && errno == EAGAIN) return STEP_BLOCKED;
  *err = n == 0 ? 0 : errno;
  if (!r->answered && can_replay(r)) return STEP_EMPTY;
  if (n == 0) {
    r->u_eof = 1;
    return STEP_PROGRESS;
  }
  return STEP_FAIL_TASK;
}

static void pump(struct relay *r) {
  for (;;) {
    int err = 0;
    int up = pump_up(r, &err);
    if (up == STEP_FAIL_TASK && !r->answered && can_replay(r)) return back_to_pending(r, RELAY_EMPTY, err);
    if (up >= STEP_FAIL_CLIENT) return finish(r, err);
    int down = pump_down(r, &err);
    if (down == STEP_EMPTY) return back_to_pending(r, RELAY_EMPTY, err);
    if (down >= STEP_FAIL_CLIENT) return finish(r, err);
    if (r->shut_u && r->shut_c) return finish(r, 0);
    if (up == STEP_BLOCKED && down == STEP_BLOCKED) break;
  }
  update_masks(r);
}

static void on_connect(struct relay *r) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(r->ufd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err) return back_to_pending(r, RELAY_CONNECT_FAILED, err);
  r->state = ST_RUNNING;
  connecting--;
  pump(r);
}

int relay_connect(const struct relay_connect_args *a) {
  if (epfd < 0) return -EINVAL;
  struct relay *r = *slot_of(a->id);
  if (!r || r->state != ST_PENDING) return -ENOENT;
  r->replay_limit = a->replay_limit;
  if (r->replay_limit == 0) stop_replay(r);
  /* First attempt: replay on until proven otherwise. Later attempts keep the state. */
  if (!r->answered && r->replay_limit && r->bytes_in == 0) r->replay_on = 1;
  size_t n = a->header_len + r->replay_len;
  if (n) {
    r->up = malloc(n);
    if (!r->up) return -ENOMEM;
    if (a->header_len) memcpy(r->up, a->header, a->header_len);
    if (r->replay_len) memcpy(r->up + a->header_len, r->replay, r->replay_len);
    r->up_len = n;
    r->up_off = 0;
  }
  r->deadline = relay_now_ms() + a->connect_timeout_ms;
  r->state = ST_CONNECTING;
  connecting++;
  r->ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r->ufd < 0) {
    back_to_pending(r, RELAY_CONNECT_FAILED, errno);
    return 0;
  }
  int one = 1;
  setsockopt(r->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(r->ufd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(a->port), .sin_addr.s_addr = a->ip};
  if (connect(r->ufd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
    back_to_pending(r, RELAY_CONNECT_FAILED, errno); /* reported as an event, like an async failure */
    return 0;
  }
  set_mask(r, 1, EPOLLOUT);
  return 0;
}

int relay_close(uint32_t id, int graceful) {
  struct relay *r = epfd < 0 ? NULL : *slot_of(id);
  if (!r) return -ENOENT;
  if (graceful && r->state == ST_RUNNING) {
    shutdown(r->cfd, SHUT_WR);
    shutdown(r->ufd, SHUT_WR);
  }
  finish(r, graceful ? 0 : ECANCELED);
  return 0;
}

static void on_accept(struct listener *l) {
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return; /* EAGAIN, or out of fds: the backlog waits for the next wakeup */
    struct relay *r = calloc(1, sizeof *r);
    if (!r) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (l->keepalive_s > 0) {
      setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &l->keepalive_s, sizeof l->keepalive_s);
    }
    uint32_t lip = l->ip, lport = l->port;
    if (lip == htonl(INADDR_ANY)) { /* a wildcard listener: which local address did the client reach? */
      struct sockaddr_in self;
      socklen_t slen = sizeof self;
      if (getsockname(fd, (struct sockaddr *)&self, &slen) == 0) lip = self.sin_addr.s_addr;
    }
    do {
      r->id = next_id++;
      if (next_id == 0) next_id = 1;
    } while (r->id == 0 || *slot_of(r->id));
    r->cfd = fd;
    r->ufd = -1;
    r->pcu[0] = r->pcu[1] = r->puc[0] = r->puc[1] = -1;
    r->ec = (struct endpoint){K_RELAY, 0, r};
    r->eu = (struct endpoint){K_RELAY, 1, r};
    r->state = ST_PENDING;
    r->last_ms = relay_now_ms();
    *slot_of(r->id) = r;
    uint32_t extra[5] = {l->lid, peer.sin_addr.s_addr, ntohs(peer.sin_port), lip, lport};
    emit(event_of(r, RELAY_ACCEPTED, 0, extra));
  }
}

static void check_deadlines(int64_t now) {
  for (int b = 0; b < HASH_BUCKETS && connecting > 0; b++) {
    for (struct relay *r = buckets[b], *next; r; r = next) {
      next = r->next_hash;
      if (r->state == ST_CONNECTING && now >= r->deadline) back_to_pending(r, RELAY_CONNECT_FAILED, ETIMEDOUT);
    }
  }
}

static void free_dead(void) {
  while (dead) {
    struct relay *d = dead;
    dead = d->next_dead;
    free(d);
  }
  while (dead_listeners) {
    struct listener *l = dead_listeners;
    dead_listeners = l->next;
    free(l);
  }
}

static void tick(void) {
  int64_t now = relay_now_ms();
  if (connecting > 0 && now - last_tick >= TICK_MS) {
    check_deadlines(now);
    last_tick = now;
  }
}

int relay_process(void) {
  struct epoll_event events[MAX_EVENTS];
  int total = 0;
  for (int round = 0; round < 4; round++) { /* bounded, so timers and JS get their turn */
    int n = epoll_wait(epfd, events, MAX_EVENTS, 0);
    if (n <= 0) break;
    total += n;
    for (int i = 0; i < n; i++) {
      int *kind = events[i].data.ptr;
      if (*kind == K_LISTENER) {
        struct listener *l = (struct listener *)kind;
        int live = 0;
        for (struct listener *x = listeners; x; x = x->next) live |= x == l;
        if (live) on_accept(l);
        continue;
      }
      struct endpoint *e = (struct endpoint *)kind;
      struct relay *r = e->r;
      if (r->state == ST_CONNECTING && e->side == 1) on_connect(r);
      else if (r->state == ST_RUNNING) pump(r);
    }
    free_dead();
    if (n < MAX_EVENTS) break;
  }
  tick();
  free_dead();
  return total;
}

void relay_timer(void) {
  tick();
  free_dead();
}

int relay_engine_init(relay_emit_fn emit_cb, void *ctx) {
  if (epfd >= 0) return epfd;
  emit_fn = emit_cb;
  emit_ctx = ctx;
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return -errno;
  last_tick = relay_now_ms();
  return epfd;
}

int relay_listen(uint32_t lid, uint32_t ip, uint16_t port, int keepalive_s) {
  if (epfd < 0) return -EINVAL;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = ip};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  struct listener *l = calloc(1, sizeof *l);
  if (!l) {
    close(fd);
    return -ENOMEM;
  }
  *l = (struct listener){K_LISTENER, lid, fd, ip, port, keepalive_s, NULL};
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int e = errno;
    close(fd);
    free(l);
    return -e;
  }
  l->next = listeners;
  listeners = l;
  return 0;
}

int relay_unlisten(uint32_t lid) {
  for (struct listener **p = &listeners; *p; p = &(*p)->next) {
    if ((*p)->lid != lid) continue;
    struct listener *l = *p;
    *p = l->next;
    epoll_ctl(epfd, EPOLL_CTL_DEL, l->fd, NULL);
    close(l->fd);
    l->next = dead_listeners; /* freed after the batch: an event of this batch may still name it */
    dead_listeners = l;
    return 0;
  }
  return -ENOENT;
}

int relay_get_info(uint32_t id, struct relay_info *out) {
  struct relay *r = epfd < 0 ? NULL : *slot_of(id);
  int rc = -ENOENT;
  if (r) {
    out->bytes_in = r->bytes_in;
    out->bytes_out = r->bytes_out;
    out->last_ms = r->last_ms;
    out->state = r->state;
    rc = 0;
  }
  return rc;
}
