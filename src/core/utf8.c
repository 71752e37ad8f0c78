/* core/utf8.c — UTF-8 validation (cJSON and CSV input are not validated elsewhere) and text
 * positions for error messages. */
#include "core/core.h"

size_t dtm_utf8_check(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80)
                return i;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80)
                return i;
            if (c == 0xE0 && s[i + 1] < 0xA0) /* overlong */
                return i;
            if (c == 0xED && s[i + 1] >= 0xA0) /* surrogate */
                return i;
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                return i;
            if (c == 0xF0 && s[i + 1] < 0x90)
                return i;
            if (c == 0xF4 && s[i + 1] >= 0x90)
                return i;
            i += 4;
        } else {
            return i;
        }
    }
    return n;
}

void dtm_text_pos(const char *p, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, start = 0;
    for (size_t i = 0; i < off; i++)
        if (p[i] == '\n') {
            l++;
            start = i + 1;
        }
    *line = l;
    *col = off - start + 1;
}
