/*
 * The relay engine's threads and its control calls (see relay.h, relay_engine.h).
 *
 * Each thread: epoll_wait -> take its lock -> accept on ready listeners / drive ready
 * relays -> connect deadlines (every TICK_MS while connecting) -> idle expiry (every
 * SWEEP_MS) -> free what ended -> drop the lock. The JS thread never wakes a relay
 * thread: it gives every thread a listening socket of its own for each published port
 * (SO_REUSEPORT: the kernel spreads new connections over the group by their addresses)
 * and takes a thread's lock to list or close that thread's relays.
 *
 * Why not one socket in every thread's epoll set with EPOLLEXCLUSIVE: the kernel wakes
 * the first idle waiter, which then accepts a batch, so the connections of a burst
 * (wrk's 50 keep-alive connections) landed 48 on one thread and 2 on the other, and a
 * second thread added nothing to a request/response workload. With one thread the
 * listener is a plain one: nothing else may bind the port.
 *
 * epoll data: a listener is LISTENER_TAG | lid (looked up under e->lock, so an event
 * of a listener closed meanwhile finds nothing); a relay side is the relay's address
 * with the side in bit 0 (relays are malloc-aligned).
 */
#include "relay_engine.h"
#include "sched_slice.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define ACCEPT_BATCH 16
#define LISTEN_BACKLOG 4096
#define TICK_MS 100
#define SWEEP_MS 1000
#define LISTENER_TAG (1ULL << 63)

int64_t relay_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t relay_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A reference to the pool of a listener that still listens, or NULL. */
static struct pool *listening_pool(struct relay_engine *e, uint32_t lid) {
  pthread_mutex_lock(&e->lock);
  struct pool *p = pool_find(e, lid);
  if (p && p->listening) atomic_fetch_add(&p->refs, 1);
  else p = NULL;
  pthread_mutex_unlock(&e->lock);
  return p;
}

static void new_relay(struct relay_thread *t, struct pool *p, int fd, const struct sockaddr_in *peer) {
  struct relay *r = calloc(1, sizeof *r);
  if (!r) {
    close(fd);
    return;
  }
  uint32_t lip = p->cfg.ip;
  if (lip == htonl(INADDR_ANY)) { /* a wildcard listener: which local address did the client reach? */
    struct sockaddr_in self;
    socklen_t slen = sizeof self;
    if (getsockname(fd, (struct sockaddr *)&self, &slen) == 0) lip = self.sin_addr.s_addr;
  }
  atomic_fetch_add(&p->refs, 1);
  r->t = t;
  r->pool = p;
  r->client_ip = peer->sin_addr.s_addr;
  r->client_port = ntohs(peer->sin_port);
  r->local_ip = lip;
  r->local_port = p->cfg.port;
  r->cfd = fd;
  r->ufd = -1;
  r->pcu[0] = r->pcu[1] = r->puc[0] = r->puc[1] = -1;
  r->last_ms = r->born_ms = t->now;
  r->next = t->relays;
  if (t->relays) t->relays->prev = r;
  t->relays = r;
  t->accepted++;
  t->open++;
  pthread_mutex_lock(&p->lock);
  p->total++;
  p->active++;
  pthread_mutex_unlock(&p->lock);
  relay_start(r);
}

/* TCP_NODELAY was set on the listener: accepted sockets inherit it (keepalive comes later,
 * relay_keepalive). */
static void on_accept(struct relay_thread *t, uint32_t lid) {
  struct pool *p = listening_pool(t->e, lid);
  if (!p) return;
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int fd = accept4(p->lfd[t->index], (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break; /* EAGAIN, or out of fds: the backlog waits for the next wakeup */
    new_relay(t, p, fd, &peer);
  }
  pool_put(t->e, p);
}

void relay_defer_fin(struct relay *r) {
  struct relay_thread *t = r->t;
  r->fin_c = FIN_DEFERRED;
  r->fin_batch = t->batch;
  r->next_fin = t->fins;
  t->fins = r;
}

/* Sends the FINs deferred in an earlier batch; drops relays that ended meanwhile (before
 * free_dead, so the list never holds freed memory). */
static void flush_fins(struct relay_thread *t) {
  struct relay *keep = NULL, *r = t->fins;
  t->fins = NULL;
  while (r) {
    struct relay *next = r->next_fin;
    if (r->state == ST_DEAD) {
      /* ended: forget */
    } else if (r->fin_batch == t->batch) {
      r->next_fin = keep;
      keep = r;
    } else {
      relay_fin_now(r);
    }
    r = next;
  }
  t->fins = keep; /* nothing defers during the flush: a relay's FIN is deferred once */
}

static void free_dead(struct relay_thread *t) {
  while (t->dead) {
    struct relay *d = t->dead;
    t->dead = d->next_dead;
    struct pool *p = d->pool;
    t->open--;
    free(d);
    pool_put(t->e, p);
  }
}

static void timers(struct relay_thread *t) {
  if (t->connecting > 0) {
    for (struct relay *r = t->relays, *next; r; r = next) {
      next = r->next;
      relay_check_deadline(r, t->now);
    }
  }
  if (t->now - t->last_sweep < SWEEP_MS) return;
  t->last_sweep = t->now;
  for (struct relay *r = t->relays, *next; r; r = next) {
    next = r->next;
    if (r->state == ST_RUNNING && t->now - r->last_ms >= r->pool->cfg.idle_timeout_ms) relay_close(r, 1);
    else if (r->state == ST_RUNNING && !(r->ka_c && r->ka_u) && t->now - r->born_ms >= SWEEP_MS) relay_keepalive(r);
  }
}

static void *thread_main(void *arg) {
  struct relay_thread *t = arg;
  pthread_setname_np(pthread_self(), "swarmnet-relay"); /* as ps -L and /proc/PID/task/TID/comm show it */
  sched_slice_apply(); /* woken by every segment: due soon after (sched_slice.h) */
  struct epoll_event events[MAX_EVENTS];
  int64_t last_tick = 0;
  for (;;) {
    int n = epoll_wait(t->ep, events, MAX_EVENTS, t->fins ? 0 : t->connecting > 0 ? TICK_MS : SWEEP_MS);
    if (n < 0 && errno != EINTR) break;
    pthread_mutex_lock(&t->lock);
    t->now = relay_now_ms();
    t->batch++;
    for (int i = 0; i < n; i++) {
      uint64_t d = events[i].data.u64;
      if (d & LISTENER_TAG) {
        on_accept(t, (uint32_t)d);
        continue;
      }
      struct relay *r = (struct relay *)(uintptr_t)(d & ~(uint64_t)1);
      int side = (int)(d & 1);
      /* a task socket made in this batch cannot have an event in it: that one was its predecessor's */
      if (side == 1 && r->u_batch == t->batch) continue;
      relay_ready(r, side, events[i].events);
    }
    if (t->now - last_tick >= TICK_MS) {
      last_tick = t->now;
      timers(t);
    }
    flush_fins(t);
    free_dead(t);
    pthread_mutex_unlock(&t->lock);
  }
  return NULL;
}

struct relay_engine *relay_engine_start(int threads) {
  if (threads < 1) {
    errno = EINVAL;
    return NULL;
  }
  struct relay_engine *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  e->threads = calloc((size_t)threads, sizeof *e->threads);
  if (!e->threads) {
    free(e);
    return NULL;
  }
  pthread_mutex_init(&e->lock, NULL);
  /* relay threads take no signals: they stay with Node's thread */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int started = 0, err = 0;
  for (; started < threads; started++) {
    struct relay_thread *t = &e->threads[started];
    t->e = e;
    t->index = started;
    t->now = t->last_sweep = relay_now_ms();
    pthread_mutex_init(&t->lock, NULL);
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    if (t->ep < 0) {
      err = errno;
      break;
    }
    if ((err = pthread_create(&t->tid, NULL, thread_main, t)) != 0) {
      close(t->ep);
      break;
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (started == 0) {
    free(e->threads);
    free(e);
    errno = err;
    return NULL;
  }
  e->nthreads = started; /* fewer than asked if the system refused a thread: still a working engine */
  return e;
}

int relay_engine_threads(const struct relay_engine *e) {
  return e->nthreads;
}

static int listen_socket(const struct relay_listen_args *a, int reuseport) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(a->port), .sin_addr.s_addr = a->ip};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int relay_listen(struct relay_engine *e, const struct relay_listen_args *a) {
  if (a->proxy < 0 || a->proxy > 2 || a->connect_timeout_ms < 1 || a->idle_timeout_ms < 1 || a->retries < 0) return -EINVAL;
  pthread_mutex_lock(&e->lock);
  int dup = pool_find(e, a->lid) != NULL;
  pthread_mutex_unlock(&e->lock);
  if (dup) return -EEXIST;
  struct pool *p = calloc(1, sizeof *p);
  int *fds = calloc((size_t)e->nthreads, sizeof *fds);
  if (!p || !fds) {
    free(p);
    free(fds);
    return -ENOMEM;
  }
  for (int i = 0; i < e->nthreads; i++) {
    /* The first bind fails as a plain one would if another socket holds the port. */
    fds[i] = listen_socket(a, e->nthreads > 1);
    if (fds[i] < 0) {
      int err = fds[i];
      while (i-- > 0) close(fds[i]);
      free(fds);
      free(p);
      return err;
    }
  }
  pthread_mutex_init(&p->lock, NULL);
  atomic_init(&p->refs, 1);
  p->cfg = *a;
  p->lfd = fds;
  p->nlfd = e->nthreads;
  p->listening = 1;
  pthread_mutex_lock(&e->lock);
  p->next = e->pools;
  e->pools = p;
  pthread_mutex_unlock(&e->lock);
  for (int i = 0; i < e->nthreads; i++) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LISTENER_TAG | a->lid};
    if (epoll_ctl(e->threads[i].ep, EPOLL_CTL_ADD, p->lfd[i], &ev) < 0) {
      int err = errno;
      relay_unlisten(e, a->lid);
      return -err;
    }
  }
  return 0;
}

int relay_unlisten(struct relay_engine *e, uint32_t lid) {
  pthread_mutex_lock(&e->lock);
  struct pool *p = pool_find(e, lid);
  if (!p || !p->listening) {
    pthread_mutex_unlock(&e->lock);
    return -ENOENT;
  }
  p->listening = 0;
  pthread_mutex_unlock(&e->lock);
  for (int i = 0; i < p->nlfd; i++) epoll_ctl(e->threads[i].ep, EPOLL_CTL_DEL, p->lfd[i], NULL);
  /* Stop listening now (clients still in the backlog are reset) and let a new listener
   * bind the port; the descriptor itself stays open until the pool is freed, so a
   * thread that found the pool a moment ago never accepts on a reused fd number. */
  for (int i = 0; i < p->nlfd; i++) shutdown(p->lfd[i], SHUT_RDWR);
  pool_put(e, p);
  return 0;
}

int relay_conns(struct relay_engine *e, uint32_t lid, struct relay_conn_info *out, int max) {
  int n = 0;
  int64_t now = relay_now_ms();
  for (int i = 0; i < e->nthreads; i++) {
    struct relay_thread *t = &e->threads[i];
    pthread_mutex_lock(&t->lock);
    for (struct relay *r = t->relays; r && n < max; r = r->next) {
      if (r->pool->cfg.lid != lid || r->state == ST_DEAD) continue;
      out[n++] = (struct relay_conn_info){
          .client_ip = r->client_ip,
          .local_ip = r->local_ip,
          .client_port = r->client_port,
          .local_port = r->local_port,
          .bid = r->b ? r->b->bid : 0,
          .running = r->state == ST_RUNNING,
          .bytes_in = r->bytes_in,
          .bytes_out = r->bytes_out,
          .idle_ms = now - r->last_ms,
          .idle_timeout_ms = r->pool->cfg.idle_timeout_ms,
      };
    }
    pthread_mutex_unlock(&t->lock);
  }
  return n;
}

int relay_thread_stats(struct relay_engine *e, uint64_t *accepted, uint64_t *open, int max) {
  for (int i = 0; i < e->nthreads && i < max; i++) {
    struct relay_thread *t = &e->threads[i];
    pthread_mutex_lock(&t->lock);
    accepted[i] = t->accepted;
    open[i] = t->open;
    pthread_mutex_unlock(&t->lock);
  }
  return e->nthreads;
}

int relay_close_backend(struct relay_engine *e, uint32_t lid, uint32_t bid) {
  int n = 0;
  for (int i = 0; i < e->nthreads; i++) {
    struct relay_thread *t = &e->threads[i];
    pthread_mutex_lock(&t->lock);
    for (struct relay *r = t->relays, *next; r; r = next) {
      next = r->next;
      if (r->pool->cfg.lid != lid || !r->attached || r->b->bid != bid) continue;
      relay_close(r, 1);
      n++;
    }
    pthread_mutex_unlock(&t->lock);
  }
  return n;
}
