/* report/render.c — a report document (report.h) as JSON (the document itself), CSV (per
 * section: a title line, the header, the rows, a blank line), XLSX (libxlsxwriter: one sheet per
 * section, typed cells, the method under the table) or PDF (cairo + pango: A4, a title page,
 * per section its title, method sentence, chart when it has one and a table that breaks across
 * pages with its header repeated; "n / N" page numbers in the footer; text shaped by pango with
 * a font that covers Vietnamese, DejaVu Sans from Debian's fonts-dejavu-core). The PDF is laid
 * out twice: the first pass counts the pages for the footers. */
#include "report/report.h"
#include "batch/batch.h"

#include <cairo-pdf.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <pango/pangocairo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xlsxwriter.h>

/* LeakSanitizer (the ASan build of `make test`): fontconfig, under pango, keeps the fonts it
 * loaded in process-wide caches that it never frees (by design: FcFini at exit is unsafe while
 * other threads may still lay out text); its allocations are not ours to free. LSan calls this
 * hook for its default suppressions; elsewhere it is never called. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}
/* … and without the list of suppressions used on stderr at exit (a command's stderr is its
 * error sentence). */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
    return "print_suppressions=0";
}

static const struct {
    const char *name, *type;
} formats[] = {
    [DTM_REPORT_JSON] = {"json", "application/json; charset=utf-8"},
    [DTM_REPORT_CSV] = {"csv", "text/csv; charset=utf-8"},
    [DTM_REPORT_XLSX] = {"xlsx",
                         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    [DTM_REPORT_PDF] = {"pdf", "application/pdf"},
};

int dtm_report_format_parse(const char *name, enum dtm_report_format *out)
{
    for (size_t i = 0; name && i < DTM_ARRAY_LEN(formats); i++)
        if (strcmp(name, formats[i].name) == 0) {
            *out = (enum dtm_report_format)i;
            return DTM_OK;
        }
    return DTM_EINVAL;
}

const char *dtm_report_format_name(enum dtm_report_format f)
{
    return formats[f].name;
}

const char *dtm_report_content_type(enum dtm_report_format f)
{
    return formats[f].type;
}

/* ---- reading a document */

static const char *str_of(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Whether doc has the shape of a report: sections with columns and rows of as many cells. */
static bool well_formed(const cJSON *doc)
{
    const cJSON *secs = cJSON_GetObjectItemCaseSensitive(doc, "sections"), *s;
    if (!cJSON_IsObject(doc) || !cJSON_IsArray(secs))
        return false;
    cJSON_ArrayForEach(s, secs)
    {
        const cJSON *cols = cJSON_GetObjectItemCaseSensitive(s, "columns");
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(s, "rows"), *r;
        int n = cJSON_GetArraySize(cols);
        if (!cJSON_IsArray(cols) || !cJSON_IsArray(rows) || n == 0)
            return false;
        cJSON_ArrayForEach(r,
                           rows) if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != n) return false;
    }
    return true;
}

/* A cell as text for CSV and tables. pretty: grouped thousands, percentages, local times. */
static void cell_fmt(const cJSON *v, const char *type, bool vi, bool pretty, char *out,
                     size_t outsz)
{
    out[0] = '\0';
    if (!v || cJSON_IsNull(v))
        return;
    if (cJSON_IsString(v)) {
        if (pretty && strcmp(type, "time") == 0 && strlen(v->valuestring) >= 16)
            snprintf(out, outsz, "%.10s %.5s", v->valuestring, v->valuestring + 11);
        else
            snprintf(out, outsz, "%s", v->valuestring);
        return;
    }
    if (cJSON_IsBool(v)) {
        snprintf(out, outsz, "%s", cJSON_IsTrue(v) ? "true" : "false");
        return;
    }
    if (!cJSON_IsNumber(v))
        return;
    if (!pretty) {
        if (strcmp(type, "int") == 0 || v->valuedouble == floor(v->valuedouble))
            snprintf(out, outsz, "%.0f", v->valuedouble);
        else
            snprintf(out, outsz, "%.10g", v->valuedouble);
        return;
    }
    {
        char raw[64], *dot;
        const char *sep = vi ? "." : ",", *dec = vi ? "," : ".";
        size_t k = 0, n, digits, lead;
        double d = v->valuedouble;
        if (strcmp(type, "percent") == 0)
            snprintf(raw, sizeof(raw), "%.2f", d * 100);
        else if (strcmp(type, "int") == 0)
            snprintf(raw, sizeof(raw), "%.0f", d);
        else if (strcmp(type, "ms") == 0)
            snprintf(raw, sizeof(raw), "%.1f", d);
        else
            snprintf(raw, sizeof(raw), "%.6g", d);
        /* thousands grouped, the local decimal mark */
        dot = strchr(raw, '.');
        n = dot ? (size_t)(dot - raw) : strlen(raw);
        lead = raw[0] == '-' ? 1 : 0;
        digits = n - lead;
        for (size_t i = 0; i < n && k + 4 < outsz; i++) {
            if (i > lead && (n - i) % 3 == 0 && digits > 3)
                out[k++] = sep[0];
            out[k++] = raw[i];
        }
        if (dot && k + strlen(dot) + 4 < outsz) {
            out[k++] = dec[0];
            for (const char *p = dot + 1; *p; p++)
                out[k++] = *p;
        }
        out[k] = '\0';
        if (strcmp(type, "percent") == 0 && k + 3 < outsz)
            snprintf(out + k, outsz - k, " %%");
    }
}

/* ---- CSV */

static int render_csv(const cJSON *doc, struct dtm_buf *b)
{
    const cJSON *s, *c, *r, *v;
    bool vi = strcmp(str_of(doc, "lang"), "en") != 0;
    char cell[512];
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(doc, "sections"))
    {
        const cJSON *cols = cJSON_GetObjectItemCaseSensitive(s, "columns");
        bool first = true;
        dtm_buf_csv(b, dtm_str_c(str_of(s, "title")));
        dtm_buf_addc(b, "\r\n");
        cJSON_ArrayForEach(c, cols)
        {
            if (!first)
                dtm_buf_addch(b, ',');
            first = false;
            dtm_buf_csv(b, dtm_str_c(str_of(c, "label")));
        }
        dtm_buf_addc(b, "\r\n");
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(s, "rows"))
        {
            int j = 0;
            cJSON_ArrayForEach(v, r)
            {
                if (j)
                    dtm_buf_addch(b, ',');
                cell_fmt(v, str_of(cJSON_GetArrayItem(cols, j), "type"), vi, false, cell,
                         sizeof(cell));
                dtm_buf_csv(b, dtm_str_c(cell));
                j++;
            }
            dtm_buf_addc(b, "\r\n");
        }
        dtm_buf_addc(b, "\r\n");
    }
    return b->err;
}

/* ---- XLSX */

/* A sheet name: the section's title cut to Excel's 31 characters, without []:*?/\ . */
static void sheet_name(const char *title, char *out, size_t outsz)
{
    size_t k = 0, chars = 0;
    for (const unsigned char *p = (const unsigned char *)title; *p && k + 5 < outsz;) {
        size_t len = *p < 0x80 ? 1 : *p < 0xE0 ? 2 : *p < 0xF0 ? 3 : 4;
        if (chars == 31)
            break;
        if (strchr("[]:*?/\\'", *p))
            out[k++] = ' ', p++;
        else
            for (size_t i = 0; i < len && *p; i++)
                out[k++] = (char)*p++;
        chars++;
    }
    out[k] = '\0';
}

static int render_xlsx(const cJSON *doc, const char *tmpdir, struct dtm_buf *b)
{
    char path[DTM_PATH_MAX], id[DTM_ID_MAX], name[160], cell[512];
    lxw_workbook_options opt = {.constant_memory = LXW_FALSE, .tmpdir = (char *)(uintptr_t)tmpdir};
    lxw_workbook *wb;
    lxw_format *bold, *pct, *ms, *wrap;
    const cJSON *s, *c, *r, *v;
    struct dtm_mapped m;
    int rc;
    if ((rc = dtm_random_id("report-", id, sizeof(id))))
        return rc;
    snprintf(path, sizeof(path), "%s/%s.xlsx", tmpdir, id);
    if (!(wb = workbook_new_opt(path, &opt)))
        return DTM_EIO;
    bold = workbook_add_format(wb);
    format_set_bold(bold);
    format_set_text_wrap(bold);
    pct = workbook_add_format(wb);
    format_set_num_format(pct, "0.00%");
    ms = workbook_add_format(wb);
    format_set_num_format(ms, "#,##0.0");
    wrap = workbook_add_format(wb);
    format_set_italic(wrap);
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(doc, "sections"))
    {
        const cJSON *cols = cJSON_GetObjectItemCaseSensitive(s, "columns");
        lxw_worksheet *ws;
        lxw_row_t row = 1;
        lxw_col_t j = 0;
        sheet_name(str_of(s, "title"), name, sizeof(name));
        if (!name[0] || workbook_validate_sheet_name(wb, name) != LXW_NO_ERROR)
            sheet_name(str_of(s, "id"), name, sizeof(name));
        if (!(ws = workbook_add_worksheet(wb, name)) && !(ws = workbook_add_worksheet(wb, NULL))) {
            workbook_close(wb);
            unlink(path);
            return DTM_EIO;
        }
        cJSON_ArrayForEach(c, cols)
        {
            const char *label = str_of(c, "label");
            size_t w = lxw_utf8_strlen(label) + 2;
            worksheet_set_column(ws, j, j, (double)DTM_MAX(DTM_MIN(w, 40), 12), NULL);
            worksheet_write_string(ws, 0, j++, label, bold);
        }
        worksheet_freeze_panes(ws, 1, 0);
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(s, "rows"))
        {
            j = 0;
            cJSON_ArrayForEach(v, r)
            {
                const char *type = str_of(cJSON_GetArrayItem(cols, j), "type");
                if (cJSON_IsNumber(v))
                    worksheet_write_number(ws, row, j, v->valuedouble,
                                           strcmp(type, "percent") == 0 ? pct
                                           : strcmp(type, "ms") == 0    ? ms
                                                                        : NULL);
                else if (!cJSON_IsNull(v)) {
                    cell_fmt(v, type, false, false, cell, sizeof(cell));
                    worksheet_write_string(ws, row, j, cell, NULL);
                }
                j++;
            }
            row++;
        }
        /* how the numbers were computed, under the table */
        worksheet_write_string(ws, row + 1, 0, str_of(s, "method"), wrap);
    }
    if (workbook_close(wb) != LXW_NO_ERROR) {
        unlink(path);
        return DTM_EIO;
    }
    if ((rc = dtm_map_file(path, &m)) == DTM_OK) {
        rc = dtm_buf_add(b, m.p, m.n);
        dtm_unmap(&m);
    }
    unlink(path);
    return rc;
}

/* ---- PDF */

#define PAGE_W 595.276 /* A4 in points */
#define PAGE_H 841.89
#define MARGIN 48.0
#define FOOT 28.0 /* the footer's band */
#define FONT "DejaVu Sans"
#define CELL_PAD 3.0

struct pdf {
    cairo_t *cr;
    cairo_surface_t *surf;
    bool vi;
    int page, pages; /* pages: the total (0 in the counting pass) */
    double y;
    const char *footer_title;
};

static cairo_status_t pdf_write(void *closure, const unsigned char *data, unsigned int len)
{
    struct dtm_buf *b = closure;
    if (!b)
        return CAIRO_STATUS_SUCCESS; /* the counting pass */
    return dtm_buf_add(b, data, len) ? CAIRO_STATUS_WRITE_ERROR : CAIRO_STATUS_SUCCESS;
}

/* Lays text out at width w (0 = no wrapping), in size pt; returns the layout (caller unrefs). */
static PangoLayout *layout(struct pdf *d, const char *text, double size, bool bold, double w,
                           bool ellipsize)
{
    PangoLayout *l = pango_cairo_create_layout(d->cr);
    PangoFontDescription *fd = pango_font_description_from_string(FONT);
    pango_font_description_set_size(fd, (gint)(size * PANGO_SCALE));
    if (bold)
        pango_font_description_set_weight(fd, PANGO_WEIGHT_BOLD);
    pango_layout_set_font_description(l, fd);
    pango_font_description_free(fd);
    if (w > 0) {
        pango_layout_set_width(l, (int)(w * PANGO_SCALE));
        pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
        if (ellipsize)
            pango_layout_set_ellipsize(l, PANGO_ELLIPSIZE_END);
    }
    pango_layout_set_text(l, text, -1);
    return l;
}

static double text_at(struct pdf *d, const char *text, double x, double y, double size, bool bold,
                      double w, bool right)
{
    PangoLayout *l = layout(d, text, size, bold, w, false);
    int pw, ph;
    if (right && w > 0)
        pango_layout_set_alignment(l, PANGO_ALIGN_RIGHT);
    pango_layout_get_size(l, &pw, &ph);
    cairo_move_to(d->cr, x, y);
    pango_cairo_show_layout(d->cr, l);
    g_object_unref(l);
    return (double)ph / PANGO_SCALE;
}

static double text_height(struct pdf *d, const char *text, double size, bool bold, double w)
{
    PangoLayout *l = layout(d, text, size, bold, w, false);
    int pw, ph;
    pango_layout_get_size(l, &pw, &ph);
    g_object_unref(l);
    return (double)ph / PANGO_SCALE;
}

static double text_width(struct pdf *d, const char *text, double size, bool bold)
{
    PangoLayout *l = layout(d, text, size, bold, 0, false);
    int pw, ph;
    pango_layout_get_size(l, &pw, &ph);
    g_object_unref(l);
    return (double)pw / PANGO_SCALE;
}

static void footer(struct pdf *d)
{
    char num[32];
    cairo_set_source_rgb(d->cr, 0.4, 0.4, 0.4);
    cairo_set_line_width(d->cr, 0.5);
    cairo_move_to(d->cr, MARGIN, PAGE_H - FOOT - 6);
    cairo_line_to(d->cr, PAGE_W - MARGIN, PAGE_H - FOOT - 6);
    cairo_stroke(d->cr);
    text_at(d, d->footer_title, MARGIN, PAGE_H - FOOT, 8, false, PAGE_W - 2 * MARGIN - 80, false);
    if (d->pages)
        snprintf(num, sizeof(num), "%d / %d", d->page, d->pages);
    else
        snprintf(num, sizeof(num), "%d / 999", d->page);
    text_at(d, num, PAGE_W - MARGIN - 80, PAGE_H - FOOT, 8, false, 80, true);
    cairo_set_source_rgb(d->cr, 0, 0, 0);
}

static void new_page(struct pdf *d)
{
    if (d->page > 0) {
        footer(d);
        cairo_show_page(d->cr);
    }
    d->page++;
    d->y = MARGIN;
}

static double bottom(void)
{
    return PAGE_H - MARGIN - FOOT;
}

static void title_page(struct pdf *d, const cJSON *doc)
{
    char line[256];
    bool prov = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "provisional"));
    double w = PAGE_W - 2 * MARGIN, y = 220;
    new_page(d);
    cairo_set_source_rgb(d->cr, 0.1, 0.25, 0.5);
    cairo_rectangle(d->cr, MARGIN, 170, w, 4);
    cairo_fill(d->cr);
    cairo_set_source_rgb(d->cr, 0, 0, 0);
    y += text_at(d, str_of(doc, "title"), MARGIN, y, 26, true, w, false) + 18;
    snprintf(line, sizeof(line), "%s: %s", d->vi ? "Kỳ báo cáo" : "Period", str_of(doc, "period"));
    y += text_at(d, line, MARGIN, y, 15, false, w, false) + 6;
    snprintf(line, sizeof(line), "%s %.10s %.5s — %.10s %.5s (UTC+07:00)", d->vi ? "Từ" : "From",
             str_of(doc, "from"), str_of(doc, "from") + (strlen(str_of(doc, "from")) > 11 ? 11 : 0),
             str_of(doc, "to"), str_of(doc, "to") + (strlen(str_of(doc, "to")) > 11 ? 11 : 0));
    y += text_at(d, line, MARGIN, y, 11, false, w, false) + 6;
    snprintf(line, sizeof(line), "%s: %.10s %.8s", d->vi ? "Lập lúc" : "Generated at",
             str_of(doc, "generated_at"),
             str_of(doc, "generated_at") + (strlen(str_of(doc, "generated_at")) > 11 ? 11 : 0));
    y += text_at(d, line, MARGIN, y, 11, false, w, false) + 6;
    if (prov) {
        cairo_set_source_rgb(d->cr, 0.7, 0.1, 0.1);
        y += text_at(d,
                     d->vi ? "Số liệu tạm thời: kỳ báo cáo chưa kết thúc."
                           : "Provisional: the period has not ended yet.",
                     MARGIN, y, 11, true, w, false) +
             6;
        cairo_set_source_rgb(d->cr, 0, 0, 0);
    }
    text_at(d,
            d->vi ? "DTM — Hệ thống giám sát, đo lường giao dịch điện tử"
                  : "DTM — national e-transaction monitoring system",
            MARGIN, bottom() - 40, 11, true, w, false);
}

static bool is_text(const char *type)
{
    return !strcmp(type, "text") || !strcmp(type, "time") || !strcmp(type, "class");
}

/* The width of the longest word of a text (a header wraps between words, never inside one). */
static double word_width(struct pdf *d, const char *text, double size, bool bold)
{
    char word[256];
    double w = 0;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, " ");
        snprintf(word, sizeof(word), "%.*s", (int)DTM_MIN(n, sizeof(word) - 1), p);
        w = DTM_MAX(w, text_width(d, word, size, bold));
        p += n;
        while (*p == ' ')
            p++;
    }
    return w;
}

/* Column widths: each column's widest cell (the first rows) or the longest word of its header,
 * whichever is wider, then scaled to the page's width. */
static void col_widths(struct pdf *d, const cJSON *cols, const cJSON *rows, double *w, int n)
{
    double total = 0, avail = PAGE_W - 2 * MARGIN;
    const cJSON *r;
    char cell[512];
    int k = 0;
    for (int j = 0; j < n; j++)
        w[j] = DTM_MIN(word_width(d, str_of(cJSON_GetArrayItem(cols, j), "label"), 8, true), 90);
    cJSON_ArrayForEach(r, rows)
    {
        if (k++ >= 200)
            break;
        for (int j = 0; j < n; j++) {
            cell_fmt(cJSON_GetArrayItem(r, j), str_of(cJSON_GetArrayItem(cols, j), "type"), d->vi,
                     true, cell, sizeof(cell));
            w[j] = DTM_MAX(w[j], DTM_MIN(text_width(d, cell, 8, false), 200));
        }
    }
    for (int j = 0; j < n; j++)
        total += (w[j] += 2 * CELL_PAD + 2);
    /* too wide: text columns (which wrap) give up their width first, down to 60 pt */
    if (total > avail) {
        double give = 0, excess = total - avail;
        for (int j = 0; j < n; j++)
            if (is_text(str_of(cJSON_GetArrayItem(cols, j), "type")) && w[j] > 60)
                give += w[j] - 60;
        for (int j = 0; j < n && give > 0; j++)
            if (is_text(str_of(cJSON_GetArrayItem(cols, j), "type")) && w[j] > 60)
                w[j] -= (w[j] - 60) * DTM_MIN(excess / give, 1);
        total = 0;
        for (int j = 0; j < n; j++)
            total += w[j];
    }
    for (int j = 0; j < n; j++)
        w[j] = w[j] * avail / total;
}

static double header_row(struct pdf *d, const cJSON *cols, const double *w, int n)
{
    double h = 0, x = MARGIN;
    for (int j = 0; j < n; j++)
        h = DTM_MAX(h, text_height(d, str_of(cJSON_GetArrayItem(cols, j), "label"), 8, true,
                                   w[j] - 2 * CELL_PAD));
    h += 2 * CELL_PAD;
    cairo_set_source_rgb(d->cr, 0.87, 0.9, 0.95);
    cairo_rectangle(d->cr, MARGIN, d->y, PAGE_W - 2 * MARGIN, h);
    cairo_fill(d->cr);
    cairo_set_source_rgb(d->cr, 0, 0, 0);
    for (int j = 0; j < n; j++) {
        const cJSON *c = cJSON_GetArrayItem(cols, j);
        text_at(d, str_of(c, "label"), x + CELL_PAD, d->y + CELL_PAD, 8, true, w[j] - 2 * CELL_PAD,
                !is_text(str_of(c, "type")));
        x += w[j];
    }
    d->y += h;
    return h;
}

static const double series_rgb[][3] = {{0.16, 0.45, 0.75}, {0.85, 0.33, 0.2}, {0.3, 0.65, 0.3}};

/* A bar or line chart of a section: x = the x column's values, y = the y columns (at most 3). */
static void draw_chart(struct pdf *d, const cJSON *s)
{
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(s, "chart");
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(s, "columns");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(s, "rows"), *yv, *r;
    int xi = -1, yi[3], ny = 0, n = 0, ncols = cJSON_GetArraySize(cols);
    bool line = strcmp(str_of(ch, "type"), "line") == 0, pct = false;
    double maxv = 0, top, h = 170, left = MARGIN + 40, width = PAGE_W - MARGIN - left, slot;
    char lab[64];
    if (!cJSON_IsObject(ch) || cJSON_GetArraySize(rows) == 0)
        return;
    for (int j = 0; j < ncols; j++)
        if (strcmp(str_of(cJSON_GetArrayItem(cols, j), "key"), str_of(ch, "x")) == 0)
            xi = j;
    cJSON_ArrayForEach(yv, cJSON_GetObjectItemCaseSensitive(ch, "y"))
    {
        for (int j = 0; j < ncols && ny < 3 && cJSON_IsString(yv); j++)
            if (strcmp(str_of(cJSON_GetArrayItem(cols, j), "key"), yv->valuestring) == 0) {
                yi[ny++] = j;
                pct = strcmp(str_of(cJSON_GetArrayItem(cols, j), "type"), "percent") == 0;
            }
    }
    if (xi < 0 || ny == 0)
        return;
    cJSON_ArrayForEach(r, rows)
    {
        if (n++ >= 40) /* at most 40 categories: the table has every row */
            break;
        for (int k = 0; k < ny; k++) {
            const cJSON *v = cJSON_GetArrayItem(r, yi[k]);
            if (cJSON_IsNumber(v))
                maxv = DTM_MAX(maxv, v->valuedouble);
        }
    }
    if (pct)
        maxv = DTM_MAX(maxv, 1);
    if (maxv <= 0)
        maxv = 1;
    if (d->y + h + 60 > bottom())
        new_page(d);
    top = d->y + 14;
    /* legend */
    {
        double lx = left;
        for (int k = 0; k < ny; k++) {
            const char *label = str_of(cJSON_GetArrayItem(cols, yi[k]), "label");
            cairo_set_source_rgb(d->cr, series_rgb[k][0], series_rgb[k][1], series_rgb[k][2]);
            cairo_rectangle(d->cr, lx, d->y + 2, 8, 8);
            cairo_fill(d->cr);
            cairo_set_source_rgb(d->cr, 0, 0, 0);
            text_at(d, label, lx + 11, d->y, 8, false, 0, false);
            lx += 22 + text_width(d, label, 8, false);
        }
    }
    /* axes and scale */
    cairo_set_line_width(d->cr, 0.6);
    for (int t = 0; t <= 4; t++) {
        double yy = top + h - h * t / 4;
        cairo_set_source_rgb(d->cr, 0.85, 0.85, 0.85);
        cairo_move_to(d->cr, left, yy);
        cairo_line_to(d->cr, left + width, yy);
        cairo_stroke(d->cr);
        cairo_set_source_rgb(d->cr, 0.3, 0.3, 0.3);
        if (pct)
            snprintf(lab, sizeof(lab), "%.0f%%", maxv * 100 * t / 4);
        else
            snprintf(lab, sizeof(lab), "%.4g", maxv * t / 4);
        text_at(d, lab, MARGIN, yy - 5, 7, false, 36, true);
    }
    n = DTM_MIN(n, 40);
    slot = width / n;
    {
        int i = 0;
        double px[3] = {0}, py[3] = {0};
        cJSON_ArrayForEach(r, rows)
        {
            if (i >= n)
                break;
            for (int k = 0; k < ny; k++) {
                const cJSON *v = cJSON_GetArrayItem(r, yi[k]);
                double val = cJSON_IsNumber(v) ? v->valuedouble : 0, bh = h * val / maxv;
                cairo_set_source_rgb(d->cr, series_rgb[k][0], series_rgb[k][1], series_rgb[k][2]);
                if (line) {
                    double cx = left + slot * (i + 0.5), cy = top + h - bh;
                    if (i) {
                        cairo_move_to(d->cr, px[k], py[k]);
                        cairo_line_to(d->cr, cx, cy);
                        cairo_set_line_width(d->cr, 1.5);
                        cairo_stroke(d->cr);
                    }
                    cairo_arc(d->cr, cx, cy, 2, 0, 2 * G_PI);
                    cairo_fill(d->cr);
                    px[k] = cx;
                    py[k] = cy;
                } else {
                    double bw = DTM_MIN(slot * 0.8 / ny, 36);
                    double x0 = left + slot * (i + 0.5) - bw * ny / 2;
                    cairo_rectangle(d->cr, x0 + bw * k, top + h - bh, bw, bh);
                    cairo_fill(d->cr);
                }
            }
            cairo_set_source_rgb(d->cr, 0.2, 0.2, 0.2);
            cell_fmt(cJSON_GetArrayItem(r, xi), "text", d->vi, true, lab, sizeof(lab));
            {
                PangoLayout *l = layout(d, lab, 6.5, false, 0, false);
                cairo_save(d->cr);
                cairo_move_to(d->cr, left + slot * (i + 0.5) - 3, top + h + 3);
                cairo_rotate(d->cr, G_PI / 4);
                pango_cairo_show_layout(d->cr, l);
                cairo_restore(d->cr);
                g_object_unref(l);
            }
            i++;
        }
    }
    cairo_set_source_rgb(d->cr, 0, 0, 0);
    cairo_set_line_width(d->cr, 0.8);
    cairo_move_to(d->cr, left, top);
    cairo_line_to(d->cr, left, top + h);
    cairo_line_to(d->cr, left + width, top + h);
    cairo_stroke(d->cr);
    d->y = top + h + 50;
}

static void draw_section(struct pdf *d, const cJSON *s)
{
    const cJSON *cols = cJSON_GetObjectItemCaseSensitive(s, "columns");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(s, "rows"), *r;
    int n = cJSON_GetArraySize(cols), i = 0;
    double *w = calloc((size_t)(n ? n : 1), sizeof(double)), avail = PAGE_W - 2 * MARGIN;
    char cell[512], cont[300];
    if (!w)
        return;
    new_page(d);
    d->y += text_at(d, str_of(s, "title"), MARGIN, d->y, 15, true, avail, false) + 6;
    cairo_set_source_rgb(d->cr, 0.25, 0.25, 0.25);
    d->y += text_at(d, str_of(s, "method"), MARGIN, d->y, 8.5, false, avail, false) + 12;
    cairo_set_source_rgb(d->cr, 0, 0, 0);
    draw_chart(d, s);
    col_widths(d, cols, rows, w, n);
    if (d->y + 40 > bottom())
        new_page(d);
    header_row(d, cols, w, n);
    cairo_set_line_width(d->cr, 0.3);
    cJSON_ArrayForEach(r, rows)
    {
        PangoLayout *ls[64];
        double h = 0, x = MARGIN;
        int m = DTM_MIN(n, 64);
        /* text cells wrap (the row grows), numbers stay on one line */
        for (int j = 0; j < m; j++) {
            const char *type = str_of(cJSON_GetArrayItem(cols, j), "type");
            int pw, ph;
            cell_fmt(cJSON_GetArrayItem(r, j), type, d->vi, true, cell, sizeof(cell));
            ls[j] = layout(d, cell, 8, false, w[j] - 2 * CELL_PAD, !is_text(type));
            if (!is_text(type))
                pango_layout_set_alignment(ls[j], PANGO_ALIGN_RIGHT);
            pango_layout_get_size(ls[j], &pw, &ph);
            h = DTM_MAX(h, (double)ph / PANGO_SCALE);
        }
        h += 2 * CELL_PAD;
        if (d->y + h > bottom()) {
            /* the table goes on on the next page, under its header again */
            new_page(d);
            snprintf(cont, sizeof(cont), "%s (%s)", str_of(s, "title"),
                     d->vi ? "tiếp theo" : "continued");
            d->y += text_at(d, cont, MARGIN, d->y, 10, true, avail, false) + 6;
            header_row(d, cols, w, n);
        }
        if (i++ % 2) {
            cairo_set_source_rgb(d->cr, 0.96, 0.96, 0.96);
            cairo_rectangle(d->cr, MARGIN, d->y, avail, h);
            cairo_fill(d->cr);
            cairo_set_source_rgb(d->cr, 0, 0, 0);
        }
        for (int j = 0; j < m; j++) {
            cairo_move_to(d->cr, x + CELL_PAD, d->y + CELL_PAD);
            pango_cairo_show_layout(d->cr, ls[j]);
            g_object_unref(ls[j]);
            x += w[j];
        }
        d->y += h;
        cairo_set_source_rgb(d->cr, 0.8, 0.8, 0.8);
        cairo_move_to(d->cr, MARGIN, d->y);
        cairo_line_to(d->cr, PAGE_W - MARGIN, d->y);
        cairo_stroke(d->cr);
        cairo_set_source_rgb(d->cr, 0, 0, 0);
    }
    if (i == 0) {
        cairo_set_source_rgb(d->cr, 0.4, 0.4, 0.4);
        d->y += text_at(d, d->vi ? "Không có dữ liệu trong kỳ." : "No data in the period.", MARGIN,
                        d->y + 4, 9, false, avail, false) +
                8;
        cairo_set_source_rgb(d->cr, 0, 0, 0);
    }
    free(w);
}

/* One pass: every page into out (NULL: counting only). The page count. */
static int pdf_pass(const cJSON *doc, struct dtm_buf *out, int pages, int *count)
{
    struct pdf d = {.vi = strcmp(str_of(doc, "lang"), "en") != 0, .pages = pages};
    char ft[300];
    const cJSON *s;
    cairo_status_t cs;
    d.surf = cairo_pdf_surface_create_for_stream(pdf_write, out, PAGE_W, PAGE_H);
    if (cairo_surface_status(d.surf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(d.surf);
        return DTM_ENOMEM;
    }
    cairo_pdf_surface_set_metadata(d.surf, CAIRO_PDF_METADATA_TITLE, str_of(doc, "title"));
    cairo_pdf_surface_set_metadata(d.surf, CAIRO_PDF_METADATA_CREATOR, "DTM");
    d.cr = cairo_create(d.surf);
    snprintf(ft, sizeof(ft), "%s — %s", str_of(doc, "title"), str_of(doc, "period"));
    d.footer_title = ft;
    title_page(&d, doc);
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(doc, "sections")) draw_section(&d, s);
    footer(&d);
    cairo_show_page(d.cr);
    cs = cairo_status(d.cr);
    cairo_destroy(d.cr);
    cairo_surface_finish(d.surf);
    if (cs == CAIRO_STATUS_SUCCESS)
        cs = cairo_surface_status(d.surf);
    cairo_surface_destroy(d.surf);
    *count = d.page;
    if (out && out->err)
        return out->err;
    return cs == CAIRO_STATUS_SUCCESS ? DTM_OK : DTM_EIO;
}

static int render_pdf(const cJSON *doc, struct dtm_buf *b)
{
    int pages = 0, n = 0, rc;
    if ((rc = pdf_pass(doc, NULL, 0, &pages)))
        return rc;
    return pdf_pass(doc, b, pages, &n);
}

int dtm_report_render(const cJSON *doc, enum dtm_report_format f, const char *tmpdir,
                      struct dtm_buf *out)
{
    char *text;
    int rc;
    if (!well_formed(doc))
        return DTM_EMALFORMED;
    switch (f) {
    case DTM_REPORT_JSON:
        if (!(text = cJSON_PrintUnformatted(doc)))
            return DTM_ENOMEM;
        rc = dtm_buf_add(out, text, strlen(text));
        cJSON_free(text);
        return rc;
    case DTM_REPORT_CSV:
        return render_csv(doc, out);
    case DTM_REPORT_XLSX:
        return render_xlsx(doc, tmpdir, out);
    case DTM_REPORT_PDF:
        return render_pdf(doc, out);
    }
    return DTM_EINVAL;
}
