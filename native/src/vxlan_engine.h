/*
 * Internals shared by the VXLAN engine's files: the engine state, its tables and
 * counters. vxlan.c owns the control calls, vxlan_tx.c and vxlan_rx.c one thread each.
 */
#ifndef SWARMNET_VXLAN_ENGINE_H
#define SWARMNET_VXLAN_ENGINE_H

#define _GNU_SOURCE
#include "vxlan.h"
#include "offload.h"
#include "esp.h"

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
  int encrypted;
};

#define SA_BUCKETS 1024

struct vx_engine {
  int udp;
  int esp;     /* ESP-in-UDP socket (RFC 3948), -1 when not bound */
  uint16_t esp_port;
  int ep;      /* epoll over TAP fds, for the TX thread */
  int stop_fd; /* eventfd: written once to stop both threads */
  uint16_t port;
  volatile int stopping;
  pthread_t rx, tx;
  pthread_rwlock_t lock;
  struct tap taps[MAX_TAPS];
  int ntaps;
  struct fdb_entry *fdb[FDB_BUCKETS];
  struct esp_sa *sa_in[SA_BUCKETS];  /* by SPI */
  struct esp_sa *sa_out[SA_BUCKETS]; /* by (vni, peer) */
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

static inline unsigned fdb_hash(uint32_t vni, const uint8_t mac[6]) {
  uint32_t h = 2166136261u ^ vni;
  for (int i = 0; i < 6; i++) h = (h ^ mac[i]) * 16777619u;
  return h & (FDB_BUCKETS - 1);
}

static inline struct fdb_entry *fdb_find(struct vx_engine *e, uint32_t vni, const uint8_t mac[6]) {
  for (struct fdb_entry *f = e->fdb[fdb_hash(vni, mac)]; f; f = f->next)
    if (f->vni == vni && memcmp(f->mac, mac, 6) == 0) return f;
  return NULL;
}

static inline struct tap *tap_get(struct vx_engine *e, uint32_t vni) {
  for (int i = 0; i < e->ntaps; i++)
    if (e->taps[i].vni == vni) return &e->taps[i];
  return NULL;
}

static inline int tap_find(struct vx_engine *e, uint32_t vni) {
  struct tap *t = tap_get(e, vni);
  return t ? t->fd : -1;
}

static inline unsigned sa_in_hash(uint32_t spi) {
  return (spi * 2654435761u) >> 22 & (SA_BUCKETS - 1);
}

static inline unsigned sa_out_hash(uint32_t vni, uint32_t peer) {
  return ((vni * 2654435761u) ^ (peer * 40503u)) >> 12 & (SA_BUCKETS - 1);
}

/* The inbound SA of `spi` from `from`: an SPI names an SA only with its sender. */
static inline struct esp_sa *sa_in_find(struct vx_engine *e, uint32_t spi, uint32_t from) {
  for (struct esp_sa *s = e->sa_in[sa_in_hash(spi)]; s; s = s->next)
    if (s->spi == spi && s->peer == from) return s;
  return NULL;
}

static inline struct esp_sa *sa_out_find(struct vx_engine *e, uint32_t vni, uint32_t peer) {
  for (struct esp_sa *s = e->sa_out[sa_out_hash(vni, peer)]; s; s = s->next)
    if (s->vni == vni && s->peer == peer) return s;
  return NULL;
}

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

static inline int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* The two data threads (vx_open starts them, vx_close joins them). */
void *vx_tx_main(void *arg);
void *vx_rx_main(void *arg);

/* An empty vnet header, for frames written into a TAP on their own. */
extern const uint8_t vx_zero_vnet[sizeof(struct virtio_net_hdr)];

#endif
