/*
 * Userspace VXLAN engine (see vxlan.h). Two pipelines, one thread each:
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
#define _GNU_SOURCE
#include "vxlan.h"
#include "offload.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define VXLAN_HDR 8
#define VXLAN_FLAG_I 0x08
#define ETHERTYPE_ARP 0x0806
/* Receive buffers hold a whole UDP GRO train (up to 64 KiB); larger ones are oversize. */
#define RX_BATCH 32
#define RX_BUF 65536
/* A 64 KiB super-frame cut at the smallest MSS we accept (536, RFC 9293 section 3.7.1). */
#define MAX_SEGS_PER_FRAME 123
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
  uint32_t *peers; /* sorted */
  size_t npeers;
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

/* Super-frames read per batch; their segments go out as UDP GSO sends (UDP_SEGMENT):
 * one datagram train per send that the kernel cuts as late as possible, and that a
 * receiver with UDP_GRO takes in one piece. */
#define RBUFS 16
#define RBUF_SIZE (VNET_HDR + 65536 + MAX_HDRS)
#define MAX_SEGS 1024
#define MAX_MSGS 256
/* Per send: the kernel's UDP_MAX_SEGMENTS (64 on older kernels), and an IPv4 datagram. */
#define GSO_MAX_SEGS 64
#define UDP_MAX_PAYLOAD (65535 - 20 - 8)

struct tx_batch {
  uint8_t *rbuf[RBUFS];
  struct tso_seg seg[MAX_SEGS];
  struct iovec iov[MAX_SEGS * 2];
  struct mmsghdr msg[MAX_MSGS];
  struct sockaddr_in to[MAX_MSGS];
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctl[MAX_MSGS];
  int n, r, nseg, niov; /* messages, read buffers, segments, iovecs in use */
};

static void tx_flush(struct vx_engine *e, struct tx_batch *b) {
  int sent = 0;
  while (sent < b->n) {
    int rc = sendmmsg(e->udp, b->msg + sent, (unsigned)(b->n - sent), 0);
    if (rc < 0) {
      if (errno == EINTR) continue;
      /* A datagram the kernel refuses (no route, say) must not stall the rest. */
      stat_add(e, VX_TX_ERRORS, 1);
      sent++;
      continue;
    }
    sent += rc;
  }
  b->n = b->r = b->nseg = b->niov = 0;
}

/* Starts a message to `ip`; segments of `seg_size` bytes each (0: one datagram). */
static struct msghdr *tx_msg(struct tx_batch *b, uint32_t ip, uint16_t seg_size) {
  int i = b->n++;
  struct msghdr *m = &b->msg[i].msg_hdr;
  b->to[i].sin_addr.s_addr = ip;
  m->msg_iov = &b->iov[b->niov];
  m->msg_iovlen = 0;
  if (seg_size) {
    m->msg_control = b->ctl[i].buf;
    m->msg_controllen = sizeof b->ctl[i].buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(m);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &seg_size, sizeof seg_size);
  } else {
    m->msg_control = NULL;
    m->msg_controllen = 0;
  }
  return m;
}

static void tx_iov(struct tx_batch *b, struct msghdr *m, void *p, size_t len) {
  b->iov[b->niov++] = (struct iovec){.iov_base = p, .iov_len = len};
  m->msg_iovlen++;
}

static void vxlan_header(uint8_t *h, uint32_t vni) {
  h[0] = VXLAN_FLAG_I;
  h[1] = h[2] = h[3] = 0;
  h[4] = (uint8_t)(vni >> 16);
  h[5] = (uint8_t)(vni >> 8);
  h[6] = (uint8_t)vni;
  h[7] = 0;
}

/* One frame read from the TAP of `vni` (vnet header first): control, drop, or queue. */
static void tx_frame(struct vx_engine *e, struct tx_batch *b, uint32_t vni, uint8_t *buf, size_t len) {
  struct virtio_net_hdr vh;
  memcpy(&vh, buf, VNET_HDR);
  uint8_t *frame = buf + VNET_HDR;
  size_t flen = len - VNET_HDR;
  const uint8_t *dst = frame;
  struct fdb_entry *f = (dst[0] & 1) ? NULL : fdb_find(e, vni, dst);
  if (!f) {
    uint16_t type = (uint16_t)(frame[12] << 8 | frame[13]);
    if (!(dst[0] & 1) || type == ETHERTYPE_ARP) {
      stat_add(e, VX_TX_CONTROL, 1);
      e->ctl(e->ctx, vni, frame, flen);
    } else {
      stat_add(e, VX_TX_DROPPED, 1);
    }
    return;
  }
  if (vh.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
    struct tso_seg *segs = &b->seg[b->nseg];
    int k = tso_split(frame, flen, &vh, VXLAN_HDR, segs, MAX_SEGS - b->nseg);
    if (k < 0) {
      stat_add(e, VX_TX_BAD_GSO, 1);
      return;
    }
    b->nseg += k;
    stat_add(e, VX_TX_TSO_FRAMES, 1);
    size_t seg_size = segs[0].hdr_len + segs[0].payload_len;
    int per_send = (int)(UDP_MAX_PAYLOAD / seg_size);
    if (per_send > GSO_MAX_SEGS) per_send = GSO_MAX_SEGS;
    for (int i = 0; i < k; i += per_send) {
      int m_segs = k - i < per_send ? k - i : per_send;
      struct msghdr *m = tx_msg(b, f->ip, m_segs > 1 ? (uint16_t)seg_size : 0);
      for (int j = i; j < i + m_segs; j++) {
        vxlan_header(segs[j].hdr, vni);
        tx_iov(b, m, segs[j].hdr, segs[j].hdr_len);
        tx_iov(b, m, (void *)segs[j].payload, segs[j].payload_len);
        stat_add(e, VX_TX_PACKETS, 1);
        stat_add(e, VX_TX_BYTES, segs[j].hdr_len - VXLAN_HDR + segs[j].payload_len);
      }
    }
    return;
  }
  if ((vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && vnet_finish_csum(frame, flen, &vh) < 0) {
    stat_add(e, VX_TX_BAD_GSO, 1);
    return;
  }
  /* The vnet header's room (10 bytes) takes the VXLAN header (8): encapsulate in place. */
  uint8_t *h = frame - VXLAN_HDR;
  vxlan_header(h, vni);
  tx_iov(b, tx_msg(b, f->ip, 0), h, flen + VXLAN_HDR);
  stat_add(e, VX_TX_PACKETS, 1);
  stat_add(e, VX_TX_BYTES, flen);
}

/* Reads what one TAP has ready, in batches. Returns when the TAP is drained. */
static void tx_drain(struct vx_engine *e, struct tx_batch *b, uint32_t vni) {
  for (;;) {
    int more = 1;
    pthread_rwlock_rdlock(&e->lock);
    int fd = tap_find(e, vni);
    while (fd >= 0 && b->r < RBUFS && b->nseg <= MAX_SEGS - MAX_SEGS_PER_FRAME && b->n <= MAX_MSGS - MAX_SEGS_PER_FRAME) {
      uint8_t *buf = b->rbuf[b->r];
      ssize_t len = read(fd, buf, RBUF_SIZE);
      if (len < 0) {
        if (errno == EINTR) continue;
        more = 0;
        break;
      }
      if ((size_t)len < VNET_HDR + ETH_HDR) continue;
      b->r++; /* queued messages may point into this buffer until the flush */
      tx_frame(e, b, vni, buf, (size_t)len);
    }
    pthread_rwlock_unlock(&e->lock);
    if (b->n) tx_flush(e, b);
    b->r = 0;
    if (fd < 0 || !more) return;
  }
}

static void *tx_main(void *arg) {
  struct vx_engine *e = arg;
  struct tx_batch *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  for (int i = 0; i < RBUFS; i++) b->rbuf[i] = malloc(RBUF_SIZE);
  for (int i = 0; i < MAX_MSGS; i++) {
    b->to[i].sin_family = AF_INET;
    b->to[i].sin_port = htons(e->port);
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
  for (int i = 0; i < RBUFS; i++) free(b->rbuf[i]);
  free(b);
  return NULL;
}

/* ---- RX: UDP -> TAP ---- */

static const uint8_t zero_vnet[sizeof(struct virtio_net_hdr)];

/* A frame on its own, behind an empty vnet header (the kernel checks its checksums). */
static void rx_write_one(struct vx_engine *e, int fd, const uint8_t *frame, size_t len) {
  struct iovec iov[2] = {{.iov_base = (void *)zero_vnet, .iov_len = VNET_HDR}, {.iov_base = (void *)frame, .iov_len = len}};
  if (writev(fd, iov, 2) < 0) stat_add(e, VX_RX_TAP_ERRORS, 1);
}

static void rx_flush(struct vx_engine *e, struct gro *g, int fd) {
  if (!g->len) return;
  if (g->count > 1) stat_add(e, VX_RX_GRO_FRAMES, 1);
  size_t n = gro_finish(g);
  if (write(fd, g->buf, n) < 0) stat_add(e, VX_RX_TAP_ERRORS, 1);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int peer_known(struct vx_engine *e, uint32_t ip) {
  return bsearch(&ip, e->peers, e->npeers, sizeof ip, cmp_u32) != NULL;
}

/* Validates one VXLAN packet; returns its TAP fd (inner frame at p + VXLAN_HDR) or -1. */
static int rx_check(struct vx_engine *e, uint32_t from, const uint8_t *p, size_t len, int truncated) {
  if (!peer_known(e, from)) {
    stat_add(e, VX_RX_UNKNOWN_PEER, 1);
    return -1;
  }
  if (truncated) {
    stat_add(e, VX_RX_OVERSIZE, 1);
    return -1;
  }
  if (len < VXLAN_HDR + ETH_HDR) {
    stat_add(e, VX_RX_SHORT, 1);
    return -1;
  }
  /* RFC 7348: the I flag MUST be set for a valid VNI; the R bits are ignored on receipt. */
  if (!(p[0] & VXLAN_FLAG_I)) {
    stat_add(e, VX_RX_BAD_FLAGS, 1);
    return -1;
  }
  uint32_t vni = (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8 | p[6];
  int fd = tap_find(e, vni);
  if (fd < 0) stat_add(e, VX_RX_UNKNOWN_VNI, 1);
  return fd;
}

/* One VXLAN packet: validated, then merged into `g` or written alone. */
static void rx_packet(struct vx_engine *e, struct gro *g, int *gfd, uint32_t from, const uint8_t *p, size_t len, int truncated) {
  int fd = rx_check(e, from, p, len, truncated);
  if (fd < 0) return;
  stat_add(e, VX_RX_PACKETS, 1);
  stat_add(e, VX_RX_BYTES, len - VXLAN_HDR);
  const uint8_t *frame = p + VXLAN_HDR;
  size_t flen = len - VXLAN_HDR;
  if (fd != *gfd) rx_flush(e, g, *gfd);
  *gfd = fd;
  int r = gro_add(g, frame, flen);
  if (r == 0) {
    rx_flush(e, g, fd);
    r = gro_add(g, frame, flen);
  }
  if (r < 0) {
    rx_flush(e, g, fd);
    rx_write_one(e, fd, frame, flen);
  }
}

/* The datagram size of a UDP GRO train (cmsg UDP_GRO), or 0 for a single datagram. */
static size_t gro_size(struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      return v > 0 ? (size_t)v : 0;
    }
  }
  return 0;
}

/* One received batch. With UDP_GRO a message may be a train of datagrams of one size
 * (the last may be shorter); each is a VXLAN packet. Consecutive segments of a TCP flow
 * into one TAP are merged (GRO). */
static void rx_batch(struct vx_engine *e, struct gro *g, struct mmsghdr *msg, struct iovec *iov, int n) {
  int gfd = -1;
  for (int i = 0; i < n; i++) {
    const uint8_t *p = iov[i].iov_base;
    size_t len = msg[i].msg_len, seg = gro_size(&msg[i].msg_hdr);
    int truncated = (msg[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    uint32_t from = ((struct sockaddr_in *)msg[i].msg_hdr.msg_name)->sin_addr.s_addr;
    if (!seg || seg >= len) {
      rx_packet(e, g, &gfd, from, p, len, truncated);
      continue;
    }
    for (size_t off = 0; off < len; off += seg) rx_packet(e, g, &gfd, from, p + off, len - off < seg ? len - off : seg, truncated);
  }
  rx_flush(e, g, gfd);
}

static void *rx_main(void *arg) {
  struct vx_engine *e = arg;
  struct mmsghdr *msg = calloc(RX_BATCH, sizeof *msg);
  struct iovec *iov = calloc(RX_BATCH, sizeof *iov);
  uint8_t *bufs = malloc((size_t)RX_BATCH * RX_BUF);
  char (*ctl)[CMSG_SPACE(sizeof(int))] = calloc(RX_BATCH, sizeof *ctl);
  struct sockaddr_in *from = calloc(RX_BATCH, sizeof *from);
  struct gro g = {.cap = RBUF_SIZE, .buf = malloc(RBUF_SIZE)};
  if (!msg || !iov || !bufs || !ctl || !from || !g.buf) {
    free(from);
    free(msg);
    free(iov);
    free(bufs);
    free(ctl);
    free(g.buf);
    return NULL;
  }
  for (int i = 0; i < RX_BATCH; i++) {
    iov[i].iov_base = bufs + (size_t)i * RX_BUF;
    iov[i].iov_len = RX_BUF;
    msg[i].msg_hdr.msg_iov = &iov[i];
    msg[i].msg_hdr.msg_iovlen = 1;
  }
  struct pollfd pfd[2] = {{.fd = e->udp, .events = POLLIN}, {.fd = e->stop_fd, .events = POLLIN}};
  while (!e->stopping) {
    if (poll(pfd, 2, -1) < 0 && errno != EINTR) break;
    if (pfd[1].revents) break;
    for (;;) {
      for (int i = 0; i < RX_BATCH; i++) {
        msg[i].msg_hdr.msg_flags = 0;
        msg[i].msg_hdr.msg_control = ctl[i];
        msg[i].msg_hdr.msg_controllen = sizeof ctl[i];
        msg[i].msg_hdr.msg_name = &from[i];
        msg[i].msg_hdr.msg_namelen = sizeof from[i];
      }
      int n = recvmmsg(e->udp, msg, RX_BATCH, MSG_DONTWAIT, NULL);
      if (n <= 0) break;
      pthread_rwlock_rdlock(&e->lock);
      rx_batch(e, &g, msg, iov, n);
      pthread_rwlock_unlock(&e->lock);
      if (n < RX_BATCH) break;
    }
  }
  free(g.buf);
  free(from);
  free(ctl);
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
  /* Trains of datagrams in one receive (kernel >= 5.0); without it, one at a time. */
  int on = 1;
  setsockopt(e->udp, SOL_UDP, UDP_GRO, &on, sizeof on);
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
  free(e->peers);
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
  struct iovec iov[2] = {{.iov_base = (void *)zero_vnet, .iov_len = VNET_HDR}, {.iov_base = (void *)frame, .iov_len = len}};
  pthread_rwlock_rdlock(&e->lock);
  int fd = tap_find(e, vni);
  int rc = fd < 0 ? -ENOENT : (writev(fd, iov, 2) < 0 ? -errno : 0);
  pthread_rwlock_unlock(&e->lock);
  return rc;
}

void vx_stats(struct vx_engine *e, uint64_t out[VX_STAT_COUNT]) {
  for (int i = 0; i < VX_STAT_COUNT; i++) out[i] = __atomic_load_n(&e->stats[i], __ATOMIC_RELAXED);
}
