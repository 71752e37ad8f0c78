/* core/buf.c — bounded growable buffers with a sticky error (curl's dynbuf, SQLite's
 * sqlite3_str): builders append freely and check b->err once at the end. */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dtm_buf_init(struct dtm_buf *b, size_t max)
{
    b->p = NULL;
    b->n = 0;
    b->cap = 0;
    b->max = max;
    b->err = DTM_OK;
}

void dtm_buf_free(struct dtm_buf *b)
{
    free(b->p);
    dtm_buf_init(b, b->max);
}

void dtm_buf_reset(struct dtm_buf *b)
{
    b->n = 0;
    b->err = DTM_OK;
    if (b->p)
        b->p[0] = '\0';
}

int dtm_buf_reserve(struct dtm_buf *b, size_t extra)
{
    size_t need, cap;
    char *np;
    if (b->err)
        return b->err;
    if (extra > b->max || b->n > b->max - extra) {
        b->err = DTM_ETOOBIG;
        return b->err;
    }
    need = b->n + extra + 1;
    if (need <= b->cap)
        return DTM_OK;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    np = realloc(b->p, cap);
    if (!np) {
        b->err = DTM_ENOMEM;
        return b->err;
    }
    b->p = np;
    b->cap = cap;
    return DTM_OK;
}

int dtm_buf_add(struct dtm_buf *b, const void *p, size_t n)
{
    if (dtm_buf_reserve(b, n))
        return b->err;
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
    return DTM_OK;
}

int dtm_buf_addc(struct dtm_buf *b, const char *s)
{
    return dtm_buf_add(b, s, strlen(s));
}

int dtm_buf_addch(struct dtm_buf *b, char c)
{
    return dtm_buf_add(b, &c, 1);
}

int dtm_buf_vprintf(struct dtm_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int len;
    if (b->err)
        return b->err;
    va_copy(ap2, ap);
    len = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (len < 0) {
        b->err = DTM_EINVAL;
        return b->err;
    }
    if (dtm_buf_reserve(b, (size_t)len))
        return b->err;
    vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap);
    b->n += (size_t)len;
    return DTM_OK;
}

int dtm_buf_printf(struct dtm_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;
    va_start(ap, fmt);
    rc = dtm_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int dtm_buf_json_str(struct dtm_buf *b, struct dtm_str s)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;
    if (dtm_buf_reserve(b, s.n + 2))
        return b->err;
    b->p[b->n++] = '"';
    for (i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        dtm_buf_add(b, s.p + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            dtm_buf_add(b, "\\\"", 2);
            break;
        case '\\':
            dtm_buf_add(b, "\\\\", 2);
            break;
        case '\n':
            dtm_buf_add(b, "\\n", 2);
            break;
        case '\r':
            dtm_buf_add(b, "\\r", 2);
            break;
        case '\t':
            dtm_buf_add(b, "\\t", 2);
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            dtm_buf_add(b, u, 6);
        }
        }
    }
    dtm_buf_add(b, s.p + run, s.n - run);
    return dtm_buf_addch(b, '"');
}

int dtm_buf_json_strc(struct dtm_buf *b, const char *s)
{
    return dtm_buf_json_str(b, dtm_str_c(s ? s : ""));
}

int dtm_buf_xml_str(struct dtm_buf *b, struct dtm_str s)
{
    size_t i, run = 0;
    for (i = 0; i < s.n; i++) {
        const char *rep;
        switch (s.p[i]) {
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '&':
            rep = "&amp;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        default:
            continue;
        }
        dtm_buf_add(b, s.p + run, i - run);
        dtm_buf_addc(b, rep);
        run = i + 1;
    }
    return dtm_buf_add(b, s.p + run, s.n - run);
}

int dtm_buf_csv(struct dtm_buf *b, struct dtm_str v)
{
    bool formula = v.n && (v.p[0] == '=' || v.p[0] == '+' || v.p[0] == '@' ||
                           (v.p[0] == '-' && !(v.n > 1 && v.p[1] >= '0' && v.p[1] <= '9')));
    bool quote = formula;
    for (size_t i = 0; i < v.n && !quote; i++)
        quote = v.p[i] == ',' || v.p[i] == '"' || v.p[i] == '\n' || v.p[i] == '\r';
    if (!quote)
        return dtm_buf_add(b, v.p, v.n);
    dtm_buf_addch(b, '"');
    if (formula)
        dtm_buf_addch(b, '\'');
    for (size_t i = 0; i < v.n; i++) {
        const char *q = memchr(v.p + i, '"', v.n - i);
        size_t end = q ? (size_t)(q - v.p) + 1 : v.n;
        dtm_buf_add(b, v.p + i, end - i);
        if (q)
            dtm_buf_addch(b, '"');
        i = end - 1;
    }
    return dtm_buf_addch(b, '"');
}

int dtm_buf_xml(struct dtm_buf *b, struct dtm_str v)
{
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c == '&')
            dtm_buf_addc(b, "&amp;");
        else if (c == '<')
            dtm_buf_addc(b, "&lt;");
        else if (c == '>')
            dtm_buf_addc(b, "&gt;");
        else if (c == '"')
            dtm_buf_addc(b, "&quot;");
        else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            dtm_buf_addch(b, '?');
        else
            dtm_buf_addch(b, (char)c);
    }
    return b->err;
}

int dtm_array_reserve(void *arrp, size_t n, size_t *cap, size_t elem)
{
    void *p, *np;
    size_t nc;
    if (n < *cap)
        return DTM_OK;
    nc = *cap ? *cap * 2 : 16;
    if (nc < *cap || nc > SIZE_MAX / elem)
        return DTM_ENOMEM;
    memcpy(&p, arrp, sizeof(p)); /* the caller's T * (no T ** to void ** cast) */
    if (!(np = realloc(p, nc * elem)))
        return DTM_ENOMEM;
    memcpy(arrp, &np, sizeof(np));
    *cap = nc;
    return DTM_OK;
}
