/*
 * UDP engine I/O (udp.h): listeners and the pool of upstream sockets in one epoll
 * set, and the two directions as batches.
 *
 *   from clients: recvmmsg(listener) -> validate (whole datagram, IPv4, port != 0)
 *     -> flow lookup, new flows queued -> decide (one JS call) -> bind (pool socket)
 *     -> queue to tasks -> flush: per socket one sendmmsg, equal datagrams to one
 *     address as a UDP GSO train (UDP_SEGMENT)
 *   from tasks: recvmmsg(pool socket k) into a shared arena -> (k, source) -> flow
 *     -> queue to clients -> flush once per pass (replies of many sockets, one
 *     sendmmsg per listener)
 *   errors: recvmsg(MSG_ERRQUEUE) on socket k: the ICMP error names the task ->
 *     FAILED event -> unbind -> decide -> bind elsewhere -> replay the quoted datagram
 */
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include <errno.h>
#include <time.h> /* before linux/errqueue.h, which uses struct timespec */
#include <linux/errqueue.h>
#include <netinet/ip_icmp.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "udp_engine.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

/* Listener batches per readiness, so one busy port does not starve the others. */
#define RX_ROUNDS 16
/* epoll events per pass. */
#define EVENTS 128
/* Listeners ask for a receive buffer this large (SO_RCVBUFFORCE as root) to ride out
 * bursts while the loop is busy elsewhere. */
#define LISTENER_RCVBUF (4 << 20)
/* epoll data: pool sockets are their index; listeners carry this bit and their id. */
#define LISTENER_TAG (1ULL << 32)

#define UDP_STAT_NAME(name, js) js,
const char *const udp_stat_names[UDP_S_COUNT] = {UDP_STATS(UDP_STAT_NAME)};
#undef UDP_STAT_NAME

static void tx_flush(struct udp_engine *e, struct udp_tx *tx);

/* ---- setup ---- */

static int sock_open(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  return fd < 0 ? -errno : fd;
}

static int epoll_add(struct udp_engine *e, int fd, uint64_t data) {
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = data};
  return epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Opens pool socket number nsocks: any address, an ephemeral port of its own, ICMP
 * errors queued (IP_RECVERR) so an unconnected socket still learns of them. */
int udp_pool_open(struct udp_engine *e) {
  if (e->nsocks >= e->cfg.max_sockets) return -EADDRNOTAVAIL;
  int fd = sock_open();
  if (fd < 0) return fd;
  int one = 1, rc = 0;
  struct sockaddr_in any = {.sin_family = AF_INET};
  if (setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one) < 0 || bind(fd, (struct sockaddr *)&any, sizeof any) < 0) rc = -errno;
  if (rc == 0) rc = epoll_add(e, fd, e->nsocks);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  e->socks[e->nsocks++] = fd;
  return 0;
}

int udp_create(const struct udp_config *c, const struct udp_hooks *h, struct udp_engine **out) {
  if (!c->max_flows || !c->max_sockets) return -EINVAL;
  struct udp_engine *e = calloc(1, sizeof *e);
  if (!e) return -ENOMEM;
  e->cfg = *c;
  e->hooks = *h;
  e->gso = 1;
  e->now = udp_now_ms();
  e->last_dst_sweep = e->now;
  e->epfd = epoll_create1(EPOLL_CLOEXEC);
  e->socks = calloc(c->max_sockets, sizeof *e->socks);
  e->fwd.buf = malloc((size_t)UDP_BATCH * UDP_SLOT);
  e->rep.buf = malloc((size_t)UDP_BATCH * UDP_SLOT);
  int rc = e->epfd < 0 ? -errno : 0;
  if (rc == 0 && (!e->socks || !e->fwd.buf || !e->rep.buf)) rc = -ENOMEM;
  if (rc == 0) rc = udp_table_init(e);
  if (rc < 0) {
    udp_destroy(e);
    return rc;
  }
  *out = e;
  return 0;
}

int udp_fd(const struct udp_engine *e) {
  return e->epfd;
}

int udp_listen(struct udp_engine *e, uint32_t lid, uint32_t ip, uint16_t port, uint32_t idle_ms) {
  if (e->in_hook) return -EBUSY;
  if (udp_listener_find(e, lid)) return -EEXIST;
  struct udp_listener *l = calloc(1, sizeof *l);
  if (!l) return -ENOMEM;
  int fd = sock_open();
  if (fd < 0) {
    free(l);
    return fd;
  }
  int size = LISTENER_RCVBUF, rc = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  int one = 1;
  if (e->cfg.reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) rc = -errno;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = ip};
  if (rc == 0 && bind(fd, (struct sockaddr *)&a, sizeof a) < 0) rc = -errno;
  if (rc == 0) rc = epoll_add(e, fd, LISTENER_TAG | lid);
  if (rc < 0) {
    close(fd);
    free(l);
    return rc;
  }
  l->lid = lid;
  l->fd = fd;
  l->idle_ms = idle_ms;
  link_init(&l->lru);
  l->next = e->listeners;
  e->listeners = l;
  return 0;
}

/* ---- decisions (JS) ---- */

static void run_decisions(struct udp_engine *e);

static void queue_decision(struct udp_engine *e, struct udp_flow *f, uint32_t exclude, const uint8_t *quote, int quote_len) {
  if (e->ndec == UDP_DECIDE_MAX) run_decisions(e);
  unsigned j = e->ndec++;
  struct udp_decision *d = &e->hooks.dec[j];
  d->lid = f->l->lid;
  d->client_ip = f->client.sin_addr.s_addr;
  d->client_port = ntohs(f->client.sin_port);
  d->exclude = exclude;
  d->tries = f->tries;
  d->tag = d->ip = d->port = d->flags = 0;
  e->dec_flow[j] = f;
  e->replay_len[j] = quote ? quote_len : -1;
  if (quote) memcpy(e->replay[j], quote, (size_t)quote_len);
}

static void tx_add(struct udp_engine *e, struct udp_tx *tx, int fd, const struct sockaddr_in *to, void *p, size_t len) {
  if (tx->n == UDP_TX_MAX) tx_flush(e, tx);
  unsigned i = tx->n++;
  tx->fd[i] = fd;
  tx->to[i] = *to;
  tx->iov[i] = (struct iovec){.iov_base = p, .iov_len = len};
}

/* One call into JS for every queued decision, then each flow bound to its task (or
 * ended); replays go out before the replay buffers are reused. */
static void run_decisions(struct udp_engine *e) {
  unsigned n = e->ndec, replays = 0;
  uint32_t hint = UINT32_MAX;
  if (!n) return;
  udp_flush_events(e); /* JS hears of failures (back-off) before it picks */
  e->in_hook++;
  e->hooks.decide(e->hooks.ctx, n);
  e->in_hook--;
  e->ndec = 0;
  for (unsigned j = 0; j < n; j++) {
    struct udp_flow *f = e->dec_flow[j];
    const struct udp_decision *d = &e->hooks.dec[j];
    if (f->dead) continue;
    int valid = d->tag && d->ip && d->port && d->port <= 0xffff;
    if (!valid) {
      if (f->counted) udp_flow_close(e, f, UDP_R_NO_BACKEND);
      else udp_flow_discard(e, f);
      continue;
    }
    f->counted = 1;
    f->watch = (d->flags & UDP_DEC_WATCH) != 0;
    if (udp_flow_bind(e, f, d->tag, d->ip, htons((uint16_t)d->port), &hint) < 0) {
      f->tag = d->tag;
      udp_flow_close(e, f, UDP_R_NO_PORT);
      continue;
    }
    if (e->replay_len[j] >= 0) {
      f->last_len = (uint16_t)e->replay_len[j];
      tx_add(e, &e->up, e->socks[f->sock], &f->dst->addr, e->replay[j], (size_t)e->replay_len[j]);
      e->stats[UDP_S_REPLAYED]++;
      replays++;
    }
  }
  if (replays) tx_flush(e, &e->up);
}

/* ---- from clients ---- */

static int rx_batch(int fd, struct udp_rx *rx, unsigned first, unsigned vlen) {
  for (unsigned i = first; i < first + vlen; i++) {
    rx->iov[i] = (struct iovec){.iov_base = rx->buf + (size_t)i * UDP_SLOT, .iov_len = UDP_SLOT};
    rx->msg[i].msg_hdr = (struct msghdr){.msg_name = &rx->from[i], .msg_namelen = sizeof rx->from[i], .msg_iov = &rx->iov[i], .msg_iovlen = 1};
  }
  int n;
  do n = recvmmsg(fd, &rx->msg[first], vlen, MSG_DONTWAIT, NULL);
  while (n < 0 && errno == EINTR);
  return n;
}

static int bad_source(const struct msghdr *m) {
  const struct sockaddr_in *a = m->msg_name;
  return m->msg_namelen < sizeof *a || a->sin_family != AF_INET || a->sin_port == 0;
}

static void rx_clients(struct udp_engine *e, struct udp_listener *l) {
  struct udp_rx *rx = &e->fwd;
  for (int round = 0; round < RX_ROUNDS; round++) {
    int n = rx_batch(l->fd, rx, 0, UDP_BATCH);
    if (n <= 0) return;
    e->now = udp_now_ms();
    e->stats[UDP_S_RX_PACKETS] += (uint64_t)n;
    for (int i = 0; i < n; i++) {
      struct msghdr *m = &rx->msg[i].msg_hdr;
      struct udp_flow *f = NULL;
      if (m->msg_flags & MSG_TRUNC) e->stats[UDP_S_TRUNCATED]++;
      else if (bad_source(m)) e->stats[UDP_S_BAD_SOURCE]++;
      else if (!(f = udp_flow_find(e, l, &rx->from[i])) && (f = udp_flow_new(e, l, &rx->from[i]))) queue_decision(e, f, 0, NULL, 0);
      e->batch_flow[i] = f;
    }
    run_decisions(e);
    for (int i = 0; i < n; i++) {
      struct udp_flow *f = e->batch_flow[i];
      if (!f) continue;
      if (f->dead || !f->dst) {
        e->stats[UDP_S_UNFORWARDED]++;
        continue;
      }
      unsigned len = rx->msg[i].msg_len;
      f->bytes_in += len;
      f->last_len = (uint16_t)len;
      udp_flow_touch(f, e->now);
      tx_add(e, &e->up, e->socks[f->sock], &f->dst->addr, rx->iov[i].iov_base, len);
    }
    tx_flush(e, &e->up);
    if (n < UDP_BATCH) return;
  }
}

/* ---- from tasks ---- */

/* Replies of every ready pool socket gather in one arena, so replies to one listener go
 * out in one sendmmsg; the arena is flushed when it runs low. */
static void rx_tasks(struct udp_engine *e, uint32_t k) {
  struct udp_rx *rx = &e->rep;
  if (e->down.n == 0) rx->used = 0;
  if (UDP_BATCH - rx->used < UDP_BATCH / 4) {
    tx_flush(e, &e->down);
    rx->used = 0;
  }
  unsigned first = rx->used;
  int n = rx_batch(e->socks[k], rx, first, UDP_BATCH - first);
  if (n <= 0) return;
  rx->used += (unsigned)n;
  e->now = udp_now_ms();
  for (unsigned i = first; i < first + (unsigned)n; i++) {
    struct msghdr *m = &rx->msg[i].msg_hdr;
    if (m->msg_flags & MSG_TRUNC) {
      e->stats[UDP_S_TRUNCATED]++;
      continue;
    }
    const struct sockaddr_in *src = &rx->from[i];
    struct udp_dst *d = bad_source(m) ? NULL : udp_dst_find(e, src->sin_addr.s_addr, src->sin_port);
    struct udp_flow *f = d && k < d->hw ? d->by_sock[k] : NULL;
    if (!f) {
      e->stats[UDP_S_STRAY]++; /* no flow: a stranger, or a flow ended meanwhile */
      continue;
    }
    if (!f->answered) {
      udp_flow_answered(e, f);
      if (f->watch) udp_emit(e, UDP_EV_ANSWERED, f, f->tag, 0);
    }
    unsigned len = rx->msg[i].msg_len;
    f->bytes_out += len;
    udp_flow_touch(f, e->now);
    tx_add(e, &e->down, f->l->fd, &f->client, rx->iov[i].iov_base, len);
  }
}

/* ---- ICMP errors ---- */

static void failover(struct udp_engine *e, struct udp_flow *f, int err, const uint8_t *quote, int quote_len) {
  uint32_t failed = f->tag;
  udp_emit(e, UDP_EV_FAILED, f, failed, err);
  udp_flow_unbind(e, f);
  f->tag = 0;
  /* The ICMP error quotes the datagram that failed; it goes to the next task when the
   * flow never got an answer and the quote is the whole datagram. */
  int whole = !f->answered && quote_len >= 0 && quote_len == f->last_len;
  if (!f->answered && !whole) e->stats[UDP_S_REPLAY_LOST]++;
  queue_decision(e, f, failed, whole ? quote : NULL, quote_len);
}

static void rx_errors(struct udp_engine *e, uint32_t k) {
  for (;;) {
    uint8_t quote[UDP_QUOTE_MAX];
    struct sockaddr_in to;
    union {
      char buf[512];
      struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = quote, .iov_len = sizeof quote};
    struct msghdr m = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t r = recvmsg(e->socks[k], &m, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    const struct sock_extended_err *ee = NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ee = (const struct sock_extended_err *)CMSG_DATA(c);
    if (!ee) continue;
    e->stats[UDP_S_ICMP]++;
    /* Unreachable port, host or network: the task is not there. Fragmentation needed is
     * path MTU discovery, not a failure. */
    if (ee->ee_origin != SO_EE_ORIGIN_ICMP || ee->ee_type != ICMP_DEST_UNREACH || ee->ee_code == ICMP_FRAG_NEEDED) continue;
    struct udp_dst *d = m.msg_namelen >= sizeof to ? udp_dst_find(e, to.sin_addr.s_addr, to.sin_port) : NULL;
    struct udp_flow *f = d && k < d->hw ? d->by_sock[k] : NULL;
    if (!f) continue; /* its flow already moved or ended */
    failover(e, f, (int)ee->ee_errno, quote, (m.msg_flags & MSG_TRUNC) ? -1 : (int)r);
  }
  run_decisions(e);
}

/* ---- sending ---- */

/* Errors a send reports for an earlier datagram (an ICMP error left on the socket),
 * not for this one: worth one more try. */
static int earlier_error(int err) {
  return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN;
}

static void send_singly(struct udp_engine *e, int fd, struct udp_tx *tx, unsigned first, unsigned count) {
  for (unsigned i = first; i < first + count; i++) {
    struct msghdr m = {.msg_name = &tx->to[i], .msg_namelen = sizeof tx->to[i], .msg_iov = &tx->iov[i], .msg_iovlen = 1};
    ssize_t r = sendmsg(fd, &m, 0);
    if (r < 0 && (errno == EINTR || earlier_error(errno))) r = sendmsg(fd, &m, 0);
    if (r < 0) e->stats[UDP_S_TX_ERRORS]++;
  }
}

/* The messages out[0, m) for one socket, in as few sendmmsg calls as the kernel takes. */
static void send_run(struct udp_engine *e, int fd, struct udp_tx *tx, unsigned m) {
  unsigned s = 0;
  int retried = 0;
  while (s < m) {
    int r = sendmmsg(fd, &tx->out[s], m - s, 0);
    if (r > 0) {
      s += (unsigned)r;
      retried = 0;
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (!retried && earlier_error(err)) {
      retried = 1;
      continue;
    }
    if (tx->out[s].msg_hdr.msg_controllen && (err == EIO || err == EINVAL || err == EOPNOTSUPP || err == EMSGSIZE)) {
      /* This path takes no UDP GSO (no checksum offload, or a small MTU): never again. */
      e->gso = 0;
      send_singly(e, fd, tx, tx->out_first[s], tx->out_count[s]);
    } else {
      e->stats[UDP_S_TX_ERRORS] += tx->out_count[s];
    }
    s++;
    retried = 0;
  }
}

static int same_to(const struct sockaddr_in *a, const struct sockaddr_in *b) {
  return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

/* How many datagrams from i form one GSO train: same socket and address, the same
 * size (the last may be shorter), within the segment and train limits. */
static unsigned train(const struct udp_engine *e, const struct udp_tx *tx, unsigned i) {
  size_t size = tx->iov[i].iov_len, total = size;
  unsigned c = 1;
  if (!e->gso || size == 0 || size > UDP_GSO_SEG_MAX) return 1;
  while (i + c < tx->n && c < UDP_BATCH && tx->fd[i + c] == tx->fd[i] && same_to(&tx->to[i + c], &tx->to[i])) {
    size_t len = tx->iov[i + c].iov_len;
    if (len == 0 || len > size || total + len > UDP_GSO_TOTAL_MAX) break;
    total += len;
    c++;
    if (len < size) break;
  }
  return c;
}

static void tx_flush(struct udp_engine *e, struct udp_tx *tx) {
  unsigned i = 0;
  while (i < tx->n) {
    int fd = tx->fd[i];
    unsigned m = 0;
    while (i < tx->n && tx->fd[i] == fd) {
      unsigned c = train(e, tx, i);
      struct msghdr *h = &tx->out[m].msg_hdr;
      *h = (struct msghdr){.msg_name = &tx->to[i], .msg_namelen = sizeof tx->to[i], .msg_iov = &tx->iov[i], .msg_iovlen = c};
      if (c > 1) {
        uint16_t seg = (uint16_t)tx->iov[i].iov_len;
        h->msg_control = tx->ctl[m].buf;
        h->msg_controllen = sizeof tx->ctl[m].buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(h);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof seg);
        memcpy(CMSG_DATA(cm), &seg, sizeof seg);
      }
      tx->out_first[m] = i;
      tx->out_count[m] = c;
      m++;
      i += c;
    }
    send_run(e, fd, tx, m);
  }
  if (tx == &e->down) e->stats[UDP_S_TX_PACKETS] += tx->n;
  tx->n = 0;
}

/* ---- the loop's entry points ---- */

void udp_process(struct udp_engine *e) {
  if (e->in_hook) return;
  struct epoll_event evs[EVENTS];
  int n = epoll_wait(e->epfd, evs, EVENTS, 0);
  e->now = udp_now_ms();
  for (int i = 0; i < n; i++) {
    uint64_t tag = evs[i].data.u64;
    if (tag & LISTENER_TAG) {
      struct udp_listener *l = udp_listener_find(e, (uint32_t)tag);
      if (l) rx_clients(e, l);
      continue;
    }
    uint32_t k = (uint32_t)tag;
    if (k >= e->nsocks) continue;
    if (evs[i].events & EPOLLERR) rx_errors(e, k);
    if (evs[i].events & EPOLLIN) rx_tasks(e, k);
  }
  tx_flush(e, &e->down);
  e->rep.used = 0;
  udp_flush_events(e);
  udp_reap(e);
}

void udp_tick(struct udp_engine *e) {
  if (e->in_hook) return;
  e->now = udp_now_ms();
  udp_expire(e);
  udp_flush_events(e);
  udp_reap(e);
}

/* ---- control ---- */

/* Closes the listener's flows (all, or those on task `tag`); returns how many. */
static int close_flows(struct udp_engine *e, struct udp_listener *l, uint32_t tag, int all) {
  int n = 0;
  struct link *v = l->lru.next;
  while (v != &l->lru) {
    struct udp_flow *f = container_of(v, struct udp_flow, lru);
    v = v->next;
    if (all || f->tag == tag) {
      udp_flow_close(e, f, UDP_R_CLOSED);
      n++;
    }
  }
  udp_flush_events(e);
  udp_reap(e);
  return n;
}

int udp_unlisten(struct udp_engine *e, uint32_t lid) {
  if (e->in_hook) return -EBUSY;
  struct udp_listener **p = &e->listeners;
  while (*p && (*p)->lid != lid) p = &(*p)->next;
  struct udp_listener *l = *p;
  if (!l) return -ENOENT;
  close_flows(e, l, 0, 1);
  *p = l->next;
  epoll_ctl(e->epfd, EPOLL_CTL_DEL, l->fd, NULL);
  close(l->fd);
  free(l);
  return 0;
}

int udp_close_tag(struct udp_engine *e, uint32_t lid, uint32_t tag) {
  if (e->in_hook) return -EBUSY;
  struct udp_listener *l = udp_listener_find(e, lid);
  if (!l) return -ENOENT;
  return close_flows(e, l, tag, 0);
}

int udp_flows(const struct udp_engine *e, uint32_t lid, void (*fn)(void *ctx, const struct udp_flow_info *f), void *ctx) {
  const struct udp_listener *l = udp_listener_find(e, lid);
  if (!l) return -ENOENT;
  int64_t now = udp_now_ms();
  int n = 0;
  for (const struct link *v = l->lru.next; v != &l->lru; v = v->next) {
    const struct udp_flow *f = container_of(v, struct udp_flow, lru);
    struct udp_flow_info i = {
        .client_ip = f->client.sin_addr.s_addr,
        .client_port = ntohs(f->client.sin_port),
        .tag = f->tag,
        .idle_ms = now - f->last_ms,
        .bytes_in = f->bytes_in,
        .bytes_out = f->bytes_out,
        .answered = f->answered,
    };
    fn(ctx, &i);
    n++;
  }
  return n;
}

void udp_stats(const struct udp_engine *e, uint64_t out[UDP_S_COUNT]) {
  memcpy(out, e->stats, sizeof e->stats);
  out[UDP_S_FLOWS] = e->nflows;
  out[UDP_S_SOCKETS] = e->nsocks;
}

void udp_destroy(struct udp_engine *e) {
  while (e->listeners) {
    struct udp_listener *l = e->listeners;
    e->listeners = l->next;
    close(l->fd);
    free(l);
  }
  for (uint32_t k = 0; k < e->nsocks; k++) close(e->socks[k]);
  if (e->epfd >= 0) close(e->epfd);
  udp_table_free(e);
  free(e->socks);
  free(e->fwd.buf);
  free(e->rep.buf);
  free(e);
}
