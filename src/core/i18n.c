/* core/i18n.c — per-request language (T1.2): Vietnamese by default, English on request.
 * Translations come from po/vi.po, compiled into a sorted table by scripts/po2c.py. */
#include "core/core.h"

#include <string.h>

struct dtm_catalog_entry {
    const char *id;
    const char *vi;
};
extern const struct dtm_catalog_entry dtm_catalog[];
extern const size_t dtm_catalog_len;

const char *dtm_tr(enum dtm_lang lang, const char *msgid)
{
    size_t lo = 0, hi = dtm_catalog_len;
    if (lang == DTM_LANG_EN)
        return msgid;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(msgid, dtm_catalog[mid].id);
        if (c == 0)
            return dtm_catalog[mid].vi;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return msgid;
}

const char *dtm_lang_code(enum dtm_lang lang)
{
    return lang == DTM_LANG_EN ? "en" : "vi";
}

/* Accept-Language: "en-US,en;q=0.9,vi;q=0.8". Picks the supported language with the highest
 * q (first wins on ties); anything unparseable counts as q=1. */
enum dtm_lang dtm_lang_from_header(struct dtm_str h)
{
    enum dtm_lang best = DTM_LANG_VI;
    int best_q = -1;
    size_t i = 0;
    while (i < h.n) {
        size_t start = i;
        while (i < h.n && h.p[i] != ',')
            i++;
        struct dtm_str item = {h.p + start, i - start};
        i++;
        size_t semi = 0;
        while (semi < item.n && item.p[semi] != ';')
            semi++;
        struct dtm_str tag = dtm_str_trim((struct dtm_str){item.p, semi});
        int q = 1000;
        if (semi < item.n) {
            struct dtm_str par =
                dtm_str_trim((struct dtm_str){item.p + semi + 1, item.n - semi - 1});
            if (par.n >= 3 && (par.p[0] == 'q' || par.p[0] == 'Q') && par.p[1] == '=') {
                q = 0;
                int scale = 1000;
                for (size_t k = 2; k < par.n && scale; k++) {
                    char c = par.p[k];
                    if (c == '.')
                        continue;
                    if (c < '0' || c > '9')
                        break;
                    q += (c - '0') * scale;
                    scale /= 10;
                }
            }
        }
        enum dtm_lang l;
        if (tag.n >= 2 && (tag.n == 2 || tag.p[2] == '-') &&
            dtm_str_ieqc((struct dtm_str){tag.p, 2}, "en"))
            l = DTM_LANG_EN;
        else if (tag.n >= 2 && (tag.n == 2 || tag.p[2] == '-') &&
                 dtm_str_ieqc((struct dtm_str){tag.p, 2}, "vi"))
            l = DTM_LANG_VI;
        else
            continue;
        if (q > best_q) {
            best_q = q;
            best = l;
        }
    }
    return best_q > 0 ? best : DTM_LANG_VI;
}

int dtm_buf_trf(struct dtm_buf *b, enum dtm_lang lang, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = dtm_buf_vprintf(b, dtm_tr(lang, fmt), ap);
    va_end(ap);
    return rc;
}
