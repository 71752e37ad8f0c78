/* messages — one localised sentence per record error (T1.2, CONTRACT §2 `errors[].message`).
 * The English text is the msgid of po/vi.po, which holds the Vietnamese. A rule's own message
 * (from the dataset definition) wins over the generic sentence. */
#include "dict/dict.h"

#include <string.h>

/* Appends fmt with each "%s" replaced by the next of args (missing ones by "") and "%%" by '%'.
 * Done by hand so that a translated format never reaches printf. */
static void render(struct dtm_buf *out, const char *fmt, const char *a1, const char *a2)
{
    const char *args[2] = {a1, a2};
    size_t next = 0;
    for (const char *p = fmt; *p;) {
        const char *pct = strchr(p, '%');
        if (!pct) {
            dtm_buf_addc(out, p);
            return;
        }
        dtm_buf_add(out, p, (size_t)(pct - p));
        if (pct[1] == 's') {
            const char *a = next < 2 ? args[next] : NULL;
            next++;
            if (a)
                dtm_buf_addc(out, a);
            p = pct + 2;
        } else if (pct[1] == '%') {
            dtm_buf_addch(out, '%');
            p = pct + 2;
        } else {
            dtm_buf_addch(out, '%');
            p = pct + 1;
        }
    }
}

static void say(struct dtm_buf *out, enum dtm_lang lang, const char *msgid, const char *a1,
                const char *a2)
{
    render(out, dtm_tr(lang, msgid), a1, a2);
}

static void type_message(const struct dtm_rec_error *e, enum dtm_lang lang, struct dtm_buf *out)
{
    const char *f = e->field, *t = e->arg;
    if (strcmp(t, "integer") == 0)
        say(out, lang, "Field '%s' must be an integer.", f, NULL);
    else if (strcmp(t, "decimal") == 0)
        say(out, lang, "Field '%s' must be a decimal number, such as 12.5.", f, NULL);
    else if (strcmp(t, "boolean") == 0)
        say(out, lang, "Field '%s' must be true or false.", f, NULL);
    else if (strcmp(t, "date") == 0)
        say(out, lang, "Field '%s' must be a date in the form YYYY-MM-DD.", f, NULL);
    else if (strcmp(t, "datetime") == 0)
        say(out, lang,
            "Field '%s' must be a date and time in RFC 3339 form, such as "
            "2026-10-05T08:30:00+07:00.",
            f, NULL);
    else
        say(out, lang, "Field '%s' has a value of the wrong type.", f, NULL);
}

/* A rule error with a custom code and no message of its own: the sentence of the rule's kind
 * (a rule that both requires and forbids cannot tell which, and gets the general one). */
static void rule_message(const struct dtm_rec_error *e, enum dtm_lang lang, struct dtm_buf *out)
{
    const struct dtm_rule *r = e->rule;
    const char *f = e->field, *a = e->arg[0] ? e->arg : NULL;
    if (r->op != DTM_OP_NONE && a)
        say(out, lang, "Field '%s' breaks the rule %s.", f, a);
    else if (r->op == DTM_OP_NONE && r->nrequire && !r->nforbid)
        say(out, lang, a ? "Field '%s' is required when %s." : "Field '%s' is required.", f, a);
    else if (r->op == DTM_OP_NONE && r->nforbid && !r->nrequire)
        say(out, lang,
            a ? "Field '%s' must not be given when %s." : "Field '%s' must not be given.", f, a);
    else
        say(out, lang, "Field '%s' breaks a rule of the dataset.", f, NULL);
}

void dtm_rec_error_message(const struct dtm_rec_error *e, enum dtm_lang lang, struct dtm_buf *out)
{
    const char *f = e->field, *a = e->arg[0] ? e->arg : NULL, *code = e->code ? e->code : "";

    if (e->rule) {
        const struct dtm_i18n_text *m = &e->rule->message;
        const char *own = lang == DTM_LANG_VI ? (m->vi ? m->vi : m->en) : (m->en ? m->en : m->vi);
        if (own) {
            dtm_buf_addc(out, own);
            return;
        }
    }
    if (strcmp(code, "unknown_field") == 0)
        say(out, lang, "Field '%s' is not defined in dataset '%s'.", f, e->arg);
    else if (strcmp(code, "required") == 0)
        say(out, lang, a ? "Field '%s' is required when %s." : "Field '%s' is required.", f, a);
    else if (strcmp(code, "type") == 0)
        type_message(e, lang, out);
    else if (strcmp(code, "max_length") == 0)
        say(out, lang, "Field '%s' must be at most %s characters long.", f, e->arg);
    else if (strcmp(code, "pattern") == 0)
        say(out, lang, "Field '%s' does not match the required format %s.", f, e->arg);
    else if (strcmp(code, "min") == 0)
        say(out, lang, "Field '%s' must be at least %s.", f, e->arg);
    else if (strcmp(code, "max") == 0)
        say(out, lang, "Field '%s' must be at most %s.", f, e->arg);
    else if (strcmp(code, "enum") == 0)
        say(out, lang, "Field '%s' must be one of: %s.", f, e->arg);
    else if (strcmp(code, "secret") == 0)
        say(out, lang,
            "Records classified as secret are not accepted: state-secret data is out of scope.",
            NULL, NULL);
    else if (strcmp(code, "forbidden") == 0)
        say(out, lang,
            a ? "Field '%s' must not be given when %s." : "Field '%s' must not be given.", f, a);
    else if (strcmp(code, "masked_form") == 0)
        say(out, lang,
            "Field '%s' contains '*' but is not masked the way DTM masks it (first 4 and last 2 "
            "characters kept, one '*' per hidden character).",
            f, NULL);
    else if (strcmp(code, "system_code") == 0)
        say(out, lang,
            a ? "Field '%s' names system '%s', for which this sender may not send data."
              : "Field '%s' names a system for which this sender may not send data.",
            f, a);
    else if (strcmp(code, "malformed") == 0)
        say(out, lang, "This row cannot be read: %s.", e->arg, NULL);
    else if (strcmp(code, "internal") == 0)
        say(out, lang, "Field '%s' could not be checked because the server ran out of memory.", f,
            NULL);
    else if (e->rule)
        rule_message(e, lang, out);
    else if (strcmp(code, "rule") == 0)
        say(out, lang, "Field '%s' breaks a rule of the dataset.", f, NULL);
    else if (f[0])
        say(out, lang, "Field '%s' is invalid (%s).", f, code);
    else
        say(out, lang, "The record is invalid (%s).", code, NULL);
}
