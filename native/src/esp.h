/*
 * ESP (RFC 4303) with AES-GCM (RFC 4106) for encrypted overlay networks, UDP-
 * encapsulated (RFC 3948). The VXLAN datagram is the transport-mode payload:
 *
 *    0                   1                   2                   3
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  outer IPv4 header (protocol 17)                              |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  UDP source port 4500          |  UDP destination port 4500   |  RFC 3948
 *   |  length                        |  checksum (kernel's)         |
 *   +===============================================================+
 *   |  Security Parameters Index (SPI), one per sender/receiver/key |  RFC 4303
 *   |  Sequence Number: low 32 bits of the 64-bit ESN               |  section 2
 *   +---------------------------------------------------------------+
 *   |  IV: the 64-bit sequence number (8 bytes)                     |  RFC 4106 3.1
 *   +---------------------------------------------------------------+ -.
 *   |  inner UDP: 4789 -> 4789, length, checksum 0                  |  |
 *   |  VXLAN header (flags I, VNI)                                  |  | encrypted
 *   |  inner Ethernet frame ...                                     |  |
 *   |  padding 0-3 (1, 2, 3)  | pad length     | next header = 17  |  |
 *   +---------------------------------------------------------------+ -'
 *   |  ICV (GCM tag, 16 bytes) over AAD = SPI | ESN high | ESN low  |  RFC 4106 5
 *   +---------------------------------------------------------------+
 *
 * Nonce = salt (4 bytes, per SA) | IV (8). The IV is the sequence number, which one
 * SA never repeats (64 bits: it cannot wrap), and every SA has its own key.
 */
#ifndef SWARMNET_ESP_H
#define SWARMNET_ESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define ESP_HDR 8     /* SPI + sequence number */
#define ESP_IV 8
#define ESP_ICV 16
#define ESP_INNER_UDP 8
#define ESP_TRAILER 2 /* pad length + next header */
#define ESP_NEXT_UDP 17
/* Bits of the anti-replay window (RFC 4303 section 3.4.3): a receive batch is up to 32
 * GRO trains of 64 datagrams, far inside it; Linux allows the same for ESN. */
#define ESP_WINDOW 4096

enum esp_dir { ESP_IN = 0, ESP_OUT = 1 };

struct evp_cipher_ctx_st;

struct esp_sa {
  struct esp_sa *next;
  enum esp_dir dir;
  uint32_t spi, vni, peer; /* peer: network byte order */
  uint8_t salt[4];
  struct evp_cipher_ctx_st *ctx;
  /* Out: the last sequence number used. In: the highest accepted (T of RFC 4303 A2). */
  uint64_t seq;
  int seen; /* in: a packet was accepted (T is meaningful) */
  uint64_t window[ESP_WINDOW / 64]; /* in: bit i = T - i was received */
};

/* A new SA with its own cipher context (key 16 or 32 bytes). `seq`: outbound, the first
 * number to send (0: 1); inbound, the highest number already accepted when the same SA is
 * installed again (0: none), everything up to it then counting as received. NULL on failure. */
struct esp_sa *esp_sa_new(enum esp_dir dir, uint32_t spi, uint32_t vni, uint32_t peer, const uint8_t *key, size_t key_len, const uint8_t salt[4], uint64_t seq);
void esp_sa_free(struct esp_sa *sa);

/* Bytes ESP adds around a plaintext of `len` bytes (header, IV, padding, trailer, ICV). */
size_t esp_sealed_len(size_t len);

/* Seals the plaintext pieces `pt` (their lengths sum to `len`; next header UDP) into
 * `out` with the SA's next sequence number. Returns the datagram length, or 0 when
 * encryption failed. */
size_t esp_seal(struct esp_sa *sa, uint8_t *out, const struct iovec *pt, int n, size_t len);

enum esp_open_result {
  ESP_OK = 0,
  ESP_BAD_ICV,
  ESP_REPLAY,
  ESP_TOO_OLD,
  ESP_BAD_TRAILER,
  ESP_SHORT,
};

/* Verifies and decrypts `p` (an ESP packet of `len` bytes, SPI already matched to `sa`)
 * in place, checking the replay window (updated only once the ICV holds). On ESP_OK
 * the payload (inner UDP header first) is at p + ESP_HDR + ESP_IV, `*out_len` bytes. */
enum esp_open_result esp_open(struct esp_sa *sa, uint8_t *p, size_t len, size_t *out_len);

/* The 64-bit sequence number a received low half stands for (RFC 4303 appendix A2.2). */
uint64_t esp_infer_seq(const struct esp_sa *sa, uint32_t low);

#endif
