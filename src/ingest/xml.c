/* xml.c — the XML decoder: <records><record><field>value</field>…</record>…</records>, or a
 * lone <record> root (then the body was a single record). Each child element of a record is a
 * field named by its local name; an empty element is DTM_IN_NULL; attributes, comments and
 * processing instructions are ignored; text is taken as is (not trimmed).
 *
 * Parsing is libxml2's streaming reader (xmlReaderForMemory), so memory stays flat however
 * long the document is and the same code can later read a batch file through xmlReaderForIO.
 * Safety (T-XML): no network (XML_PARSE_NONET), entities never substituted (no
 * XML_PARSE_NOENT), no DTD loading or validation, and any DOCTYPE at all is refused with
 * "xml_dtd" before libxml2 sees the document — that shuts out XXE and billion-laughs payloads
 * whatever libxml2's own limits are; and the process-wide external entity loader refuses every
 * load. libxml2 errors are captured per reader (structured error handler), never through
 * libxml2's global error state, so several threads can decode at once.
 *
 * Positions: libxml2 gives errors as line and character column, converted here to a byte
 * offset. For errors of our own (nested element, unknown root, …) we need the byte where an
 * element starts: a tiny forward scanner finds the '<' of each start tag in document order,
 * skipping comments, CDATA sections, processing instructions and end tags — the reader reports
 * elements in the same order, so the two stay in step. */
#include "ingest/decode_impl.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlreader.h>

#if LIBXML_VERSION >= 21200
#define XML_ERROR_ARG const xmlError *
#else
#define XML_ERROR_ARG xmlErrorPtr
#endif

enum xml_state { XML_ST_START, XML_ST_RECORDS, XML_ST_END };

struct xml_decoder {
    struct dtm_decoder super;
    xmlTextReaderPtr reader;
    enum xml_state state;
    size_t scan; /* where the search for the next start tag resumes */
    size_t elem; /* offset of the '<' of the element the reader is on */
    struct dtm_textpos tp;
    struct dtm_scratch sc;
    /* the first error libxml2 reported */
    bool xerr;
    int xline, xcol;
    char xmsg[96];
};

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

/* Defence in depth (T2.3): whatever a document or a future caller's options ask for, libxml2
 * in this process loads no external entity, DTD or XInclude — not from a file, not over the
 * network. */
static xmlParserInputPtr no_external_entities(const char *url, const char *id,
                                              xmlParserCtxtPtr ctxt)
{
    (void)url;
    (void)id;
    (void)ctxt;
    return NULL;
}

static void xml_init(void)
{
    xmlInitParser(); /* must run once before threads use libxml2 */
    xmlSetExternalEntityLoader(no_external_entities);
}

static struct dtm_decoder *xml_open(const char *p, size_t n)
{
    struct xml_decoder *d;

    pthread_once(&xml_once, xml_init);
    d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    dtm_decoder_base_init(&d->super, &dtm_xml_ops, p, n);
    dtm_textpos_init(&d->tp);
    return &d->super;
}

static void xml_close(struct dtm_decoder *base)
{
    struct xml_decoder *d = (struct xml_decoder *)base;
    if (d->reader)
        xmlFreeTextReader(d->reader);
    dtm_scratch_free(&d->sc);
    free(d);
}

static void on_xml_error(void *arg, XML_ERROR_ARG e)
{
    struct xml_decoder *d = arg;
    size_t len;

    if (!e || e->level < XML_ERR_ERROR || d->xerr)
        return;
    d->xerr = true;
    d->xline = e->line;
    d->xcol = e->int2;
    snprintf(d->xmsg, sizeof d->xmsg, "%s", e->message ? e->message : "malformed XML");
    len = strlen(d->xmsg);
    while (len && (d->xmsg[len - 1] == '\n' || d->xmsg[len - 1] == ' '))
        d->xmsg[--len] = '\0';
}

/* First occurrence of the NUL-terminated `s` in p[i..n), or n. */
static size_t find(const char *p, size_t n, size_t i, const char *s)
{
    size_t k = strlen(s);
    while (i + k <= n) {
        const char *q = memchr(p + i, s[0], n - i - k + 1);
        if (!q)
            break;
        i = (size_t)(q - p);
        if (memcmp(q, s, k) == 0)
            return i;
        i++;
    }
    return n;
}

static bool starts(const char *p, size_t n, size_t i, const char *s)
{
    size_t k = strlen(s);
    return n - i >= k && memcmp(p + i, s, k) == 0;
}

/* Skips over the construct at i that ends with `close`. */
static size_t skip_to(const char *p, size_t n, size_t i, const char *close)
{
    size_t e = find(p, n, i, close);
    return e == n ? n : e + strlen(close);
}

/* The offset of the next start tag's '<' (see the top of the file). */
static size_t next_start_tag(struct xml_decoder *d)
{
    const char *p = d->super.p;
    size_t n = d->super.n, i = d->scan;

    while (i < n) {
        const char *q = memchr(p + i, '<', n - i);
        if (!q)
            break;
        i = (size_t)(q - p);
        if (starts(p, n, i, "<!--"))
            i = skip_to(p, n, i + 4, "-->");
        else if (starts(p, n, i, "<![CDATA["))
            i = skip_to(p, n, i + 9, "]]>");
        else if (starts(p, n, i, "<?"))
            i = skip_to(p, n, i + 2, "?>");
        else if (i + 1 < n && (p[i + 1] == '/' || p[i + 1] == '!'))
            i++;
        else {
            d->scan = i + 1;
            return i;
        }
    }
    d->scan = n;
    return n;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool all_ws(const char *s)
{
    for (; *s; s++)
        if (!is_ws(*s))
            return false;
    return true;
}

static int xml_fail(struct xml_decoder *d, struct dtm_decode_error *err, size_t off,
                    const char *code, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int xml_fail(struct xml_decoder *d, struct dtm_decode_error *err, size_t off,
                    const char *code, const char *fmt, ...)
{
    va_list ap;

    err->offset = off;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
    dtm_textpos_locate(&d->tp, d->super.p, err);
    return DTM_EMALFORMED;
}

/* Turns libxml2's first error (line, character column) into ours (byte offset). */
static int xml_fail_libxml(struct xml_decoder *d, struct dtm_decode_error *err)
{
    const char *p = d->super.p;
    size_t n = d->super.n, ls = 0, line = 1, off;

    if (!d->xerr || d->xline <= 0)
        return xml_fail(d, err, d->scan, "syntax", "malformed XML");
    while (line < (size_t)d->xline) {
        const char *nl = ls < n ? memchr(p + ls, '\n', n - ls) : NULL;
        if (!nl)
            break;
        ls = (size_t)(nl - p) + 1;
        line++;
    }
    off = ls;
    for (int c = 1; c < d->xcol && off < n && p[off] != '\n'; c++) {
        size_t len = dtm_utf8_seq((const unsigned char *)p + off, n - off);
        off += len ? len : 1;
    }
    dtm_decode_fail(err, off, "syntax", "%s", d->xmsg);
    err->line = line;
    err->col = off - ls + 1;
    return DTM_EMALFORMED;
}

/* Reads the next node: 1, 0 at the end of the document, or DTM_EMALFORMED. */
static int rd(struct xml_decoder *d, struct dtm_decode_error *err)
{
    int r = xmlTextReaderRead(d->reader);

    if (r < 0 || d->xerr)
        return xml_fail_libxml(d, err);
    if (r == 0)
        return 0;
    switch (xmlTextReaderNodeType(d->reader)) {
    case XML_READER_TYPE_ELEMENT:
        d->elem = next_start_tag(d);
        break;
    case XML_READER_TYPE_DOCUMENT_TYPE: /* the prolog check should have caught it */
        return xml_fail(d, err, d->scan, "xml_dtd", "a DOCTYPE is not allowed");
    default:
        break;
    }
    return 1;
}

/* Reads to the end of the document so that a broken tail is reported. */
static int drain(struct xml_decoder *d, struct dtm_decode_error *err)
{
    int rc;
    while ((rc = rd(d, err)) == 1)
        ;
    return rc;
}

static struct dtm_str local_name(struct xml_decoder *d)
{
    /* Interned in the reader's dictionary: valid until xmlFreeTextReader (close). */
    const xmlChar *name = xmlTextReaderConstLocalName(d->reader);
    return dtm_str_c(name ? (const char *)name : "");
}

/* Reads the content of a field element into scratch (concatenating text and CDATA). */
static int read_value(struct xml_decoder *d, struct dtm_in_field *f, struct dtm_decode_error *err)
{
    char *v = NULL;
    size_t vn = 0;
    int rc;

    for (;;) {
        rc = rd(d, err);
        if (rc <= 0)
            return rc ? rc : xml_fail(d, err, d->super.n, "syntax", "unexpected end");
        switch (xmlTextReaderNodeType(d->reader)) {
        case XML_READER_TYPE_TEXT:
        case XML_READER_TYPE_CDATA:
        case XML_READER_TYPE_WHITESPACE:
        case XML_READER_TYPE_SIGNIFICANT_WHITESPACE: {
            const char *t = (const char *)xmlTextReaderConstValue(d->reader);
            size_t tn = t ? strlen(t) : 0;
            if (!tn)
                break;
            v = v ? dtm_scratch_grow(&d->sc, v, vn, vn + tn) : dtm_scratch_alloc(&d->sc, tn);
            if (!v)
                return DTM_ENOMEM;
            memcpy(v + vn, t, tn);
            vn += tn;
            break;
        }
        case XML_READER_TYPE_ELEMENT:
            return xml_fail(d, err, d->elem, "nested_value",
                            "field <%s> contains an element; records must be flat",
                            (const char *)f->name.p);
        case XML_READER_TYPE_END_ELEMENT:
            f->value = vn ? (struct dtm_str){v, vn} : DTM_STR_NULL;
            f->kind = vn ? DTM_IN_STRING : DTM_IN_NULL;
            return DTM_OK;
        case XML_READER_TYPE_COMMENT:
        case XML_READER_TYPE_PROCESSING_INSTRUCTION:
            break;
        default:
            return xml_fail(d, err, d->elem, "syntax", "unexpected content in field <%s>",
                            (const char *)f->name.p);
        }
    }
}

/* The reader is on a <record> start tag. */
static int read_record(struct xml_decoder *d, struct dtm_in_record *out,
                       struct dtm_decode_error *err)
{
    size_t nf = 0, rec = d->elem;
    int rc;

    dtm_textpos_advance(&d->tp, d->super.p, d->elem);
    out->line = d->tp.line;
    if (xmlTextReaderIsEmptyElement(d->reader))
        return 1;
    for (;;) {
        rc = rd(d, err);
        if (rc <= 0)
            return rc ? rc : xml_fail(d, err, d->super.n, "syntax", "unexpected end");
        switch (xmlTextReaderNodeType(d->reader)) {
        case XML_READER_TYPE_END_ELEMENT:
            out->nfields = nf;
            return 1;
        case XML_READER_TYPE_ELEMENT: {
            struct dtm_in_field *f = &out->f[nf];
            if (nf == DTM_MAX_FIELDS)
                return xml_fail(d, err, d->elem, "too_many_fields",
                                "a record may have at most %d fields", DTM_MAX_FIELDS);
            f->name = local_name(d);
            for (size_t k = 0; k < nf; k++)
                if (dtm_str_eq(out->f[k].name, f->name))
                    return xml_fail(d, err, d->elem, "duplicate_field", "duplicate field <%s>",
                                    f->name.p);
            if (xmlTextReaderIsEmptyElement(d->reader)) {
                f->value = DTM_STR_NULL;
                f->kind = DTM_IN_NULL;
            } else {
                rc = read_value(d, f, err);
                if (rc)
                    return rc;
            }
            nf++;
            break;
        }
        case XML_READER_TYPE_TEXT:
        case XML_READER_TYPE_CDATA:
            if (!all_ws((const char *)xmlTextReaderConstValue(d->reader)))
                return xml_fail(d, err, rec, "syntax",
                                "text directly inside <record>, outside any field");
            break;
        default: /* whitespace, comments, processing instructions */
            break;
        }
    }
}

/* Before libxml2 sees the input: empty, UTF-8 and a DOCTYPE anywhere in the prolog. */
static int precheck(struct xml_decoder *d, struct dtm_decode_error *err)
{
    const char *p = d->super.p;
    size_t n = d->super.n, i = 0, bad;

    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < n && is_ws(p[i]))
        i++;
    if (i == n)
        return xml_fail(d, err, i, "empty", "the body is empty");
    if (n > INT_MAX)
        return xml_fail(d, err, 0, "too_large", "XML documents are limited to 2 GiB");
    bad = dtm_utf8_check(p, n);
    if (bad != n)
        return xml_fail(d, err, bad, "utf8", "invalid UTF-8 byte 0x%02X", (unsigned char)p[bad]);
    for (;;) {
        while (i < n && is_ws(p[i]))
            i++;
        if (starts(p, n, i, "<?"))
            i = skip_to(p, n, i + 2, "?>");
        else if (starts(p, n, i, "<!--"))
            i = skip_to(p, n, i + 4, "-->");
        else
            break;
    }
    if (starts(p, n, i, "<!DOCTYPE") || starts(p, n, i, "<!doctype"))
        return xml_fail(d, err, i, "xml_dtd", "a DOCTYPE is not allowed (no DTDs, no entities)");
    return DTM_OK;
}

static int xml_start(struct xml_decoder *d, struct dtm_in_record *out, struct dtm_decode_error *err)
{
    struct dtm_str root;
    int rc = precheck(d, err);

    if (rc)
        return rc;
    d->reader = xmlReaderForMemory(d->super.p, (int)d->super.n, NULL, "UTF-8",
                                   XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                       XML_PARSE_IGNORE_ENC);
    if (!d->reader)
        return DTM_ENOMEM;
    xmlTextReaderSetStructuredErrorHandler(d->reader, on_xml_error, d);

    do {
        rc = rd(d, err);
        if (rc <= 0)
            return rc ? rc : xml_fail(d, err, d->super.n, "empty", "no root element");
    } while (xmlTextReaderNodeType(d->reader) != XML_READER_TYPE_ELEMENT);

    root = local_name(d);
    if (dtm_str_eqc(root, "record")) {
        d->super.single = true;
        rc = read_record(d, out, err);
        if (rc != 1)
            return rc;
        rc = drain(d, err);
        d->state = XML_ST_END;
        return rc ? rc : 1;
    }
    if (!dtm_str_eqc(root, "records"))
        return xml_fail(d, err, d->elem, "syntax",
                        "unexpected root element <%s>, expected <records> or <record>", root.p);
    if (xmlTextReaderIsEmptyElement(d->reader)) {
        d->state = XML_ST_END;
        return drain(d, err);
    }
    d->state = XML_ST_RECORDS;
    return 2; /* go on with the records */
}

static int xml_next(struct dtm_decoder *base, struct dtm_in_record *out,
                    struct dtm_decode_error *err)
{
    struct xml_decoder *d = (struct xml_decoder *)base;
    int rc;

    dtm_scratch_reset(&d->sc);
    if (d->state == XML_ST_START) {
        rc = xml_start(d, out, err);
        if (rc != 2)
            return rc;
    }
    if (d->state == XML_ST_END)
        return 0;
    for (;;) {
        rc = rd(d, err);
        if (rc <= 0)
            return rc ? rc : xml_fail(d, err, base->n, "syntax", "unexpected end");
        switch (xmlTextReaderNodeType(d->reader)) {
        case XML_READER_TYPE_ELEMENT: {
            struct dtm_str name = local_name(d);
            if (!dtm_str_eqc(name, "record"))
                return xml_fail(d, err, d->elem, "syntax",
                                "unexpected element <%s> in <records>, expected <record>", name.p);
            return read_record(d, out, err);
        }
        case XML_READER_TYPE_END_ELEMENT: /* </records> */
            d->state = XML_ST_END;
            return drain(d, err);
        case XML_READER_TYPE_TEXT:
        case XML_READER_TYPE_CDATA:
            if (!all_ws((const char *)xmlTextReaderConstValue(d->reader)))
                return xml_fail(d, err, d->scan, "syntax",
                                "text directly inside <records>, outside any record");
            break;
        default:
            break;
        }
    }
}

static size_t xml_offset(const struct dtm_decoder *base)
{
    const struct xml_decoder *d = (const struct xml_decoder *)base;
    long c = d->reader ? xmlTextReaderByteConsumed(d->reader) : 0;
    return c > 0 ? (size_t)c : d->elem;
}

const struct dtm_decoder_ops dtm_xml_ops = {
    .format = DTM_FMT_XML,
    .resumable = false,
    .open = xml_open,
    .next = xml_next,
    .close = xml_close,
    .offset = xml_offset,
};
