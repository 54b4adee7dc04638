/*
 * TSO and GRO for the VXLAN engine's TAP side (see offload.h).
 *
 * Checksums (RFC 1071) are summed over native-endian words and stored with memcpy,
 * which yields the network-order result on either byte order (RFC 1071 section 2(B)).
 * The TCP pseudo-header is RFC 793 section 3.1 / RFC 9293 section 3.1.
 */
#include "offload.h"

#include <arpa/inet.h>
#include <string.h>

#define ETHERTYPE_IPV4 0x0800
#define IPPROTO_TCP_ 6
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80
#define IP_MAX 65535

uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len) {
  uint32_t w;
  while (len >= 4) {
    memcpy(&w, p, 4);
    sum += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t h;
    memcpy(&h, p, 2);
    sum += h;
    p += 2;
    len -= 2;
  }
  if (len) {
    /* The odd byte is padded with a zero byte after it (RFC 1071 section 4.1). */
    uint8_t pad[2] = {p[0], 0};
    uint16_t h;
    memcpy(&h, pad, 2);
    sum += h;
  }
  return sum;
}

uint16_t csum_fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

static uint64_t pseudo_tcp4(const uint8_t *ip, size_t tcp_len) {
  uint16_t proto = htons(IPPROTO_TCP_), len = htons((uint16_t)tcp_len);
  uint64_t sum = csum_add(0, ip + 12, 8); /* source and destination addresses */
  return sum + proto + len;
}

static void ip4_fix_csum(uint8_t *ip, size_t ihl) {
  ip[10] = ip[11] = 0;
  uint16_t c = (uint16_t)~csum_fold(csum_add(0, ip, ihl));
  memcpy(ip + 10, &c, 2);
}

static uint16_t be16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

int vnet_finish_csum(uint8_t *frame, size_t len, const struct virtio_net_hdr *vh) {
  size_t start = vh->csum_start, at = start + vh->csum_offset;
  if (at + 2 > len) return -1;
  /* The field holds the pseudo-header sum already (the CHECKSUM_PARTIAL convention). */
  uint16_t c = (uint16_t)~csum_fold(csum_add(0, frame + start, len - start));
  memcpy(frame + at, &c, 2);
  return 0;
}

/* Offsets of an IPv4/TCP frame without Ethernet padding issues; -1 if not one. */
static int tcp4_layout(const uint8_t *frame, size_t len, size_t *ihl, size_t *thl, size_t *ip_len) {
  if (len < ETH_HDR + 20 || be16(frame + 12) != ETHERTYPE_IPV4) return -1;
  const uint8_t *ip = frame + ETH_HDR;
  if ((ip[0] >> 4) != 4 || ip[9] != IPPROTO_TCP_) return -1;
  *ihl = (size_t)(ip[0] & 0x0f) * 4;
  if (*ihl < 20 || ETH_HDR + *ihl + 20 > len) return -1;
  *thl = (size_t)(ip[*ihl + 12] >> 4) * 4;
  *ip_len = be16(ip + 2);
  if (*thl < 20 || ETH_HDR + *ihl + *thl > len || ETH_HDR + *ihl + *thl > MAX_HDRS) return -1;
  return 0;
}

int tso_split(const uint8_t *frame, size_t len, const struct virtio_net_hdr *vh, size_t room, int csum, struct tso_seg *out, int max) {
  size_t ihl, thl, ip_len;
  if ((vh->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_TCPV4 || vh->gso_size == 0) return -1;
  if (room > 64 || tcp4_layout(frame, len, &ihl, &thl, &ip_len) < 0) return -1;
  size_t hdrs = ETH_HDR + ihl + thl, mss = vh->gso_size, total = len - hdrs;
  if (total == 0) return -1;
  int n = (int)((total + mss - 1) / mss);
  if (n > max) return -1;
  const uint8_t *ip0 = frame + ETH_HDR;
  uint16_t id0 = be16(ip0 + 4);
  uint32_t seq0 = be32(ip0 + ihl + 4);
  uint8_t flags = ip0[ihl + 13];
  for (int i = 0; i < n; i++) {
    struct tso_seg *s = &out[i];
    size_t off = (size_t)i * mss, chunk = total - off < mss ? total - off : mss;
    uint8_t *h = s->hdr + room, *ip = h + ETH_HDR, *tcp = ip + ihl;
    memcpy(h, frame, hdrs);
    put16(ip + 2, (uint16_t)(ihl + thl + chunk));
    put16(ip + 4, (uint16_t)(id0 + i));
    ip4_fix_csum(ip, ihl);
    put32(tcp + 4, seq0 + (uint32_t)off);
    uint8_t f = flags;
    if (i < n - 1) f &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (i > 0) f &= (uint8_t)~TCP_CWR;
    tcp[13] = f;
    tcp[16] = tcp[17] = 0;
    uint64_t sum = pseudo_tcp4(ip, thl + chunk);
    uint16_t c = csum_fold(sum); /* partial: the receiver completes it */
    if (csum) {
      sum = csum_add(sum, tcp, thl);
      sum = csum_add(sum, frame + hdrs + off, chunk);
      c = (uint16_t)~csum_fold(sum);
    }
    memcpy(tcp + 16, &c, 2);
    s->hdr_len = room + hdrs;
    s->payload = frame + hdrs + off;
    s->payload_len = chunk;
  }
  return n;
}

/* ---- GRO ---- */

/* What ends a merge once it happened, as in Linux's tcp_gro_receive. */
struct gro_end {
  int short_seg; /* a segment shorter than mss ends the merge, as in Linux GRO */
  int psh;       /* so does PSH */
};
static struct gro_end end_of(const struct gro *g) {
  const uint8_t *tcp = g->hdr + VNET_HDR + g->l4;
  return (struct gro_end){.short_seg = (g->len - g->hdrs) % g->mss != 0, .psh = (tcp[13] & TCP_PSH) != 0};
}

int vnet_partial_tcp4(uint8_t *frame, size_t len, struct virtio_net_hdr *vh) {
  size_t ihl, thl, ip_len;
  if (tcp4_layout(frame, len, &ihl, &thl, &ip_len) < 0 || ip_len < ihl + thl || ETH_HDR + ip_len > len) return -1;
  uint8_t *ip = frame + ETH_HDR;
  uint16_t c = csum_fold(pseudo_tcp4(ip, ip_len - ihl));
  memcpy(ip + ihl + 16, &c, 2);
  memset(vh, 0, sizeof *vh);
  vh->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  vh->csum_start = (uint16_t)(ETH_HDR + ihl);
  vh->csum_offset = 16;
  return 0;
}

int gro_add(struct gro *g, const uint8_t *frame, size_t len, int trusted) {
  size_t ihl, thl, ip_len;
  if (tcp4_layout(frame, len, &ihl, &thl, &ip_len) < 0 || ihl != 20) return -1;
  const uint8_t *ip = frame + ETH_HDR, *tcp = ip + ihl;
  if (ip_len < ihl + thl || ETH_HDR + ip_len > len) return -1;
  if (be16(ip + 6) & 0x3fff) return -1; /* a fragment */
  uint8_t flags = tcp[13];
  if (!(flags & TCP_ACK) || (flags & ~(TCP_ACK | TCP_PSH))) return -1;
  size_t hdrs = ETH_HDR + ihl + thl, payload = ETH_HDR + ip_len - hdrs;
  if (payload == 0) return -1;
  /* Merged frames are handed on as checksum-verified, so verify each segment here
   * (unless its integrity was proven otherwise: an ESP ICV). */
  if (!trusted && csum_fold(csum_add(pseudo_tcp4(ip, ip_len - ihl), tcp, ip_len - ihl)) != 0xffff) return -1;
  uint32_t seq = be32(tcp + 4);
  if (g->len == 0) {
    memcpy(g->hdr + VNET_HDR, frame, hdrs); /* tcp4_layout: hdrs <= MAX_HDRS */
    g->iov[0] = (struct iovec){.iov_base = g->hdr, .iov_len = VNET_HDR + hdrs};
    g->iov[1] = (struct iovec){.iov_base = (void *)(frame + hdrs), .iov_len = payload};
    g->len = ETH_HDR + ip_len;
    g->count = 1;
    g->l3 = ETH_HDR;
    g->l4 = ETH_HDR + ihl;
    g->hdrs = hdrs;
    g->mss = payload;
    g->next_seq = seq + (uint32_t)payload;
    g->trusted = trusted;
    return 1;
  }
  if (trusted != g->trusted) return 0;
  const uint8_t *m = g->hdr + VNET_HDR, *mip = m + g->l3, *mtcp = m + g->l4;
  struct gro_end e = end_of(g);
  if (e.short_seg || e.psh || hdrs != g->hdrs || payload > g->mss || seq != g->next_seq) return 0;
  if (g->len - ETH_HDR + payload > IP_MAX || g->count == GRO_MAX_SEGS) return 0;
  if (memcmp(m, frame, ETH_HDR) != 0) return 0;                             /* MACs, type */
  if (mip[1] != ip[1] || mip[8] != ip[8] || memcmp(mip + 12, ip + 12, 8)) return 0; /* TOS, TTL, addresses */
  if (memcmp(mtcp, tcp, 4) || memcmp(mtcp + 8, tcp + 8, 4)) return 0;        /* ports, ack */
  if (memcmp(mtcp + 20, tcp + 20, thl - 20)) return 0;                      /* options (timestamps) */
  g->iov[++g->count] = (struct iovec){.iov_base = (void *)(frame + hdrs), .iov_len = payload};
  g->len += payload;
  g->next_seq += (uint32_t)payload;
  uint8_t *wtcp = g->hdr + VNET_HDR + g->l4;
  memcpy(wtcp + 14, tcp + 14, 2); /* the newest window */
  wtcp[13] |= flags & TCP_PSH;
  return 1;
}

int gro_finish(struct gro *g) {
  struct virtio_net_hdr vh;
  memset(&vh, 0, sizeof vh);
  /* Only the headers are here (the payloads are in g->iov); every call below reads and
   * writes headers only, with g->len the frame's length. */
  uint8_t *m = g->hdr + VNET_HDR, *ip = m + g->l3, *tcp = m + g->l4;
  if (g->count == 1 && !g->trusted) {
    vh.flags = VIRTIO_NET_HDR_F_DATA_VALID; /* verified in gro_add */
  } else if (g->count == 1) {
    vnet_partial_tcp4(m, g->len, &vh); /* its checksum may be left to us: the kernel's job */
  } else {
    size_t ip_len = g->len - ETH_HDR;
    put16(ip + 2, (uint16_t)ip_len);
    ip4_fix_csum(ip, g->l4 - g->l3);
    /* CHECKSUM_PARTIAL: the field carries the pseudo-header sum, the kernel does the rest. */
    uint16_t c = csum_fold(pseudo_tcp4(ip, ip_len - (g->l4 - g->l3)));
    memcpy(tcp + 16, &c, 2);
    vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    vh.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    vh.hdr_len = (uint16_t)g->hdrs;
    vh.gso_size = (uint16_t)g->mss;
    vh.csum_start = (uint16_t)g->l4;
    vh.csum_offset = 16;
  }
  memcpy(g->hdr, &vh, sizeof vh);
  int n = 1 + g->count;
  g->len = 0;
  g->count = 0;
  return n;
}
