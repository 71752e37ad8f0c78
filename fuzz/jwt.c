/* fuzz/jwt.c — libFuzzer driver for the Bearer token verifier (gate/jwt.c, T2.4): whatever a
 * client puts after "Authorization: Bearer" goes to dtm_token_verify against a real store with a
 * signing key and a client, the way the router calls it. An input starting with '!' gets a valid
 * header naming the installation's kid in front of the rest ("payload.signature"), so that the
 * claims and the signature reach libjwt too. Never a crash, an overflow or a leak — and never an
 * accepted token: nobody but the server holds the private key. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gate/gate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static struct dtm_conf conf;
static struct dtm_store *st;
static char header[256]; /* base64url of {"alg":"ES256","kid":KID} and a '.' */

static void cleanup(void)
{
    char cmd[128];
    if (st)
        st->ops->close(st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_jwt: cannot remove %s\n", dir);
}

static void b64url(const char *s, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), o = 0, i;
    for (i = 0; i + 2 < n; i += 3) {
        out[o++] = a[p[i] >> 2];
        out[o++] = a[(p[i] & 3) << 4 | p[i + 1] >> 4];
        out[o++] = a[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
        out[o++] = a[p[i + 2] & 63];
    }
    if (n - i == 1) {
        out[o++] = a[p[i] >> 2];
        out[o++] = a[(p[i] & 3) << 4];
    } else if (n - i == 2) {
        out[o++] = a[p[i] >> 2];
        out[o++] = a[(p[i] & 3) << 4 | p[i + 1] >> 4];
        out[o++] = a[(p[i + 1] & 15) << 2];
    }
    out[o] = '\0';
}

static void setup(void)
{
    char path[128], err[256], kid[DTM_ID_MAX], h[160], secret[DTM_SECRET_MAX];
    struct dtm_signing_key *k = malloc(sizeof(*k));
    struct dtm_system sys = {0};
    uint8_t hash[32];
    snprintf(dir, sizeof(dir), "/tmp/dtm-fuzz-jwt-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    dtm_log_set_level(DTM_LOG_ERROR);
    dtm_conf_defaults(&conf, dir);
    snprintf(path, sizeof(path), "%s/master.key", dir);
    if (!k || dtm_keyring_create(path, err, sizeof(err)) ||
        dtm_store_open(&conf, &st, err, sizeof(err)) || st->ops->migrate(st))
        abort();
    snprintf(sys.code, sizeof(sys.code), "FZ");
    snprintf(sys.name, sizeof(sys.name), "fuzz");
    snprintf(sys.role, sizeof(sys.role), "source");
    if (st->ops->system_add(st, &sys) || dtm_secret_new("dtmcs_", secret, sizeof(secret), hash) ||
        st->ops->client_add(st, "FZ", "FZ", hash, dtm_now_us()) ||
        dtm_signing_key_new(dtm_datakeys_get(&conf), dtm_now_us(), k) || st->ops->begin(st) ||
        dtm_signing_key_ensure(st, k, kid) || st->ops->commit(st))
        abort();
    free(k);
    snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    b64url(h, header);
    header[strlen(header) + 1] = '\0';
    header[strlen(header)] = '.';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dtm_token t;
    struct dtm_system sys;
    char *tok;
    size_t hn;
    if (!st)
        setup();
    hn = size && data[0] == '!' ? strlen(header) : 0;
    if (!(tok = malloc(hn + size + 1)))
        return 0;
    memcpy(tok, header, hn);
    memcpy(tok + hn, data + (hn ? 1 : 0), size - (hn ? 1 : 0));
    tok[hn + size - (hn ? 1 : 0)] = '\0';
    if (dtm_token_verify(st, &conf, (struct dtm_str){tok, hn + size - (hn ? 1 : 0)}, dtm_now_us(),
                         &t, &sys) == DTM_OK)
        abort(); /* a token the server never signed was accepted */
    free(tok);
    return 0;
}
