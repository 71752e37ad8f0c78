/* core — the small things every module uses: the engine's result codes, slices
 * (struct dtm_str), bounded growable buffers (struct dtm_buf), per-request arenas,
 * JSON-lines logging, time in UTC and UTC+07:00, and crypto helpers (random bytes,
 * SHA-256, HMAC-SHA-256, constant-time compare) on top of OpenSSL's libcrypto. */
#ifndef DTM_CORE_H
#define DTM_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- result codes: 0 ok, negative error; mapped to HTTP in exactly one place
 * (http/problem.c). */
enum dtm_rc {
    DTM_OK = 0,
    DTM_ENOMEM = -1,       /* allocation failed */
    DTM_EINVAL = -2,       /* bad argument / usage */
    DTM_EIO = -3,          /* file or socket error (errno logged where it happened) */
    DTM_ENOTFOUND = -4,    /* no such thing */
    DTM_EEXIST = -5,       /* already exists */
    DTM_ETOOBIG = -6,      /* over a size or count limit */
    DTM_EUNSUPPORTED = -7, /* unsupported media type / feature */
    DTM_EMALFORMED = -8,   /* syntactically broken input */
    DTM_EVALIDATION = -9,  /* input well-formed but breaks the data dictionary */
    DTM_EAUTH = -10,       /* missing or invalid credentials */
    DTM_EFORBIDDEN = -11,  /* authenticated but not allowed */
    DTM_ESTORE = -12,      /* the store failed */
    DTM_EBUSY = -13,       /* temporarily unavailable (draining, queue full) */
    DTM_ECONFLICT = -14,   /* conflicting state (e.g. idempotency key reused with another body) */
    DTM_EINTERNAL = -15,   /* a bug of ours */
};

/* Short English name of a result code, for logs. */
const char *dtm_rc_name(int rc);

/* ---- slices: never assume NUL termination of network input */
struct dtm_str {
    const char *p;
    size_t n;
};

#define DTM_STR(lit) ((struct dtm_str){(lit), sizeof(lit) - 1})
#define DTM_STR_NULL ((struct dtm_str){NULL, 0})

static inline struct dtm_str dtm_str_c(const char *s);
bool dtm_str_eq(struct dtm_str a, struct dtm_str b);
bool dtm_str_eqc(struct dtm_str a, const char *c);
bool dtm_str_ieqc(struct dtm_str a, const char *c);          /* ASCII case-insensitive */
struct dtm_str dtm_str_trim(struct dtm_str a);               /* ASCII spaces and tabs */
bool dtm_str_contains(struct dtm_str a, const char *needle); /* ASCII case-insensitive */

/* Parse a whole slice as a decimal signed 64-bit integer (optional sign, digits only).
 * Returns DTM_OK or DTM_EINVAL (empty, junk, overflow). */
int dtm_str_to_i64(struct dtm_str s, int64_t *out);

static inline struct dtm_str dtm_str_c(const char *s)
{
    struct dtm_str r = {s, 0};
    if (s)
        while (s[r.n])
            r.n++;
    return r;
}

/* ---- bounded growable buffer (curl's dynbuf). Always NUL-terminated when non-empty.
 * An append that would pass `max` fails with DTM_ETOOBIG and sets the sticky error;
 * builders append freely and check `err` once at the end (SQLite's sqlite3_str). */
struct dtm_buf {
    char *p;
    size_t n;
    size_t cap;
    size_t max;
    int err; /* sticky: first error of an append */
};

void dtm_buf_init(struct dtm_buf *b, size_t max);
void dtm_buf_free(struct dtm_buf *b);
void dtm_buf_reset(struct dtm_buf *b); /* keeps memory, clears content and error */
int dtm_buf_reserve(struct dtm_buf *b, size_t extra);

/* Room for one more element in a malloc'd array: arrp points at the array pointer (T **), n is
 * the elements in use, *cap the elements allocated (doubled, 16 at first). DTM_OK or DTM_ENOMEM
 * (the array is kept as it was). */
int dtm_array_reserve(void *arrp, size_t n, size_t *cap, size_t elem);
int dtm_buf_add(struct dtm_buf *b, const void *p, size_t n);
int dtm_buf_addc(struct dtm_buf *b, const char *s);
int dtm_buf_addch(struct dtm_buf *b, char c);
int dtm_buf_printf(struct dtm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int dtm_buf_vprintf(struct dtm_buf *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal (with quotes), escaping as RFC 8259 requires. */
int dtm_buf_json_str(struct dtm_buf *b, struct dtm_str s);
/* One CSV cell (RFC 4180): quoted when it holds , " CR or LF; a text that a spreadsheet would
 * run as a formula (= + - @ first, not a negative number) is quoted and prefixed with ' (CSV
 * injection). */
int dtm_buf_csv(struct dtm_buf *b, struct dtm_str v);
/* Text for XML content or a quoted attribute: & < > " escaped; control characters that XML 1.0
 * cannot carry become '?'. */
int dtm_buf_xml(struct dtm_buf *b, struct dtm_str v);
int dtm_buf_json_strc(struct dtm_buf *b, const char *s);
/* Appends s escaped for XML text/attribute content. */
int dtm_buf_xml_str(struct dtm_buf *b, struct dtm_str s);

/* ---- arena: per-request / per-batch memory freed in one step */
struct dtm_arena_block;
struct dtm_arena {
    struct dtm_arena_block *head;
    size_t block_size;
    size_t total; /* bytes handed out, for limits and metrics */
};

void dtm_arena_init(struct dtm_arena *a, size_t block_size);
void *dtm_arena_alloc(struct dtm_arena *a, size_t n); /* 16-byte aligned; NULL on OOM */
char *dtm_arena_strndup(struct dtm_arena *a, const char *p, size_t n);
void dtm_arena_reset(struct dtm_arena *a); /* frees all but the first block */
void dtm_arena_free(struct dtm_arena *a);

/* ---- logging: one JSON object per line on stderr. Never pass secrets, keys,
 * passwords or unmasked personal values (CONTRACT §7). */
enum dtm_log_level { DTM_LOG_DEBUG, DTM_LOG_INFO, DTM_LOG_WARN, DTM_LOG_ERROR };
void dtm_log_set_level(enum dtm_log_level lvl);
int dtm_log_level_parse(const char *s, enum dtm_log_level *out);
/* msg is a short fact; fields is a string of extra JSON members without braces,
 * already escaped (build it with dtm_buf_json_str), or NULL. */
void dtm_log(enum dtm_log_level lvl, const char *msg, const char *fields);
/* Buffer info lines (a server under load); warnings and errors are always written at once. */
void dtm_log_set_buffered(bool on);
void dtm_log_flush(void);
void dtm_logf(enum dtm_log_level lvl, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- time */
#define DTM_TZ_OFFSET (7 * 3600) /* UTC+07:00, Asia/Ho_Chi_Minh (no DST) */
int64_t dtm_now_us(void);        /* wall clock, microseconds since the epoch */
int64_t dtm_mono_us(void);       /* monotonic clock */
/* Formats t (microseconds since epoch) as RFC 3339 in UTC+07:00 with millisecond precision
 * into out (at least 32 bytes). */
void dtm_time_fmt(int64_t t_us, char *out, size_t outsz);
/* Formats as RFC 3339 UTC ("...Z") with milliseconds (for logs). */
void dtm_time_fmt_utc(int64_t t_us, char *out, size_t outsz);
/* Appends t as a JSON string in dtm_time_fmt's form, or null when t is 0. */
void dtm_buf_json_time(struct dtm_buf *b, int64_t t_us);
/* Parses an RFC 3339 date-time; a time without offset means UTC+07:00 (CONTRACT §2).
 * Accepts "YYYY-MM-DDTHH:MM[:SS[.frac]][Z|±HH:MM]" and a space instead of 'T'.
 * Returns DTM_OK or DTM_EINVAL. */
int dtm_time_parse(struct dtm_str s, int64_t *t_us /* OUT */);
/* Parses a calendar date "YYYY-MM-DD" → days since 1970-01-01. DTM_OK or DTM_EINVAL. */
int dtm_date_parse(struct dtm_str s, int64_t *days /* OUT */);
int64_t dtm_days_from_civil(int64_t y, unsigned m, unsigned d);
/* The instant (µs) a day (days since 1970-01-01) starts in UTC+07:00. */
int64_t dtm_day_start(int64_t days);
/* A range bound given as a date (its start; with end, the start of the next day: a whole day
 * included) or as an RFC 3339 time. DTM_OK or DTM_EINVAL. */
int dtm_time_bound_parse(struct dtm_str s, bool end, int64_t *t_us);
void dtm_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

/* ---- periodic jobs (periodic.c): a thread calls fn, waits the delay (µs) it returns, calls it
 * again, until stopped. The first call is first_us after the start; a wake calls it at once. */
struct dtm_periodic;
typedef int64_t (*dtm_periodic_fn)(struct dtm_periodic *p, void *arg);
/* *out is set before the thread starts. what names the thread in err. DTM_OK, or an error. */
int dtm_periodic_start(const char *what, int64_t first_us, dtm_periodic_fn fn, void *arg,
                       struct dtm_periodic **out, char *err, size_t errsz);
/* True once a stop began: a long call ends early between its steps (NULL: false). */
bool dtm_periodic_stopping(struct dtm_periodic *p);
void dtm_periodic_wake(struct dtm_periodic *p);
/* Ends the wait, or waits for the call under way; joins the thread and frees (NULL: no-op). */
void dtm_periodic_stop(struct dtm_periodic *p);

/* ---- crypto helpers (OpenSSL libcrypto) */
int dtm_random(void *out, size_t n); /* CSPRNG; DTM_OK or DTM_EIO */
void dtm_sha256(const void *p, size_t n, uint8_t out[32]);
void dtm_hmac_sha256(const uint8_t *key, size_t keylen, const void *p, size_t n, uint8_t out[32]);
bool dtm_ct_equal(const void *a, const void *b, size_t n); /* constant time */
void dtm_hex(const uint8_t *p, size_t n, char *out /* 2n+1 */);
/* Random token: prefix + `bytes` (1..32) random bytes in lower-case Crockford base32. */
int dtm_random_token(const char *prefix, size_t bytes, char *out, size_t outsz);
/* Random identifier: prefix + 26 chars of Crockford base32 (128 bits). out >= strlen(prefix)+27 */
int dtm_random_id(const char *prefix, char *out, size_t outsz);

/* ---- UTF-8: returns the offset of the first invalid byte, or n when all is valid.
 * Rejects overlongs, surrogates and code points above U+10FFFF. */
size_t dtm_utf8_check(const char *p, size_t n);
/* Line (1-based) and column byte (1-based) of offset off within p. */
void dtm_text_pos(const char *p, size_t off, size_t *line, size_t *col);

/* ---- languages (T1.2): every human-readable message exists in Vietnamese and English.
 * Catalogue: po/vi.po (msgid = English text, GNU gettext format), compiled into the binary;
 * the language is chosen per request, never from the process locale. */
enum dtm_lang { DTM_LANG_VI = 0, DTM_LANG_EN = 1 };
/* The translation of an English msgid (itself, for English or when no translation exists). */
const char *dtm_tr(enum dtm_lang lang, const char *msgid);
/* Chooses vi or en from an Accept-Language header (q-values honoured); default vi. */
enum dtm_lang dtm_lang_from_header(struct dtm_str accept_language);
const char *dtm_lang_code(enum dtm_lang lang); /* "vi" / "en" */
/* printf into b with the translation of the English format fmt (same conversions). */
int dtm_buf_trf(struct dtm_buf *b, enum dtm_lang lang, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define DTM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define DTM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DTM_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
