/*
 * AES-GCM (NIST SP 800-38D) for ESP (RFC 4106), one key per context, sealing and
 * opening in place with a 12-byte nonce, AAD and a 16-byte tag.
 *
 * OpenSSL 3 does the work: the cipher is fetched through EVP (EVP_CIPHER_fetch), and a
 * context calls the functions of the implementation EVP itself would dispatch to (its
 * provider's table, provider-cipher(7)). That skips ~100 ns of EVP bookkeeping per
 * packet of ~600 (OpenSSL 3.0 looks the IV length up as a parameter, by name, on every
 * re-initialisation); the provider's code, and so the AES-NI/CLMUL loop, is the same.
 */
#ifndef SWARMNET_ESP_GCM_H
#define SWARMNET_ESP_GCM_H

#include <stddef.h>
#include <stdint.h>

#define ESP_GCM_NONCE 12
#define ESP_GCM_TAG 16

struct esp_gcm;

/* A context for encrypting (enc 1) or decrypting (enc 0) with `key` (16 or 32 bytes).
 * NULL on failure (no memory, no such cipher, an implementation without those calls). */
struct esp_gcm *esp_gcm_new(const uint8_t *key, size_t key_len, int enc);
void esp_gcm_free(struct esp_gcm *g);

/* Encrypts buf[0..len) in place and writes the tag. 0, or -1 when the cipher failed. */
int esp_gcm_seal(struct esp_gcm *g, const uint8_t nonce[ESP_GCM_NONCE], const uint8_t *aad, size_t aad_len, uint8_t *buf, size_t len, uint8_t tag[ESP_GCM_TAG]);

/* Decrypts buf[0..len) in place and checks the tag: 0 when it holds, -1 otherwise (the
 * buffer then holds garbage that must not be used). */
int esp_gcm_open(struct esp_gcm *g, const uint8_t nonce[ESP_GCM_NONCE], const uint8_t *aad, size_t aad_len, uint8_t *buf, size_t len, const uint8_t tag[ESP_GCM_TAG]);

#endif
