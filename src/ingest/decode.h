/* decode — bytes → records of raw fields (name → text), the first step of the data flow.
 * One interface, four formats side by side: json.c (one object or an array of objects),
 * ndjson.c (one object a line), csv.c (RFC 4180 with a header row), xml.c
 * (<records><record><field>value</field>…</record></records>, libxml2, no network,
 * no DTD, no entities). A decoder never allocates per field: names and values are
 * slices into the input, or into the decoder's scratch memory when a value had to be
 * unescaped; they stay valid until the next call to next() or close(). */
#ifndef DTM_DECODE_H
#define DTM_DECODE_H

#include "core/core.h"

#define DTM_MAX_FIELDS 64 /* fields one record may carry; more → malformed "too_many_fields" */

enum dtm_format {
    DTM_FMT_JSON,   /* application/json */
    DTM_FMT_NDJSON, /* application/x-ndjson, application/jsonl */
    DTM_FMT_XML,    /* application/xml, text/xml */
    DTM_FMT_CSV,    /* text/csv */
};

/* Maps a Content-Type header value (parameters such as charset ignored; charset other
 * than utf-8 → DTM_EUNSUPPORTED) to a format. DTM_OK or DTM_EUNSUPPORTED. */
int dtm_format_from_content_type(struct dtm_str content_type, enum dtm_format *out);
const char *dtm_format_name(enum dtm_format f);

enum dtm_in_kind {
    DTM_IN_STRING, /* JSON string, or any CSV/XML text */
    DTM_IN_NUMBER, /* JSON number: value is its exact text, e.g. "12.50" */
    DTM_IN_BOOL,   /* JSON true/false: value is "true" or "false" */
    DTM_IN_NULL,   /* JSON null, an empty CSV cell, or an empty XML element: treated as absent */
};

struct dtm_in_field {
    struct dtm_str name;
    struct dtm_str value;
    enum dtm_in_kind kind;
};

struct dtm_in_record {
    size_t nfields;
    struct dtm_in_field f[DTM_MAX_FIELDS];
    size_t line; /* 1-based line where the record starts (for errors of batch rows) */
};

/* A syntax error: where, and what in a few English words (localised by the caller from
 * `code`). */
struct dtm_decode_error {
    size_t offset; /* byte offset from the start of the input */
    size_t line;   /* 1-based */
    size_t col;    /* 1-based byte within the line */
    const char
        *code;        /* static machine code: "syntax", "utf8", "duplicate_field", "nested_value",
                         "too_many_fields", "not_an_object", "empty", "csv_columns", "xml_dtd", ... */
    char detail[128]; /* short English detail, e.g. "expected ':' after object key" */
};

struct dtm_decoder;

/* Opens a decoder over a whole input held in memory (the caller keeps it alive).
 * Returns NULL only on allocation failure. */
struct dtm_decoder *dtm_decoder_open(enum dtm_format f, const char *p, size_t n);

/* Produces the next record.
 * Returns 1 when *out holds a record, 0 at the end of input, DTM_EMALFORMED with *err filled
 * when the input is broken at that point. After an error, a decoder whose format is line-based
 * (NDJSON, CSV) may be called again and continues with the next line; JSON and XML stop
 * (next() keeps returning the same error). */
int dtm_decoder_next(struct dtm_decoder *d, struct dtm_in_record *out,
                     struct dtm_decode_error *err);

/* Whether the input was a single record rather than a collection (JSON object at top level,
 * XML with a <record> root) — only known after the first next(). */
bool dtm_decoder_single(const struct dtm_decoder *d);
/* Whether the decoder continues after a broken line (NDJSON, CSV). */
bool dtm_decoder_resumable(const struct dtm_decoder *d);

/* How many bytes of the input were read so far (approximate for XML, whose parser reads ahead):
 * a batch's progress, and the part of a mapped file that is no longer needed. */
size_t dtm_decoder_offset(const struct dtm_decoder *d);

void dtm_decoder_close(struct dtm_decoder *d);

#endif
