/* web/web.c — serves the embedded dashboard (web.h). Each asset is stored gzip-compressed once,
 * at build time: a client that accepts gzip gets those bytes as they are (Content-Encoding:
 * gzip); another gets them inflated with zlib. ETags are strong and per representation
 * ("HASH" for the identity form, "HASH-gz" for the gzip one); If-None-Match with either gives
 * 304. Hashed asset names never change content, so they are cached for a year (immutable);
 * index.html is revalidated on every load (no-cache), so a new build is picked up at once. The
 * page's Content-Security-Policy (script and style from 'self' only) is set by http/server.c. */
#include "web/web.h"
#include "http/http.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define CACHE_IMMUTABLE "public, max-age=31536000, immutable"
#define CACHE_REVALIDATE "no-cache"

const struct dtm_web_asset *dtm_web_find(const char *path)
{
    for (const struct dtm_web_asset *a = dtm_web_assets; a->path; a++)
        if (strcmp(a->path, path) == 0)
            return a;
    return NULL;
}

/* Whether the comma-separated list hdr holds token (ASCII case-insensitive) with a q-value
 * other than 0 (RFC 9110 §12.5.3: "gzip;q=0" refuses gzip). */
static bool accepts(struct dtm_str hdr, const char *token)
{
    size_t tn = strlen(token);
    while (hdr.n) {
        const char *comma = memchr(hdr.p, ',', hdr.n);
        struct dtm_str item = {hdr.p, comma ? (size_t)(comma - hdr.p) : hdr.n};
        const char *semi = memchr(item.p, ';', item.n);
        struct dtm_str name =
            dtm_str_trim((struct dtm_str){item.p, semi ? (size_t)(semi - item.p) : item.n});
        hdr = comma ? (struct dtm_str){comma + 1, hdr.n - item.n - 1} : DTM_STR_NULL;
        if (name.n != tn || strncasecmp(name.p, token, tn) != 0)
            continue;
        if (semi) {
            struct dtm_str q =
                dtm_str_trim((struct dtm_str){semi + 1, item.n - (size_t)(semi - item.p) - 1});
            /* q=0, q=0.0, q=0.00 … */
            if (q.n >= 3 && (q.p[0] == 'q' || q.p[0] == 'Q') && q.p[1] == '=' && q.p[2] == '0') {
                size_t i = 3;
                if (i < q.n && q.p[i] == '.')
                    for (i++; i < q.n && q.p[i] == '0'; i++)
                        ;
                if (i == q.n)
                    return false;
            }
        }
        return true;
    }
    return false;
}

/* Whether If-None-Match names this asset (either representation's tag, or "*"). Entity tags
 * are compared weakly as RFC 9110 §13.1.2 asks for If-None-Match. */
static bool not_modified(struct dtm_str inm, const char *etag)
{
    size_t en = strlen(etag);
    while (inm.n) {
        const char *comma = memchr(inm.p, ',', inm.n);
        struct dtm_str tag =
            dtm_str_trim((struct dtm_str){inm.p, comma ? (size_t)(comma - inm.p) : inm.n});
        inm =
            comma ? (struct dtm_str){comma + 1, inm.n - (size_t)(comma - inm.p) - 1} : DTM_STR_NULL;
        if (tag.n == 1 && tag.p[0] == '*')
            return true;
        if (tag.n >= 2 && tag.p[0] == 'W' && tag.p[1] == '/')
            tag = (struct dtm_str){tag.p + 2, tag.n - 2};
        if (tag.n < 2 || tag.p[0] != '"' || tag.p[tag.n - 1] != '"')
            continue;
        tag = (struct dtm_str){tag.p + 1, tag.n - 2};
        if ((tag.n == en || (tag.n == en + 3 && memcmp(tag.p + en, "-gz", 3) == 0)) &&
            memcmp(tag.p, etag, en) == 0)
            return true;
    }
    return false;
}

/* Inflates a's gzip bytes into a new buffer of a->len bytes (the caller frees it); NULL on
 * failure (a build that embedded broken data: a bug of ours). */
static unsigned char *inflate_asset(const struct dtm_web_asset *a)
{
    z_stream z;
    unsigned char *out = malloc(a->len ? a->len : 1);
    int zrc;
    if (!out)
        return NULL;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) { /* 16: the gzip wrapper */
        free(out);
        return NULL;
    }
    z.next_in = (Bytef *)a->gz;
    z.avail_in = (uInt)a->gz_len;
    z.next_out = out;
    z.avail_out = (uInt)a->len;
    zrc = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    if (zrc != Z_STREAM_END || z.total_out != a->len) {
        free(out);
        return NULL;
    }
    return out;
}

static int serve(struct dtm_req *r, const struct dtm_web_asset *a)
{
    bool gz = accepts(dtm_http_header(r, MHD_HTTP_HEADER_ACCEPT_ENCODING), "gzip");
    char *etag = dtm_arena_alloc(&r->arena, strlen(a->etag) + 8);
    unsigned char *plain;
    int rc;
    if (!etag)
        return DTM_ENOMEM;
    /* the representation sent: its own strong tag */
    snprintf(etag, strlen(a->etag) + 8, "\"%s%s\"", a->etag, gz ? "-gz" : "");
    dtm_http_add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                        a->immutable ? CACHE_IMMUTABLE : CACHE_REVALIDATE);
    dtm_http_add_header(r, MHD_HTTP_HEADER_ETAG, etag);
    dtm_http_add_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    if (not_modified(dtm_http_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH), a->etag))
        return dtm_http_reply(r, 304, a->content_type, "", 0);
    if (gz) {
        dtm_http_add_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
        return dtm_http_reply(r, 200, a->content_type, (const char *)a->gz, a->gz_len);
    }
    if (!(plain = inflate_asset(a))) {
        dtm_log(DTM_LOG_ERROR, "an embedded dashboard file cannot be inflated", NULL);
        return DTM_EINTERNAL;
    }
    rc = dtm_http_reply(r, 200, a->content_type, (const char *)plain, a->len);
    free(plain);
    return rc;
}

int dtm_web_page(struct dtm_req *r)
{
    const struct dtm_web_asset *a = dtm_web_find("/index.html");
    if (!a) /* embed_web.py refuses to generate a table without it */
        return DTM_EINTERNAL;
    return serve(r, a);
}

int dtm_web_asset(struct dtm_req *r)
{
    const struct dtm_web_asset *a = dtm_web_find(r->path);
    if (!a)
        return dtm_http_problem(r, 404, "not_found", "Not found", "No resource at %s.", r->path);
    return serve(r, a);
}
