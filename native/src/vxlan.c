/*
 * Userspace VXLAN engine (see vxlan.h). Two pipelines, one thread each:
 *
 *   TX: epoll(TAPs) -> read frames into buffers with header room -> classify
 *       (FDB hit: encapsulate in place | ARP or unknown unicast: control callback |
 *       other multicast: drop) -> sendmmsg
 *   RX: poll(UDP) -> recvmmsg -> validate header (length, I flag, VNI) -> write
 *       the inner frame into the VNI's TAP
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
#define _GNU_SOURCE
#include "vxlan.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define VXLAN_HDR 8
#define VXLAN_FLAG_I 0x08
#define ETH_HDR 14
#define ETHERTYPE_ARP 0x0806
#define BATCH 64
/* Room for a 9000-byte jumbo frame; larger datagrams are counted as oversize. */
#define BUF_SIZE (VXLAN_HDR + 9216)
#define FDB_BUCKETS 4096
#define MAX_TAPS 4096

struct fdb_entry {
  struct fdb_entry *next;
  uint32_t vni;
  uint8_t mac[6];
  uint32_t ip;
};

struct tap {
  uint32_t vni;
  int fd;
};

struct vx_engine {
  int udp;
  int ep;      /* epoll over TAP fds, for the TX thread */
  int stop_fd; /* eventfd: written once to stop both threads */
  uint16_t port;
  volatile int stopping;
  pthread_t rx, tx;
  pthread_rwlock_t lock;
  struct tap taps[MAX_TAPS];
  int ntaps;
  struct fdb_entry *fdb[FDB_BUCKETS];
  vx_ctl_fn ctl;
  void *ctx;
  uint64_t stats[VX_STAT_COUNT];
};

static inline void stat_add(struct vx_engine *e, enum vx_stat s, uint64_t n) {
  /* One writer per counter (its thread), so a relaxed load/store pair suffices. */
  __atomic_store_n(&e->stats[s], __atomic_load_n(&e->stats[s], __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static unsigned fdb_hash(uint32_t vni, const uint8_t mac[6]) {
  uint32_t h = 2166136261u ^ vni;
  for (int i = 0; i < 6; i++) h = (h ^ mac[i]) * 16777619u;
  return h & (FDB_BUCKETS - 1);
}

static struct fdb_entry *fdb_find(struct vx_engine *e, uint32_t vni, const uint8_t mac[6]) {
  for (struct fdb_entry *f = e->fdb[fdb_hash(vni, mac)]; f; f = f->next)
    if (f->vni == vni && memcmp(f->mac, mac, 6) == 0) return f;
  return NULL;
}

static int tap_find(struct vx_engine *e, uint32_t vni) {
  for (int i = 0; i < e->ntaps; i++)
    if (e->taps[i].vni == vni) return e->taps[i].fd;
  return -1;
}

/* ---- TX: TAP -> UDP ---- */

struct tx_batch {
  uint8_t *buf[BATCH];
  struct mmsghdr msg[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_in to[BATCH];
};

static void tx_flush(struct vx_engine *e, struct tx_batch *b, int n) {
  int sent = 0;
  while (sent < n) {
    int rc = sendmmsg(e->udp, b->msg + sent, n - sent, 0);
    if (rc < 0) {
      if (errno == EINTR) continue;
      /* A frame the kernel refuses (no route, say) must not stall the rest. */
      stat_add(e, VX_TX_ERRORS, 1);
      sent++;
      continue;
    }
    for (int i = sent; i < sent + rc; i++) {
      stat_add(e, VX_TX_PACKETS, 1);
      stat_add(e, VX_TX_BYTES, b->msg[i].msg_len - VXLAN_HDR);
    }
    sent += rc;
  }
}

/* Reads what one TAP has ready, in batches. Returns when the TAP is drained. */
static void tx_drain(struct vx_engine *e, struct tx_batch *b, uint32_t vni) {
  for (;;) {
    int n = 0, more = 1;
    pthread_rwlock_rdlock(&e->lock);
    int fd = tap_find(e, vni);
    while (fd >= 0 && n < BATCH) {
      uint8_t *frame = b->buf[n] + VXLAN_HDR; /* header room: encapsulate in place */
      ssize_t len = read(fd, frame, BUF_SIZE - VXLAN_HDR);
      if (len < 0) {
        if (errno == EINTR) continue;
        more = 0;
        break;
      }
      if (len < ETH_HDR) continue;
      const uint8_t *dst = frame;
      struct fdb_entry *f = (dst[0] & 1) ? NULL : fdb_find(e, vni, dst);
      if (!f) {
        uint16_t type = (uint16_t)(frame[12] << 8 | frame[13]);
        if (!(dst[0] & 1) || type == ETHERTYPE_ARP) {
          stat_add(e, VX_TX_CONTROL, 1);
          e->ctl(e->ctx, vni, frame, (size_t)len);
        } else {
          stat_add(e, VX_TX_DROPPED, 1);
        }
        continue;
      }
      uint8_t *h = b->buf[n];
      h[0] = VXLAN_FLAG_I;
      h[1] = h[2] = h[3] = 0;
      h[4] = (uint8_t)(vni >> 16);
      h[5] = (uint8_t)(vni >> 8);
      h[6] = (uint8_t)vni;
      h[7] = 0;
      b->to[n].sin_addr.s_addr = f->ip;
      b->iov[n].iov_len = (size_t)len + VXLAN_HDR;
      n++;
    }
    pthread_rwlock_unlock(&e->lock);
    if (fd < 0) return;
    if (n) tx_flush(e, b, n);
    if (!more) return;
  }
}

static void *tx_main(void *arg) {
  struct vx_engine *e = arg;
  struct tx_batch *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  for (int i = 0; i < BATCH; i++) {
    b->buf[i] = malloc(BUF_SIZE);
    b->iov[i].iov_base = b->buf[i];
    b->to[i].sin_family = AF_INET;
    b->to[i].sin_port = htons(e->port);
    b->msg[i].msg_hdr.msg_iov = &b->iov[i];
    b->msg[i].msg_hdr.msg_iovlen = 1;
    b->msg[i].msg_hdr.msg_name = &b->to[i];
    b->msg[i].msg_hdr.msg_namelen = sizeof b->to[i];
  }
  struct epoll_event evs[64];
  while (!e->stopping) {
    int n = epoll_wait(e->ep, evs, 64, -1);
    for (int i = 0; i < n && !e->stopping; i++) {
      if (evs[i].data.u64 == UINT64_MAX) continue; /* stop_fd */
      tx_drain(e, b, (uint32_t)evs[i].data.u64);
    }
  }
  for (int i = 0; i < BATCH; i++) free(b->buf[i]);
  free(b);
  return NULL;
}

/* ---- RX: UDP -> TAP ---- */

static void rx_one(struct vx_engine *e, const uint8_t *p, size_t len, int truncated) {
  if (truncated) {
    stat_add(e, VX_RX_OVERSIZE, 1);
    return;
  }
  if (len < VXLAN_HDR + ETH_HDR) {
    stat_add(e, VX_RX_SHORT, 1);
    return;
  }
  /* RFC 7348: the I flag MUST be set for a valid VNI; the R bits are ignored on receipt. */
  if (!(p[0] & VXLAN_FLAG_I)) {
    stat_add(e, VX_RX_BAD_FLAGS, 1);
    return;
  }
  uint32_t vni = (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8 | p[6];
  int fd = tap_find(e, vni);
  if (fd < 0) {
    stat_add(e, VX_RX_UNKNOWN_VNI, 1);
    return;
  }
  if (write(fd, p + VXLAN_HDR, len - VXLAN_HDR) < 0) {
    stat_add(e, VX_RX_TAP_ERRORS, 1);
    return;
  }
  stat_add(e, VX_RX_PACKETS, 1);
  stat_add(e, VX_RX_BYTES, len - VXLAN_HDR);
}

static void *rx_main(void *arg) {
  struct vx_engine *e = arg;
  struct mmsghdr *msg = calloc(BATCH, sizeof *msg);
  struct iovec *iov = calloc(BATCH, sizeof *iov);
  uint8_t *bufs = malloc((size_t)BATCH * BUF_SIZE);
  if (!msg || !iov || !bufs) {
    free(msg);
    free(iov);
    free(bufs);
    return NULL;
  }
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = bufs + (size_t)i * BUF_SIZE;
    iov[i].iov_len = BUF_SIZE;
    msg[i].msg_hdr.msg_iov = &iov[i];
    msg[i].msg_hdr.msg_iovlen = 1;
  }
  struct pollfd pfd[2] = {{.fd = e->udp, .events = POLLIN}, {.fd = e->stop_fd, .events = POLLIN}};
  while (!e->stopping) {
    if (poll(pfd, 2, -1) < 0 && errno != EINTR) break;
    if (pfd[1].revents) break;
    for (;;) {
      for (int i = 0; i < BATCH; i++) msg[i].msg_hdr.msg_flags = 0;
      int n = recvmmsg(e->udp, msg, BATCH, MSG_DONTWAIT, NULL);
      if (n <= 0) break;
      pthread_rwlock_rdlock(&e->lock);
      for (int i = 0; i < n; i++) rx_one(e, iov[i].iov_base, msg[i].msg_len, msg[i].msg_hdr.msg_flags & MSG_TRUNC);
      pthread_rwlock_unlock(&e->lock);
      if (n < BATCH) break;
    }
  }
  free(bufs);
  free(iov);
  free(msg);
  return NULL;
}

/* ---- control calls (JS thread) ---- */

int vx_tap_open(const char *name, int mtu) {
  if (strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) goto fail;
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

int vx_open(struct vx_engine **out, uint32_t ip, uint16_t port, vx_ctl_fn ctl, void *ctx) {
  struct vx_engine *e = calloc(1, sizeof *e);
  if (!e) return -ENOMEM;
  e->ctl = ctl;
  e->ctx = ctx;
  e->port = port;
  e->udp = e->ep = e->stop_fd = -1;
  int rc = 0;
  pthread_rwlock_init(&e->lock, NULL);
  e->udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  e->ep = epoll_create1(EPOLL_CLOEXEC);
  e->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (e->udp < 0 || e->ep < 0 || e->stop_fd < 0) goto fail;
  /* Bursts from a fast sender outrun one thread briefly; deep buffers absorb them. */
  int size = 4 << 20;
  setsockopt(e->udp, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(e->udp, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = ip};
  if (bind(e->udp, (struct sockaddr *)&sa, sizeof sa) < 0) goto fail;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  if (epoll_ctl(e->ep, EPOLL_CTL_ADD, e->stop_fd, &ev) < 0) goto fail;
  if ((rc = pthread_create(&e->rx, NULL, rx_main, e)) != 0) goto fail_rc;
  if ((rc = pthread_create(&e->tx, NULL, tx_main, e)) != 0) {
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
  close(e->udp);
  close(e->ep);
  close(e->stop_fd);
  pthread_rwlock_destroy(&e->lock);
  free(e);
}

int vx_add_tap(struct vx_engine *e, uint32_t vni, int fd) {
  int rc = 0;
  pthread_rwlock_wrlock(&e->lock);
  if (tap_find(e, vni) >= 0) rc = -EEXIST;
  else if (e->ntaps == MAX_TAPS) rc = -ENOSPC;
  else {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = vni};
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev) < 0) rc = -errno;
    else e->taps[e->ntaps++] = (struct tap){.vni = vni, .fd = fd};
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

int vx_tap_write(struct vx_engine *e, uint32_t vni, const uint8_t *frame, size_t len) {
  pthread_rwlock_rdlock(&e->lock);
  int fd = tap_find(e, vni);
  int rc = fd < 0 ? -ENOENT : (write(fd, frame, len) < 0 ? -errno : 0);
  pthread_rwlock_unlock(&e->lock);
  return rc;
}

void vx_stats(struct vx_engine *e, uint64_t out[VX_STAT_COUNT]) {
  for (int i = 0; i < VX_STAT_COUNT; i++) out[i] = __atomic_load_n(&e->stats[i], __ATOMIC_RELAXED);
}
