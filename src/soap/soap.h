/* soap — SOAP 1.1 and 1.2 for connected systems that speak it (CONTRACT §5, Annex I §2.1):
 * the safe reading of a request envelope (libxml2 with no network, no DTD, no entities, a
 * DOCTYPE refused, bounded depth), its WS-Security UsernameToken and its operation; the answer
 * envelopes; faults made from our RFC 9457 problems (same machine codes, same localised
 * messages, record errors in the detail); and the WSDL 1.1 (document/literal) with one XSD per
 * dataset generated from the data dictionary (wsdl.c). Conversion only: api/soap.c hands each
 * operation to the modules REST uses. */
#ifndef DTM_SOAP_H
#define DTM_SOAP_H

#include "core/core.h"
#include "dict/dict.h"

#define DTM_SOAP_NS "urn:dtm:soap"             /* operations, answers, faults */
#define DTM_SOAP_DATASET_NS "urn:dtm:dataset:" /* + code: a dataset's record type */
#define DTM_SOAP_ENV11 "http://schemas.xmlsoap.org/soap/envelope/"
#define DTM_SOAP_ENV12 "http://www.w3.org/2003/05/soap-envelope"
#define DTM_SOAP_MAX_DEPTH 32 /* element nesting of an envelope (ours need 7) */

enum dtm_soap_version { DTM_SOAP_11, DTM_SOAP_12 };

/* The version a request's Content-Type selects: application/soap+xml is 1.2, anything else 1.1
 * (text/xml; other types are refused before the body is read). */
enum dtm_soap_version dtm_soap_version_of(struct dtm_str content_type);
/* The Content-Type of an answer in that version. */
const char *dtm_soap_content_type(enum dtm_soap_version v);

/* A request envelope, read. Strings are NUL-terminated, owned by the request (freed, the
 * password wiped, by dtm_soap_request_free). */
struct dtm_soap_request {
    enum dtm_soap_version version;
    void *doc;           /* xmlDocPtr */
    void *op;            /* xmlNodePtr: the body's element, in DTM_SOAP_NS */
    const char *op_name; /* its local name ("SubmitRecords" …) */
    bool token;          /* a WS-Security UsernameToken was present */
    char *username, *password;
};

/* Why an envelope was refused: a machine code (the problem's), the HTTP status it stands for
 * and an English detail (a msgid with one %s: the detail argument). */
struct dtm_soap_refusal {
    int status;
    const char *code;   /* "malformed", "xml_dtd", "version_mismatch", "must_understand", … */
    const char *detail; /* English msgid with at most one %s */
    char arg[160];
};

/* Reads body as an envelope of version v. DTM_OK, or DTM_EMALFORMED with *why filled (the
 * caller answers it as a fault), or DTM_ENOMEM. */
int dtm_soap_request_read(struct dtm_str body, enum dtm_soap_version v,
                          struct dtm_soap_request *out, struct dtm_soap_refusal *why);
void dtm_soap_request_free(struct dtm_soap_request *q);

/* The text of the child element `name` (in DTM_SOAP_NS) of the operation element: NULL when
 * absent; "" when empty. Arena memory. *many is set when it occurs more than once. */
const char *dtm_soap_arg(const struct dtm_soap_request *q, const char *name,
                         struct dtm_arena *arena, bool *many);
/* Every occurrence of a repeated child (QueryStats' where): up to max into out; the count. */
size_t dtm_soap_args(const struct dtm_soap_request *q, const char *name, struct dtm_arena *arena,
                     const char **out, size_t max);

/* SubmitRecords' records as the REST XML body <records><record><field>value</field>…</record>…
 * </records> (ingest/xml.c decodes it): each child of <records> named `record` or the
 * dataset's code is a record; names lose their namespaces; xsi:nil="true" fields are empty.
 * DTM_OK, DTM_ENOTFOUND (no <records>), DTM_EMALFORMED (another element in <records>; *bad
 * names it), or the buffer's error. */
int dtm_soap_records_xml(const struct dtm_soap_request *q, const char *dataset, struct dtm_buf *out,
                         char *bad, size_t badsz);

/* Answer envelopes: begin writes the XML declaration, <Envelope> and <Body>; end closes them. */
void dtm_soap_begin(struct dtm_buf *b, enum dtm_soap_version v);
void dtm_soap_end(struct dtm_buf *b, enum dtm_soap_version v);

/* A whole fault envelope from an RFC 9457 problem (its JSON body as dtm_http_problem_build
 * makes it): Client/Sender for 4xx, Server/Receiver for 5xx; the machine code as the 1.2
 * Subcode; the localised detail as faultstring / Reason (xml:lang lang); and in the detail a
 * <problem> of DTM_SOAP_NS with code, status, title, detail, requestId, retryAfter (>= 0 when
 * given), line/column and the record errors (index, field, code, message). */
int dtm_soap_fault(struct dtm_buf *b, enum dtm_soap_version v, const char *json, size_t n,
                   enum dtm_lang lang, int64_t retry_after);

/* The WSDL 1.1 of the service at address (its soap:address), for the datasets of dict:
 * document/literal SOAP 1.1 and 1.2 bindings of SubmitRecords, GetBatchStatus, QueryStats and
 * Ping; one xs:schema per dataset (urn:dtm:dataset:CODE, type Record) generated from its
 * definition — types, required, enum values, maximum lengths, bounds, and patterns where XSD can
 * say the same. */
int dtm_soap_wsdl(const struct dtm_dict *dict, const char *address, struct dtm_buf *out);
/* One dataset's schema as a standalone XSD document. */
int dtm_soap_xsd(const struct dtm_dataset *ds, struct dtm_buf *out);
/* The XSD form of a PCRE pattern ("^[0-9]{12}$" → "[0-9]{12}"), or false when XSD cannot say
 * exactly the same (unanchored, lookarounds, lazy quantifiers, backreferences …). */
bool dtm_soap_xsd_pattern(const char *pcre, struct dtm_buf *out);

#endif
