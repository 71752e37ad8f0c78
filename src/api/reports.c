/* api/reports.c — periodic reports (CONTRACT §6; report/report.h), for signed-in people
 * (operators, analysts, auditors, admins):
 * - GET /api/v1/reports/{kind}?period=P&format=json|csv|xlsx|pdf&lang=vi|en — the report of a
 *   period; format by `format` or `Accept`, language by `lang` or `Accept-Language`. A report
 *   kept by the scheduler (report/sched.c) is served as produced (`DTM-Report: kept`);
 *   otherwise it is computed now (`DTM-Report: computed`), and a period not over yet is marked
 *   provisional in the document.
 * - GET /api/v1/reports/{kind}/{period} — the same with the period in the path (download links).
 * - GET /api/v1/reports — the kept reports: kind, period, language, formats, size, when
 *   produced and a download URL per format. */
#include "api/api.h"
#include "report/report.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static int answer(struct dtm_req *r, const char *kind, const char *period_text)
{
    const struct dtm_server_env *env = dtm_http_env(r);
    struct dtm_store *st = dtm_http_store(r);
    const char *fmt_text = dtm_http_query(r, "format"), *lang_q = dtm_http_query(r, "lang");
    struct dtm_str accept = dtm_http_header(r, "Accept");
    enum dtm_report_format fmt = DTM_REPORT_JSON;
    struct dtm_period p;
    struct dtm_report_row row;
    struct dtm_buf kept, out;
    char err[512], dir[DTM_PATH_MAX], *disp;
    const char *lang;
    cJSON *doc = NULL;
    bool from_store = false;
    int rc;

    if (!st)
        return DTM_ESTORE;
    if (!dtm_report_kind_valid(kind))
        return dtm_http_problem(r, 404, "not_found", "Not found",
                                "There is no report kind '%s': kind must be transactions, "
                                "connectivity, quality or ranking.",
                                kind);
    if (!period_text || !*period_text)
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'period' is required: 2026-10, 2026-Q3, 2026, "
                                "2026-W42 or 2026-10-05.");
    if (dtm_period_parse(period_text, &p))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'period' must be a month (2026-10), a quarter "
                                "(2026-Q3), a year (2026), an ISO week (2026-W42) or a day "
                                "(2026-10-05).");
    if (fmt_text) {
        if (dtm_report_format_parse(fmt_text, &fmt))
            return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                    "Parameter 'format' must be json, csv, xlsx or pdf.");
    } else if (dtm_str_contains(accept, "application/pdf")) {
        fmt = DTM_REPORT_PDF;
    } else if (dtm_str_contains(accept, "spreadsheetml")) {
        fmt = DTM_REPORT_XLSX;
    } else if (dtm_str_contains(accept, "text/csv")) {
        fmt = DTM_REPORT_CSV;
    }
    if (lang_q && strcmp(lang_q, "vi") && strcmp(lang_q, "en"))
        return dtm_http_problem(r, 400, "bad_parameter", "Bad parameter",
                                "Parameter 'lang' must be vi or en.");
    lang = lang_q ? lang_q : dtm_lang_code(r->lang);

    /* a kept report is served as it was produced */
    dtm_buf_init(&kept, 256 << 20);
    if (st->ops->report_get(st, kind, p.label, lang, &row, &kept) == DTM_OK &&
        (doc = cJSON_ParseWithLength(kept.p ? kept.p : "", kept.n)))
        from_store = true;
    dtm_buf_free(&kept);
    if (!doc) {
        rc = dtm_report_build(st, env->conf, env->dict, kind, &p, lang, dtm_now_us(), &doc, err,
                              sizeof(err));
        if (rc == DTM_EUNSUPPORTED)
            return dtm_http_problem(r, 501, "not_implemented", "Not implemented",
                                    "The %s report is not yet available on this server.", kind);
        if (rc == DTM_ENOTFOUND)
            return dtm_http_problem(r, 404, "not_found", "Not found", "%s", err);
        if (rc) {
            dtm_logf(DTM_LOG_ERROR, "report failed", "\"kind\":\"%s\",\"period\":\"%s\"", kind,
                     p.label);
            return rc;
        }
    }
    dtm_buf_init(&out, 256 << 20);
    dtm_conf_path(env->conf, ".", dir, sizeof(dir));
    rc = dtm_report_render(doc, fmt, dir, &out);
    cJSON_Delete(doc);
    if (rc == DTM_OK && (disp = dtm_arena_alloc(&r->arena, 160))) {
        snprintf(disp, 160, "%s; filename=\"dtm-%s-%s-%s.%s\"",
                 fmt == DTM_REPORT_JSON ? "inline" : "attachment", kind, p.label, lang,
                 dtm_report_format_name(fmt));
        dtm_http_add_header(r, "Content-Disposition", disp);
        dtm_http_add_header(r, "DTM-Report", from_store ? "kept" : "computed");
        rc = dtm_http_reply(r, 200, dtm_report_content_type(fmt), out.p ? out.p : "", out.n);
    } else if (rc == DTM_OK) {
        rc = DTM_ENOMEM;
    }
    dtm_buf_free(&out);
    return rc;
}

int dtm_api_report_get(struct dtm_req *r)
{
    char kind[32];
    snprintf(kind, sizeof(kind), "%.*s", (int)DTM_MIN(r->params[0].n, 31), r->params[0].p);
    return answer(r, kind, dtm_http_query(r, "period"));
}

int dtm_api_report_period(struct dtm_req *r)
{
    char kind[32], period[32];
    snprintf(kind, sizeof(kind), "%.*s", (int)DTM_MIN(r->params[0].n, 31), r->params[0].p);
    snprintf(period, sizeof(period), "%.*s", (int)DTM_MIN(r->params[1].n, 31), r->params[1].p);
    return answer(r, kind, period);
}

struct list {
    struct dtm_buf *b;
    const struct dtm_conf *conf;
    size_t n;
};

static int list_one(void *ctx, const struct dtm_report_row *row)
{
    static const char *const names[] = {"json", "csv", "xlsx", "pdf"};
    struct list *x = ctx;
    struct dtm_buf *b = x->b;
    bool first = true;
    dtm_buf_addc(b, x->n++ ? ",{\"kind\":" : "{\"kind\":");
    dtm_buf_json_strc(b, row->kind);
    dtm_buf_addc(b, ",\"period\":");
    dtm_buf_json_strc(b, row->period);
    dtm_buf_addc(b, ",\"lang\":");
    dtm_buf_json_strc(b, row->lang);
    dtm_buf_printf(b, ",\"size\":%lld,\"generated_at\":", (long long)row->size);
    dtm_buf_json_time(b, row->generated_at);
    dtm_buf_addc(b, ",\"formats\":[");
    for (size_t i = 0; i < DTM_ARRAY_LEN(names); i++) {
        if (!strstr(x->conf->report_formats, names[i]))
            continue;
        dtm_buf_addc(b, first ? "" : ",");
        dtm_buf_json_strc(b, names[i]);
        first = false;
    }
    dtm_buf_addc(b, "],\"urls\":{");
    first = true;
    for (size_t i = 0; i < DTM_ARRAY_LEN(names); i++) {
        if (!strstr(x->conf->report_formats, names[i]))
            continue;
        dtm_buf_printf(b, "%s\"%s\":\"/api/v1/reports/%s/%s?format=%s&lang=%s\"", first ? "" : ",",
                       names[i], row->kind, row->period, names[i], row->lang);
        first = false;
    }
    dtm_buf_addc(b, "}}");
    return b->err;
}

int dtm_api_reports_list(struct dtm_req *r)
{
    struct dtm_store *st = dtm_http_store(r);
    struct dtm_buf b;
    struct list x = {.b = &b, .conf = dtm_http_env(r)->conf};
    int rc;
    if (!st)
        return DTM_ESTORE;
    dtm_buf_init(&b, 64 << 20);
    dtm_buf_addc(&b, "{\"reports\":[");
    rc = st->ops->report_list(st, list_one, &x);
    dtm_buf_printf(&b, "],\"schedule\":");
    dtm_buf_json_strc(&b, x.conf->report_schedule);
    dtm_buf_addc(&b, "}");
    if (!rc)
        rc = b.err ? b.err : dtm_http_json(r, 200, &b);
    dtm_buf_free(&b);
    return rc;
}
