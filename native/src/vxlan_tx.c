/*
 * VXLAN engine, TX thread: TAP -> UDP.
 *
 *   epoll(TAPs) -> read (vnet header + frame, up to 64 KiB) -> classify: FDB hit |
 *   ARP or unknown unicast: control callback | other multicast: drop
 *   -> TCP super-frame: cut into segments (TSO, offload.c) | else: finish a deferred
 *   checksum and encapsulate in place -> datagrams queued as UDP GSO trains -> sendmmsg
 *
 * Encrypted VNIs: the same cut, then every VXLAN datagram is sealed into ESP (esp.c)
 * in an output buffer; a super-frame's ESP datagrams have one size (but the last),
 * so they still leave as UDP GSO trains, on the ESP socket.
 *
 * A train is one sendmmsg message with UDP_SEGMENT: datagrams to one node of one size,
 * but the last, which may be shorter; the kernel sends it as one 64 KiB skb and the
 * receiver's UDP GRO hands it over whole. Trains run on across super-frames (and small
 * frames, such as the ACKs of the other direction, of one size): a 64 KiB TCP
 * super-frame is 46-48 datagrams and a train holds 44, so cutting a train per frame
 * sent two skbs per frame through the stack, the second a short one.
 */
#include "vxlan_engine.h"

/* Inner UDP header + VXLAN header: the room left in front of an encrypted segment. */
#define ESP_ROOM (ESP_INNER_UDP + VXLAN_HDR)
/* Sealed datagrams of one batch: every read buffer's bytes, plus per segment its own
 * copy of the headers and ESP's overhead (header, IV, padding, trailer, ICV). */
#define OBUF_SIZE ((size_t)RBUFS * RBUF_SIZE + (size_t)MAX_SEGS * (MAX_HDRS + ESP_ROOM + ESP_HDR + ESP_IV + 3 + ESP_TRAILER + ESP_ICV))

struct tx_batch {
  uint8_t *rbuf[RBUFS];
  uint8_t *obuf;
  size_t olen;
  int fd[MAX_MSGS];
  struct tso_seg seg[MAX_SEGS];
  struct iovec iov[MAX_SEGS * 2];
  struct mmsghdr msg[MAX_MSGS];
  struct sockaddr_in to[MAX_MSGS];
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctl[MAX_MSGS];
  int n, r, nseg, niov; /* messages, read buffers, segments, iovecs in use */
  /* The last message, while more datagrams may join it: where to, its datagram size,
   * how many datagrams and bytes it holds. */
  struct {
    int open, fd, count;
    uint32_t ip;
    size_t size, bytes;
  } train;
};

static void tx_flush(struct vx_engine *e, struct tx_batch *b) {
  int sent = 0;
  while (sent < b->n) {
    /* Runs of messages for one socket (clear VXLAN, ESP) go in one sendmmsg. */
    int fd = b->fd[sent], run = 1;
    while (sent + run < b->n && b->fd[sent + run] == fd) run++;
    int rc = sendmmsg(fd, b->msg + sent, (unsigned)run, 0);
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
  b->olen = 0;
  b->train.open = 0;
}

/* Starts a message to `ip` on socket `fd` (port `port`) whose datagrams are `size`
 * bytes each but the last (UDP_SEGMENT; one datagram of that size goes out plainly). */
static struct msghdr *tx_msg_on(struct tx_batch *b, int fd, uint16_t port, uint32_t ip, uint16_t size) {
  int i = b->n++;
  struct msghdr *m = &b->msg[i].msg_hdr;
  b->fd[i] = fd;
  b->to[i].sin_port = htons(port);
  b->to[i].sin_addr.s_addr = ip;
  m->msg_iov = &b->iov[b->niov];
  m->msg_iovlen = 0;
  m->msg_control = b->ctl[i].buf;
  m->msg_controllen = sizeof b->ctl[i].buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(m);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  memcpy(CMSG_DATA(c), &size, sizeof size);
  return m;
}

/* The message one datagram of `len` bytes to `ip` on `fd` joins: the last one when its
 * train can take it (same socket and node, not longer than its datagrams, room left
 * under the kernel's segment and UDP length limits), else a new one. The caller adds
 * the datagram's iovecs next. */
static struct msghdr *tx_dgram(struct tx_batch *b, int fd, uint16_t port, uint32_t ip, size_t len) {
  struct msghdr *m;
  if (b->train.open && b->train.fd == fd && b->train.ip == ip && len <= b->train.size && b->train.count < GSO_MAX_SEGS && b->train.bytes + len <= UDP_MAX_PAYLOAD) {
    m = &b->msg[b->n - 1].msg_hdr;
  } else {
    m = tx_msg_on(b, fd, port, ip, (uint16_t)len);
    b->train.open = 1;
    b->train.fd = fd;
    b->train.ip = ip;
    b->train.size = len;
    b->train.count = 0;
    b->train.bytes = 0;
  }
  b->train.count++;
  b->train.bytes += len;
  if (len < b->train.size) b->train.open = 0; /* only the last datagram may be shorter */
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

/* Inner UDP (RFC 3948 transport mode carries the VXLAN datagram whole) and VXLAN headers. */
static void esp_inner_headers(struct vx_engine *e, uint8_t *h, uint32_t vni, size_t frame_len) {
  uint16_t port = htons(e->port), len = htons((uint16_t)(ESP_ROOM + frame_len));
  memcpy(h, &port, 2);
  memcpy(h + 2, &port, 2);
  memcpy(h + 4, &len, 2);
  h[6] = h[7] = 0; /* no checksum (RFC 768): ESP's ICV covers it */
  vxlan_header(h + ESP_INNER_UDP, vni);
}

/* Seals one datagram into the output buffer; returns its length (0: dropped). */
static size_t esp_one(struct vx_engine *e, struct tx_batch *b, struct esp_sa *sa, const struct iovec *pt, int n, size_t len) {
  if (b->olen + esp_sealed_len(len) > OBUF_SIZE) {
    stat_add(e, VX_ESP_TX_ERRORS, 1); /* cannot happen within the batch limits */
    return 0;
  }
  size_t out = esp_seal(sa, b->obuf + b->olen, pt, n, len);
  if (!out) {
    stat_add(e, VX_ESP_TX_ERRORS, 1);
    return 0;
  }
  b->olen += out;
  stat_add(e, VX_ESP_TX_PACKETS, 1);
  return out;
}

/* A frame of an encrypted VNI for the node at `ip`: cut (TSO) as the clear path does,
 * each datagram sealed into ESP and sent on the ESP socket. */
static void tx_frame_esp(struct vx_engine *e, struct tx_batch *b, struct esp_sa *sa, uint32_t vni, uint8_t *frame, size_t flen, const struct virtio_net_hdr *vh) {
  if (vh->gso_type != VIRTIO_NET_HDR_GSO_NONE) {
    struct tso_seg *segs = &b->seg[b->nseg];
    int k = tso_split(frame, flen, vh, ESP_ROOM, 0, segs, MAX_SEGS - b->nseg);
    if (k < 0) {
      stat_add(e, VX_TX_BAD_GSO, 1);
      return;
    }
    b->nseg += k;
    stat_add(e, VX_TX_TSO_FRAMES, 1);
    for (int j = 0; j < k; j++) {
      size_t inner = segs[j].hdr_len - ESP_ROOM + segs[j].payload_len;
      esp_inner_headers(e, segs[j].hdr, vni, inner);
      struct iovec pt[2] = {{.iov_base = segs[j].hdr, .iov_len = segs[j].hdr_len}, {.iov_base = (void *)segs[j].payload, .iov_len = segs[j].payload_len}};
      uint8_t *start = b->obuf + b->olen;
      size_t n = esp_one(e, b, sa, pt, 2, segs[j].hdr_len + segs[j].payload_len);
      if (!n) return;
      tx_iov(b, tx_dgram(b, e->esp, e->esp_port, sa->peer, n), start, n);
      stat_add(e, VX_TX_PACKETS, 1);
      stat_add(e, VX_TX_BYTES, inner);
    }
    return;
  }
  if ((vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && vnet_finish_csum(frame, flen, vh) < 0) {
    stat_add(e, VX_TX_BAD_GSO, 1);
    return;
  }
  uint8_t h[ESP_ROOM];
  esp_inner_headers(e, h, vni, flen);
  struct iovec pt[2] = {{.iov_base = h, .iov_len = sizeof h}, {.iov_base = frame, .iov_len = flen}};
  uint8_t *start = b->obuf + b->olen;
  size_t n = esp_one(e, b, sa, pt, 2, sizeof h + flen);
  if (!n) return;
  tx_iov(b, tx_dgram(b, e->esp, e->esp_port, sa->peer, n), start, n);
  stat_add(e, VX_TX_PACKETS, 1);
  stat_add(e, VX_TX_BYTES, flen);
}

/* One frame read from the TAP of `vni` (vnet header first): control, drop, or queue. */
static void tx_frame(struct vx_engine *e, struct tx_batch *b, uint32_t vni, int encrypted, uint8_t *buf, size_t len) {
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
  if (encrypted) {
    /* Never in clear: without an SA for this peer (or an ESP socket) the frame is dropped. */
    struct esp_sa *sa = e->esp >= 0 ? sa_out_find(e, vni, f->ip) : NULL;
    if (sa) tx_frame_esp(e, b, sa, vni, frame, flen, &vh);
    else stat_add(e, VX_ESP_TX_NO_SA, 1);
    return;
  }
  if (vh.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
    struct tso_seg *segs = &b->seg[b->nseg];
    int k = tso_split(frame, flen, &vh, VXLAN_HDR, 1, segs, MAX_SEGS - b->nseg);
    if (k < 0) {
      stat_add(e, VX_TX_BAD_GSO, 1);
      return;
    }
    b->nseg += k;
    stat_add(e, VX_TX_TSO_FRAMES, 1);
    for (int j = 0; j < k; j++) {
      vxlan_header(segs[j].hdr, vni);
      struct msghdr *m = tx_dgram(b, e->udp, e->port, f->ip, segs[j].hdr_len + segs[j].payload_len);
      tx_iov(b, m, segs[j].hdr, segs[j].hdr_len);
      tx_iov(b, m, (void *)segs[j].payload, segs[j].payload_len);
      stat_add(e, VX_TX_PACKETS, 1);
      stat_add(e, VX_TX_BYTES, segs[j].hdr_len - VXLAN_HDR + segs[j].payload_len);
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
  tx_iov(b, tx_dgram(b, e->udp, e->port, f->ip, flen + VXLAN_HDR), h, flen + VXLAN_HDR);
  stat_add(e, VX_TX_PACKETS, 1);
  stat_add(e, VX_TX_BYTES, flen);
}

/* Reads what one TAP has ready, in batches. Returns when the TAP is drained. */
static void tx_drain(struct vx_engine *e, struct tx_batch *b, uint32_t vni) {
  for (;;) {
    int more = 1;
    pthread_rwlock_rdlock(&e->lock);
    struct tap *tp = tap_get(e, vni);
    int fd = tp ? tp->fd : -1, encrypted = tp ? tp->encrypted : 0;
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
      tx_frame(e, b, vni, encrypted, buf, (size_t)len);
    }
    pthread_rwlock_unlock(&e->lock);
    if (b->n) tx_flush(e, b);
    b->r = 0;
    if (fd < 0 || !more) return;
  }
}

void *vx_tx_main(void *arg) {
  struct vx_engine *e = arg;
  pthread_setname_np(pthread_self(), "swarmnet-vx-tx"); /* named for top/perf */
  struct tx_batch *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  int ok = (b->obuf = malloc(OBUF_SIZE)) != NULL;
  for (int i = 0; i < RBUFS; i++) ok &= (b->rbuf[i] = malloc(RBUF_SIZE)) != NULL;
  if (!ok) {
    for (int i = 0; i < RBUFS; i++) free(b->rbuf[i]);
    free(b->obuf);
    free(b);
    return NULL;
  }
  for (int i = 0; i < MAX_MSGS; i++) {
    b->to[i].sin_family = AF_INET;
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
  free(b->obuf);
  free(b);
  return NULL;
}
