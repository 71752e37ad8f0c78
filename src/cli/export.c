/* cli/export.c — `dtm export --dataset D [--from T] [--to T] --format csv|json|ndjson|xml|xlsx
 * [-o OUT]` (CONTRACT §1): a dataset's current records, in time order, as stored (personal
 * fields stay masked), formatted by stats/export.c (shared with GET
 * /api/v1/datasets/{code}/records). A local admin command: it writes every record, including
 * those classified `confidential` that the HTTP export shows only to their own system (T3.2). */
#include "cli/cli.h"
#include "stats/stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct export
{
    FILE *out;
    const struct dtm_dataset *ds;
    enum dtm_export_format fmt;
    struct dtm_xlsx *xlsx;
    const char *cells[DTM_EXPORT_MAX_FIELDS];
    bool numeric[DTM_EXPORT_MAX_FIELDS];
    int64_t n;
    struct dtm_export_row row;
    struct dtm_buf line;
};

static int one(void *ctx, const struct dtm_record_version *v)
{
    struct export *e = ctx;
    int rc;
    if (e->fmt == DTM_EXPORT_JSON || e->fmt == DTM_EXPORT_NDJSON)
        e->row.content = v->content; /* written as stored: nothing to read back */
    else if ((rc = dtm_export_row_read(&e->row, v->content)))
        return rc;
    if (e->fmt == DTM_EXPORT_XLSX) {
        for (size_t i = 0; i < e->ds->nfields && i < DTM_EXPORT_MAX_FIELDS; i++)
            e->cells[i] = dtm_export_get(&e->row, i);
        e->n++;
        return dtm_xlsx_row(e->xlsx, e->cells, e->numeric);
    }
    dtm_buf_reset(&e->line);
    dtm_export_append(&e->row, e->fmt, e->n, &e->line);
    if (e->line.err)
        return e->line.err;
    fwrite(e->line.p, 1, e->line.n, e->out);
    e->n++;
    return ferror(e->out) ? DTM_EIO : DTM_OK;
}

/* S3: the export's audit entry (export.local), after the records were written. */
static int audit(const struct dtm_conf *c, struct dtm_store *st, const char *dataset,
                 const char *format, const char *from, const char *to, const char *output,
                 int64_t n)
{
    struct dtm_buf d;
    int rc;
    dtm_buf_init(&d, DTM_AUDIT_DETAIL_MAX - 1);
    dtm_buf_addc(&d, "{\"dataset\":");
    dtm_buf_json_strc(&d, dataset);
    dtm_buf_addc(&d, ",\"format\":");
    dtm_buf_json_strc(&d, format);
    dtm_buf_addc(&d, ",\"from\":");
    dtm_buf_json_strc(&d, from ? from : "");
    dtm_buf_addc(&d, ",\"to\":");
    dtm_buf_json_strc(&d, to ? to : "");
    dtm_buf_addc(&d, ",\"output\":");
    dtm_buf_json_strc(&d, output ? output : "-");
    dtm_buf_printf(&d, ",\"records\":%lld}", (long long)n);
    if ((rc = d.err) == DTM_OK && (rc = st->ops->begin(st)) == DTM_OK) {
        if ((rc = dtm_cli_audit(c, st, "export.local", dataset, d.p)) == DTM_OK)
            rc = st->ops->commit(st);
        if (rc)
            st->ops->rollback(st);
    }
    dtm_buf_free(&d);
    if (rc)
        dtm_cli_error("the records were exported, but the audit trail could not be written (%s)",
                      dtm_rc_name(rc));
    return rc;
}

int dtm_cmd_export(int argc, char **argv)
{
    static const char usage[] = "dtm export --dataset D [--from T] [--to T] "
                                "--format csv|json|ndjson|xml|xlsx [-o OUT]";
    const char *dataset = NULL, *from = NULL, *to = NULL, *format = NULL, *output = NULL;
    struct dtm_cli_opt opts[] = {{"dataset", &dataset, NULL},
                                 {"from", &from, NULL},
                                 {"to", &to, NULL},
                                 {"format", &format, NULL},
                                 {"output", &output, NULL}};
    struct dtm_cli_common com;
    const char *pos[2];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st = NULL;
    struct dtm_dict *dict = NULL;
    struct export e = {0};
    int64_t t0 = INT64_MIN, t1 = INT64_MAX;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 2, &npos, usage);
    int exit_code = DTM_EXIT_FAIL;
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (npos == 2 && strcmp(pos[0], "-o") == 0)
        output = pos[1];
    else if (npos) {
        dtm_cli_error("unexpected argument '%s'\nusage: %s", pos[0], usage);
        return DTM_EXIT_USAGE;
    }
    if (!dataset || !format) {
        dtm_cli_error("%s is required\nusage: %s", !dataset ? "--dataset" : "--format", usage);
        return DTM_EXIT_USAGE;
    }
    if (dtm_export_format_parse(format, &e.fmt)) {
        dtm_cli_error("--format must be csv, json, ndjson, xml or xlsx\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (e.fmt == DTM_EXPORT_XLSX && (!output || !strcmp(output, "-"))) {
        dtm_cli_error("an xlsx export needs -o FILE (a workbook is not a stream)\nusage: %s",
                      usage);
        return DTM_EXIT_USAGE;
    }
    if ((from && dtm_time_bound_parse(dtm_str_c(from), false, &t0)) ||
        (to && dtm_time_bound_parse(dtm_str_c(to), true, &t1))) {
        dtm_cli_error("--from and --to take a date (2026-10-05) or an RFC 3339 time "
                      "(2026-10-05T08:30:00+07:00)");
        return DTM_EXIT_USAGE;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        goto out;
    if (!(dict = dtm_cli_dict(st))) {
        dtm_cli_error("cannot load the data dictionary");
        goto out;
    }
    if (!(e.ds = dtm_dict_get(dict, dtm_str_c(dataset)))) {
        dtm_cli_error("there is no dataset '%s'", dataset);
        exit_code = DTM_EXIT_USAGE;
        goto out;
    }
    dtm_export_row_init(&e.row, e.ds);
    if (e.fmt == DTM_EXPORT_XLSX) {
        const char *cols[DTM_EXPORT_MAX_FIELDS];
        double widths[DTM_EXPORT_MAX_FIELDS];
        char tmpdir[DTM_PATH_MAX];
        size_t n = DTM_MIN(e.ds->nfields, (size_t)DTM_EXPORT_MAX_FIELDS);
        for (size_t i = 0; i < n; i++) {
            const struct dtm_field_def *f = &e.ds->fields[i];
            size_t w = f->type == DTM_T_DATETIME ? 29 : f->type == DTM_T_DATE ? 11 : 16;
            cols[i] = f->name;
            e.numeric[i] = f->type == DTM_T_INTEGER || f->type == DTM_T_DECIMAL;
            widths[i] = (double)DTM_MAX(w, strlen(f->name) + 2);
        }
        dtm_conf_path(&c, ".", tmpdir, sizeof(tmpdir));
        if (dtm_xlsx_open(output, tmpdir, e.ds->code, n, cols, widths, &e.xlsx)) {
            dtm_cli_error("cannot write %s", output);
            goto out;
        }
    }
    e.out = e.fmt == DTM_EXPORT_XLSX        ? stdout /* unused */
            : output && strcmp(output, "-") ? fopen(output, "w")
                                            : stdout;
    if (!e.out) {
        dtm_cli_error("cannot write %s: %s", output, strerror(errno));
        goto out;
    }
    dtm_buf_init(&e.line, 64 << 20);
    if (e.fmt == DTM_EXPORT_CSV) {
        dtm_export_csv_header(e.ds, &e.line);
        fwrite(e.line.p, 1, e.line.n, e.out);
    } else if (e.fmt == DTM_EXPORT_JSON) {
        fputc('[', e.out);
    } else if (e.fmt == DTM_EXPORT_XML) {
        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<records>\n", e.out);
    }
    rc = st->ops->record_scan(st, e.ds->code, t0, t1, true, one, &e);
    if (e.xlsx && dtm_xlsx_close(e.xlsx) && !rc)
        rc = DTM_EIO;
    e.xlsx = NULL;
    if (e.fmt == DTM_EXPORT_JSON)
        fputs(e.n ? "\n]\n" : "]\n", e.out);
    else if (e.fmt == DTM_EXPORT_XML)
        fputs("</records>\n", e.out);
    if (e.out != stdout ? fclose(e.out) != 0 : fflush(stdout) != 0)
        rc = rc ? rc : DTM_EIO;
    if (rc) {
        dtm_cli_error("the export stopped: %s", rc == DTM_EIO ? "cannot write the output"
                                                : rc == DTM_ETOOBIG
                                                    ? "more rows than a spreadsheet holds; use csv"
                                                    : "cannot read the records");
        goto out;
    }
    fprintf(stderr, "exported: %lld records\n", (long long)e.n);
    if (audit(&c, st, dataset, format, from, to, output, e.n))
        goto out;
    exit_code = DTM_EXIT_OK;
out:
    if (e.xlsx)
        dtm_xlsx_close(e.xlsx);
    dtm_buf_free(&e.line);
    dtm_export_row_free(&e.row);
    if (dict)
        dtm_dict_destroy(dict);
    if (st)
        st->ops->close(st);
    return exit_code;
}
