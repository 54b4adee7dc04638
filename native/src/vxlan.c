/*
 * Userspace VXLAN engine (see vxlan.h): this file has the control calls (JS thread);
 * the two pipelines run on one thread each, in vxlan_tx.c and vxlan_rx.c:
 *
 *   TX: epoll(TAPs) -> read frames (vnet header first) -> classify (FDB hit | ARP or
 *       unknown unicast: control callback | other multicast: drop) -> TCP super-frame:
 *       cut into segments (TSO) | else: finish the checksum, encapsulate in place
 *       -> sendmmsg
 *   RX: poll(UDP) -> recvmmsg -> validate (a known node, length, I flag, VNI) -> merge
 *       consecutive segments of a TCP flow (GRO) -> write into the VNI's TAP
 *
 * VXLAN header, RFC 7348 section 5 (8 bytes, in front of the inner Ethernet frame):
 *
 *    0                   1                   2                   3
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |R|R|R|R|I|R|R|R|            Reserved                           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                VXLAN Network Identifier (VNI) |   Reserved    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Tables (TAPs by VNI, FDB) change rarely and are read per batch: a rwlock, taken
 * for reading once per batch by the data threads and for writing by the control calls.
 * Counters are written by one thread each and read with relaxed atomics.
 */
#include "vxlan_engine.h"

/* ---- control calls (JS thread) ---- */

int vx_tap_open(const char *name, int mtu) {
  if (strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  /* IFF_VNET_HDR + offloads: the kernel passes TCP super-frames and leaves checksums
   * to us (TSO/GRO in offload.c). */
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) goto fail;
  if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) < 0) goto fail;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) goto fail;
  ifr.ifr_mtu = mtu;
  int rc = ioctl(s, SIOCSIFMTU, &ifr);
  if (rc == 0) rc = ioctl(s, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags |= IFF_UP;
    rc = ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  int err = errno;
  close(s);
  if (rc < 0) {
    errno = err;
    goto fail;
  }
  return fd;
fail:
  rc = -errno;
  close(fd);
  return rc;
}

/* A UDP socket bound to ip:port with deep buffers and UDP GRO; -errno on failure. */
static int udp_bind(uint32_t ip, uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  /* Bursts from a fast sender outrun one thread briefly; deep buffers absorb them. */
  int size = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = ip};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  /* Trains of datagrams in one receive (kernel >= 5.0); without it, one at a time. */
  int on = 1;
  setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on);
  return fd;
}

int vx_open(struct vx_engine **out, uint32_t ip, uint16_t port, uint16_t esp_port, vx_ctl_fn ctl, void *ctx) {
  struct vx_engine *e = calloc(1, sizeof *e);
  if (!e) return -ENOMEM;
  e->ctl = ctl;
  e->ctx = ctx;
  e->port = port;
  e->esp_port = esp_port;
  e->udp = e->esp = e->ep = e->stop_fd = -1;
  int rc = 0;
  /* Writers first: the data threads hold the lock for reading batch after batch, and a
   * control call (an SA or FDB change) must not wait behind them indefinitely. */
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&e->lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  e->ep = epoll_create1(EPOLL_CLOEXEC);
  e->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (e->ep < 0 || e->stop_fd < 0) goto fail;
  if ((e->udp = udp_bind(ip, port)) < 0) {
    rc = -e->udp;
    goto fail_rc;
  }
  if (esp_port && (e->esp = udp_bind(ip, esp_port)) < 0) {
    rc = -e->esp;
    goto fail_rc;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  if (epoll_ctl(e->ep, EPOLL_CTL_ADD, e->stop_fd, &ev) < 0) goto fail;
  if ((rc = pthread_create(&e->rx, NULL, vx_rx_main, e)) != 0) goto fail_rc;
  if ((rc = pthread_create(&e->tx, NULL, vx_tx_main, e)) != 0) {
    e->stopping = 1;
    uint64_t one = 1;
    if (write(e->stop_fd, &one, sizeof one) < 0) { /* cannot fail on a fresh eventfd */ }
    pthread_join(e->rx, NULL);
    goto fail_rc;
  }
  *out = e;
  return 0;
fail:
  rc = errno;
fail_rc:
  if (e->udp >= 0) close(e->udp);
  if (e->esp >= 0) close(e->esp);
  if (e->ep >= 0) close(e->ep);
  if (e->stop_fd >= 0) close(e->stop_fd);
  pthread_rwlock_destroy(&e->lock);
  free(e);
  return -rc;
}

void vx_close(struct vx_engine *e) {
  e->stopping = 1;
  uint64_t one = 1;
  if (write(e->stop_fd, &one, sizeof one) < 0) { /* eventfd counter cannot overflow here */ }
  pthread_join(e->rx, NULL);
  pthread_join(e->tx, NULL);
  for (int i = 0; i < e->ntaps; i++) close(e->taps[i].fd);
  for (int i = 0; i < FDB_BUCKETS; i++) {
    struct fdb_entry *f = e->fdb[i];
    while (f) {
      struct fdb_entry *next = f->next;
      free(f);
      f = next;
    }
  }
  for (int i = 0; i < SA_BUCKETS; i++) {
    for (struct esp_sa *s = e->sa_in[i], *next; s; s = next) {
      next = s->next;
      esp_sa_free(s);
    }
    for (struct esp_sa *s = e->sa_out[i], *next; s; s = next) {
      next = s->next;
      esp_sa_free(s);
    }
  }
  close(e->udp);
  if (e->esp >= 0) close(e->esp);
  close(e->ep);
  close(e->stop_fd);
  pthread_rwlock_destroy(&e->lock);
  free(e->peers);
  free(e);
}

int vx_add_tap(struct vx_engine *e, uint32_t vni, int fd, int encrypted) {
  int rc = 0;
  pthread_rwlock_wrlock(&e->lock);
  if (tap_find(e, vni) >= 0) rc = -EEXIST;
  else if (e->ntaps == MAX_TAPS) rc = -ENOSPC;
  else {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = vni};
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev) < 0) rc = -errno;
    else e->taps[e->ntaps++] = (struct tap){.vni = vni, .fd = fd, .encrypted = encrypted};
  }
  pthread_rwlock_unlock(&e->lock);
  if (rc < 0) close(fd); /* owned from the call on, even when it fails */
  return rc;
}

int vx_del_tap(struct vx_engine *e, uint32_t vni) {
  int rc = -ENOENT;
  pthread_rwlock_wrlock(&e->lock);
  for (int i = 0; i < e->ntaps; i++) {
    if (e->taps[i].vni != vni) continue;
    epoll_ctl(e->ep, EPOLL_CTL_DEL, e->taps[i].fd, NULL);
    close(e->taps[i].fd);
    e->taps[i] = e->taps[--e->ntaps];
    rc = 0;
    break;
  }
  pthread_rwlock_unlock(&e->lock);
  return rc;
}

int vx_fdb_set(struct vx_engine *e, uint32_t vni, const uint8_t mac[6], uint32_t ip) {
  int rc = 0;
  pthread_rwlock_wrlock(&e->lock);
  struct fdb_entry *f = fdb_find(e, vni, mac);
  if (f) f->ip = ip;
  else if (!(f = malloc(sizeof *f))) rc = -ENOMEM;
  else {
    unsigned h = fdb_hash(vni, mac);
    f->vni = vni;
    memcpy(f->mac, mac, 6);
    f->ip = ip;
    f->next = e->fdb[h];
    e->fdb[h] = f;
  }
  pthread_rwlock_unlock(&e->lock);
  return rc;
}

int vx_fdb_del(struct vx_engine *e, uint32_t vni, const uint8_t mac[6]) {
  int rc = -ENOENT;
  pthread_rwlock_wrlock(&e->lock);
  for (struct fdb_entry **p = &e->fdb[fdb_hash(vni, mac)]; *p; p = &(*p)->next) {
    struct fdb_entry *f = *p;
    if (f->vni != vni || memcmp(f->mac, mac, 6) != 0) continue;
    *p = f->next;
    free(f);
    rc = 0;
    break;
  }
  pthread_rwlock_unlock(&e->lock);
  return rc;
}

int vx_peers_set(struct vx_engine *e, const uint32_t *ips, size_t n) {
  uint32_t *copy = n ? malloc(n * sizeof *copy) : NULL;
  if (n && !copy) return -ENOMEM;
  if (n) memcpy(copy, ips, n * sizeof *copy);
  qsort(copy, n, sizeof *copy, cmp_u32);
  pthread_rwlock_wrlock(&e->lock);
  uint32_t *old = e->peers;
  e->peers = copy;
  e->npeers = n;
  pthread_rwlock_unlock(&e->lock);
  free(old);
  return 0;
}

int vx_tap_write(struct vx_engine *e, uint32_t vni, const uint8_t *frame, size_t len) {
  struct iovec iov[2] = {{.iov_base = (void *)vx_zero_vnet, .iov_len = VNET_HDR}, {.iov_base = (void *)frame, .iov_len = len}};
  pthread_rwlock_rdlock(&e->lock);
  int fd = tap_find(e, vni);
  int rc = fd < 0 ? -ENOENT : (writev(fd, iov, 2) < 0 ? -errno : 0);
  pthread_rwlock_unlock(&e->lock);
  return rc;
}

void vx_stats(struct vx_engine *e, uint64_t out[VX_STAT_COUNT]) {
  for (int i = 0; i < VX_STAT_COUNT; i++) out[i] = __atomic_load_n(&e->stats[i], __ATOMIC_RELAXED);
}

/* Unlinks the first SA of chain `head` that `match` accepts; returns it. */
static struct esp_sa *sa_unlink(struct esp_sa **head, int (*match)(const struct esp_sa *, const struct esp_sa *), const struct esp_sa *like) {
  for (struct esp_sa **p = head; *p; p = &(*p)->next) {
    if (!match(*p, like)) continue;
    struct esp_sa *s = *p;
    *p = s->next;
    return s;
  }
  return NULL;
}

/* Inbound SAs are named by SPI and sender; outbound ones are deleted by SPI and receiver. */
static int same_in(const struct esp_sa *a, const struct esp_sa *b) {
  return a->spi == b->spi && a->peer == b->peer;
}

static int same_out(const struct esp_sa *a, const struct esp_sa *b) {
  return a->vni == b->vni && a->peer == b->peer;
}

int vx_sa_set(struct vx_engine *e, struct esp_sa *sa) {
  struct esp_sa **head = sa->dir == ESP_IN ? &e->sa_in[sa_in_hash(sa->spi)] : &e->sa_out[sa_out_hash(sa->vni, sa->peer)];
  pthread_rwlock_wrlock(&e->lock);
  struct esp_sa *old = sa_unlink(head, sa->dir == ESP_IN ? same_in : same_out, sa);
  sa->next = *head;
  *head = sa;
  pthread_rwlock_unlock(&e->lock);
  esp_sa_free(old); /* no data thread holds it: they hold the read lock per batch */
  return 0;
}

int vx_sa_del(struct vx_engine *e, int dir, uint32_t spi, uint32_t peer) {
  struct esp_sa like = {.spi = spi, .peer = peer}, *old = NULL;
  pthread_rwlock_wrlock(&e->lock);
  if (dir == ESP_IN) {
    old = sa_unlink(&e->sa_in[sa_in_hash(spi)], same_in, &like);
  } else {
    for (int i = 0; i < SA_BUCKETS && !old; i++) old = sa_unlink(&e->sa_out[i], same_in, &like);
  }
  pthread_rwlock_unlock(&e->lock);
  esp_sa_free(old);
  return old ? 0 : -ENOENT;
}

size_t vx_sa_list(struct vx_engine *e, struct vx_sa_info *out, size_t max) {
  size_t n = 0;
  pthread_rwlock_rdlock(&e->lock);
  for (int t = 0; t < 2; t++) {
    for (int i = 0; i < SA_BUCKETS; i++) {
      for (struct esp_sa *s = (t ? e->sa_out : e->sa_in)[i]; s; s = s->next, n++) {
        if (n < max) out[n] = (struct vx_sa_info){.dir = s->dir, .spi = s->spi, .vni = s->vni, .peer = s->peer, .seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED)};
      }
    }
  }
  pthread_rwlock_unlock(&e->lock);
  return n;
}
