/* store/pg.c — the PostgreSQL backend (issue 9, CONTRACT §8), with libpq, behind the same
 * store.h interface as store/sqlite.c, whose semantics it reproduces statement by statement.
 *
 * One PGconn per struct dtm_store (the server opens one store per thread, as with SQLite).
 * Statements are prepared once per connection (lazily, PQprepare) and run with PQexecPrepared:
 * values always travel as parameters — integers in text form, text and BYTEA in binary form —
 * and results come back in binary form (integers decoded by their width, text and BYTEA as they
 * are, without copies). Times are BIGINT µs, blobs BYTEA, flags BIGINT 0/1 (as in SQLite); text
 * columns use the "C" collation so that ORDER BY gives SQLite's byte order.
 *
 * Where PostgreSQL differs from SQLite:
 * - SQLite has one writer per file. Here `begin` takes a transaction-level advisory lock (the
 *   records' write lock) and `cube_begin` another one (the rollups'), so writers on any node are
 *   serialised exactly as SQLite serialises them: the read-modify-writes that rely on it
 *   (receipt_next_seq, audit_append's chain, ds_id) stay correct with several nodes. Statements
 *   run outside begin/commit (touches, sessions) are single statements, atomic on their own.
 * - The rollups live in ordinary tables (SQLite keeps them in an attached file `cubes`).
 *   cube_apply merges aggregates in C (dtm_agg_merge is a C function, not SQL): the row is read
 *   with SELECT … FOR UPDATE, merged and written back; a new row is inserted with ON CONFLICT DO
 *   NOTHING and, when another writer inserted it first, merged instead.
 * - An error aborts the whole PostgreSQL transaction, where SQLite only fails the statement: the
 *   inserts that may meet a duplicate use ON CONFLICT DO NOTHING and report DTM_EEXIST from the
 *   row count instead of from an error.
 * - commit is durable when it returns (synchronous_commit = on, the server's default);
 *   set_durable(false) sets synchronous_commit = off for the connection (a crash of the database
 *   server may lose the last commits, never consistency), like SQLite's synchronous=NORMAL.
 * - maintain does nothing (autovacuum keeps the tables), tune_writer does nothing (the cache is
 *   the server's shared_buffers), reopen opens another connection with the same settings,
 *   record_scan_table / record_scan_part / record_id_split read ranges of the records' id.
 * - The connection is re-established by the next statement after it broke (the prepared
 *   statements are prepared again); a transaction that was open is lost and reported.
 * Messages name the server (host:port) and libpq's reason, never the password. */
#include "store/store.h"
#include "gate/gate.h"
#include "stats/stats.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* advisory lock keys (pg_advisory_xact_lock): "DTM" and a number */
#define LOCK_MIGRATE 0x44544d00LL
#define LOCK_MAIN 0x44544d01LL
#define LOCK_CUBES 0x44544d02LL

enum qid {
    Q_LOCK,
    Q_SYS_ADD,
    Q_SYS_GET,
    Q_SYS_LIST,
    Q_SYS_TOUCH,
    Q_SYS_TIER,
    Q_PROBE_SET,
    Q_PROBE_LIST,
    Q_PROBE_PUT,
    Q_STATUS_END,
    Q_STATUS_ADD,
    Q_STATUS_LIST,
    Q_STATUS_LIST_ALL,
    Q_KEY_ADD,
    Q_KEY_FIND,
    Q_KEY_EXPIRE,
    Q_KEY_REVOKE,
    Q_CLIENT_ADD,
    Q_CLIENT_GET,
    Q_CLIENT_SET,
    Q_KEY_LIST,
    Q_SIGNKEY_ADD,
    Q_SIGNKEY_RETIRE,
    Q_SIGNKEY_LIST,
    Q_USER_ADD,
    Q_USER_GET,
    Q_USER_LIST,
    Q_USER_UPDATE,
    Q_USER_DEL,
    Q_USER_DEL_SESSIONS,
    Q_USER_DEL_RECOVERY,
    Q_USER_MFA_STEP,
    Q_SESS_PUT,
    Q_SESS_GET,
    Q_SESS_TOUCH,
    Q_SESS_DEL,
    Q_SESS_DEL_USER,
    Q_SESS_PURGE,
    Q_RECOV_ADD,
    Q_RECOV_USE,
    Q_RCPT_NEXT,
    Q_RCPT_PUT,
    Q_RCPT_GET,
    Q_RCPT_RECORDS,
    Q_REC_INSERT,
    Q_REC_FIND,
    Q_REC_HISTORY,
    Q_REC_UPDATE,
    Q_REC_GET,
    Q_REC_GET_HISTORY,
    Q_IDEM_GET,
    Q_IDEM_PUT,
    Q_IDEM_PURGE,
    Q_REC_SCAN,
    Q_REC_SCAN_ALL,
    Q_REC_SCAN_TABLE,
    Q_REC_ID_RANGE,
    Q_REC_SCAN_PART,
    Q_REC_SCAN_PART_ALL,
    Q_DS_GET,
    Q_DS_ADD,
    Q_BATCH_PUT,
    Q_BATCH_UPDATE,
    Q_BATCH_GET,
    Q_BATCH_LIST,
    Q_BATCH_LIST_ALL,
    Q_BATCH_PENDING,
    Q_BATCH_ERR_PUT,
    Q_BATCH_ERRS,
    Q_CUBE_GET,
    Q_CUBE_ADD,
    Q_DS_HAS_RECORDS,
    Q_CUBE_ROW_LOCK,
    Q_CUBE_ROW_ADD,
    Q_CUBE_ROW_SET,
    Q_CUBE_SCAN,
    Q_CUBE_CLEAR,
    Q_CUBE_MARK,
    Q_CUBE_PURGE,
    Q_CUBE_APPLIED,
    Q_CUBE_LAG,
    Q_CUBE_ALL_INCOMPLETE,
    Q_CUBE_GAP_ADD,
    Q_CUBE_GAP_ANY,
    Q_CUBE_GAP_CLEAR,
    Q_CUBE_GAP_PURGE,
    Q_CUBE_SEEK,
    Q_GRANT_PUT,
    Q_GRANT_DEL,
    Q_GRANT_CHECK,
    Q_GRANT_LIST,
    Q_GRANT_LIST_ALL,
    Q_REC_PAGE,
    Q_REC_PAGE_NOTIME,
    Q_PURGE_HISTORY,
    Q_PURGE_RECORDS,
    Q_PURGE_CUBES,
    Q_AUDIT_HEAD,
    Q_AUDIT_PUT,
    Q_AUDIT_LIST,
    Q_DK_ADD,
    Q_DK_GET,
    Q_DK_LIST,
    Q_DK_UPDATE,
    Q_SECRET_PUT,
    Q_SECRET_GET,
    Q_SECRET_LIST,
    Q_SECRET_DEL,
    Q_ALERT_INSERT,
    Q_ALERT_UPDATE,
    Q_ALERT_GET,
    Q_ALERT_OPEN,
    Q_ALERT_LAST_RESOLVED,
    Q_ALERT_LIST,
    Q_ALERT_DELIVERY_PUT,
    Q_ALERT_DELIVERIES,
    Q_ALERT_PENDING,
    Q_VULN_INSERT,
    Q_VULN_UPDATE,
    Q_VULN_GET,
    Q_VULN_LIST,
    Q_BACKUP_ADD,
    Q_BACKUP_LAST,
    Q_SUB_PUT,
    Q_SUB_GET,
    Q_SUB_LIST,
    Q_SUB_DEL,
    Q_SUB_CLAIM,
    Q_SUB_DONE_OK,
    Q_SUB_DONE_FAIL,
    Q_SUB_DELIVERY_ADD,
    Q_SUB_DELIVERIES,
    Q_WNET_PUT,
    Q_WNET_LIST,
    Q_WNET_PURGE,
    Q_TOK_REVOKE,
    Q_TOK_REVOKED,
    Q_TOK_PURGE,
    Q_DSDEF_PUT,
    Q_DSDEF_LIST,
    Q_REPORT_CLAIM,
    Q_REPORT_PUT,
    Q_REPORT_GET,
    Q_REPORT_LIST,
    Q_REPORT_PURGE,
    Q_QUAL_ADD,
    Q_QUAL_SUM,
    Q_CATALOG_SUM, /* issue 8: api/catalog.c */
    Q_JOB_CLAIM,   /* forecast/anomaly.c */
    Q_JOB_PURGE,
    Q_COUNT
};

/* revision, receipt_seq, received_at, replaced_at, content, key_hash (version_rows) */
#define VERSION_COLS "revision,receipt_seq,received_at,0::bigint,content,key_hash"
#define PAGE_COLS                                                                                  \
    "SELECT r.id,r.event_time,r.system_code,coalesce(c.system_code,''),r.content,r.key_hash "      \
    "FROM records r LEFT JOIN receipts c ON c.seq=r.receipt_seq "
/* $7: the systems to keep (a text array), NULL = every system */
#define PAGE_SYSTEMS " AND ($7::text[] IS NULL OR r.system_code=ANY($7::text[]))"
#define PURGE_IDS                                                                                  \
    "SELECT id FROM records WHERE ds=$1 AND event_time<$2 ORDER BY event_time,id LIMIT $3"
#define USER_COLS                                                                                  \
    "SELECT username,role,password_hash,created_at,coalesce(password_changed_at,0),disabled,"      \
    "mfa_enabled,mfa_last_step,mfa_secret FROM users"
#define BATCH_COLS                                                                                 \
    "id,system_code,dataset,format,origin,status,priority,masked,source,bytes,byte_offset,"        \
    "next_row,total,accepted,duplicates,updated,rejected,nerrors,created_at,started_at,"           \
    "finished_at,error"
#define ALERT_COLS                                                                                 \
    "id,rule,key,severity,state,title,detail,first_seen,last_seen,count,acknowledged_by,"          \
    "acknowledged_at,resolved_by,resolved_at,suppressed"
#define VULN_COLS                                                                                  \
    "id,title,severity,found,remediation_plan,deadline,status,created_by,created_at,updated_at"
#define DELIVERY_COLS "alert_id,channel,status,attempts,error,updated_at,event"
#define SUB_COLS                                                                                   \
    "id,system_code,dataset,where_json,metrics,group_by,bucket_interval,url,secret,created_at,"    \
    "next_bucket,attempts,next_attempt_at,last_error,delivered,last_delivered_at,lease_owner,"     \
    "lease_until"

static const char *const sql[Q_COUNT] = {
    [Q_LOCK] = "SELECT pg_advisory_xact_lock($1::bigint)",
    [Q_SYS_ADD] = "INSERT INTO systems(code,name,org,role,parent,masked,created_at,tier) "
                  "VALUES($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT(code) DO NOTHING",
    [Q_SYS_GET] = "SELECT code,name,org,role,parent,masked,created_at,last_seen,tier FROM systems "
                  "WHERE code=$1",
    [Q_SYS_LIST] = "SELECT code,name,org,role,parent,masked,created_at,last_seen,tier FROM systems "
                   "ORDER BY code",
    [Q_SYS_TOUCH] = "UPDATE systems SET last_seen=$1 WHERE code=$2 AND "
                    "(last_seen IS NULL OR last_seen<$1)",
    [Q_SYS_TIER] = "UPDATE systems SET tier=$1 WHERE code=$2",
    [Q_PROBE_SET] = "UPDATE systems SET probe_url=$1 WHERE code=$2",
    [Q_PROBE_LIST] = "SELECT code,probe_url,last_probe_at,last_probe_ok,last_probe_ms,"
                     "last_probe_error FROM systems WHERE probe_url IS NOT NULL ORDER BY code",
    [Q_PROBE_PUT] = "UPDATE systems SET last_probe_at=$1,last_probe_ok=$2,last_probe_ms=$3,"
                    "last_probe_error=$4 WHERE code=$5",
    [Q_STATUS_END] = "UPDATE system_status SET until=$1 WHERE system_code=$2 AND until IS NULL",
    [Q_STATUS_ADD] = "INSERT INTO system_status(system_code,status,since) VALUES($1,$2,$3)",
    [Q_STATUS_LIST] = "SELECT system_code,status,since,until FROM system_status "
                      "WHERE system_code=$1 AND (until IS NULL OR until>$2) ORDER BY since,id",
    [Q_STATUS_LIST_ALL] = "SELECT system_code,status,since,until FROM system_status "
                          "WHERE until IS NULL OR until>$1 ORDER BY system_code,since,id",
    [Q_KEY_ADD] = "INSERT INTO api_keys(id,system_code,hash,created_at) VALUES($1,$2,$3,$4) "
                  "ON CONFLICT DO NOTHING",
    [Q_KEY_FIND] = "SELECT k.id,k.system_code,k.created_at,k.expires_at,k.revoked_at,"
                   "s.code,s.name,s.org,s.role,s.parent,s.masked,s.created_at,s.last_seen,s.tier "
                   "FROM api_keys k JOIN systems s ON s.code=k.system_code WHERE k.hash=$1",
    [Q_KEY_EXPIRE] =
        "UPDATE api_keys SET expires_at=$1 WHERE system_code=$2 AND revoked_at IS NULL "
        "AND (expires_at IS NULL OR expires_at>$1)",
    [Q_KEY_REVOKE] = "UPDATE api_keys SET revoked_at=$1 WHERE id=$2 AND revoked_at IS NULL",
    [Q_CLIENT_ADD] = "INSERT INTO oauth_clients(client_id,system_code,secret_hash,created_at) "
                     "VALUES($1,$2,$3,$4) ON CONFLICT(client_id) DO NOTHING",
    [Q_CLIENT_GET] = "SELECT client_id,system_code,secret_hash,created_at,revoked_at,generation "
                     "FROM oauth_clients WHERE client_id=$1",
    [Q_CLIENT_SET] = "UPDATE oauth_clients SET secret_hash=$2,revoked_at=$3,generation=$4 "
                     "WHERE client_id=$1",
    [Q_KEY_LIST] = "SELECT id,system_code,created_at,coalesce(expires_at,0),coalesce(revoked_at,0) "
                   "FROM api_keys WHERE system_code=$1 ORDER BY created_at DESC,id",
    [Q_SIGNKEY_ADD] = "INSERT INTO signing_keys(kid,alg,public_jwk,public_pem,sealed,created_at) "
                      "VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT(kid) DO NOTHING",
    [Q_SIGNKEY_RETIRE] = "UPDATE signing_keys SET retired_at=$1 WHERE retired_at IS NULL",
    [Q_SIGNKEY_LIST] = "SELECT kid,alg,public_jwk,public_pem,sealed,created_at,retired_at "
                       "FROM signing_keys WHERE retired_at IS NULL OR retired_at>$1 "
                       "ORDER BY created_at DESC,kid",
    [Q_USER_ADD] = "INSERT INTO users(username,role,password_hash,created_at) VALUES($1,$2,$3,$4) "
                   "ON CONFLICT(username) DO NOTHING",
    [Q_USER_GET] = USER_COLS " WHERE username=$1",
    [Q_USER_LIST] = USER_COLS " ORDER BY username",
    /* a new TOTP seed starts its replay guard afresh (SQLite's `IS` is IS NOT DISTINCT FROM) */
    [Q_USER_UPDATE] = "UPDATE users SET role=$2,password_hash=$3,password_changed_at=$4,"
                      "disabled=$5,mfa_enabled=$6,mfa_secret=$7::bytea,mfa_last_step=CASE WHEN "
                      "mfa_secret IS NOT DISTINCT FROM $7::bytea THEN mfa_last_step ELSE 0 END "
                      "WHERE username=$1",
    [Q_USER_DEL] = "DELETE FROM users WHERE username=$1",
    [Q_USER_DEL_SESSIONS] = "DELETE FROM sessions WHERE username=$1",
    [Q_USER_DEL_RECOVERY] = "DELETE FROM mfa_recovery WHERE username=$1",
    [Q_USER_MFA_STEP] = "UPDATE users SET mfa_last_step=$2 WHERE username=$1 AND mfa_last_step<$2",
    [Q_SESS_PUT] = "INSERT INTO sessions(id_hash,username,csrf,created_at,last_seen,expires_at,"
                   "source_ip) VALUES($1,$2,$3,$4,$5,$6,$7) ON CONFLICT(id_hash) DO NOTHING",
    [Q_SESS_GET] = "SELECT username,csrf,created_at,last_seen,expires_at,source_ip FROM sessions "
                   "WHERE id_hash=$1",
    [Q_SESS_TOUCH] = "UPDATE sessions SET last_seen=$2 WHERE id_hash=$1 AND last_seen<$2",
    [Q_SESS_DEL] = "DELETE FROM sessions WHERE id_hash=$1",
    [Q_SESS_DEL_USER] =
        "DELETE FROM sessions WHERE username=$1 AND ($2::bytea IS NULL OR id_hash<>$2::bytea)",
    [Q_SESS_PURGE] = "DELETE FROM sessions WHERE expires_at<=$1 OR last_seen<$2",
    [Q_RECOV_ADD] = "INSERT INTO mfa_recovery(username,hash) VALUES($1,$2) ON CONFLICT DO NOTHING",
    [Q_RECOV_USE] = "UPDATE mfa_recovery SET used_at=$3 WHERE username=$1 AND hash=$2 AND "
                    "used_at IS NULL",
    [Q_RCPT_NEXT] = "SELECT coalesce(max(seq),0)+1 FROM receipts",
    [Q_RCPT_PUT] = "INSERT INTO receipts(seq,tag,dataset,system_code,request_id,received_at,"
                   "accepted,duplicates,updated,rejected,first_id,last_id) "
                   "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
    [Q_RCPT_GET] = "SELECT seq,tag,dataset,system_code,request_id,received_at,accepted,duplicates,"
                   "updated,rejected FROM receipts WHERE seq=$1",
    /* the records a receipt created are a range of ids; those it updated are found through
     * their history (as in SQLite: no index on records.receipt_seq) */
    [Q_RCPT_RECORDS] = "SELECT * FROM (SELECT " VERSION_COLS ",id FROM records "
                       "WHERE receipt_seq=$1 AND id BETWEEN "
                       "(SELECT first_id FROM receipts WHERE seq=$1) AND "
                       "(SELECT last_id FROM receipts WHERE seq=$1) "
                       "UNION ALL "
                       "SELECT " VERSION_COLS ",id FROM records "
                       "WHERE receipt_seq=$1 AND id IN "
                       "(SELECT record_id FROM record_history WHERE replaced_by=$1) AND id NOT "
                       "BETWEEN coalesce((SELECT first_id FROM receipts WHERE seq=$1),0) AND "
                       "coalesce((SELECT last_id FROM receipts WHERE seq=$1),-1)) v "
                       "ORDER BY 7 LIMIT $2",
    /* ON CONFLICT DO NOTHING waits for a concurrent insert of the same key to end, then skips:
     * the caller finds the row with Q_REC_FIND (a new snapshot under READ COMMITTED) */
    [Q_REC_INSERT] = "WITH k AS (INSERT INTO record_keys(ds,key_hash,id) "
                     "VALUES($1,$2,nextval('record_ids')) ON CONFLICT(ds,key_hash) DO NOTHING "
                     "RETURNING id) INSERT INTO records(id,ds,key_hash,system_code,event_time,"
                     "revision,receipt_seq,content_hash,content,received_at) "
                     "SELECT id,$1,$2,$3,$4,1,$5,$6,$7,$8 FROM k RETURNING id",
    /* FOR UPDATE: another node's writer cannot replace the version between this read and the
     * update below */
    [Q_REC_FIND] = "SELECT id,content_hash,revision,receipt_seq,received_at,content FROM records"
                   " WHERE ds=$1 AND key_hash=$2 FOR UPDATE",
    [Q_REC_HISTORY] = "INSERT INTO record_history(record_id,revision,receipt_seq,content_hash,"
                      "content,received_at,replaced_at,replaced_by) SELECT id,revision,"
                      "receipt_seq,content_hash,content,received_at,$1,$2 FROM records WHERE id=$3",
    [Q_REC_UPDATE] = "UPDATE records SET revision=revision+1,receipt_seq=$1,content_hash=$2,"
                     "content=$3,event_time=$4,system_code=$5,received_at=$6 WHERE id=$7",
    [Q_REC_GET] = "SELECT id,revision,receipt_seq,received_at,content FROM records "
                  "WHERE ds=$1 AND key_hash=$2",
    [Q_REC_GET_HISTORY] = "SELECT revision,receipt_seq,received_at,replaced_at,content,$2::bytea "
                          "FROM record_history WHERE record_id=$1 ORDER BY revision DESC",
    [Q_IDEM_GET] = "SELECT request_hash,status,body,created_at FROM idempotency "
                   "WHERE system_code=$1 AND key=$2 AND created_at>=$3",
    [Q_IDEM_PUT] = "INSERT INTO idempotency(system_code,key,request_hash,status,body,created_at) "
                   "VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT(system_code,key) DO UPDATE SET "
                   "request_hash=excluded.request_hash,status=excluded.status,"
                   "body=excluded.body,created_at=excluded.created_at",
    [Q_IDEM_PURGE] = "DELETE FROM idempotency WHERE created_at<$1",
    [Q_REC_SCAN] = "SELECT " VERSION_COLS " FROM records "
                   "WHERE ds=$1 AND event_time>=$2 AND event_time<$3 ORDER BY event_time,id",
    /* records without a time last (SQLite: ORDER BY event_time IS NULL, event_time) */
    [Q_REC_SCAN_ALL] = "SELECT " VERSION_COLS " FROM records "
                       "WHERE ds=$1 ORDER BY event_time NULLS LAST,id",
    /* PostgreSQL picks a sequential scan by itself when the range holds much of the table */
    [Q_REC_SCAN_TABLE] = "SELECT " VERSION_COLS " FROM records WHERE ds=$1",
    [Q_REC_ID_RANGE] = "SELECT min(id),max(id) FROM records",
    [Q_REC_SCAN_PART] = "SELECT " VERSION_COLS " FROM records "
                        "WHERE id>=$1 AND id<$2 AND ds=$3 AND event_time>=$4 AND event_time<$5",
    [Q_REC_SCAN_PART_ALL] = "SELECT " VERSION_COLS " FROM records WHERE id>=$1 AND id<$2 AND ds=$3",
    [Q_DS_GET] = "SELECT id FROM dataset_ids WHERE code=$1",
    [Q_DS_ADD] =
        "INSERT INTO dataset_ids(code) VALUES($1) ON CONFLICT(code) DO NOTHING RETURNING id",
    [Q_BATCH_PUT] = "INSERT INTO batches(" BATCH_COLS ") VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,"
                    "$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22) ON CONFLICT(id) DO NOTHING",
    [Q_BATCH_UPDATE] = "UPDATE batches SET system_code=$2,dataset=$3,format=$4,origin=$5,status=$6,"
                       "priority=$7,masked=$8,source=$9,bytes=$10,byte_offset=$11,next_row=$12,"
                       "total=$13,accepted=$14,duplicates=$15,updated=$16,rejected=$17,"
                       "nerrors=$18,created_at=$19,started_at=$20,finished_at=$21,error=$22 "
                       "WHERE id=$1",
    [Q_BATCH_GET] = "SELECT " BATCH_COLS " FROM batches WHERE id=$1",
    [Q_BATCH_LIST] = "SELECT " BATCH_COLS " FROM batches WHERE system_code=$1 "
                     "ORDER BY created_at DESC,id DESC LIMIT $2",
    [Q_BATCH_LIST_ALL] = "SELECT " BATCH_COLS " FROM batches ORDER BY created_at DESC,id DESC "
                         "LIMIT $1",
    [Q_BATCH_PENDING] = "SELECT " BATCH_COLS " FROM batches WHERE status IN('queued','running') "
                        "AND origin=$1 ORDER BY status='running' DESC,priority DESC,created_at,id",
    [Q_BATCH_ERR_PUT] = "INSERT INTO batch_errors(batch_id,seq,row,line,field,code,arg,rule) "
                        "VALUES($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING",
    [Q_BATCH_ERRS] = "SELECT seq,row,line,field,code,arg,rule FROM batch_errors "
                     "WHERE batch_id=$1 AND seq>$2 ORDER BY seq LIMIT $3",
    [Q_CUBE_GET] = "SELECT id,complete FROM cube_ids WHERE ds=$1 AND dims=$2",
    [Q_CUBE_ADD] = "INSERT INTO cube_ids(ds,dims,complete) VALUES($1,$2,$3) "
                   "ON CONFLICT(ds,dims) DO NOTHING RETURNING id",
    [Q_DS_HAS_RECORDS] = "SELECT 1 FROM records WHERE ds=$1 LIMIT 1",
    [Q_CUBE_ROW_LOCK] = "SELECT n,agg FROM cube_rows WHERE cube=$1 AND grain=$2 AND bucket=$3 AND "
                        "dims=$4 FOR UPDATE",
    [Q_CUBE_ROW_ADD] = "INSERT INTO cube_rows(cube,grain,bucket,dims,n,agg) "
                       "VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING",
    [Q_CUBE_ROW_SET] = "UPDATE cube_rows SET n=$5,agg=$6 WHERE cube=$1 AND grain=$2 AND bucket=$3 "
                       "AND dims=$4",
    [Q_CUBE_SCAN] = "SELECT bucket,dims,n,agg FROM cube_rows WHERE cube=$1 AND grain=$2 AND "
                    "bucket>=$3 AND bucket<$4 ORDER BY cube,grain,bucket,dims",
    [Q_CUBE_CLEAR] = "DELETE FROM cube_rows WHERE cube=$1",
    [Q_CUBE_MARK] = "UPDATE cube_ids SET complete=$1 WHERE id=$2",
    /* every cube at once (SQLite walks the cubes one by one: a range of the key each) */
    [Q_CUBE_PURGE] = "DELETE FROM cube_rows WHERE grain=$1 AND bucket<$2",
    [Q_CUBE_APPLIED] = "INSERT INTO cube_state(k,v) VALUES('applied_seq',$1) "
                       "ON CONFLICT(k) DO UPDATE SET v=greatest(cube_state.v,excluded.v)",
    [Q_CUBE_LAG] = "SELECT coalesce((SELECT max(seq) FROM receipts),0),"
                   "coalesce((SELECT v FROM cube_state WHERE k='applied_seq'),0)",
    [Q_CUBE_ALL_INCOMPLETE] = "UPDATE cube_ids SET complete=0",
    [Q_CUBE_GAP_ADD] = "INSERT INTO cube_gaps(cube,bucket) VALUES($1,$2) "
                       "ON CONFLICT(cube,bucket) DO NOTHING",
    [Q_CUBE_GAP_ANY] = "SELECT 1 FROM cube_gaps WHERE cube=$1 AND bucket>=$2 AND bucket<$3 LIMIT 1",
    [Q_CUBE_GAP_CLEAR] = "DELETE FROM cube_gaps WHERE cube=$1",
    [Q_CUBE_GAP_PURGE] = "DELETE FROM cube_gaps WHERE bucket<$1",
    [Q_CUBE_SEEK] = "SELECT bucket,dims,n,agg FROM cube_rows WHERE cube=$1 AND grain=$2 AND "
                    "bucket=$3 AND dims>=$4 AND dims<$5 ORDER BY dims",
    [Q_GRANT_PUT] = "INSERT INTO grants(system_code,dataset,granted_at) VALUES($1,$2,$3) "
                    "ON CONFLICT(system_code,dataset) DO NOTHING",
    [Q_GRANT_DEL] = "DELETE FROM grants WHERE system_code=$1 AND dataset=$2",
    [Q_GRANT_CHECK] = "SELECT 1 FROM grants WHERE system_code=$1 AND dataset=$2",
    [Q_GRANT_LIST] = "SELECT system_code,dataset,granted_at FROM grants WHERE system_code=$1 "
                     "ORDER BY dataset",
    [Q_GRANT_LIST_ALL] = "SELECT system_code,dataset,granted_at FROM grants "
                         "ORDER BY system_code,dataset",
    /* $1 ds, $2 max(from, after_time), $3 to, $4 after_time, $5 after_id, $6 limit, $7 systems */
    [Q_REC_PAGE] = PAGE_COLS "WHERE r.ds=$1 AND r.event_time>=$2 AND r.event_time<$3 AND "
                             "(r.event_time>$4 OR r.id>$5)" PAGE_SYSTEMS
                             " ORDER BY r.event_time,r.id LIMIT $6",
    [Q_REC_PAGE_NOTIME] = PAGE_COLS "WHERE r.ds=$1 AND r.event_time IS NULL AND r.id>$5 AND "
                                    "$2::bigint IS NOT NULL AND $3::bigint IS NOT NULL AND "
                                    "$4::bigint IS NOT NULL" PAGE_SYSTEMS " ORDER BY r.id LIMIT $6",
    [Q_PURGE_HISTORY] = "DELETE FROM record_history WHERE record_id IN (" PURGE_IDS ")",
    /* with their keys (record_keys: the partitioned records' unique key) */
    [Q_PURGE_RECORDS] = "WITH d AS (DELETE FROM records WHERE id IN (" PURGE_IDS ") "
                        "RETURNING ds,key_hash) DELETE FROM record_keys k USING d "
                        "WHERE k.ds=d.ds AND k.key_hash=d.key_hash",
    [Q_PURGE_CUBES] =
        "DELETE FROM cube_rows WHERE cube IN (SELECT id FROM cube_ids WHERE ds=$1) "
        "AND bucket<(CASE grain WHEN 0 THEN $2::bigint ELSE $3::bigint END) AND bucket>$4",
    [Q_AUDIT_HEAD] = "SELECT seq,hash FROM audit_log ORDER BY seq DESC LIMIT 1",
    [Q_AUDIT_PUT] = "INSERT INTO audit_log(seq,at,actor_kind,actor,action,target,detail,source_ip,"
                    "prev_hash,hash) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
    [Q_AUDIT_LIST] = "SELECT seq,at,actor_kind,actor,action,target,detail,source_ip,prev_hash,hash "
                     "FROM audit_log WHERE seq>$1 AND at>=$2 AND at<$3 AND ($4::text IS NULL OR "
                     "actor=$4::text) AND ($5::text IS NULL OR action=$5::text) ORDER BY seq "
                     "LIMIT $6",
    [Q_DK_ADD] = "INSERT INTO data_keys(id,wrapped,kek_id,created_at,retired_at,sealed) "
                 "VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT(id) DO NOTHING",
    [Q_DK_GET] = "SELECT id,wrapped,kek_id,created_at,coalesce(retired_at,0),sealed FROM data_keys "
                 "WHERE id=$1",
    [Q_DK_LIST] = "SELECT id,wrapped,kek_id,created_at,coalesce(retired_at,0),sealed FROM "
                  "data_keys ORDER BY id",
    [Q_DK_UPDATE] = "UPDATE data_keys SET wrapped=$2,kek_id=$3,retired_at=$4,sealed=$5 WHERE id=$1",
    [Q_SECRET_PUT] = "INSERT INTO secrets(name,sealed,updated_at) VALUES($1,$2,$3) "
                     "ON CONFLICT(name) DO UPDATE SET sealed=excluded.sealed,"
                     "updated_at=excluded.updated_at",
    [Q_SECRET_GET] = "SELECT sealed FROM secrets WHERE name=$1",
    [Q_SECRET_LIST] = "SELECT name,updated_at FROM secrets ORDER BY name",
    [Q_SECRET_DEL] = "DELETE FROM secrets WHERE name=$1",
    [Q_ALERT_INSERT] = "INSERT INTO alerts(severity,state,title,detail,last_seen,count,"
                       "acknowledged_by,acknowledged_at,resolved_by,resolved_at,suppressed,rule,"
                       "key,first_seen) VALUES($2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) "
                       "RETURNING id, $1::bigint",
    [Q_ALERT_UPDATE] = "UPDATE alerts SET severity=$2,state=$3,title=$4,detail=$5,last_seen=$6,"
                       "count=$7,acknowledged_by=$8,acknowledged_at=$9,resolved_by=$10,"
                       "resolved_at=$11,suppressed=$12 WHERE id=$1",
    [Q_ALERT_GET] = "SELECT " ALERT_COLS " FROM alerts WHERE id=$1",
    [Q_ALERT_OPEN] = "SELECT " ALERT_COLS " FROM alerts WHERE rule=$1 AND key=$2 AND "
                     "state IN ('firing','acknowledged') ORDER BY id DESC LIMIT 1",
    [Q_ALERT_LAST_RESOLVED] = "SELECT coalesce(max(resolved_at),0) FROM alerts WHERE rule=$1 AND "
                              "key=$2 AND state='resolved'",
    [Q_ALERT_LIST] = "SELECT " ALERT_COLS " FROM alerts WHERE id<$1 AND "
                     "($2::text IS NULL OR state=$2::text) AND "
                     "($3::text IS NULL OR severity=$3::text) AND "
                     "($4::text IS NULL OR rule=$4::text) AND last_seen>=$5 AND last_seen<$6 "
                     "ORDER BY id DESC LIMIT $7",
    [Q_ALERT_DELIVERY_PUT] = "INSERT INTO alert_deliveries(alert_id,channel,status,attempts,error,"
                             "updated_at,event) VALUES($1,$2,$3,$4,$5,$6,$7) "
                             "ON CONFLICT(alert_id,event,channel) DO UPDATE SET "
                             "status=excluded.status,attempts=excluded.attempts,"
                             "error=excluded.error,updated_at=excluded.updated_at",
    [Q_ALERT_DELIVERIES] = "SELECT " DELIVERY_COLS " FROM alert_deliveries WHERE alert_id=$1 "
                           "ORDER BY event,channel",
    [Q_ALERT_PENDING] = "SELECT " DELIVERY_COLS " FROM alert_deliveries WHERE status='pending' "
                        "ORDER BY alert_id,event,channel",
    [Q_VULN_INSERT] = "INSERT INTO vulnerabilities(title,severity,found,remediation_plan,"
                      "deadline,status,updated_at,created_by,created_at) "
                      "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING id",
    [Q_VULN_UPDATE] = "UPDATE vulnerabilities SET title=$2,severity=$3,found=$4,"
                      "remediation_plan=$5,deadline=$6,status=$7,updated_at=$8 WHERE id=$1",
    [Q_VULN_GET] = "SELECT " VULN_COLS " FROM vulnerabilities WHERE id=$1",
    [Q_VULN_LIST] = "SELECT " VULN_COLS " FROM vulnerabilities ORDER BY id",
    [Q_BACKUP_ADD] = "INSERT INTO backup_runs(at,path,status,error,bytes,records,ms) "
                     "VALUES($1,$2,$3,$4,$5,$6,$7)",
    [Q_BACKUP_LAST] = "SELECT at,path,status,error,bytes,records,ms FROM backup_runs "
                      "WHERE $1::bigint=0 OR status='ok' ORDER BY id DESC LIMIT 1",
    [Q_SUB_PUT] = "INSERT INTO subscriptions(" SUB_COLS ",deleted_at) VALUES($1,$2,$3,$4,$5,$6,"
                  "$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,0) ON CONFLICT(id) DO NOTHING",
    [Q_SUB_GET] = "SELECT " SUB_COLS " FROM subscriptions WHERE id=$1 AND deleted_at=0",
    [Q_SUB_LIST] = "SELECT " SUB_COLS " FROM subscriptions WHERE deleted_at=0 AND "
                   "($1::text IS NULL OR system_code=$1) ORDER BY created_at,id",
    [Q_SUB_DEL] = "UPDATE subscriptions SET deleted_at=$2 WHERE id=$1 AND deleted_at=0",
    [Q_SUB_CLAIM] = "UPDATE subscriptions SET lease_owner=$3,lease_until=$5 WHERE id=$1 AND "
                    "deleted_at=0 AND next_bucket=$2 AND (lease_until<$4 OR lease_owner=$3)",
    [Q_SUB_DONE_OK] = "UPDATE subscriptions SET next_bucket=$4,attempts=0,next_attempt_at=0,"
                      "last_error='',delivered=delivered+1,last_delivered_at=$5,lease_owner='',"
                      "lease_until=0 WHERE id=$1 AND lease_owner=$2 AND next_bucket=$3",
    [Q_SUB_DONE_FAIL] = "UPDATE subscriptions SET attempts=attempts+1,next_attempt_at=$4,"
                        "last_error=$5,lease_owner='',lease_until=0 WHERE id=$1 AND "
                        "lease_owner=$2 AND next_bucket=$3",
    [Q_SUB_DELIVERY_ADD] = "INSERT INTO subscription_deliveries(subscription_id,bucket,attempt,"
                           "status,ok,error,at,ms) VALUES($1,$2,$3,$4,$5,$6,$7,$8)",
    [Q_SUB_DELIVERIES] = "SELECT seq,subscription_id,bucket,attempt,status,ok,error,at,ms FROM "
                         "subscription_deliveries WHERE subscription_id=$1 AND seq>$2 "
                         "ORDER BY seq LIMIT $3",
    [Q_WNET_PUT] = "INSERT INTO warn_networks(system_code,network,first_seen,last_seen) "
                   "VALUES($1,$2,$3,$4) ON CONFLICT(system_code,network) DO UPDATE SET "
                   "first_seen=least(warn_networks.first_seen,excluded.first_seen),"
                   "last_seen=greatest(warn_networks.last_seen,excluded.last_seen)",
    [Q_WNET_LIST] = "SELECT system_code,network,first_seen,last_seen FROM warn_networks "
                    "WHERE last_seen>=$1 ORDER BY system_code,last_seen",
    [Q_WNET_PURGE] = "DELETE FROM warn_networks WHERE last_seen<$1",
    [Q_TOK_REVOKE] = "INSERT INTO revoked_tokens(jti,expires_at,revoked_at) VALUES($1,$2,$3) "
                     "ON CONFLICT(jti) DO NOTHING",
    [Q_TOK_REVOKED] = "SELECT 1 FROM revoked_tokens WHERE jti=$1",
    [Q_TOK_PURGE] = "DELETE FROM revoked_tokens WHERE expires_at<$1",
    [Q_DSDEF_PUT] = "INSERT INTO dataset_defs(code,definition,updated_at,updated_by) "
                    "VALUES($1,$2,$3,$4) ON CONFLICT(code) DO UPDATE SET "
                    "definition=excluded.definition,updated_at=excluded.updated_at,"
                    "updated_by=excluded.updated_by",
    [Q_DSDEF_LIST] = "SELECT code,definition FROM dataset_defs ORDER BY code",
    [Q_REPORT_CLAIM] = "INSERT INTO reports(kind,period,lang,status,claimed_at) "
                       "VALUES($1,$2,$3,'running',$4) ON CONFLICT(kind,period,lang) DO UPDATE "
                       "SET claimed_at=excluded.claimed_at WHERE reports.status='running' AND "
                       "reports.claimed_at<$5",
    [Q_REPORT_PUT] = "INSERT INTO reports(kind,period,lang,status,claimed_at,generated_at,size,"
                     "document) VALUES($1,$2,$3,'done',$4,$4,$5,$6) ON CONFLICT(kind,period,lang) "
                     "DO UPDATE SET status='done',generated_at=excluded.generated_at,"
                     "size=excluded.size,document=excluded.document",
    [Q_REPORT_GET] = "SELECT kind,period,lang,status,claimed_at,generated_at,size,document "
                     "FROM reports WHERE kind=$1 AND period=$2 AND lang=$3 AND status='done'",
    [Q_REPORT_LIST] = "SELECT kind,period,lang,status,claimed_at,generated_at,size FROM reports "
                      "WHERE status='done' ORDER BY generated_at DESC,kind,period,lang",
    [Q_REPORT_PURGE] = "DELETE FROM reports WHERE (status='done' AND generated_at<$1) OR "
                       "(status='running' AND claimed_at<$1)",
    /* data-quality counters (report/qcount.c; SQLite migration 23) */
    [Q_QUAL_ADD] = "INSERT INTO quality_counts(day,system_code,dataset,kind,item,n) "
                   "VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT(day,system_code,dataset,kind,item) "
                   "DO UPDATE SET n=quality_counts.n+excluded.n",
    [Q_QUAL_SUM] = "SELECT system_code,dataset,kind,item,sum(n)::bigint FROM quality_counts "
                   "WHERE day>=$1 AND day<$2 GROUP BY system_code,dataset,kind,item "
                   "ORDER BY system_code,dataset,kind,item",
    [Q_CATALOG_SUM] = "SELECT dataset,sum(accepted)::bigint,sum(duplicates)::bigint,"
                      "sum(updated)::bigint,sum(rejected)::bigint,count(*)::bigint,"
                      "count(DISTINCT system_code)::bigint,max(received_at) FROM receipts "
                      "WHERE received_at>=$1 GROUP BY dataset ORDER BY dataset",
    /* rounds of periodic jobs (forecast/anomaly.c; SQLite migration 24) */
    [Q_JOB_CLAIM] = "INSERT INTO job_claims(job,slot,owner,claimed_at) VALUES($1,$2,$3,$4) "
                    "ON CONFLICT(job,slot) DO NOTHING",
    [Q_JOB_PURGE] = "DELETE FROM job_claims WHERE job=$1 AND claimed_at<$2",
};

/* Statements that may break a foreign key (or a primary key, should a caller's invariant not
 * hold) inside a transaction: run under a savepoint there, so that the DTM_EEXIST they report
 * leaves the transaction usable, as a failed statement does in SQLite. */
static const bool guarded[Q_COUNT] = {
    [Q_KEY_ADD] = true,    [Q_CLIENT_ADD] = true, [Q_GRANT_PUT] = true,
    [Q_STATUS_ADD] = true, [Q_AUDIT_PUT] = true,  [Q_ALERT_DELIVERY_PUT] = true,
    [Q_RCPT_PUT] = true,   [Q_DK_ADD] = true,
};

/* The schema, versioned like SQLite's: applied in order under an advisory lock (two nodes
 * starting at once: the second waits, then finds the work done), the version reached kept in
 * schema_version. Step 1 is the state SQLite reaches after its migrations 1–16, rollups
 * included (ordinary tables here). Never edit a released step; add a new one. Text columns use
 * the "C" collation: ORDER BY then sorts bytes, as SQLite does. */
#define T "TEXT COLLATE \"C\""
static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE systems(code " T " PRIMARY KEY, name " T " NOT NULL, org " T " NOT NULL "
    "DEFAULT '', role " T " NOT NULL, parent " T ", masked BIGINT NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL, last_seen BIGINT, probe_url " T ", last_probe_at BIGINT,"
    " last_probe_ok BIGINT, last_probe_ms BIGINT, last_probe_error " T ", tier " T ");"
    "CREATE TABLE api_keys(id " T " PRIMARY KEY, system_code " T " NOT NULL REFERENCES"
    " systems(code), hash BYTEA NOT NULL UNIQUE, created_at BIGINT NOT NULL, expires_at BIGINT,"
    " revoked_at BIGINT);"
    "CREATE INDEX api_keys_system ON api_keys(system_code);"
    "CREATE TABLE oauth_clients(client_id " T " PRIMARY KEY, system_code " T " NOT NULL"
    " REFERENCES systems(code), secret_hash BYTEA NOT NULL, created_at BIGINT NOT NULL,"
    " revoked_at BIGINT, generation BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE users(username " T " PRIMARY KEY, role " T " NOT NULL, password_hash " T
    " NOT NULL, created_at BIGINT NOT NULL, disabled BIGINT NOT NULL DEFAULT 0,"
    " password_changed_at BIGINT, mfa_enabled BIGINT NOT NULL DEFAULT 0,"
    " mfa_last_step BIGINT NOT NULL DEFAULT 0, mfa_secret BYTEA);"
    "CREATE TABLE sessions(id_hash BYTEA PRIMARY KEY, username " T " NOT NULL, csrf " T
    " NOT NULL, created_at BIGINT NOT NULL, last_seen BIGINT NOT NULL, expires_at BIGINT NOT NULL,"
    " source_ip " T " NOT NULL DEFAULT '');"
    "CREATE INDEX sessions_user ON sessions(username);"
    "CREATE TABLE mfa_recovery(username " T " NOT NULL, hash BYTEA NOT NULL, used_at BIGINT,"
    " PRIMARY KEY(username, hash));"
    "CREATE TABLE receipts(seq BIGINT PRIMARY KEY, tag " T " NOT NULL, dataset " T " NOT NULL,"
    " system_code " T " NOT NULL, request_id " T " NOT NULL DEFAULT '',"
    " received_at BIGINT NOT NULL, accepted BIGINT NOT NULL DEFAULT 0,"
    " duplicates BIGINT NOT NULL DEFAULT 0, updated BIGINT NOT NULL DEFAULT 0,"
    " rejected BIGINT NOT NULL DEFAULT 0, first_id BIGINT, last_id BIGINT);"
    "CREATE TABLE dataset_ids(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " code " T " NOT NULL UNIQUE);"
    "CREATE TABLE records(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " ds BIGINT NOT NULL, key_hash BYTEA NOT NULL, system_code " T " NOT NULL,"
    " event_time BIGINT, revision BIGINT NOT NULL, receipt_seq BIGINT NOT NULL,"
    " content_hash BYTEA NOT NULL, content BYTEA NOT NULL, received_at BIGINT NOT NULL,"
    " UNIQUE(ds, key_hash));"
    "CREATE INDEX records_time ON records(ds, event_time);"
    "CREATE TABLE record_history(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " record_id BIGINT NOT NULL, revision BIGINT NOT NULL, receipt_seq BIGINT NOT NULL,"
    " content_hash BYTEA NOT NULL, content BYTEA NOT NULL, received_at BIGINT NOT NULL,"
    " replaced_at BIGINT NOT NULL, replaced_by BIGINT);"
    "CREATE INDEX record_history_record ON record_history(record_id);"
    "CREATE INDEX record_history_replaced ON record_history(replaced_by);"
    "CREATE TABLE idempotency(system_code " T " NOT NULL, key " T " NOT NULL,"
    " request_hash BYTEA NOT NULL, status BIGINT NOT NULL, body BYTEA NOT NULL,"
    " created_at BIGINT NOT NULL, PRIMARY KEY(system_code, key));"
    "CREATE INDEX idempotency_created ON idempotency(created_at);"
    "CREATE TABLE batches(id " T " PRIMARY KEY, system_code " T " NOT NULL, dataset " T
    " NOT NULL, format " T " NOT NULL, origin " T " NOT NULL, status " T " NOT NULL,"
    " priority BIGINT NOT NULL DEFAULT 0, masked BIGINT NOT NULL DEFAULT 0,"
    " source " T " NOT NULL DEFAULT '', bytes BIGINT NOT NULL DEFAULT 0,"
    " byte_offset BIGINT NOT NULL DEFAULT 0, next_row BIGINT NOT NULL DEFAULT 0,"
    " total BIGINT NOT NULL DEFAULT 0, accepted BIGINT NOT NULL DEFAULT 0,"
    " duplicates BIGINT NOT NULL DEFAULT 0, updated BIGINT NOT NULL DEFAULT 0,"
    " rejected BIGINT NOT NULL DEFAULT 0, nerrors BIGINT NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL, started_at BIGINT NOT NULL DEFAULT 0,"
    " finished_at BIGINT NOT NULL DEFAULT 0, error " T " NOT NULL DEFAULT '');"
    "CREATE INDEX batches_system ON batches(system_code, created_at);"
    "CREATE INDEX batches_status ON batches(status);"
    "CREATE TABLE batch_errors(batch_id " T " NOT NULL, seq BIGINT NOT NULL,"
    " row BIGINT NOT NULL, line BIGINT NOT NULL, field " T " NOT NULL, code " T " NOT NULL,"
    " arg " T " NOT NULL, rule BIGINT NOT NULL, PRIMARY KEY(batch_id, seq));"
    "CREATE TABLE cube_ids(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " ds BIGINT NOT NULL, dims " T " NOT NULL, complete BIGINT NOT NULL, UNIQUE(ds, dims));"
    "CREATE TABLE cube_rows(cube BIGINT NOT NULL, grain BIGINT NOT NULL, bucket BIGINT NOT NULL,"
    " dims BYTEA NOT NULL, n BIGINT NOT NULL, agg BYTEA NOT NULL,"
    " PRIMARY KEY(cube, grain, bucket, dims));"
    "CREATE TABLE cube_state(k " T " PRIMARY KEY, v BIGINT NOT NULL);"
    "CREATE TABLE cube_gaps(cube BIGINT NOT NULL, bucket BIGINT NOT NULL,"
    " PRIMARY KEY(cube, bucket));"
    "CREATE TABLE grants(system_code " T " NOT NULL REFERENCES systems(code),"
    " dataset " T " NOT NULL, granted_at BIGINT NOT NULL, PRIMARY KEY(system_code, dataset));"
    "CREATE TABLE system_status(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " system_code " T " NOT NULL REFERENCES systems(code), status " T " NOT NULL,"
    " since BIGINT NOT NULL, until BIGINT);"
    "CREATE INDEX system_status_system ON system_status(system_code, since);"
    "CREATE TABLE audit_log(seq BIGINT PRIMARY KEY, at BIGINT NOT NULL, actor_kind " T
    " NOT NULL, actor " T " NOT NULL, action " T " NOT NULL, target " T " NOT NULL, detail " T
    " NOT NULL, source_ip " T " NOT NULL, prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL);"
    "CREATE INDEX audit_log_at ON audit_log(at);"
    "CREATE TABLE alerts(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, rule " T
    " NOT NULL, key " T " NOT NULL, severity " T " NOT NULL, state " T " NOT NULL, title " T
    " NOT NULL, detail " T " NOT NULL, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL,"
    " count BIGINT NOT NULL, acknowledged_by " T " NOT NULL DEFAULT '',"
    " acknowledged_at BIGINT NOT NULL DEFAULT 0, resolved_by " T " NOT NULL DEFAULT '',"
    " resolved_at BIGINT NOT NULL DEFAULT 0, suppressed BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX alerts_rule_key ON alerts(rule, key, state);"
    "CREATE TABLE alert_deliveries(alert_id BIGINT NOT NULL REFERENCES alerts(id),"
    " event " T " NOT NULL, channel " T " NOT NULL, status " T " NOT NULL,"
    " attempts BIGINT NOT NULL, error " T " NOT NULL, updated_at BIGINT NOT NULL,"
    " PRIMARY KEY(alert_id, event, channel));"
    "CREATE TABLE vulnerabilities(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " title " T " NOT NULL, severity " T " NOT NULL, found " T " NOT NULL, remediation_plan " T
    " NOT NULL, deadline " T " NOT NULL, status " T " NOT NULL, created_by " T " NOT NULL,"
    " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);"
    "CREATE TABLE signing_keys(kid " T " PRIMARY KEY, alg " T " NOT NULL, public_jwk " T
    " NOT NULL, public_pem " T " NOT NULL, sealed BYTEA NOT NULL, created_at BIGINT NOT NULL,"
    " retired_at BIGINT);"
    "CREATE TABLE data_keys(id BIGINT PRIMARY KEY, wrapped BYTEA NOT NULL, kek_id " T
    " NOT NULL, created_at BIGINT NOT NULL, retired_at BIGINT, sealed BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE secrets(name " T " PRIMARY KEY, sealed BYTEA NOT NULL,"
    " updated_at BIGINT NOT NULL);"
    "CREATE TABLE backup_runs(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " at BIGINT NOT NULL, path " T " NOT NULL, status " T " NOT NULL, error " T " NOT NULL,"
    " bytes BIGINT NOT NULL, records BIGINT NOT NULL, ms BIGINT NOT NULL);"
    "CREATE TABLE warn_networks(system_code " T " NOT NULL, network BYTEA NOT NULL,"
    " first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, PRIMARY KEY(system_code, network));"
    "CREATE TABLE revoked_tokens(jti " T " PRIMARY KEY, expires_at BIGINT NOT NULL,"
    " revoked_at BIGINT NOT NULL);"
    "CREATE TABLE dataset_defs(code " T " PRIMARY KEY, definition " T " NOT NULL,"
    " updated_at BIGINT NOT NULL, updated_by " T " NOT NULL);",
    /* SQLite 22: kept reports (report/), claimed by the node that produces them */
    "CREATE TABLE reports(kind " T " NOT NULL, period " T " NOT NULL, lang " T " NOT NULL,"
    " status " T " NOT NULL, claimed_at BIGINT NOT NULL, generated_at BIGINT NOT NULL DEFAULT 0,"
    " size BIGINT NOT NULL DEFAULT 0, document " T " NOT NULL DEFAULT '',"
    " PRIMARY KEY(kind, period, lang));",
    /* SQLite 23: data-quality counters (report/qcount.c), written with the records */
    "CREATE TABLE quality_counts(day BIGINT NOT NULL, system_code " T " NOT NULL,"
    " dataset " T " NOT NULL, kind " T " NOT NULL, item " T " NOT NULL, n BIGINT NOT NULL,"
    " PRIMARY KEY(day, system_code, dataset, kind, item));",
    /* subscriptions (sqlite.c's 19; share/) */
    "CREATE TABLE subscriptions(id " T " PRIMARY KEY, system_code " T " NOT NULL,"
    " dataset " T " NOT NULL, where_json " T " NOT NULL, metrics " T " NOT NULL,"
    " group_by " T " NOT NULL, bucket_interval " T " NOT NULL, url " T " NOT NULL,"
    " secret BYTEA NOT NULL, created_at BIGINT NOT NULL, next_bucket BIGINT NOT NULL,"
    " attempts BIGINT NOT NULL, next_attempt_at BIGINT NOT NULL, last_error " T " NOT NULL,"
    " delivered BIGINT NOT NULL, last_delivered_at BIGINT NOT NULL, lease_owner " T " NOT NULL,"
    " lease_until BIGINT NOT NULL, deleted_at BIGINT NOT NULL);"
    "CREATE INDEX subscriptions_system ON subscriptions(system_code);"
    "CREATE TABLE subscription_deliveries(seq BIGINT GENERATED BY DEFAULT AS IDENTITY"
    " PRIMARY KEY, subscription_id " T " NOT NULL, bucket BIGINT NOT NULL, attempt BIGINT NOT NULL,"
    " status BIGINT NOT NULL, ok BIGINT NOT NULL, error " T " NOT NULL, at BIGINT NOT NULL,"
    " ms BIGINT NOT NULL);"
    "CREATE INDEX subscription_deliveries_sub ON subscription_deliveries(subscription_id, seq);",
    /* SQLite 24: rounds of periodic jobs claimed by one node (forecast/anomaly.c) */
    "CREATE TABLE job_claims(job " T " NOT NULL, slot BIGINT NOT NULL, owner " T " NOT NULL,"
    " claimed_at BIGINT NOT NULL, PRIMARY KEY(job, slot));",
    /* pgperf (issue 9): records partitioned by dataset and month, so that retention drops a
     * month of a dataset whole instead of deleting its rows one by one (record_purge).
     * PARTITION BY RANGE (ds, event_time): a partition is one dataset's records of one month of
     * event time (local months, UTC+07:00 — retention keeps whole local days; whole months
     * from 00:00 on the 1st), created ahead of need (dtm_records_partition: at start and every
     * hour for the current and next month, and by the writer for a month it meets first);
     * records without an event time, or of a month whose partition could not be made, go to the
     * default partition, so no record is ever refused.
     * A unique key of a partitioned table must contain the partition key, and (ds, key_hash,
     * event_time) would let a record whose event time changes exist twice. So the key lives in
     * record_keys, a table that is not partitioned: PRIMARY KEY(ds, key_hash) detects a
     * duplicate exactly across every partition (the writer inserts the key first, ON CONFLICT
     * DO NOTHING, and the record only when the key was new), and its id is the record's
     * (UNIQUE, from the sequence record_ids). record_partitions lists the partitions made with
     * their bounds (µs), for retention. */
    "CREATE SEQUENCE record_ids;"
    "SELECT setval('record_ids', coalesce((SELECT max(id) FROM records), 0) + 1, false);"
    "CREATE TABLE record_keys(ds BIGINT NOT NULL, key_hash BYTEA NOT NULL, id BIGINT NOT NULL"
    " UNIQUE, PRIMARY KEY(ds, key_hash));"
    "INSERT INTO record_keys(ds, key_hash, id) SELECT ds, key_hash, id FROM records;"
    "CREATE TABLE record_partitions(name " T " PRIMARY KEY, ds BIGINT NOT NULL,"
    " lo BIGINT NOT NULL, hi BIGINT NOT NULL);"
    "CREATE INDEX record_partitions_ds ON record_partitions(ds, hi);"
    "ALTER TABLE records RENAME TO records_unpartitioned;"
    "ALTER INDEX records_time RENAME TO records_unpartitioned_time;"
    "CREATE TABLE records(id BIGINT NOT NULL DEFAULT nextval('record_ids'), ds BIGINT NOT NULL,"
    " key_hash BYTEA NOT NULL, system_code " T " NOT NULL, event_time BIGINT,"
    " revision BIGINT NOT NULL, receipt_seq BIGINT NOT NULL, content_hash BYTEA NOT NULL,"
    " content BYTEA NOT NULL, received_at BIGINT NOT NULL) PARTITION BY RANGE (ds, event_time);"
    "CREATE TABLE records_default PARTITION OF records DEFAULT;"
    "CREATE INDEX records_time ON records(ds, event_time);"
    "CREATE INDEX records_key ON records(ds, key_hash);"
    "CREATE INDEX records_id ON records(id);"
    /* the partition of dataset d for the local month of t (µs): made unless it exists; false
     * when it cannot be made (the month's rows are in the default partition already, or t is
     * out of range): its records then go to the default partition */
    "CREATE FUNCTION dtm_records_partition(d BIGINT, t BIGINT) RETURNS BOOLEAN LANGUAGE plpgsql"
    " AS $f$ DECLARE m TIMESTAMP; lo BIGINT; hi BIGINT; n TEXT; BEGIN"
    "  m := date_trunc('month', to_timestamp(t / 1000000.0) AT TIME ZONE 'UTC'"
    "   + interval '7 hours');"
    "  n := format('records_%s_%s', d, to_char(m, 'YYYYMM'));"
    "  IF EXISTS (SELECT 1 FROM record_partitions WHERE name = n) THEN RETURN TRUE; END IF;"
    "  lo := extract(epoch FROM m - interval '7 hours')::bigint * 1000000;"
    "  hi := extract(epoch FROM m + interval '1 month' - interval '7 hours')::bigint * 1000000;"
    "  EXECUTE format('CREATE TABLE %I PARTITION OF records FOR VALUES FROM (%s, %s) TO (%s, %s)',"
    "   n, d, lo, d, hi);"
    "  INSERT INTO record_partitions VALUES (n, d, lo, hi);"
    "  RETURN TRUE;"
    " EXCEPTION WHEN OTHERS THEN RETURN FALSE; END $f$;"
    /* retention: drops the partitions of dataset d that end at or before `before` (µs) with
     * the history and keys of their records; returns the records dropped */
    "CREATE FUNCTION dtm_records_drop_before(d BIGINT, before BIGINT) RETURNS BIGINT"
    " LANGUAGE plpgsql AS $f$ DECLARE p RECORD; k BIGINT; total BIGINT := 0; BEGIN"
    "  FOR p IN SELECT name FROM record_partitions WHERE ds = d AND hi <= before ORDER BY lo LOOP"
    "   EXECUTE format('DELETE FROM record_history h USING %I r WHERE h.record_id = r.id',"
    "    p.name);"
    "   EXECUTE format('DELETE FROM record_keys k USING %I r WHERE k.ds = r.ds AND"
    " k.key_hash = r.key_hash', p.name);"
    "   GET DIAGNOSTICS k = ROW_COUNT;"
    "   total := total + k;"
    "   EXECUTE format('DROP TABLE %I', p.name);"
    "   DELETE FROM record_partitions WHERE name = p.name;"
    "  END LOOP;"
    "  RETURN total; END $f$;"
    "SELECT dtm_records_partition(ds, min(event_time)) FROM records_unpartitioned"
    " WHERE event_time IS NOT NULL GROUP BY ds, date_trunc('month',"
    " to_timestamp(event_time / 1000000.0) AT TIME ZONE 'UTC' + interval '7 hours');"
    "INSERT INTO records(id, ds, key_hash, system_code, event_time, revision, receipt_seq,"
    " content_hash, content, received_at) SELECT id, ds, key_hash, system_code, event_time,"
    " revision, receipt_seq, content_hash, content, received_at FROM records_unpartitioned;"
    "DROP TABLE records_unpartitioned;",
};
#undef T

/* dataset code → id, remembered per connection (an id never changes once committed) */
#define DS_CACHE 16
struct pg_store {
    struct dtm_store super;
    PGconn *conn;
    char *conninfo;  /* the DSN, for reopen; may hold a password: never logged */
    char *password;  /* from [store] password_file, or NULL (libpq's own sources) */
    char where[160]; /* host:port (or socket dir) for messages */
    bool prepared[Q_COUNT];
    bool in_tx; /* between begin and commit/rollback: never reconnect then */
    struct {
        char code[64];
        int64_t id;
    } ds[DS_CACHE];
    size_t nds;
    int64_t new_min, new_max; /* ids of the records created since the last receipt_put */
    struct dtm_buf plain;     /* T4.2: the last sealed content opened (open_content) */
    struct dtm_buf agg;       /* cube_apply's merged aggregate */
    struct pend *pend;        /* statements kept for the next flush (the write path, below) */
};

#define PG(s) ((struct pg_store *)(s))

/* the write path's kept statements (defined with it, below) */
static int flush_kept(struct dtm_store *s);
static int flush(struct dtm_store *s, bool commit, bool *committed);
static void pend_clear(struct dtm_store *s);
static void pend_free(struct dtm_store *s);
static bool pend_any(struct dtm_store *s);
static void pend_spans_clear(struct dtm_store *s);
static int keep_touch(struct dtm_store *s, const char *code, int64_t last_seen);

/* ---- parameters: integers as text, text and BYTEA in binary form (their bytes as they are) */

#define PMAX 24
struct par {
    int n;
    const char *v[PMAX];
    int len[PMAX];
    int fmt[PMAX];
    char num[PMAX][24];
};

static void p_null(struct par *p)
{
    p->v[p->n] = NULL;
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

static void p_i64(struct par *p, int64_t x)
{
    snprintf(p->num[p->n], sizeof(p->num[0]), "%lld", (long long)x);
    p->v[p->n] = p->num[p->n];
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

static void p_opt(struct par *p, int64_t x, int64_t none)
{
    if (x == none)
        p_null(p);
    else
        p_i64(p, x);
}

static void p_blob(struct par *p, const void *b, size_t n)
{
    p->v[p->n] = n ? (const char *)b : "";
    p->len[p->n] = (int)n;
    p->fmt[p->n++] = 1;
}

static void p_text(struct par *p, const char *t)
{
    p_blob(p, t ? t : "", t ? strlen(t) : 0);
}

/* NULL or "" → SQL NULL */
static void p_text_opt(struct par *p, const char *t)
{
    if (t && *t)
        p_text(p, t);
    else
        p_null(p);
}

static void p_str(struct par *p, struct dtm_str t)
{
    p_blob(p, t.p ? t.p : "", t.p ? t.n : 0);
}

/* ---- results (binary): integers by their width, text NUL-terminated by libpq */

static int64_t col_i64(const PGresult *r, int row, int col)
{
    const unsigned char *v;
    uint64_t x = 0;
    int n;
    if (PQgetisnull(r, row, col))
        return 0;
    v = (const unsigned char *)PQgetvalue(r, row, col);
    n = PQgetlength(r, row, col);
    if (n != 1 && n != 2 && n != 4 && n != 8)
        return 0;
    for (int i = 0; i < n; i++)
        x = (x << 8) | v[i];
    if (n == 8)
        return (int64_t)x;
    if (n == 4)
        return (int32_t)(uint32_t)x;
    if (n == 2)
        return (int16_t)(uint16_t)x;
    return v[0];
}

static bool col_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) != 0;
}

static void col_text(const PGresult *r, int row, int col, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static const void *col_blob(const PGresult *r, int row, int col, size_t *n)
{
    *n = (size_t)PQgetlength(r, row, col);
    return PQgetvalue(r, row, col);
}

static struct dtm_str col_str(const PGresult *r, int row, int col)
{
    return (struct dtm_str){PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col)};
}

/* ---- running statements */

static void log_error(struct dtm_store *s, const char *what, const char *msg)
{
    struct dtm_buf f;
    char m[512];
    size_t n;
    snprintf(m, sizeof(m), "%s", msg ? msg : "");
    n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
        m[--n] = '\0';
    dtm_buf_init(&f, 4096);
    dtm_buf_addc(&f, "\"op\":");
    dtm_buf_json_strc(&f, what);
    dtm_buf_addc(&f, ",\"server\":");
    dtm_buf_json_strc(&f, PG(s)->where);
    dtm_buf_addc(&f, ",\"postgresql\":");
    dtm_buf_json_strc(&f, m);
    dtm_log(DTM_LOG_ERROR, "storage error", f.err ? NULL : f.p);
    dtm_buf_free(&f);
}

/* The session's settings, after connecting and after every reconnection (a DSN's own
 * `options` replace those given at connection, so they are set here as well). lock_timeout: a
 * writer waits for another's lock at most 10 s (SQLite: busy_timeout).
 * idle_in_transaction_session_timeout: a node that hangs or loses its network in the middle of
 * a transaction gives its locks back within a minute. No statement_timeout: statistics scans
 * and migrations may rightly take long; a database that stops answering is found by the TCP
 * keepalives and tcp_user_timeout of the connection (dtm_store_pg_open). */
static int session_setup(PGconn *c)
{
    PGresult *r = PQexec(c, "SET client_encoding = 'UTF8'; SET lock_timeout = '10s'; "
                            "SET idle_in_transaction_session_timeout = '60s'; "
                            "SET TIME ZONE 'UTC'");
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? DTM_OK : DTM_ESTORE;
    PQclear(r);
    return rc;
}

/* Closes the connection and opens it again: after it broke, or when its state is not known
 * (a pipeline left half read, a ROLLBACK that failed) — closing also ends any transaction of
 * it on the server, and the advisory locks it held, which must never wait for
 * idle_in_transaction_session_timeout. While the database is away this fails at once
 * (refused) or after connect_timeout (an unreachable host): the caller's statement then
 * fails, its request is answered 503. */
static void reset_conn(struct dtm_store *s)
{
    struct pg_store *q = PG(s);
    PQreset(q->conn);
    memset(q->prepared, 0, sizeof(q->prepared));
    q->nds = 0;
    if (PQstatus(q->conn) == CONNECTION_OK && session_setup(q->conn) == DTM_OK)
        dtm_logf(DTM_LOG_WARN, "reconnected to PostgreSQL", "\"server\":\"%s\"", q->where);
}

/* After the connection broke: connects again (outside a transaction only — an open one is
 * lost with the connection, and its owner is told by the failing statement). */
static void reconnect(struct dtm_store *s)
{
    if (PQstatus(PG(s)->conn) != CONNECTION_OK)
        reset_conn(s);
}

/* Runs statement id with p; on DTM_OK *res holds the result (the caller PQclears it). A unique
 * or foreign-key violation is DTM_EEXIST (as SQLITE_CONSTRAINT is for sqlite.c), anything else
 * is logged and DTM_ESTORE. */
static int run_once(struct dtm_store *s, enum qid id, const struct par *p, PGresult **res);

static void exec_quiet(PGconn *c, const char *text)
{
    PQclear(PQexec(c, text));
}

static int run(struct dtm_store *s, enum qid id, const struct par *p, PGresult **res)
{
    struct pg_store *q = PG(s);
    int rc;
    *res = NULL;
    if (q->in_tx) {
        /* a transaction lost with its connection (or ended by the server) must not go on in
         * autocommit: every later statement of it fails until rollback */
        if (PQstatus(q->conn) != CONNECTION_OK || PQtransactionStatus(q->conn) == PQTRANS_IDLE) {
            log_error(s, sql[id], "the transaction was lost with the connection");
            return DTM_ESTORE;
        }
        if ((rc = flush_kept(s)))
            return rc;
        if (guarded[id]) {
            exec_quiet(q->conn, "SAVEPOINT dtm_stmt");
            rc = run_once(s, id, p, res);
            exec_quiet(q->conn, rc == DTM_EEXIST ? "ROLLBACK TO SAVEPOINT dtm_stmt"
                                                 : "RELEASE SAVEPOINT dtm_stmt");
            return rc;
        }
    } else if (PQstatus(q->conn) != CONNECTION_OK) {
        reconnect(s);
    }
    return run_once(s, id, p, res);
}

static int run_once(struct dtm_store *s, enum qid id, const struct par *p, PGresult **res)
{
    struct pg_store *q = PG(s);
    PGresult *r;
    ExecStatusType es;
    char name[16];
    snprintf(name, sizeof(name), "q%d", (int)id);
    if (!q->prepared[id]) {
        r = PQprepare(q->conn, name, sql[id], 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            log_error(s, sql[id], PQerrorMessage(q->conn));
            PQclear(r);
            return DTM_ESTORE;
        }
        PQclear(r);
        q->prepared[id] = true;
    }
    r = PQexecPrepared(q->conn, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
                       p ? p->fmt : NULL, 1);
    es = PQresultStatus(r);
    if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK) {
        *res = r;
        return DTM_OK;
    }
    {
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        if (state && strncmp(state, "23", 2) == 0) {
            PQclear(r);
            return DTM_EEXIST;
        }
        log_error(s, sql[id], r ? PQresultErrorMessage(r) : PQerrorMessage(q->conn));
    }
    PQclear(r);
    return DTM_ESTORE;
}

/* Runs a statement that returns no rows; *changed (may be NULL) = rows changed. */
static int exec_n(struct dtm_store *s, enum qid id, const struct par *p, int *changed)
{
    PGresult *r;
    int rc = run(s, id, p, &r);
    if (rc)
        return rc;
    if (changed)
        *changed = (int)strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return DTM_OK;
}

static int exec0(struct dtm_store *s, enum qid id, const struct par *p)
{
    return exec_n(s, id, p, NULL);
}

/* A statement answering at most one value (an id RETURNING, a MAX): *out is it, untouched when
 * no row came back. */
static int run_i64(struct dtm_store *s, enum qid id, const struct par *p, int64_t *out)
{
    PGresult *r;
    int rc = run(s, id, p, &r);
    if (rc)
        return rc;
    if (PQntuples(r) == 1)
        *out = col_i64(r, 0, 0);
    PQclear(r);
    return DTM_OK;
}

/* A statement changing one row: DTM_OK when it did, else notfound. */
static int exec_one(struct dtm_store *s, enum qid id, const struct par *p, int notfound)
{
    int n = 0, rc = exec_n(s, id, p, &n);
    return rc ? rc : n ? DTM_OK : notfound;
}

/* Simple-protocol text without parameters (BEGIN, SET, DDL). */
static int exec_text(struct dtm_store *s, const char *text, const char *what)
{
    PGresult *r;
    ExecStatusType es;
    if (PQstatus(PG(s)->conn) != CONNECTION_OK && !PG(s)->in_tx)
        reconnect(s);
    if (flush_kept(s))
        return DTM_ESTORE;
    r = PQexec(PG(s)->conn, text);
    es = PQresultStatus(r);
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        log_error(s, what, r ? PQresultErrorMessage(r) : PQerrorMessage(PG(s)->conn));
        PQclear(r);
        return DTM_ESTORE;
    }
    PQclear(r);
    return DTM_OK;
}

/* ---- helpers shared by the operations */

static void read_system(const PGresult *r, int row, int c, struct dtm_system *out)
{
    memset(out, 0, sizeof(*out));
    col_text(r, row, c + 0, out->code, sizeof(out->code));
    col_text(r, row, c + 1, out->name, sizeof(out->name));
    col_text(r, row, c + 2, out->org, sizeof(out->org));
    col_text(r, row, c + 3, out->role, sizeof(out->role));
    col_text(r, row, c + 4, out->parent, sizeof(out->parent));
    out->masked = col_i64(r, row, c + 5) != 0;
    out->created_at = col_i64(r, row, c + 6);
    out->last_seen = col_i64(r, row, c + 7);
    col_text(r, row, c + 8, out->tier, sizeof(out->tier));
}

/* The id of a dataset code; with create, a new one is made. Another transaction may be making
 * the same one: ON CONFLICT DO NOTHING waits for it, and the second look finds its row. */
static int ds_id(struct dtm_store *s, const char *code, bool create, int64_t *id)
{
    struct pg_store *q = PG(s);
    struct par p = {0};
    PGresult *r;
    int rc;
    for (size_t i = 0; i < q->nds; i++)
        if (strcmp(q->ds[i].code, code) == 0) {
            *id = q->ds[i].id;
            return DTM_OK;
        }
    p_text(&p, code);
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = run(s, Q_DS_GET, &p, &r)))
            return rc;
        if (PQntuples(r) == 1) {
            *id = col_i64(r, 0, 0);
            PQclear(r);
            if (q->nds < DS_CACHE && strlen(code) < sizeof(q->ds[0].code)) {
                snprintf(q->ds[q->nds].code, sizeof(q->ds[0].code), "%s", code);
                q->ds[q->nds++].id = *id;
            }
            return DTM_OK;
        }
        PQclear(r);
        if (!create)
            return DTM_ENOTFOUND;
        if (attempt)
            break;
        if ((rc = run(s, Q_DS_ADD, &p, &r)))
            return rc;
        if (PQntuples(r) == 1) {
            *id = col_i64(r, 0, 0);
            PQclear(r);
            return DTM_OK; /* not remembered until committed: a rollback gives the id back */
        }
        PQclear(r);
    }
    log_error(s, "dataset_id", "the dataset id vanished while being created");
    return DTM_ESTORE;
}

/* T4.2: sealed content is opened into the connection's buffer (valid until the next row), the
 * record's key hash as associated data. Content stored before T4.2 is handed out as is. */
static int open_content(struct dtm_store *s, const void *key_hash, size_t khlen, struct dtm_str *c)
{
    struct pg_store *q = PG(s);
    int rc;
    if (!dtm_datakey_sealed(c->p, c->n))
        return DTM_OK;
    dtm_buf_reset(&q->plain);
    if (!s->keys || khlen != 16)
        rc = DTM_EINVAL;
    else if ((rc = dtm_buf_reserve(&q->plain, c->n)) == DTM_OK)
        rc = dtm_datakey_open_to(s->keys, key_hash, 16, (const uint8_t *)c->p, c->n,
                                 (uint8_t *)q->plain.p);
    if (rc) {
        dtm_logf(DTM_LOG_ERROR, "cannot open sealed record content", "\"error\":\"%s\"",
                 dtm_rc_name(rc));
        return DTM_ESTORE;
    }
    c->p = q->plain.p;
    c->n -= DTM_SEAL_OVERHEAD;
    return DTM_OK;
}

/* Hands each row of a VERSION_COLS result to cb. */
static int version_rows(struct dtm_store *s, enum qid id, const struct par *p, dtm_version_cb cb,
                        void *ctx)
{
    PGresult *r;
    int rc = run(s, id, p, &r);
    if (rc)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        size_t khlen;
        const void *kh = col_blob(r, i, 5, &khlen);
        struct dtm_record_version v = {
            .revision = col_i64(r, i, 0),
            .receipt_seq = col_i64(r, i, 1),
            .received_at = col_i64(r, i, 2),
            .replaced_at = col_i64(r, i, 3),
            .content = col_str(r, i, 4),
        };
        if ((rc = open_content(s, kh, khlen, &v.content)) || (rc = cb(ctx, &v)))
            break;
    }
    PQclear(r);
    return rc;
}

/* ---- connection, schema, transactions */

static void s_close(struct dtm_store *s)
{
    struct pg_store *q = PG(s);
    if (!q)
        return;
    pend_free(s);
    PQfinish(q->conn);
    if (q->conninfo) {
        sodium_memzero(q->conninfo, strlen(q->conninfo));
        free(q->conninfo);
    }
    if (q->password) {
        sodium_memzero(q->password, strlen(q->password));
        free(q->password);
    }
    dtm_buf_free(&q->plain);
    dtm_buf_free(&q->agg);
    free(q);
}

static int s_migrate(struct dtm_store *s)
{
    struct par p = {0};
    PGresult *r;
    int64_t version = 0;
    int rc;
    if ((rc = exec_text(s, "BEGIN", "migrate")))
        return rc;
    p_i64(&p, LOCK_MIGRATE);
    if ((rc = exec0(s, Q_LOCK, &p)) ||
        (rc = exec_text(s, "CREATE TABLE IF NOT EXISTS schema_version(version BIGINT NOT NULL)",
                        "schema_version")))
        goto out;
    r = PQexecParams(PG(s)->conn, "SELECT coalesce(max(version),0) FROM schema_version", 0, NULL,
                     NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        log_error(s, "schema_version", PQresultErrorMessage(r));
        PQclear(r);
        rc = DTM_ESTORE;
        goto out;
    }
    version = col_i64(r, 0, 0);
    PQclear(r);
    if (version > (int64_t)DTM_ARRAY_LEN(migrations)) {
        dtm_logf(DTM_LOG_ERROR, "database schema is newer than this program",
                 "\"schema\":%lld,\"known\":%zu", (long long)version, DTM_ARRAY_LEN(migrations));
        rc = DTM_ESTORE;
        goto out;
    }
    for (size_t v = (size_t)version; v < DTM_ARRAY_LEN(migrations); v++) {
        char ins[80];
        if ((rc = exec_text(s, migrations[v], "migrate")))
            goto out;
        snprintf(ins, sizeof(ins), "INSERT INTO schema_version VALUES(%zu)", v + 1);
        if ((rc = exec_text(s, ins, "migrate")))
            goto out;
        dtm_logf(DTM_LOG_INFO, "schema migrated", "\"version\":%zu,\"backend\":\"postgresql\"",
                 v + 1);
    }
    return exec_text(s, "COMMIT", "migrate");
out:
    exec_text(s, "ROLLBACK", "migrate");
    return rc;
}

/* writable: connected, and not a read-only standby */
static int s_ready(struct dtm_store *s)
{
    PGresult *r;
    int rc = DTM_ESTORE;
    if (PQstatus(PG(s)->conn) != CONNECTION_OK)
        reconnect(s);
    r = PQexecParams(PG(s)->conn, "SELECT pg_is_in_recovery()", 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && col_i64(r, 0, 0) == 0)
        rc = DTM_OK;
    PQclear(r);
    return rc;
}

/* Ends the connection's transaction, if it has one; a ROLLBACK that fails on a live
 * connection (its state unknown) closes it instead. */
static void rollback_conn(struct dtm_store *s)
{
    struct pg_store *q = PG(s);
    PGresult *r;
    bool ok;
    if (PQtransactionStatus(q->conn) == PQTRANS_IDLE ||
        PQtransactionStatus(q->conn) == PQTRANS_UNKNOWN)
        return;
    r = PQexec(q->conn, "ROLLBACK");
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok && PQstatus(q->conn) == CONNECTION_OK) {
        log_error(s, "rollback", PQerrorMessage(q->conn));
        reset_conn(s);
    }
}

static void s_rollback(struct dtm_store *s);

/* BEGIN and the advisory lock that stands for SQLite's write lock of one file */
static int begin_locked(struct dtm_store *s, int64_t key)
{
    char text[96];
    int rc;
    /* one round trip: BEGIN and the lock in one simple query (key is one of our constants) */
    snprintf(text, sizeof(text), "BEGIN; SELECT pg_advisory_xact_lock(%lld)", (long long)key);
    if ((rc = exec_text(s, text, "begin"))) {
        s_rollback(s);
        return rc;
    }
    PG(s)->in_tx = true;
    return DTM_OK;
}

static int s_begin(struct dtm_store *s)
{
    return begin_locked(s, LOCK_MAIN);
}

static int s_cube_begin(struct dtm_store *s)
{
    return begin_locked(s, LOCK_CUBES);
}

/* Durable when it returns DTM_OK (synchronous_commit on). COMMIT of a transaction that failed
 * earlier answers "ROLLBACK" without an error in PostgreSQL: reported as the failure it is. */
static int s_commit(struct dtm_store *s)
{
    struct pg_store *q = PG(s);
    PGresult *r;
    int rc = DTM_ESTORE;
    if (q->in_tx && pend_any(s) && PQtransactionStatus(q->conn) == PQTRANS_INTRANS) {
        /* the kept statements and the COMMIT in one round trip */
        bool committed = false;
        rc = flush(s, true, &committed);
        if (rc == DTM_OK && committed) {
            q->in_tx = false;
            return DTM_OK;
        }
        if (rc) {
            q->in_tx = false;
            rollback_conn(s);
            return DTM_ESTORE;
        }
        rc = DTM_ESTORE;
    }
    q->in_tx = false;
    if (PQtransactionStatus(q->conn) != PQTRANS_INTRANS) {
        log_error(s, "commit",
                  PQtransactionStatus(q->conn) == PQTRANS_INERROR
                      ? "the transaction failed earlier: rolled back"
                      : "no transaction to commit (the connection was lost)");
        rollback_conn(s);
        return DTM_ESTORE;
    }
    r = PQexec(q->conn, "COMMIT");
    if (PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0)
        rc = DTM_OK;
    else
        log_error(s, "commit",
                  PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r)
                                             : "the transaction was rolled back");
    PQclear(r);
    return rc;
}

static void s_rollback(struct dtm_store *s)
{
    struct pg_store *q = PG(s);
    q->nds = 0; /* ids seen inside the transaction may be given back */
    q->new_min = q->new_max = 0;
    q->in_tx = false;
    pend_clear(s);
    pend_spans_clear(s);
    rollback_conn(s);
}

/* ---- systems, probes, status */

static int s_system_add(struct dtm_store *s, const struct dtm_system *sys)
{
    struct par p = {0};
    p_text(&p, sys->code);
    p_text(&p, sys->name);
    p_text(&p, sys->org);
    p_text(&p, sys->role);
    p_text_opt(&p, sys->parent);
    p_i64(&p, sys->masked);
    p_i64(&p, sys->created_at);
    p_text_opt(&p, sys->tier);
    return exec_one(s, Q_SYS_ADD, &p, DTM_EEXIST);
}

static int s_system_get(struct dtm_store *s, const char *code, struct dtm_system *out)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, code);
    if ((rc = run(s, Q_SYS_GET, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc)
        read_system(r, 0, 0, out);
    PQclear(r);
    return rc;
}

static int s_system_list(struct dtm_store *s, dtm_system_cb cb, void *ctx)
{
    PGresult *r;
    int rc = run(s, Q_SYS_LIST, NULL, &r);
    if (rc)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_system sys;
        read_system(r, i, 0, &sys);
        rc = cb(ctx, &sys);
    }
    PQclear(r);
    return rc;
}

static int s_system_touch(struct dtm_store *s, const char *code, int64_t last_seen)
{
    struct par p = {0};
    if (PG(s)->in_tx)
        return keep_touch(s, code, last_seen); /* the write path: sent with the commit */
    p_i64(&p, last_seen);
    p_text(&p, code);
    return exec0(s, Q_SYS_TOUCH, &p);
}

static int s_system_set_tier(struct dtm_store *s, const char *code, const char *tier)
{
    struct par p = {0};
    p_text_opt(&p, tier);
    p_text(&p, code);
    return exec_one(s, Q_SYS_TIER, &p, DTM_ENOTFOUND);
}

static int s_probe_set_url(struct dtm_store *s, const char *code, const char *url)
{
    struct par p = {0};
    p_text_opt(&p, url);
    p_text(&p, code);
    return exec_one(s, Q_PROBE_SET, &p, DTM_ENOTFOUND);
}

static int s_probe_list(struct dtm_store *s, dtm_probe_cb cb, void *ctx)
{
    PGresult *r;
    int rc = run(s, Q_PROBE_LIST, NULL, &r);
    if (rc)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_probe pr;
        memset(&pr, 0, sizeof(pr));
        col_text(r, i, 0, pr.system_code, sizeof(pr.system_code));
        col_text(r, i, 1, pr.url, sizeof(pr.url));
        pr.at = col_i64(r, i, 2);
        pr.ok = col_i64(r, i, 3) != 0;
        pr.ms = col_i64(r, i, 4);
        col_text(r, i, 5, pr.error, sizeof(pr.error));
        rc = cb(ctx, &pr);
    }
    PQclear(r);
    return rc;
}

static int s_probe_put(struct dtm_store *s, const struct dtm_probe *pr)
{
    struct par p = {0};
    p_i64(&p, pr->at);
    p_i64(&p, pr->ok);
    p_i64(&p, pr->ms);
    p_text(&p, pr->error);
    p_text(&p, pr->system_code);
    return exec0(s, Q_PROBE_PUT, &p);
}

static int s_status_put(struct dtm_store *s, const struct dtm_status_interval *iv)
{
    struct par p = {0}, p2 = {0};
    int rc;
    p_i64(&p, iv->since);
    p_text(&p, iv->system_code);
    if ((rc = exec0(s, Q_STATUS_END, &p)))
        return rc;
    p_text(&p2, iv->system_code);
    p_text(&p2, iv->status);
    p_i64(&p2, iv->since);
    return exec0(s, Q_STATUS_ADD, &p2);
}

static int s_status_list(struct dtm_store *s, const char *code, int64_t after, dtm_status_cb cb,
                         void *ctx)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    if (code)
        p_text(&p, code);
    p_i64(&p, after);
    if ((rc = run(s, code ? Q_STATUS_LIST : Q_STATUS_LIST_ALL, &p, &r)))
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_status_interval iv;
        memset(&iv, 0, sizeof(iv));
        col_text(r, i, 0, iv.system_code, sizeof(iv.system_code));
        col_text(r, i, 1, iv.status, sizeof(iv.status));
        iv.since = col_i64(r, i, 2);
        iv.until = col_i64(r, i, 3);
        rc = cb(ctx, &iv);
    }
    PQclear(r);
    return rc;
}

/* ---- API keys, OAuth clients and signing keys */

static int s_key_add(struct dtm_store *s, const struct dtm_key *k, const uint8_t hash[32])
{
    struct par p = {0};
    p_text(&p, k->id);
    p_text(&p, k->system_code);
    p_blob(&p, hash, 32);
    p_i64(&p, k->created_at);
    return exec_one(s, Q_KEY_ADD, &p, DTM_EEXIST);
}

static int s_key_find(struct dtm_store *s, const uint8_t hash[32], struct dtm_key *key,
                      struct dtm_system *sys)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_blob(&p, hash, 32);
    if ((rc = run(s, Q_KEY_FIND, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc) {
        memset(key, 0, sizeof(*key));
        col_text(r, 0, 0, key->id, sizeof(key->id));
        col_text(r, 0, 1, key->system_code, sizeof(key->system_code));
        key->created_at = col_i64(r, 0, 2);
        key->expires_at = col_i64(r, 0, 3);
        key->revoked_at = col_i64(r, 0, 4);
        read_system(r, 0, 5, sys);
    }
    PQclear(r);
    return rc;
}

static int s_key_expire_all(struct dtm_store *s, const char *system_code, int64_t expires_at)
{
    struct par p = {0};
    p_i64(&p, expires_at);
    p_text(&p, system_code);
    return exec0(s, Q_KEY_EXPIRE, &p);
}

static int s_key_revoke(struct dtm_store *s, const char *id, int64_t now)
{
    struct par p = {0};
    p_i64(&p, now);
    p_text(&p, id);
    return exec_one(s, Q_KEY_REVOKE, &p, DTM_ENOTFOUND);
}

static int s_client_add(struct dtm_store *s, const char *client_id, const char *system_code,
                        const uint8_t secret_hash[32], int64_t now)
{
    struct par p = {0};
    p_text(&p, client_id);
    p_text(&p, system_code);
    p_blob(&p, secret_hash, 32);
    p_i64(&p, now);
    return exec_one(s, Q_CLIENT_ADD, &p, DTM_EEXIST);
}

static int s_client_get(struct dtm_store *s, const char *client_id, struct dtm_oauth_client *out)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, client_id);
    if ((rc = run(s, Q_CLIENT_GET, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc) {
        size_t n;
        const void *h = col_blob(r, 0, 2, &n);
        memset(out, 0, sizeof(*out));
        col_text(r, 0, 0, out->client_id, sizeof(out->client_id));
        col_text(r, 0, 1, out->system_code, sizeof(out->system_code));
        if (n == 32)
            memcpy(out->secret_hash, h, 32);
        out->created_at = col_i64(r, 0, 3);
        out->revoked_at = col_i64(r, 0, 4);
        out->generation = col_i64(r, 0, 5);
    }
    PQclear(r);
    return rc;
}

static int s_client_set(struct dtm_store *s, const struct dtm_oauth_client *c)
{
    struct par p = {0};
    p_text(&p, c->client_id);
    p_blob(&p, c->secret_hash, 32);
    p_opt(&p, c->revoked_at, 0);
    p_i64(&p, c->generation);
    return exec_one(s, Q_CLIENT_SET, &p, DTM_ENOTFOUND);
}

static int s_key_list(struct dtm_store *s, const char *system_code, dtm_key_cb cb, void *ctx)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, system_code);
    if ((rc = run(s, Q_KEY_LIST, &p, &r)))
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_key k = {0};
        col_text(r, i, 0, k.id, sizeof(k.id));
        col_text(r, i, 1, k.system_code, sizeof(k.system_code));
        k.created_at = col_i64(r, i, 2);
        k.expires_at = col_i64(r, i, 3);
        k.revoked_at = col_i64(r, i, 4);
        rc = cb(ctx, &k);
    }
    PQclear(r);
    return rc;
}

static int s_signing_key_add(struct dtm_store *s, const struct dtm_signing_key *k)
{
    struct par p = {0};
    p_text(&p, k->kid);
    p_text(&p, k->alg);
    p_text(&p, k->public_jwk);
    p_text(&p, k->public_pem);
    p_blob(&p, k->sealed, k->sealed_len);
    p_i64(&p, k->created_at);
    return exec_one(s, Q_SIGNKEY_ADD, &p, DTM_EEXIST);
}

static int s_signing_key_retire(struct dtm_store *s, int64_t now)
{
    struct par p = {0};
    p_i64(&p, now);
    return exec0(s, Q_SIGNKEY_RETIRE, &p);
}

static int s_signing_key_list(struct dtm_store *s, int64_t retired_after, dtm_signing_key_cb cb,
                              void *ctx)
{
    struct par p = {0};
    struct dtm_signing_key *k;
    PGresult *r;
    int rc;
    p_i64(&p, retired_after);
    if (!(k = malloc(sizeof(*k))))
        return DTM_ENOMEM;
    if ((rc = run(s, Q_SIGNKEY_LIST, &p, &r))) {
        free(k);
        return rc;
    }
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        size_t len;
        const void *b = col_blob(r, i, 4, &len);
        memset(k, 0, sizeof(*k));
        col_text(r, i, 0, k->kid, sizeof(k->kid));
        col_text(r, i, 1, k->alg, sizeof(k->alg));
        col_text(r, i, 2, k->public_jwk, sizeof(k->public_jwk));
        col_text(r, i, 3, k->public_pem, sizeof(k->public_pem));
        if (len > 0 && len <= sizeof(k->sealed)) {
            memcpy(k->sealed, b, len);
            k->sealed_len = len;
        }
        k->created_at = col_i64(r, i, 5);
        k->retired_at = col_i64(r, i, 6);
        rc = cb(ctx, k);
    }
    PQclear(r);
    free(k);
    return rc;
}

/* ---- people */

static int s_user_add(struct dtm_store *s, const char *username, const char *role,
                      const char *password_hash, int64_t now)
{
    struct par p = {0};
    p_text(&p, username);
    p_text(&p, role);
    p_text(&p, password_hash);
    p_i64(&p, now);
    return exec_one(s, Q_USER_ADD, &p, DTM_EEXIST);
}

static void read_user(const PGresult *r, int i, struct dtm_user *u)
{
    size_t n;
    const void *b;
    memset(u, 0, sizeof(*u));
    col_text(r, i, 0, u->username, sizeof(u->username));
    col_text(r, i, 1, u->role, sizeof(u->role));
    col_text(r, i, 2, u->password_hash, sizeof(u->password_hash));
    u->created_at = col_i64(r, i, 3);
    u->password_changed_at = col_i64(r, i, 4);
    u->disabled = col_i64(r, i, 5) != 0;
    u->mfa_enabled = col_i64(r, i, 6) != 0;
    u->mfa_last_step = col_i64(r, i, 7);
    b = col_blob(r, i, 8, &n);
    if (!col_null(r, i, 8) && n > 0 && n <= sizeof(u->mfa_secret)) {
        memcpy(u->mfa_secret, b, n);
        u->mfa_secret_len = n;
    }
}

static int s_user_get(struct dtm_store *s, const char *username, struct dtm_user *out)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, username);
    if ((rc = run(s, Q_USER_GET, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc)
        read_user(r, 0, out);
    PQclear(r);
    return rc;
}

static int s_user_list(struct dtm_store *s, dtm_user_cb cb, void *ctx)
{
    PGresult *r;
    int rc = run(s, Q_USER_LIST, NULL, &r);
    if (rc)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_user u;
        read_user(r, i, &u);
        rc = cb(ctx, &u);
    }
    PQclear(r);
    return rc;
}

static int s_user_update(struct dtm_store *s, const struct dtm_user *u)
{
    struct par p = {0};
    p_text(&p, u->username);
    p_text(&p, u->role);
    p_text(&p, u->password_hash);
    p_opt(&p, u->password_changed_at, 0);
    p_i64(&p, u->disabled);
    p_i64(&p, u->mfa_enabled);
    if (u->mfa_secret_len)
        p_blob(&p, u->mfa_secret, u->mfa_secret_len);
    else
        p_null(&p);
    return exec_one(s, Q_USER_UPDATE, &p, DTM_ENOTFOUND);
}

static int exec_text1(struct dtm_store *s, enum qid id, const char *v, int *changed)
{
    struct par p = {0};
    p_text(&p, v);
    return exec_n(s, id, &p, changed);
}

static int s_user_delete(struct dtm_store *s, const char *username)
{
    int rc, n = 0;
    if ((rc = exec_text1(s, Q_USER_DEL_SESSIONS, username, NULL)) ||
        (rc = exec_text1(s, Q_USER_DEL_RECOVERY, username, NULL)) ||
        (rc = exec_text1(s, Q_USER_DEL, username, &n)))
        return rc;
    return n ? DTM_OK : DTM_ENOTFOUND;
}

static int s_user_mfa_step(struct dtm_store *s, const char *username, int64_t step)
{
    struct par p = {0};
    p_text(&p, username);
    p_i64(&p, step);
    return exec_one(s, Q_USER_MFA_STEP, &p, DTM_ECONFLICT);
}

static int s_session_put(struct dtm_store *s, const struct dtm_session *se)
{
    struct par p = {0};
    p_blob(&p, se->id_hash, 32);
    p_text(&p, se->username);
    p_text(&p, se->csrf);
    p_i64(&p, se->created_at);
    p_i64(&p, se->last_seen);
    p_i64(&p, se->expires_at);
    p_text(&p, se->source_ip);
    return exec_one(s, Q_SESS_PUT, &p, DTM_EEXIST);
}

static int s_session_get(struct dtm_store *s, const uint8_t id_hash[32], struct dtm_session *out)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_blob(&p, id_hash, 32);
    if ((rc = run(s, Q_SESS_GET, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc) {
        memset(out, 0, sizeof(*out));
        memcpy(out->id_hash, id_hash, 32);
        col_text(r, 0, 0, out->username, sizeof(out->username));
        col_text(r, 0, 1, out->csrf, sizeof(out->csrf));
        out->created_at = col_i64(r, 0, 2);
        out->last_seen = col_i64(r, 0, 3);
        out->expires_at = col_i64(r, 0, 4);
        col_text(r, 0, 5, out->source_ip, sizeof(out->source_ip));
    }
    PQclear(r);
    return rc;
}

static int s_session_touch(struct dtm_store *s, const uint8_t id_hash[32], int64_t last_seen)
{
    struct par p = {0};
    p_blob(&p, id_hash, 32);
    p_i64(&p, last_seen);
    return exec0(s, Q_SESS_TOUCH, &p);
}

static int s_session_delete(struct dtm_store *s, const uint8_t id_hash[32])
{
    struct par p = {0};
    p_blob(&p, id_hash, 32);
    return exec0(s, Q_SESS_DEL, &p);
}

static int s_session_delete_user(struct dtm_store *s, const char *username, const uint8_t *keep)
{
    struct par p = {0};
    p_text(&p, username);
    if (keep)
        p_blob(&p, keep, 32);
    else
        p_null(&p);
    return exec0(s, Q_SESS_DEL_USER, &p);
}

static int s_session_purge(struct dtm_store *s, int64_t now, int64_t idle_before)
{
    struct par p = {0};
    p_i64(&p, now);
    p_i64(&p, idle_before);
    return exec0(s, Q_SESS_PURGE, &p);
}

static int s_recovery_set(struct dtm_store *s, const char *username, const uint8_t (*hashes)[32],
                          size_t n)
{
    int rc;
    if ((rc = exec_text1(s, Q_USER_DEL_RECOVERY, username, NULL)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct par p = {0};
        p_text(&p, username);
        p_blob(&p, hashes[i], 32);
        if ((rc = exec0(s, Q_RECOV_ADD, &p)))
            return rc;
    }
    return DTM_OK;
}

static int s_recovery_use(struct dtm_store *s, const char *username, const uint8_t hash[32],
                          int64_t now)
{
    struct par p = {0};
    p_text(&p, username);
    p_blob(&p, hash, 32);
    p_i64(&p, now);
    return exec_one(s, Q_RECOV_USE, &p, DTM_ENOTFOUND);
}

/* ---- the write path in few round trips (issue 9: what PostgreSQL does best)
 *
 * Every statement costs a round trip to the server, where SQLite's cost none. So inside a
 * transaction the statements whose result nobody reads at once are kept here and sent together:
 * receipt_put, idem_put, system_touch and cube_apply append a row to the binary arrays of a
 * multi-row statement (INSERT … SELECT FROM unnest($1::bigint[], …), one statement for any
 * number of rows), and the lot goes to the server in one pipeline (libpq pipeline mode) — with
 * the COMMIT itself when commit flushes it. Any other statement of the transaction flushes them
 * first (run, exec_text, record_put_many), so every statement still sees the effects of those
 * before it, as one by one: an idem_get finds the answer an idem_put just kept. A failure of a
 * kept statement fails the transaction at the flush, as it would have failed at its own call
 * (the writer then answers the whole group 503; nothing is committed). Outside a transaction
 * nothing is kept.
 *
 * The rollups (cube_apply): the deltas of a rollup transaction come merged and in key order
 * (dtm_cube_runs_apply), so they are kept while the keys increase; the flush reads the rows
 * that exist with one SELECT … FOR UPDATE, merges each delta in C (dtm_agg_merge is C, not
 * SQL), and writes the merged rows back with one native upsert (INSERT … ON CONFLICT DO UPDATE);
 * the new rows are inserted with ON CONFLICT DO NOTHING RETURNING, and a row another connection
 * inserted meanwhile (a rebuild, under the records' lock) is merged one by one as before.
 *
 * Records (record_put_many): one INSERT … SELECT FROM unnest … WITH ORDINALITY ORDER BY ord ON
 * CONFLICT DO NOTHING RETURNING for the whole group — rows are inserted in the group's order, a
 * key met twice is inserted once, the second meets the first; then one SELECT … FOR UPDATE of
 * the keys that were not inserted; the duplicates are decided in C by content hash, in order
 * (a key updated earlier in the group compares with that update); updates (rare) run one by one
 * (history, then the new version). */

/* A one-dimensional array parameter in PostgreSQL's binary form (array_recv): ndim, has-nulls,
 * element type, then the dimension (length, lower bound 1) and each element's length and bytes
 * (length -1: NULL). */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25
struct arr {
    struct dtm_buf b;
    int32_t count;
    bool nulls;
};

static void put_be32(uint8_t *p, uint32_t x)
{
    p[0] = (uint8_t)(x >> 24);
    p[1] = (uint8_t)(x >> 16);
    p[2] = (uint8_t)(x >> 8);
    p[3] = (uint8_t)x;
}

static void arr_start(struct arr *a, uint32_t oid)
{
    uint8_t h[20] = {0};
    put_be32(h, 1);
    put_be32(h + 8, oid);
    put_be32(h + 16, 1);
    if (!a->b.cap && !a->b.p)
        dtm_buf_init(&a->b, (size_t)1 << 30);
    dtm_buf_reset(&a->b);
    dtm_buf_add(&a->b, h, sizeof(h));
    a->count = 0;
    a->nulls = false;
}

/* The header's has-nulls flag and length, once every element is in. */
static void arr_finish(struct arr *a)
{
    if (a->b.n < 20)
        return;
    put_be32((uint8_t *)a->b.p + 4, a->nulls ? 1u : 0u);
    put_be32((uint8_t *)a->b.p + 12, (uint32_t)a->count);
}

static void arr_blob(struct arr *a, const void *p, size_t n)
{
    uint8_t l[4];
    put_be32(l, (uint32_t)n);
    dtm_buf_add(&a->b, l, 4);
    if (n)
        dtm_buf_add(&a->b, p, n);
    a->count++;
}

static void arr_null(struct arr *a)
{
    uint8_t l[4] = {0xff, 0xff, 0xff, 0xff};
    dtm_buf_add(&a->b, l, 4);
    a->count++;
    a->nulls = true;
}

static void arr_i64(struct arr *a, int64_t x)
{
    uint8_t v[8];
    for (int i = 0; i < 8; i++)
        v[i] = (uint8_t)((uint64_t)x >> (56 - 8 * i));
    arr_blob(a, v, 8);
}

static void arr_i64_opt(struct arr *a, int64_t x, int64_t none)
{
    if (x == none)
        arr_null(a);
    else
        arr_i64(a, x);
}

static void arr_text(struct arr *a, const char *t)
{
    arr_blob(a, t, strlen(t));
}

/* a multi-row statement kept for the flush: its arrays, as parameters $1… */
#define KEPT_MAXCOLS 12
struct kept {
    const char *sql;
    int ncols;
    const uint32_t *oids;
    struct arr col[KEPT_MAXCOLS];
};

static const uint32_t rcpt_oids[] = {OID_INT8, OID_TEXT, OID_TEXT, OID_TEXT, OID_TEXT, OID_INT8,
                                     OID_INT8, OID_INT8, OID_INT8, OID_INT8, OID_INT8, OID_INT8};
static const uint32_t idem_oids[] = {OID_TEXT, OID_TEXT, OID_BYTEA, OID_INT8, OID_BYTEA, OID_INT8};
static const uint32_t touch_oids[] = {OID_TEXT, OID_INT8};
static const uint32_t cube_oids[] = {OID_INT8, OID_INT8, OID_INT8, OID_BYTEA, OID_INT8, OID_BYTEA};
static const uint32_t gap_oids[] = {OID_INT8, OID_INT8};
static const uint32_t berr_oids[] = {OID_TEXT, OID_INT8, OID_INT8, OID_INT8,
                                     OID_TEXT, OID_TEXT, OID_TEXT, OID_INT8};
static const uint32_t qual_oids[] = {OID_INT8, OID_TEXT, OID_TEXT, OID_TEXT, OID_TEXT, OID_INT8};
static const uint32_t rec_oids[] = {OID_INT8, OID_BYTEA, OID_TEXT, OID_INT8,
                                    OID_INT8, OID_BYTEA, OID_BYTEA};
static const uint32_t key_oids[] = {OID_INT8, OID_BYTEA};

enum { K_RCPT, K_IDEM, K_TOUCH, K_CUBE, K_GAP, K_QUAL, K_BERR, K_COUNT };
static const struct {
    const char *sql;
    int ncols;
    const uint32_t *oids;
} kept_def[K_COUNT] = {
    [K_RCPT] = {"INSERT INTO receipts(seq,tag,dataset,system_code,request_id,received_at,"
                "accepted,duplicates,updated,rejected,first_id,last_id) SELECT * FROM "
                "unnest($1::bigint[],$2::text[],$3::text[],$4::text[],$5::text[],$6::bigint[],"
                "$7::bigint[],$8::bigint[],$9::bigint[],$10::bigint[],$11::bigint[],"
                "$12::bigint[])",
                12, rcpt_oids},
    [K_IDEM] = {"INSERT INTO idempotency(system_code,key,request_hash,status,body,created_at) "
                "SELECT * FROM unnest($1::text[],$2::text[],$3::bytea[],$4::bigint[],"
                "$5::bytea[],$6::bigint[]) ON CONFLICT(system_code,key) DO UPDATE SET "
                "request_hash=excluded.request_hash,status=excluded.status,"
                "body=excluded.body,created_at=excluded.created_at",
                6, idem_oids},
    /* the latest time of each system (a system twice in one UPDATE … FROM would be updated
     * by either row) */
    [K_TOUCH] = {"UPDATE systems s SET last_seen=v.t FROM (SELECT c,max(t) t FROM "
                 "unnest($1::text[],$2::bigint[]) u(c,t) GROUP BY c) v WHERE s.code=v.c AND "
                 "(s.last_seen IS NULL OR s.last_seen<v.t)",
                 2, touch_oids},
    /* the merged rows of keys that exist (locked by the flush's SELECT … FOR UPDATE) */
    [K_CUBE] = {"INSERT INTO cube_rows(cube,grain,bucket,dims,n,agg) SELECT * FROM "
                "unnest($1::bigint[],$2::bigint[],$3::bigint[],$4::bytea[],$5::bigint[],"
                "$6::bytea[]) ON CONFLICT(cube,grain,bucket,dims) DO UPDATE SET n=excluded.n,"
                "agg=excluded.agg",
                6, cube_oids},
    [K_GAP] = {"INSERT INTO cube_gaps(cube,bucket) SELECT * FROM unnest($1::bigint[],"
               "$2::bigint[]) ON CONFLICT(cube,bucket) DO NOTHING",
               2, gap_oids},
    /* the data-quality counters of a group commit (quality_add), summed per row first: one
     * upsert may not touch a row twice */
    [K_QUAL] = {"INSERT INTO quality_counts(day,system_code,dataset,kind,item,n) "
                "SELECT d,s,ds,k,i,sum(n)::bigint FROM unnest($1::bigint[],$2::text[],$3::text[],"
                "$4::text[],$5::text[],$6::bigint[]) u(d,s,ds,k,i,n) GROUP BY d,s,ds,k,i "
                "ON CONFLICT(day,system_code,dataset,kind,item) DO UPDATE SET "
                "n=quality_counts.n+excluded.n",
                6, qual_oids},
    /* a batch chunk's rejected rows (batch_error_put): a row already there fails the
     * transaction, as its DTM_EEXIST fails the chunk one by one */
    [K_BERR] = {"INSERT INTO batch_errors(batch_id,seq,row,line,field,code,arg,rule) "
                "SELECT * FROM unnest($1::text[],$2::bigint[],$3::bigint[],$4::bigint[],"
                "$5::text[],$6::text[],$7::text[],$8::bigint[])",
                8, berr_oids},
};

/* the ids a receipt's records were given by record_put_many (receipt_put's first_id/last_id) */
struct span {
    int64_t seq, min, max;
};

struct pend {
    struct kept k[K_COUNT];
    size_t nrows[K_COUNT];
    /* the kept cube rows (K_CUBE's arrays hold them until the flush rewrites them) */
    struct cube_key {
        int64_t cube, grain, bucket;
        size_t dims_off, dimslen, agg_off, agglen;
        int64_t n;
        bool hit; /* the row exists (cube_prepare) */
    } * ck;
    size_t nck, ckcap;
    struct dtm_buf cbytes; /* dims and aggregates of the kept cube rows */
    struct span *spans;
    size_t nspans, spancap;
    struct arr tmp[7]; /* record_put_many's arrays */
    struct {
        int64_t ds, month;
    } parts[64]; /* partitions known to exist (part_ensure) */
    size_t nparts;
    int64_t parts_at; /* µs of maintain's last look ahead */
};

static struct pend *pend_of(struct dtm_store *s)
{
    struct pg_store *q = PG(s);
    if (!q->pend && (q->pend = calloc(1, sizeof(*q->pend))))
        dtm_buf_init(&q->pend->cbytes, (size_t)1 << 30);
    return q->pend;
}

static bool pend_any(struct dtm_store *s)
{
    struct pend *d = PG(s)->pend;
    if (!d)
        return false;
    for (int i = 0; i < K_COUNT; i++)
        if (d->nrows[i])
            return true;
    return d->nck > 0;
}

/* After a rollback: the spans, and the partitions the transaction may have made */
static void pend_spans_clear(struct dtm_store *s)
{
    if (PG(s)->pend) {
        PG(s)->pend->nspans = 0;
        PG(s)->pend->nparts = 0;
    }
}

/* Forgets the kept statements (spans stay: receipt_put reads them after a flush) */
static void pend_clear(struct dtm_store *s)
{
    struct pend *d = PG(s)->pend;
    if (!d)
        return;
    memset(d->nrows, 0, sizeof(d->nrows));
    d->nck = 0;
    dtm_buf_reset(&d->cbytes);
}

static void pend_free(struct dtm_store *s)
{
    struct pend *d = PG(s)->pend;
    if (!d)
        return;
    for (int i = 0; i < K_COUNT; i++)
        for (int c = 0; c < KEPT_MAXCOLS; c++)
            dtm_buf_free(&d->k[i].col[c].b);
    for (size_t i = 0; i < DTM_ARRAY_LEN(d->tmp); i++)
        dtm_buf_free(&d->tmp[i].b);
    dtm_buf_free(&d->cbytes);
    free(d->ck);
    free(d->spans);
    free(d);
    PG(s)->pend = NULL;
}

/* The arrays of kept statement k, started when its first row comes. */
static struct kept *kept_row(struct pend *d, int k)
{
    struct kept *t = &d->k[k];
    if (d->nrows[k]++ == 0) {
        t->sql = kept_def[k].sql;
        t->ncols = kept_def[k].ncols;
        t->oids = kept_def[k].oids;
        for (int c = 0; c < t->ncols; c++)
            arr_start(&t->col[c], t->oids[c]);
    }
    return t;
}

/* A result of the pipeline or of a statement: DTM_OK, DTM_EEXIST for a constraint (class 23),
 * else logged and DTM_ESTORE. */
static int result_rc(struct dtm_store *s, PGresult *r, const char *what)
{
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    const char *state;
    if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK)
        return DTM_OK;
    if (es == PGRES_PIPELINE_ABORTED)
        return DTM_ESTORE; /* an earlier statement of the pipeline failed (logged there) */
    state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && strncmp(state, "23", 2) == 0)
        return DTM_EEXIST;
    log_error(s, what, r ? PQresultErrorMessage(r) : PQerrorMessage(PG(s)->conn));
    return DTM_ESTORE;
}

/* Runs a statement of array parameters (binary, results binary). */
static PGresult *exec_arrays(struct dtm_store *s, const char *text, struct arr *a, int n,
                             const char *extra)
{
    const char *v[KEPT_MAXCOLS + 1];
    int len[KEPT_MAXCOLS + 1], fmt[KEPT_MAXCOLS + 1];
    for (int i = 0; i < n; i++) {
        arr_finish(&a[i]);
        v[i] = a[i].b.p;
        len[i] = (int)a[i].b.n;
        fmt[i] = 1;
    }
    if (extra) {
        v[n] = extra;
        len[n] = 0;
        fmt[n++] = 0;
    }
    return PQexecParams(PG(s)->conn, text, n, NULL, v, len, fmt, 1);
}

/* The kept cube rows: the existing ones are read (locked) and merged in C; their merged rows
 * become K_CUBE's arrays, the new rows go to `fresh` (inserted by the pipeline, DO NOTHING). */
static int cube_prepare(struct dtm_store *s, struct pend *d, struct arr *fresh)
{
    struct pg_store *q = PG(s);
    struct arr key[4] = {0};
    struct kept *t;
    PGresult *r;
    int rc = DTM_OK, nfound;
    size_t i = 0;
    if (!d->nck)
        return DTM_OK;
    for (int c = 0; c < 4; c++)
        arr_start(&key[c], cube_oids[c]);
    for (i = 0; i < d->nck; i++) {
        arr_i64(&key[0], d->ck[i].cube);
        arr_i64(&key[1], d->ck[i].grain);
        arr_i64(&key[2], d->ck[i].bucket);
        arr_blob(&key[3], d->cbytes.p + d->ck[i].dims_off, d->ck[i].dimslen);
    }
    r = exec_arrays(s,
                    "SELECT c.cube,c.grain,c.bucket,c.dims,c.n,c.agg FROM cube_rows c JOIN "
                    "unnest($1::bigint[],$2::bigint[],$3::bigint[],$4::bytea[]) u(cube,grain,"
                    "bucket,dims) USING(cube,grain,bucket,dims) ORDER BY 1,2,3,4 FOR UPDATE OF c",
                    key, 4, NULL);
    for (int c = 0; c < 4; c++)
        dtm_buf_free(&key[c].b);
    if ((rc = result_rc(s, r, "cube_apply"))) {
        PQclear(r);
        return rc;
    }
    nfound = PQntuples(r);
    d->nrows[K_CUBE] = 0;
    for (int c = 0; c < 6; c++)
        arr_start(&fresh[c], cube_oids[c]);
    /* both in key order (bytea compares bytewise, as cmp_flat does): one merge walk */
    i = 0;
    for (size_t k = 0; k < d->nck && rc == DTM_OK; k++) {
        struct cube_key *ck = &d->ck[k];
        const void *dims = d->cbytes.p + ck->dims_off, *agg = d->cbytes.p + ck->agg_off;
        bool hit = false;
        while ((int)i < nfound) {
            size_t dl;
            const void *rd = col_blob(r, (int)i, 3, &dl);
            int64_t rc_ = col_i64(r, (int)i, 0), rg = col_i64(r, (int)i, 1),
                    rb = col_i64(r, (int)i, 2);
            int cmp = rc_ != ck->cube    ? (rc_ < ck->cube ? -1 : 1)
                      : rg != ck->grain  ? (rg < ck->grain ? -1 : 1)
                      : rb != ck->bucket ? (rb < ck->bucket ? -1 : 1)
                                         : 0;
            if (cmp == 0) {
                int m = memcmp(rd, dims, DTM_MIN(dl, ck->dimslen));
                cmp = m ? m : (dl < ck->dimslen ? -1 : dl > ck->dimslen ? 1 : 0);
            }
            if (cmp < 0) {
                i++;
                continue;
            }
            hit = cmp == 0;
            break;
        }
        d->ck[k].hit = hit;
        if (hit) {
            size_t oldlen;
            const void *old = col_blob(r, (int)i, 5, &oldlen);
            dtm_buf_reset(&q->agg);
            if (dtm_agg_merge(old, oldlen, agg, ck->agglen, &q->agg) || q->agg.err) {
                log_error(s, "cube_apply", "broken cube aggregate");
                rc = DTM_ESTORE;
                break;
            }
            t = kept_row(d, K_CUBE);
            arr_i64(&t->col[0], ck->cube);
            arr_i64(&t->col[1], ck->grain);
            arr_i64(&t->col[2], ck->bucket);
            arr_blob(&t->col[3], dims, ck->dimslen);
            arr_i64(&t->col[4], col_i64(r, (int)i, 4) + ck->n);
            arr_blob(&t->col[5], q->agg.p, q->agg.n);
            i++;
        } else {
            arr_i64(&fresh[0], ck->cube);
            arr_i64(&fresh[1], ck->grain);
            arr_i64(&fresh[2], ck->bucket);
            arr_blob(&fresh[3], dims, ck->dimslen);
            arr_i64(&fresh[4], ck->n);
            arr_blob(&fresh[5], agg, ck->agglen);
        }
    }
    PQclear(r);
    for (int c = 0; c < 6; c++)
        if (fresh[c].b.err || (d->nrows[K_CUBE] && d->k[K_CUBE].col[c].b.err))
            rc = DTM_ENOMEM;
    return rc;
}

static int cube_apply_one(struct dtm_store *s, int64_t cube, int grain, int64_t bucket,
                          const void *dims, size_t dimslen, int64_t n, const void *agg,
                          size_t agglen);

/* Sends every kept statement in one pipeline, with COMMIT when commit (then *committed says
 * whether it went: not when new cube rows met rows inserted meanwhile, which are merged here
 * first). */
static int flush(struct dtm_store *s, bool commit, bool *committed)
{
    struct pg_store *q = PG(s);
    struct pend *d = q->pend;
    PGconn *c = q->conn;
    struct arr fresh[6] = {0};
    int rc = DTM_OK, sent[K_COUNT + 2], nsent = 0, nfresh = 0;
    PGresult *ret = NULL; /* the keys of the new cube rows inserted */
    if (committed)
        *committed = false;
    if (!pend_any(s))
        return DTM_OK;
    if ((rc = cube_prepare(s, d, fresh)))
        goto out;
    nfresh = fresh[0].count;
    if (PQenterPipelineMode(c) != 1) {
        log_error(s, "flush", PQerrorMessage(c));
        rc = DTM_ESTORE;
        goto out;
    }
    for (int k = 0; k < K_COUNT; k++) {
        const char *v[KEPT_MAXCOLS];
        int len[KEPT_MAXCOLS], fmt[KEPT_MAXCOLS];
        struct kept *t = &d->k[k];
        if (!d->nrows[k])
            continue;
        for (int i = 0; i < t->ncols; i++) {
            arr_finish(&t->col[i]);
            if (t->col[i].b.err)
                rc = DTM_ENOMEM;
            v[i] = t->col[i].b.p;
            len[i] = (int)t->col[i].b.n;
            fmt[i] = 1;
        }
        if (rc == DTM_OK && PQsendQueryParams(c, t->sql, t->ncols, NULL, v, len, fmt, 1) != 1)
            rc = DTM_ESTORE;
        if (rc)
            break;
        sent[nsent++] = k;
    }
    if (rc == DTM_OK && nfresh) {
        const char *v[6];
        int len[6], fmt[6];
        for (int i = 0; i < 6; i++) {
            arr_finish(&fresh[i]);
            v[i] = fresh[i].b.p;
            len[i] = (int)fresh[i].b.n;
            fmt[i] = 1;
        }
        if (PQsendQueryParams(c,
                              "INSERT INTO cube_rows(cube,grain,bucket,dims,n,agg) SELECT * FROM "
                              "unnest($1::bigint[],$2::bigint[],$3::bigint[],$4::bytea[],"
                              "$5::bigint[],$6::bytea[]) ON CONFLICT DO NOTHING "
                              "RETURNING cube,grain,bucket,dims",
                              6, NULL, v, len, fmt, 1) != 1)
            rc = DTM_ESTORE;
        else
            sent[nsent++] = K_COUNT;
    }
    /* COMMIT goes with them unless new cube rows may need a merge first */
    if (rc == DTM_OK && commit && !nfresh) {
        if (PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 1) != 1)
            rc = DTM_ESTORE;
        else
            sent[nsent++] = K_COUNT + 1;
    }
    if (rc == DTM_ESTORE)
        log_error(s, "flush", PQerrorMessage(c));
    if (PQpipelineSync(c) != 1 && rc == DTM_OK) {
        log_error(s, "flush", PQerrorMessage(c));
        rc = DTM_ESTORE;
    }
    for (int i = 0; i < nsent; i++) {
        PGresult *r = PQgetResult(c), *x;
        const char *what = sent[i] < K_COUNT ? kept_def[sent[i]].sql : "commit";
        int one = result_rc(s, r, what);
        if (one == DTM_EEXIST) {
            log_error(s, what, PQresultErrorMessage(r));
            one = DTM_ESTORE;
        }
        if (one == DTM_OK && sent[i] == K_COUNT + 1) {
            if (strcmp(PQcmdStatus(r), "COMMIT") == 0) {
                *committed = true;
            } else {
                log_error(s, "commit", "the transaction was rolled back");
                one = DTM_ESTORE;
            }
        }
        if (rc == DTM_OK)
            rc = one;
        if (one == DTM_OK && sent[i] == K_COUNT)
            ret = r;
        else
            PQclear(r);
        while ((x = PQgetResult(c)))
            PQclear(x);
    }
    /* the sync (or whatever is left of a broken pipeline) */
    for (PGresult *r; (r = PQgetResult(c));) {
        bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync)
            break;
    }
    if (PQexitPipelineMode(c) != 1) {
        /* results left unread: the connection is in an unknown state, and may hold the
         * transaction and its lock on the server */
        log_error(s, "flush", PQerrorMessage(c));
        reset_conn(s);
        if (!committed || !*committed)
            rc = DTM_ESTORE;
    }
    if (rc == DTM_OK && ret && PQntuples(ret) < nfresh) {
        /* new cube rows that another connection inserted meanwhile (a rebuild): merged into
         * theirs one by one, as cube_apply did before */
        size_t n = d->nck;
        struct cube_key *ck = d->ck;
        pend_clear(s);
        for (size_t k = 0; k < n && rc == DTM_OK; k++) {
            bool inserted = false;
            if (ck[k].hit)
                continue;
            for (int i = 0, m = PQntuples(ret); i < m && !inserted; i++) {
                size_t dl;
                const void *rd = col_blob(ret, i, 3, &dl);
                inserted = col_i64(ret, i, 0) == ck[k].cube && col_i64(ret, i, 1) == ck[k].grain &&
                           col_i64(ret, i, 2) == ck[k].bucket && dl == ck[k].dimslen &&
                           memcmp(rd, d->cbytes.p + ck[k].dims_off, dl) == 0;
            }
            if (!inserted)
                rc = cube_apply_one(s, ck[k].cube, (int)ck[k].grain, ck[k].bucket,
                                    d->cbytes.p + ck[k].dims_off, ck[k].dimslen, ck[k].n,
                                    d->cbytes.p + ck[k].agg_off, ck[k].agglen);
        }
    }
out:
    PQclear(ret);
    for (int i = 0; i < 6; i++)
        dtm_buf_free(&fresh[i].b);
    pend_clear(s);
    return rc;
}

/* Before a statement inside a transaction: the kept ones go first. */
static int flush_kept(struct dtm_store *s)
{
    return PG(s)->in_tx && pend_any(s) ? flush(s, false, NULL) : DTM_OK;
}

static int keep_receipt(struct dtm_store *s, const struct dtm_receipt *r, int64_t first,
                        int64_t last)
{
    struct pend *d = pend_of(s);
    struct kept *t;
    if (!d)
        return DTM_ENOMEM;
    t = kept_row(d, K_RCPT);
    arr_i64(&t->col[0], r->seq);
    arr_text(&t->col[1], r->id);
    arr_text(&t->col[2], r->dataset);
    arr_text(&t->col[3], r->system_code);
    arr_text(&t->col[4], r->request_id);
    arr_i64(&t->col[5], r->received_at);
    arr_i64(&t->col[6], r->accepted);
    arr_i64(&t->col[7], r->duplicates);
    arr_i64(&t->col[8], r->updated);
    arr_i64(&t->col[9], r->rejected);
    arr_i64_opt(&t->col[10], first, 0);
    arr_i64_opt(&t->col[11], last, 0);
    return DTM_OK;
}

/* the ids record_put_many gave a receipt's records, if it did (0, 0 = none) */
static bool span_of(struct dtm_store *s, int64_t seq, int64_t *first, int64_t *last)
{
    struct pend *d = PG(s)->pend;
    for (size_t i = 0; d && i < d->nspans; i++)
        if (d->spans[i].seq == seq) {
            *first = d->spans[i].min;
            *last = d->spans[i].max;
            return true;
        }
    return false;
}

static int keep_idem(struct dtm_store *s, const char *system_code, struct dtm_str key,
                     const struct dtm_idem *v)
{
    struct pend *d = pend_of(s);
    struct kept *t;
    if (!d)
        return DTM_ENOMEM;
    if (d->nrows[K_IDEM]) {
        /* the same key twice in one upsert is an error in PostgreSQL: the first goes now */
        const uint8_t *p = (const uint8_t *)d->k[K_IDEM].col[1].b.p + 20;
        const uint8_t *c = (const uint8_t *)d->k[K_IDEM].col[0].b.p + 20;
        for (size_t i = 0; i < d->nrows[K_IDEM]; i++) {
            uint32_t kl = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
            uint32_t cl = (uint32_t)c[0] << 24 | (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
            if (kl == key.n && memcmp(p + 4, key.p, kl) == 0 && cl == strlen(system_code) &&
                memcmp(c + 4, system_code, cl) == 0) {
                int rc = flush(s, false, NULL);
                if (rc)
                    return rc;
                break;
            }
            p += 4 + kl;
            c += 4 + cl;
        }
    }
    t = kept_row(d, K_IDEM);
    arr_text(&t->col[0], system_code);
    arr_blob(&t->col[1], key.p, key.n);
    arr_blob(&t->col[2], v->request_hash, 32);
    arr_i64(&t->col[3], v->status);
    arr_blob(&t->col[4], v->body ? v->body : "", v->body ? v->body_len : 0);
    arr_i64(&t->col[5], v->created_at);
    return DTM_OK;
}

static int keep_quality(struct dtm_store *s, int64_t day, const char *system_code,
                        const char *dataset, const char *kind, const char *item, int64_t n)
{
    struct pend *d = pend_of(s);
    struct kept *t;
    if (!d)
        return DTM_ENOMEM;
    t = kept_row(d, K_QUAL);
    arr_i64(&t->col[0], day);
    arr_text(&t->col[1], system_code);
    arr_text(&t->col[2], dataset);
    arr_text(&t->col[3], kind);
    arr_text(&t->col[4], item);
    arr_i64(&t->col[5], n);
    return DTM_OK;
}

static int keep_touch(struct dtm_store *s, const char *code, int64_t last_seen)
{
    struct pend *d = pend_of(s);
    struct kept *t;
    if (!d)
        return DTM_ENOMEM;
    t = kept_row(d, K_TOUCH);
    arr_text(&t->col[0], code);
    arr_i64(&t->col[1], last_seen);
    return DTM_OK;
}

static int s_cube_apply(struct dtm_store *s, int64_t cube, int grain, int64_t bucket,
                        const void *dims, size_t dimslen, int64_t n, const void *agg, size_t agglen)
{
    struct pend *d;
    struct cube_key *k;
    if (!PG(s)->in_tx || !(d = pend_of(s)))
        return cube_apply_one(s, cube, grain, bucket, dims, dimslen, n, agg, agglen);
    if (grain == DTM_GRAIN_GAP) {
        struct kept *t = kept_row(d, K_GAP);
        arr_i64(&t->col[0], cube);
        arr_i64(&t->col[1], bucket);
        return DTM_OK;
    }
    if (d->nck) {
        /* kept while the keys increase (dtm_cube_runs_apply sorts and merges them); a key
         * that does not: the kept ones go first */
        const struct cube_key *l = &d->ck[d->nck - 1];
        int cmp = l->cube != cube       ? (l->cube < cube ? -1 : 1)
                  : l->grain != grain   ? (l->grain < grain ? -1 : 1)
                  : l->bucket != bucket ? (l->bucket < bucket ? -1 : 1)
                                        : 0;
        if (cmp == 0) {
            int m = memcmp(d->cbytes.p + l->dims_off, dims, DTM_MIN(l->dimslen, dimslen));
            cmp = m ? m : (l->dimslen < dimslen ? -1 : l->dimslen > dimslen ? 1 : 0);
        }
        if (cmp >= 0) {
            int rc = flush(s, false, NULL);
            if (rc)
                return rc;
        }
    }
    if (dtm_array_reserve(&d->ck, d->nck, &d->ckcap, sizeof(*d->ck)))
        return DTM_ENOMEM;
    k = &d->ck[d->nck];
    *k = (struct cube_key){.cube = cube,
                           .grain = grain,
                           .bucket = bucket,
                           .n = n,
                           .dims_off = d->cbytes.n,
                           .dimslen = dimslen};
    dtm_buf_add(&d->cbytes, dimslen ? dims : "", dimslen);
    k->agg_off = d->cbytes.n;
    k->agglen = agglen;
    dtm_buf_add(&d->cbytes, agglen ? agg : "", agglen);
    if (d->cbytes.err)
        return DTM_ENOMEM;
    d->nck++;
    return DTM_OK;
}

/* ---- partitions (migration: records partitioned by dataset and month) */

/* The local month (UTC+07:00) of a time in µs, as year × 12 + month − 1 (civil calendar from
 * days, H. Hinnant's algorithm). */
static int64_t local_month(int64_t t)
{
    int64_t sec = (t >= 0 ? t / 1000000 : -((-t + 999999) / 1000000)) + DTM_TZ_OFFSET;
    int64_t z = (sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400)) + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    return y * 12 + m - 1;
}

/* Makes sure the partition of dataset ds for the month of t exists (remembered per connection:
 * one statement per new month and dataset). Records without a time go to the default
 * partition. A partition that cannot be made is not an error: the record goes to the default
 * partition (dtm_records_partition catches the failure in its own subtransaction). */
static int part_ensure(struct dtm_store *s, int64_t ds, int64_t t)
{
    struct pend *d = pend_of(s);
    int64_t month;
    char a[24], b[24];
    const char *v[2] = {a, b};
    PGresult *r;
    int rc;
    if (t == INT64_MIN)
        return DTM_OK;
    if (!d)
        return DTM_ENOMEM;
    month = local_month(t);
    for (size_t i = 0; i < d->nparts; i++)
        if (d->parts[i].ds == ds && d->parts[i].month == month)
            return DTM_OK;
    snprintf(a, sizeof(a), "%lld", (long long)ds);
    snprintf(b, sizeof(b), "%lld", (long long)t);
    r = PQexecParams(PG(s)->conn, "SELECT dtm_records_partition($1::bigint,$2::bigint)", 2, NULL, v,
                     NULL, NULL, 1);
    rc = result_rc(s, r, "records_partition");
    PQclear(r);
    if (rc)
        return rc;
    /* a rollback forgets every partition remembered (it may have undone one) */
    if (d->nparts == DTM_ARRAY_LEN(d->parts))
        d->nparts = 0;
    d->parts[d->nparts].ds = ds;
    d->parts[d->nparts++].month = month;
    return DTM_OK;
}

/* ---- record_put_many */

struct putkey {
    int64_t ds;
    uint8_t key[16];
    size_t i;     /* the put */
    int64_t id;   /* of the record (group heads) */
    int64_t rev;  /* current revision (group heads) */
    long cur_put; /* the put whose content is current, -1 = the row read (group heads) */
    int row;      /* the row read by the SELECT, -1 = none (group heads) */
};

static int cmp_putkey(const void *x, const void *y)
{
    const struct putkey *a = x, *b = y;
    int c;
    if (a->ds != b->ds)
        return a->ds < b->ds ? -1 : 1;
    if ((c = memcmp(a->key, b->key, 16)))
        return c;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* The first put of a key (its group head), or NULL. */
static struct putkey *putkey_find(struct putkey *pk, size_t n, int64_t ds, const void *key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = pk[mid].ds != ds ? (pk[mid].ds < ds ? -1 : 1) : memcmp(pk[mid].key, key, 16);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && pk[lo].ds == ds && memcmp(pk[lo].key, key, 16) == 0 ? &pk[lo] : NULL;
}

static int span_add(struct pend *d, int64_t seq, int64_t id)
{
    struct span *sp = d->nspans ? &d->spans[d->nspans - 1] : NULL;
    if (!sp || sp->seq != seq) {
        if (dtm_array_reserve(&d->spans, d->nspans, &d->spancap, sizeof(*d->spans)))
            return DTM_ENOMEM;
        sp = &d->spans[d->nspans++];
        *sp = (struct span){seq, id, id};
    }
    if (id < sp->min)
        sp->min = id;
    if (id > sp->max)
        sp->max = id;
    return DTM_OK;
}

static int s_record_put_many(struct dtm_store *s, const struct dtm_put *puts, size_t n, int64_t now,
                             dtm_put_cb cb, void *ctx)
{
    struct pend *d = pend_of(s);
    struct putkey *pk = NULL;
    bool *isnew = NULL; /* inserted by the INSERT */
    int64_t *dsv = NULL, *ids = NULL;
    PGresult *ins = NULL, *found = NULL;
    char nowtxt[24];
    size_t nold = 0;
    int rc;
    if (!d)
        return DTM_ENOMEM;
    if ((rc = flush_kept(s)))
        return rc;
    d->nspans = 0;
    if (n == 0)
        return DTM_OK;
    pk = calloc(n, sizeof(*pk));
    isnew = calloc(n, sizeof(*isnew));
    dsv = calloc(n, sizeof(*dsv));
    ids = calloc(n, sizeof(*ids));
    if (!pk || !isnew || !dsv || !ids) {
        rc = DTM_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(puts[i].dataset, puts[i - 1].dataset) == 0)
            dsv[i] = dsv[i - 1];
        else if ((rc = ds_id(s, puts[i].dataset, true, &dsv[i])))
            goto done;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = part_ensure(s, dsv[i], puts[i].r->event_time)))
            goto done;
    for (int c = 0; c < 7; c++)
        arr_start(&d->tmp[c], rec_oids[c]);
    for (size_t i = 0; i < n; i++) {
        const struct dtm_store_record *r = puts[i].r;
        arr_i64(&d->tmp[0], dsv[i]);
        arr_blob(&d->tmp[1], r->key_hash, 16);
        arr_blob(&d->tmp[2], r->system_code.p ? r->system_code.p : "", r->system_code.n);
        arr_i64_opt(&d->tmp[3], r->event_time, INT64_MIN);
        arr_i64(&d->tmp[4], puts[i].receipt_seq);
        arr_blob(&d->tmp[5], r->content_hash, 16);
        arr_blob(&d->tmp[6], r->content.p ? r->content.p : "", r->content.n);
        pk[i] = (struct putkey){.ds = dsv[i], .i = i, .cur_put = -1, .row = -1};
        memcpy(pk[i].key, r->key_hash, 16);
    }
    for (int c = 0; c < 7; c++)
        if (d->tmp[c].b.err) {
            rc = DTM_ENOMEM;
            goto done;
        }
    snprintf(nowtxt, sizeof(nowtxt), "%lld", (long long)now);
    /* the keys first (record_keys: the unique key across partitions), in the group's order
     * (ORDER BY ord), so that a key met twice is inserted with its first record; then the
     * records whose key was new, each with the first record of its key (DISTINCT ON) */
    ins = exec_arrays(s,
                      "WITH src AS (SELECT * FROM unnest($1::bigint[],$2::bytea[],$3::text[],"
                      "$4::bigint[],$5::bigint[],$6::bytea[],$7::bytea[]) WITH ORDINALITY "
                      "AS t(d,k,sc,et,rs,ch,c,ord)), "
                      "keys AS (INSERT INTO record_keys(ds,key_hash,id) SELECT d,k,"
                      "nextval('record_ids') FROM src ORDER BY ord "
                      "ON CONFLICT(ds,key_hash) DO NOTHING RETURNING id,ds,key_hash) "
                      "INSERT INTO records(id,ds,key_hash,system_code,event_time,revision,"
                      "receipt_seq,content_hash,content,received_at) SELECT keys.id,u.d,u.k,u.sc,"
                      "u.et,1,u.rs,u.ch,u.c,$8::bigint FROM keys JOIN (SELECT DISTINCT ON (d,k) * "
                      "FROM src ORDER BY d,k,ord) u ON u.d=keys.ds AND u.k=keys.key_hash "
                      "ORDER BY u.ord RETURNING id,ds,key_hash",
                      d->tmp, 7, nowtxt);
    if ((rc = result_rc(s, ins, "record_put_many")))
        goto done;
    qsort(pk, n, sizeof(*pk), cmp_putkey);
    for (int i = 0, m = PQntuples(ins); i < m; i++) {
        size_t kl;
        const void *k = col_blob(ins, i, 2, &kl);
        struct putkey *h = kl == 16 ? putkey_find(pk, n, col_i64(ins, i, 1), k) : NULL;
        if (!h) {
            log_error(s, "record_put_many", "an inserted record is not in the group");
            rc = DTM_ESTORE;
            goto done;
        }
        isnew[h->i] = true;
        ids[h->i] = h->id = col_i64(ins, i, 0);
        if ((rc = span_add(d, puts[h->i].receipt_seq, h->id)))
            goto done;
    }
    /* the keys that were there already (or met twice): read and locked at once */
    for (int c = 0; c < 2; c++)
        arr_start(&d->tmp[c], key_oids[c]);
    for (size_t i = 0; i < n; i++)
        if (!isnew[i]) {
            arr_i64(&d->tmp[0], dsv[i]);
            arr_blob(&d->tmp[1], puts[i].r->key_hash, 16);
            nold++;
        }
    if (nold) {
        found = exec_arrays(s,
                            "SELECT r.id,r.ds,r.key_hash,r.content_hash,r.revision,r.receipt_seq,"
                            "r.received_at,r.content FROM records r JOIN unnest($1::bigint[],"
                            "$2::bytea[]) u(ds,key_hash) USING(ds,key_hash) FOR UPDATE OF r",
                            d->tmp, 2, NULL);
        if ((rc = result_rc(s, found, "record_find")))
            goto done;
        for (int i = 0, m = PQntuples(found); i < m; i++) {
            size_t kl;
            const void *k = col_blob(found, i, 2, &kl);
            struct putkey *h = kl == 16 ? putkey_find(pk, n, col_i64(found, i, 1), k) : NULL;
            if (h && !isnew[h->i] && h->row < 0) {
                h->row = i;
                h->id = col_i64(found, i, 0);
                h->rev = col_i64(found, i, 4);
            }
        }
    }
    /* each put in order: its outcome against the key's current version */
    for (size_t i = 0; i < n && rc == DTM_OK; i++) {
        const struct dtm_store_record *r = puts[i].r;
        struct putkey *h = putkey_find(pk, n, dsv[i], r->key_hash);
        struct dtm_record_version v = {0};
        const void *cur;
        size_t curlen = 16;
        struct par p = {0};
        if (isnew[i]) {
            h->cur_put = (long)i;
            h->rev = 1;
            rc = cb(ctx, i, DTM_PUT_NEW, NULL);
            continue;
        }
        if (h->cur_put < 0 && h->row < 0) {
            log_error(s, "record_find", "the record's key exists but its row was not found");
            rc = DTM_ESTORE;
            break;
        }
        if (h->cur_put >= 0) {
            const struct dtm_put *c = &puts[h->cur_put];
            cur = c->r->content_hash;
            v = (struct dtm_record_version){.revision = h->rev,
                                            .receipt_seq = c->receipt_seq,
                                            .received_at = now,
                                            .content = c->r->content};
        } else {
            cur = col_blob(found, h->row, 3, &curlen);
            v = (struct dtm_record_version){.revision = h->rev,
                                            .receipt_seq = col_i64(found, h->row, 5),
                                            .received_at = col_i64(found, h->row, 6),
                                            .content = col_str(found, h->row, 7)};
        }
        if (curlen == 16 && memcmp(cur, r->content_hash, 16) == 0) {
            rc = cb(ctx, i, DTM_PUT_DUPLICATE, NULL);
            continue;
        }
        /* an update (rare): the current version to history, then the new one */
        p_i64(&p, now);
        p_i64(&p, puts[i].receipt_seq);
        p_i64(&p, h->id);
        if ((rc = exec0(s, Q_REC_HISTORY, &p)))
            break;
        memset(&p, 0, sizeof(p));
        p_i64(&p, puts[i].receipt_seq);
        p_blob(&p, r->content_hash, 16);
        p_blob(&p, r->content.p, r->content.n);
        p_opt(&p, r->event_time, INT64_MIN);
        p_str(&p, r->system_code);
        p_i64(&p, now);
        p_i64(&p, h->id);
        if ((rc = exec0(s, Q_REC_UPDATE, &p)))
            break;
        if ((rc = open_content(s, r->key_hash, 16, &v.content)))
            break;
        h->cur_put = (long)i;
        h->rev++;
        rc = cb(ctx, i, DTM_PUT_UPDATED, &v);
    }
done:
    PQclear(ins);
    PQclear(found);
    free(pk);
    free(isnew);
    free(dsv);
    free(ids);
    return rc;
}

/* ---- receipts, records, idempotency */

/* Inside the write transaction: begin's advisory lock serialises writers (of every node), so
 * max(seq)+1 cannot be handed out twice. */
static int s_receipt_next_seq(struct dtm_store *s, int64_t *seq)
{
    PGresult *r;
    int rc = run(s, Q_RCPT_NEXT, NULL, &r);
    if (rc)
        return rc;
    *seq = PQntuples(r) ? col_i64(r, 0, 0) : 1;
    PQclear(r);
    return DTM_OK;
}

static int s_receipt_put(struct dtm_store *s, const struct dtm_receipt *rc_)
{
    struct pg_store *q = PG(s);
    struct par p = {0};
    p_i64(&p, rc_->seq);
    p_text(&p, rc_->id);
    p_text(&p, rc_->dataset);
    p_text(&p, rc_->system_code);
    p_text(&p, rc_->request_id);
    p_i64(&p, rc_->received_at);
    p_i64(&p, rc_->accepted);
    p_i64(&p, rc_->duplicates);
    p_i64(&p, rc_->updated);
    p_i64(&p, rc_->rejected);
    if (q->in_tx) {
        /* kept for the next flush (the write path, above) */
        int64_t first = q->new_min, last = q->new_max;
        if (!span_of(s, rc_->seq, &first, &last))
            q->new_min = q->new_max = 0;
        return keep_receipt(s, rc_, first, last);
    }
    p_opt(&p, q->new_min, 0);
    p_opt(&p, q->new_max, 0);
    q->new_min = q->new_max = 0;
    return exec0(s, Q_RCPT_PUT, &p);
}

static int s_record_put(struct dtm_store *s, const char *dataset, const struct dtm_store_record *r,
                        int64_t receipt_seq, int64_t now, enum dtm_put_outcome *out,
                        dtm_version_cb replaced, void *ctx)
{
    struct pg_store *q = PG(s);
    struct par p = {0};
    PGresult *res;
    int64_t id, ds;
    size_t hn;
    const void *h;
    int rc;
    if ((rc = ds_id(s, dataset, true, &ds)) || (rc = flush_kept(s)) ||
        (rc = part_ensure(s, ds, r->event_time)))
        return rc;
    p_i64(&p, ds);
    p_blob(&p, r->key_hash, 16);
    p_str(&p, r->system_code);
    p_opt(&p, r->event_time, INT64_MIN);
    p_i64(&p, receipt_seq);
    p_blob(&p, r->content_hash, 16);
    p_blob(&p, r->content.p, r->content.n);
    p_i64(&p, now);
    if ((rc = run(s, Q_REC_INSERT, &p, &res)))
        return rc;
    if (PQntuples(res) == 1) {
        int64_t nid = col_i64(res, 0, 0);
        PQclear(res);
        if (!q->new_min || nid < q->new_min)
            q->new_min = nid;
        if (nid > q->new_max)
            q->new_max = nid;
        *out = DTM_PUT_NEW;
        return DTM_OK;
    }
    PQclear(res);
    /* the key exists: same content → duplicate; else keep the old version in history */
    memset(&p, 0, sizeof(p));
    p_i64(&p, ds);
    p_blob(&p, r->key_hash, 16);
    if ((rc = run(s, Q_REC_FIND, &p, &res)))
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        log_error(s, "record_find", "the record's key exists but its row was not found");
        return DTM_ESTORE;
    }
    id = col_i64(res, 0, 0);
    h = col_blob(res, 0, 1, &hn);
    if (hn == 16 && memcmp(h, r->content_hash, 16) == 0) {
        PQclear(res);
        *out = DTM_PUT_DUPLICATE;
        return DTM_OK;
    }
    if (replaced) {
        struct dtm_record_version v = {
            .revision = col_i64(res, 0, 2),
            .receipt_seq = col_i64(res, 0, 3),
            .received_at = col_i64(res, 0, 4),
            .content = col_str(res, 0, 5),
        };
        if ((rc = open_content(s, r->key_hash, 16, &v.content)) || (rc = replaced(ctx, &v))) {
            PQclear(res);
            return rc;
        }
    }
    PQclear(res);
    memset(&p, 0, sizeof(p));
    p_i64(&p, now);
    p_i64(&p, receipt_seq);
    p_i64(&p, id);
    if ((rc = exec0(s, Q_REC_HISTORY, &p)))
        return rc;
    memset(&p, 0, sizeof(p));
    p_i64(&p, receipt_seq);
    p_blob(&p, r->content_hash, 16);
    p_blob(&p, r->content.p, r->content.n);
    p_opt(&p, r->event_time, INT64_MIN);
    p_str(&p, r->system_code);
    p_i64(&p, now);
    p_i64(&p, id);
    if ((rc = exec0(s, Q_REC_UPDATE, &p)))
        return rc;
    *out = DTM_PUT_UPDATED;
    return DTM_OK;
}

static int s_receipt_get(struct dtm_store *s, int64_t seq, struct dtm_receipt *out)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_i64(&p, seq);
    if ((rc = run(s, Q_RCPT_GET, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc) {
        memset(out, 0, sizeof(*out));
        out->seq = col_i64(r, 0, 0);
        col_text(r, 0, 1, out->id, sizeof(out->id));
        col_text(r, 0, 2, out->dataset, sizeof(out->dataset));
        col_text(r, 0, 3, out->system_code, sizeof(out->system_code));
        col_text(r, 0, 4, out->request_id, sizeof(out->request_id));
        out->received_at = col_i64(r, 0, 5);
        out->accepted = col_i64(r, 0, 6);
        out->duplicates = col_i64(r, 0, 7);
        out->updated = col_i64(r, 0, 8);
        out->rejected = col_i64(r, 0, 9);
    }
    PQclear(r);
    return rc;
}

static int s_receipt_records(struct dtm_store *s, int64_t seq, size_t limit, dtm_version_cb cb,
                             void *ctx)
{
    struct par p = {0};
    p_i64(&p, seq);
    p_i64(&p, (int64_t)DTM_MIN(limit, (size_t)INT64_MAX));
    return version_rows(s, Q_RCPT_RECORDS, &p, cb, ctx);
}

static int s_record_get(struct dtm_store *s, const char *dataset, const uint8_t key_hash[16],
                        dtm_version_cb cb, void *ctx)
{
    struct par p = {0};
    PGresult *r;
    int64_t id, ds;
    int rc;
    if ((rc = ds_id(s, dataset, false, &ds)))
        return rc; /* DTM_ENOTFOUND: no record of that dataset at all */
    p_i64(&p, ds);
    p_blob(&p, key_hash, 16);
    if ((rc = run(s, Q_REC_GET, &p, &r)))
        return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return DTM_ENOTFOUND;
    }
    id = col_i64(r, 0, 0);
    struct dtm_record_version cur = {
        .revision = col_i64(r, 0, 1),
        .receipt_seq = col_i64(r, 0, 2),
        .received_at = col_i64(r, 0, 3),
        .content = col_str(r, 0, 4),
    };
    if ((rc = open_content(s, key_hash, 16, &cur.content)) == DTM_OK)
        rc = cb(ctx, &cur);
    PQclear(r);
    if (rc)
        return rc;
    memset(&p, 0, sizeof(p));
    p_i64(&p, id);
    p_blob(&p, key_hash, 16);
    return version_rows(s, Q_REC_GET_HISTORY, &p, cb, ctx);
}

static int s_idem_get(struct dtm_store *s, const char *system_code, struct dtm_str key,
                      int64_t not_before, struct dtm_idem *out)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, system_code);
    p_str(&p, key);
    p_i64(&p, not_before);
    if ((rc = run(s, Q_IDEM_GET, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc) {
        size_t n;
        const void *h = col_blob(r, 0, 0, &n), *b;
        memset(out, 0, sizeof(*out));
        if (n == 32)
            memcpy(out->request_hash, h, 32);
        out->status = (int)col_i64(r, 0, 1);
        b = col_blob(r, 0, 2, &out->body_len);
        if (!(out->body = malloc(out->body_len + 1))) {
            rc = DTM_ENOMEM;
        } else {
            if (out->body_len)
                memcpy(out->body, b, out->body_len);
            out->body[out->body_len] = '\0';
        }
        out->created_at = col_i64(r, 0, 3);
    }
    PQclear(r);
    return rc;
}

static int s_idem_put(struct dtm_store *s, const char *system_code, struct dtm_str key,
                      const struct dtm_idem *v)
{
    struct par p = {0};
    if (PG(s)->in_tx)
        return keep_idem(s, system_code, key, v);
    p_text(&p, system_code);
    p_str(&p, key);
    p_blob(&p, v->request_hash, 32);
    p_i64(&p, v->status);
    p_blob(&p, v->body ? v->body : "", v->body ? v->body_len : 0);
    p_i64(&p, v->created_at);
    return exec0(s, Q_IDEM_PUT, &p);
}

static int s_idem_purge(struct dtm_store *s, int64_t before)
{
    struct par p = {0};
    p_i64(&p, before);
    return exec0(s, Q_IDEM_PURGE, &p);
}

/* ---- record scans (statistics) */

static int s_record_scan(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                         bool ordered, dtm_version_cb cb, void *ctx)
{
    bool all = from == INT64_MIN && to == INT64_MAX;
    struct par p = {0};
    int64_t ds;
    int rc = ds_id(s, dataset, false, &ds);
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    p_i64(&p, ds);
    if (!all) {
        p_i64(&p, from);
        p_i64(&p, to);
    }
    return version_rows(s,
                        !all      ? Q_REC_SCAN
                        : ordered ? Q_REC_SCAN_ALL
                                  : Q_REC_SCAN_TABLE,
                        &p, cb, ctx);
}

/* The same rows as record_scan unordered: PostgreSQL chooses the access path itself. */
static int s_record_scan_table(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                               dtm_version_cb cb, void *ctx)
{
    return s_record_scan(s, dataset, from, to, false, cb, ctx);
}

static int s_record_id_split(struct dtm_store *s, int64_t *mid)
{
    PGresult *r;
    int rc = run(s, Q_REC_ID_RANGE, NULL, &r);
    if (rc)
        return rc;
    if (PQntuples(r) != 1 || col_null(r, 0, 0)) {
        PQclear(r);
        return DTM_ENOTFOUND; /* no record at all */
    }
    *mid = col_i64(r, 0, 0) + (col_i64(r, 0, 1) - col_i64(r, 0, 0) + 1) / 2;
    PQclear(r);
    return DTM_OK;
}

static int s_record_scan_part(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                              int64_t id_from, int64_t id_to, dtm_version_cb cb, void *ctx)
{
    bool all = from == INT64_MIN && to == INT64_MAX;
    struct par p = {0};
    int64_t ds;
    int rc = ds_id(s, dataset, false, &ds);
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    p_i64(&p, id_from);
    p_i64(&p, id_to);
    p_i64(&p, ds);
    if (!all) {
        p_i64(&p, from);
        p_i64(&p, to);
    }
    return version_rows(s, all ? Q_REC_SCAN_PART_ALL : Q_REC_SCAN_PART, &p, cb, ctx);
}

static int s_reopen(struct dtm_store *s, struct dtm_store **out)
{
    char err[512];
    int rc = dtm_store_pg_open(PG(s)->conninfo, PG(s)->password, out, err, sizeof(err));
    if (rc == DTM_OK)
        (*out)->keys = s->keys; /* T4.2 */
    else
        dtm_logf(DTM_LOG_ERROR, "cannot open another PostgreSQL connection", "\"error\":\"%s\"",
                 dtm_rc_name(rc));
    return rc;
}

/* ---- batches */

static void bind_batch(struct par *p, const struct dtm_batch *b)
{
    const int64_t n[] = {b->bytes,    b->byte_offset, b->next_row,   b->total,
                         b->accepted, b->duplicates,  b->updated,    b->rejected,
                         b->nerrors,  b->created_at,  b->started_at, b->finished_at};
    p_text(p, b->id);
    p_text(p, b->system_code);
    p_text(p, b->dataset);
    p_text(p, b->format);
    p_text(p, b->origin);
    p_text(p, b->status);
    p_i64(p, b->priority);
    p_i64(p, b->masked);
    p_text(p, b->source);
    for (size_t i = 0; i < DTM_ARRAY_LEN(n); i++)
        p_i64(p, n[i]);
    p_text(p, b->error);
}

static void read_batch(const PGresult *r, int row, struct dtm_batch *b)
{
    int64_t *n[] = {&b->bytes,    &b->byte_offset, &b->next_row,   &b->total,
                    &b->accepted, &b->duplicates,  &b->updated,    &b->rejected,
                    &b->nerrors,  &b->created_at,  &b->started_at, &b->finished_at};
    memset(b, 0, sizeof(*b));
    col_text(r, row, 0, b->id, sizeof(b->id));
    col_text(r, row, 1, b->system_code, sizeof(b->system_code));
    col_text(r, row, 2, b->dataset, sizeof(b->dataset));
    col_text(r, row, 3, b->format, sizeof(b->format));
    col_text(r, row, 4, b->origin, sizeof(b->origin));
    col_text(r, row, 5, b->status, sizeof(b->status));
    b->priority = (int)col_i64(r, row, 6);
    b->masked = col_i64(r, row, 7) != 0;
    col_text(r, row, 8, b->source, sizeof(b->source));
    for (int i = 0; i < (int)DTM_ARRAY_LEN(n); i++)
        *n[i] = col_i64(r, row, 9 + i);
    col_text(r, row, 21, b->error, sizeof(b->error));
}

static int s_batch_put(struct dtm_store *s, const struct dtm_batch *b)
{
    struct par p = {0};
    bind_batch(&p, b);
    return exec_one(s, Q_BATCH_PUT, &p, DTM_EEXIST);
}

static int s_batch_update(struct dtm_store *s, const struct dtm_batch *b)
{
    struct par p = {0};
    bind_batch(&p, b);
    return exec0(s, Q_BATCH_UPDATE, &p);
}

static int batch_rows(struct dtm_store *s, enum qid id, const struct par *p, dtm_batch_cb cb,
                      void *ctx)
{
    PGresult *r;
    int rc = run(s, id, p, &r);
    if (rc)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_batch b;
        read_batch(r, i, &b);
        rc = cb(ctx, &b);
    }
    PQclear(r);
    return rc;
}

static int s_batch_get(struct dtm_store *s, const char *id, struct dtm_batch *out)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, id);
    if ((rc = run(s, Q_BATCH_GET, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc)
        read_batch(r, 0, out);
    PQclear(r);
    return rc;
}

static int s_batch_list(struct dtm_store *s, const char *system_code, size_t limit, dtm_batch_cb cb,
                        void *ctx)
{
    struct par p = {0};
    if (system_code)
        p_text(&p, system_code);
    p_i64(&p, (int64_t)DTM_MIN(limit, (size_t)INT64_MAX));
    return batch_rows(s, system_code ? Q_BATCH_LIST : Q_BATCH_LIST_ALL, &p, cb, ctx);
}

static int s_batch_pending(struct dtm_store *s, const char *origin, dtm_batch_cb cb, void *ctx)
{
    struct par p = {0};
    p_text(&p, origin);
    return batch_rows(s, Q_BATCH_PENDING, &p, cb, ctx);
}

static int s_batch_error_put(struct dtm_store *s, const char *batch_id,
                             const struct dtm_batch_error *e)
{
    struct par p = {0};
    struct pend *d;
    if (PG(s)->in_tx && (d = pend_of(s))) {
        /* the write path: sent with the commit (a chunk's rejected rows, hundreds a chunk) */
        struct kept *t = kept_row(d, K_BERR);
        arr_text(&t->col[0], batch_id);
        arr_i64(&t->col[1], e->seq);
        arr_i64(&t->col[2], e->row);
        arr_i64(&t->col[3], e->line);
        arr_text(&t->col[4], e->field);
        arr_text(&t->col[5], e->code);
        arr_text(&t->col[6], e->arg);
        arr_i64(&t->col[7], e->rule);
        return DTM_OK;
    }
    p_text(&p, batch_id);
    p_i64(&p, e->seq);
    p_i64(&p, e->row);
    p_i64(&p, e->line);
    p_text(&p, e->field);
    p_text(&p, e->code);
    p_text(&p, e->arg);
    p_i64(&p, e->rule);
    return exec_one(s, Q_BATCH_ERR_PUT, &p, DTM_EEXIST);
}

static int s_batch_errors(struct dtm_store *s, const char *batch_id, int64_t after, size_t limit,
                          dtm_batch_error_cb cb, void *ctx)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, batch_id);
    p_i64(&p, after);
    p_i64(&p, (int64_t)DTM_MIN(limit, (size_t)INT64_MAX));
    if ((rc = run(s, Q_BATCH_ERRS, &p, &r)))
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_batch_error e = {
            .seq = col_i64(r, i, 0),
            .row = col_i64(r, i, 1),
            .line = col_i64(r, i, 2),
            .rule = (int)col_i64(r, i, 6),
        };
        col_text(r, i, 3, e.field, sizeof(e.field));
        col_text(r, i, 4, e.code, sizeof(e.code));
        col_text(r, i, 5, e.arg, sizeof(e.arg));
        rc = cb(ctx, &e);
    }
    PQclear(r);
    return rc;
}

/* ---- tuning: the PostgreSQL meaning of SQLite's knobs */

/* synchronous_commit for this connection: on = a commit is flushed to the WAL on disk when it
 * returns; off = atomic at once, durable a moment later (the server's WAL writer). */
static int s_set_durable(struct dtm_store *s, bool durable)
{
    return exec_text(s, durable ? "SET synchronous_commit = on" : "SET synchronous_commit = off",
                     "set_durable");
}

/* Nothing to do: autovacuum and the server's checkpointer keep the files (SQLite: WAL
 * checkpoints). */
static int s_maintain(struct dtm_store *s)
{
    /* records' partitions ahead of need: this month's and the next's for every dataset, at
     * start and then every hour (the writer makes any other month it meets) */
    struct pend *d = pend_of(s);
    int64_t now = dtm_now_us();
    char a[24], b[24];
    const char *v[2] = {a, b};
    PGresult *r;
    int rc;
    if (!d || (d->parts_at && now - d->parts_at < 3600LL * 1000000))
        return DTM_OK;
    snprintf(a, sizeof(a), "%lld", (long long)now);
    snprintf(b, sizeof(b), "%lld", (long long)(now + 31LL * 86400 * 1000000));
    if (PQstatus(PG(s)->conn) != CONNECTION_OK)
        return DTM_ESTORE;
    r = PQexecParams(PG(s)->conn,
                     "SELECT dtm_records_partition(id,$1::bigint),dtm_records_partition(id,"
                     "$2::bigint) FROM dataset_ids",
                     2, NULL, v, NULL, NULL, 1);
    rc = result_rc(s, r, "records_partition");
    PQclear(r);
    if (rc == DTM_OK)
        d->parts_at = now;
    return rc;
}

/* Nothing to do: the cache is the server's shared_buffers, not the connection's. */
static int s_tune_writer(struct dtm_store *s)
{
    (void)s;
    return DTM_OK;
}

/* ---- live rollups */

static int s_cube_id(struct dtm_store *s, const char *dataset, const char *dims, bool create,
                     int64_t *id, bool *complete)
{
    struct par p = {0};
    PGresult *r;
    int64_t ds;
    int rc;
    if ((rc = ds_id(s, dataset, create, &ds)))
        return rc;
    p_i64(&p, ds);
    p_text(&p, dims);
    for (int attempt = 0; attempt < 2; attempt++) {
        struct par a = {0};
        if ((rc = run(s, Q_CUBE_GET, &p, &r)))
            return rc;
        if (PQntuples(r) == 1) {
            *id = col_i64(r, 0, 0);
            *complete = col_i64(r, 0, 1) != 0;
            PQclear(r);
            return DTM_OK;
        }
        PQclear(r);
        if (!create)
            return DTM_ENOTFOUND;
        if (attempt)
            break;
        /* complete when no record exists yet: every record will pass through it */
        a.n = 0;
        p_i64(&a, ds);
        if ((rc = run(s, Q_DS_HAS_RECORDS, &a, &r)))
            return rc;
        *complete = PQntuples(r) == 0;
        PQclear(r);
        memset(&a, 0, sizeof(a));
        p_i64(&a, ds);
        p_text(&a, dims);
        p_i64(&a, *complete);
        if ((rc = run(s, Q_CUBE_ADD, &a, &r)))
            return rc;
        if (PQntuples(r) == 1) {
            *id = col_i64(r, 0, 0);
            PQclear(r);
            return DTM_OK;
        }
        PQclear(r); /* made meanwhile by another connection: read it */
    }
    log_error(s, "cube_id", "the cube vanished while being created");
    return DTM_ESTORE;
}

/* SQLite merges in its upsert (a C function registered with SQLite); here the row is locked,
 * merged in C and written back. */
static int cube_apply_one(struct dtm_store *s, int64_t cube, int grain, int64_t bucket,
                          const void *dims, size_t dimslen, int64_t n, const void *agg,
                          size_t agglen)
{
    struct pg_store *q = PG(s);
    struct par p = {0};
    PGresult *r;
    int rc;
    if (grain == DTM_GRAIN_GAP) {
        p_i64(&p, cube);
        p_i64(&p, bucket);
        return exec0(s, Q_CUBE_GAP_ADD, &p);
    }
    p_i64(&p, cube);
    p_i64(&p, grain);
    p_i64(&p, bucket);
    p_blob(&p, dimslen ? dims : "", dimslen);
    for (int attempt = 0; attempt < 2; attempt++) {
        struct par w = p;
        int changed = 0;
        /* the pointers of p point into p itself (num): rebuild them for the copy */
        for (int i = 0; i < w.n; i++)
            if (p.v[i] == p.num[i])
                w.v[i] = w.num[i];
        if ((rc = run(s, Q_CUBE_ROW_LOCK, &w, &r)))
            return rc;
        if (PQntuples(r) == 1) {
            size_t oldlen;
            const void *old = col_blob(r, 0, 1, &oldlen);
            int64_t total = col_i64(r, 0, 0) + n;
            dtm_buf_reset(&q->agg);
            rc = dtm_agg_merge(old, oldlen, agg, agglen, &q->agg);
            PQclear(r);
            if (rc || q->agg.err) {
                log_error(s, "cube_apply", "broken cube aggregate");
                return DTM_ESTORE;
            }
            p_i64(&w, total);
            p_blob(&w, q->agg.p, q->agg.n);
            return exec0(s, Q_CUBE_ROW_SET, &w);
        }
        PQclear(r);
        p_i64(&w, n);
        p_blob(&w, agg, agglen);
        if ((rc = exec_n(s, Q_CUBE_ROW_ADD, &w, &changed)))
            return rc;
        if (changed == 1)
            return DTM_OK;
        /* another connection inserted the row meanwhile: merge into it */
    }
    log_error(s, "cube_apply", "the cube row vanished while being merged");
    return DTM_ESTORE;
}

static int cube_rows(struct dtm_store *s, enum qid id, const struct par *p, dtm_cube_row_cb cb,
                     void *ctx)
{
    PGresult *r;
    int rc = run(s, id, p, &r);
    if (rc)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        size_t dl, al;
        const void *d = col_blob(r, i, 1, &dl), *a = col_blob(r, i, 3, &al);
        rc = cb(ctx, col_i64(r, i, 0), d, dl, col_i64(r, i, 2), a, al);
    }
    PQclear(r);
    return rc;
}

static int s_cube_scan(struct dtm_store *s, int64_t cube, int grain, int64_t from, int64_t to,
                       const void *prefix, size_t prefixlen, dtm_cube_row_cb cb, void *ctx)
{
    uint8_t end[256];
    size_t k;
    struct par p = {0};
    int rc;
    /* the tuples that start with prefix are [prefix, prefix with its last byte + 1); BYTEA
     * compares bytewise as SQLite's BLOB does */
    if (prefixlen && prefixlen <= sizeof(end)) {
        memcpy(end, prefix, prefixlen);
        for (k = prefixlen; k > 0 && end[k - 1] == 0xff; k--)
            end[k - 1] = 0;
        if (k > 0 && from != INT64_MIN && to != INT64_MAX) {
            end[k - 1]++;
            for (int64_t b = from; b < to; b++) {
                memset(&p, 0, sizeof(p));
                p_i64(&p, cube);
                p_i64(&p, grain);
                p_i64(&p, b);
                p_blob(&p, prefix, prefixlen);
                p_blob(&p, end, k);
                if ((rc = cube_rows(s, Q_CUBE_SEEK, &p, cb, ctx)))
                    return rc;
            }
            return DTM_OK;
        }
    }
    p_i64(&p, cube);
    p_i64(&p, grain);
    p_i64(&p, from);
    p_i64(&p, to);
    return cube_rows(s, Q_CUBE_SCAN, &p, cb, ctx);
}

static int s_cube_reset(struct dtm_store *s, int64_t cube, bool complete)
{
    struct par p = {0}, m = {0};
    int rc;
    p_i64(&p, cube);
    if ((rc = exec0(s, Q_CUBE_CLEAR, &p)) || (rc = exec0(s, Q_CUBE_GAP_CLEAR, &p)))
        return rc;
    p_i64(&m, complete);
    p_i64(&m, cube);
    return exec0(s, Q_CUBE_MARK, &m);
}

static int s_cube_purge(struct dtm_store *s, int grain, int64_t before)
{
    struct par p = {0}, g = {0};
    int rc;
    p_i64(&p, grain);
    p_i64(&p, before);
    if ((rc = exec0(s, Q_CUBE_PURGE, &p)) || grain != DTM_GRAIN_HOUR)
        return rc;
    p_i64(&g, before);
    return exec0(s, Q_CUBE_GAP_PURGE, &g);
}

static int s_cube_gap_any(struct dtm_store *s, int64_t cube, int64_t from, int64_t to, bool *any)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_i64(&p, cube);
    p_i64(&p, from);
    p_i64(&p, to);
    if ((rc = run(s, Q_CUBE_GAP_ANY, &p, &r)))
        return rc;
    *any = PQntuples(r) > 0;
    PQclear(r);
    return DTM_OK;
}

static int s_cube_applied(struct dtm_store *s, int64_t seq)
{
    struct par p = {0};
    p_i64(&p, seq);
    return exec0(s, Q_CUBE_APPLIED, &p);
}

static int s_cube_invalidate(struct dtm_store *s)
{
    return exec0(s, Q_CUBE_ALL_INCOMPLETE, NULL);
}

/* The rollups commit in the same database as the records here, so they lag only when a rollup
 * writer stopped between a records commit and its own: the same check as SQLite's. */
static int s_cube_check(struct dtm_store *s, bool *lagging)
{
    PGresult *r;
    int64_t last = 0, applied = 0;
    int rc = run(s, Q_CUBE_LAG, NULL, &r);
    if (rc)
        return rc;
    if (PQntuples(r) == 1) {
        last = col_i64(r, 0, 0);
        applied = col_i64(r, 0, 1);
    }
    PQclear(r);
    *lagging = applied < last;
    if (!*lagging)
        return DTM_OK;
    if ((rc = s_cube_invalidate(s)))
        return rc;
    return s_cube_applied(s, last);
}

/* ---- grants */

static int s_grant_put(struct dtm_store *s, const char *system_code, const char *dataset,
                       int64_t now)
{
    struct par p = {0};
    p_text(&p, system_code);
    p_text(&p, dataset);
    p_i64(&p, now);
    /* DTM_EEXIST also when no such system (foreign key), as in SQLite */
    return exec_one(s, Q_GRANT_PUT, &p, DTM_EEXIST);
}

static int s_grant_delete(struct dtm_store *s, const char *system_code, const char *dataset)
{
    struct par p = {0};
    p_text(&p, system_code);
    p_text(&p, dataset);
    return exec_one(s, Q_GRANT_DEL, &p, DTM_ENOTFOUND);
}

static int s_grant_check(struct dtm_store *s, const char *system_code, const char *dataset)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, system_code);
    p_text(&p, dataset);
    if ((rc = run(s, Q_GRANT_CHECK, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    PQclear(r);
    return rc;
}

static int s_grant_list(struct dtm_store *s, const char *system_code, dtm_grant_cb cb, void *ctx)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    if (system_code)
        p_text(&p, system_code);
    if ((rc = run(s, system_code ? Q_GRANT_LIST : Q_GRANT_LIST_ALL, &p, &r)))
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_grant g;
        col_text(r, i, 0, g.system_code, sizeof(g.system_code));
        col_text(r, i, 1, g.dataset, sizeof(g.dataset));
        g.granted_at = col_i64(r, i, 2);
        rc = cb(ctx, &g);
    }
    PQclear(r);
    return rc;
}

/* ---- record pages (exports) and retention */

#define PAGE_MAX_SYSTEMS 256

/* The systems filter as a text[] literal ({"A","B"}): a parameter, never SQL text. */
static int systems_array(const char *const *systems, size_t n, struct dtm_buf *out)
{
    dtm_buf_addch(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            dtm_buf_addch(out, ',');
        dtm_buf_addch(out, '"');
        for (const char *c = systems[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                dtm_buf_addch(out, '\\');
            dtm_buf_addch(out, *c);
        }
        dtm_buf_addch(out, '"');
    }
    dtm_buf_addch(out, '}');
    dtm_buf_addch(out, '\0');
    return out->err ? DTM_ENOMEM : DTM_OK;
}

static int page_query(struct dtm_store *s, int64_t ds, bool timed, int64_t from, int64_t to,
                      int64_t after_time, int64_t after_id, const char *sys, size_t limit,
                      dtm_record_row_cb cb, void *ctx, size_t *n)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_i64(&p, ds);
    p_i64(&p, DTM_MAX(from, after_time));
    p_i64(&p, to);
    p_i64(&p, after_time);
    p_i64(&p, after_id);
    p_i64(&p, (int64_t)DTM_MIN(limit, (size_t)INT64_MAX));
    if (sys) {
        p.v[p.n] = sys;
        p.len[p.n] = 0;
        p.fmt[p.n++] = 0; /* text form: the array literal */
    } else {
        p_null(&p);
    }
    if ((rc = run(s, timed ? Q_REC_PAGE : Q_REC_PAGE_NOTIME, &p, &r)))
        return rc;
    for (int i = 0, nr = PQntuples(r); i < nr && !rc; i++) {
        size_t khlen;
        const void *kh = col_blob(r, i, 5, &khlen);
        struct dtm_record_row row = {
            .id = col_i64(r, i, 0),
            .event_time = col_null(r, i, 1) ? INT64_MAX : col_i64(r, i, 1),
            .system_code = col_str(r, i, 2),
            .sender = col_str(r, i, 3),
            .content = col_str(r, i, 4),
        };
        (*n)++;
        if ((rc = open_content(s, kh, khlen, &row.content)) == DTM_OK)
            rc = cb(ctx, &row);
    }
    PQclear(r);
    return rc;
}

static int s_record_page(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                         int64_t after_time, int64_t after_id, const char *const *systems,
                         size_t nsystems, size_t limit, dtm_record_row_cb cb, void *ctx)
{
    struct dtm_buf sys;
    size_t n = 0;
    int64_t ds;
    int rc = ds_id(s, dataset, false, &ds);
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    if (nsystems > PAGE_MAX_SYSTEMS)
        return DTM_ETOOBIG;
    if (limit == 0)
        return DTM_OK;
    dtm_buf_init(&sys, 1 << 20);
    if (nsystems && (rc = systems_array(systems, nsystems, &sys))) {
        dtm_buf_free(&sys);
        return rc;
    }
    if (after_time != INT64_MAX) {
        rc = page_query(s, ds, true, from, to, after_time, after_id, nsystems ? sys.p : NULL, limit,
                        cb, ctx, &n);
        if (rc || n == limit || from != INT64_MIN || to != INT64_MAX)
            goto out;
        after_id = 0;
    } else if (from != INT64_MIN || to != INT64_MAX) {
        goto out;
    }
    rc = page_query(s, ds, false, from, to, INT64_MAX, after_id, nsystems ? sys.p : NULL, limit - n,
                    cb, ctx, &n);
out:
    dtm_buf_free(&sys);
    return rc;
}

static int s_record_purge(struct dtm_store *s, const char *dataset, int64_t before, size_t limit,
                          int64_t *removed)
{
    static const enum qid steps[] = {Q_PURGE_HISTORY, Q_PURGE_RECORDS};
    struct par p = {0};
    int64_t ds;
    int rc = ds_id(s, dataset, false, &ds), n = 0;
    int64_t dropped = 0;
    *removed = 0;
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    /* the months of the dataset wholly before the cutoff: their partitions dropped whole, with
     * the records' history and keys (dtm_records_drop_before); the rows of a month the cutoff
     * cuts, and of the default partition, are deleted below, at most limit of them */
    {
        char a[24], b[24];
        const char *v[2] = {a, b};
        PGresult *r;
        if ((rc = flush_kept(s)))
            return rc;
        snprintf(a, sizeof(a), "%lld", (long long)ds);
        snprintf(b, sizeof(b), "%lld", (long long)before);
        r = PQexecParams(PG(s)->conn, "SELECT dtm_records_drop_before($1::bigint,$2::bigint)", 2,
                         NULL, v, NULL, NULL, 1);
        if ((rc = result_rc(s, r, "records_drop")) == DTM_OK && PQntuples(r) == 1)
            dropped = col_i64(r, 0, 0);
        PQclear(r);
        if (rc)
            return rc;
    }
    p_i64(&p, ds);
    p_i64(&p, before);
    if (limit)
        p_i64(&p, (int64_t)DTM_MIN(limit, (size_t)INT64_MAX));
    else
        p_null(&p); /* LIMIT NULL: no limit (SQLite: -1) */
    /* the history first: both select the same oldest records inside the transaction */
    for (size_t i = 0; i < DTM_ARRAY_LEN(steps); i++)
        if ((rc = exec_n(s, steps[i], &p, &n)))
            return rc;
    *removed = dropped + n;
    memset(&p, 0, sizeof(p));
    p_i64(&p, ds);
    p_i64(&p, dtm_cube_bucket(DTM_GRAIN_HOUR, before));
    p_i64(&p, dtm_cube_bucket(DTM_GRAIN_DAY, before));
    p_i64(&p, INT64_MIN); /* the rows of records without a time stay */
    return exec0(s, Q_PURGE_CUBES, &p);
}

/* ---- the audit trail */

static int s_audit_head(struct dtm_store *s, int64_t *seq, uint8_t hash[32])
{
    PGresult *r;
    int rc;
    *seq = 0;
    memset(hash, 0, 32);
    if ((rc = run(s, Q_AUDIT_HEAD, NULL, &r)))
        return rc;
    if (PQntuples(r) == 1) {
        size_t n;
        const void *h = col_blob(r, 0, 1, &n);
        *seq = col_i64(r, 0, 0);
        if (n == 32)
            memcpy(hash, h, 32);
    }
    PQclear(r);
    return DTM_OK;
}

/* Inside the caller's transaction, whose advisory lock (begin) serialises appends across
 * connections and nodes; the primary key on seq would refuse a second entry anyway. */
static int s_audit_append(struct dtm_store *s, struct dtm_audit_entry *e, dtm_audit_seal_fn seal,
                          void *ctx)
{
    struct par p = {0};
    int rc;
    if ((rc = s_audit_head(s, &e->seq, e->prev_hash)))
        return rc;
    e->seq++;
    if ((rc = seal(ctx, e)))
        return rc;
    p_i64(&p, e->seq);
    p_i64(&p, e->at);
    p_text(&p, e->actor_kind);
    p_text(&p, e->actor);
    p_text(&p, e->action);
    p_text(&p, e->target);
    p_text(&p, e->detail);
    p_text(&p, e->source_ip);
    p_blob(&p, e->prev_hash, 32);
    p_blob(&p, e->hash, 32);
    return exec0(s, Q_AUDIT_PUT, &p);
}

static void col_hash(const PGresult *r, int row, int col, uint8_t out[32])
{
    size_t n;
    const void *p = col_blob(r, row, col, &n);
    memset(out, 0, 32);
    if (p && n > 0)
        memcpy(out, p, DTM_MIN(n, (size_t)32));
}

static int s_audit_list(struct dtm_store *s, const struct dtm_audit_filter *f, int64_t after_seq,
                        size_t limit, dtm_audit_cb cb, void *ctx)
{
    struct par p = {0};
    struct dtm_audit_entry *e;
    PGresult *r;
    int rc;
    p_i64(&p, after_seq);
    p_i64(&p, f ? f->from : INT64_MIN);
    p_i64(&p, f ? f->to : INT64_MAX);
    if (f && f->actor)
        p_text(&p, f->actor);
    else
        p_null(&p);
    if (f && f->action)
        p_text(&p, f->action);
    else
        p_null(&p);
    if (limit)
        p_i64(&p, (int64_t)DTM_MIN(limit, (size_t)INT64_MAX));
    else
        p_null(&p);
    if (!(e = malloc(sizeof(*e))))
        return DTM_ENOMEM;
    if ((rc = run(s, Q_AUDIT_LIST, &p, &r))) {
        free(e);
        return rc;
    }
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        e->seq = col_i64(r, i, 0);
        e->at = col_i64(r, i, 1);
        col_text(r, i, 2, e->actor_kind, sizeof(e->actor_kind));
        col_text(r, i, 3, e->actor, sizeof(e->actor));
        col_text(r, i, 4, e->action, sizeof(e->action));
        col_text(r, i, 5, e->target, sizeof(e->target));
        col_text(r, i, 6, e->detail, sizeof(e->detail));
        col_text(r, i, 7, e->source_ip, sizeof(e->source_ip));
        col_hash(r, i, 8, e->prev_hash);
        col_hash(r, i, 9, e->hash);
        rc = cb(ctx, e);
    }
    PQclear(r);
    free(e);
    return rc;
}

/* ---- alerts and the vulnerability register */

static void read_alert(const PGresult *r, int i, struct dtm_alert *a)
{
    memset(a, 0, sizeof(*a));
    a->id = col_i64(r, i, 0);
    col_text(r, i, 1, a->rule, sizeof(a->rule));
    col_text(r, i, 2, a->key, sizeof(a->key));
    col_text(r, i, 3, a->severity, sizeof(a->severity));
    col_text(r, i, 4, a->state, sizeof(a->state));
    col_text(r, i, 5, a->title, sizeof(a->title));
    col_text(r, i, 6, a->detail, sizeof(a->detail));
    a->first_seen = col_i64(r, i, 7);
    a->last_seen = col_i64(r, i, 8);
    a->count = col_i64(r, i, 9);
    col_text(r, i, 10, a->acknowledged_by, sizeof(a->acknowledged_by));
    a->acknowledged_at = col_i64(r, i, 11);
    col_text(r, i, 12, a->resolved_by, sizeof(a->resolved_by));
    a->resolved_at = col_i64(r, i, 13);
    a->suppressed = col_i64(r, i, 14) != 0;
}

/* $1 the id, then the members alert_update writes ($2…$12) */
static void bind_alert(struct par *p, const struct dtm_alert *a)
{
    p_i64(p, a->id);
    p_text(p, a->severity);
    p_text(p, a->state);
    p_text(p, a->title);
    p_text(p, a->detail[0] ? a->detail : "{}");
    p_i64(p, a->last_seen);
    p_i64(p, a->count);
    p_text(p, a->acknowledged_by);
    p_i64(p, a->acknowledged_at);
    p_text(p, a->resolved_by);
    p_i64(p, a->resolved_at);
    p_i64(p, a->suppressed);
}

static int s_alert_insert(struct dtm_store *s, struct dtm_alert *a)
{
    struct par p = {0};
    bind_alert(&p, a);
    p_text(&p, a->rule);
    p_text(&p, a->key);
    p_i64(&p, a->first_seen);
    return run_i64(s, Q_ALERT_INSERT, &p, &a->id);
}

static int s_alert_update(struct dtm_store *s, const struct dtm_alert *a)
{
    struct par p = {0};
    bind_alert(&p, a);
    return exec_one(s, Q_ALERT_UPDATE, &p, DTM_ENOTFOUND);
}

static int one_alert(struct dtm_store *s, enum qid id, const struct par *p, struct dtm_alert *out)
{
    PGresult *r;
    int rc = run(s, id, p, &r);
    if (rc)
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc)
        read_alert(r, 0, out);
    PQclear(r);
    return rc;
}

static int s_alert_get(struct dtm_store *s, int64_t id, struct dtm_alert *out)
{
    struct par p = {0};
    p_i64(&p, id);
    return one_alert(s, Q_ALERT_GET, &p, out);
}

static int s_alert_open(struct dtm_store *s, const char *rule, const char *key,
                        struct dtm_alert *out)
{
    struct par p = {0};
    p_text(&p, rule);
    p_text(&p, key);
    return one_alert(s, Q_ALERT_OPEN, &p, out);
}

static int s_alert_last_resolved(struct dtm_store *s, const char *rule, const char *key,
                                 int64_t *at)
{
    struct par p = {0};
    p_text(&p, rule);
    p_text(&p, key);
    *at = 0;
    return run_i64(s, Q_ALERT_LAST_RESOLVED, &p, at);
}

static int s_alert_list(struct dtm_store *s, const struct dtm_alert_filter *f, int64_t before_id,
                        size_t limit, dtm_alert_cb cb, void *ctx)
{
    struct par p = {0};
    struct dtm_alert *a;
    PGresult *r;
    int rc;
    p_i64(&p, before_id > 0 ? before_id : INT64_MAX);
    if (f && f->state)
        p_text(&p, f->state);
    else
        p_null(&p);
    if (f && f->severity)
        p_text(&p, f->severity);
    else
        p_null(&p);
    if (f && f->rule)
        p_text(&p, f->rule);
    else
        p_null(&p);
    p_i64(&p, f ? f->from : INT64_MIN);
    p_i64(&p, f ? f->to : INT64_MAX);
    if (limit)
        p_i64(&p, (int64_t)DTM_MIN(limit, (size_t)INT64_MAX));
    else
        p_null(&p);
    if (!(a = malloc(sizeof(*a))))
        return DTM_ENOMEM;
    if ((rc = run(s, Q_ALERT_LIST, &p, &r))) {
        free(a);
        return rc;
    }
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        read_alert(r, i, a);
        rc = cb(ctx, a);
    }
    PQclear(r);
    free(a);
    return rc;
}

static int s_alert_delivery_put(struct dtm_store *s, const struct dtm_alert_delivery *d)
{
    struct par p = {0};
    p_i64(&p, d->alert_id);
    p_text(&p, d->channel);
    p_text(&p, d->status);
    p_i64(&p, d->attempts);
    p_text(&p, d->error);
    p_i64(&p, d->updated_at);
    p_text(&p, d->event[0] ? d->event : "fired");
    return exec0(s, Q_ALERT_DELIVERY_PUT, &p);
}

static int deliveries(struct dtm_store *s, enum qid id, const struct par *p,
                      dtm_alert_delivery_cb cb, void *ctx)
{
    PGresult *r;
    int rc = run(s, id, p, &r);
    if (rc)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_alert_delivery d;
        memset(&d, 0, sizeof(d));
        d.alert_id = col_i64(r, i, 0);
        col_text(r, i, 1, d.channel, sizeof(d.channel));
        col_text(r, i, 2, d.status, sizeof(d.status));
        d.attempts = col_i64(r, i, 3);
        col_text(r, i, 4, d.error, sizeof(d.error));
        d.updated_at = col_i64(r, i, 5);
        col_text(r, i, 6, d.event, sizeof(d.event));
        rc = cb(ctx, &d);
    }
    PQclear(r);
    return rc;
}

static int s_alert_deliveries(struct dtm_store *s, int64_t alert_id, dtm_alert_delivery_cb cb,
                              void *ctx)
{
    struct par p = {0};
    p_i64(&p, alert_id < 0 ? 0 : alert_id);
    return deliveries(s, Q_ALERT_DELIVERIES, &p, cb, ctx);
}

static int s_alert_deliveries_pending(struct dtm_store *s, dtm_alert_delivery_cb cb, void *ctx)
{
    return deliveries(s, Q_ALERT_PENDING, NULL, cb, ctx);
}

static void read_vuln(const PGresult *r, int i, struct dtm_vuln *v)
{
    memset(v, 0, sizeof(*v));
    v->id = col_i64(r, i, 0);
    col_text(r, i, 1, v->title, sizeof(v->title));
    col_text(r, i, 2, v->severity, sizeof(v->severity));
    col_text(r, i, 3, v->found, sizeof(v->found));
    col_text(r, i, 4, v->remediation_plan, sizeof(v->remediation_plan));
    col_text(r, i, 5, v->deadline, sizeof(v->deadline));
    col_text(r, i, 6, v->status, sizeof(v->status));
    col_text(r, i, 7, v->created_by, sizeof(v->created_by));
    v->created_at = col_i64(r, i, 8);
    v->updated_at = col_i64(r, i, 9);
}

static void bind_vuln(struct par *p, const struct dtm_vuln *v)
{
    p_text(p, v->title);
    p_text(p, v->severity);
    p_text(p, v->found);
    p_text(p, v->remediation_plan);
    p_text(p, v->deadline);
    p_text(p, v->status);
    p_i64(p, v->updated_at);
}

static int s_vuln_insert(struct dtm_store *s, struct dtm_vuln *v)
{
    struct par p = {0};
    bind_vuln(&p, v);
    p_text(&p, v->created_by);
    p_i64(&p, v->created_at);
    return run_i64(s, Q_VULN_INSERT, &p, &v->id);
}

static int s_vuln_update(struct dtm_store *s, const struct dtm_vuln *v)
{
    struct par p = {0};
    p_i64(&p, v->id);
    bind_vuln(&p, v);
    return exec_one(s, Q_VULN_UPDATE, &p, DTM_ENOTFOUND);
}

static int s_vuln_get(struct dtm_store *s, int64_t id, struct dtm_vuln *out)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_i64(&p, id);
    if ((rc = run(s, Q_VULN_GET, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc)
        read_vuln(r, 0, out);
    PQclear(r);
    return rc;
}

static int s_vuln_list(struct dtm_store *s, dtm_vuln_cb cb, void *ctx)
{
    struct dtm_vuln *v;
    PGresult *r;
    int rc;
    if (!(v = malloc(sizeof(*v))))
        return DTM_ENOMEM;
    if ((rc = run(s, Q_VULN_LIST, NULL, &r))) {
        free(v);
        return rc;
    }
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        read_vuln(r, i, v);
        rc = cb(ctx, v);
    }
    PQclear(r);
    free(v);
    return rc;
}

/* ---- backups (issue 10): the record of the runs; the copy itself is store/snapshot.c's */

static int s_backup_run_add(struct dtm_store *s, const struct dtm_backup_run *b)
{
    struct par p = {0};
    p_i64(&p, b->at);
    p_text(&p, b->path);
    p_text(&p, b->status);
    p_text(&p, b->error);
    p_i64(&p, b->bytes);
    p_i64(&p, b->records);
    p_i64(&p, b->ms);
    return exec0(s, Q_BACKUP_ADD, &p);
}

static int s_backup_run_last(struct dtm_store *s, bool ok_only, struct dtm_backup_run *out)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_i64(&p, ok_only ? 1 : 0);
    if ((rc = run(s, Q_BACKUP_LAST, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc) {
        memset(out, 0, sizeof(*out));
        out->at = col_i64(r, 0, 0);
        col_text(r, 0, 1, out->path, sizeof(out->path));
        col_text(r, 0, 2, out->status, sizeof(out->status));
        col_text(r, 0, 3, out->error, sizeof(out->error));
        out->bytes = col_i64(r, 0, 4);
        out->records = col_i64(r, 0, 5);
        out->ms = col_i64(r, 0, 6);
    }
    PQclear(r);
    return rc;
}

/* ---- kept reports (report/; SQLite migration 22) */

static int s_report_claim(struct dtm_store *s, const char *kind, const char *period,
                          const char *lang, int64_t now, int64_t stale_before)
{
    struct par p = {0};
    int n = 0, rc;
    p_text(&p, kind);
    p_text(&p, period);
    p_text(&p, lang);
    p_i64(&p, now);
    p_i64(&p, stale_before);
    if ((rc = exec_n(s, Q_REPORT_CLAIM, &p, &n)))
        return rc;
    return n > 0 ? DTM_OK : DTM_EEXIST;
}

static int s_report_put(struct dtm_store *s, const char *kind, const char *period, const char *lang,
                        int64_t generated_at, const char *doc, size_t n)
{
    struct par p = {0};
    p_text(&p, kind);
    p_text(&p, period);
    p_text(&p, lang);
    p_i64(&p, generated_at);
    p_i64(&p, (int64_t)n);
    p_blob(&p, doc, n);
    return exec0(s, Q_REPORT_PUT, &p);
}

static void read_report(const PGresult *r, int i, struct dtm_report_row *row)
{
    memset(row, 0, sizeof(*row));
    col_text(r, i, 0, row->kind, sizeof(row->kind));
    col_text(r, i, 1, row->period, sizeof(row->period));
    col_text(r, i, 2, row->lang, sizeof(row->lang));
    col_text(r, i, 3, row->status, sizeof(row->status));
    row->claimed_at = col_i64(r, i, 4);
    row->generated_at = col_i64(r, i, 5);
    row->size = col_i64(r, i, 6);
}

static int s_report_get(struct dtm_store *s, const char *kind, const char *period, const char *lang,
                        struct dtm_report_row *row, struct dtm_buf *doc)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, kind);
    p_text(&p, period);
    p_text(&p, lang);
    if ((rc = run(s, Q_REPORT_GET, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc) {
        read_report(r, 0, row);
        if (doc)
            rc = dtm_buf_add(doc, PQgetvalue(r, 0, 7), (size_t)PQgetlength(r, 0, 7));
    }
    PQclear(r);
    return rc;
}

static int s_report_list(struct dtm_store *s, dtm_report_cb cb, void *ctx)
{
    PGresult *r;
    struct dtm_report_row row;
    int rc = run(s, Q_REPORT_LIST, NULL, &r);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == DTM_OK; i++) {
        read_report(r, i, &row);
        rc = cb(ctx, &row);
    }
    PQclear(r);
    return rc;
}

static int s_report_purge(struct dtm_store *s, int64_t before)
{
    struct par p = {0};
    p_i64(&p, before);
    return exec0(s, Q_REPORT_PURGE, &p);
}

/* ---- data-quality counters (report/qcount.c; SQLite migration 23) */

static int s_quality_add(struct dtm_store *s, int64_t day, const char *system_code,
                         const char *dataset, const char *kind, const char *item, int64_t n)
{
    struct par p = {0};
    if (PG(s)->in_tx) /* the write path: sent with the commit (keep_quality) */
        return keep_quality(s, day, system_code, dataset, kind, item, n);
    p_i64(&p, day);
    p_text(&p, system_code);
    p_text(&p, dataset);
    p_text(&p, kind);
    p_text(&p, item);
    p_i64(&p, n);
    return exec0(s, Q_QUAL_ADD, &p);
}

static int s_quality_sum(struct dtm_store *s, int64_t day_from, int64_t day_to, dtm_quality_cb cb,
                         void *ctx)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_i64(&p, day_from);
    p_i64(&p, day_to);
    if ((rc = run(s, Q_QUAL_SUM, &p, &r)))
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == DTM_OK; i++) {
        char t[4][DTM_CODE_MAX * 2];
        for (int c = 0; c < 4; c++)
            col_text(r, i, c, t[c], sizeof(t[c]));
        rc = cb(ctx, t[0], t[1], t[2], t[3], col_i64(r, i, 4));
    }
    PQclear(r);
    return rc;
}

/* issue 8: the catalogue's quality summary (store.h catalog_summary) */
static int s_catalog_summary(struct dtm_store *s, int64_t since, dtm_catalog_cb cb, void *ctx)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_i64(&p, since);
    if ((rc = run(s, Q_CATALOG_SUM, &p, &r)))
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == DTM_OK; i++) {
        struct dtm_catalog_row row = {0};
        col_text(r, i, 0, row.dataset, sizeof(row.dataset));
        row.accepted = col_i64(r, i, 1);
        row.duplicates = col_i64(r, i, 2);
        row.updated = col_i64(r, i, 3);
        row.rejected = col_i64(r, i, 4);
        row.receipts = col_i64(r, i, 5);
        row.systems = col_i64(r, i, 6);
        row.last_received = col_i64(r, i, 7);
        rc = cb(ctx, &row);
    }
    PQclear(r);
    return rc;
}

/* ---- subscriptions (F3; share/, migration 19 of sqlite.c) */

static void read_sub(const PGresult *r, int i, struct dtm_subscription *u)
{
    size_t n;
    const void *b = col_blob(r, i, 8, &n);
    memset(u, 0, sizeof(*u));
    col_text(r, i, 0, u->id, sizeof(u->id));
    col_text(r, i, 1, u->system_code, sizeof(u->system_code));
    col_text(r, i, 2, u->dataset, sizeof(u->dataset));
    col_text(r, i, 3, u->where, sizeof(u->where));
    col_text(r, i, 4, u->metrics, sizeof(u->metrics));
    col_text(r, i, 5, u->group_by, sizeof(u->group_by));
    col_text(r, i, 6, u->interval, sizeof(u->interval));
    col_text(r, i, 7, u->url, sizeof(u->url));
    u->secret_len = DTM_MIN(n, sizeof(u->secret));
    if (u->secret_len)
        memcpy(u->secret, b, u->secret_len);
    u->created_at = col_i64(r, i, 9);
    u->next_bucket = col_i64(r, i, 10);
    u->attempts = col_i64(r, i, 11);
    u->next_attempt_at = col_i64(r, i, 12);
    col_text(r, i, 13, u->last_error, sizeof(u->last_error));
    u->delivered = col_i64(r, i, 14);
    u->last_delivered_at = col_i64(r, i, 15);
    col_text(r, i, 16, u->lease_owner, sizeof(u->lease_owner));
    u->lease_until = col_i64(r, i, 17);
}

static int s_subscription_put(struct dtm_store *s, const struct dtm_subscription *u)
{
    struct par p = {0};
    int n = 0, rc;
    p_text(&p, u->id);
    p_text(&p, u->system_code);
    p_text(&p, u->dataset);
    p_text(&p, u->where);
    p_text(&p, u->metrics);
    p_text(&p, u->group_by);
    p_text(&p, u->interval);
    p_text(&p, u->url);
    p_blob(&p, u->secret, u->secret_len);
    p_i64(&p, u->created_at);
    p_i64(&p, u->next_bucket);
    p_i64(&p, u->attempts);
    p_i64(&p, u->next_attempt_at);
    p_text(&p, u->last_error);
    p_i64(&p, u->delivered);
    p_i64(&p, u->last_delivered_at);
    p_text(&p, u->lease_owner);
    p_i64(&p, u->lease_until);
    if ((rc = exec_n(s, Q_SUB_PUT, &p, &n)))
        return rc;
    return n ? DTM_OK : DTM_EEXIST;
}

static int sub_rows(struct dtm_store *s, enum qid id, const struct par *p, bool one,
                    struct dtm_subscription *out, dtm_subscription_cb cb, void *ctx)
{
    struct dtm_subscription *u;
    PGresult *r;
    int rc;
    if ((rc = run(s, id, p, &r)))
        return rc;
    if (one) {
        rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
        if (!rc)
            read_sub(r, 0, out);
        PQclear(r);
        return rc;
    }
    if (!(u = malloc(sizeof(*u)))) {
        PQclear(r);
        return DTM_ENOMEM;
    }
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        read_sub(r, i, u);
        rc = cb(ctx, u);
    }
    PQclear(r);
    free(u);
    return rc;
}

static int s_subscription_get(struct dtm_store *s, const char *id, struct dtm_subscription *out)
{
    struct par p = {0};
    p_text(&p, id);
    return sub_rows(s, Q_SUB_GET, &p, true, out, NULL, NULL);
}

static int s_subscription_list(struct dtm_store *s, const char *system_code, dtm_subscription_cb cb,
                               void *ctx)
{
    struct par p = {0};
    p_text_opt(&p, system_code);
    return sub_rows(s, Q_SUB_LIST, &p, false, NULL, cb, ctx);
}

static int s_subscription_delete(struct dtm_store *s, const char *id, int64_t now)
{
    struct par p = {0};
    p_text(&p, id);
    p_i64(&p, now);
    return exec_one(s, Q_SUB_DEL, &p, DTM_ENOTFOUND);
}

/* READ COMMITTED: a second node's UPDATE waits for the first's and evaluates its WHERE again on
 * the row the first wrote, so only one of them takes a free lease. */
static int s_subscription_claim(struct dtm_store *s, const char *id, int64_t bucket,
                                const char *owner, int64_t now, int64_t until)
{
    struct par p = {0};
    p_text(&p, id);
    p_i64(&p, bucket);
    p_text(&p, owner);
    p_i64(&p, now);
    p_i64(&p, until);
    return exec_one(s, Q_SUB_CLAIM, &p, DTM_EBUSY);
}

static int s_subscription_done(struct dtm_store *s, const char *id, const char *owner,
                               int64_t bucket, bool ok, int64_t next_bucket,
                               int64_t next_attempt_at, const char *error, int64_t now)
{
    struct par p = {0};
    p_text(&p, id);
    p_text(&p, owner);
    p_i64(&p, bucket);
    p_i64(&p, ok ? next_bucket : next_attempt_at);
    if (ok)
        p_i64(&p, now);
    else
        p_text(&p, error ? error : "");
    return exec_one(s, ok ? Q_SUB_DONE_OK : Q_SUB_DONE_FAIL, &p, DTM_EBUSY);
}

static int s_subscription_delivery_add(struct dtm_store *s,
                                       const struct dtm_subscription_delivery *d)
{
    struct par p = {0};
    p_text(&p, d->subscription_id);
    p_i64(&p, d->bucket);
    p_i64(&p, d->attempt);
    p_i64(&p, d->status);
    p_i64(&p, d->ok ? 1 : 0);
    p_text(&p, d->error);
    p_i64(&p, d->at);
    p_i64(&p, d->ms);
    return exec0(s, Q_SUB_DELIVERY_ADD, &p);
}

static int s_subscription_deliveries(struct dtm_store *s, const char *id, int64_t after,
                                     size_t limit, dtm_subscription_delivery_cb cb, void *ctx)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, id);
    p_i64(&p, after);
    p_i64(&p, limit ? (int64_t)limit : INT64_MAX);
    if ((rc = run(s, Q_SUB_DELIVERIES, &p, &r)))
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_subscription_delivery d;
        memset(&d, 0, sizeof(d));
        d.seq = col_i64(r, i, 0);
        col_text(r, i, 1, d.subscription_id, sizeof(d.subscription_id));
        d.bucket = col_i64(r, i, 2);
        d.attempt = col_i64(r, i, 3);
        d.status = col_i64(r, i, 4);
        d.ok = col_i64(r, i, 5) != 0;
        col_text(r, i, 6, d.error, sizeof(d.error));
        d.at = col_i64(r, i, 7);
        d.ms = col_i64(r, i, 8);
        rc = cb(ctx, &d);
    }
    PQclear(r);
    return rc;
}

/* ---- the usual networks of systems (T4.1; alert/warn.c) */

static int s_warn_net_put(struct dtm_store *s, const struct dtm_warn_net *n)
{
    struct par p = {0};
    p_text(&p, n->system_code);
    p_blob(&p, n->network, sizeof(n->network));
    p_i64(&p, n->first_seen);
    p_i64(&p, n->last_seen);
    return exec0(s, Q_WNET_PUT, &p);
}

static int s_warn_net_list(struct dtm_store *s, int64_t since, dtm_warn_net_cb cb, void *ctx)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_i64(&p, since);
    if ((rc = run(s, Q_WNET_LIST, &p, &r)))
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_warn_net w = {0};
        size_t len;
        const void *b = col_blob(r, i, 1, &len);
        if (len != sizeof(w.network))
            continue;
        col_text(r, i, 0, w.system_code, sizeof(w.system_code));
        memcpy(w.network, b, sizeof(w.network));
        w.first_seen = col_i64(r, i, 2);
        w.last_seen = col_i64(r, i, 3);
        rc = cb(ctx, &w);
    }
    PQclear(r);
    return rc;
}

static int s_warn_net_purge(struct dtm_store *s, int64_t before)
{
    struct par p = {0};
    p_i64(&p, before);
    return exec0(s, Q_WNET_PURGE, &p);
}

/* ---- revoked OAuth access tokens (RFC 7009) and administrators' dataset definitions */

static int s_token_revoke(struct dtm_store *s, const char *jti, int64_t expires_at, int64_t now)
{
    struct par p = {0}, g = {0};
    int rc;
    p_text(&p, jti);
    p_i64(&p, expires_at);
    p_i64(&p, now);
    if ((rc = exec0(s, Q_TOK_REVOKE, &p)))
        return rc;
    p_i64(&g, now);
    return exec0(s, Q_TOK_PURGE, &g);
}

static int s_token_revoked(struct dtm_store *s, const char *jti)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, jti);
    if ((rc = run(s, Q_TOK_REVOKED, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    PQclear(r);
    return rc;
}

static int s_dataset_def_put(struct dtm_store *s, const char *code, const char *definition,
                             int64_t now, const char *by)
{
    struct par p = {0};
    p_text(&p, code);
    p_text(&p, definition);
    p_i64(&p, now);
    p_text(&p, by);
    return exec0(s, Q_DSDEF_PUT, &p);
}

static int s_dataset_def_list(struct dtm_store *s, dtm_dataset_def_cb cb, void *ctx)
{
    PGresult *r;
    int rc = run(s, Q_DSDEF_LIST, NULL, &r);
    if (rc)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++)
        rc = cb(ctx, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    PQclear(r);
    return rc;
}

/* ---- data keys and secrets (T4.2) */

static void read_datakey(const PGresult *r, int i, struct dtm_datakey_row *k)
{
    size_t n;
    const void *w = col_blob(r, i, 1, &n);
    memset(k, 0, sizeof(*k));
    k->id = col_i64(r, i, 0);
    k->wrapped_len = DTM_MIN(n, sizeof(k->wrapped));
    if (k->wrapped_len)
        memcpy(k->wrapped, w, k->wrapped_len);
    col_text(r, i, 2, k->kek_id, sizeof(k->kek_id));
    k->created_at = col_i64(r, i, 3);
    k->retired_at = col_i64(r, i, 4);
    k->sealed = col_i64(r, i, 5);
}

static int s_datakey_add(struct dtm_store *s, const struct dtm_datakey_row *k)
{
    struct par p = {0};
    p_i64(&p, k->id);
    p_blob(&p, k->wrapped, k->wrapped_len);
    p_text(&p, k->kek_id);
    p_i64(&p, k->created_at);
    p_opt(&p, k->retired_at, 0);
    p_i64(&p, k->sealed);
    return exec_one(s, Q_DK_ADD, &p, DTM_EEXIST);
}

static int s_datakey_get(struct dtm_store *s, int64_t id, struct dtm_datakey_row *out)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_i64(&p, id);
    if ((rc = run(s, Q_DK_GET, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc)
        read_datakey(r, 0, out);
    PQclear(r);
    return rc;
}

static int s_datakey_list(struct dtm_store *s, dtm_datakey_cb cb, void *ctx)
{
    PGresult *r;
    int rc = run(s, Q_DK_LIST, NULL, &r);
    if (rc)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++) {
        struct dtm_datakey_row k;
        read_datakey(r, i, &k);
        rc = cb(ctx, &k);
    }
    PQclear(r);
    return rc;
}

static int s_datakey_update(struct dtm_store *s, const struct dtm_datakey_row *k)
{
    struct par p = {0};
    p_i64(&p, k->id);
    p_blob(&p, k->wrapped, k->wrapped_len);
    p_text(&p, k->kek_id);
    p_opt(&p, k->retired_at, 0);
    p_i64(&p, k->sealed);
    return exec0(s, Q_DK_UPDATE, &p);
}

static int s_secret_put(struct dtm_store *s, const char *name, const uint8_t *sealed, size_t n,
                        int64_t now)
{
    struct par p = {0};
    p_text(&p, name);
    p_blob(&p, sealed, n);
    p_i64(&p, now);
    return exec0(s, Q_SECRET_PUT, &p);
}

static int s_secret_get(struct dtm_store *s, const char *name, struct dtm_buf *out)
{
    struct par p = {0};
    PGresult *r;
    int rc;
    p_text(&p, name);
    if ((rc = run(s, Q_SECRET_GET, &p, &r)))
        return rc;
    rc = PQntuples(r) ? DTM_OK : DTM_ENOTFOUND;
    if (!rc) {
        size_t n;
        const void *b = col_blob(r, 0, 0, &n);
        dtm_buf_reset(out);
        dtm_buf_add(out, b, n);
        rc = out->err ? DTM_ENOMEM : DTM_OK;
    }
    PQclear(r);
    return rc;
}

static int s_secret_list(struct dtm_store *s, dtm_secret_cb cb, void *ctx)
{
    PGresult *r;
    int rc = run(s, Q_SECRET_LIST, NULL, &r);
    if (rc)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n && !rc; i++)
        rc = cb(ctx, PQgetvalue(r, i, 0), col_i64(r, i, 1));
    PQclear(r);
    return rc;
}

static int s_secret_delete(struct dtm_store *s, const char *name)
{
    struct par p = {0};
    p_text(&p, name);
    return exec_one(s, Q_SECRET_DEL, &p, DTM_ENOTFOUND);
}

/* ---- rounds of periodic jobs (forecast/anomaly.c; SQLite migration 24) */

static int s_job_claim(struct dtm_store *s, const char *job, int64_t slot, const char *owner,
                       int64_t now, int64_t before)
{
    struct par p = {0}, q = {0};
    int n = 0, rc;
    p_text(&p, job);
    p_i64(&p, slot);
    p_text(&p, owner);
    p_i64(&p, now);
    if ((rc = exec_n(s, Q_JOB_CLAIM, &p, &n)))
        return rc;
    p_text(&q, job);
    p_i64(&q, before);
    if ((rc = exec0(s, Q_JOB_PURGE, &q)))
        return rc;
    return n > 0 ? DTM_OK : DTM_EEXIST;
}

/* ---- batches claimed by one node (issue 9 item 3): a session advisory lock on (LOCK_BATCH,
 * hashtext(id)); two ids of one hash are run one after the other, never together */

#define LOCK_BATCH 0x44544d10

static int s_batch_claim(struct dtm_store *s, const char *id)
{
    struct pg_store *q = PG(s);
    char key[16];
    const char *v[2] = {key, id};
    PGresult *r;
    int rc = DTM_ESTORE;
    snprintf(key, sizeof(key), "%d", LOCK_BATCH);
    if (PQstatus(q->conn) != CONNECTION_OK && !q->in_tx)
        reconnect(s);
    r = PQexecParams(q->conn, "SELECT pg_try_advisory_lock($1::int, hashtext($2))", 2, NULL, v,
                     NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        rc = strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? DTM_OK : DTM_EBUSY;
    else
        log_error(s, "batch_claim", PQerrorMessage(q->conn));
    PQclear(r);
    return rc;
}

static void s_batch_release(struct dtm_store *s, const char *id)
{
    struct pg_store *q = PG(s);
    char key[16];
    const char *v[2] = {key, id};
    snprintf(key, sizeof(key), "%d", LOCK_BATCH);
    if (PQstatus(q->conn) == CONNECTION_OK) /* else the lock went with the connection */
        PQclear(PQexecParams(q->conn, "SELECT pg_advisory_unlock($1::int, hashtext($2))", 2, NULL,
                             v, NULL, NULL, 0));
}

static const struct dtm_store_ops pg_ops = {
    .name = "postgresql",
    .close = s_close,
    .migrate = s_migrate,
    .ready = s_ready,
    .begin = s_begin,
    .commit = s_commit,
    .rollback = s_rollback,
    .system_add = s_system_add,
    .system_get = s_system_get,
    .system_list = s_system_list,
    .system_touch = s_system_touch,
    .system_set_tier = s_system_set_tier,
    .probe_set_url = s_probe_set_url,
    .probe_list = s_probe_list,
    .probe_put = s_probe_put,
    .status_put = s_status_put,
    .status_list = s_status_list,
    .key_add = s_key_add,
    .key_find = s_key_find,
    .key_expire_all = s_key_expire_all,
    .key_revoke = s_key_revoke,
    .client_add = s_client_add,
    .client_get = s_client_get,
    .client_set = s_client_set,
    .key_list = s_key_list,
    .signing_key_add = s_signing_key_add,
    .signing_key_retire = s_signing_key_retire,
    .signing_key_list = s_signing_key_list,
    .user_add = s_user_add,
    .user_get = s_user_get,
    .user_list = s_user_list,
    .user_update = s_user_update,
    .user_delete = s_user_delete,
    .user_mfa_step = s_user_mfa_step,
    .session_put = s_session_put,
    .session_get = s_session_get,
    .session_touch = s_session_touch,
    .session_delete = s_session_delete,
    .session_delete_user = s_session_delete_user,
    .session_purge = s_session_purge,
    .recovery_set = s_recovery_set,
    .recovery_use = s_recovery_use,
    .receipt_next_seq = s_receipt_next_seq,
    .receipt_put = s_receipt_put,
    .record_put = s_record_put,
    .record_put_many = s_record_put_many,
    .receipt_get = s_receipt_get,
    .receipt_records = s_receipt_records,
    .record_get = s_record_get,
    .idem_get = s_idem_get,
    .idem_put = s_idem_put,
    .idem_purge = s_idem_purge,
    .record_scan = s_record_scan,
    .record_scan_table = s_record_scan_table,
    .record_scan_part = s_record_scan_part,
    .record_id_split = s_record_id_split,
    .reopen = s_reopen,
    .batch_put = s_batch_put,
    .batch_update = s_batch_update,
    .batch_get = s_batch_get,
    .batch_list = s_batch_list,
    .batch_pending = s_batch_pending,
    .batch_error_put = s_batch_error_put,
    .batch_errors = s_batch_errors,
    .maintain = s_maintain,
    .tune_writer = s_tune_writer,
    .set_durable = s_set_durable,
    .datakey_add = s_datakey_add,
    .datakey_get = s_datakey_get,
    .datakey_list = s_datakey_list,
    .datakey_update = s_datakey_update,
    .secret_put = s_secret_put,
    .secret_get = s_secret_get,
    .secret_list = s_secret_list,
    .secret_delete = s_secret_delete,
    .cube_id = s_cube_id,
    .cube_apply = s_cube_apply,
    .cube_scan = s_cube_scan,
    .cube_reset = s_cube_reset,
    .cube_purge = s_cube_purge,
    .cube_applied = s_cube_applied,
    .cube_begin = s_cube_begin,
    .cube_gap_any = s_cube_gap_any,
    .cube_check = s_cube_check,
    .cube_invalidate = s_cube_invalidate,
    .grant_put = s_grant_put,
    .grant_delete = s_grant_delete,
    .grant_check = s_grant_check,
    .grant_list = s_grant_list,
    .record_page = s_record_page,
    .record_purge = s_record_purge,
    .audit_append = s_audit_append,
    .audit_head = s_audit_head,
    .audit_list = s_audit_list,
    .alert_insert = s_alert_insert,
    .alert_update = s_alert_update,
    .alert_get = s_alert_get,
    .alert_open = s_alert_open,
    .alert_last_resolved = s_alert_last_resolved,
    .alert_list = s_alert_list,
    .alert_delivery_put = s_alert_delivery_put,
    .alert_deliveries = s_alert_deliveries,
    .alert_deliveries_pending = s_alert_deliveries_pending,
    .vuln_insert = s_vuln_insert,
    .vuln_update = s_vuln_update,
    .vuln_get = s_vuln_get,
    .vuln_list = s_vuln_list,
    .backup_run_add = s_backup_run_add,
    .backup_run_last = s_backup_run_last,
    .subscription_put = s_subscription_put,
    .subscription_get = s_subscription_get,
    .subscription_list = s_subscription_list,
    .subscription_delete = s_subscription_delete,
    .subscription_claim = s_subscription_claim,
    .subscription_done = s_subscription_done,
    .subscription_delivery_add = s_subscription_delivery_add,
    .subscription_deliveries = s_subscription_deliveries,
    .quality_add = s_quality_add,
    .quality_sum = s_quality_sum,
    .catalog_summary = s_catalog_summary,
    .job_claim = s_job_claim,
    .batch_claim = s_batch_claim,
    .batch_release = s_batch_release,
    .report_claim = s_report_claim,
    .report_put = s_report_put,
    .report_get = s_report_get,
    .report_list = s_report_list,
    .report_purge = s_report_purge,
    .warn_net_put = s_warn_net_put,
    .warn_net_list = s_warn_net_list,
    .warn_net_purge = s_warn_net_purge,
    .token_revoke = s_token_revoke,
    .token_revoked = s_token_revoked,
    .dataset_def_put = s_dataset_def_put,
    .dataset_def_list = s_dataset_def_list,
};

/* Every member of pg_ops after name is a function pointer: one left NULL is an operation added
 * to store.h and not ported here yet. Opening then fails with its position, instead of a crash
 * when it is first called. */
static int unported_op(size_t *index)
{
    typedef int (*any_fn)(void);
    const char *base = (const char *)&pg_ops;
    size_t first = offsetof(struct dtm_store_ops, close);
    for (size_t off = first; off + sizeof(any_fn) <= sizeof(pg_ops); off += sizeof(any_fn)) {
        any_fn f;
        memcpy(&f, base + off, sizeof(f));
        if (!f) {
            *index = (off - first) / sizeof(any_fn) + 1;
            return 1;
        }
    }
    return 0;
}

/* libpq notices (e.g. "relation already exists, skipping") go to the debug log, not stderr */
static void on_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

int dtm_store_pg_open(const char *conninfo, const char *password, struct dtm_store **out, char *err,
                      size_t errsz)
{
    struct pg_store *q;
    size_t missing;
    /* the DSN is expanded as dbname (expand_dbname); a password from the file comes after it
     * and wins; without one libpq uses the DSN's, PGPASSWORD or ~/.pgpass. connect_timeout
     * comes before the DSN: a DSN's own value wins */
    /* connect_timeout bounds a connection attempt to a host that does not answer (an outage:
     * readyz and requests wait at most that long, then 503); keepalives and tcp_user_timeout
     * find a connection whose peer vanished (a network partition, a host that died) within
     * about 30 s instead of the kernel's two hours, so no request hangs on it longer. All
     * before the DSN: its own values win. */
    const char *keys[] = {"connect_timeout",  "keepalives",
                          "keepalives_idle",  "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout",
                          "dbname",           "fallback_application_name",
                          "password",         NULL};
    const char *vals[] = {"5", "1", "10", "5", "3", "30000", conninfo, "dtm", password, NULL};
    const char *host, *port;
    if (unported_op(&missing)) {
        snprintf(err, errsz,
                 "the PostgreSQL backend does not implement store operation %zu of struct "
                 "dtm_store_ops yet (store.h gained it after store/pg.c was written)",
                 missing);
        dtm_logf(DTM_LOG_ERROR, "PostgreSQL backend: a store operation is not ported",
                 "\"operation_index\":%zu", missing);
        return DTM_ESTORE;
    }
    q = calloc(1, sizeof(*q));
    if (!q || !(q->conninfo = strdup(conninfo)) ||
        (password && !(q->password = strdup(password)))) {
        if (q)
            free(q->conninfo);
        free(q);
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    q->super.ops = &pg_ops;
    dtm_buf_init(&q->plain, 64 << 20);
    dtm_buf_init(&q->agg, 1 << 20);
    if (!password || !*password)
        keys[8] = vals[8] = NULL;
    q->conn = PQconnectdbParams(keys, vals, 1);
    host = q->conn ? PQhost(q->conn) : NULL;
    port = q->conn ? PQport(q->conn) : NULL;
    snprintf(q->where, sizeof(q->where), "%s:%s", host && *host ? host : "(default)",
             port && *port ? port : "5432");
    if (!q->conn || PQstatus(q->conn) != CONNECTION_OK) {
        char m[384];
        size_t n;
        /* libpq's message names the host and the reason, never the password */
        snprintf(m, sizeof(m), "%s", q->conn ? PQerrorMessage(q->conn) : "out of memory");
        n = strlen(m);
        while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
            m[--n] = '\0';
        snprintf(err, errsz, "cannot connect to PostgreSQL at %s: %s", q->where, m);
        s_close(&q->super);
        return DTM_ESTORE;
    }
    PQsetNoticeProcessor(q->conn, on_notice, NULL);
    if (session_setup(q->conn) != DTM_OK) {
        snprintf(err, errsz, "cannot configure the PostgreSQL session at %s: %s", q->where,
                 PQerrorMessage(q->conn));
        s_close(&q->super);
        return DTM_ESTORE;
    }
    *out = &q->super;
    return DTM_OK;
}
