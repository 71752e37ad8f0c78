/* fuzz/conf.c — libFuzzer driver for dtm.conf parsing (src/conf/conf.c): any input is either
 * accepted or refused with a reason naming the problem; never a crash, a leak or a value outside
 * the table's bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dtm_conf c;
    char err[512] = "";
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* inih reads a C string; text after a NUL is simply not seen */
    dtm_conf_defaults(&c, "/fuzz");
    if (dtm_conf_load_string(&c, text, "fuzz.conf", err, sizeof(err)) != DTM_OK) {
        if (err[0] == '\0')
            abort(); /* a refusal always says why */
    } else if (c.threads < 0 || c.threads > 256 || c.max_records < 1 || c.max_body < 1024) {
        abort(); /* accepted values stay inside the table's bounds */
    }
    free(text);
    return 0;
}
