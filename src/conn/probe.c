/* conn/probe.c — health probes (CONTRACT §5): every [systems] probe_interval seconds, a GET of
 * each registered probe URL with libcurl, all of a round at once (in waves of PROBE_WAVE), each
 * bounded by [systems] probe_timeout. A 2xx answer within the timeout passes; anything else
 * (another status, a timeout, a refused connection, a bad certificate) fails, with a short
 * reason. Only http and https, redirects included. Results go to the systems table. A probe
 * URL may carry a secret (user:password@, a token in the query): it is never logged. */
#include "conn/conn_impl.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US 1000000LL
#define PROBE_WAVE 64              /* probes in flight at once */
#define PROBE_BODY_MAX (64 * 1024) /* bytes of an answer read; the rest is not waited for */

struct probe_run {
    struct dtm_probe p; /* the system's probe: url in, result out */
    bool was_ok, was_probed;
    size_t body;
    CURL *h;
};

struct probe_list {
    struct probe_run *r;
    size_t n, cap;
};

static int collect(void *ctx, const struct dtm_probe *p)
{
    struct probe_list *x = ctx;
    if (dtm_array_reserve(&x->r, x->n, &x->cap, sizeof(*x->r)))
        return DTM_ENOMEM;
    memset(&x->r[x->n], 0, sizeof(x->r[0]));
    x->r[x->n].p = *p;
    x->r[x->n].was_ok = p->ok;
    x->r[x->n].was_probed = p->at != 0;
    x->n++;
    return DTM_OK;
}

/* The answer's body is not needed: read a little of it (some servers wait for the reader),
 * then stop. */
static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    struct probe_run *r = ctx;
    (void)p;
    r->body += size * n;
    return r->body > PROBE_BODY_MAX ? 0 : size * n;
}

static CURL *easy(struct probe_run *r, int64_t timeout_ms)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, r->p.url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "dtm-probe/" DTM_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    return h;
}

static void result(struct probe_run *r, CURLcode cc, int64_t now)
{
    long status = 0;
    curl_off_t us = 0;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->h, CURLINFO_TOTAL_TIME_T, &us);
    r->p.at = now;
    r->p.ms = (int64_t)us / 1000;
    r->p.error[0] = '\0';
    /* a 2xx whose body we stopped reading passed */
    r->p.ok = status >= 200 && status < 300 && (cc == CURLE_OK || cc == CURLE_WRITE_ERROR);
    if (r->p.ok)
        return;
    if (cc != CURLE_OK && cc != CURLE_WRITE_ERROR)
        snprintf(r->p.error, sizeof(r->p.error), "%s", curl_easy_strerror(cc));
    else
        snprintf(r->p.error, sizeof(r->p.error), "HTTP %ld", status);
}

static bool stopping(struct dtm_conn *c)
{
    bool s;
    pthread_mutex_lock(&c->lock);
    s = c->stopping;
    pthread_mutex_unlock(&c->lock);
    return s;
}

/* Probes r[0..n) at once. Returns false when stopped midway (results not to be kept). */
static bool wave(struct dtm_conn *c, CURLM *m, struct probe_run *r, size_t n, int64_t timeout_ms)
{
    int running = 0, left;
    CURLMsg *msg;
    bool stop = false;
    for (size_t i = 0; i < n; i++) {
        if (!(r[i].h = easy(&r[i], timeout_ms)) || curl_multi_add_handle(m, r[i].h) != CURLM_OK) {
            r[i].p.at = dtm_now_us();
            r[i].p.ok = false;
            snprintf(r[i].p.error, sizeof(r[i].p.error), "cannot start the probe");
            if (r[i].h)
                curl_easy_cleanup(r[i].h);
            r[i].h = NULL;
        }
    }
    do {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(m, NULL, 0, 200, NULL); /* look at `stopping` 5 times a second */
        stop = stopping(c);
    } while (running && !stop);
    while (!stop && (msg = curl_multi_info_read(m, &left))) {
        char *priv = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv)
            result((struct probe_run *)(void *)priv, msg->data.result, dtm_now_us());
    }
    for (size_t i = 0; i < n; i++)
        if (r[i].h) {
            curl_multi_remove_handle(m, r[i].h);
            curl_easy_cleanup(r[i].h);
            r[i].h = NULL;
        }
    return !stop;
}

static void log_flip(const struct probe_run *r)
{
    struct dtm_buf f;
    if (r->was_probed && r->was_ok == r->p.ok)
        return; /* only changes (and the first result) */
    dtm_buf_init(&f, 1024);
    dtm_buf_addc(&f, "\"system\":");
    dtm_buf_json_strc(&f, r->p.system_code);
    dtm_buf_printf(&f, ",\"ok\":%s,\"ms\":%lld,\"error\":", r->p.ok ? "true" : "false",
                   (long long)r->p.ms);
    dtm_buf_json_strc(&f, r->p.error);
    dtm_log(r->p.ok ? DTM_LOG_INFO : DTM_LOG_WARN, "health probe", f.err ? NULL : f.p);
    dtm_buf_free(&f);
}

/* One round: every probe, then the results in one transaction. */
static int round_all(struct dtm_conn *c, struct dtm_store *st, CURLM *m)
{
    const struct dtm_conf *conf = *c->conf;
    struct probe_list l = {0};
    int rc = st->ops->probe_list(st, collect, &l);
    for (size_t i = 0; rc == DTM_OK && i < l.n; i += PROBE_WAVE)
        if (!wave(c, m, l.r + i, DTM_MIN((size_t)PROBE_WAVE, l.n - i), conf->probe_timeout * 1000))
            goto out; /* stopping */
    if (rc || l.n == 0)
        goto out;
    if ((rc = st->ops->begin(st)))
        goto out;
    for (size_t i = 0; i < l.n && rc == DTM_OK; i++)
        if (l.r[i].p.at)
            rc = st->ops->probe_put(st, &l.r[i].p);
    if (rc == DTM_OK)
        rc = st->ops->commit(st);
    if (rc) {
        st->ops->rollback(st);
        goto out;
    }
    for (size_t i = 0; i < l.n; i++)
        if (l.r[i].p.at)
            log_flip(&l.r[i]);
out:
    free(l.r);
    return rc;
}

void *dtm_conn_probe_run(void *arg)
{
    struct dtm_conn *c = arg;
    struct dtm_store *st = NULL;
    CURLM *m = curl_multi_init();
    char err[256];
    int last_rc = DTM_OK;
    if (!m || dtm_store_open(*c->conf, &st, err, sizeof(err))) {
        dtm_log(DTM_LOG_ERROR, "health prober cannot start", NULL);
        if (m)
            curl_multi_cleanup(m);
        return NULL;
    }
    pthread_mutex_lock(&c->lock);
    while (!c->stopping) {
        int64_t next = dtm_mono_us() + (*c->conf)->probe_interval * US;
        int rc;
        pthread_mutex_unlock(&c->lock);
        rc = round_all(c, st, m);
        if (rc && rc != last_rc)
            dtm_logf(DTM_LOG_WARN, "health probe round failed", "\"error\":\"%s\"",
                     dtm_rc_name(rc));
        last_rc = rc;
        pthread_mutex_lock(&c->lock);
        dtm_conn_wait(c, next);
    }
    pthread_mutex_unlock(&c->lock);
    curl_multi_cleanup(m);
    st->ops->close(st);
    return NULL;
}
