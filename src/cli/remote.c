/* cli/remote.c — `dtm import --url URL --key KEY FILE…`: each file is streamed to the server's
 * POST /api/v1/batches (a .gz file as it is, with Content-Encoding: gzip), then the batch is
 * followed with GET /api/v1/batches/{id} until it ends (the same progress line as a local
 * import), and its rejected rows are fetched as CSV into FILE.rejected.csv. HTTP is libcurl's;
 * $DTM_CACERT names a CA file for a server with a self-signed certificate. */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct call {
    CURL *h;
    const char *base, *key;
    struct dtm_buf body; /* the answer */
    long status;
};

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
    struct dtm_buf *b = ctx;
    return dtm_buf_add(b, p, size * n) ? 0 : size * n;
}

static size_t to_file(char *p, size_t size, size_t n, void *ctx)
{
    return fwrite(p, size, n, ctx);
}

/* One request; the answer goes to c->body (or to `sink`). */
static int request(struct call *c, const char *method, const char *path, const char *accept,
                   FILE *upload, curl_off_t upload_size, const char *ctype, bool gzip, FILE *sink)
{
    struct curl_slist *hd = NULL;
    char url[2048], h[256];
    CURLcode cr;
    curl_easy_reset(c->h);
    dtm_buf_reset(&c->body);
    snprintf(url, sizeof(url), "%s%s", c->base, path);
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    snprintf(h, sizeof(h), "X-API-Key: %s", c->key);
    hd = curl_slist_append(hd, h);
    snprintf(h, sizeof(h), "Accept: %s", accept);
    hd = curl_slist_append(hd, h);
    hd = curl_slist_append(hd, "Accept-Language: en");
    if (upload) {
        snprintf(h, sizeof(h), "Content-Type: %s", ctype);
        hd = curl_slist_append(hd, h);
        if (gzip)
            hd = curl_slist_append(hd, "Content-Encoding: gzip");
        if (upload_size < 0)
            hd = curl_slist_append(hd, "Transfer-Encoding: chunked");
        curl_easy_setopt(c->h, CURLOPT_POST, 1L);
        curl_easy_setopt(c->h, CURLOPT_READDATA, upload);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, upload_size);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, sink ? to_file : collect);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, sink ? (void *)sink : (void *)&c->body);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT, 10L);
    if (getenv("DTM_CACERT"))
        curl_easy_setopt(c->h, CURLOPT_CAINFO, getenv("DTM_CACERT"));
    cr = curl_easy_perform(c->h);
    curl_slist_free_all(hd);
    if (cr != CURLE_OK) {
        dtm_cli_error("%s %s: %s", method, url, curl_easy_strerror(cr));
        return DTM_EIO;
    }
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
    return DTM_OK;
}

/* The detail of a problem answer, for an error sentence. */
static void say_problem(struct call *c, const char *what)
{
    cJSON *j = cJSON_ParseWithLength(c->body.p ? c->body.p : "", c->body.n);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "detail");
    dtm_cli_error("%s: HTTP %ld%s%s", what, c->status, cJSON_IsString(d) ? ": " : "",
                  cJSON_IsString(d) ? d->valuestring : "");
    cJSON_Delete(j);
}

static int64_t num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static const char *content_type(const char *format)
{
    return !strcmp(format, "json")  ? "application/json"
           : !strcmp(format, "xml") ? "application/xml"
           : !strcmp(format, "csv") ? "text/csv"
                                    : "application/x-ndjson";
}

static int one_file(struct call *c, const char *dataset, const char *format, bool masked,
                    const char *rejected, const char *path, int64_t sum[5])
{
    bool gz, is_stdin = strcmp(path, "-") == 0, tty = isatty(2);
    const char *fmt = dtm_cli_import_format(path, format, &gz), *ct;
    FILE *f;
    struct stat sb;
    char q[512], id[DTM_ID_MAX] = "", rpath[DTM_PATH_MAX];
    cJSON *j = NULL;
    int64_t t0 = dtm_mono_us(), last = 0;
    int rc;

    if (!fmt)
        return DTM_EXIT_USAGE;
    ct = content_type(fmt);
    f = is_stdin ? stdin : fopen(path, "rb");
    if (!f || fstat(fileno(f), &sb) != 0) {
        dtm_cli_error("cannot read %s: %s", path, strerror(errno));
        return DTM_EXIT_FAIL;
    }
    {
        char *esc = curl_easy_escape(c->h, dataset, 0);
        snprintf(q, sizeof(q), "/api/v1/batches?dataset=%s%s", esc ? esc : "",
                 masked ? "&mode=masked" : "");
        curl_free(esc);
    }
    rc = request(c, "POST", q, "application/json", f, S_ISREG(sb.st_mode) ? sb.st_size : -1, ct, gz,
                 NULL);
    if (!is_stdin)
        fclose(f);
    if (rc)
        return DTM_EXIT_FAIL;
    if (c->status != 202) {
        say_problem(c, path);
        return DTM_EXIT_FAIL;
    }
    j = cJSON_ParseWithLength(c->body.p, c->body.n);
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "id")))
        snprintf(id, sizeof(id), "%s", cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring);
    cJSON_Delete(j);
    if (!id[0]) {
        dtm_cli_error("%s: the server's answer has no batch id", path);
        return DTM_EXIT_FAIL;
    }
    for (;;) {
        const cJSON *st;
        snprintf(q, sizeof(q), "/api/v1/batches/%s", id);
        if (request(c, "GET", q, "application/json", NULL, 0, NULL, false, NULL))
            return DTM_EXIT_FAIL;
        if (c->status != 200) {
            say_problem(c, path);
            return DTM_EXIT_FAIL;
        }
        j = cJSON_ParseWithLength(c->body.p, c->body.n);
        st = cJSON_GetObjectItemCaseSensitive(j, "status");
        if (!cJSON_IsString(st)) {
            cJSON_Delete(j);
            dtm_cli_error("%s: unexpected answer from the server", path);
            return DTM_EXIT_FAIL;
        }
        bool final = strcmp(st->valuestring, "queued") && strcmp(st->valuestring, "running");
        int64_t now = dtm_mono_us();
        if (final || now - last >= (tty ? 500000 : 5000000)) {
            const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "progress");
            double secs = (double)(now - t0) / 1e6;
            last = now;
            fprintf(stderr,
                    tty ? "\r%s: %-8s %5.1f%%  %lld rows  %.0f rows/s  rejected %lld  %s"
                        : "%s: %-8s %5.1f%% %lld rows, %.0f rows/s, rejected %lld%s",
                    path, st->valuestring, cJSON_IsNumber(pr) ? pr->valuedouble * 100 : 0.0,
                    (long long)num(j, "total"), secs > 0 ? (double)num(j, "total") / secs : 0,
                    (long long)num(j, "rejected"), tty ? (final ? "\n" : "") : "\n");
        }
        if (final) {
            const char *names[5] = {"total", "accepted", "duplicates", "updated", "rejected"};
            for (int k = 0; k < 5; k++)
                sum[k] += num(j, names[k]);
            rc = strcmp(st->valuestring, "done") == 0 ? DTM_EXIT_OK : DTM_EXIT_FAIL;
            if (rc) {
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
                dtm_cli_error("%s: batch %s %s%s%s", path, id, st->valuestring,
                              cJSON_IsString(e) ? ": " : "",
                              cJSON_IsString(e) ? e->valuestring : "");
            }
            if (num(j, "rejected") && !(rejected && !rejected[0])) {
                FILE *out;
                snprintf(rpath, sizeof(rpath), "%s", rejected ? rejected : "");
                if (!rejected)
                    snprintf(rpath, sizeof(rpath), "%s.rejected.csv", is_stdin ? "stdin" : path);
                snprintf(q, sizeof(q), "/api/v1/batches/%s/errors", id);
                if (!(out = fopen(rpath, "w")) ||
                    request(c, "GET", q, "text/csv", NULL, 0, NULL, false, out) ||
                    fclose(out) != 0) {
                    dtm_cli_error("cannot write %s", rpath);
                    rc = DTM_EXIT_FAIL;
                }
            }
            cJSON_Delete(j);
            return rc;
        }
        cJSON_Delete(j);
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int dtm_remote_import(const char *url, const char *key, const char *dataset, const char *format,
                      bool masked, const char *rejected, const char *const *files, size_t n,
                      bool json)
{
    struct call c = {.base = url, .key = key};
    int64_t sum[5] = {0};
    int exit_code = DTM_EXIT_OK;
    char base[1024];
    size_t bl;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        dtm_cli_error("--url must start with http:// or https://");
        return DTM_EXIT_USAGE;
    }
    snprintf(base, sizeof(base), "%s", url);
    bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        base[--bl] = '\0';
    c.base = base;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(c.h = curl_easy_init())) {
        dtm_cli_error("cannot start the HTTP client");
        return DTM_EXIT_FAIL;
    }
    dtm_buf_init(&c.body, 16 << 20);
    for (size_t i = 0; i < n; i++) {
        int r = one_file(&c, dataset, format, masked, rejected, files[i], sum);
        if (r)
            exit_code = r;
    }
    dtm_buf_free(&c.body);
    curl_easy_cleanup(c.h);
    curl_global_cleanup();
    dtm_cli_print_counts(sum, json);
    return exit_code;
}
