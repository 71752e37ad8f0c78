/* stats/export.c — stored records written out (T3.4) as they are stored: the one formatting of
 * `dtm export` (cli/export.c) and of GET /api/v1/datasets/{code}/records (api/records.c). Each
 * stored record is read back with the JSON decoder of ingest/ (exact number texts) into
 * NUL-terminated copies, so that a value can be a spreadsheet cell or a filter's operand. */
#include "ingest/decode.h"
#include "stats/stats.h"

#include <string.h>

int dtm_export_format_parse(const char *name, enum dtm_export_format *out)
{
    static const struct {
        const char *name;
        enum dtm_export_format fmt;
    } map[] = {{"csv", DTM_EXPORT_CSV},
               {"json", DTM_EXPORT_JSON},
               {"ndjson", DTM_EXPORT_NDJSON},
               {"xml", DTM_EXPORT_XML},
               {"xlsx", DTM_EXPORT_XLSX}};
    for (size_t i = 0; name && i < DTM_ARRAY_LEN(map); i++)
        if (strcmp(name, map[i].name) == 0) {
            *out = map[i].fmt;
            return DTM_OK;
        }
    return DTM_EINVAL;
}

void dtm_export_row_init(struct dtm_export_row *row, const struct dtm_dataset *ds)
{
    memset(row, 0, sizeof(*row));
    row->ds = ds;
    dtm_buf_init(&row->text, 64 << 20); /* a stored record is far smaller */
}

void dtm_export_row_free(struct dtm_export_row *row)
{
    dtm_buf_free(&row->text);
}

int dtm_export_row_read(struct dtm_export_row *row, struct dtm_str content)
{
    struct dtm_in_record rec;
    struct dtm_decode_error err;
    struct dtm_decoder *d = dtm_decoder_open(DTM_FMT_JSON, content.p, content.n);
    size_t off[DTM_EXPORT_MAX_FIELDS][2];
    const struct dtm_dataset *ds = row->ds;
    if (!d)
        return DTM_ENOMEM;
    row->content = content;
    row->nfields = 0;
    for (size_t i = 0; i < DTM_EXPORT_MAX_FIELDS; i++)
        row->pos[i] = -1;
    if (dtm_decoder_next(d, &rec, &err) != 1) {
        dtm_decoder_close(d);
        return DTM_EMALFORMED;
    }
    /* copy names and values (NUL-terminated) before the decoder goes; the slices are set once
     * the buffer stopped moving */
    dtm_buf_reset(&row->text);
    for (size_t k = 0; k < rec.nfields && k < DTM_EXPORT_MAX_FIELDS; k++) {
        if (rec.f[k].kind == DTM_IN_NULL)
            continue;
        off[row->nfields][0] = row->text.n;
        dtm_buf_add(&row->text, rec.f[k].name.p, rec.f[k].name.n);
        dtm_buf_addch(&row->text, '\0');
        off[row->nfields][1] = row->text.n;
        dtm_buf_add(&row->text, rec.f[k].value.p, rec.f[k].value.n);
        dtm_buf_addch(&row->text, '\0');
        row->name[row->nfields].n = rec.f[k].name.n;
        row->value[row->nfields].n = rec.f[k].value.n;
        row->nfields++;
    }
    dtm_decoder_close(d);
    if (row->text.err)
        return row->text.err;
    for (size_t k = 0; k < row->nfields; k++) {
        row->name[k].p = row->text.p + off[k][0];
        row->value[k].p = row->text.p + off[k][1];
        for (size_t i = 0; i < ds->nfields && i < DTM_EXPORT_MAX_FIELDS; i++)
            if (row->pos[i] < 0 && dtm_str_eqc(row->name[k], ds->fields[i].name)) {
                row->pos[i] = (int)k;
                break;
            }
    }
    return DTM_OK;
}

const char *dtm_export_get(const struct dtm_export_row *row, size_t f)
{
    if (f >= DTM_EXPORT_MAX_FIELDS || row->pos[f] < 0)
        return NULL;
    return row->value[row->pos[f]].p;
}

void dtm_export_csv_header(const struct dtm_dataset *ds, struct dtm_buf *out)
{
    for (size_t i = 0; i < ds->nfields; i++) {
        if (i)
            dtm_buf_addch(out, ',');
        dtm_buf_csv(out, dtm_str_c(ds->fields[i].name));
    }
    dtm_buf_addc(out, "\r\n");
}

void dtm_export_append(const struct dtm_export_row *row, enum dtm_export_format fmt, int64_t n,
                       struct dtm_buf *out)
{
    switch (fmt) {
    case DTM_EXPORT_JSON:
        dtm_buf_addc(out, n ? ",\n" : "\n");
        dtm_buf_add(out, row->content.p, row->content.n);
        break;
    case DTM_EXPORT_NDJSON:
        dtm_buf_add(out, row->content.p, row->content.n);
        dtm_buf_addch(out, '\n');
        break;
    case DTM_EXPORT_CSV:
        for (size_t i = 0; i < row->ds->nfields; i++) {
            const char *v = dtm_export_get(row, i);
            if (i)
                dtm_buf_addch(out, ',');
            if (v)
                dtm_buf_csv(out, row->value[row->pos[i]]);
        }
        dtm_buf_addc(out, "\r\n");
        break;
    case DTM_EXPORT_XML:
        /* element names are field names of the definition: [a-z0-9_] */
        dtm_buf_addc(out, "  <record>");
        for (size_t k = 0; k < row->nfields; k++) {
            dtm_buf_printf(out, "<%.*s>", (int)row->name[k].n, row->name[k].p);
            dtm_buf_xml(out, row->value[k]);
            dtm_buf_printf(out, "</%.*s>", (int)row->name[k].n, row->name[k].p);
        }
        dtm_buf_addc(out, "</record>\n");
        break;
    case DTM_EXPORT_XLSX:
        break;
    }
}
