/*
 * Segmentation and coalescing offloads for the TAP side of the VXLAN engine, the
 * way wireguard-go does them: the TAP is opened with IFF_VNET_HDR and TSO, so the
 * kernel hands over TCP super-frames (up to 64 KiB) that are cut into MSS-sized
 * segments here (TSO), and received segments of one flow are merged back into one
 * super-frame before they enter the TAP (GRO). Both sides of the kernel then handle
 * 64 KiB units instead of 1450-byte packets.
 *
 * Only IPv4/TCP is segmented and coalesced; everything else passes one frame at a time.
 */
#ifndef SWARMNET_OFFLOAD_H
#define SWARMNET_OFFLOAD_H

#include <linux/virtio_net.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define ETH_HDR 14
#define VNET_HDR ((size_t)sizeof(struct virtio_net_hdr))
/* Ethernet + the largest IPv4 and TCP headers. */
#define MAX_HDRS (ETH_HDR + 60 + 60)

/* Ones' complement sum (RFC 1071), not folded. */
uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len);
uint16_t csum_fold(uint64_t sum);

/* Completes a checksum the kernel left to "hardware" (VIRTIO_NET_HDR_F_NEEDS_CSUM). */
int vnet_finish_csum(uint8_t *frame, size_t len, const struct virtio_net_hdr *vh);

/* One TSO segment: headers built in `hdr` (after `room` bytes left for the caller's
 * encapsulation), payload pointing into the super-frame. */
struct tso_seg {
  uint8_t hdr[64 + MAX_HDRS];
  size_t hdr_len; /* including the room */
  const uint8_t *payload;
  size_t payload_len;
};

/* Cuts an IPv4/TCP super-frame (vh->gso_type TCPV4) into segments of vh->gso_size,
 * with IP ids, sequence numbers, flags and both checksums fixed per segment. With
 * `csum` 0 the TCP checksum is left partial (the pseudo-header sum), for a receiver
 * that completes it (ESP: the ICV already proves the data intact end to end).
 * Returns the number of segments, or -1 when the frame is not one we can cut. */
int tso_split(const uint8_t *frame, size_t len, const struct virtio_net_hdr *vh, size_t room, int csum, struct tso_seg *out, int max);

/* Makes an IPv4/TCP frame's checksum the kernel's to complete (CHECKSUM_PARTIAL): the
 * field gets the pseudo-header sum and `vh` NEEDS_CSUM. -1 when not IPv4/TCP. */
int vnet_partial_tcp4(uint8_t *frame, size_t len, struct virtio_net_hdr *vh);

/* GRO: merges consecutive IPv4/TCP segments of one flow without copying them: the
 * merged frame is the first segment's headers (a copy, rewritten on finish) followed
 * by every segment's payload where it was received, written with one writev. So the
 * segments must stay where they are until the iovecs of gro_finish have been written. */
#define GRO_MAX_SEGS 128
struct gro {
  uint8_t hdr[VNET_HDR + MAX_HDRS]; /* vnet header, then the first segment's headers */
  struct iovec iov[1 + GRO_MAX_SEGS]; /* hdr, then each segment's payload */
  size_t len;   /* frame bytes (headers and payloads); 0 when empty */
  int count;    /* segments merged */
  size_t l3, l4, hdrs; /* offsets: IP header, TCP header, payload */
  size_t mss;   /* payload length of the first segment */
  uint32_t next_seq;
  int trusted;  /* segments' checksums unverified (ESP-authenticated): left to the kernel */
};

/* Tries to add `frame` to `g`. Returns 1 when merged (or started), 0 when the frame
 * cannot join (the caller flushes `g`, then retries once), -1 when the frame is not
 * coalescable at all (the caller flushes `g` and writes the frame alone). */
int gro_add(struct gro *g, const uint8_t *frame, size_t len, int trusted);
/* Finishes the merged frame: vnet header, lengths and checksums. Returns how many of
 * g->iov to write (vnet header first) and empties `g`. */
int gro_finish(struct gro *g);

#endif
