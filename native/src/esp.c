/*
 * ESP with AES-GCM (see esp.h for the packet): sealing, opening, 64-bit extended
 * sequence numbers and the anti-replay window. Crypto goes through OpenSSL's EVP
 * interface, resolved from the Node.js process itself (which links OpenSSL).
 *
 * One SA is used by one engine thread only (outbound: TX, inbound: RX), so its
 * cipher context, counter and window need no lock; the sequence number is read by
 * the control side with relaxed atomics (for listing).
 */
#include "esp.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct esp_sa *esp_sa_new(enum esp_dir dir, uint32_t spi, uint32_t vni, uint32_t peer, const uint8_t *key, size_t key_len, const uint8_t salt[4], uint64_t seq) {
  const EVP_CIPHER *cipher = key_len == 16 ? EVP_aes_128_gcm() : key_len == 32 ? EVP_aes_256_gcm() : NULL;
  if (!cipher) return NULL;
  struct esp_sa *sa = calloc(1, sizeof *sa);
  if (!sa) return NULL;
  sa->ctx = EVP_CIPHER_CTX_new();
  int ok = sa->ctx != NULL;
  /* The key is set once; per packet only the nonce changes. GCM's default nonce is
   * the 12 bytes RFC 4106 section 4 builds (salt | IV). */
  if (ok && dir == ESP_OUT) ok = EVP_EncryptInit_ex(sa->ctx, cipher, NULL, key, NULL) == 1;
  if (ok && dir == ESP_IN) ok = EVP_DecryptInit_ex(sa->ctx, cipher, NULL, key, NULL) == 1;
  if (!ok) {
    esp_sa_free(sa);
    return NULL;
  }
  sa->dir = dir;
  sa->spi = spi;
  sa->vni = vni;
  sa->peer = peer;
  memcpy(sa->salt, salt, 4);
  if (dir == ESP_OUT) {
    /* The first packet carries `seq` (the counter holds the last one used). */
    sa->seq = seq ? seq - 1 : 0;
  } else if (seq) {
    /* Reinstalled within an engine's life: resume at the highest number accepted, with
     * everything up to it counted as received, so nothing seen before can be replayed. */
    sa->seq = seq;
    sa->seen = 1;
    memset(sa->window, 0xff, sizeof sa->window);
  }
  return sa;
}

void esp_sa_free(struct esp_sa *sa) {
  if (!sa) return;
  if (sa->ctx) EVP_CIPHER_CTX_free(sa->ctx);
  free(sa);
}

static size_t pad_len(size_t len) {
  /* RFC 4303 section 2.4: pad length and next header end on a 4-byte boundary. */
  return (4 - (len + ESP_TRAILER) % 4) % 4;
}

size_t esp_sealed_len(size_t len) {
  return ESP_HDR + ESP_IV + len + pad_len(len) + ESP_TRAILER + ESP_ICV;
}

static void aad_of(uint8_t aad[12], uint32_t spi, uint64_t seq) {
  /* RFC 4106 section 5, extended sequence numbers: SPI | seq high 32 | seq low 32. */
  put32(aad, spi);
  put32(aad + 4, (uint32_t)(seq >> 32));
  put32(aad + 8, (uint32_t)seq);
}

/*
 * The next packet's nonce (RFC 4106 section 4: salt | IV), and on the inbound side the
 * tag it must carry, in one parameter call. The key stays from esp_sa_new. The nonce
 * is the whole IV given to EVP_CTRL_AEAD_SET_IV_FIXED with length -1 ("restore the
 * whole IV"), sent as the provider parameter that control becomes (EVP_CIPHER_CTX_ctrl
 * builds exactly this one). Re-initialising the context instead (EVP_EncryptInit_ex
 * with only an IV) costs twice as much in OpenSSL 3.0: it asks the provider for the IV
 * length by name every time (callgrind: ~1,000 against ~450 instructions a packet).
 */
static int set_nonce(struct esp_sa *sa, uint8_t nonce[12], uint8_t *tag) {
  OSSL_PARAM p[3], *q = p;
  if (tag) *q++ = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, ESP_ICV);
  *q++ = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED, nonce, (size_t)-1);
  *q = OSSL_PARAM_construct_end();
  return EVP_CIPHER_CTX_set_params(sa->ctx, p) == 1;
}

size_t esp_seal(struct esp_sa *sa, uint8_t *out, const struct iovec *pt, int n, size_t len) {
  /* RFC 4303 section 3.3.3: the counter must not cycle; an SA at the end seals nothing. */
  if (sa->seq == UINT64_MAX) return 0;
  uint64_t seq = sa->seq + 1;
  __atomic_store_n(&sa->seq, seq, __ATOMIC_RELAXED);
  put32(out, sa->spi);
  put32(out + 4, (uint32_t)seq);
  uint8_t *iv = out + ESP_HDR;
  put32(iv, (uint32_t)(seq >> 32));
  put32(iv + 4, (uint32_t)seq);
  uint8_t nonce[12], aad[12];
  memcpy(nonce, sa->salt, 4);
  memcpy(nonce + 4, iv, ESP_IV);
  aad_of(aad, sa->spi, seq);
  /* The plaintext is gathered first and encrypted in place in one call: GCM's stitched
   * AES-NI/CLMUL loop works on whole blocks, and pieces that end mid-block would send
   * every following byte through its slow path. */
  uint8_t *c = iv + ESP_IV, *w = c;
  for (int i = 0; i < n; i++) {
    memcpy(w, pt[i].iov_base, pt[i].iov_len);
    w += pt[i].iov_len;
  }
  size_t pad = pad_len(len);
  for (size_t i = 0; i < pad; i++) *w++ = (uint8_t)(i + 1); /* RFC 4303 2.4 default */
  *w++ = (uint8_t)pad;
  *w++ = ESP_NEXT_UDP;
  int l;
  if (!set_nonce(sa, nonce, NULL) || EVP_EncryptUpdate(sa->ctx, NULL, &l, aad, sizeof aad) != 1) return 0;
  if (EVP_EncryptUpdate(sa->ctx, c, &l, c, (int)(w - c)) != 1) return 0;
  c += l;
  if (EVP_EncryptFinal_ex(sa->ctx, c, &l) != 1) return 0;
  c += l;
  /* The tag through the provider's parameter directly: EVP_CIPHER_CTX_ctrl would build
   * the same parameter after a lookup of its own (~50 ns of ~950 per packet here). */
  OSSL_PARAM tag[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, c, ESP_ICV), OSSL_PARAM_construct_end()};
  if (EVP_CIPHER_CTX_get_params(sa->ctx, tag) != 1) return 0;
  return (size_t)(c + ESP_ICV - out);
}

uint64_t esp_infer_seq(const struct esp_sa *sa, uint32_t low) {
  if (!sa->seen) return low; /* nothing received yet: the first subspace */
  uint32_t th = (uint32_t)(sa->seq >> 32), tl = (uint32_t)sa->seq, sh;
  const uint32_t w = ESP_WINDOW;
  if (tl >= w - 1) {
    /* Case A: the window lies within one subspace; below it means the next one. */
    sh = low >= tl - w + 1 ? th : th + 1;
  } else {
    /* Case B: the window spans two subspaces; its top part of the previous one. */
    sh = low >= tl - w + 1 ? (th ? th - 1 : 0) : th;
  }
  return (uint64_t)sh << 32 | low;
}

static int window_has(const struct esp_sa *sa, uint64_t seq) {
  uint64_t bit = seq % ESP_WINDOW;
  return (sa->window[bit / 64] >> (bit % 64)) & 1;
}

static void window_mark(struct esp_sa *sa, uint64_t seq) {
  if (!sa->seen || (seq > sa->seq && seq - sa->seq >= ESP_WINDOW)) {
    memset(sa->window, 0, sizeof sa->window);
  } else if (seq > sa->seq) {
    /* Slots of the numbers skipped over now stand for them: clear. */
    for (uint64_t s = sa->seq + 1; s < seq; s++) sa->window[(s % ESP_WINDOW) / 64] &= ~(1ULL << (s % 64));
  }
  if (!sa->seen || seq > sa->seq) {
    uint64_t bit = seq % ESP_WINDOW;
    sa->window[bit / 64] &= ~(1ULL << (bit % 64));
    __atomic_store_n(&sa->seq, seq, __ATOMIC_RELAXED);
    sa->seen = 1;
  }
  uint64_t bit = seq % ESP_WINDOW;
  sa->window[bit / 64] |= 1ULL << (bit % 64);
}

enum esp_open_result esp_open(struct esp_sa *sa, uint8_t *p, size_t len, size_t *out_len) {
  if (len < ESP_HDR + ESP_IV + ESP_TRAILER + ESP_ICV) return ESP_SHORT;
  uint64_t seq = esp_infer_seq(sa, get32(p + 4));
  /* RFC 4303 section 3.4.3: reject duplicates and numbers left of the window before
   * spending a decryption on them; the window moves only after the ICV holds. */
  if (sa->seen && seq <= sa->seq) {
    if (sa->seq - seq >= ESP_WINDOW) return ESP_TOO_OLD;
    if (window_has(sa, seq)) return ESP_REPLAY;
  }
  uint8_t nonce[12], aad[12], tag[ESP_ICV];
  memcpy(nonce, sa->salt, 4);
  memcpy(nonce + 4, p + ESP_HDR, ESP_IV);
  aad_of(aad, sa->spi, seq);
  uint8_t *c = p + ESP_HDR + ESP_IV;
  size_t clen = len - ESP_HDR - ESP_IV - ESP_ICV;
  memcpy(tag, c + clen, ESP_ICV);
  int l, l2;
  /* The expected tag goes in with the nonce, in the same call: it is only compared in
   * EVP_DecryptFinal_ex, after the whole ciphertext went through GHASH. */
  if (!set_nonce(sa, nonce, tag) || EVP_DecryptUpdate(sa->ctx, NULL, &l, aad, sizeof aad) != 1) return ESP_BAD_ICV;
  if (EVP_DecryptUpdate(sa->ctx, c, &l, c, (int)clen) != 1) return ESP_BAD_ICV;
  if (EVP_DecryptFinal_ex(sa->ctx, c + l, &l2) != 1) return ESP_BAD_ICV;
  window_mark(sa, seq);
  uint8_t pad = c[clen - 2], next = c[clen - 1];
  if ((size_t)pad + ESP_TRAILER > clen || next != ESP_NEXT_UDP) return ESP_BAD_TRAILER;
  *out_len = clen - ESP_TRAILER - pad;
  return ESP_OK;
}
