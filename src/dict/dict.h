/* dict — the common data dictionary (G1, CONTRACT §4): dataset definitions (fields, types,
 * constraints, cross-field rules, dimensions, measures, cubes), the seven built-ins that
 * ship with the binary, typed validation of decoded records (T3.3) and masking of personal
 * fields before anything is stored (F1, S2, Art. 9.4). Records classified `secret` are
 * rejected (S4). */
#ifndef DTM_DICT_H
#define DTM_DICT_H

#include "core/core.h"
#include "ingest/decode.h"

#define DTM_NAME_MAX 64 /* field and dataset code length limit (incl. NUL) */

enum dtm_ftype {
    DTM_T_STRING,
    DTM_T_INTEGER,
    DTM_T_DECIMAL,
    DTM_T_BOOLEAN,
    DTM_T_DATE,
    DTM_T_DATETIME,
    DTM_T_ENUM,
};
const char *dtm_ftype_name(enum dtm_ftype t);

enum dtm_mask {
    DTM_MASK_NONE,
    DTM_MASK_PARTIAL, /* keep first 4 and last 2 characters, '*' between */
    DTM_MASK_HASH,    /* keyed HMAC-SHA-256, lowercase hex, stable per installation */
    DTM_MASK_REDACT,  /* dropped */
};

struct dtm_i18n_text {
    char *vi; /* owned; may be NULL */
    char *en;
};

struct dtm_field_def {
    char name[DTM_NAME_MAX];
    enum dtm_ftype type;
    bool required;
    int64_t max_length; /* characters (code points); 0 = no limit */
    char *pattern;      /* PCRE2 source, owned; NULL = none */
    void *pattern_code; /* compiled pcre2_code*, owned */
    bool has_min, has_max;
    double min, max; /* integer/decimal value bounds; string length bounds are max_length */
    char **values;   /* enum values, owned */
    size_t nvalues;
    bool personal;
    enum dtm_mask mask; /* what DTM applies before storing (dataset says so) */
    struct dtm_i18n_text title;
    struct dtm_i18n_text description;
    char *unit; /* e.g. "ms", "VND"; owned, may be NULL */
};

/* Cross-field rule. Grammar (JSON):
 *   {"if": {"status": "failed"}, "require": ["error_code"]}
 *   {"if": {...}, "forbid": ["error_code"]}
 *   {"left": ["finished_at"], "op": ">=", "right": ["started_at"]}
 *   {"left": ["success", "failed"], "op": "<=", "right": ["total"]}   (sides are sums)
 * Every rule may carry "if", a machine "code" (default "rule") and a "message" {"vi","en"}.
 * A comparison is skipped when any field it names is absent. */
enum dtm_rule_op { DTM_OP_NONE, DTM_OP_LT, DTM_OP_LE, DTM_OP_EQ, DTM_OP_GE, DTM_OP_GT };

struct dtm_rule {
    size_t nif;
    int *if_field; /* field indexes */
    char **if_value;
    size_t nrequire;
    int *require; /* field indexes */
    size_t nforbid;
    int *forbid;
    enum dtm_rule_op op;
    size_t nleft, nright;
    int *left, *right; /* field indexes, summed */
    char code[DTM_NAME_MAX];
    struct dtm_i18n_text message;
};

struct dtm_dataset {
    char code[DTM_NAME_MAX];
    int64_t version;
    struct dtm_i18n_text title;
    struct dtm_i18n_text description;
    char *agency;                  /* managing agency; owned */
    char *classification;          /* public | internal | confidential (secret is refused) */
    struct dtm_i18n_text access;   /* access conditions (G2) */
    char *update_frequency;        /* realtime | daily | monthly | ... */
    struct dtm_i18n_text scope;    /* G2 catalogue: what and whom the data covers */
    struct dtm_i18n_text keywords; /* G2 catalogue: comma-separated keywords (DCAT) */
    size_t nfields;
    struct dtm_field_def *fields;
    size_t nkey;
    int key[8];               /* field indexes of the data key (T1.4) */
    int time_field;           /* index or -1 */
    int system_field;         /* index of "system_code" or -1 */
    int classification_field; /* index of "classification" or -1 */
    size_t nrules;
    struct dtm_rule *rules;
    size_t ndims;
    int *dims; /* field indexes */
    size_t nmeasures;
    int *measures;
    size_t ncubes;
    struct {
        size_t n;
        int *dims;
    } * cubes;
    bool builtin;
    char *json; /* the definition as canonical JSON (what GET /api/v1/datasets/{code} returns) */
};

/* Parses and checks a definition. On failure returns DTM_EVALIDATION with a one-sentence English
 * reason in err (may be NULL). The caller frees the result with dtm_dataset_free. */
int dtm_dataset_parse(struct dtm_str json, struct dtm_dataset **out /* OUT */, char *err,
                      size_t errsz);
void dtm_dataset_free(struct dtm_dataset *ds);
int dtm_dataset_field(const struct dtm_dataset *ds, struct dtm_str name); /* index or -1 */

/* The built-in definitions (JSON text compiled into the binary), NULL-terminated. */
extern const char *const dtm_builtin_datasets[];

/* ---- registry: the current set of datasets, shared read-only by every thread. */
struct dtm_dict;
struct dtm_dict *dtm_dict_create(void); /* with the built-ins loaded */
void dtm_dict_destroy(struct dtm_dict *d);
/* Adds or replaces (by code) a definition; the dict takes ownership (also on failure, when ds
 * is freed). A replaced definition stays valid until dtm_dict_destroy. DTM_OK, DTM_EINVAL or
 * DTM_ENOMEM. */
int dtm_dict_put(struct dtm_dict *d, struct dtm_dataset *ds);
const struct dtm_dataset *dtm_dict_get(const struct dtm_dict *d, struct dtm_str code);
size_t dtm_dict_count(const struct dtm_dict *d);
const struct dtm_dataset *dtm_dict_at(const struct dtm_dict *d, size_t i);

/* ---- validation and masking */

/* A typed value. `text` is the canonical text that is stored: integers without leading zeros,
 * decimals as plain digits with '.', booleans "true"/"false", dates "YYYY-MM-DD", datetimes
 * RFC 3339 with the sender's offset kept (no offset given → "+07:00"), after masking. */
struct dtm_value {
    bool present;
    struct dtm_str text;
    int64_t i; /* integer; boolean 0/1; date: days since epoch; datetime: µs since epoch */
    double d;  /* decimal and integer as double (measures) */
};

struct dtm_record {
    const struct dtm_dataset *ds;
    struct dtm_value v[DTM_MAX_FIELDS]; /* indexed like ds->fields */
};

/* One problem with one record. code is a static machine code:
 *   unknown_field, required, type, max_length, pattern, min, max, enum, secret, forbidden,
 *   rule (or the rule's own code), masked_form, system_code,
 *   internal (the server ran out of memory while checking)
 * arg is context for the message (the limit, the allowed values, the expected type…). */
struct dtm_rec_error {
    size_t index;             /* record index within the request (0-based) */
    size_t line;              /* 1-based line where the record starts (0 = unknown) */
    char field[DTM_NAME_MAX]; /* "" when the error concerns the whole record */
    const char *code;
    char arg[160];
    const struct dtm_rule *rule; /* for rule errors: custom code/message */
};

enum dtm_mask_mode {
    DTM_MODE_RAW,    /* sender sends raw values; DTM masks fields whose definition has a mask */
    DTM_MODE_MASKED, /* sender asks for masking: every personal field is masked (its mask, or
                        partial when the definition names none); values the sender already
                        masked (partial form) are accepted as they are */
};

/* Validates one decoded record against ds and fills rec with typed, canonical values.
 * Scratch text (canonical forms) is allocated from arena.
 * Returns the number of errors appended to errs (at most max_errs are written; the return value
 * counts all). 0 means valid. */
size_t dtm_validate(const struct dtm_dataset *ds, const struct dtm_in_record *in, size_t index,
                    struct dtm_record *rec /* OUT */, struct dtm_arena *arena,
                    enum dtm_mask_mode mode, struct dtm_rec_error *errs, size_t max_errs);

/* Masks personal fields of a valid record in place (text replaced by arena memory).
 * hash_key is the installation's 32-byte masking key (derived from the master key). */
int dtm_mask_record(struct dtm_record *rec, enum dtm_mask_mode mode, const uint8_t hash_key[32],
                    struct dtm_arena *arena);

/* Applies one mask to one value (exposed for unit tests and the SOAP path). The result is
 * arena memory. For DTM_MASK_REDACT returns an empty slice with p == NULL. */
struct dtm_str dtm_mask_value(enum dtm_mask m, struct dtm_str v, const uint8_t hash_key[32],
                              struct dtm_arena *arena);

/* Renders e as one localised sentence (appended to out), e.g.
 * en "Field 'status' must be one of: success, failed, pending." Messages come from po/vi.po. */
void dtm_rec_error_message(const struct dtm_rec_error *e, enum dtm_lang lang, struct dtm_buf *out);

/* Serialises a valid record as canonical JSON (fields in definition order, absent fields
 * omitted, numbers and booleans unquoted). This is the stored content and what the content
 * hash is computed over. */
int dtm_record_json(const struct dtm_record *rec, struct dtm_buf *out);

#endif
