/* api — the HTTP handlers, one file per resource: read the parameters, call the module, format
 * the answer. No business logic here. The route table is api/routes.c. */
#ifndef DTM_API_H
#define DTM_API_H

#include "http/http.h"

int dtm_api_healthz(struct dtm_req *r);
int dtm_api_readyz(struct dtm_req *r);
int dtm_api_datasets_list(struct dtm_req *r);
int dtm_api_dataset_get(struct dtm_req *r);
int dtm_api_dataset_put(struct dtm_req *r); /* admins (CONTRACT §4) */
int dtm_api_record_get(struct dtm_req *r);
int dtm_api_records(struct dtm_req *r);
int dtm_api_ingest(struct dtm_req *r);
int dtm_api_receipt_get(struct dtm_req *r);
int dtm_api_heartbeat(struct dtm_req *r);
int dtm_api_stats(struct dtm_req *r);
int dtm_api_forecast(struct dtm_req *r); /* F7 (api/forecast.c) */
int dtm_api_systems_list(struct dtm_req *r);
int dtm_api_system_get(struct dtm_req *r);
int dtm_api_live(struct dtm_req *r);
int dtm_api_metrics(struct dtm_req *r); /* CONTRACT §7 (api/metrics.c) */
/* T2.4: systems and their credentials, for administrators (api/credentials.c) */
int dtm_api_system_create(struct dtm_req *r);
int dtm_api_system_keys(struct dtm_req *r);
int dtm_api_system_key_rotate(struct dtm_req *r);
int dtm_api_system_key_revoke(struct dtm_req *r);
int dtm_api_system_client_rotate(struct dtm_req *r);
int dtm_api_system_client_revoke(struct dtm_req *r);
/* T2.4 OAuth 2.0 (api/oauth.c) and grants for administrators (api/grants.c) */
int dtm_api_oauth_token(struct dtm_req *r);
int dtm_api_oauth_jwks(struct dtm_req *r);
int dtm_api_oauth_revoke(struct dtm_req *r); /* RFC 7009 */
int dtm_api_grants_list(struct dtm_req *r);
int dtm_api_grant_post(struct dtm_req *r);
int dtm_api_grant_delete(struct dtm_req *r);
int dtm_api_batch_post(struct dtm_req *r);
int dtm_api_batch_get(struct dtm_req *r);
int dtm_api_batch_list(struct dtm_req *r);
int dtm_api_batch_errors(struct dtm_req *r);
int dtm_api_batch_delete(struct dtm_req *r);
/* The streamed body of POST /api/v1/batches (route on_body). */
int dtm_api_batch_body(struct dtm_req *r, const char *p, size_t n);
/* people: sessions, MFA enrolment, accounts (api/people.c); the audit trail (api/audit.c) */
int dtm_api_session_post(struct dtm_req *r);
int dtm_api_session_get(struct dtm_req *r);
int dtm_api_session_delete(struct dtm_req *r);
int dtm_api_session_password(struct dtm_req *r);
int dtm_api_mfa_begin(struct dtm_req *r);
int dtm_api_mfa_qr(struct dtm_req *r);
int dtm_api_mfa_confirm(struct dtm_req *r);
int dtm_api_users_list(struct dtm_req *r);
int dtm_api_users_add(struct dtm_req *r);
int dtm_api_user_patch(struct dtm_req *r);
int dtm_api_user_delete(struct dtm_req *r);
int dtm_api_audit_list(struct dtm_req *r);
/* T5.3 alerts (api/alerts.c) and T4.4 the vulnerability register (api/vulns.c) */
int dtm_api_alerts_list(struct dtm_req *r);
int dtm_api_alert_get(struct dtm_req *r);
int dtm_api_alert_channels(struct dtm_req *r);
int dtm_api_alert_ack(struct dtm_req *r);
int dtm_api_alert_resolve(struct dtm_req *r);
int dtm_api_vulns_list(struct dtm_req *r);
int dtm_api_vuln_get(struct dtm_req *r);
int dtm_api_vuln_create(struct dtm_req *r);
int dtm_api_vuln_update(struct dtm_req *r);
/* issue 7: periodic reports (api/reports.c) */
int dtm_api_reports_list(struct dtm_req *r);
int dtm_api_report_get(struct dtm_req *r);
int dtm_api_report_period(struct dtm_req *r);
/* issue 7: data quality, reconciliation, rankings (api/quality.c) */
int dtm_api_quality(struct dtm_req *r);
int dtm_api_reconciliation(struct dtm_req *r);
int dtm_api_rankings(struct dtm_req *r);

/* CONTRACT §5 SOAP (api/soap.c): GET /soap?wsdl, POST /soap, and the renderer of its problems
 * as SOAP faults (dtm_route_problems) */
int dtm_api_soap_wsdl(struct dtm_req *r);
int dtm_api_soap(struct dtm_req *r);
int dtm_api_soap_fault(struct dtm_req *r, int status, const struct dtm_buf *problem_json);

/* F3 push sharing: subscriptions of consumers and their delivery log (api/subscriptions.c) */
int dtm_api_subscription_create(struct dtm_req *r);
int dtm_api_subscriptions_list(struct dtm_req *r);
int dtm_api_subscription_get(struct dtm_req *r);
int dtm_api_subscription_delete(struct dtm_req *r);
int dtm_api_subscription_deliveries(struct dtm_req *r);

/* Request bodies (api/body.c): the JSON object of the body — NULL after answering 415 (not
 * application/json) or 400 (not an object); the caller frees it with cJSON_Delete. A string
 * member: NULL when absent or null; *bad set (and 400 answered, once) when present but not a
 * string of at most max bytes. */
typedef struct cJSON cJSON;
cJSON *dtm_api_body_json(struct dtm_req *r);
const char *dtm_api_member(struct dtm_req *r, cJSON *j, const char *name, size_t max, bool *bad);

/* The dataset named by the first path parameter; NULL after answering 404 when there is none. */
const struct dtm_dataset *dtm_api_dataset(struct dtm_req *r);

/* Whose records a connected system may read in a dataset (CONTRACT §3, §6): a source its own
 * system's, an aggregator its own and its children's (codes), a consumer every system's (all)
 * of the datasets it is granted. On refusal the problem (403 not granted / a role that reads
 * nothing, 400 too many children) is answered and a non-zero result returned; check
 * r->responded (api/records.c). */
#define DTM_API_SCOPE_MAX 256
struct dtm_api_scope {
    bool all;
    size_t n;
    char codes[DTM_API_SCOPE_MAX][DTM_CODE_MAX];
    const char *ptrs[DTM_API_SCOPE_MAX];
};
int dtm_api_scope(struct dtm_req *r, struct dtm_store *st, const struct dtm_dataset *ds,
                  struct dtm_api_scope *out);

/* Realtime receiving, one path for POST /api/v1/ingest/{dataset} and SOAP SubmitRecords
 * (api/ingest.c): the records of body (in format) through the pipeline and the writer, answered
 * after the commit (Idempotency-Key replay, duplicates, masking, validation codes alike). reply
 * renders an answer that exists as JSON — the 200 receipt object or an RFC 9457 problem (status
 * >= 400), kept for replay (replay = answered from a kept one); problems answered at once go
 * through dtm_http_problem. */
struct dtm_api_ingest_args {
    const struct dtm_dataset *ds;
    enum dtm_format format;
    struct dtm_str content_type; /* part of an Idempotency-Key's request identity */
    struct dtm_str body;
    struct dtm_str idem_key; /* empty = none */
    bool atomic;
    const char *mode; /* NULL, "raw" or "masked" (anything else: 400 naming parameter mode) */
    int (*reply)(struct dtm_req *r, int status, const char *json, size_t len, bool replay);
};
int dtm_api_ingest_run(struct dtm_req *r, const struct dtm_api_ingest_args *a);

/* GET /api/v1/batches/{id}'s lookup: the batch id of the caller's own (a system's own; people
 * every one); 404 batch_not_found answered when not (then DTM_ENOTFOUND). */
struct dtm_batch;
int dtm_api_batch_own(struct dtm_req *r, struct dtm_str id, struct dtm_batch *out);

/* GET /api/v1/stats/{dataset}'s query: parsed (400 naming the parameter), narrowed to what the
 * caller may read (dtm_api_scope) and run. Non-zero after answering (check r->responded) or
 * with an error code; on DTM_OK the caller frees out with dtm_result_free. */
struct dtm_result;
struct dtm_api_stats_args {
    const char *metrics, *group_by, *interval, *from, *to; /* NULL = absent */
    const char *const *wheres;
    size_t nwheres;
    bool scan_only;
};
int dtm_api_stats_query(struct dtm_req *r, const struct dtm_dataset *ds,
                        const struct dtm_api_stats_args *a, struct dtm_result *out);

/* Appends "errors":[{index,field,code,message}…] members for record errors. */
void dtm_api_errors_json(struct dtm_buf *b, const struct dtm_rec_error *errs, size_t n,
                         enum dtm_lang lang);

#endif
