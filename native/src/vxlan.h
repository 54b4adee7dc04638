/*
 * Userspace VXLAN (RFC 7348) data path: TAP devices <-> one UDP socket, on two
 * threads of its own (one per direction), frames moved in batches with
 * recvmmsg/sendmmsg. Forwarding comes from a static FDB the control plane fills
 * (destination MAC -> remote node); nothing is learned and nothing is flooded.
 * Frames the FDB cannot place (broadcast ARP, unknown unicast) go to a control
 * callback, which TypeScript answers (ARP proxy) or drops.
 */
#ifndef SWARMNET_VXLAN_H
#define SWARMNET_VXLAN_H

#include <stddef.h>
#include <stdint.h>

struct vx_engine;

/* Called on the engine's TX thread with a frame read from the TAP of `vni`. The
 * frame is only valid during the call. */
typedef void (*vx_ctl_fn)(void *ctx, uint32_t vni, const uint8_t *frame, size_t len);

enum vx_stat {
  VX_RX_PACKETS,    /* VXLAN packets decapsulated into a TAP */
  VX_RX_BYTES,      /* inner frame bytes of those */
  VX_RX_SHORT,      /* shorter than the VXLAN header plus an Ethernet header */
  VX_RX_BAD_FLAGS,  /* I flag clear (RFC 7348 section 5) */
  VX_RX_UNKNOWN_VNI,
  VX_RX_OVERSIZE,   /* larger than a receive buffer (truncated by the kernel) */
  VX_RX_TAP_ERRORS, /* write into the TAP failed */
  VX_TX_PACKETS,    /* frames encapsulated and sent */
  VX_TX_BYTES,
  VX_TX_ERRORS,     /* sendmmsg failed */
  VX_TX_CONTROL,    /* frames handed to the control callback */
  VX_TX_DROPPED,    /* multicast other than ARP: not flooded */
  VX_TX_BAD_GSO,    /* a super-frame or checksum request we cannot complete */
  VX_TX_TSO_FRAMES, /* super-frames cut into segments */
  VX_RX_GRO_FRAMES, /* merged frames written (each from several packets) */
  VX_RX_UNKNOWN_PEER, /* from an address that is not a node of the cluster */
  /* Encrypted networks (esp.h). */
  VX_ESP_TX_PACKETS,     /* ESP datagrams sealed and queued */
  VX_ESP_TX_NO_SA,       /* frames of an encrypted VNI with no outbound SA: dropped, never sent clear */
  VX_ESP_TX_ERRORS,      /* sealing failed */
  VX_ESP_RX_PACKETS,     /* ESP datagrams opened and delivered */
  VX_ESP_RX_SHORT,       /* malformed: too short, or SPI 0 (RFC 3948's non-ESP marker) */
  VX_ESP_RX_UNKNOWN_SPI, /* no inbound SA of that SPI from that sender */
  VX_ESP_RX_BAD_ICV,     /* integrity check failed (forged, corrupted, wrong key) */
  VX_ESP_RX_REPLAY,      /* sequence number already received */
  VX_ESP_RX_TOO_OLD,     /* left of the anti-replay window */
  VX_ESP_RX_BAD_TRAILER, /* authentic, but padding or next header wrong */
  VX_ESP_RX_WRONG_VNI,   /* authentic, but the VXLAN inside is not the SA's network */
  VX_ESP_RX_KEEPALIVE,   /* NAT keepalives (RFC 3948 section 2.3) */
  VX_RX_CLEAR_ON_ENCRYPTED, /* clear VXLAN for an encrypted VNI */
  VX_STAT_COUNT
};

/* Opens TAP `name` (IFF_TAP | IFF_NO_PI, non-blocking), sets its MTU and brings it
 * up. Returns the fd or -errno. The device goes away when the fd is closed. */
int vx_tap_open(const char *name, int mtu);

/* Binds a UDP socket on ip:port (network byte order ip, host order port), and one on
 * ip:esp_port for ESP-in-UDP unless esp_port is 0, and starts the engine's threads.
 * Returns 0 or -errno. */
int vx_open(struct vx_engine **out, uint32_t ip, uint16_t port, uint16_t esp_port, vx_ctl_fn ctl, void *ctx);
/* Stops the threads, closes the socket and every TAP. */
void vx_close(struct vx_engine *e);

/* The engine owns the fd from here on (closed by vx_del_tap or vx_close). Frames of an
 * `encrypted` VNI leave only in ESP and are accepted only from ESP. */
int vx_add_tap(struct vx_engine *e, uint32_t vni, int fd, int encrypted);
int vx_del_tap(struct vx_engine *e, uint32_t vni);

/* FDB: frames for `mac` on `vni` go to the node at `ip` (network byte order). */
int vx_fdb_set(struct vx_engine *e, uint32_t vni, const uint8_t mac[6], uint32_t ip);
int vx_fdb_del(struct vx_engine *e, uint32_t vni, const uint8_t mac[6]);

/* The nodes VXLAN is accepted from (network byte order); replaces the set. Anything
 * else is counted and dropped: an overlay is not open to whoever reaches UDP 4789. */
int vx_peers_set(struct vx_engine *e, const uint32_t *ips, size_t n);

/* Writes one frame into the TAP of `vni` (an ARP reply from the control side). */
int vx_tap_write(struct vx_engine *e, uint32_t vni, const uint8_t *frame, size_t len);

void vx_stats(struct vx_engine *e, uint64_t out[VX_STAT_COUNT]);

/* Security associations (esp.h). The engine owns `sa` from the call on. An outbound SA
 * replaces the one of its (vni, peer); an inbound one the one of its (spi, peer). */
struct esp_sa;
int vx_sa_set(struct vx_engine *e, struct esp_sa *sa);
int vx_sa_del(struct vx_engine *e, int dir, uint32_t spi, uint32_t peer);
/* What is installed, without keys: up to `max` entries; returns how many exist. */
struct vx_sa_info {
  int dir;
  uint32_t spi, vni, peer;
  uint64_t seq;
};
size_t vx_sa_list(struct vx_engine *e, struct vx_sa_info *out, size_t max);

#endif
