/* dataset — parsing and checking of dataset definitions (G1, CONTRACT §4). A definition
 * arrives as JSON (a built-in compiled into the binary, or an admin's PUT); it is checked
 * thoroughly here once, so that validation (validate.c) can trust every index, type and
 * compiled pattern it finds in struct dtm_dataset. The checked definition is re-serialised as
 * canonical JSON (fixed key order, defaults made explicit or omitted) in ds->json. */
#include "dict/dict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define MAX_KEY 8       /* fields of a data key (struct dtm_dataset.key) */
#define MAX_RULES 64    /* cross-field rules of a dataset */
#define MAX_CUBES 64    /* live rollups of a dataset */
#define MAX_CUBE_DIMS 8 /* dimensions of one cube */
#define MAX_IF 8        /* conditions of one rule */
#define MAX_VALUES 1000 /* values of an enum */
#define MAX_VALUE_LEN 255
#define MAX_TEXT_LEN 4000    /* titles, descriptions, messages (bytes) */
#define MAX_PATTERN_LEN 1000 /* bytes of a pattern's source */
#define MAX_LENGTH_LIMIT 1000000

static const char *const type_names[] = {"string", "integer",  "decimal", "boolean",
                                         "date",   "datetime", "enum"};

const char *dtm_ftype_name(enum dtm_ftype t)
{
    if ((size_t)t < DTM_ARRAY_LEN(type_names))
        return type_names[t];
    return "unknown";
}

static const char *const mask_names[] = {"none", "partial", "hash", "redact"};
static const char *const op_names[] = {"", "<", "<=", "=", ">=", ">"};
static const char *const classifications[] = {"public", "internal", "confidential"};
static const char *const frequencies[] = {"realtime", "hourly",    "daily",  "weekly",
                                          "monthly",  "quarterly", "yearly", "irregular"};

struct parser {
    char *err;
    size_t errsz;
    struct dtm_dataset *ds;
};

static int fail(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the one-sentence reason and returns DTM_EVALIDATION. */
static int fail(struct parser *ps, const char *fmt, ...)
{
    if (ps->err && ps->errsz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err, ps->errsz, fmt, ap);
        va_end(ap);
    }
    return DTM_EVALIDATION;
}

static int oom(struct parser *ps)
{
    if (ps->err && ps->errsz)
        snprintf(ps->err, ps->errsz, "Out of memory while reading the dataset definition.");
    return DTM_ENOMEM;
}

/* ^[a-z][a-z0-9_]{0,62}$ — dataset codes, field names, rule codes */
static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DTM_NAME_MAX - 1 || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static int lookup(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

/* Rejects keys not in `allowed` and duplicate keys (cJSON keeps both). */
static int check_keys(struct parser *ps, const cJSON *obj, const char *const *allowed, size_t n,
                      const char *what)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (lookup(c->string, allowed, n) < 0)
            return fail(ps, "Unknown key '%.64s' in %s.", c->string, what);
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (strcmp(d->string, c->string) == 0)
                return fail(ps, "Key '%.64s' appears twice in %s.", c->string, what);
    }
    return DTM_OK;
}

static const cJSON *member(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static int get_int(struct parser *ps, const cJSON *j, int64_t lo, int64_t hi, int64_t *out,
                   const char *what)
{
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) ||
        j->valuedouble != floor(j->valuedouble) || j->valuedouble < (double)lo ||
        j->valuedouble > (double)hi)
        return fail(ps, "%s must be an integer from %lld to %lld.", what, (long long)lo,
                    (long long)hi);
    *out = (int64_t)j->valuedouble;
    return DTM_OK;
}

static int get_bool(struct parser *ps, const cJSON *j, bool *out, const char *what)
{
    if (!cJSON_IsBool(j))
        return fail(ps, "%s must be true or false.", what);
    *out = cJSON_IsTrue(j);
    return DTM_OK;
}

/* A string member: non-empty, at most maxlen bytes; *out is a new copy. */
static int get_str(struct parser *ps, const cJSON *j, size_t maxlen, char **out, const char *what)
{
    if (!cJSON_IsString(j) || !j->valuestring[0])
        return fail(ps, "%s must be a non-empty string.", what);
    if (strlen(j->valuestring) > maxlen)
        return fail(ps, "%s must be at most %zu bytes long.", what, maxlen);
    if (!(*out = dupstr(j->valuestring)))
        return oom(ps);
    return DTM_OK;
}

/* {"vi": "...", "en": "..."}, at least one of the two. */
static int get_text(struct parser *ps, const cJSON *j, struct dtm_i18n_text *t, const char *what)
{
    static const char *const keys[] = {"vi", "en"};
    int rc;
    if (!cJSON_IsObject(j))
        return fail(ps, "%s must be an object with \"vi\" and \"en\" texts.", what);
    int n = cJSON_GetArraySize(j);
    bool bad = n > 2 || (n == 2 && strcmp(j->child->string, j->child->next->string) == 0);
    for (const cJSON *c = j->child; c; c = c->next)
        bad |= lookup(c->string, keys, 2) < 0;
    if (bad)
        return fail(ps, "%s may only have one \"vi\" and one \"en\" text.", what);
    const cJSON *vi = member(j, "vi"), *en = member(j, "en");
    if (!vi && !en)
        return fail(ps, "%s must have a \"vi\" or an \"en\" text.", what);
    if (vi && (rc = get_str(ps, vi, MAX_TEXT_LEN, &t->vi, what)))
        return rc;
    if (en && (rc = get_str(ps, en, MAX_TEXT_LEN, &t->en, what)))
        return rc;
    return DTM_OK;
}

static void free_text(struct dtm_i18n_text *t)
{
    free(t->vi);
    free(t->en);
    t->vi = t->en = NULL;
}

int dtm_dataset_field(const struct dtm_dataset *ds, struct dtm_str name)
{
    if (!ds || name.n == 0 || name.n >= DTM_NAME_MAX)
        return -1;
    for (size_t i = 0; i < ds->nfields; i++) {
        const char *f = ds->fields[i].name;
        if (f[0] == name.p[0] && f[name.n] == '\0' && memcmp(f, name.p, name.n) == 0 &&
            strlen(f) == name.n)
            return (int)i;
    }
    return -1;
}

static int field_index(const struct dtm_dataset *ds, const char *name)
{
    return dtm_dataset_field(ds, dtm_str_c(name));
}

/* An array of distinct existing field names → indexes (malloc'd, *out_n of them). */
static int get_field_list(struct parser *ps, const cJSON *j, size_t min, size_t max, int **out,
                          size_t *out_n, const char *what)
{
    if (!cJSON_IsArray(j))
        return fail(ps, "%s must be an array of field names.", what);
    size_t n = (size_t)cJSON_GetArraySize(j);
    if (n < min || n > max)
        return fail(ps, "%s must name from %zu to %zu fields.", what, min, max);
    int *idx = n ? calloc(n, sizeof *idx) : NULL;
    if (n && !idx)
        return oom(ps);
    size_t i = 0;
    for (const cJSON *c = j->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c)) {
            free(idx);
            return fail(ps, "%s must be an array of field names.", what);
        }
        int f = field_index(ps->ds, c->valuestring);
        if (f < 0) {
            free(idx);
            return fail(ps, "%s names the unknown field '%.64s'.", what, c->valuestring);
        }
        for (size_t k = 0; k < i; k++)
            if (idx[k] == f) {
                free(idx);
                return fail(ps, "%s names the field '%s' twice.", what, ps->ds->fields[f].name);
            }
        idx[i] = f;
    }
    *out = idx;
    *out_n = n;
    return DTM_OK;
}

static int compile_pattern(struct parser *ps, struct dtm_field_def *f)
{
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)f->pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF,
                                     &errcode, &erroff, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(errcode, msg, sizeof msg) < 0)
            snprintf((char *)msg, sizeof msg, "error %d", errcode);
        return fail(ps, "The pattern of field '%s' does not compile: %s at offset %zu.", f->name,
                    (const char *)msg, (size_t)erroff);
    }
    /* JIT when this build of PCRE2 and the platform allow it; the interpreter otherwise. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    f->pattern_code = code;
    return DTM_OK;
}

static int parse_field(struct parser *ps, const cJSON *j, size_t i)
{
    static const char *const keys[] = {"name",  "type",        "required", "max_length", "pattern",
                                       "min",   "max",         "values",   "personal",   "mask",
                                       "title", "description", "unit"};
    struct dtm_dataset *ds = ps->ds;
    struct dtm_field_def *f = &ds->fields[i];
    char what[128];
    int rc;

    if (!cJSON_IsObject(j))
        return fail(ps, "Field %zu must be an object.", i + 1);
    const cJSON *name = member(j, "name");
    if (!cJSON_IsString(name))
        return fail(ps, "Field %zu has no name.", i + 1);
    if (!valid_name(name->valuestring))
        return fail(ps,
                    "Field name '%.64s' is invalid: use a lowercase letter followed by up to 62 "
                    "lowercase letters, digits or underscores.",
                    name->valuestring);
    snprintf(what, sizeof what, "field '%s'", name->valuestring);
    if ((rc = check_keys(ps, j, keys, DTM_ARRAY_LEN(keys), what)))
        return rc;
    memcpy(f->name, name->valuestring, strlen(name->valuestring) + 1);
    for (size_t k = 0; k < i; k++)
        if (strcmp(ds->fields[k].name, f->name) == 0)
            return fail(ps, "Field '%s' is defined twice.", f->name);

    const cJSON *type = member(j, "type");
    if (!cJSON_IsString(type))
        return fail(ps, "Field '%s' has no type.", f->name);
    int t = lookup(type->valuestring, type_names, DTM_ARRAY_LEN(type_names));
    if (t < 0)
        return fail(ps,
                    "Field '%s' has the unknown type '%.32s' (use string, integer, decimal, "
                    "boolean, date, datetime or enum).",
                    f->name, type->valuestring);
    f->type = (enum dtm_ftype)t;

    const cJSON *c;
    snprintf(what, sizeof what, "The \"required\" of field '%s'", f->name);
    if ((c = member(j, "required")) && (rc = get_bool(ps, c, &f->required, what)))
        return rc;

    if ((c = member(j, "max_length"))) {
        if (f->type != DTM_T_STRING)
            return fail(ps, "Field '%s' has a max_length but is not a string.", f->name);
        snprintf(what, sizeof what, "The max_length of field '%s'", f->name);
        if ((rc = get_int(ps, c, 1, MAX_LENGTH_LIMIT, &f->max_length, what)))
            return rc;
    }
    if ((c = member(j, "pattern"))) {
        if (f->type != DTM_T_STRING)
            return fail(ps, "Field '%s' has a pattern but is not a string.", f->name);
        snprintf(what, sizeof what, "The pattern of field '%s'", f->name);
        if ((rc = get_str(ps, c, MAX_PATTERN_LEN, &f->pattern, what)))
            return rc;
        if ((rc = compile_pattern(ps, f)))
            return rc;
    }
    const cJSON *mn = member(j, "min"), *mx = member(j, "max");
    if ((mn || mx) && f->type != DTM_T_INTEGER && f->type != DTM_T_DECIMAL)
        return fail(ps, "Field '%s' has a min or max but is not an integer or decimal.", f->name);
    if (mn) {
        if (!cJSON_IsNumber(mn) || !isfinite(mn->valuedouble) ||
            (f->type == DTM_T_INTEGER && mn->valuedouble != floor(mn->valuedouble)))
            return fail(ps, "The min of field '%s' must be a %s number.", f->name,
                        f->type == DTM_T_INTEGER ? "whole" : "finite");
        f->has_min = true;
        f->min = mn->valuedouble;
    }
    if (mx) {
        if (!cJSON_IsNumber(mx) || !isfinite(mx->valuedouble) ||
            (f->type == DTM_T_INTEGER && mx->valuedouble != floor(mx->valuedouble)))
            return fail(ps, "The max of field '%s' must be a %s number.", f->name,
                        f->type == DTM_T_INTEGER ? "whole" : "finite");
        f->has_max = true;
        f->max = mx->valuedouble;
    }
    if (f->has_min && f->has_max && f->min > f->max)
        return fail(ps, "Field '%s' has a min greater than its max.", f->name);

    const cJSON *values = member(j, "values");
    if (f->type == DTM_T_ENUM) {
        if (!cJSON_IsArray(values) || cJSON_GetArraySize(values) < 1 ||
            cJSON_GetArraySize(values) > MAX_VALUES)
            return fail(ps, "Enum field '%s' must list its values (1 to %d strings).", f->name,
                        MAX_VALUES);
        size_t n = (size_t)cJSON_GetArraySize(values);
        if (!(f->values = calloc(n, sizeof *f->values)))
            return oom(ps);
        for (c = values->child; c; c = c->next) {
            snprintf(what, sizeof what, "Each value of enum field '%s'", f->name);
            if ((rc = get_str(ps, c, MAX_VALUE_LEN, &f->values[f->nvalues], what)))
                return rc;
            f->nvalues++;
            for (size_t k = 0; k + 1 < f->nvalues; k++)
                if (strcmp(f->values[k], c->valuestring) == 0)
                    return fail(ps, "Enum field '%s' lists the value '%s' twice.", f->name,
                                c->valuestring);
        }
    } else if (values) {
        return fail(ps, "Field '%s' lists values but is not an enum.", f->name);
    }

    snprintf(what, sizeof what, "The \"personal\" of field '%s'", f->name);
    if ((c = member(j, "personal")) && (rc = get_bool(ps, c, &f->personal, what)))
        return rc;
    if (f->personal && f->type != DTM_T_STRING)
        return fail(ps, "Personal field '%s' must be a string so that it can be masked.", f->name);
    if ((c = member(j, "mask"))) {
        int m = cJSON_IsString(c) ? lookup(c->valuestring, mask_names, 4) : -1;
        if (m < 0)
            return fail(ps, "The mask of field '%s' must be none, partial, hash or redact.",
                        f->name);
        f->mask = (enum dtm_mask)m;
        if (f->mask != DTM_MASK_NONE && !f->personal)
            return fail(ps, "Field '%s' has a mask but is not marked personal.", f->name);
    }

    snprintf(what, sizeof what, "The title of field '%s'", f->name);
    if ((c = member(j, "title")) && (rc = get_text(ps, c, &f->title, what)))
        return rc;
    snprintf(what, sizeof what, "The description of field '%s'", f->name);
    if ((c = member(j, "description")) && (rc = get_text(ps, c, &f->description, what)))
        return rc;
    snprintf(what, sizeof what, "The unit of field '%s'", f->name);
    if ((c = member(j, "unit")) && (rc = get_str(ps, c, 32, &f->unit, what)))
        return rc;
    return DTM_OK;
}

static bool is_number_type(enum dtm_ftype t)
{
    return t == DTM_T_INTEGER || t == DTM_T_DECIMAL;
}

static bool is_time_type(enum dtm_ftype t)
{
    return t == DTM_T_DATE || t == DTM_T_DATETIME;
}

/* A comparison adds numbers, or compares one date (or datetime) with another. */
static int check_comparison(struct parser *ps, const struct dtm_rule *r, size_t ri)
{
    const struct dtm_dataset *ds = ps->ds;
    bool any_time = false;
    for (size_t k = 0; k < r->nleft + r->nright; k++) {
        int fi = k < r->nleft ? r->left[k] : r->right[k - r->nleft];
        enum dtm_ftype t = ds->fields[fi].type;
        if (is_time_type(t))
            any_time = true;
        else if (!is_number_type(t))
            return fail(ps, "Rule %zu compares field '%s', which is neither a number nor a date.",
                        ri + 1, ds->fields[fi].name);
    }
    if (any_time && (r->nleft != 1 || r->nright != 1 ||
                     ds->fields[r->left[0]].type != ds->fields[r->right[0]].type))
        return fail(ps,
                    "Rule %zu must compare one date with one date, or one datetime with one "
                    "datetime.",
                    ri + 1);
    return DTM_OK;
}

static int parse_rule(struct parser *ps, const cJSON *j, size_t ri)
{
    static const char *const keys[] = {"if", "require", "forbid", "left",
                                       "op", "right",   "code",   "message"};
    struct dtm_dataset *ds = ps->ds;
    struct dtm_rule *r = &ds->rules[ri];
    char what[96];
    int rc;

    memcpy(r->code, "rule", 5);
    snprintf(what, sizeof what, "rule %zu", ri + 1);
    if (!cJSON_IsObject(j))
        return fail(ps, "Rule %zu must be an object.", ri + 1);
    if ((rc = check_keys(ps, j, keys, DTM_ARRAY_LEN(keys), what)))
        return rc;

    const cJSON *c;
    if ((c = member(j, "if"))) {
        size_t n = cJSON_IsObject(c) ? (size_t)cJSON_GetArraySize(c) : 0;
        if (n < 1 || n > MAX_IF)
            return fail(ps, "The \"if\" of rule %zu must be an object of 1 to %d field values.",
                        ri + 1, MAX_IF);
        if (!(r->if_field = calloc(n, sizeof *r->if_field)) ||
            !(r->if_value = calloc(n, sizeof *r->if_value)))
            return oom(ps);
        for (const cJSON *e = c->child; e; e = e->next) {
            int fi = field_index(ds, e->string);
            if (fi < 0)
                return fail(ps, "The \"if\" of rule %zu names the unknown field '%.64s'.", ri + 1,
                            e->string);
            for (size_t k = 0; k < r->nif; k++)
                if (r->if_field[k] == fi)
                    return fail(ps, "The \"if\" of rule %zu names field '%s' twice.", ri + 1,
                                e->string);
            char buf[32];
            const char *v;
            if (cJSON_IsString(e))
                v = e->valuestring;
            else if (cJSON_IsBool(e))
                v = cJSON_IsTrue(e) ? "true" : "false";
            else if (cJSON_IsNumber(e) && e->valuedouble == floor(e->valuedouble) &&
                     fabs(e->valuedouble) < 9e15) {
                snprintf(buf, sizeof buf, "%lld", (long long)e->valuedouble);
                v = buf;
            } else
                return fail(ps,
                            "The \"if\" of rule %zu must give field '%s' a string, boolean or "
                            "whole number.",
                            ri + 1, e->string);
            const struct dtm_field_def *f = &ds->fields[fi];
            if (f->type == DTM_T_ENUM && lookup(v, (const char *const *)f->values, f->nvalues) < 0)
                return fail(ps,
                            "The \"if\" of rule %zu compares field '%s' with '%.64s', which is "
                            "not one of its values.",
                            ri + 1, f->name, v);
            if (f->type == DTM_T_BOOLEAN && strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
                return fail(ps,
                            "The \"if\" of rule %zu must compare boolean field '%s' with true "
                            "or false.",
                            ri + 1, f->name);
            r->if_field[r->nif] = fi;
            if (!(r->if_value[r->nif] = dupstr(v)))
                return oom(ps);
            r->nif++;
        }
    }

    snprintf(what, sizeof what, "The \"require\" of rule %zu", ri + 1);
    if ((c = member(j, "require")) &&
        (rc = get_field_list(ps, c, 1, DTM_MAX_FIELDS, &r->require, &r->nrequire, what)))
        return rc;
    snprintf(what, sizeof what, "The \"forbid\" of rule %zu", ri + 1);
    if ((c = member(j, "forbid")) &&
        (rc = get_field_list(ps, c, 1, DTM_MAX_FIELDS, &r->forbid, &r->nforbid, what)))
        return rc;

    const cJSON *left = member(j, "left"), *op = member(j, "op"), *right = member(j, "right");
    if (left || op || right) {
        if (!left || !op || !right)
            return fail(ps, "Rule %zu must give all of \"left\", \"op\" and \"right\".", ri + 1);
        if (r->nrequire || r->nforbid)
            return fail(ps,
                        "Rule %zu must either compare fields or require/forbid fields, not "
                        "both.",
                        ri + 1);
        int o = -1;
        if (cJSON_IsString(op)) {
            o = lookup(op->valuestring, op_names, DTM_ARRAY_LEN(op_names));
            if (strcmp(op->valuestring, "==") == 0)
                o = DTM_OP_EQ;
        }
        if (o <= 0)
            return fail(ps, "The op of rule %zu must be one of <, <=, =, >=, >.", ri + 1);
        r->op = (enum dtm_rule_op)o;
        snprintf(what, sizeof what, "The \"left\" of rule %zu", ri + 1);
        if ((rc = get_field_list(ps, left, 1, 16, &r->left, &r->nleft, what)))
            return rc;
        snprintf(what, sizeof what, "The \"right\" of rule %zu", ri + 1);
        if ((rc = get_field_list(ps, right, 1, 16, &r->right, &r->nright, what)))
            return rc;
        if ((rc = check_comparison(ps, r, ri)))
            return rc;
    } else if (!r->nrequire && !r->nforbid) {
        return fail(ps, "Rule %zu must require, forbid or compare fields.", ri + 1);
    }

    if ((c = member(j, "code"))) {
        if (!cJSON_IsString(c) || !valid_name(c->valuestring))
            return fail(ps, "The code of rule %zu must be a lowercase machine name.", ri + 1);
        memcpy(r->code, c->valuestring, strlen(c->valuestring) + 1);
    }
    snprintf(what, sizeof what, "The message of rule %zu", ri + 1);
    if ((c = member(j, "message")) && (rc = get_text(ps, c, &r->message, what)))
        return rc;
    return DTM_OK;
}

static int parse_cubes(struct parser *ps, const cJSON *j)
{
    struct dtm_dataset *ds = ps->ds;
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) > MAX_CUBES)
        return fail(ps, "\"cubes\" must be an array of at most %d arrays of dimensions.",
                    MAX_CUBES);
    size_t n = (size_t)cJSON_GetArraySize(j);
    if (n == 0)
        return DTM_OK;
    if (!(ds->cubes = calloc(n, sizeof *ds->cubes)))
        return oom(ps);
    uint64_t sets[MAX_CUBES];
    for (const cJSON *c = j->child; c; c = c->next) {
        size_t ci = ds->ncubes;
        char what[64];
        int rc;
        snprintf(what, sizeof what, "Cube %zu", ci + 1);
        if ((rc = get_field_list(ps, c, 1, MAX_CUBE_DIMS, &ds->cubes[ci].dims, &ds->cubes[ci].n,
                                 what)))
            return rc;
        ds->ncubes++;
        uint64_t set = 0;
        for (size_t k = 0; k < ds->cubes[ci].n; k++) {
            int fi = ds->cubes[ci].dims[k];
            bool is_dim = false;
            for (size_t d = 0; d < ds->ndims; d++)
                is_dim |= ds->dims[d] == fi;
            if (!is_dim)
                return fail(ps, "Cube %zu uses field '%s', which is not a dimension.", ci + 1,
                            ds->fields[fi].name);
            set |= (uint64_t)1 << fi;
        }
        for (size_t k = 0; k < ci; k++)
            if (sets[k] == set)
                return fail(ps, "Cube %zu lists the same dimensions as cube %zu.", ci + 1, k + 1);
        sets[ci] = set;
    }
    return DTM_OK;
}

static int parse_definition(struct parser *ps, const cJSON *root)
{
    static const char *const keys[] = {
        "code",       "version",          "title", "description", "agency",  "classification",
        "access",     "update_frequency", "key",   "time_field",  "fields",  "rules",
        "dimensions", "measures",         "cubes", "scope",       "keywords"};
    struct dtm_dataset *ds = ps->ds;
    const cJSON *c;
    int rc;

    if (!cJSON_IsObject(root))
        return fail(ps, "A dataset definition must be a JSON object.");
    if ((rc = check_keys(ps, root, keys, DTM_ARRAY_LEN(keys), "the dataset definition")))
        return rc;

    c = member(root, "code");
    if (!cJSON_IsString(c))
        return fail(ps, "The dataset definition has no code.");
    if (!valid_name(c->valuestring))
        return fail(ps,
                    "Dataset code '%.64s' is invalid: use a lowercase letter followed by up to 62 "
                    "lowercase letters, digits or underscores.",
                    c->valuestring);
    memcpy(ds->code, c->valuestring, strlen(c->valuestring) + 1);

    ds->version = 1;
    if ((c = member(root, "version")) &&
        (rc = get_int(ps, c, 1, INT32_MAX, &ds->version, "The dataset version")))
        return rc;
    if (!(c = member(root, "title")))
        return fail(ps, "Dataset '%s' has no title.", ds->code);
    if ((rc = get_text(ps, c, &ds->title, "The dataset title")))
        return rc;
    if ((c = member(root, "description")) &&
        (rc = get_text(ps, c, &ds->description, "The dataset description")))
        return rc;
    if ((c = member(root, "agency")) &&
        (rc = get_str(ps, c, MAX_TEXT_LEN, &ds->agency, "The managing agency")))
        return rc;
    if ((c = member(root, "classification"))) {
        if (cJSON_IsString(c) &&
            (strcmp(c->valuestring, "secret") == 0 || strcmp(c->valuestring, "top_secret") == 0))
            /* S4: state-secret data is out of scope for DTM. */
            return fail(ps,
                        "Dataset '%s' is classified secret, and secret data is out of scope "
                        "for DTM.",
                        ds->code);
        if (!cJSON_IsString(c) ||
            lookup(c->valuestring, classifications, DTM_ARRAY_LEN(classifications)) < 0)
            return fail(ps,
                        "The classification of dataset '%s' must be public, internal or "
                        "confidential.",
                        ds->code);
        ds->classification = dupstr(c->valuestring);
    } else {
        ds->classification = dupstr("internal");
    }
    if (!ds->classification)
        return oom(ps);
    if ((c = member(root, "access")) &&
        (rc = get_text(ps, c, &ds->access, "The access conditions")))
        return rc;
    if ((c = member(root, "update_frequency"))) {
        if (!cJSON_IsString(c) ||
            lookup(c->valuestring, frequencies, DTM_ARRAY_LEN(frequencies)) < 0)
            return fail(ps,
                        "The update_frequency of dataset '%s' must be realtime, hourly, daily, "
                        "weekly, monthly, quarterly, yearly or irregular.",
                        ds->code);
        if (!(ds->update_frequency = dupstr(c->valuestring)))
            return oom(ps);
    }
    /* issue 8, G2: the catalogue's scope and keywords (optional) */
    if ((c = member(root, "scope")) && (rc = get_text(ps, c, &ds->scope, "The dataset scope")))
        return rc;
    if ((c = member(root, "keywords")) &&
        (rc = get_text(ps, c, &ds->keywords, "The dataset keywords")))
        return rc;

    /* fields */
    c = member(root, "fields");
    if (!cJSON_IsArray(c) || cJSON_GetArraySize(c) < 1 || cJSON_GetArraySize(c) > DTM_MAX_FIELDS)
        return fail(ps, "Dataset '%s' must define from 1 to %d fields.", ds->code, DTM_MAX_FIELDS);
    size_t nf = (size_t)cJSON_GetArraySize(c);
    if (!(ds->fields = calloc(nf, sizeof *ds->fields)))
        return oom(ps);
    for (const cJSON *f = c->child; f; f = f->next) {
        ds->nfields++; /* counted first so that free() sees a partly parsed field */
        if ((rc = parse_field(ps, f, ds->nfields - 1)))
            return rc;
    }
    ds->system_field = field_index(ds, "system_code");
    if (ds->system_field >= 0 && ds->fields[ds->system_field].type != DTM_T_STRING)
        return fail(ps, "Field 'system_code' must be a string.");
    ds->classification_field = field_index(ds, "classification");
    if (ds->classification_field >= 0) { /* S4: a secret record is always refused */
        const struct dtm_field_def *f = &ds->fields[ds->classification_field];
        for (size_t k = 0; k < f->nvalues; k++)
            if (strcasecmp(f->values[k], "secret") == 0)
                return fail(ps,
                            "Field 'classification' may not allow the value '%s': secret "
                            "records are out of scope for DTM.",
                            f->values[k]);
    }

    /* key (T1.4: the data key identifies a record and prevents duplicates) */
    if (!(c = member(root, "key")))
        return fail(ps, "Dataset '%s' has no key.", ds->code);
    int *key = NULL;
    size_t nkey = 0;
    if ((rc = get_field_list(ps, c, 1, MAX_KEY, &key, &nkey, "The key")))
        return rc;
    memcpy(ds->key, key, nkey * sizeof *key);
    ds->nkey = nkey;
    free(key);
    for (size_t k = 0; k < ds->nkey; k++) {
        const struct dtm_field_def *f = &ds->fields[ds->key[k]];
        if (!f->required)
            return fail(ps, "Key field '%s' must be required.", f->name);
        if (f->personal && f->mask != DTM_MASK_HASH)
            return fail(ps, "Key field '%s' is personal, so its mask must be hash.", f->name);
    }

    ds->time_field = -1;
    if ((c = member(root, "time_field"))) {
        if (!cJSON_IsString(c) || (ds->time_field = field_index(ds, c->valuestring)) < 0)
            return fail(ps, "The time_field of dataset '%s' must name one of its fields.",
                        ds->code);
        const struct dtm_field_def *f = &ds->fields[ds->time_field];
        if (!is_time_type(f->type))
            return fail(ps, "The time_field '%s' must be a date or datetime field.", f->name);
        if (!f->required)
            return fail(ps, "The time_field '%s' must be required.", f->name);
    }

    if ((c = member(root, "dimensions"))) {
        if ((rc =
                 get_field_list(ps, c, 0, DTM_MAX_FIELDS, &ds->dims, &ds->ndims, "\"dimensions\"")))
            return rc;
        for (size_t k = 0; k < ds->ndims; k++)
            if (ds->fields[ds->dims[k]].personal)
                return fail(ps, "Personal field '%s' cannot be a dimension.",
                            ds->fields[ds->dims[k]].name);
    }
    if ((c = member(root, "measures"))) {
        if ((rc = get_field_list(ps, c, 0, DTM_MAX_FIELDS, &ds->measures, &ds->nmeasures,
                                 "\"measures\"")))
            return rc;
        for (size_t k = 0; k < ds->nmeasures; k++)
            if (!is_number_type(ds->fields[ds->measures[k]].type))
                return fail(ps, "Measure '%s' must be an integer or decimal field.",
                            ds->fields[ds->measures[k]].name);
    }
    if ((c = member(root, "cubes")) && (rc = parse_cubes(ps, c)))
        return rc;

    if ((c = member(root, "rules"))) {
        if (!cJSON_IsArray(c) || cJSON_GetArraySize(c) > MAX_RULES)
            return fail(ps, "\"rules\" must be an array of at most %d rules.", MAX_RULES);
        size_t nr = (size_t)cJSON_GetArraySize(c);
        if (nr && !(ds->rules = calloc(nr, sizeof *ds->rules)))
            return oom(ps);
        for (const cJSON *r = c->child; r; r = r->next) {
            ds->nrules++;
            if ((rc = parse_rule(ps, r, ds->nrules - 1)))
                return rc;
        }
    }
    return DTM_OK;
}

/* ---- canonical JSON: the checked definition, in a fixed key order, defaults omitted. */

static bool add_text(cJSON *obj, const char *key, const struct dtm_i18n_text *t)
{
    if (!t->vi && !t->en)
        return true;
    cJSON *o = cJSON_AddObjectToObject(obj, key);
    return o && (!t->vi || cJSON_AddStringToObject(o, "vi", t->vi)) &&
           (!t->en || cJSON_AddStringToObject(o, "en", t->en));
}

/* A new JSON array of the names of fields idx[0..n). */
static cJSON *names_array(const struct dtm_dataset *ds, const int *idx, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
        cJSON *s = cJSON_CreateString(ds->fields[idx[i]].name);
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            a = NULL;
        }
    }
    return a;
}

static bool add_names(cJSON *obj, const char *key, const struct dtm_dataset *ds, const int *idx,
                      size_t n)
{
    cJSON *a = names_array(ds, idx, n);
    if (!a || !cJSON_AddItemToObject(obj, key, a)) {
        cJSON_Delete(a);
        return false;
    }
    return true;
}

static bool append_names(cJSON *arr, const struct dtm_dataset *ds, const int *idx, size_t n)
{
    cJSON *a = names_array(ds, idx, n);
    if (!a || !cJSON_AddItemToArray(arr, a)) {
        cJSON_Delete(a);
        return false;
    }
    return true;
}

static bool add_field(cJSON *arr, const struct dtm_field_def *f)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return false;
    }
    bool ok = cJSON_AddStringToObject(o, "name", f->name) &&
              cJSON_AddStringToObject(o, "type", dtm_ftype_name(f->type));
    if (f->required)
        ok = ok && cJSON_AddTrueToObject(o, "required");
    if (f->max_length)
        ok = ok && cJSON_AddNumberToObject(o, "max_length", (double)f->max_length);
    if (f->pattern)
        ok = ok && cJSON_AddStringToObject(o, "pattern", f->pattern);
    if (f->has_min)
        ok = ok && cJSON_AddNumberToObject(o, "min", f->min);
    if (f->has_max)
        ok = ok && cJSON_AddNumberToObject(o, "max", f->max);
    if (f->nvalues) {
        cJSON *v = cJSON_AddArrayToObject(o, "values");
        ok = ok && v;
        for (size_t i = 0; ok && i < f->nvalues; i++) {
            cJSON *s = cJSON_CreateString(f->values[i]);
            ok = s && cJSON_AddItemToArray(v, s);
            if (!ok)
                cJSON_Delete(s);
        }
    }
    if (f->personal)
        ok = ok && cJSON_AddTrueToObject(o, "personal");
    if (f->mask != DTM_MASK_NONE)
        ok = ok && cJSON_AddStringToObject(o, "mask", mask_names[f->mask]);
    ok = ok && add_text(o, "title", &f->title) && add_text(o, "description", &f->description);
    if (f->unit)
        ok = ok && cJSON_AddStringToObject(o, "unit", f->unit);
    return ok;
}

static bool add_rule(cJSON *arr, const struct dtm_dataset *ds, const struct dtm_rule *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return false;
    }
    bool ok = true;
    if (r->nif) {
        cJSON *c = cJSON_AddObjectToObject(o, "if");
        ok = c != NULL;
        for (size_t i = 0; ok && i < r->nif; i++) {
            const struct dtm_field_def *f = &ds->fields[r->if_field[i]];
            if (f->type == DTM_T_BOOLEAN)
                ok = cJSON_AddBoolToObject(c, f->name, strcmp(r->if_value[i], "true") == 0);
            else
                ok = cJSON_AddStringToObject(c, f->name, r->if_value[i]);
        }
    }
    if (r->nrequire)
        ok = ok && add_names(o, "require", ds, r->require, r->nrequire);
    if (r->nforbid)
        ok = ok && add_names(o, "forbid", ds, r->forbid, r->nforbid);
    if (r->op != DTM_OP_NONE)
        ok = ok && add_names(o, "left", ds, r->left, r->nleft) &&
             cJSON_AddStringToObject(o, "op", op_names[r->op]) &&
             add_names(o, "right", ds, r->right, r->nright);
    if (strcmp(r->code, "rule") != 0)
        ok = ok && cJSON_AddStringToObject(o, "code", r->code);
    return ok && add_text(o, "message", &r->message);
}

static char *canonical_json(const struct dtm_dataset *ds)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddStringToObject(root, "code", ds->code) &&
              cJSON_AddNumberToObject(root, "version", (double)ds->version) &&
              add_text(root, "title", &ds->title) &&
              add_text(root, "description", &ds->description);
    if (ds->agency)
        ok = ok && cJSON_AddStringToObject(root, "agency", ds->agency);
    ok = ok && cJSON_AddStringToObject(root, "classification", ds->classification) &&
         add_text(root, "access", &ds->access);
    if (ds->update_frequency)
        ok = ok && cJSON_AddStringToObject(root, "update_frequency", ds->update_frequency);
    if (ds->scope.vi || ds->scope.en)
        ok = ok && add_text(root, "scope", &ds->scope);
    if (ds->keywords.vi || ds->keywords.en)
        ok = ok && add_text(root, "keywords", &ds->keywords);
    ok = ok && add_names(root, "key", ds, ds->key, ds->nkey);
    if (ds->time_field >= 0)
        ok = ok && cJSON_AddStringToObject(root, "time_field", ds->fields[ds->time_field].name);
    cJSON *a = ok ? cJSON_AddArrayToObject(root, "fields") : NULL;
    ok = a != NULL;
    for (size_t i = 0; ok && i < ds->nfields; i++)
        ok = add_field(a, &ds->fields[i]);
    if (ok) { /* always present, even empty: clients iterate it */
        a = cJSON_AddArrayToObject(root, "rules");
        ok = a != NULL;
        for (size_t i = 0; ok && i < ds->nrules; i++)
            ok = add_rule(a, ds, &ds->rules[i]);
    }
    ok = ok && add_names(root, "dimensions", ds, ds->dims, ds->ndims) &&
         add_names(root, "measures", ds, ds->measures, ds->nmeasures);
    a = ok ? cJSON_AddArrayToObject(root, "cubes") : NULL;
    ok = a != NULL;
    for (size_t i = 0; ok && i < ds->ncubes; i++)
        ok = append_names(a, ds, ds->cubes[i].dims, ds->cubes[i].n);

    char *out = NULL;
    if (ok) {
        char *s = cJSON_PrintUnformatted(root);
        if (s) {
            out = dupstr(s); /* ours to free() whatever cJSON's hooks are */
            cJSON_free(s);
        }
    }
    cJSON_Delete(root);
    return out;
}

int dtm_dataset_parse(struct dtm_str json, struct dtm_dataset **out, char *err, size_t errsz)
{
    struct parser ps = {err, errsz, NULL};
    cJSON *root = NULL;
    int rc;

    *out = NULL;
    if (err && errsz)
        err[0] = '\0';
    if (!json.p || json.n == 0)
        return fail(&ps, "The dataset definition is empty.");
    size_t bad = dtm_utf8_check(json.p, json.n);
    if (bad < json.n)
        return fail(&ps, "The dataset definition is not valid UTF-8 (byte %zu).", bad + 1);
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(json.p, json.n, &end, 0);
    if (!root) {
        size_t off = end && end >= json.p ? (size_t)(end - json.p) : 0, line = 1, col = 1;
        for (size_t i = 0; i < off && i < json.n; i++, col++)
            if (json.p[i] == '\n')
                line++, col = 0;
        return fail(&ps, "The dataset definition is not valid JSON (line %zu, column %zu).", line,
                    col);
    }
    for (; end && end < json.p + json.n; end++)
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n' && *end != '\0') {
            rc = fail(&ps, "The dataset definition has text after the JSON object.");
            goto out;
        }
    if (!(ps.ds = calloc(1, sizeof *ps.ds))) {
        rc = oom(&ps);
        goto out;
    }
    ps.ds->time_field = ps.ds->system_field = ps.ds->classification_field = -1;
    if ((rc = parse_definition(&ps, root)))
        goto out;
    if (!(ps.ds->json = canonical_json(ps.ds))) {
        rc = oom(&ps);
        goto out;
    }
    *out = ps.ds;
    ps.ds = NULL;
    rc = DTM_OK;
out:
    dtm_dataset_free(ps.ds);
    cJSON_Delete(root);
    return rc;
}

void dtm_dataset_free(struct dtm_dataset *ds)
{
    if (!ds)
        return;
    for (size_t i = 0; i < ds->nfields; i++) {
        struct dtm_field_def *f = &ds->fields[i];
        free(f->pattern);
        pcre2_code_free(f->pattern_code);
        for (size_t k = 0; k < f->nvalues; k++)
            free(f->values[k]);
        free(f->values);
        free_text(&f->title);
        free_text(&f->description);
        free(f->unit);
    }
    free(ds->fields);
    for (size_t i = 0; i < ds->nrules; i++) {
        struct dtm_rule *r = &ds->rules[i];
        for (size_t k = 0; k < r->nif; k++)
            free(r->if_value[k]);
        free(r->if_field);
        free(r->if_value);
        free(r->require);
        free(r->forbid);
        free(r->left);
        free(r->right);
        free_text(&r->message);
    }
    free(ds->rules);
    free(ds->dims);
    free(ds->measures);
    for (size_t i = 0; i < ds->ncubes; i++)
        free(ds->cubes[i].dims);
    free(ds->cubes);
    free_text(&ds->title);
    free_text(&ds->description);
    free_text(&ds->access);
    free_text(&ds->scope);
    free_text(&ds->keywords);
    free(ds->agency);
    free(ds->classification);
    free(ds->update_frequency);
    free(ds->json);
    free(ds);
}
