/*
 * AES-GCM through the provider implementation EVP dispatches to (see esp_gcm.h).
 *
 * Per packet, as EVP_EncryptInit_ex/Update/Final would do it minus their checks:
 *   init(nonce) -> update(AAD) -> update(data, in place) -> final -> tag (get/set param)
 * The key schedule is made once, by the first init; later inits only set the nonce.
 */
#include "esp_gcm.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <stdlib.h>
#include <string.h>

struct esp_gcm {
  EVP_CIPHER *cipher; /* keeps the provider, hence its functions, loaded */
  void *algctx;
  int enc;
  OSSL_FUNC_cipher_freectx_fn *freectx;
  OSSL_FUNC_cipher_encrypt_init_fn *init; /* einit or dinit: one signature */
  OSSL_FUNC_cipher_update_fn *update;
  OSSL_FUNC_cipher_final_fn *final;
  OSSL_FUNC_cipher_get_ctx_params_fn *get_params;
  OSSL_FUNC_cipher_set_ctx_params_fn *set_params;
};

/* Whether one of the ':'-separated `names` of an implementation is `cipher`'s. */
static int names_match(const EVP_CIPHER *cipher, const char *names) {
  char name[64];
  for (const char *p = names; *p;) {
    size_t n = strcspn(p, ":");
    if (n < sizeof name) {
      memcpy(name, p, n);
      name[n] = 0;
      if (EVP_CIPHER_is_a(cipher, name)) return 1;
    }
    p += n;
    if (*p == ':') p++;
  }
  return 0;
}

/* Fills g's calls from the dispatch table of `cipher`'s implementation in its provider;
 * returns the provider-side newctx, or NULL when something is missing. */
static OSSL_FUNC_cipher_newctx_fn *resolve(struct esp_gcm *g, const OSSL_PROVIDER *prov) {
  int no_cache = 0;
  const OSSL_ALGORITHM *algs = OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_cache);
  OSSL_FUNC_cipher_newctx_fn *newctx = NULL;
  for (const OSSL_ALGORITHM *a = algs; a && a->algorithm_names; a++) {
    if (!names_match(g->cipher, a->algorithm_names)) continue;
    for (const OSSL_DISPATCH *d = a->implementation; d->function_id; d++) {
      switch (d->function_id) {
        case OSSL_FUNC_CIPHER_NEWCTX: newctx = OSSL_FUNC_cipher_newctx(d); break;
        case OSSL_FUNC_CIPHER_FREECTX: g->freectx = OSSL_FUNC_cipher_freectx(d); break;
        case OSSL_FUNC_CIPHER_ENCRYPT_INIT: if (g->enc) g->init = OSSL_FUNC_cipher_encrypt_init(d); break;
        case OSSL_FUNC_CIPHER_DECRYPT_INIT: if (!g->enc) g->init = OSSL_FUNC_cipher_decrypt_init(d); break;
        case OSSL_FUNC_CIPHER_UPDATE: g->update = OSSL_FUNC_cipher_update(d); break;
        case OSSL_FUNC_CIPHER_FINAL: g->final = OSSL_FUNC_cipher_final(d); break;
        case OSSL_FUNC_CIPHER_GET_CTX_PARAMS: g->get_params = OSSL_FUNC_cipher_get_ctx_params(d); break;
        case OSSL_FUNC_CIPHER_SET_CTX_PARAMS: g->set_params = OSSL_FUNC_cipher_set_ctx_params(d); break;
        default: break;
      }
    }
    break;
  }
  if (algs) OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_CIPHER, algs);
  int complete = g->freectx && g->init && g->update && g->final && g->get_params && g->set_params;
  return complete ? newctx : NULL;
}

struct esp_gcm *esp_gcm_new(const uint8_t *key, size_t key_len, int enc) {
  const char *name = key_len == 16 ? "AES-128-GCM" : key_len == 32 ? "AES-256-GCM" : NULL;
  if (!name) return NULL;
  struct esp_gcm *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->enc = enc;
  g->cipher = EVP_CIPHER_fetch(NULL, name, NULL);
  const OSSL_PROVIDER *prov = g->cipher ? EVP_CIPHER_get0_provider(g->cipher) : NULL;
  OSSL_FUNC_cipher_newctx_fn *newctx = prov ? resolve(g, prov) : NULL;
  if (newctx) g->algctx = newctx(OSSL_PROVIDER_get0_provider_ctx(prov));
  /* The key schedule, once; GCM's default nonce is the 12 bytes RFC 4106 section 4 uses. */
  if (!g->algctx || g->init(g->algctx, key, key_len, NULL, 0, NULL) != 1) {
    esp_gcm_free(g);
    return NULL;
  }
  return g;
}

void esp_gcm_free(struct esp_gcm *g) {
  if (!g) return;
  if (g->algctx) g->freectx(g->algctx);
  EVP_CIPHER_free(g->cipher);
  free(g);
}

/* Nonce, AAD, then the data in place; the caller finishes with the tag. */
static int gcm_run(struct esp_gcm *g, const uint8_t *nonce, const uint8_t *aad, size_t aad_len, uint8_t *buf, size_t len) {
  size_t l;
  if (g->init(g->algctx, NULL, 0, nonce, ESP_GCM_NONCE, NULL) != 1) return -1;
  if (g->update(g->algctx, NULL, &l, aad_len, aad, aad_len) != 1) return -1;
  if (!len) return 0;
  /* GCM is a stream mode: every byte comes out of the one call. */
  return g->update(g->algctx, buf, &l, len, buf, len) == 1 && l == len ? 0 : -1;
}

int esp_gcm_seal(struct esp_gcm *g, const uint8_t nonce[ESP_GCM_NONCE], const uint8_t *aad, size_t aad_len, uint8_t *buf, size_t len, uint8_t tag[ESP_GCM_TAG]) {
  size_t l;
  uint8_t none[1];
  if (gcm_run(g, nonce, aad, aad_len, buf, len) < 0 || g->final(g->algctx, none, &l, 0) != 1) return -1;
  OSSL_PARAM p[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, ESP_GCM_TAG), OSSL_PARAM_construct_end()};
  return g->get_params(g->algctx, p) == 1 ? 0 : -1;
}

int esp_gcm_open(struct esp_gcm *g, const uint8_t nonce[ESP_GCM_NONCE], const uint8_t *aad, size_t aad_len, uint8_t *buf, size_t len, const uint8_t tag[ESP_GCM_TAG]) {
  size_t l;
  uint8_t none[1];
  if (gcm_run(g, nonce, aad, aad_len, buf, len) < 0) return -1;
  OSSL_PARAM p[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)tag, ESP_GCM_TAG), OSSL_PARAM_construct_end()};
  /* final compares the computed tag with the one set (constant time, in the provider). */
  if (g->set_params(g->algctx, p) != 1) return -1;
  return g->final(g->algctx, none, &l, 0) == 1 ? 0 : -1;
}
