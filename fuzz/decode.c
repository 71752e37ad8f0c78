/* fuzz/decode.c — libFuzzer driver for the body decoders (src/ingest/): runs the JSON, NDJSON,
 * CSV and XML decoders over the same input to the end, touching every byte of every slice
 * they hand out, and checks the invariants callers rely on: a record never has more than
 * DTM_MAX_FIELDS fields, names are non-empty for CSV, an error always has a code, a position
 * inside the input and a line/col that agree with the offset, the non-resumable formats
 * (JSON, XML) repeat their first error, and every step of the resumable ones makes progress.
 *
 * Built with -DDTM_FUZZ_FORMAT=DTM_FMT_JSON (NDJSON, CSV, XML) it is the driver of that one
 * decoder (fuzz_json, fuzz_ndjson, fuzz_csv, fuzz_xml: coverage feedback per decoder); without
 * it, of all four at once (fuzz_decode). fuzz/meson.build builds the replays of the seed corpora
 * (`make test`) and, with clang, the libFuzzer binaries (`make fuzz`).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static void touch(struct dtm_str s)
{
    unsigned h = 0;
    for (size_t i = 0; i < s.n; i++)
        h = h * 31 + (unsigned char)s.p[i];
    sink += h;
}

static void run(enum dtm_format f, const char *p, size_t n)
{
    struct dtm_decoder *d = dtm_decoder_open(f, p, n);
    struct dtm_in_record rec;
    struct dtm_decode_error err;
    size_t steps = 0, nerr = 0, last_off = SIZE_MAX;
    const char *last_code = NULL;
    int rc;

    if (!d)
        return;
    for (;;) {
        rc = dtm_decoder_next(d, &rec, &err);
        if (rc == 0)
            break;
        if (rc == 1) {
            if (rec.nfields > DTM_MAX_FIELDS || rec.line == 0)
                abort();
            for (size_t i = 0; i < rec.nfields; i++) {
                touch(rec.f[i].name);
                touch(rec.f[i].value);
                if (rec.f[i].kind == DTM_IN_NULL && rec.f[i].value.n)
                    abort();
                if (f == DTM_FMT_CSV && rec.f[i].name.n == 0)
                    abort();
            }
        } else if (rc == DTM_EMALFORMED) {
            size_t line, col;
            if (!err.code || err.offset > n || err.line == 0 || err.col == 0)
                abort();
            /* recounted from the start: for the first errors only, or the check itself
             * would be quadratic on inputs with an error on every line */
            if (++nerr <= 16) {
                dtm_text_pos(p, err.offset, &line, &col);
                if (line != err.line || col != err.col)
                    abort();
            }
            if (f == DTM_FMT_JSON || f == DTM_FMT_XML) {
                struct dtm_decode_error again;
                if (dtm_decoder_next(d, &rec, &again) != DTM_EMALFORMED ||
                    again.offset != err.offset || strcmp(again.code, err.code) != 0)
                    abort();
                break;
            }
            /* a resumable decoder repeats only an error it cannot skip (a CSV header) */
            if (err.offset == last_off && last_code && strcmp(err.code, last_code) == 0)
                break;
            last_off = err.offset;
            last_code = err.code;
        } else {
            break; /* out of memory */
        }
        if (++steps > n + 2) /* every step consumes input: no endless loop */
            abort();
    }
    (void)dtm_decoder_single(d);
    dtm_decoder_close(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so ASan catches any read past the end. */
    char *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    if (size)
        memcpy(p, data, size);
#ifdef DTM_FUZZ_FORMAT
    run(DTM_FUZZ_FORMAT, p, size);
#else
    run(DTM_FMT_JSON, p, size);
    run(DTM_FMT_NDJSON, p, size);
    run(DTM_FMT_CSV, p, size);
    run(DTM_FMT_XML, p, size);
#endif
    free(p);
    return 0;
}
