/*
 * VXLAN engine, RX thread: UDP -> TAP.
 *
 *   poll(UDP) -> recvmmsg (UDP_GRO: a train of datagrams per message) -> per datagram:
 *   a known node, length, I flag, VNI -> consecutive segments of one TCP flow verified
 *   and merged (GRO, offload.c) -> written into the VNI's TAP
 *
 *   poll(ESP socket) -> recvmmsg (UDP_GRO) -> per datagram: SPI -> inbound SA of that
 *   sender -> sequence number (ESN) and replay window -> ICV and decryption in place
 *   (esp.c) -> the VXLAN datagram inside goes the same way as above, into the SA's VNI
 */
#include "vxlan_engine.h"

const uint8_t vx_zero_vnet[sizeof(struct virtio_net_hdr)];

/* A frame on its own, behind an empty vnet header (the kernel checks its checksums);
 * a `trusted` TCP frame (from ESP, whose sender may have left the checksum to us)
 * gets its checksum completed by the kernel instead. */
static void rx_write_one(struct vx_engine *e, int fd, uint8_t *frame, size_t len, int trusted) {
  struct virtio_net_hdr vh;
  int partial = trusted && vnet_partial_tcp4(frame, len, &vh) == 0;
  struct iovec iov[2] = {{.iov_base = partial ? (void *)&vh : (void *)vx_zero_vnet, .iov_len = VNET_HDR}, {.iov_base = frame, .iov_len = len}};
  if (writev(fd, iov, 2) < 0) stat_add(e, VX_RX_TAP_ERRORS, 1);
}

static void rx_flush(struct vx_engine *e, struct gro *g, int fd) {
  if (!g->len) return;
  if (g->count > 1) stat_add(e, VX_RX_GRO_FRAMES, 1);
  int n = gro_finish(g);
  if (writev(fd, g->iov, n) < 0) stat_add(e, VX_RX_TAP_ERRORS, 1);
}

static int peer_known(struct vx_engine *e, uint32_t ip) {
  return bsearch(&ip, e->peers, e->npeers, sizeof ip, cmp_u32) != NULL;
}

/* Validates one VXLAN packet, clear (sa NULL) or opened from ESP under `sa`; returns
 * its TAP fd (inner frame at p + VXLAN_HDR) or -1. */
static int rx_check(struct vx_engine *e, uint32_t from, const uint8_t *p, size_t len, int truncated, const struct esp_sa *sa) {
  if (!sa && !peer_known(e, from)) {
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
  if (sa && vni != sa->vni) {
    /* An SA speaks for one network only: a member cannot move frames into another. */
    stat_add(e, VX_ESP_RX_WRONG_VNI, 1);
    return -1;
  }
  struct tap *t = tap_get(e, vni);
  if (!t) {
    stat_add(e, VX_RX_UNKNOWN_VNI, 1);
    return -1;
  }
  if (t->encrypted && !sa) {
    stat_add(e, VX_RX_CLEAR_ON_ENCRYPTED, 1);
    return -1;
  }
  if (!t->encrypted && sa) {
    stat_add(e, VX_ESP_RX_WRONG_VNI, 1);
    return -1;
  }
  return t->fd;
}

/* One VXLAN packet: validated, then merged into `g` or written alone. */
static void rx_packet(struct vx_engine *e, struct gro *g, int *gfd, uint32_t from, uint8_t *p, size_t len, int truncated, const struct esp_sa *sa) {
  int fd = rx_check(e, from, p, len, truncated, sa);
  if (fd < 0) return;
  stat_add(e, VX_RX_PACKETS, 1);
  stat_add(e, VX_RX_BYTES, len - VXLAN_HDR);
  uint8_t *frame = p + VXLAN_HDR;
  size_t flen = len - VXLAN_HDR;
  int trusted = sa != NULL;
  if (fd != *gfd) rx_flush(e, g, *gfd);
  *gfd = fd;
  int r = gro_add(g, frame, flen, trusted);
  if (r == 0) {
    rx_flush(e, g, fd);
    r = gro_add(g, frame, flen, trusted);
  }
  if (r < 0) {
    rx_flush(e, g, fd);
    rx_write_one(e, fd, frame, flen, trusted);
  }
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The counter of each way esp_open refuses a packet. */
static const enum vx_stat esp_drop_stat[] = {
    [ESP_SHORT] = VX_ESP_RX_SHORT,
    [ESP_BAD_ICV] = VX_ESP_RX_BAD_ICV,
    [ESP_REPLAY] = VX_ESP_RX_REPLAY,
    [ESP_TOO_OLD] = VX_ESP_RX_TOO_OLD,
    [ESP_BAD_TRAILER] = VX_ESP_RX_BAD_TRAILER,
};

/* One ESP-in-UDP datagram (RFC 3948): opened in place, its VXLAN datagram delivered. */
static void rx_esp_packet(struct vx_engine *e, struct gro *g, int *gfd, uint32_t from, uint8_t *p, size_t len, int truncated) {
  if (len == 1 && p[0] == 0xff) {
    stat_add(e, VX_ESP_RX_KEEPALIVE, 1); /* RFC 3948 section 2.3 */
    return;
  }
  if (truncated) {
    stat_add(e, VX_RX_OVERSIZE, 1);
    return;
  }
  /* SPI 0 is RFC 3948's non-ESP marker (IKE shares the port); we speak no IKE. */
  if (len < ESP_HDR || get32(p) == 0) {
    stat_add(e, VX_ESP_RX_SHORT, 1);
    return;
  }
  if (!peer_known(e, from)) {
    stat_add(e, VX_RX_UNKNOWN_PEER, 1);
    return;
  }
  struct esp_sa *sa = sa_in_find(e, get32(p), from);
  if (!sa) {
    stat_add(e, VX_ESP_RX_UNKNOWN_SPI, 1);
    return;
  }
  size_t plen = 0;
  enum esp_open_result r = esp_open(sa, p, len, &plen);
  if (r != ESP_OK) {
    stat_add(e, esp_drop_stat[r], 1);
    return;
  }
  if (plen < ESP_INNER_UDP) {
    stat_add(e, VX_ESP_RX_BAD_TRAILER, 1);
    return;
  }
  stat_add(e, VX_ESP_RX_PACKETS, 1);
  /* The inner UDP header only says "VXLAN" (transport mode); the VNI is checked next. */
  uint8_t *inner = p + ESP_HDR + ESP_IV + ESP_INNER_UDP;
  rx_packet(e, g, gfd, from, inner, plen - ESP_INNER_UDP, 0, sa);
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
static void rx_one(struct vx_engine *e, struct gro *g, int *gfd, int esp, uint32_t from, uint8_t *p, size_t len, int truncated) {
  if (esp) rx_esp_packet(e, g, gfd, from, p, len, truncated);
  else rx_packet(e, g, gfd, from, p, len, truncated, NULL);
}

static void rx_batch(struct vx_engine *e, struct gro *g, struct mmsghdr *msg, struct iovec *iov, int n, int esp) {
  int gfd = -1;
  for (int i = 0; i < n; i++) {
    uint8_t *p = iov[i].iov_base;
    size_t len = msg[i].msg_len, seg = gro_size(&msg[i].msg_hdr);
    int truncated = (msg[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    uint32_t from = ((struct sockaddr_in *)msg[i].msg_hdr.msg_name)->sin_addr.s_addr;
    if (!seg || seg >= len) {
      rx_one(e, g, &gfd, esp, from, p, len, truncated);
      continue;
    }
    for (size_t off = 0; off < len; off += seg) rx_one(e, g, &gfd, esp, from, p + off, len - off < seg ? len - off : seg, truncated);
  }
  rx_flush(e, g, gfd);
}

typedef char rx_ctl[CMSG_SPACE(sizeof(int))];

/* Receives what socket `fd` has ready, in batches, until it is drained. */
static void rx_drain(struct vx_engine *e, struct gro *g, int fd, int esp, struct mmsghdr *msg, struct iovec *iov, rx_ctl *ctl, struct sockaddr_in *from) {
  for (;;) {
    for (int i = 0; i < RX_BATCH; i++) {
      msg[i].msg_hdr.msg_flags = 0;
      msg[i].msg_hdr.msg_control = ctl[i];
      msg[i].msg_hdr.msg_controllen = sizeof ctl[i];
      msg[i].msg_hdr.msg_name = &from[i];
      msg[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = recvmmsg(fd, msg, RX_BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    pthread_rwlock_rdlock(&e->lock);
    rx_batch(e, g, msg, iov, n, esp);
    pthread_rwlock_unlock(&e->lock);
    if (n < RX_BATCH) return;
  }
}

void *vx_rx_main(void *arg) {
  struct vx_engine *e = arg;
  pthread_setname_np(pthread_self(), "swarmnet-vx-rx"); /* named for top/perf */
  struct mmsghdr *msg = calloc(RX_BATCH, sizeof *msg);
  struct iovec *iov = calloc(RX_BATCH, sizeof *iov);
  uint8_t *bufs = malloc((size_t)RX_BATCH * RX_BUF);
  rx_ctl *ctl = calloc(RX_BATCH, sizeof *ctl);
  struct sockaddr_in *from = calloc(RX_BATCH, sizeof *from);
  struct gro *g = calloc(1, sizeof *g);
  if (!msg || !iov || !bufs || !ctl || !from || !g) {
    free(from);
    free(msg);
    free(iov);
    free(bufs);
    free(ctl);
    free(g);
    return NULL;
  }
  for (int i = 0; i < RX_BATCH; i++) {
    iov[i].iov_base = bufs + (size_t)i * RX_BUF;
    iov[i].iov_len = RX_BUF;
    msg[i].msg_hdr.msg_iov = &iov[i];
    msg[i].msg_hdr.msg_iovlen = 1;
  }
  /* A negative fd (no ESP socket) is ignored by poll. */
  struct pollfd pfd[3] = {{.fd = e->stop_fd, .events = POLLIN}, {.fd = e->udp, .events = POLLIN}, {.fd = e->esp, .events = POLLIN}};
  while (!e->stopping) {
    if (poll(pfd, 3, -1) < 0 && errno != EINTR) break;
    if (pfd[0].revents) break;
    for (int s = 1; s < 3; s++) {
      if (pfd[s].revents) rx_drain(e, g, pfd[s].fd, s == 2, msg, iov, ctl, from);
    }
  }
  free(g);
  free(from);
  free(ctl);
  free(bufs);
  free(iov);
  free(msg);
  return NULL;
}
