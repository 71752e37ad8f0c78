/* soap/soap.c — SOAP envelopes: the safe reading of a request (libxml2 DOM over the body held in
 * memory: no network, no DTD loading, no entity substitution, any DOCTYPE refused before libxml2
 * sees the document, entity references refused, nesting bounded), its WS-Security UsernameToken
 * and operation; the answer envelopes and the faults made from RFC 9457 problems. The DOM (not
 * the streaming reader of ingest/xml.c) because an envelope is small — bounded by [ingest]
 * max_body like a REST body — and read out of order (header, then body). */
#include "soap/soap.h"

#include <cjson/cJSON.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WSSE_NS "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
#define PASSWORD_TEXT                                                                              \
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#"          \
    "PasswordText"
#define XSI_NS "http://www.w3.org/2001/XMLSchema-instance"

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Defence in depth (T2.3), as ingest/xml.c: no external entity, DTD or XInclude is ever loaded
 * by libxml2 in this process. */
static xmlParserInputPtr no_external_entities(const char *url, const char *id,
                                              xmlParserCtxtPtr ctxt)
{
    (void)url;
    (void)id;
    (void)ctxt;
    return NULL;
}

static void soap_init(void)
{
    xmlInitParser();
    xmlSetExternalEntityLoader(no_external_entities);
}

enum dtm_soap_version dtm_soap_version_of(struct dtm_str ct)
{
    const char *semi = ct.n ? memchr(ct.p, ';', ct.n) : NULL;
    struct dtm_str mime = dtm_str_trim(semi ? (struct dtm_str){ct.p, (size_t)(semi - ct.p)} : ct);
    return dtm_str_ieqc(mime, "application/soap+xml") ? DTM_SOAP_12 : DTM_SOAP_11;
}

const char *dtm_soap_content_type(enum dtm_soap_version v)
{
    return v == DTM_SOAP_12 ? "application/soap+xml; charset=utf-8" : "text/xml; charset=utf-8";
}

static const char *env_ns(enum dtm_soap_version v)
{
    return v == DTM_SOAP_12 ? DTM_SOAP_ENV12 : DTM_SOAP_ENV11;
}

static bool is_el(const xmlNode *n, const char *ns, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           strcmp((const char *)n->ns->href, ns) == 0 && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *first_el(const xmlNode *n)
{
    for (; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE)
            return n;
    return NULL;
}

static const xmlNode *next_el(const xmlNode *n)
{
    return n ? first_el(n->next) : NULL;
}

static int refuse(struct dtm_soap_refusal *why, int status, const char *code, const char *detail,
                  const char *arg)
{
    why->status = status;
    why->code = code;
    why->detail = detail;
    snprintf(why->arg, sizeof(why->arg), "%s", arg ? arg : "");
    return DTM_EMALFORMED;
}

/* Entity references and nesting deeper than DTM_SOAP_MAX_DEPTH (iterative: no recursion on
 * input). */
static bool tree_ok(const xmlNode *root, struct dtm_soap_refusal *why)
{
    const xmlNode *n = root;
    int depth = 1;
    while (n) {
        if (n->type == XML_ENTITY_REF_NODE || n->type == XML_ENTITY_NODE ||
            n->type == XML_DTD_NODE) {
            refuse(why, 400, "xml_dtd", "Entities and DTDs are not allowed in a SOAP message.",
                   NULL);
            return false;
        }
        if (n->type == XML_ELEMENT_NODE && n->children) {
            if (++depth > DTM_SOAP_MAX_DEPTH) {
                refuse(why, 400, "too_deep",
                       "The SOAP message nests elements deeper than %s levels.", "32");
                return false;
            }
            n = n->children;
            continue;
        }
        while (n && !n->next && n != root) {
            n = n->parent;
            depth--;
        }
        if (!n || n == root)
            break;
        n = n->next;
    }
    return true;
}

static char *text_of(const xmlNode *n)
{
    xmlChar *t = xmlNodeGetContent(n);
    char *s = strdup(t ? (const char *)t : "");
    xmlFree(t);
    return s;
}

/* The WS-Security header: wsse:Security/wsse:UsernameToken with Username and a PasswordText
 * Password. */
static int read_security(const xmlNode *sec, struct dtm_soap_request *q,
                         struct dtm_soap_refusal *why)
{
    const xmlNode *tok = NULL, *c;
    for (c = first_el(sec->children); c; c = next_el(c))
        if (is_el(c, WSSE_NS, "UsernameToken"))
            tok = c;
    if (!tok)
        return DTM_OK; /* e.g. a timestamp only: no credential here */
    q->token = true;
    for (c = first_el(tok->children); c; c = next_el(c)) {
        if (is_el(c, WSSE_NS, "Username") && !q->username) {
            if (!(q->username = text_of(c)))
                return DTM_ENOMEM;
        } else if (is_el(c, WSSE_NS, "Password") && !q->password) {
            xmlChar *type = xmlGetProp(c, (const xmlChar *)"Type");
            bool text = !type || strcmp((const char *)type, PASSWORD_TEXT) == 0;
            xmlFree(type);
            if (!text)
                return refuse(why, 401, "unsupported_password_type",
                              "The UsernameToken's Password must be of type PasswordText (the API "
                              "key itself)%s.",
                              "");
            if (!(q->password = text_of(c)))
                return DTM_ENOMEM;
        }
    }
    return DTM_OK;
}

/* Whether a header block says mustUnderstand (1.1 "1"; 1.2 "true" or "1"). */
static bool must_understand(const xmlNode *h, enum dtm_soap_version v)
{
    xmlChar *mu = xmlGetNsProp(h, (const xmlChar *)"mustUnderstand", (const xmlChar *)env_ns(v));
    bool yes = mu && (strcmp((const char *)mu, "1") == 0 || strcmp((const char *)mu, "true") == 0);
    xmlFree(mu);
    return yes;
}

int dtm_soap_request_read(struct dtm_str body, enum dtm_soap_version v, struct dtm_soap_request *q,
                          struct dtm_soap_refusal *why)
{
    const xmlNode *env, *c, *hdr = NULL, *bdy = NULL;
    xmlDocPtr doc;
    size_t bad;
    int rc;

    memset(q, 0, sizeof(*q));
    q->version = v;
    pthread_once(&once, soap_init);
    if (body.n == 0)
        return refuse(why, 400, "malformed", "The body is empty: send a SOAP envelope%s.", "");
    if (body.n > 0x7fffffff)
        return refuse(why, 413, "too_large", "The SOAP message is too large%s.", "");
    if ((bad = dtm_utf8_check(body.p, body.n)) != body.n) {
        char at[32];
        snprintf(at, sizeof(at), "%zu", bad);
        return refuse(why, 400, "utf8", "The SOAP message is not valid UTF-8 at byte %s.", at);
    }
    /* No DTD at all: refused before libxml2 sees the document, so neither an internal subset's
     * entities (billion laughs) nor an external one (XXE) is ever parsed. A DOCTYPE can only be
     * in the prolog; one spelled inside CDATA or a comment is refused too, harmlessly. */
    for (size_t i = 0; i + 9 <= body.n; i++)
        if (body.p[i] == '<' && body.p[i + 1] == '!' &&
            dtm_str_ieqc((struct dtm_str){body.p + i, 9}, "<!DOCTYPE"))
            return refuse(why, 400, "xml_dtd",
                          "A DOCTYPE is not allowed in a SOAP message (no DTDs, no entities)%s.",
                          "");
    doc = xmlReadMemory(body.p, (int)body.n, NULL, "UTF-8",
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                            XML_PARSE_IGNORE_ENC | XML_PARSE_NOCDATA);
    if (!doc) {
        const xmlError *e = xmlGetLastError();
        char m[160];
        snprintf(m, sizeof(m), "line %d: %s", e ? e->line : 0,
                 e && e->message ? e->message : "not well-formed");
        for (size_t k = strlen(m); k && (m[k - 1] == '\n' || m[k - 1] == ' ');)
            m[--k] = '\0';
        return refuse(why, 400, "malformed", "The SOAP message is not well-formed XML: %s.", m);
    }
    q->doc = doc;
    env = xmlDocGetRootElement(doc);
    if (doc->intSubset || doc->extSubset)
        return refuse(why, 400, "xml_dtd",
                      "A DOCTYPE is not allowed in a SOAP message (no DTDs, no entities)%s.", "");
    if (!env || !tree_ok(env, why))
        return env ? DTM_EMALFORMED
                   : refuse(why, 400, "malformed", "The SOAP message has no root element%s.", "");
    if (!is_el(env, env_ns(v), "Envelope")) {
        if (is_el(env, env_ns(v == DTM_SOAP_11 ? DTM_SOAP_12 : DTM_SOAP_11), "Envelope"))
            return refuse(why, 400, "version_mismatch",
                          "The envelope's SOAP version does not match the Content-Type: SOAP 1.1 "
                          "is sent as text/xml, SOAP 1.2 as application/soap+xml%s.",
                          "");
        return refuse(why, 400, "version_mismatch",
                      "The root element is not a SOAP Envelope (namespace %s).", env_ns(v));
    }
    for (c = first_el(env->children); c; c = next_el(c)) {
        if (is_el(c, env_ns(v), "Header") && !hdr && !bdy)
            hdr = c;
        else if (is_el(c, env_ns(v), "Body") && !bdy)
            bdy = c;
        else
            return refuse(why, 400, "malformed",
                          "An Envelope holds an optional Header and one Body; found <%s>.",
                          (const char *)c->name);
    }
    if (!bdy)
        return refuse(why, 400, "malformed", "The Envelope has no Body%s.", "");
    for (c = hdr ? first_el(hdr->children) : NULL; c; c = next_el(c)) {
        if (is_el(c, WSSE_NS, "Security")) {
            if ((rc = read_security(c, q, why)))
                return rc;
        } else if (must_understand(c, v)) {
            return refuse(why, 400, "must_understand",
                          "The header block <%s> is marked mustUnderstand and is not understood "
                          "here.",
                          (const char *)c->name);
        }
    }
    c = first_el(bdy->children);
    if (!c)
        return refuse(why, 400, "malformed", "The Body is empty: it must hold one operation%s.",
                      "");
    if (next_el(c))
        return refuse(why, 400, "malformed", "The Body must hold exactly one operation%s.", "");
    if (!c->ns || !c->ns->href || strcmp((const char *)c->ns->href, DTM_SOAP_NS) != 0)
        return refuse(why, 400, "unknown_operation",
                      "Unknown operation <%s>: operations are in namespace urn:dtm:soap (see "
                      "GET /soap?wsdl).",
                      (const char *)c->name);
    q->op = (void *)c;
    q->op_name = (const char *)c->name;
    return DTM_OK;
}

void dtm_soap_request_free(struct dtm_soap_request *q)
{
    if (q->password) {
        OPENSSL_cleanse(q->password, strlen(q->password));
        free(q->password);
    }
    free(q->username);
    if (q->doc)
        xmlFreeDoc(q->doc);
    memset(q, 0, sizeof(*q));
}

const char *dtm_soap_arg(const struct dtm_soap_request *q, const char *name,
                         struct dtm_arena *arena, bool *many)
{
    const xmlNode *c, *found = NULL;
    xmlChar *t;
    char *s;
    *many = false;
    for (c = first_el(((const xmlNode *)q->op)->children); c; c = next_el(c))
        if (is_el(c, DTM_SOAP_NS, name)) {
            if (found)
                *many = true;
            else
                found = c;
        }
    if (!found)
        return NULL;
    t = xmlNodeGetContent(found);
    s = dtm_arena_strndup(arena, t ? (const char *)t : "", t ? strlen((const char *)t) : 0);
    xmlFree(t);
    return s;
}

size_t dtm_soap_args(const struct dtm_soap_request *q, const char *name, struct dtm_arena *arena,
                     const char **out, size_t max)
{
    size_t n = 0;
    for (const xmlNode *c = first_el(((const xmlNode *)q->op)->children); c; c = next_el(c)) {
        if (!is_el(c, DTM_SOAP_NS, name))
            continue;
        if (n < max) {
            xmlChar *t = xmlNodeGetContent(c);
            out[n] =
                dtm_arena_strndup(arena, t ? (const char *)t : "", t ? strlen((const char *)t) : 0);
            xmlFree(t);
        }
        n++;
    }
    return n;
}

/* XML text: & < > escaped, and CR as a character reference (a parser would turn a raw one into
 * LF). libxml2 gave us valid UTF-8 and XML characters only. */
static void put_text(struct dtm_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            dtm_buf_addc(b, "&amp;");
            break;
        case '<':
            dtm_buf_addc(b, "&lt;");
            break;
        case '>':
            dtm_buf_addc(b, "&gt;");
            break;
        case '\r':
            dtm_buf_addc(b, "&#13;");
            break;
        default:
            dtm_buf_addch(b, *s);
        }
    }
}

static bool nil(const xmlNode *n)
{
    xmlChar *v = xmlGetNsProp(n, (const xmlChar *)"nil", (const xmlChar *)XSI_NS);
    bool yes = v && (strcmp((const char *)v, "true") == 0 || strcmp((const char *)v, "1") == 0);
    xmlFree(v);
    return yes;
}

/* An element and its content by local names (iterative; depth is bounded by tree_ok). */
static void put_plain(struct dtm_buf *b, const xmlNode *top, const char *top_name)
{
    const xmlNode *n = top;
    for (;;) {
        if (n->type == XML_ELEMENT_NODE) {
            const char *name = n == top ? top_name : (const char *)n->name;
            dtm_buf_printf(b, "<%s>", name);
            if (n->children && !nil(n)) {
                n = n->children;
                continue;
            }
            dtm_buf_printf(b, "</%s>", name);
        } else if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            put_text(b, n->content ? (const char *)n->content : "");
        }
        while (n != top && !n->next) {
            n = n->parent;
            dtm_buf_printf(b, "</%s>", n == top ? top_name : (const char *)n->name);
        }
        if (n == top)
            return;
        n = n->next;
    }
}

int dtm_soap_records_xml(const struct dtm_soap_request *q, const char *dataset, struct dtm_buf *out,
                         char *bad, size_t badsz)
{
    const xmlNode *recs = NULL, *c;
    for (c = first_el(((const xmlNode *)q->op)->children); c; c = next_el(c))
        if (is_el(c, DTM_SOAP_NS, "records"))
            recs = c;
    if (!recs)
        return DTM_ENOTFOUND;
    dtm_buf_addc(out, "<records>");
    for (c = recs->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            for (const char *t = c->content ? (const char *)c->content : ""; *t; t++)
                if (*t != ' ' && *t != '\t' && *t != '\r' && *t != '\n') {
                    snprintf(bad, badsz, "text");
                    return DTM_EMALFORMED;
                }
            continue;
        }
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (strcmp((const char *)c->name, dataset) != 0 &&
            strcmp((const char *)c->name, "record") != 0) {
            snprintf(bad, badsz, "%s", (const char *)c->name);
            return DTM_EMALFORMED;
        }
        put_plain(out, c, "record");
    }
    dtm_buf_addc(out, "</records>");
    return out->err;
}

void dtm_soap_begin(struct dtm_buf *b, enum dtm_soap_version v)
{
    dtm_buf_printf(b,
                   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<soap:Envelope xmlns:soap=\"%s\" xmlns:dtm=\"" DTM_SOAP_NS "\">"
                   "<soap:Body>",
                   env_ns(v));
}

void dtm_soap_end(struct dtm_buf *b, enum dtm_soap_version v)
{
    (void)v;
    dtm_buf_addc(b, "</soap:Body></soap:Envelope>\n");
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(m) ? m->valuestring : NULL;
}

static void el_text(struct dtm_buf *b, const char *name, const char *v)
{
    if (!v)
        return;
    dtm_buf_printf(b, "<dtm:%s>", name);
    dtm_buf_xml(b, dtm_str_c(v));
    dtm_buf_printf(b, "</dtm:%s>", name);
}

static void el_num(struct dtm_buf *b, const char *name, const cJSON *o, const char *member)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, member);
    if (cJSON_IsNumber(m))
        dtm_buf_printf(b, "<dtm:%s>%lld</dtm:%s>", name, (long long)m->valuedouble, name);
}

int dtm_soap_fault(struct dtm_buf *b, enum dtm_soap_version v, const char *json, size_t n,
                   enum dtm_lang lang, int64_t retry_after)
{
    cJSON *p = cJSON_ParseWithLength(json, n);
    const cJSON *st, *errs, *e;
    const char *type, *code = "internal", *detail, *title;
    int status;
    if (!p)
        return DTM_ENOMEM;
    st = cJSON_GetObjectItemCaseSensitive(p, "status");
    status = cJSON_IsNumber(st) ? st->valueint : 500;
    type = jstr(p, "type");
    if (type && strncmp(type, "urn:dtm:problem:", 16) == 0)
        code = type + 16;
    title = jstr(p, "title");
    detail = jstr(p, "detail");
    if (!detail)
        detail = title ? title : "error";
    dtm_soap_begin(b, v);
    if (v == DTM_SOAP_12) {
        dtm_buf_printf(b,
                       "<soap:Fault><soap:Code><soap:Value>soap:%s</soap:Value><soap:Subcode>"
                       "<soap:Value>dtm:",
                       status >= 500 ? "Receiver" : "Sender");
        dtm_buf_xml(b, dtm_str_c(code));
        dtm_buf_printf(b,
                       "</soap:Value></soap:Subcode></soap:Code><soap:Reason>"
                       "<soap:Text xml:lang=\"%s\">",
                       dtm_lang_code(lang));
        dtm_buf_xml(b, dtm_str_c(detail));
        dtm_buf_addc(b, "</soap:Text></soap:Reason><soap:Detail>");
    } else {
        dtm_buf_printf(b, "<soap:Fault><faultcode>soap:%s</faultcode><faultstring xml:lang=\"%s\">",
                       status >= 500 ? "Server" : "Client", dtm_lang_code(lang));
        dtm_buf_xml(b, dtm_str_c(detail));
        dtm_buf_addc(b, "</faultstring><detail>");
    }
    dtm_buf_addc(b, "<dtm:problem>");
    el_text(b, "code", code);
    dtm_buf_printf(b, "<dtm:status>%d</dtm:status>", status);
    el_text(b, "title", title);
    el_text(b, "detail", detail);
    el_text(b, "requestId", jstr(p, "request_id"));
    if (retry_after >= 0)
        dtm_buf_printf(b, "<dtm:retryAfter>%lld</dtm:retryAfter>", (long long)retry_after);
    el_num(b, "line", p, "line");
    el_num(b, "column", p, "col");
    el_num(b, "accepted", p, "accepted");
    el_num(b, "rejected", p, "rejected");
    errs = cJSON_GetObjectItemCaseSensitive(p, "errors");
    if (cJSON_IsArray(errs)) {
        dtm_buf_addc(b, "<dtm:errors>");
        cJSON_ArrayForEach(e, errs)
        {
            dtm_buf_addc(b, "<dtm:error>");
            el_num(b, "index", e, "index");
            el_text(b, "field", jstr(e, "field"));
            el_text(b, "code", jstr(e, "code"));
            el_text(b, "message", jstr(e, "message"));
            dtm_buf_addc(b, "</dtm:error>");
        }
        dtm_buf_addc(b, "</dtm:errors>");
    }
    dtm_buf_addc(b, "</dtm:problem>");
    dtm_buf_addc(b, v == DTM_SOAP_12 ? "</soap:Detail></soap:Fault>" : "</detail></soap:Fault>");
    dtm_soap_end(b, v);
    cJSON_Delete(p);
    return b->err;
}
