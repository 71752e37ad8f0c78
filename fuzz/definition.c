/* fuzz/definition.c — libFuzzer driver for dataset definitions (src/dict/dataset.c): any input
 * either parses into a definition whose canonical JSON parses again to the same text, or is
 * refused with a reason; never a crash or a leak. Seeds: the built-in definitions
 * (the JSON files in src/dict/builtin). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dict/dict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dtm_dataset *ds = NULL, *again = NULL;
    char err[256];
    if (dtm_dataset_parse((struct dtm_str){(const char *)data, size}, &ds, err, sizeof(err)) !=
        DTM_OK) {
        if (err[0] == '\0')
            abort(); /* a refusal always says why */
        return 0;
    }
    if (dtm_dataset_parse(dtm_str_c(ds->json), &again, err, sizeof(err)) != DTM_OK ||
        strcmp(ds->json, again->json) != 0)
        abort(); /* the canonical form must be a fixed point */
    dtm_dataset_free(again);
    dtm_dataset_free(ds);
    return 0;
}
