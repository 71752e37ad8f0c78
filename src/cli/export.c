/* cli/export.c — `dtm export --dataset D [--from T] [--to T] --format csv|json|ndjson|xml|xlsx
 * [-o OUT]` (CONTRACT §1): a dataset's current records, in time order, as stored (personal
 * fields stay masked). Each stored record is read back with the JSON decoder of ingest/, which
 * keeps numbers' exact text (cJSON would turn 12.50 into a double). */
#include "cli/cli.h"
#include "ingest/decode.h"
#include "stats/stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct export
{
    FILE *out;
    const struct dtm_dataset *ds;
    enum { F_CSV, F_JSON, F_NDJSON, F_XML, F_XLSX } fmt;
    struct dtm_xlsx *xlsx;
    const char *cells[64];
    bool numeric[64];
    int64_t n;
    int rc;
    struct dtm_in_record rec;
    struct dtm_buf row;
};

static int one(void *ctx, const struct dtm_record_version *v)
{
    struct export *e = ctx;
    struct dtm_decoder *d;
    struct dtm_decode_error err;

    if (e->fmt == F_JSON || e->fmt == F_NDJSON) {
        if (e->fmt == F_JSON)
            fputs(e->n ? ",\n" : "\n", e->out);
        fwrite(v->content.p, 1, v->content.n, e->out);
        if (e->fmt == F_NDJSON)
            fputc('\n', e->out);
        e->n++;
        return ferror(e->out) ? DTM_EIO : DTM_OK;
    }
    if (!(d = dtm_decoder_open(DTM_FMT_JSON, v->content.p, v->content.n)))
        return DTM_ENOMEM;
    if (dtm_decoder_next(d, &e->rec, &err) != 1) {
        dtm_decoder_close(d);
        return DTM_EMALFORMED;
    }
    if (e->fmt == F_XLSX) {
        /* the values are copied out of the decoder's record (NUL-terminated) before it closes */
        size_t off[64];
        int rc;
        dtm_buf_reset(&e->row);
        for (size_t i = 0; i < e->ds->nfields && i < 64; i++) {
            off[i] = SIZE_MAX;
            for (size_t k = 0; k < e->rec.nfields; k++)
                if (dtm_str_eqc(e->rec.f[k].name, e->ds->fields[i].name)) {
                    off[i] = e->row.n;
                    dtm_buf_add(&e->row, e->rec.f[k].value.p, e->rec.f[k].value.n);
                    dtm_buf_addch(&e->row, '\0');
                    break;
                }
        }
        dtm_decoder_close(d);
        if (e->row.err)
            return e->row.err;
        for (size_t i = 0; i < e->ds->nfields && i < 64; i++)
            e->cells[i] = off[i] == SIZE_MAX ? NULL : e->row.p + off[i];
        e->n++;
        rc = dtm_xlsx_row(e->xlsx, e->cells, e->numeric);
        return rc;
    }
    if (e->fmt == F_CSV) {
        dtm_buf_reset(&e->row);
        for (size_t i = 0; i < e->ds->nfields; i++) {
            const char *name = e->ds->fields[i].name;
            if (i)
                dtm_buf_addch(&e->row, ',');
            for (size_t k = 0; k < e->rec.nfields; k++)
                if (dtm_str_eqc(e->rec.f[k].name, name)) {
                    dtm_buf_csv(&e->row, e->rec.f[k].value);
                    break;
                }
        }
        dtm_buf_addc(&e->row, "\r\n");
        if (e->row.err) {
            dtm_decoder_close(d);
            return e->row.err;
        }
        fwrite(e->row.p, 1, e->row.n, e->out);
    } else {
        /* element names are field names of the definition: [a-z0-9_] */
        dtm_buf_reset(&e->row);
        dtm_buf_addc(&e->row, "  <record>");
        for (size_t k = 0; k < e->rec.nfields; k++) {
            const struct dtm_in_field *fl = &e->rec.f[k];
            dtm_buf_printf(&e->row, "<%.*s>", (int)fl->name.n, fl->name.p);
            dtm_buf_xml(&e->row, fl->value);
            dtm_buf_printf(&e->row, "</%.*s>", (int)fl->name.n, fl->name.p);
        }
        dtm_buf_addc(&e->row, "</record>\n");
        if (e->row.err) {
            dtm_decoder_close(d);
            return e->row.err;
        }
        fwrite(e->row.p, 1, e->row.n, e->out);
    }
    dtm_decoder_close(d);
    e->n++;
    return ferror(e->out) ? DTM_EIO : DTM_OK;
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
    if (!strcmp(format, "csv"))
        e.fmt = F_CSV;
    else if (!strcmp(format, "json"))
        e.fmt = F_JSON;
    else if (!strcmp(format, "ndjson"))
        e.fmt = F_NDJSON;
    else if (!strcmp(format, "xml"))
        e.fmt = F_XML;
    else if (!strcmp(format, "xlsx"))
        e.fmt = F_XLSX;
    else {
        dtm_cli_error("--format must be csv, json, ndjson, xml or xlsx\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (e.fmt == F_XLSX && (!output || !strcmp(output, "-"))) {
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
    if (!(dict = dtm_dict_create())) {
        dtm_cli_error("cannot load the data dictionary");
        goto out;
    }
    if (!(e.ds = dtm_dict_get(dict, dtm_str_c(dataset)))) {
        dtm_cli_error("there is no dataset '%s'", dataset);
        exit_code = DTM_EXIT_USAGE;
        goto out;
    }
    if (e.fmt == F_XLSX) {
        const char *cols[64];
        double widths[64];
        char tmpdir[DTM_PATH_MAX];
        size_t n = DTM_MIN(e.ds->nfields, (size_t)64);
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
    e.out = e.fmt == F_XLSX                 ? stdout /* unused */
            : output && strcmp(output, "-") ? fopen(output, "w")
                                            : stdout;
    if (!e.out) {
        dtm_cli_error("cannot write %s: %s", output, strerror(errno));
        goto out;
    }
    dtm_buf_init(&e.row, 64 << 20);
    if (e.fmt == F_CSV) {
        for (size_t i = 0; i < e.ds->nfields; i++)
            fprintf(e.out, "%s%s", i ? "," : "", e.ds->fields[i].name);
        fputs("\r\n", e.out);
    } else if (e.fmt == F_JSON) {
        fputc('[', e.out);
    } else if (e.fmt == F_XML) {
        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<records>\n", e.out);
    }
    rc = st->ops->record_scan(st, e.ds->code, t0, t1, true, one, &e);
    if (e.xlsx && dtm_xlsx_close(e.xlsx) && !rc)
        rc = DTM_EIO;
    e.xlsx = NULL;
    if (e.fmt == F_JSON)
        fputs(e.n ? "\n]\n" : "]\n", e.out);
    else if (e.fmt == F_XML)
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
    exit_code = DTM_EXIT_OK;
out:
    if (e.xlsx)
        dtm_xlsx_close(e.xlsx);
    dtm_buf_free(&e.row);
    if (dict)
        dtm_dict_destroy(dict);
    if (st)
        st->ops->close(st);
    return exit_code;
}
