/* cli/report.c — `dtm report KIND --period P --format json|csv|xlsx|pdf -o OUT [--lang vi|en]`
 * (CONTRACT §1, §6): the report of a period written to a file (or standard output for json and
 * csv). Works on a data dir while a server runs on it (its own store connection, read only). A
 * report kept by the server's scheduler is written as it was produced; otherwise it is computed
 * now (a period not over yet is marked provisional). */
#include "cli/cli.h"
#include "report/report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int dtm_cmd_report(int argc, char **argv)
{
    static const char usage[] = "dtm report transactions|connectivity|quality|ranking --period P "
                                "--format json|csv|xlsx|pdf [-o OUT] [--lang vi|en]";
    const char *period = NULL, *format = NULL, *output = NULL, *lang = "vi";
    struct dtm_cli_opt opts[] = {{"period", &period, NULL},
                                 {"format", &format, NULL},
                                 {"output", &output, NULL},
                                 {"lang", &lang, NULL}};
    struct dtm_cli_common com;
    const char *pos[3], *kind = NULL;
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st = NULL;
    struct dtm_dict *dict = NULL;
    struct dtm_period p;
    struct dtm_report_row row;
    enum dtm_report_format fmt;
    struct dtm_buf kept, out;
    cJSON *doc = NULL;
    char err[512], dir[DTM_PATH_MAX];
    FILE *f = NULL;
    int exit_code = DTM_EXIT_FAIL, rc;
    rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 3, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    for (size_t i = 0; i < npos; i++) {
        if (strcmp(pos[i], "-o") == 0 && i + 1 < npos) {
            output = pos[++i];
        } else if (!kind) {
            kind = pos[i];
        } else {
            dtm_cli_error("unexpected argument '%s'\nusage: %s", pos[i], usage);
            return DTM_EXIT_USAGE;
        }
    }
    if (!kind || !dtm_report_kind_valid(kind)) {
        dtm_cli_error("the report kind must be transactions, connectivity, quality or ranking\n"
                      "usage: %s",
                      usage);
        return DTM_EXIT_USAGE;
    }
    if (!period || dtm_period_parse(period, &p)) {
        dtm_cli_error("--period must be a month (2026-10), a quarter (2026-Q3), a year (2026), "
                      "an ISO week (2026-W42) or a day (2026-10-05)\nusage: %s",
                      usage);
        return DTM_EXIT_USAGE;
    }
    if (!format || dtm_report_format_parse(format, &fmt)) {
        dtm_cli_error("--format must be json, csv, xlsx or pdf\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (strcmp(lang, "vi") && strcmp(lang, "en")) {
        dtm_cli_error("--lang must be vi or en\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if ((fmt == DTM_REPORT_XLSX || fmt == DTM_REPORT_PDF) && (!output || !strcmp(output, "-"))) {
        dtm_cli_error("an %s report needs -o FILE\nusage: %s", format, usage);
        return DTM_EXIT_USAGE;
    }
    dtm_buf_init(&kept, 256 << 20);
    dtm_buf_init(&out, 256 << 20);
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        goto out;
    if (!(dict = dtm_cli_dict(st))) {
        dtm_cli_error("cannot load the data dictionary");
        goto out;
    }
    if (st->ops->report_get(st, kind, p.label, lang, &row, &kept) == DTM_OK)
        doc = cJSON_ParseWithLength(kept.p ? kept.p : "", kept.n);
    if (!doc && (rc = dtm_report_build(st, &c, dict, kind, &p, lang, dtm_now_us(), &doc, err,
                                       sizeof(err)))) {
        dtm_cli_error("the %s report of %s could not be made: %s", kind, p.label, err);
        goto out;
    }
    dtm_conf_path(&c, ".", dir, sizeof(dir));
    if ((rc = dtm_report_render(doc, fmt, dir, &out))) {
        dtm_cli_error("the report could not be rendered as %s (%s)", format, dtm_rc_name(rc));
        goto out;
    }
    if (!output || !strcmp(output, "-")) {
        fwrite(out.p ? out.p : "", 1, out.n, stdout);
        exit_code = ferror(stdout) ? DTM_EXIT_FAIL : DTM_EXIT_OK;
        goto out;
    }
    if (!(f = fopen(output, "wb"))) {
        dtm_cli_error("cannot write %s: %s", output, strerror(errno));
        goto out;
    }
    if (fwrite(out.p ? out.p : "", 1, out.n, f) != out.n || fclose(f) != 0) {
        f = NULL;
        dtm_cli_error("cannot write %s: %s", output, strerror(errno));
        goto out;
    }
    f = NULL;
    exit_code = DTM_EXIT_OK;
out:
    if (f)
        fclose(f);
    cJSON_Delete(doc);
    dtm_buf_free(&kept);
    dtm_buf_free(&out);
    if (dict)
        dtm_dict_destroy(dict);
    if (st)
        st->ops->close(st);
    return exit_code;
}
