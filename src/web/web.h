/* web — the dashboard (issue 6, Annex I §5.1): a single-page app built from web/ by esbuild and
 * embedded in the binary at build time (scripts/embed_web.py → dtm_web_assets[]), so nothing is
 * loaded from outside at run time. This module answers the dashboard's paths: its pages (every
 * one is index.html; the app routes on the client) and its hashed assets, gzip-compressed when
 * the client accepts it, with strong ETags (304 on If-None-Match). */
#ifndef DTM_WEB_H
#define DTM_WEB_H

#include <stdbool.h>
#include <stddef.h>

struct dtm_req;

/* One embedded file (generated table, terminated by a NULL path). */
struct dtm_web_asset {
    const char *path;         /* URL path: "/index.html", "/assets/app-HASH.js" */
    const char *content_type; /* with its charset for text */
    const char *etag;         /* hex hash of the uncompressed content, without quotes */
    const unsigned char *gz;  /* the content, gzip-compressed */
    size_t gz_len;
    size_t len;     /* uncompressed size */
    bool immutable; /* a content-hashed name: cached for a year */
};

extern const struct dtm_web_asset dtm_web_assets[];

/* The asset at path (exact match); NULL when none. */
const struct dtm_web_asset *dtm_web_find(const char *path);

/* Route handlers (api/routes.c). dtm_web_page answers index.html for a page of the app (/,
 * /login, /systems, …); dtm_web_asset answers /assets/{file} or 404. */
int dtm_web_page(struct dtm_req *r);
int dtm_web_asset(struct dtm_req *r);

#endif
