/* fuzz/soap.c — libFuzzer driver for the SOAP envelope (soap/soap.c): the input is read as a SOAP
 * 1.1 and as a SOAP 1.2 request; a read envelope gives up its arguments and its records (as the
 * REST XML body, which the XML decoder then reads, as SubmitRecords does); the input is also
 * taken as a problem's JSON and made into a fault in both versions. Never a crash, an overflow
 * or a leak; nothing is ever fetched (no network, no DTD, no entities). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/decode.h"
#include "soap/soap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dtm_str body = {(const char *)data, size};
    for (int v = DTM_SOAP_11; v <= DTM_SOAP_12; v++) {
        struct dtm_soap_request q;
        struct dtm_soap_refusal why;
        struct dtm_buf b;
        if (dtm_soap_request_read(body, (enum dtm_soap_version)v, &q, &why) == DTM_OK) {
            struct dtm_arena a;
            const char *w[9];
            bool many;
            char bad[80];
            dtm_arena_init(&a, 4096);
            (void)dtm_soap_arg(&q, "dataset", &a, &many);
            (void)dtm_soap_args(&q, "where", &a, w, 9);
            dtm_buf_init(&b, 1 << 24);
            if (dtm_soap_records_xml(&q, "transactions", &b, bad, sizeof(bad)) == DTM_OK) {
                struct dtm_decoder *d = dtm_decoder_open(DTM_FMT_XML, b.p, b.n);
                struct dtm_in_record *r = malloc(sizeof(*r));
                struct dtm_decode_error e;
                while (d && r && dtm_decoder_next(d, r, &e) == 1)
                    ;
                free(r);
                if (d)
                    dtm_decoder_close(d);
            }
            dtm_buf_free(&b);
            dtm_arena_free(&a);
        }
        dtm_soap_request_free(&q);
        dtm_buf_init(&b, 1 << 24);
        (void)dtm_soap_fault(&b, (enum dtm_soap_version)v, (const char *)data, size, DTM_LANG_EN,
                             v == DTM_SOAP_12 ? 5 : -1);
        dtm_buf_free(&b);
    }
    return 0;
}
