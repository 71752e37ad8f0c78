/* api/catalog.c — the catalogue's quality summary and DCAT export (catalog.h).
 *
 * The quality summary is deliberately small and computed only from what every store already
 * has: the receipts (one per accepted request or batch part, with its counts) received in the
 * last 30 days, added up per dataset by one grouped query (store catalog_summary). submitted =
 * accepted + duplicates + rejected; the shares are of submitted; systems_reporting counts the
 * distinct systems with a receipt. The full quality module (GET /api/v1/quality: completeness,
 * timeliness, reconciliation) is separate. The summary is cached for 60 s per process, so the
 * public list costs one query a minute whatever its traffic. */
#include "api/catalog.h"
#include "api/api.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_DAYS 30
#define CACHE_US (60 * 1000000LL)
#define MAX_ROWS 512

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct dtm_catalog_row rows[MAX_ROWS];
static size_t nrows;
static int64_t computed_at; /* µs; 0 = never */

struct collect {
    struct dtm_catalog_row *rows;
    size_t n;
};

static int collect_row(void *ctx, const struct dtm_catalog_row *row)
{
    struct collect *c = ctx;
    if (c->n < MAX_ROWS)
        c->rows[c->n++] = *row;
    return DTM_OK;
}

/* Copies ds's row of the (fresh) summary into out; false when it has no receipt. */
static int summary_row(struct dtm_req *r, const char *code, struct dtm_catalog_row *out,
                       bool *found, int64_t *at)
{
    int64_t now = dtm_now_us();
    int rc = DTM_OK;
    *found = false;
    pthread_mutex_lock(&mu);
    if (!computed_at || now - computed_at > CACHE_US || now < computed_at) {
        struct dtm_store *st = dtm_http_store(r);
        static struct dtm_catalog_row fresh[MAX_ROWS];
        struct collect c = {fresh, 0};
        if (!st)
            rc = DTM_ESTORE;
        else if (!(rc = st->ops->catalog_summary(st, now - WINDOW_DAYS * 86400LL * 1000000LL,
                                                 collect_row, &c))) {
            memcpy(rows, fresh, c.n * sizeof(rows[0]));
            nrows = c.n;
            computed_at = now;
        }
    }
    for (size_t i = 0; rc == DTM_OK && i < nrows; i++)
        if (strcmp(rows[i].dataset, code) == 0) {
            *out = rows[i];
            *found = true;
        }
    *at = computed_at;
    pthread_mutex_unlock(&mu);
    return rc;
}

static double share(int64_t part, int64_t whole)
{
    return whole > 0 ? (double)(int64_t)((double)part * 10000.0 / (double)whole + 0.5) / 10000.0
                     : 0.0;
}

int dtm_catalog_quality_json(struct dtm_req *r, const struct dtm_dataset *ds, struct dtm_buf *b)
{
    struct dtm_catalog_row row = {0};
    bool found;
    int64_t at, submitted;
    char ts[40];
    int rc = summary_row(r, ds->code, &row, &found, &at);
    if (rc)
        return rc;
    submitted = row.accepted + row.duplicates + row.rejected;
    dtm_buf_printf(b,
                   "\"quality\":{\"window_days\":%d,\"submitted\":%lld,\"accepted\":%lld,"
                   "\"duplicates\":%lld,\"rejected\":%lld,\"accepted_share\":%.4f,"
                   "\"duplicate_share\":%.4f,\"rejected_share\":%.4f,\"receipts\":%lld,"
                   "\"systems_reporting\":%lld,\"last_received\":",
                   WINDOW_DAYS, (long long)submitted, (long long)row.accepted,
                   (long long)row.duplicates, (long long)row.rejected,
                   share(row.accepted, submitted), share(row.duplicates, submitted),
                   share(row.rejected, submitted), (long long)row.receipts, (long long)row.systems);
    if (found && row.last_received > 0) {
        dtm_time_fmt(row.last_received, ts, sizeof(ts));
        dtm_buf_printf(b, "\"%s\"", ts);
    } else {
        dtm_buf_addc(b, "null");
    }
    dtm_time_fmt(at, ts, sizeof(ts));
    dtm_buf_printf(b, ",\"computed_at\":\"%s\"}", ts);
    return DTM_OK;
}

/* ---- GET /api/v1/catalog.jsonld (DCAT 2 in JSON-LD) */

/* The absolute base URL of this server as the client reached it: scheme by the connection,
 * host from the Host header when it is a plain host[:port] (else "localhost"). */
static void base_url(struct dtm_req *r, char *out, size_t outsz)
{
    const union MHD_ConnectionInfo *tls =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    struct dtm_str h = dtm_http_header(r, "Host");
    bool ok = h.n > 0 && h.n < 256;
    for (size_t i = 0; ok && i < h.n; i++) {
        char c = h.p[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
    }
    snprintf(out, outsz, "%s://%.*s", tls && tls->tls_session ? "https" : "http", ok ? (int)h.n : 9,
             ok ? h.p : "localhost");
}

static void lang_literals(struct dtm_buf *b, const struct dtm_i18n_text *t)
{
    bool first = true;
    dtm_buf_addch(b, '[');
    if (t->vi) {
        dtm_buf_addc(b, "{\"@value\":");
        dtm_buf_json_strc(b, t->vi);
        dtm_buf_addc(b, ",\"@language\":\"vi\"}");
        first = false;
    }
    if (t->en) {
        if (!first)
            dtm_buf_addch(b, ',');
        dtm_buf_addc(b, "{\"@value\":");
        dtm_buf_json_strc(b, t->en);
        dtm_buf_addc(b, ",\"@language\":\"en\"}");
    }
    dtm_buf_addch(b, ']');
}

/* Comma-separated keywords as one literal per keyword and language. */
static void keyword_literals(struct dtm_buf *b, const struct dtm_i18n_text *t)
{
    const char *langs[2] = {"vi", "en"}, *texts[2] = {t->vi, t->en};
    bool first = true;
    dtm_buf_addch(b, '[');
    for (int l = 0; l < 2; l++) {
        struct dtm_str rest = dtm_str_c(texts[l] ? texts[l] : "");
        while (rest.n) {
            const char *comma = memchr(rest.p, ',', rest.n);
            struct dtm_str k =
                dtm_str_trim((struct dtm_str){rest.p, comma ? (size_t)(comma - rest.p) : rest.n});
            rest = comma ? (struct dtm_str){comma + 1, rest.n - (size_t)(comma - rest.p) - 1}
                         : DTM_STR_NULL;
            if (!k.n)
                continue;
            if (!first)
                dtm_buf_addch(b, ',');
            first = false;
            dtm_buf_addc(b, "{\"@value\":");
            dtm_buf_json_str(b, k);
            dtm_buf_printf(b, ",\"@language\":\"%s\"}", langs[l]);
        }
    }
    dtm_buf_addch(b, ']');
}

/* EU vocabularies (publications.europa.eu authority tables) that DCAT-AP portals understand */
#define EU_AUTH "http://publications.europa.eu/resource/authority/"

static const char *frequency_iri(const char *f)
{
    static const char *const map[][2] = {
        {"realtime", "UPDATE_CONT"}, {"hourly", "HOURLY"},   {"daily", "DAILY"},
        {"weekly", "WEEKLY"},        {"monthly", "MONTHLY"}, {"quarterly", "QUARTERLY"},
        {"yearly", "ANNUAL"},        {"irregular", "IRREG"},
    };
    for (size_t i = 0; f && i < DTM_ARRAY_LEN(map); i++)
        if (strcmp(f, map[i][0]) == 0)
            return map[i][1];
    return "UNKNOWN";
}

static const char *access_iri(const char *classification)
{
    if (classification && strcmp(classification, "public") == 0)
        return "PUBLIC";
    if (classification && strcmp(classification, "confidential") == 0)
        return "NON_PUBLIC";
    return "RESTRICTED";
}

static void distribution(struct dtm_buf *b, const char *base, const char *code, const char *path,
                         const char *title_vi, const char *title_en)
{
    dtm_buf_printf(b,
                   "{\"@id\":\"%s%s#distribution\",\"@type\":\"dcat:Distribution\","
                   "\"dcat:accessURL\":{\"@id\":\"%s%s\"},\"dcat:mediaType\":"
                   "\"application/json\",\"dct:format\":\"JSON\",\"dct:title\":[{\"@value\":\"%s "
                   "%s\",\"@language\":\"vi\"},{\"@value\":\"%s %s\",\"@language\":\"en\"}]}",
                   base, path, base, path, title_vi, code, title_en, code);
}

int dtm_api_catalog_jsonld(struct dtm_req *r)
{
    const struct dtm_dict *d = dtm_http_env(r)->dict;
    struct dtm_buf b;
    char base[300], path[160], ts[40];
    int rc = DTM_OK;
    base_url(r, base, sizeof(base));
    dtm_buf_init(&b, 16 << 20);
    dtm_buf_printf(
        &b,
        "{\"@context\":{\"dcat\":\"http://www.w3.org/ns/dcat#\",\"dct\":\"http://purl.org/dc/"
        "terms/\",\"foaf\":\"http://xmlns.com/foaf/0.1/\",\"rdfs\":\"http://www.w3.org/2000/01/"
        "rdf-schema#\",\"xsd\":\"http://www.w3.org/2001/XMLSchema#\",\"dtm\":\"%s/api/v1/"
        "datasets#\"},"
        "\"@id\":\"%s/api/v1/catalog.jsonld\",\"@type\":\"dcat:Catalog\","
        "\"dct:title\":[{\"@value\":\"Danh mục dữ liệu giao dịch điện tử quốc gia\","
        "\"@language\":\"vi\"},{\"@value\":\"National electronic transaction data catalogue\","
        "\"@language\":\"en\"}],"
        "\"dct:description\":[{\"@value\":\"Các bộ dữ liệu do hệ thống DTM tiếp nhận, quản lý và "
        "chia sẻ.\",\"@language\":\"vi\"},{\"@value\":\"The datasets that DTM receives, "
        "manages and shares.\",\"@language\":\"en\"}],"
        "\"dct:publisher\":{\"@type\":\"foaf:Organization\",\"foaf:name\":\"Cục Chuyển đổi số "
        "quốc gia, Bộ Khoa học và Công nghệ\"},"
        "\"dct:language\":[{\"@id\":\"" EU_AUTH "language/VIE\"},{\"@id\":\"" EU_AUTH
        "language/ENG\"}],\"foaf:homepage\":{\"@id\":\"%s/catalogue\"},\"dcat:dataset\":[",
        base, base, base);
    for (size_t i = 0; rc == DTM_OK && i < dtm_dict_count(d); i++) {
        const struct dtm_dataset *ds = dtm_dict_at(d, i);
        struct dtm_catalog_row row;
        bool found;
        int64_t at;
        if ((rc = summary_row(r, ds->code, &row, &found, &at)))
            break;
        if (i)
            dtm_buf_addch(&b, ',');
        dtm_buf_printf(&b,
                       "{\"@id\":\"%s/api/v1/datasets/%s\",\"@type\":\"dcat:Dataset\","
                       "\"dct:identifier\":\"%s\",\"dct:title\":",
                       base, ds->code, ds->code);
        lang_literals(&b, &ds->title);
        dtm_buf_addc(&b, ",\"dct:description\":");
        lang_literals(&b, &ds->description);
        dtm_buf_addc(&b, ",\"dct:publisher\":{\"@type\":\"foaf:Organization\",\"foaf:name\":");
        dtm_buf_json_strc(&b, ds->agency ? ds->agency : "Cục Chuyển đổi số quốc gia");
        dtm_buf_addc(&b, "},\"dcat:theme\":{\"@id\":\"" EU_AUTH "data-theme/GOVE\"}");
        if (ds->keywords.vi || ds->keywords.en) {
            dtm_buf_addc(&b, ",\"dcat:keyword\":");
            keyword_literals(&b, &ds->keywords);
        }
        if (ds->scope.vi || ds->scope.en) {
            dtm_buf_addc(&b, ",\"dct:coverage\":");
            lang_literals(&b, &ds->scope);
        }
        dtm_buf_printf(&b,
                       ",\"dct:accrualPeriodicity\":{\"@id\":\"" EU_AUTH "frequency/%s\"},"
                       "\"dct:accessRights\":{\"@id\":\"" EU_AUTH "access-right/%s\"",
                       frequency_iri(ds->update_frequency), access_iri(ds->classification));
        if (ds->access.vi || ds->access.en) {
            dtm_buf_addc(&b, ",\"rdfs:label\":");
            lang_literals(&b, &ds->access);
        }
        dtm_buf_printf(&b,
                       "},\"dtm:classification\":\"%s\",\"dct:conformsTo\":{\"@id\":"
                       "\"%s/api/v1/datasets/%s#definition\"}",
                       ds->classification ? ds->classification : "internal", base, ds->code);
        if (found && row.last_received > 0) {
            dtm_time_fmt(row.last_received, ts, sizeof(ts));
            dtm_buf_printf(&b, ",\"dct:modified\":{\"@value\":\"%s\",\"@type\":\"xsd:dateTime\"}",
                           ts);
        }
        dtm_buf_addc(&b, ",\"dcat:distribution\":[");
        snprintf(path, sizeof(path), "/api/v1/stats/%s", ds->code);
        distribution(&b, base, ds->code, path, "Thống kê", "Statistics of");
        dtm_buf_addch(&b, ',');
        snprintf(path, sizeof(path), "/api/v1/datasets/%s/records", ds->code);
        distribution(&b, base, ds->code, path, "Bản ghi", "Records of");
        dtm_buf_addc(&b, "]}");
    }
    dtm_buf_addc(&b, "]}");
    if (rc == DTM_OK)
        rc = b.err ? b.err : dtm_http_reply(r, 200, "application/ld+json; charset=utf-8", b.p, b.n);
    dtm_buf_free(&b);
    return rc;
}
