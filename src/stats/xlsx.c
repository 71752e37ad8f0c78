/* stats/xlsx.c — a table as an Excel workbook (libxlsxwriter, in constant-memory mode so an export
 * of any size streams): a bold header row, a frozen pane under it, column widths fitted to the
 * header and the values, numbers as numeric cells and text as text. Used by the statistics API
 * (format=xlsx) and `dtm export --format xlsx`. */
#include "stats/stats.h"

#include <stdlib.h>
#include <string.h>
#include <xlsxwriter.h>

#define XLSX_MAX_ROWS 1048576 /* Excel's limit, header included */

struct dtm_xlsx {
    lxw_workbook *wb;
    lxw_worksheet *ws;
    size_t ncols;
    lxw_row_t row;
};

int dtm_xlsx_open(const char *path, const char *tmpdir, const char *sheet, size_t ncols,
                  const char *const *cols, const double *widths, struct dtm_xlsx **out)
{
    lxw_workbook_options opt = {.constant_memory = LXW_TRUE, .tmpdir = (char *)(uintptr_t)tmpdir};
    struct dtm_xlsx *x = calloc(1, sizeof(*x));
    lxw_format *bold;
    if (!x)
        return DTM_ENOMEM;
    if (!(x->wb = workbook_new_opt(path, &opt)) ||
        !(x->ws = workbook_add_worksheet(x->wb, sheet))) {
        if (x->wb)
            workbook_close(x->wb);
        free(x);
        return DTM_EIO;
    }
    x->ncols = ncols;
    bold = workbook_add_format(x->wb);
    format_set_bold(bold);
    for (size_t j = 0; j < ncols; j++) {
        worksheet_set_column(x->ws, (lxw_col_t)j, (lxw_col_t)j, widths ? widths[j] : 14, NULL);
        worksheet_write_string(x->ws, 0, (lxw_col_t)j, cols[j], bold);
    }
    worksheet_freeze_panes(x->ws, 1, 0);
    x->row = 1;
    *out = x;
    return DTM_OK;
}

int dtm_xlsx_row(struct dtm_xlsx *x, const char *const *cells, const bool *numeric)
{
    if (x->row >= XLSX_MAX_ROWS)
        return DTM_ETOOBIG;
    for (size_t j = 0; j < x->ncols; j++) {
        const char *v = cells[j];
        char *end;
        double d;
        if (!v || !*v)
            continue;
        if (numeric[j] && (d = strtod(v, &end), *end == '\0'))
            worksheet_write_number(x->ws, x->row, (lxw_col_t)j, d, NULL);
        else
            worksheet_write_string(x->ws, x->row, (lxw_col_t)j, v, NULL);
    }
    x->row++;
    return DTM_OK;
}

int dtm_xlsx_close(struct dtm_xlsx *x)
{
    lxw_error e = workbook_close(x->wb);
    free(x);
    return e == LXW_NO_ERROR ? DTM_OK : DTM_EIO;
}

int dtm_result_xlsx(const struct dtm_result *r, const char *path, const char *tmpdir,
                    const char *sheet)
{
    double *w = calloc(r->ncols ? r->ncols : 1, sizeof(double));
    struct dtm_xlsx *x;
    int rc;
    if (!w)
        return DTM_ENOMEM;
    for (size_t j = 0; j < r->ncols; j++) {
        size_t len = strlen(r->cols[j]);
        for (size_t i = 0; i < r->nrows && i < 1000; i++)
            if (r->rows[i][j])
                len = DTM_MAX(len, strlen(r->rows[i][j]));
        w[j] = (double)DTM_MIN(len + 2, 60);
    }
    rc = dtm_xlsx_open(path, tmpdir, sheet, r->ncols, (const char *const *)r->cols, w, &x);
    free(w);
    if (rc)
        return rc;
    for (size_t i = 0; i < r->nrows && rc == DTM_OK; i++)
        rc = dtm_xlsx_row(x, (const char *const *)r->rows[i], r->numeric);
    if (dtm_xlsx_close(x) && rc == DTM_OK)
        rc = DTM_EIO;
    return rc;
}
