/* gate/totp.c — multi-factor authentication of people (T4.3): TOTP codes per RFC 6238 with
 * liboath (HMAC-SHA-1, 30 s steps, 6 digits — what authenticator apps use), the seed sealed
 * under the data keys of encryption at rest (gate/datakey.c), its otpauth:// URI and QR code
 * (libqrencode, as SVG or as a PNG written with zlib), and one-time recovery codes (stored as
 * hashes). */
#include "gate/gate.h"

#include <liboath/oath.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define STEP_S 30
#define DIGITS 6

/* ---- the sealed seed (T4.2: under the data keys, so a master-key rotation covers it) */

/* The associated data of a seed: bound to its account, so a seed moved to another one does not
 * open. */
static size_t seed_aad(const char *username, char *aad, size_t aadsz)
{
    int n = snprintf(aad, aadsz, "dtm totp seed\n%s", username);
    return n < 0 || (size_t)n >= aadsz ? 0 : (size_t)n;
}

int dtm_totp_seal(struct dtm_datakeys *dk, const char *username, const uint8_t *secret, size_t n,
                  uint8_t *out, size_t outsz, size_t *outlen)
{
    char aad[160];
    size_t an = seed_aad(username, aad, sizeof(aad));
    int rc;
    if (!an || n > 64 || outsz < n + DTM_SEAL_OVERHEAD)
        return DTM_ETOOBIG;
    if (!dk)
        return DTM_ENOMEM;
    if ((rc = dtm_datakey_seal_to(dk, aad, an, secret, n, out)))
        return rc;
    *outlen = n + DTM_SEAL_OVERHEAD;
    return DTM_OK;
}

int dtm_totp_open(struct dtm_datakeys *dk, const char *username, const uint8_t *sealed, size_t n,
                  uint8_t *secret, size_t secretsz, size_t *secretlen)
{
    char aad[160];
    size_t an = seed_aad(username, aad, sizeof(aad));
    int rc;
    if (!an || !dtm_datakey_sealed(sealed, n))
        return DTM_EMALFORMED;
    if (n - DTM_SEAL_OVERHEAD > secretsz)
        return DTM_ETOOBIG;
    if (!dk)
        return DTM_ENOMEM;
    if ((rc = dtm_datakey_open_to(dk, aad, an, sealed, n, secret))) {
        OPENSSL_cleanse(secret, secretsz);
        return rc == DTM_EMALFORMED ? DTM_EAUTH : rc;
    }
    *secretlen = n - DTM_SEAL_OVERHEAD;
    return DTM_OK;
}

int dtm_totp_secret_new(uint8_t secret[DTM_TOTP_SECRET_BYTES])
{
    return dtm_random(secret, DTM_TOTP_SECRET_BYTES);
}

/* ---- codes */

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static int oath_ready = -1;

static void oath_start(void)
{
    oath_ready = oath_init();
}

int dtm_totp_code(const uint8_t *secret, size_t n, int64_t step, char out[8])
{
    pthread_once(&oath_once, oath_start);
    if (oath_ready != OATH_OK || step < 0)
        return DTM_EINTERNAL;
    if (oath_totp_generate((const char *)secret, n, (time_t)(step * STEP_S), STEP_S,
                           OATH_TOTP_DEFAULT_START_TIME, DIGITS, out) != OATH_OK)
        return DTM_EINTERNAL;
    return DTM_OK;
}

int dtm_totp_check(const uint8_t *secret, size_t n, struct dtm_str code, int64_t now_s,
                   int64_t *step)
{
    char want[8];
    int64_t t = now_s / STEP_S;
    int found = 0;
    int64_t at = 0;
    code = dtm_str_trim(code);
    if (code.n != DIGITS)
        return DTM_EAUTH;
    for (size_t i = 0; i < code.n; i++)
        if (code.p[i] < '0' || code.p[i] > '9')
            return DTM_EAUTH;
    /* every candidate is computed and compared, whichever matches */
    for (int64_t d = -1; d <= 1; d++) {
        if (dtm_totp_code(secret, n, t + d, want))
            return DTM_EINTERNAL;
        if (dtm_ct_equal(want, code.p, DIGITS) && !found) {
            found = 1;
            at = t + d;
        }
    }
    OPENSSL_cleanse(want, sizeof(want));
    if (!found)
        return DTM_EAUTH;
    *step = at;
    return DTM_OK;
}

/* RFC 4648 base32, upper case, without padding */
int dtm_totp_base32(const uint8_t *secret, size_t n, char *out, size_t outsz)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    size_t o = 0, bits = 0;
    uint32_t acc = 0;
    if (outsz < (n * 8 + 4) / 5 + 1)
        return DTM_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | secret[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = a[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits)
        out[o++] = a[(acc << (5 - bits)) & 31];
    out[o] = '\0';
    return DTM_OK;
}

void dtm_totp_uri(const char *username, const char *b32, struct dtm_buf *out)
{
    /* user names are [a-z0-9._-] only: nothing to escape */
    dtm_buf_printf(out,
                   "otpauth://totp/DTM:%s?secret=%s&issuer=DTM&algorithm=SHA1&digits=%d&period=%d",
                   username, b32, DIGITS, STEP_S);
}

/* ---- QR codes */

#define QUIET 4 /* modules of white border */

static QRcode *qr_encode(const char *text)
{
    return QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
}

int dtm_qr_svg(const char *text, struct dtm_buf *out)
{
    QRcode *q = qr_encode(text);
    int w;
    if (!q)
        return DTM_EINVAL;
    w = q->width + 2 * QUIET;
    dtm_buf_printf(out,
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
                   "height=\"%d\" shape-rendering=\"crispEdges\"><rect width=\"%d\" "
                   "height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
                   w, w, w * 6, w * 6, w, w);
    for (int y = 0; y < q->width; y++)
        for (int x = 0; x < q->width; x++)
            if (q->data[y * q->width + x] & 1)
                dtm_buf_printf(out, "M%d %dh1v1h-1z", x + QUIET, y + QUIET);
    dtm_buf_addc(out, "\"/></svg>");
    QRcode_free(q);
    return out->err;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void png_chunk(struct dtm_buf *out, const char *type, const uint8_t *data, size_t n)
{
    uint8_t hdr[8], crc[4];
    uLong c = crc32(0L, Z_NULL, 0);
    put_be32(hdr, (uint32_t)n);
    memcpy(hdr + 4, type, 4);
    dtm_buf_add(out, hdr, 8);
    if (n)
        dtm_buf_add(out, data, n);
    c = crc32(c, (const Bytef *)type, 4);
    if (n)
        c = crc32(c, data, (uInt)n);
    put_be32(crc, (uint32_t)c);
    dtm_buf_add(out, crc, 4);
}

int dtm_qr_png(const char *text, struct dtm_buf *out)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const int scale = 6;
    QRcode *q = qr_encode(text);
    uint8_t ihdr[13], *raw = NULL, *z = NULL;
    size_t side, rawlen;
    uLongf zlen;
    int rc = DTM_OK;
    if (!q)
        return DTM_EINVAL;
    side = (size_t)(q->width + 2 * QUIET) * scale;
    rawlen = side * (side + 1);
    raw = malloc(rawlen);
    zlen = compressBound((uLong)rawlen);
    z = malloc(zlen);
    if (!raw || !z) {
        rc = DTM_ENOMEM;
        goto out;
    }
    for (size_t y = 0; y < side; y++) {
        uint8_t *row = raw + y * (side + 1);
        row[0] = 0; /* filter: none */
        for (size_t x = 0; x < side; x++) {
            long mx = (long)(x / (size_t)scale) - QUIET, my = (long)(y / (size_t)scale) - QUIET;
            bool dark = mx >= 0 && my >= 0 && mx < q->width && my < q->width &&
                        (q->data[my * q->width + mx] & 1);
            row[1 + x] = dark ? 0 : 255;
        }
    }
    if (compress2(z, &zlen, raw, (uLong)rawlen, 9) != Z_OK) {
        rc = DTM_EINTERNAL;
        goto out;
    }
    put_be32(ihdr, (uint32_t)side);
    put_be32(ihdr + 4, (uint32_t)side);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 0;  /* grey-scale */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    dtm_buf_add(out, sig, sizeof(sig));
    png_chunk(out, "IHDR", ihdr, sizeof(ihdr));
    png_chunk(out, "IDAT", z, zlen);
    png_chunk(out, "IEND", NULL, 0);
    rc = out->err;
out:
    free(raw);
    free(z);
    QRcode_free(q);
    return rc;
}

/* ---- recovery codes */

static const char rc_alphabet[] = "abcdefghjkmnpqrstvwxyz0123456789"; /* 32: no i, l, o, u */
#define RC_CHARS 20                                                   /* 100 bits */

int dtm_recovery_new(char (*codes)[DTM_RECOVERY_CODE_MAX], uint8_t (*hashes)[32], size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint8_t r[RC_CHARS];
        size_t o = 0;
        if (dtm_random(r, sizeof(r)))
            return DTM_EIO;
        for (size_t i = 0; i < RC_CHARS; i++) {
            if (i && i % 5 == 0)
                codes[k][o++] = '-';
            codes[k][o++] = rc_alphabet[r[i] & 31];
        }
        codes[k][o] = '\0';
        OPENSSL_cleanse(r, sizeof(r));
        if (!dtm_recovery_hash(dtm_str_c(codes[k]), hashes[k]))
            return DTM_EINTERNAL;
    }
    return DTM_OK;
}

bool dtm_recovery_hash(struct dtm_str code, uint8_t hash[32])
{
    char norm[40] = "dtm-recovery-v1:";
    size_t o = 16;
    for (size_t i = 0; i < code.n && i < 64; i++) {
        char c = code.p[i];
        if (c == '-' || c == ' ')
            continue;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!strchr(rc_alphabet, c) || c == '\0' || o - 16 >= RC_CHARS)
            return false;
        norm[o++] = c;
    }
    if (o - 16 != RC_CHARS || code.n > 64)
        return false;
    dtm_sha256(norm, o, hash);
    OPENSSL_cleanse(norm, sizeof(norm));
    return true;
}
