/*
 * One relay, on the thread that accepted its client (see relay.h for its life).
 *
 * Pipeline per readiness (edge-triggered epoll):
 *   start:     pick a task (pool_pick) -> socket, connect (non-blocking) -> at once one
 *              pump pass: the client's first bytes (as many as replay keeps) go out now
 *   connected: the first send that succeeds, or EPOLLOUT -> RUNNING (connected())
 *              (PROXY header + replay bytes queued first)
 *   client->task: pending bytes (header, replay, partial write) -> copy or splice
 *   task->client: pending bytes -> copy or splice
 *   EOF on one side -> shutdown(SHUT_WR) toward the other once nothing is buffered
 *   failure before the task answered a waiting client -> back-off, next task, replay
 *
 * Sockets are in epoll edge-triggered, each added once. A side is read only after an
 * edge said it has bytes, and until a recv() shorter than the buffer says it is
 * drained: no read ends in EAGAIN on the request/response path, and no epoll_ctl
 * call per state change.
 *
 * A task connection's life has three places, each one function: connect_next() starts
 * it (connect()), connected() sees it complete, connect_failed() sees it fail (refused,
 * reset, timed out).
 *
 * New connections take no extra poll round (HAProxy's speculative I/O): to a task on
 * this host (loopback, a bridge) the handshake completes inside connect(), so the
 * client's request is read and sent right after it; where it has not completed, send()
 * says EAGAIN and the bytes wait in `up` for EPOLLOUT. SO_ERROR is read only when
 * epoll reports an error, not on every connect.
 */
#include "relay_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define SPLICE_CHUNK (1 << 20)
#define PIPE_BYTES (1 << 20)
/* A direction copies through the thread's buffer until one read fills it (a bulk
 * stream): then it moves by splice(), zero-copy, until a splice moves less than
 * SPLICE_SMALL, and copies again. Small requests and replies never pay for pipes (two
 * splices cost more than a recv and a send), bulk transfers never copy. */
#define SPLICE_SMALL (16 * 1024)
#define PROXY_HEADER_MAX 128

/* Each socket is added once, edge-triggered, for everything: no epoll_ctl per state
 * change. c_more/u_more remember that a side may still hold bytes between edges. */
static void watch(struct relay *r, int side) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = (uint64_t)(uintptr_t)r | (uint64_t)side};
  epoll_ctl(r->t->ep, EPOLL_CTL_ADD, side ? r->ufd : r->cfd, &ev);
}

static void close_pipe(int p[2]) {
  for (int i = 0; i < 2; i++) {
    if (p[i] >= 0) close(p[i]);
    p[i] = -1;
  }
}

/* Drops everything of the task side, keeping the client and the replay bytes.
 * close() takes a socket out of the epoll set (no dup exists), so no EPOLL_CTL_DEL. */
static void reset_task_side(struct relay *r) {
  if (r->state == ST_CONNECTING) r->t->connecting--;
  if (r->ufd >= 0) close(r->ufd);
  r->ufd = -1;
  r->u_more = 0;
  r->u_fin = 0;
  r->ka_u = 0;
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
}

/* Ends a relay: counters, both sockets closed, memory freed by its thread after the batch. */
static void finish(struct relay *r, int err) {
  if (r->state == ST_DEAD) return;
  struct relay_thread *t = r->t;
  reset_task_side(r);
  close(r->cfd);
  free(r->replay);
  r->replay = NULL;
  pool_done(r->pool, r, err);
  r->state = ST_DEAD;
  if (r->prev) r->prev->next = r->next;
  else t->relays = r->next;
  if (r->next) r->next->prev = r->prev;
  r->next_dead = t->dead;
  t->dead = r;
}

static void connect_next(struct relay *r);

/* The task failed before answering: back-off, and the next task gets the kept bytes. */
static void retry(struct relay *r, int err, int empty) {
  reset_task_side(r);
  pool_failed(r->pool, r, err, empty, r->t->now);
  connect_next(r);
}

/* Connect completed: the handshake is done (EPOLLOUT, or a send() went through). */
static void connected(struct relay *r) {
  pool_connect_timed(r->b, relay_now_ns() - r->connect_ns);
  r->state = ST_RUNNING;
  r->t->connecting--;
}

/* Connect failed (refused, reset, unreachable, timed out): the next task. Client bytes
 * read early went nowhere, so they are resent from the replay copy; early reads keep
 * within it, so only a failed allocation of that copy ends the relay here. */
static void connect_failed(struct relay *r, int err) {
  pool_connect_timed(r->b, relay_now_ns() - r->connect_ns);
  if (r->bytes_in > 0 && !r->replay_on) return finish(r, err);
  retry(r, err, 0);
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
  if (r->replay_len + n > r->pool->cfg.replay_limit) return stop_replay(r);
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
enum { STEP_BLOCKED = 0, STEP_PROGRESS = 1, STEP_FAIL_CLIENT = 2, STEP_FAIL_TASK = 3, STEP_EMPTY = 4, STEP_DONE = 5 };

/* Both sides sent EOF and every byte was delivered: close() sends each FIN, no shutdown() needed. */
static int both_done(const struct relay *r) {
  return r->c_eof && r->u_eof && r->up_off == r->up_len && r->in_cu == 0 && r->dn_off == r->dn_len && r->in_uc == 0;
}

/* Sends what was just read; a short write keeps the rest for the next writability.
 * Returns the bytes sent now (>= 0), -1 (send failed) or -2 (no memory to keep the rest). */
static ssize_t forward(int fd, char *src, ssize_t n, char **buf, size_t *len, size_t *off, int *err, int flags) {
  ssize_t w = send(fd, src, (size_t)n, MSG_NOSIGNAL | flags);
  if (w < 0 && errno != EAGAIN) {
    *err = errno;
    return -1;
  }
  size_t done = w > 0 ? (size_t)w : 0;
  if (done < (size_t)n && queue_bytes(buf, len, off, src + done, (size_t)n - done) < 0) {
    *err = ENOMEM;
    return -2;
  }
  return (ssize_t)done;
}

/* client -> task; *more: the client may still have bytes (cleared by a short read or EAGAIN) */
/* One recv() of the client's bytes into the thread's copy buffer, counted and kept for
 * a replay: the bytes read (> 0), 0 at the client's FIN, or -errno (-EAGAIN: none now).
 * `more` is cleared when the read drained the socket or failed. */
static ssize_t recv_client(struct relay *r, size_t want, int *more) {
  ssize_t n = recv(r->cfd, r->t->copybuf, want, 0);
  if (n == 0) {
    r->c_eof = 1;
    return 0;
  }
  if (n < 0) {
    *more = 0;
    return -errno;
  }
  if ((size_t)n < want && *more == MORE_DATA) *more = 0;
  r->bytes_in += (uint64_t)n;
  r->last_ms = r->t->now;
  if (r->replay_on) keep_replay(r, r->t->copybuf, (size_t)n);
  return n;
}

static int pump_up(struct relay *r, int *err, int *more) {
  if (r->shut_u) return STEP_BLOCKED;
  int connecting = r->state == ST_CONNECTING;
  if (r->up_off < r->up_len) {
    int rc = flush_buf(r->ufd, r->up, r->up_len, &r->up_off);
    if (rc < 0) *err = -rc;
    if (rc > 0 && connecting) connected(r);
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
    if (connecting) return STEP_BLOCKED; /* the FIN goes once the handshake is done */
    if (both_done(r)) return STEP_DONE;
    shutdown(r->ufd, SHUT_WR);
    r->shut_u = 1;
    return STEP_PROGRESS;
  }
  if (!*more) return STEP_BLOCKED;
  size_t want = COPY_CHUNK;
  if (connecting) { /* read early only what the replay copy can hold, for a connect that fails */
    size_t room = r->replay_on ? r->pool->cfg.replay_limit - r->replay_len : 0;
    if (room == 0) return STEP_BLOCKED;
    if (room < want) want = room;
  }
  if (r->replay_on || !r->splice_up) {
    ssize_t n = recv_client(r, want, more);
    if (n == 0) return STEP_PROGRESS;
    if (n < 0) {
      if (n == -EAGAIN) return STEP_BLOCKED;
      *err = (int)-n;
      return STEP_FAIL_CLIENT;
    }
    if (n == COPY_CHUNK) r->splice_up = 1;
    ssize_t sent = forward(r->ufd, r->t->copybuf, n, &r->up, &r->up_len, &r->up_off, err, 0);
    if (sent > 0 && connecting) connected(r);
    return sent >= 0 ? STEP_PROGRESS : sent == -1 ? STEP_FAIL_TASK : STEP_FAIL_CLIENT;
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
    if (errno != EAGAIN) {
      *err = errno;
      return STEP_FAIL_CLIENT;
    }
    *more = 0;
    return STEP_BLOCKED;
  }
  if (n < SPLICE_SMALL) r->splice_up = 0;
  r->in_cu += (size_t)n;
  r->bytes_in += (uint64_t)n;
  r->last_ms = r->t->now;
  return STEP_PROGRESS;
}

/* task -> client; *more: as for pump_up */
static int pump_down(struct relay *r, int *err, int *more) {
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
    if (both_done(r)) return STEP_DONE;
    /* The client's own FIN often follows at once (it read the reply and closes): give
     * it one more poll round, then both sockets just close. Not when the last bytes
     * went with MSG_MORE: they wait in the socket for this FIN. */
    if (r->fin_c == FIN_NONE && !r->dn_more) relay_defer_fin(r);
    if (r->fin_c == FIN_DEFERRED) return STEP_BLOCKED;
    shutdown(r->cfd, SHUT_WR);
    r->shut_c = 1;
    return STEP_PROGRESS;
  }
  if (!*more) return STEP_BLOCKED;
  ssize_t n;
  char *buf = r->t->copybuf;
  int copy = !r->splice_dn;
  if (copy) {
    n = recv(r->ufd, buf, COPY_CHUNK, 0);
    if (n > 0 && n < COPY_CHUNK && *more == MORE_DATA) *more = 0;
    if (n == COPY_CHUNK) r->splice_dn = 1;
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
    r->last_ms = r->t->now;
    if (!r->answered) {
      r->answered = 1;
      stop_replay(r);
    }
    if (!copy) {
      if (n < SPLICE_SMALL) r->splice_dn = 0;
      r->in_uc += (size_t)n;
      return STEP_PROGRESS;
    }
    /* The task's FIN is queued behind these bytes (a short read drained them): the
     * FIN goes right after them, and MSG_MORE lets the kernel put both in one segment
     * (HAProxy does the same), which saves the client a separate FIN and its ACK of
     * the data: two loopback segments of the ~19 a short connection costs. */
    int fin_next = r->u_fin && n < COPY_CHUNK;
    if (fin_next) r->dn_more = 1;
    ssize_t sent = forward(r->cfd, buf, n, &r->dn, &r->dn_len, &r->dn_off, err, fin_next ? MSG_MORE : 0);
    return sent >= 0 ? STEP_PROGRESS : STEP_FAIL_CLIENT;
  }
  if (n < 0 && errno == EAGAIN) {
    *more = 0;
    return STEP_BLOCKED;
  }
  *err = n == 0 ? 0 : errno;
  if (!r->answered && can_replay(r)) return STEP_EMPTY;
  if (n == 0) {
    r->u_eof = 1;
    return STEP_PROGRESS;
  }
  return STEP_FAIL_TASK;
}

/* Moves bytes until both directions block; c_more/u_more say which sides to read.
 * While connecting (the early pass after connect()): one pass, client -> task only. */
static void pump(struct relay *r) {
  for (;;) {
    int err = 0;
    int up = pump_up(r, &err, &r->c_more);
    if (up == STEP_FAIL_TASK && r->state == ST_CONNECTING) return connect_failed(r, err);
    if (up == STEP_FAIL_TASK && !r->answered && can_replay(r)) return retry(r, err, 1);
    if (up == STEP_DONE) return finish(r, 0);
    if (up >= STEP_FAIL_CLIENT) return finish(r, err);
    int down = pump_down(r, &err, &r->u_more);
    if (down == STEP_EMPTY) return retry(r, err, 1);
    if (down == STEP_DONE) return finish(r, 0);
    if (down >= STEP_FAIL_CLIENT) return finish(r, err);
    if (r->shut_u && r->shut_c) return finish(r, 0);
    if (up == STEP_BLOCKED && down == STEP_BLOCKED) break;
    if (r->state == ST_CONNECTING) break; /* a send that said EAGAIN: wait for EPOLLOUT */
  }
}

/* The task socket's first event while connecting. EPOLLOUT alone means the handshake
 * completed; only an error event costs a getsockopt(SO_ERROR) (as HAProxy does). */
static void on_connect(struct relay *r, uint32_t events) {
  int err = 0;
  if (events & (EPOLLERR | EPOLLHUP)) {
    socklen_t len = sizeof err;
    if (getsockopt(r->ufd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  }
  if (err) return connect_failed(r, err);
  connected(r);
  pump(r);
}

/* Queues the PROXY header and the kept client bytes, to go first on the new task connection. */
static int queue_preamble(struct relay *r) {
  char header[PROXY_HEADER_MAX];
  size_t hlen = r->pool->cfg.proxy ? pool_proxy_header(r->pool, r, header) : 0;
  size_t n = hlen + r->replay_len;
  if (n == 0) return 0;
  r->up = malloc(n);
  if (!r->up) return -ENOMEM;
  memcpy(r->up, header, hlen);
  if (r->replay_len) memcpy(r->up + hlen, r->replay, r->replay_len);
  r->up_len = n;
  r->up_off = 0;
  return 0;
}

/* The client's first bytes, read before the first connect(): a client sends its request
 * right after its handshake, so they are usually there. They go into the replay copy
 * (and from it into `up`, queue_preamble), so a failed connect gives them to the next
 * task as before. Returns the bytes read (0: none yet, or the client's FIN) or -errno. */
static ssize_t read_first(struct relay *r) {
  size_t want = r->pool->cfg.replay_limit < COPY_CHUNK ? r->pool->cfg.replay_limit : COPY_CHUNK;
  ssize_t n = recv_client(r, want, &r->c_more);
  if (n == 0) r->c_more = 0;
  if (n <= 0) return n == -EAGAIN ? 0 : n;
  return r->replay_on ? n : -ENOMEM; /* the copy failed: the bytes are nowhere else */
}

static void connect_next(struct relay *r) {
  struct backend *b = pool_pick(r->pool, r, r->t->now);
  if (!b) return finish(r, ECANCELED);
  /* First attempt: replay on until proven otherwise. Later attempts keep the state. */
  if (!r->answered && r->pool->cfg.replay_limit && r->bytes_in == 0) r->replay_on = 1;
  ssize_t early = 0;
  if (r->replay_on && r->bytes_in == 0 && r->c_more && !r->c_eof && (early = read_first(r)) < 0) return finish(r, (int)-early);
  if (queue_preamble(r) < 0) return finish(r, ENOMEM);
  r->deadline = r->t->now + r->pool->cfg.connect_timeout_ms;
  r->state = ST_CONNECTING;
  r->t->connecting++;
  r->connect_ns = relay_now_ns();
  r->ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  r->u_batch = r->t->batch;
  if (r->ufd < 0) return connect_failed(r, errno);
  int one = 1;
  setsockopt(r->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  /* Bytes to send as soon as the handshake completes: the kernel then holds its final
   * ACK and the first data segment carries it (HAProxy's tcp-smart-connect), one loopback
   * segment less per connection. Only with bytes in hand: a task that speaks first
   * (SMTP, MySQL) is not accepted until that ACK, which would wait for the delayed-ACK
   * timer. The kernel leaves this mode (quick ACKs) once the handshake completes. */
  if (early > 0) {
    int zero = 0;
    setsockopt(r->ufd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero);
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(b->port), .sin_addr.s_addr = b->ip};
  /* connect started */
  int rc = connect(r->ufd, (struct sockaddr *)&sa, sizeof sa);
  if (rc < 0 && errno != EINPROGRESS) return connect_failed(r, errno);
  watch(r, 1);
  if (rc == 0) return on_connect(r, EPOLLOUT);
  pump(r); /* the early pass (see the top): no poll round between connect() and the request */
}

void relay_start(struct relay *r) {
  r->c_more = MORE_DATA; /* the client may have sent before we watched it */
  watch(r, 0);
  connect_next(r);
}

void relay_ready(struct relay *r, int side, uint32_t events) {
  int *more = side ? &r->u_more : &r->c_more;
  /* a FIN already queued: a short read does not mean drained, read on until recv() says 0 */
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) *more = MORE_EOF;
  else if ((events & EPOLLIN) && !*more) *more = MORE_DATA;
  if (side == 1 && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == EPOLLRDHUP) r->u_fin = 1;
  if (r->state == ST_CONNECTING && side == 1) {
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) on_connect(r, events);
    return;
  }
  if (r->state == ST_RUNNING) pump(r);
}

void relay_fin_now(struct relay *r) {
  if (r->state != ST_RUNNING || r->fin_c != FIN_DEFERRED) return;
  r->fin_c = FIN_SENT;
  pump(r);
}

void relay_close(struct relay *r, int graceful) {
  if (r->state == ST_DEAD) return;
  if (graceful && r->state == ST_RUNNING) {
    shutdown(r->cfd, SHUT_WR);
    shutdown(r->ufd, SHUT_WR);
  }
  finish(r, graceful ? 0 : ECANCELED);
}

/*
 * TCP keepalive, set by the thread's sweep on a connection that has lived a sweep period
 * (relay_thread.c), not at accept and connect: a short connection (most of them) then
 * never pays the two setsockopt() calls per leg nor a keepalive timer per socket, and a
 * long one gets it a second or two late against an idle time of keepalive_s (60 s), which
 * no peer can tell apart. The client leg as the JS relay's (keepalive_s, none at 0); the
 * task leg always, with keepalive_s as its idle time when set rather than the kernel's
 * 2 h default, so a task on a dead node is noticed as on the JS path.
 */
static void set_keepalive(int fd, int idle_s) {
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  if (idle_s > 0) setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
}

void relay_keepalive(struct relay *r) {
  int idle_s = r->pool->cfg.keepalive_s;
  if (!r->ka_c && idle_s > 0) set_keepalive(r->cfd, idle_s);
  r->ka_c = 1;
  if (!r->ka_u && r->ufd >= 0 && r->state == ST_RUNNING) {
    set_keepalive(r->ufd, idle_s);
    r->ka_u = 1;
  }
}

void relay_check_deadline(struct relay *r, int64_t now) {
  if (r->state == ST_CONNECTING && now >= r->deadline) connect_failed(r, ETIMEDOUT);
}
