/*
 * New UDP flows per second, at C speed so the client is not what is measured
 * (bench/mesh.ts compiles and runs it).
 *
 *   udpflows echo IP PORT COUNT
 *       echo server on COUNT consecutive ports: recvmmsg, then sendmmsg back to each
 *       sender. Prints "ready" once bound; runs until killed.
 *   udpflows flood DST_IP DST_PORT SECONDS START [WINDOW]
 *       sends one 16-byte datagram from each of a run of new source addresses
 *       (127.64.0.0/10 x 16 ports from 24000, from number START on), so every
 *       datagram is a new flow, and counts the replies. Needs root: datagrams go out
 *       through a raw socket (IP_HDRINCL, sendmmsg, 64 at a time). Replies are read
 *       with recvmmsg from 16 ordinary UDP sockets bound to 0.0.0.0 on those ports,
 *       which receive for every loopback source address. Until 2026-11-24 they were
 *       counted off a raw IPPROTO_UDP socket: the kernel clones every UDP datagram
 *       it delivers to such a socket before its filter runs, so the bench charged
 *       each datagram hop a clone, four per flow through the mesh against two
 *       direct, in the sender's context (8 % of the mesh agent's time).
 *       At most WINDOW (default 4096) datagrams are unanswered at once; after
 *       50 ms without a reply the missing ones count as lost.
 *       Prints "sent received seconds".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define PAYLOAD 16
#define SRC_NET 0x7f400000u /* 127.64.0.0/10: 4,194,302 source addresses */
#define SRC_HOSTS 4194302
/* Below the ephemeral range, so no source port is one of the mesh's pool sockets. */
#define PORT_FIRST 24000
#define PORTS_MAX 16
#define STALL_NS 50000000LL
#define DRAIN_NS 200000000LL
#define MAX_PORTS 256

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int die(const char *what) {
  fprintf(stderr, "udpflows: %s: %s\n", what, strerror(errno));
  return 1;
}

static int echo(const char *ip, int port, int count) {
  static char buf[BATCH][2048];
  struct mmsghdr msg[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_in from[BATCH];
  int ep = epoll_create1(0), fds[MAX_PORTS];
  if (count < 1 || count > MAX_PORTS) count = 1;
  for (int i = 0; i < count; i++) {
    fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int size = 4 << 20;
    setsockopt(fds[i], SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(port + i))};
    inet_pton(AF_INET, ip, &a.sin_addr);
    if (bind(fds[i], (struct sockaddr *)&a, sizeof a) < 0) return die("bind");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    struct epoll_event evs[MAX_PORTS];
    int n = epoll_wait(ep, evs, MAX_PORTS, -1);
    for (int e = 0; e < n; e++) {
      int fd = evs[e].data.fd;
      for (int i = 0; i < BATCH; i++) {
        iov[i] = (struct iovec){buf[i], sizeof buf[i]};
        msg[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &iov[i], .msg_iovlen = 1};
      }
      int r = recvmmsg(fd, msg, BATCH, MSG_DONTWAIT, NULL);
      if (r <= 0) continue;
      for (int i = 0; i < r; i++) iov[i].iov_len = msg[i].msg_len;
      sendmmsg(fd, msg, (unsigned)r, 0);
    }
  }
}

struct packet {
  struct iphdr ip;
  struct udphdr udp;
  char payload[PAYLOAD];
} __attribute__((packed));

static int flood(const char *dst_ip, int dst_port, double seconds, long long start, long long window) {
  int tx = socket(AF_INET, SOCK_RAW, IPPROTO_RAW), ep = epoll_create1(0);
  if (tx < 0) return die("raw socket (root needed)");
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)dst_port)};
  inet_pton(AF_INET, dst_ip, &dst.sin_addr);
  uint16_t ports[PORTS_MAX];
  int rx[PORTS_MAX], nports = 0;
  for (int i = 0; i < PORTS_MAX; i++) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), size = 16 << 20;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(PORT_FIRST + i))};
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
      close(fd);
      continue;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)nports};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    rx[nports] = fd;
    ports[nports++] = (uint16_t)(PORT_FIRST + i);
  }
  if (!nports) return die("bind any source port");

  static struct packet pkt[BATCH];
  static char rbuf[BATCH][64];
  struct mmsghdr smsg[BATCH], rmsg[BATCH];
  struct iovec siov[BATCH], riov[BATCH];
  struct sockaddr_in from[BATCH];
  for (int i = 0; i < BATCH; i++) {
    memset(&pkt[i], 0, sizeof pkt[i]);
    pkt[i].ip.version = 4;
    pkt[i].ip.ihl = 5;
    pkt[i].ip.ttl = 64;
    pkt[i].ip.protocol = IPPROTO_UDP;
    pkt[i].ip.daddr = dst.sin_addr.s_addr;
    pkt[i].ip.tot_len = htons(sizeof pkt[i]);
    pkt[i].udp.dest = dst.sin_port;
    pkt[i].udp.len = htons(sizeof pkt[i].udp + PAYLOAD);
    memcpy(pkt[i].payload, "swarmnet-udpflow", PAYLOAD);
    siov[i] = (struct iovec){&pkt[i], sizeof pkt[i]};
    smsg[i].msg_hdr = (struct msghdr){.msg_name = &dst, .msg_namelen = sizeof dst, .msg_iov = &siov[i], .msg_iovlen = 1};
    riov[i] = (struct iovec){rbuf[i], sizeof rbuf[i]};
    rmsg[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &riov[i], .msg_iovlen = 1};
  }

  long long sent = 0, received = 0, forgiven = 0, next = start;
  long long t0 = now_ns(), end = t0 + (long long)(seconds * 1e9), last_progress = t0;
  for (;;) {
    long long t = now_ns();
    if (t >= end + DRAIN_NS) break;
    int blocked = t >= end || sent - received - forgiven >= window;
    if (blocked && t < end && t - last_progress > STALL_NS) {
      forgiven = sent - received;
      last_progress = t;
    }
    struct epoll_event evs[PORTS_MAX];
    int n = epoll_wait(ep, evs, PORTS_MAX, blocked ? 1 : 0);
    for (int e = 0; e < n; e++) {
      int r;
      /* Only replies from the destination count (the mesh answers from it). */
      while ((r = recvmmsg(rx[evs[e].data.u32], rmsg, BATCH, MSG_DONTWAIT, NULL)) > 0) {
        for (int i = 0; i < r; i++)
          if (from[i].sin_addr.s_addr == dst.sin_addr.s_addr && from[i].sin_port == dst.sin_port) received++;
        last_progress = t;
        for (int i = 0; i < BATCH; i++) rmsg[i].msg_hdr.msg_namelen = sizeof from[i];
      }
    }
    if (blocked) continue;
    for (int i = 0; i < BATCH; i++, next++) {
      long long host = next / nports % SRC_HOSTS + 1;
      pkt[i].ip.saddr = htonl(SRC_NET | (uint32_t)host);
      pkt[i].udp.source = htons(ports[next % nports]);
    }
    int s = sendmmsg(tx, smsg, BATCH, 0);
    if (s > 0) sent += s;
  }
  printf("%lld %lld %.3f\n", sent, received, seconds);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[1], "echo") == 0) return echo(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc >= 6 && strcmp(argv[1], "flood") == 0) return flood(argv[2], atoi(argv[3]), atof(argv[4]), atoll(argv[5]), argc > 6 ? atoll(argv[6]) : 4096);
  fprintf(stderr, "usage: udpflows echo IP PORT COUNT | flood DST_IP DST_PORT SECONDS START [WINDOW]\n");
  return 2;
}
