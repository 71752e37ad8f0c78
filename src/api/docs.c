/* api/docs.c — /docs, the human API reference (docs.h): a small HTML page per language and the
 * embedded Redoc bundle. The assets are stored gzip-compressed; a client that does not accept
 * gzip gets them inflated with zlib. */
#include "api/docs.h"
#include "api/api.h"
#include "web/web.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Redoc renders with styled-components (inline <style> elements) and builds its search index in
 * a worker made from a blob: URL; everything else is the dashboard's policy. Only this page. */
#define DOCS_CSP                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "                    \
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "          \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static enum dtm_lang page_lang(struct dtm_req *r)
{
    const char *q = dtm_http_query(r, "lang");
    if (q && strcmp(q, "en") == 0)
        return DTM_LANG_EN;
    if (q && strcmp(q, "vi") == 0)
        return DTM_LANG_VI;
    return r->lang; /* Accept-Language, default vi */
}

int dtm_api_docs_page(struct dtm_req *r)
{
    enum dtm_lang lang = page_lang(r);
    bool vi = lang == DTM_LANG_VI;
    struct dtm_buf b;
    int rc;
    dtm_buf_init(&b, 64 * 1024);
    dtm_buf_printf(
        &b,
        "<!doctype html>\n<html lang=\"%s\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>%s</title><link rel=\"icon\" href=\"/favicon.svg\"></head><body>"
        "<nav aria-label=\"%s\" style=\"padding:6px 12px;font:14px system-ui,sans-serif;"
        "border-bottom:1px solid #ddd\"><a href=\"/\">DTM</a> · <a href=\"/catalogue\">%s</a> · "
        "<a href=\"/api/openapi.json%s\">openapi.json</a> · "
        "<a href=\"/docs?lang=vi\" lang=\"vi\"%s>Tiếng Việt</a> | "
        "<a href=\"/docs?lang=en\" lang=\"en\"%s>English</a></nav>"
        "<main><div id=\"redoc\" data-spec=\"/api/openapi.json?lang=%s\"></div></main>"
        "<script src=\"/docs/redoc.standalone.js\"></script>"
        "<script src=\"/docs/init.js\"></script></body></html>\n",
        dtm_lang_code(lang), vi ? "DTM — Tài liệu API" : "DTM — API reference",
        vi ? "Ngôn ngữ" : "Language", vi ? "Danh mục dữ liệu" : "Data catalogue",
        vi ? "?lang=vi" : "", vi ? " aria-current=\"page\"" : "",
        vi ? "" : " aria-current=\"page\"", dtm_lang_code(lang));
    /* the policy is set before the answer (a rule of http/server.c never overrides it) */
    dtm_http_add_header(r, "Content-Security-Policy", DOCS_CSP);
    dtm_http_add_header(r, "Vary", "Accept-Language");
    dtm_http_add_header(r, "Cache-Control", "no-cache");
    rc = b.err ? b.err : dtm_http_reply(r, 200, "text/html; charset=utf-8", b.p, b.n);
    dtm_buf_free(&b);
    return rc;
}

int dtm_api_docs_asset(struct dtm_req *r)
{
    const struct dtm_web_asset *a = NULL;
    struct dtm_str ae = dtm_http_header(r, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    bool gz = false;
    char *etag;
    unsigned char *plain;
    uLongf n;
    int rc;
    for (const struct dtm_web_asset *x = dtm_docs_assets; x->path; x++)
        if (strcmp(x->path, r->path) == 0)
            a = x;
    if (!a)
        return dtm_http_problem(r, 404, "not_found", "Not found", "There is no such file.");
    /* a plain token check is enough here: "gzip" listed and not refused with q=0 */
    for (size_t i = 0; i + 4 <= ae.n; i++)
        if (memcmp(ae.p + i, "gzip", 4) == 0)
            gz = !(i + 8 <= ae.n && memcmp(ae.p + i + 4, ";q=0", 4) == 0 &&
                   (i + 8 == ae.n || ae.p[i + 8] != '.'));
    if (!(etag = dtm_arena_alloc(&r->arena, 48)))
        return DTM_ENOMEM;
    snprintf(etag, 48, "\"%s%s\"", a->etag, gz ? "-gz" : "");
    dtm_http_add_header(r, "ETag", etag);
    dtm_http_add_header(r, "Cache-Control", "no-cache");
    dtm_http_add_header(r, "Vary", "Accept-Encoding");
    {
        struct dtm_str inm = dtm_http_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
        size_t en = strlen(a->etag);
        for (size_t i = 0; i + en <= inm.n; i++)
            if (memcmp(inm.p + i, a->etag, en) == 0)
                return dtm_http_reply(r, 304, a->content_type, "", 0);
    }
    if (gz) {
        dtm_http_add_header(r, "Content-Encoding", "gzip");
        return dtm_http_reply(r, 200, a->content_type, (const char *)a->gz, a->gz_len);
    }
    if (!(plain = malloc(a->len ? a->len : 1)))
        return DTM_ENOMEM;
    {
        z_stream z;
        memset(&z, 0, sizeof(z));
        rc = inflateInit2(&z, 16 + MAX_WBITS) == Z_OK ? 0 : -1; /* 16: the gzip wrapper */
        if (!rc) {
            z.next_in = (Bytef *)a->gz;
            z.avail_in = (uInt)a->gz_len;
            z.next_out = plain;
            z.avail_out = (uInt)a->len;
            rc = inflate(&z, Z_FINISH) == Z_STREAM_END ? 0 : -1;
            n = z.total_out;
            inflateEnd(&z);
        }
    }
    if (rc || n != a->len) {
        free(plain);
        return DTM_EINTERNAL;
    }
    rc = dtm_http_reply(r, 200, a->content_type, (const char *)plain, a->len);
    free(plain);
    return rc;
}
