/* store/sqlite.c — the embedded SQLite backend: WAL mode, synchronous=FULL (a commit is on disk
 * when it returns, CONTRACT §5), prepared statements cached per connection, versioned schema
 * migrations. */
#include "store/store.h"
#include "gate/gate.h"
#include "stats/stats.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum stmt_id {
    Q_BEGIN,
    Q_LOCK_MAIN,
    Q_LOCK_CUBES,
    Q_COMMIT,
    Q_ROLLBACK,
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
    Q_WNET_PUT,
    Q_TOK_REVOKE,
    Q_DSDEF_PUT,
    Q_DSDEF_LIST,
    Q_TOK_REVOKED,
    Q_TOK_PURGE,
    Q_WNET_LIST,
    Q_WNET_PURGE,
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
    Q_REC_SCAN_TABLE_RANGE,
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
    Q_CUBE_APPLY,
    Q_CUBE_SCAN,
    Q_CUBE_CLEAR,
    Q_CUBE_MARK,
    Q_CUBE_LIST,
    Q_CUBE_APPLIED,
    Q_CUBE_LAG,
    Q_CUBE_ALL_INCOMPLETE,
    Q_CUBE_GAP_ADD,
    Q_CUBE_GAP_ANY,
    Q_CUBE_GAP_CLEAR,
    Q_CUBE_GAP_PURGE,
    Q_CUBE_SEEK,
    Q_CUBE_PURGE,
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
    Q_QUAL_ADD,
    Q_QUAL_SUM,
    Q_CATALOG_SUM, /* issue 8: api/catalog.c */
    Q_COUNT
};

/* The columns of a stored version, in the order version_rows() reads them (a current version
 * has no replaced_at; the key hash is the associated data of sealed content, T4.2). */
#define VERSION_COLS "revision,receipt_seq,received_at,0,content,key_hash"

/* record_page: a current record, its position and the sender of its current version. The time
 * index (ds, event_time) gives the order; the receipt is found by its primary key. */
#define PAGE_COLS                                                                                  \
    "SELECT r.id,r.event_time,r.system_code,coalesce(c.system_code,''),r.content,r.key_hash "      \
    "FROM records r "                                                                              \
    "LEFT JOIN receipts c ON c.seq=r.receipt_seq "
#define PAGE_TIMED                                                                                 \
    "WHERE r.ds=?1 AND r.event_time>=?2 AND r.event_time<?3 AND (r.event_time>?4 OR r.id>?5)"
#define PAGE_TIMED_ORDER " ORDER BY r.event_time,r.id LIMIT ?6"
#define PAGE_NOTIME "WHERE r.ds=?1 AND r.event_time IS NULL AND r.id>?5"
#define PAGE_NOTIME_ORDER " ORDER BY r.id LIMIT ?6"
/* record_purge: the oldest records of a dataset before a time, at most a limit (-1: all) */
#define PURGE_IDS                                                                                  \
    "SELECT id FROM records WHERE ds=?1 AND event_time<?2 ORDER BY event_time,id LIMIT ?3"

static const char *const sql[Q_COUNT] = {
    /* BEGIN IMMEDIATE would take the write lock of every attached file — the rollups' too, so
     * the record writer and the rollup thread would take turns. A deferred BEGIN and a write that
     * changes nothing take the one file's lock at once instead (the same guarantee as IMMEDIATE
     * for it: no "busy" later in the transaction). */
    [Q_BEGIN] = "BEGIN",
    [Q_LOCK_MAIN] = "DELETE FROM main.schema_version WHERE 0",
    [Q_LOCK_CUBES] = "DELETE FROM cubes.cube_state WHERE 0",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SYS_ADD] = "INSERT INTO systems(code,name,org,role,parent,masked,created_at,tier) "
                  "VALUES(?,?,?,?,?,?,?,?)",
    [Q_SYS_GET] = "SELECT code,name,org,role,parent,masked,created_at,last_seen,tier FROM systems "
                  "WHERE code=?",
    [Q_SYS_LIST] = "SELECT code,name,org,role,parent,masked,created_at,last_seen,tier FROM systems "
                   "ORDER BY code",
    [Q_SYS_TOUCH] = "UPDATE systems SET last_seen=? WHERE code=? AND "
                    "(last_seen IS NULL OR last_seen<?)",
    [Q_SYS_TIER] = "UPDATE systems SET tier=? WHERE code=?",
    [Q_PROBE_SET] = "UPDATE systems SET probe_url=? WHERE code=?",
    [Q_PROBE_LIST] = "SELECT code,probe_url,last_probe_at,last_probe_ok,last_probe_ms,"
                     "last_probe_error FROM systems WHERE probe_url IS NOT NULL ORDER BY code",
    [Q_PROBE_PUT] = "UPDATE systems SET last_probe_at=?,last_probe_ok=?,last_probe_ms=?,"
                    "last_probe_error=? WHERE code=?",
    [Q_STATUS_END] = "UPDATE system_status SET until=? WHERE system_code=? AND until IS NULL",
    [Q_STATUS_ADD] = "INSERT INTO system_status(system_code,status,since) VALUES(?,?,?)",
    [Q_STATUS_LIST] = "SELECT system_code,status,since,until FROM system_status "
                      "WHERE system_code=? AND (until IS NULL OR until>?) ORDER BY since,id",
    [Q_STATUS_LIST_ALL] = "SELECT system_code,status,since,until FROM system_status "
                          "WHERE until IS NULL OR until>? ORDER BY system_code,since,id",
    [Q_KEY_ADD] = "INSERT INTO api_keys(id,system_code,hash,created_at) VALUES(?,?,?,?)",
    [Q_KEY_FIND] = "SELECT k.id,k.system_code,k.created_at,k.expires_at,k.revoked_at,"
                   "s.code,s.name,s.org,s.role,s.parent,s.masked,s.created_at,s.last_seen,s.tier "
                   "FROM api_keys k JOIN systems s ON s.code=k.system_code WHERE k.hash=?",
    [Q_KEY_EXPIRE] = "UPDATE api_keys SET expires_at=? WHERE system_code=? AND revoked_at IS NULL "
                     "AND (expires_at IS NULL OR expires_at>?)",
    [Q_KEY_REVOKE] = "UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
    [Q_CLIENT_ADD] = "INSERT INTO oauth_clients(client_id,system_code,secret_hash,created_at) "
                     "VALUES(?,?,?,?)",
    [Q_CLIENT_GET] = "SELECT client_id,system_code,secret_hash,created_at,revoked_at,generation "
                     "FROM oauth_clients WHERE client_id=?",
    [Q_DSDEF_PUT] = "INSERT OR REPLACE INTO dataset_defs(code,definition,updated_at,updated_by) "
                    "VALUES(?,?,?,?)",
    [Q_DSDEF_LIST] = "SELECT code,definition FROM dataset_defs ORDER BY code",
    [Q_TOK_REVOKE] =
        "INSERT OR IGNORE INTO revoked_tokens(jti,expires_at,revoked_at) VALUES(?,?,?)",
    [Q_TOK_REVOKED] = "SELECT 1 FROM revoked_tokens WHERE jti=?",
    [Q_TOK_PURGE] = "DELETE FROM revoked_tokens WHERE expires_at<?",
    [Q_WNET_PUT] = "INSERT INTO warn_networks(system_code,network,first_seen,last_seen) "
                   "VALUES(?1,?2,?3,?4) ON CONFLICT(system_code,network) DO UPDATE SET "
                   "first_seen=min(first_seen,excluded.first_seen),"
                   "last_seen=max(last_seen,excluded.last_seen)",
    [Q_WNET_LIST] = "SELECT system_code,network,first_seen,last_seen FROM warn_networks "
                    "WHERE last_seen>=? ORDER BY system_code,last_seen",
    [Q_WNET_PURGE] = "DELETE FROM warn_networks WHERE last_seen<?",
    [Q_CLIENT_SET] = "UPDATE oauth_clients SET secret_hash=?2,revoked_at=?3,generation=?4 "
                     "WHERE client_id=?1",
    [Q_KEY_LIST] = "SELECT id,system_code,created_at,coalesce(expires_at,0),coalesce(revoked_at,0) "
                   "FROM api_keys WHERE system_code=? ORDER BY created_at DESC,id",
    [Q_SIGNKEY_ADD] = "INSERT INTO signing_keys(kid,alg,public_jwk,public_pem,sealed,created_at) "
                      "VALUES(?,?,?,?,?,?)",
    [Q_SIGNKEY_RETIRE] = "UPDATE signing_keys SET retired_at=? WHERE retired_at IS NULL",
    [Q_SIGNKEY_LIST] = "SELECT kid,alg,public_jwk,public_pem,sealed,created_at,retired_at "
                       "FROM signing_keys WHERE retired_at IS NULL OR retired_at>? "
                       "ORDER BY created_at DESC,kid",
    [Q_USER_ADD] = "INSERT INTO users(username,role,password_hash,created_at) VALUES(?,?,?,?)",
#define USER_COLS                                                                                  \
    "SELECT username,role,password_hash,created_at,coalesce(password_changed_at,0),disabled,"      \
    "mfa_enabled,mfa_last_step,mfa_secret FROM users"
    [Q_USER_GET] = USER_COLS " WHERE username=?",
    [Q_USER_LIST] = USER_COLS " ORDER BY username",
    /* a new TOTP seed starts its replay guard afresh */
    [Q_USER_UPDATE] = "UPDATE users SET role=?2,password_hash=?3,password_changed_at=?4,"
                      "disabled=?5,mfa_enabled=?6,mfa_secret=?7,mfa_last_step=CASE WHEN "
                      "mfa_secret IS ?7 THEN mfa_last_step ELSE 0 END WHERE username=?1",
    [Q_USER_DEL] = "DELETE FROM users WHERE username=?",
    [Q_USER_DEL_SESSIONS] = "DELETE FROM sessions WHERE username=?",
    [Q_USER_DEL_RECOVERY] = "DELETE FROM mfa_recovery WHERE username=?",
    [Q_USER_MFA_STEP] = "UPDATE users SET mfa_last_step=?2 WHERE username=?1 AND mfa_last_step<?2",
    [Q_SESS_PUT] = "INSERT INTO sessions(id_hash,username,csrf,created_at,last_seen,expires_at,"
                   "source_ip) VALUES(?,?,?,?,?,?,?)",
    [Q_SESS_GET] = "SELECT username,csrf,created_at,last_seen,expires_at,source_ip FROM sessions "
                   "WHERE id_hash=?",
    [Q_SESS_TOUCH] = "UPDATE sessions SET last_seen=?2 WHERE id_hash=?1 AND last_seen<?2",
    [Q_SESS_DEL] = "DELETE FROM sessions WHERE id_hash=?",
    [Q_SESS_DEL_USER] = "DELETE FROM sessions WHERE username=?1 AND (?2 IS NULL OR id_hash<>?2)",
    [Q_SESS_PURGE] = "DELETE FROM sessions WHERE expires_at<=?1 OR last_seen<?2",
    [Q_RECOV_ADD] = "INSERT OR IGNORE INTO mfa_recovery(username,hash) VALUES(?,?)",
    [Q_RECOV_USE] = "UPDATE mfa_recovery SET used_at=?3 WHERE username=?1 AND hash=?2 AND "
                    "used_at IS NULL",
    [Q_RCPT_NEXT] = "SELECT coalesce(max(seq),0)+1 FROM receipts",
    [Q_RCPT_PUT] = "INSERT INTO receipts(seq,tag,dataset,system_code,request_id,received_at,"
                   "accepted,duplicates,updated,rejected,first_id,last_id) "
                   "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
    [Q_RCPT_GET] = "SELECT seq,tag,dataset,system_code,request_id,received_at,accepted,duplicates,"
                   "updated,rejected FROM receipts WHERE seq=?",
    /* the receipt's new records are a range of ids; the ones it updated are found through their
     * history (no index on records.receipt_seq: it cost 15 % of every insert) */
    [Q_RCPT_RECORDS] = "SELECT " VERSION_COLS ",id FROM records "
                       "WHERE receipt_seq=?1 AND id BETWEEN "
                       "(SELECT first_id FROM receipts WHERE seq=?1) AND "
                       "(SELECT last_id FROM receipts WHERE seq=?1) "
                       "UNION ALL "
                       "SELECT " VERSION_COLS ",id FROM records "
                       "WHERE receipt_seq=?1 AND id IN "
                       "(SELECT record_id FROM record_history WHERE replaced_by=?1) AND id NOT "
                       "BETWEEN coalesce((SELECT first_id FROM receipts WHERE seq=?1),0) AND "
                       "coalesce((SELECT last_id FROM receipts WHERE seq=?1),-1) "
                       "ORDER BY 7 LIMIT ?2",
    [Q_REC_INSERT] = "INSERT INTO records(ds,key_hash,system_code,event_time,revision,"
                     "receipt_seq,content_hash,content,received_at) VALUES(?,?,?,?,1,?,?,?,?) "
                     "ON CONFLICT(ds,key_hash) DO NOTHING",
    [Q_REC_FIND] = "SELECT id,content_hash,revision,receipt_seq,received_at,content FROM records"
                   " WHERE ds=? AND key_hash=?",
    [Q_REC_HISTORY] = "INSERT INTO record_history(record_id,revision,receipt_seq,content_hash,"
                      "content,received_at,replaced_at,replaced_by) SELECT id,revision,"
                      "receipt_seq,content_hash,content,received_at,?,? FROM records WHERE id=?",
    [Q_REC_UPDATE] = "UPDATE records SET revision=revision+1,receipt_seq=?,content_hash=?,"
                     "content=?,event_time=?,system_code=?,received_at=? WHERE id=?",
    [Q_REC_GET] = "SELECT id,revision,receipt_seq,received_at,content FROM records "
                  "WHERE ds=? AND key_hash=?",
    [Q_REC_GET_HISTORY] = "SELECT revision,receipt_seq,received_at,replaced_at,content,?2 FROM "
                          "record_history WHERE record_id=?1 ORDER BY revision DESC",
    [Q_IDEM_GET] = "SELECT request_hash,status,body,created_at FROM idempotency "
                   "WHERE system_code=? AND key=? AND created_at>=?",
    [Q_IDEM_PUT] = "INSERT INTO idempotency(system_code,key,request_hash,status,body,created_at) "
                   "VALUES(?,?,?,?,?,?) ON CONFLICT(system_code,key) DO UPDATE SET "
                   "request_hash=excluded.request_hash,status=excluded.status,"
                   "body=excluded.body,created_at=excluded.created_at",
    [Q_IDEM_PURGE] = "DELETE FROM idempotency WHERE created_at<?",
    [Q_DK_ADD] = "INSERT INTO data_keys(id,wrapped,kek_id,created_at,retired_at,sealed) "
                 "VALUES(?,?,?,?,?,?)",
    [Q_DK_GET] = "SELECT id,wrapped,kek_id,created_at,coalesce(retired_at,0),sealed FROM data_keys "
                 "WHERE id=?",
    [Q_DK_LIST] = "SELECT id,wrapped,kek_id,created_at,coalesce(retired_at,0),sealed FROM "
                  "data_keys ORDER BY id",
    [Q_DK_UPDATE] = "UPDATE data_keys SET wrapped=?2,kek_id=?3,retired_at=?4,sealed=?5 WHERE id=?1",
    [Q_SECRET_PUT] = "INSERT OR REPLACE INTO secrets(name,sealed,updated_at) VALUES(?,?,?)",
    [Q_SECRET_GET] = "SELECT sealed FROM secrets WHERE name=?",
    [Q_SECRET_LIST] = "SELECT name,updated_at FROM secrets ORDER BY name",
    [Q_SECRET_DEL] = "DELETE FROM secrets WHERE name=?",
    [Q_REC_SCAN] = "SELECT " VERSION_COLS " FROM records "
                   "WHERE ds=? AND event_time>=? AND event_time<? ORDER BY event_time,id",
    [Q_REC_SCAN_ALL] = "SELECT " VERSION_COLS " FROM records "
                       "WHERE ds=? ORDER BY event_time IS NULL,event_time,id",
    /* the whole table in rowid order: sequential pages, where the time index would visit the
     * table at random (a statistics scan of 1 M records: most of its time) */
    [Q_REC_SCAN_TABLE] = "SELECT " VERSION_COLS " FROM records "
                         "NOT INDEXED WHERE ds=?",
    [Q_REC_SCAN_TABLE_RANGE] = "SELECT " VERSION_COLS " FROM records NOT INDEXED "
                               "WHERE ds=? AND event_time>=? AND event_time<?",
    [Q_REC_ID_RANGE] = "SELECT min(id),max(id) FROM records",
    /* a range of the rowid (the table's own order), filtered; no index */
    [Q_REC_SCAN_PART] = "SELECT " VERSION_COLS " FROM records NOT INDEXED "
                        "WHERE id>=? AND id<? AND ds=? AND event_time>=? AND event_time<?",
    [Q_REC_SCAN_PART_ALL] = "SELECT " VERSION_COLS " FROM records NOT INDEXED "
                            "WHERE id>=? AND id<? AND ds=?",
    [Q_DS_GET] = "SELECT id FROM dataset_ids WHERE code=?",
    [Q_DS_ADD] = "INSERT INTO dataset_ids(code) VALUES(?)",
#define BATCH_COLS                                                                                 \
    "id,system_code,dataset,format,origin,status,priority,masked,source,bytes,byte_offset,"        \
    "next_row,total,accepted,duplicates,updated,rejected,nerrors,created_at,started_at,"           \
    "finished_at,error"
    [Q_BATCH_PUT] = "INSERT INTO batches(" BATCH_COLS ") "
                    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    [Q_BATCH_UPDATE] = "UPDATE batches SET system_code=?2,dataset=?3,format=?4,origin=?5,status=?6,"
                       "priority=?7,masked=?8,source=?9,bytes=?10,byte_offset=?11,next_row=?12,"
                       "total=?13,accepted=?14,duplicates=?15,updated=?16,rejected=?17,"
                       "nerrors=?18,created_at=?19,started_at=?20,finished_at=?21,error=?22 "
                       "WHERE id=?1",
    [Q_BATCH_GET] = "SELECT " BATCH_COLS " FROM batches WHERE id=?",
    [Q_BATCH_LIST] = "SELECT " BATCH_COLS " FROM batches WHERE system_code=? "
                     "ORDER BY created_at DESC,id DESC LIMIT ?",
    [Q_BATCH_LIST_ALL] = "SELECT " BATCH_COLS " FROM batches ORDER BY created_at DESC,id DESC "
                         "LIMIT ?",
    [Q_BATCH_PENDING] = "SELECT " BATCH_COLS " FROM batches WHERE status IN('queued','running') "
                        "AND origin=? ORDER BY status='running' DESC,priority DESC,created_at,id",
    [Q_BATCH_ERR_PUT] = "INSERT INTO batch_errors(batch_id,seq,row,line,field,code,arg,rule) "
                        "VALUES(?,?,?,?,?,?,?,?)",
    [Q_BATCH_ERRS] = "SELECT seq,row,line,field,code,arg,rule FROM batch_errors "
                     "WHERE batch_id=? AND seq>? ORDER BY seq LIMIT ?",
    [Q_CUBE_GET] = "SELECT id,complete FROM cubes.cube_ids WHERE ds=? AND dims=?",
    [Q_CUBE_ADD] = "INSERT INTO cubes.cube_ids(ds,dims,complete) VALUES(?,?,?)",
    [Q_DS_HAS_RECORDS] = "SELECT 1 FROM records WHERE ds=? LIMIT 1",
    [Q_CUBE_APPLY] = "INSERT INTO cubes.cube_rows(cube,grain,bucket,dims,n,agg) VALUES(?,?,?,?,?,?)"
                     " ON CONFLICT(cube,grain,bucket,dims) DO UPDATE SET n=n+excluded.n,"
                     " agg=dtm_agg_merge(agg,excluded.agg)",
    [Q_CUBE_SCAN] =
        "SELECT bucket,dims,n,agg FROM cubes.cube_rows WHERE cube=? AND grain=? AND bucket>=?"
        " AND bucket<? ORDER BY cube,grain,bucket,dims",
    [Q_CUBE_CLEAR] = "DELETE FROM cubes.cube_rows WHERE cube=?",
    [Q_CUBE_MARK] = "UPDATE cubes.cube_ids SET complete=? WHERE id=?",
    [Q_CUBE_LIST] = "SELECT id FROM cubes.cube_ids ORDER BY id",
    [Q_CUBE_APPLIED] = "INSERT INTO cubes.cube_state(k,v) VALUES('applied_seq',?1) "
                       "ON CONFLICT(k) DO UPDATE SET v=max(v,excluded.v)",
    /* the rollups miss records when the last receipt is past the last applied delta */
    [Q_CUBE_LAG] = "SELECT coalesce((SELECT max(seq) FROM receipts),0),"
                   "coalesce((SELECT v FROM cubes.cube_state WHERE k='applied_seq'),0)",
    [Q_CUBE_ALL_INCOMPLETE] = "UPDATE cubes.cube_ids SET complete=0",
    [Q_CUBE_GAP_ADD] = "INSERT INTO cubes.cube_gaps(cube,bucket) VALUES(?,?) "
                       "ON CONFLICT(cube,bucket) DO NOTHING",
    [Q_CUBE_GAP_ANY] =
        "SELECT 1 FROM cubes.cube_gaps WHERE cube=? AND bucket>=? AND bucket<? LIMIT 1",
    [Q_CUBE_GAP_CLEAR] = "DELETE FROM cubes.cube_gaps WHERE cube=?",
    [Q_CUBE_GAP_PURGE] = "DELETE FROM cubes.cube_gaps WHERE cube=? AND bucket<?",
    [Q_CUBE_SEEK] =
        "SELECT bucket,dims,n,agg FROM cubes.cube_rows WHERE cube=? AND grain=? AND bucket=?"
        " AND dims>=? AND dims<? ORDER BY dims",
    /* per cube: a range of the primary key, not a scan of the table */
    [Q_CUBE_PURGE] = "DELETE FROM cubes.cube_rows WHERE cube=? AND grain=? AND bucket<?",
    [Q_GRANT_PUT] = "INSERT INTO grants(system_code,dataset,granted_at) VALUES(?,?,?) "
                    "ON CONFLICT(system_code,dataset) DO NOTHING",
    [Q_GRANT_DEL] = "DELETE FROM grants WHERE system_code=? AND dataset=?",
    [Q_GRANT_CHECK] = "SELECT 1 FROM grants WHERE system_code=? AND dataset=?",
    [Q_GRANT_LIST] = "SELECT system_code,dataset,granted_at FROM grants WHERE system_code=? "
                     "ORDER BY dataset",
    [Q_GRANT_LIST_ALL] = "SELECT system_code,dataset,granted_at FROM grants "
                         "ORDER BY system_code,dataset",
    /* ?1 ds, ?2 max(from, after_time), ?3 to, ?4 after_time, ?5 after_id, ?6 limit, ?7… the
     * systems (page_stmt adds them) */
    [Q_REC_PAGE] = PAGE_COLS PAGE_TIMED PAGE_TIMED_ORDER,
    [Q_REC_PAGE_NOTIME] = PAGE_COLS PAGE_NOTIME PAGE_NOTIME_ORDER,
    [Q_PURGE_HISTORY] = "DELETE FROM record_history WHERE record_id IN (" PURGE_IDS ")",
    [Q_PURGE_RECORDS] = "DELETE FROM records WHERE id IN (" PURGE_IDS ")",
    [Q_PURGE_CUBES] =
        "DELETE FROM cubes.cube_rows WHERE cube IN (SELECT id FROM cubes.cube_ids WHERE ds=?1) "
        "AND bucket<(CASE grain WHEN 0 THEN ?2 ELSE ?3 END) AND bucket>?4",
    [Q_AUDIT_HEAD] = "SELECT seq,hash FROM audit_log ORDER BY seq DESC LIMIT 1",
    [Q_AUDIT_PUT] = "INSERT INTO audit_log(seq,at,actor_kind,actor,action,target,detail,source_ip,"
                    "prev_hash,hash) VALUES(?,?,?,?,?,?,?,?,?,?)",
    /* ?1 after seq, ?2 from, ?3 to, ?4 actor (NULL = any), ?5 action (NULL = any), ?6 limit */
    [Q_AUDIT_LIST] = "SELECT seq,at,actor_kind,actor,action,target,detail,source_ip,prev_hash,hash "
                     "FROM audit_log WHERE seq>?1 AND at>=?2 AND at<?3 AND (?4 IS NULL OR "
                     "actor=?4) AND (?5 IS NULL OR action=?5) ORDER BY seq LIMIT ?6",
    /* data-quality counters (report/qcount.c, migration 23) */
    [Q_QUAL_ADD] = "INSERT INTO quality_counts(day,system_code,dataset,kind,item,n) "
                   "VALUES(?,?,?,?,?,?) ON CONFLICT(day,system_code,dataset,kind,item) "
                   "DO UPDATE SET n=n+excluded.n",
    [Q_QUAL_SUM] = "SELECT system_code,dataset,kind,item,sum(n) FROM quality_counts "
                   "WHERE day>=? AND day<? GROUP BY system_code,dataset,kind,item "
                   "ORDER BY system_code,dataset,kind,item",
    [Q_CATALOG_SUM] = "SELECT dataset,sum(accepted),sum(duplicates),sum(updated),sum(rejected),"
                      "count(*),count(DISTINCT system_code),max(received_at) FROM receipts "
                      "WHERE received_at>=? GROUP BY dataset ORDER BY dataset",
};

/* Versioned migrations: applied in order, each in its own transaction; the version reached is
 * kept in schema_version. Never edit a released step; add a new one. */
static const char *const migrations[] = {
    /* 1: systems, keys, people, records with history, receipts, idempotency */
    "CREATE TABLE systems(code TEXT PRIMARY KEY, name TEXT NOT NULL, org TEXT NOT NULL DEFAULT '',"
    " role TEXT NOT NULL, parent TEXT, masked INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL, last_seen INTEGER);"
    "CREATE TABLE api_keys(id TEXT PRIMARY KEY, system_code TEXT NOT NULL REFERENCES systems(code),"
    " hash BLOB NOT NULL UNIQUE, created_at INTEGER NOT NULL, expires_at INTEGER,"
    " revoked_at INTEGER);"
    "CREATE INDEX api_keys_system ON api_keys(system_code);"
    "CREATE TABLE oauth_clients(client_id TEXT PRIMARY KEY,"
    " system_code TEXT NOT NULL REFERENCES systems(code), secret_hash BLOB NOT NULL,"
    " created_at INTEGER NOT NULL, revoked_at INTEGER);"
    "CREATE TABLE users(username TEXT PRIMARY KEY, role TEXT NOT NULL,"
    " password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE receipts(seq INTEGER PRIMARY KEY, tag TEXT NOT NULL, dataset TEXT NOT NULL,"
    " system_code TEXT NOT NULL, request_id TEXT NOT NULL DEFAULT '', received_at INTEGER NOT NULL,"
    " accepted INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,"
    " updated INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE records(id INTEGER PRIMARY KEY, dataset TEXT NOT NULL, key_hash BLOB NOT NULL,"
    " system_code TEXT NOT NULL, event_time INTEGER, revision INTEGER NOT NULL,"
    " receipt_seq INTEGER NOT NULL, content_hash BLOB NOT NULL, content BLOB NOT NULL,"
    " received_at INTEGER NOT NULL, UNIQUE(dataset, key_hash));"
    "CREATE INDEX records_time ON records(dataset, event_time);"
    "CREATE INDEX records_receipt ON records(receipt_seq);"
    "CREATE TABLE record_history(id INTEGER PRIMARY KEY, record_id INTEGER NOT NULL,"
    " revision INTEGER NOT NULL, receipt_seq INTEGER NOT NULL, content_hash BLOB NOT NULL,"
    " content BLOB NOT NULL, received_at INTEGER NOT NULL, replaced_at INTEGER NOT NULL);"
    "CREATE INDEX record_history_record ON record_history(record_id);"
    "CREATE TABLE idempotency(system_code TEXT NOT NULL, key TEXT NOT NULL,"
    " request_hash BLOB NOT NULL, status INTEGER NOT NULL, body BLOB NOT NULL,"
    " created_at INTEGER NOT NULL, PRIMARY KEY(system_code, key));"
    "CREATE INDEX idempotency_created ON idempotency(created_at);",
    /* 2: batches and their rejected rows */
    "CREATE TABLE batches(id TEXT PRIMARY KEY, system_code TEXT NOT NULL, dataset TEXT NOT NULL,"
    " format TEXT NOT NULL, origin TEXT NOT NULL, status TEXT NOT NULL,"
    " priority INTEGER NOT NULL DEFAULT 0, masked INTEGER NOT NULL DEFAULT 0,"
    " source TEXT NOT NULL DEFAULT '', bytes INTEGER NOT NULL DEFAULT 0,"
    " byte_offset INTEGER NOT NULL DEFAULT 0, next_row INTEGER NOT NULL DEFAULT 0,"
    " total INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0,"
    " duplicates INTEGER NOT NULL DEFAULT 0, updated INTEGER NOT NULL DEFAULT 0,"
    " rejected INTEGER NOT NULL DEFAULT 0, nerrors INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL, started_at INTEGER NOT NULL DEFAULT 0,"
    " finished_at INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX batches_system ON batches(system_code, created_at);"
    "CREATE INDEX batches_status ON batches(status);"
    "CREATE TABLE batch_errors(batch_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " row INTEGER NOT NULL, line INTEGER NOT NULL, field TEXT NOT NULL, code TEXT NOT NULL,"
    " arg TEXT NOT NULL, rule INTEGER NOT NULL, PRIMARY KEY(batch_id, seq)) WITHOUT ROWID;",
    /* 3: records name their dataset by a small integer: the dataset's text was in every entry
     * of both record indexes (2 M rows: 27 % fewer bytes written, 15 % more rows/s) */
    "CREATE TABLE dataset_ids(id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);"
    "INSERT INTO dataset_ids(code) SELECT DISTINCT dataset FROM records ORDER BY dataset;"
    "CREATE TABLE records_v3(id INTEGER PRIMARY KEY, ds INTEGER NOT NULL, key_hash BLOB NOT NULL,"
    " system_code TEXT NOT NULL, event_time INTEGER, revision INTEGER NOT NULL,"
    " receipt_seq INTEGER NOT NULL, content_hash BLOB NOT NULL, content BLOB NOT NULL,"
    " received_at INTEGER NOT NULL, UNIQUE(ds, key_hash));"
    "INSERT INTO records_v3 SELECT r.id, d.id, r.key_hash, r.system_code, r.event_time,"
    " r.revision, r.receipt_seq, r.content_hash, r.content, r.received_at"
    " FROM records r JOIN dataset_ids d ON d.code = r.dataset;"
    "DROP TABLE records;"
    "ALTER TABLE records_v3 RENAME TO records;"
    "CREATE INDEX records_time ON records(ds, event_time);"
    "CREATE INDEX records_receipt ON records(receipt_seq);",
    /* 4: a receipt keeps the id range of the records it created and a replaced version the
     * receipt that replaced it, instead of an index on records.receipt_seq (15 % of an insert) */
    "ALTER TABLE receipts ADD COLUMN first_id INTEGER;"
    "ALTER TABLE receipts ADD COLUMN last_id INTEGER;"
    "ALTER TABLE record_history ADD COLUMN replaced_by INTEGER;"
    "UPDATE receipts SET first_id=(SELECT min(id) FROM records WHERE receipt_seq=receipts.seq),"
    " last_id=(SELECT max(id) FROM records WHERE receipt_seq=receipts.seq);"
    "DROP INDEX records_receipt;"
    "CREATE INDEX record_history_replaced ON record_history(replaced_by);",
    /* 5: live rollups (issue 4): each cube of a dataset per hour (grain 0) and per day (grain 1)
     * in UTC+07:00; dims is the encoded tuple of the cube's dimension values, agg the encoded
     * count/sum/min/max and latency histograms of the measures (stats/cube.c) */
    "CREATE TABLE cube_ids(id INTEGER PRIMARY KEY, ds INTEGER NOT NULL, dims TEXT NOT NULL,"
    " complete INTEGER NOT NULL, UNIQUE(ds, dims));"
    "CREATE TABLE cube_rows(cube INTEGER NOT NULL, grain INTEGER NOT NULL, bucket INTEGER NOT NULL,"
    " dims BLOB NOT NULL, n INTEGER NOT NULL, agg BLOB NOT NULL,"
    " PRIMARY KEY(cube, grain, bucket, dims)) WITHOUT ROWID;",
    /* 6: datasets granted to connected systems (CONTRACT §3: a consumer reads the datasets it is
     * granted; issue 4) */
    "CREATE TABLE grants(system_code TEXT NOT NULL REFERENCES systems(code),"
    " dataset TEXT NOT NULL, granted_at INTEGER NOT NULL,"
    " PRIMARY KEY(system_code, dataset)) WITHOUT ROWID;",
    /* 7: connectivity (conn/): a system's optional health probe URL and its last result, and
     * the history of its status as intervals (until NULL = the current one) */
    "ALTER TABLE systems ADD COLUMN probe_url TEXT;"
    "ALTER TABLE systems ADD COLUMN last_probe_at INTEGER;"
    "ALTER TABLE systems ADD COLUMN last_probe_ok INTEGER;"
    "ALTER TABLE systems ADD COLUMN last_probe_ms INTEGER;"
    "ALTER TABLE systems ADD COLUMN last_probe_error TEXT;"
    "CREATE TABLE system_status(id INTEGER PRIMARY KEY,"
    " system_code TEXT NOT NULL REFERENCES systems(code), status TEXT NOT NULL,"
    " since INTEGER NOT NULL, until INTEGER);"
    "CREATE INDEX system_status_system ON system_status(system_code, since);",
    /* 8: the audit trail (S3, D6; audit/): append-only, each entry chained to the one before by
     * an HMAC (audit/audit.c). Kept forever: nothing deletes or updates it. */
    "CREATE TABLE audit_log(seq INTEGER PRIMARY KEY, at INTEGER NOT NULL,"
    " actor_kind TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
    " target TEXT NOT NULL, detail TEXT NOT NULL, source_ip TEXT NOT NULL,"
    " prev_hash BLOB NOT NULL, hash BLOB NOT NULL);"
    "CREATE INDEX audit_log_at ON audit_log(at);",
    /* 9: a system's rate-limit tier (T2.2: bronze | silver | gold; NULL = [ratelimit]
     * default_tier) */
    "ALTER TABLE systems ADD COLUMN tier TEXT;",
    /* 12: alerts (T5.3; alert/) with their delivery to each channel, and the vulnerability
     * register (T4.4) */
    "CREATE TABLE alerts(id INTEGER PRIMARY KEY, rule TEXT NOT NULL, key TEXT NOT NULL,"
    " severity TEXT NOT NULL, state TEXT NOT NULL, title TEXT NOT NULL, detail TEXT NOT NULL,"
    " first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, count INTEGER NOT NULL,"
    " acknowledged_by TEXT NOT NULL DEFAULT '', acknowledged_at INTEGER NOT NULL DEFAULT 0,"
    " resolved_by TEXT NOT NULL DEFAULT '', resolved_at INTEGER NOT NULL DEFAULT 0,"
    " suppressed INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX alerts_rule_key ON alerts(rule, key, state);"
    "CREATE TABLE alert_deliveries(alert_id INTEGER NOT NULL REFERENCES alerts(id),"
    " event TEXT NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL, error TEXT NOT NULL, updated_at INTEGER NOT NULL,"
    " PRIMARY KEY(alert_id, event, channel)) WITHOUT ROWID;"
    "CREATE TABLE vulnerabilities(id INTEGER PRIMARY KEY, title TEXT NOT NULL,"
    " severity TEXT NOT NULL, found TEXT NOT NULL, remediation_plan TEXT NOT NULL,"
    " deadline TEXT NOT NULL, status TEXT NOT NULL, created_by TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);",
    /* 10: people (CONTRACT §3; gate/session.c): accounts can be disabled and carry their TOTP
     * seed (sealed with AES-256-GCM, gate/totp.c) and its replay guard; sessions stored by the
     * SHA-256 of their id; MFA recovery codes by their SHA-256, each usable once */
    "ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE users ADD COLUMN password_changed_at INTEGER;"
    "ALTER TABLE users ADD COLUMN mfa_enabled INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE users ADD COLUMN mfa_last_step INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE users ADD COLUMN mfa_secret BLOB;"
    "CREATE TABLE sessions(id_hash BLOB PRIMARY KEY, username TEXT NOT NULL,"
    " csrf TEXT NOT NULL, created_at INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL, source_ip TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"
    "CREATE INDEX sessions_user ON sessions(username);"
    "CREATE TABLE mfa_recovery(username TEXT NOT NULL, hash BLOB NOT NULL, used_at INTEGER,"
    " PRIMARY KEY(username, hash)) WITHOUT ROWID;",
    /* 11: the keys that sign OAuth access tokens (T2.4; gate/jwt.c): ES256, the private key
     * sealed (since 15 under the data keys, the kid as associated data); retired keys stay
     * published until the tokens they signed expired */
    "CREATE TABLE signing_keys(kid TEXT PRIMARY KEY, alg TEXT NOT NULL,"
    " public_jwk TEXT NOT NULL, public_pem TEXT NOT NULL, nonce BLOB NOT NULL,"
    " sealed BLOB NOT NULL, created_at INTEGER NOT NULL, retired_at INTEGER);",
    /* 14: the live rollups moved to their own file (CUBES_SCHEMA, attached as `cubes`), written
     * by their own thread beside the record writer (ingest/writer.c) */
    "DROP TABLE IF EXISTS main.cube_rows;"
    "DROP TABLE IF EXISTS main.cube_ids;",
    /* 13: data keys (T4.2; gate/datakey.c): random AES-256 keys that seal record content, spool
     * files and secrets, each wrapped (AES-256-GCM) under the master key whose id is kek_id;
     * sealed counts the seals reserved under it; retired keys still open what they sealed */
    "CREATE TABLE data_keys(id INTEGER PRIMARY KEY, wrapped BLOB NOT NULL, kek_id TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, retired_at INTEGER, sealed INTEGER NOT NULL DEFAULT 0);",
    /* 15: every secret under the data keys (T4.2). Token-signing keys are sealed under them now
     * (the blob carries its nonce): the keys sealed before are retired — still published, so
     * the tokens they signed stay valid until they expire — and a new one is made on first
     * need. Alert channels' secrets (webhook keys, SMTP passwords) are kept sealed in `secrets`
     * (`dtm secret set`), named from dtm.conf as store:NAME. OAuth clients get a secret
     * generation. */
    "UPDATE signing_keys SET retired_at=CAST((julianday('now')-2440587.5)*86400000000.0 AS INTEGER)"
    " WHERE retired_at IS NULL;"
    "ALTER TABLE signing_keys DROP COLUMN nonce;"
    "CREATE TABLE secrets(name TEXT PRIMARY KEY, sealed BLOB NOT NULL,"
    " updated_at INTEGER NOT NULL) WITHOUT ROWID;"
    /* an OAuth client's secret generation: rotating the secret ends the tokens issued under the
     * previous one (their claim cgen is older) */
    "ALTER TABLE oauth_clients ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;"
    /* the networks each system calls from (T4.1, alert/warn.c), so that a restart does not
     * start the learning of usual networks again */
    "CREATE TABLE warn_networks(system_code TEXT NOT NULL, network BLOB NOT NULL,"
    " first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,"
    " PRIMARY KEY(system_code, network)) WITHOUT ROWID;"
    /* access tokens revoked before they expire (RFC 7009; gate/jwt.c), kept until then */
    "CREATE TABLE revoked_tokens(jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL,"
    " revoked_at INTEGER NOT NULL) WITHOUT ROWID;"
    /* dataset definitions made by administrators (CONTRACT §4, PUT /api/v1/datasets/{code}):
     * the canonical JSON, loaded after the built-ins by every process on the data dir */
    "CREATE TABLE dataset_defs(code TEXT PRIMARY KEY, definition TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL, updated_by TEXT NOT NULL) WITHOUT ROWID;",
    /* 16: the backups made (issue 10; backup/): when, where, how big, ok or why not — the last
     * one for `dtm status` and metrics */
    "CREATE TABLE backup_runs(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, path TEXT NOT NULL,"
    " status TEXT NOT NULL, error TEXT NOT NULL, bytes INTEGER NOT NULL,"
    " records INTEGER NOT NULL, ms INTEGER NOT NULL);",
    /* 22: kept reports (report/): the document of each (kind, period, language), claimed by
     * the node that produces it (status running), then done */
    "CREATE TABLE reports(kind TEXT NOT NULL, period TEXT NOT NULL, lang TEXT NOT NULL,"
    " status TEXT NOT NULL, claimed_at INTEGER NOT NULL, generated_at INTEGER NOT NULL DEFAULT 0,"
    " size INTEGER NOT NULL DEFAULT 0, document TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY(kind, period, lang)) WITHOUT ROWID;",
    /* 23: data-quality counters (report/qcount.c, written by the record writer with the
     * records): per receipt day, system and dataset, the records accepted, updated, duplicate
     * and rejected (kind n), the rejections by error code (kind err), and the lag between
     * event time and receipt (kind lag: a log-linear histogram; lag_ms: the sum; lag_n) */
    "CREATE TABLE quality_counts(day INTEGER NOT NULL, system_code TEXT NOT NULL,"
    " dataset TEXT NOT NULL, kind TEXT NOT NULL, item TEXT NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY(day, system_code, dataset, kind, item)) WITHOUT ROWID;",
    /* 19: subscriptions of consumers to aggregates (F3, CONTRACT §6; share/): the cursor
     * (next_bucket), the backoff state, the lease of the node delivering it, and the log of
     * every delivery attempt. A deleted one is kept (deleted_at) with its log. */
    "CREATE TABLE subscriptions(id TEXT PRIMARY KEY, system_code TEXT NOT NULL,"
    " dataset TEXT NOT NULL, where_json TEXT NOT NULL, metrics TEXT NOT NULL,"
    " group_by TEXT NOT NULL, bucket_interval TEXT NOT NULL, url TEXT NOT NULL,"
    " secret BLOB NOT NULL,"
    " created_at INTEGER NOT NULL, next_bucket INTEGER NOT NULL, attempts INTEGER NOT NULL,"
    " next_attempt_at INTEGER NOT NULL, last_error TEXT NOT NULL, delivered INTEGER NOT NULL,"
    " last_delivered_at INTEGER NOT NULL, lease_owner TEXT NOT NULL,"
    " lease_until INTEGER NOT NULL, deleted_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX subscriptions_system ON subscriptions(system_code);"
    "CREATE TABLE subscription_deliveries(seq INTEGER PRIMARY KEY,"
    " subscription_id TEXT NOT NULL, bucket INTEGER NOT NULL, attempt INTEGER NOT NULL,"
    " status INTEGER NOT NULL, ok INTEGER NOT NULL, error TEXT NOT NULL, at INTEGER NOT NULL,"
    " ms INTEGER NOT NULL);"
    "CREATE INDEX subscription_deliveries_sub ON subscription_deliveries(subscription_id, seq);",
    /* 24: rounds of periodic jobs claimed by one node (forecast/anomaly.c: the anomaly check
     * runs once across the nodes sharing a store) */
    "CREATE TABLE job_claims(job TEXT NOT NULL, slot INTEGER NOT NULL, owner TEXT NOT NULL,"
    " claimed_at INTEGER NOT NULL, PRIMARY KEY(job, slot)) WITHOUT ROWID;",
};

/* The rollups' file (DATA_DIR/dtm.cubes.db beside dtm.db), attached to every connection as
 * `cubes`. Rollups can be derived again from the records, so the file commits without fsync
 * (synchronous=NORMAL: a power cut may lose its last commits, never its consistency) and its
 * cube_state row `applied_seq` says up to which receipt the deltas are in: when the records are
 * ahead after a crash, the cubes are rebuilt at the next `dtm serve` (s_cube_check). */
static const char cubes_schema[] =
    "PRAGMA cubes.journal_mode=WAL;"
    "PRAGMA cubes.synchronous=NORMAL;"
    "PRAGMA cubes.cache_size=-8192;"
    "CREATE TABLE IF NOT EXISTS cubes.cube_ids(id INTEGER PRIMARY KEY, ds INTEGER NOT NULL,"
    " dims TEXT NOT NULL, complete INTEGER NOT NULL, UNIQUE(ds, dims));"
    "CREATE TABLE IF NOT EXISTS cubes.cube_rows(cube INTEGER NOT NULL, grain INTEGER NOT NULL,"
    " bucket INTEGER NOT NULL, dims BLOB NOT NULL, n INTEGER NOT NULL, agg BLOB NOT NULL,"
    " PRIMARY KEY(cube, grain, bucket, dims)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS cubes.cube_state(k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cubes.cube_gaps(cube INTEGER NOT NULL, bucket INTEGER NOT NULL,"
    " PRIMARY KEY(cube, bucket)) WITHOUT ROWID;";

/* "DIR/dtm.db" → "DIR/dtm.cubes.db"; an in-memory database gets an in-memory rollup file */
static void cubes_path(const char *db, char *out, size_t outsz)
{
    size_t n = strlen(db);
    if (strcmp(db, ":memory:") == 0)
        snprintf(out, outsz, ":memory:");
    else if (n > 3 && strcmp(db + n - 3, ".db") == 0)
        snprintf(out, outsz, "%.*s.cubes.db", (int)(n - 3), db);
    else
        snprintf(out, outsz, "%s.cubes", db);
}

static int attach_cubes(sqlite3 *db, const char *path)
{
    char cp[DTM_PATH_MAX + 16];
    sqlite3_stmt *st = NULL;
    int rc;
    cubes_path(path, cp, sizeof(cp));
    if (sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS cubes", -1, &st, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_text(st, 1, cp, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return SQLITE_ERROR;
    return sqlite3_exec(db, cubes_schema, NULL, NULL, NULL);
}

/* dataset code → id, remembered per connection (an id never changes once committed) */
#define DS_CACHE 16
struct sqlite_store {
    struct dtm_store super;
    sqlite3 *db;
    sqlite3_stmt *st[Q_COUNT];
    char path[DTM_PATH_MAX];
    struct {
        char code[64];
        int64_t id;
    } ds[DS_CACHE];
    size_t nds;
    int64_t new_min, new_max; /* ids of the records created since the last receipt_put */
    struct dtm_buf plain;     /* T4.2: the last sealed content opened (open_content) */
};

#define DB(s) (((struct sqlite_store *)(s))->db)

static int fail(struct dtm_store *s, const char *what)
{
    struct dtm_buf f;
    dtm_buf_init(&f, 4096);
    dtm_buf_addc(&f, "\"op\":");
    dtm_buf_json_strc(&f, what);
    dtm_buf_addc(&f, ",\"sqlite\":");
    dtm_buf_json_strc(&f, sqlite3_errmsg(DB(s)));
    dtm_log(DTM_LOG_ERROR, "storage error", f.err ? NULL : f.p);
    dtm_buf_free(&f);
    return DTM_ESTORE;
}

/* Returns the prepared statement, reset and with bindings cleared. */
static sqlite3_stmt *stmt(struct dtm_store *s, enum stmt_id id)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    if (!q->st[id]) {
        if (sqlite3_prepare_v3(q->db, sql[id], -1, SQLITE_PREPARE_PERSISTENT, &q->st[id], NULL) !=
            SQLITE_OK) {
            fail(s, sql[id]);
            return NULL;
        }
    } else {
        sqlite3_reset(q->st[id]);
        sqlite3_clear_bindings(q->st[id]);
    }
    return q->st[id];
}

static void bind_text(sqlite3_stmt *st, int i, const char *t)
{
    sqlite3_bind_text(st, i, t, -1, SQLITE_STATIC);
}

static void bind_str(sqlite3_stmt *st, int i, struct dtm_str t)
{
    sqlite3_bind_text(st, i, t.p ? t.p : "", (int)t.n, SQLITE_STATIC);
}

static void bind_opt_i64(sqlite3_stmt *st, int i, int64_t v, int64_t none)
{
    if (v == none)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

/* Runs a statement that returns no rows. */
static int exec_done(struct dtm_store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        if (rc == SQLITE_CONSTRAINT)
            return DTM_EEXIST;
        return fail(s, what);
    }
    return DTM_OK;
}

static void col_text(sqlite3_stmt *st, int i, char *out, size_t outsz)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, outsz, "%s", t ? (const char *)t : "");
}

static void read_system(sqlite3_stmt *st, int c, struct dtm_system *out)
{
    memset(out, 0, sizeof(*out));
    col_text(st, c + 0, out->code, sizeof(out->code));
    col_text(st, c + 1, out->name, sizeof(out->name));
    col_text(st, c + 2, out->org, sizeof(out->org));
    col_text(st, c + 3, out->role, sizeof(out->role));
    col_text(st, c + 4, out->parent, sizeof(out->parent));
    out->masked = sqlite3_column_int(st, c + 5) != 0;
    out->created_at = sqlite3_column_int64(st, c + 6);
    out->last_seen = sqlite3_column_int64(st, c + 7);
    col_text(st, c + 8, out->tier, sizeof(out->tier));
}

/* The id of a dataset code; with create, a new one is made (inside the writer's transaction).
 * DTM_ENOTFOUND when there is none (no record of that dataset was ever stored). */
static int ds_id(struct dtm_store *s, const char *code, bool create, int64_t *id)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    sqlite3_stmt *st;
    int rc;
    for (size_t i = 0; i < q->nds; i++)
        if (strcmp(q->ds[i].code, code) == 0) {
            *id = q->ds[i].id;
            return DTM_OK;
        }
    if (!(st = stmt(s, Q_DS_GET)))
        return DTM_ESTORE;
    bind_text(st, 1, code);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return fail(s, "dataset_id");
    if (rc == SQLITE_DONE) {
        if (!create)
            return DTM_ENOTFOUND;
        if (!(st = stmt(s, Q_DS_ADD)))
            return DTM_ESTORE;
        bind_text(st, 1, code);
        if ((rc = exec_done(s, st, "dataset_id_add")))
            return rc;
        *id = sqlite3_last_insert_rowid(DB(s));
        return DTM_OK; /* not remembered until committed: a rollback would give the id back */
    }
    if (q->nds < DS_CACHE && strlen(code) < sizeof(q->ds[0].code)) {
        snprintf(q->ds[q->nds].code, sizeof(q->ds[0].code), "%s", code);
        q->ds[q->nds++].id = *id;
    }
    return DTM_OK;
}

/* T4.2: content sealed by the ingest pipeline (gate/datakey.c) is opened into the connection's
 * buffer (valid until the next row), the record's key hash as associated data: a blob moved to
 * another row does not open. Content stored before T4.2 is plain JSON, handed out as is. */
static int open_content(struct dtm_store *s, const void *key_hash, size_t khlen, struct dtm_str *c)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
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

/* Runs st, whose columns are VERSION_COLS (revision, receipt_seq, received_at, replaced_at,
 * content, key_hash), and hands each row to cb. */
static int version_rows(struct dtm_store *s, sqlite3_stmt *st, dtm_version_cb cb, void *ctx,
                        const char *what)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_record_version v = {
            .revision = sqlite3_column_int64(st, 0),
            .receipt_seq = sqlite3_column_int64(st, 1),
            .received_at = sqlite3_column_int64(st, 2),
            .replaced_at = sqlite3_column_int64(st, 3),
            .content = {sqlite3_column_blob(st, 4), (size_t)sqlite3_column_bytes(st, 4)},
        };
        if ((rc = open_content(s, sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5),
                               &v.content)) ||
            (rc = cb(ctx, &v))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, what);
}

static void s_close(struct dtm_store *s)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    if (!q)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(q->st[i]);
    sqlite3_close(q->db);
    dtm_buf_free(&q->plain);
    free(q);
}

static int s_exec(struct dtm_store *s, const char *text)
{
    if (sqlite3_exec(DB(s), text, NULL, NULL, NULL) != SQLITE_OK)
        return fail(s, "exec"); /* logs sqlite3_errmsg once */
    return DTM_OK;
}

static int s_migrate(struct dtm_store *s)
{
    sqlite3_stmt *st = NULL;
    int64_t version = 0;
    int rc = s_exec(s, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)");
    if (rc)
        return rc;
    if (s_exec(s, "BEGIN IMMEDIATE"))
        return DTM_ESTORE;
    if (sqlite3_prepare_v2(DB(s), "SELECT max(version) FROM schema_version", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = fail(s, "schema_version");
        goto out;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (version > (int64_t)DTM_ARRAY_LEN(migrations)) {
        dtm_logf(DTM_LOG_ERROR, "database schema is newer than this program",
                 "\"schema\":%lld,\"known\":%zu", (long long)version, DTM_ARRAY_LEN(migrations));
        rc = DTM_ESTORE;
        goto out;
    }
    for (size_t v = (size_t)version; v < DTM_ARRAY_LEN(migrations); v++) {
        char ins[80];
        if ((rc = s_exec(s, migrations[v])))
            goto out;
        snprintf(ins, sizeof(ins), "INSERT INTO schema_version VALUES(%zu)", v + 1);
        if ((rc = s_exec(s, ins)))
            goto out;
        dtm_logf(DTM_LOG_INFO, "schema migrated", "\"version\":%zu", v + 1);
    }
    return s_exec(s, "COMMIT");
out:
    sqlite3_exec(DB(s), "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int s_ready(struct dtm_store *s)
{
    /* writable: a write transaction can be started and the file is not read-only */
    if (sqlite3_db_readonly(DB(s), "main") != 0)
        return DTM_ESTORE;
    return DTM_OK;
}

/* A transaction holding the write lock of one file (main or cubes) from its start. */
static int begin_locked(struct dtm_store *s, int lock)
{
    sqlite3_stmt *st = stmt(s, Q_BEGIN);
    int rc = st ? exec_done(s, st, "begin") : DTM_ESTORE;
    if (rc)
        return rc;
    if (!(st = stmt(s, lock)) || (rc = exec_done(s, st, "begin_lock"))) {
        sqlite3_exec(DB(s), "ROLLBACK", NULL, NULL, NULL);
        return rc ? rc : DTM_ESTORE;
    }
    return DTM_OK;
}

static int s_begin(struct dtm_store *s)
{
    return begin_locked(s, Q_LOCK_MAIN);
}

static int s_cube_begin(struct dtm_store *s)
{
    return begin_locked(s, Q_LOCK_CUBES);
}

static int s_commit(struct dtm_store *s)
{
    sqlite3_stmt *st = stmt(s, Q_COMMIT);
    return st ? exec_done(s, st, "commit") : DTM_ESTORE;
}

static void s_rollback(struct dtm_store *s)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    q->nds = 0; /* ids seen inside the transaction may be given back */
    q->new_min = q->new_max = 0;
    if (!sqlite3_get_autocommit(DB(s)))
        sqlite3_exec(DB(s), "ROLLBACK", NULL, NULL, NULL);
}

static int s_system_add(struct dtm_store *s, const struct dtm_system *sys)
{
    sqlite3_stmt *st = stmt(s, Q_SYS_ADD);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, sys->code);
    bind_text(st, 2, sys->name);
    bind_text(st, 3, sys->org);
    bind_text(st, 4, sys->role);
    if (sys->parent[0])
        bind_text(st, 5, sys->parent);
    sqlite3_bind_int(st, 6, sys->masked);
    sqlite3_bind_int64(st, 7, sys->created_at);
    if (sys->tier[0])
        bind_text(st, 8, sys->tier);
    return exec_done(s, st, "system_add");
}

static int s_system_get(struct dtm_store *s, const char *code, struct dtm_system *out)
{
    sqlite3_stmt *st = stmt(s, Q_SYS_GET);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, code);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_system(st, 0, out);
        sqlite3_reset(st);
        return DTM_OK;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_ENOTFOUND : fail(s, "system_get");
}

static int s_system_list(struct dtm_store *s, dtm_system_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_SYS_LIST);
    int rc;
    if (!st)
        return DTM_ESTORE;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_system sys;
        read_system(st, 0, &sys);
        if ((rc = cb(ctx, &sys))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "system_list");
}

static int s_system_touch(struct dtm_store *s, const char *code, int64_t last_seen)
{
    sqlite3_stmt *st = stmt(s, Q_SYS_TOUCH);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, last_seen);
    bind_text(st, 2, code);
    sqlite3_bind_int64(st, 3, last_seen);
    return exec_done(s, st, "system_touch");
}

static int s_system_set_tier(struct dtm_store *s, const char *code, const char *tier)
{
    sqlite3_stmt *st = stmt(s, Q_SYS_TIER);
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (tier && *tier)
        bind_text(st, 1, tier);
    bind_text(st, 2, code);
    if ((rc = exec_done(s, st, "system_set_tier")))
        return rc;
    return sqlite3_changes(DB(s)) == 1 ? DTM_OK : DTM_ENOTFOUND;
}

static int s_probe_set_url(struct dtm_store *s, const char *code, const char *url)
{
    sqlite3_stmt *st = stmt(s, Q_PROBE_SET);
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (url && *url)
        bind_text(st, 1, url);
    bind_text(st, 2, code);
    if ((rc = exec_done(s, st, "probe_set_url")))
        return rc;
    return sqlite3_changes(DB(s)) == 1 ? DTM_OK : DTM_ENOTFOUND;
}

static int s_probe_list(struct dtm_store *s, dtm_probe_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_PROBE_LIST);
    int rc;
    if (!st)
        return DTM_ESTORE;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_probe p;
        memset(&p, 0, sizeof(p));
        col_text(st, 0, p.system_code, sizeof(p.system_code));
        col_text(st, 1, p.url, sizeof(p.url));
        p.at = sqlite3_column_int64(st, 2);
        p.ok = sqlite3_column_int(st, 3) != 0;
        p.ms = sqlite3_column_int64(st, 4);
        col_text(st, 5, p.error, sizeof(p.error));
        if ((rc = cb(ctx, &p))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "probe_list");
}

static int s_probe_put(struct dtm_store *s, const struct dtm_probe *p)
{
    sqlite3_stmt *st = stmt(s, Q_PROBE_PUT);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, p->at);
    sqlite3_bind_int(st, 2, p->ok);
    sqlite3_bind_int64(st, 3, p->ms);
    bind_text(st, 4, p->error);
    bind_text(st, 5, p->system_code);
    return exec_done(s, st, "probe_put");
}

static int s_status_put(struct dtm_store *s, const struct dtm_status_interval *iv)
{
    sqlite3_stmt *st = stmt(s, Q_STATUS_END);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, iv->since);
    bind_text(st, 2, iv->system_code);
    if ((rc = exec_done(s, st, "status_end")))
        return rc;
    if (!(st = stmt(s, Q_STATUS_ADD)))
        return DTM_ESTORE;
    bind_text(st, 1, iv->system_code);
    bind_text(st, 2, iv->status);
    sqlite3_bind_int64(st, 3, iv->since);
    return exec_done(s, st, "status_add");
}

static int s_status_list(struct dtm_store *s, const char *code, int64_t after, dtm_status_cb cb,
                         void *ctx)
{
    sqlite3_stmt *st = stmt(s, code ? Q_STATUS_LIST : Q_STATUS_LIST_ALL);
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (code) {
        bind_text(st, 1, code);
        sqlite3_bind_int64(st, 2, after);
    } else {
        sqlite3_bind_int64(st, 1, after);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_status_interval iv;
        memset(&iv, 0, sizeof(iv));
        col_text(st, 0, iv.system_code, sizeof(iv.system_code));
        col_text(st, 1, iv.status, sizeof(iv.status));
        iv.since = sqlite3_column_int64(st, 2);
        iv.until = sqlite3_column_int64(st, 3);
        if ((rc = cb(ctx, &iv))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "status_list");
}

static int s_key_add(struct dtm_store *s, const struct dtm_key *k, const uint8_t hash[32])
{
    sqlite3_stmt *st = stmt(s, Q_KEY_ADD);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, k->id);
    bind_text(st, 2, k->system_code);
    sqlite3_bind_blob(st, 3, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, k->created_at);
    return exec_done(s, st, "key_add");
}

static int s_key_find(struct dtm_store *s, const uint8_t hash[32], struct dtm_key *key,
                      struct dtm_system *sys)
{
    sqlite3_stmt *st = stmt(s, Q_KEY_FIND);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(key, 0, sizeof(*key));
        col_text(st, 0, key->id, sizeof(key->id));
        col_text(st, 1, key->system_code, sizeof(key->system_code));
        key->created_at = sqlite3_column_int64(st, 2);
        key->expires_at = sqlite3_column_int64(st, 3);
        key->revoked_at = sqlite3_column_int64(st, 4);
        read_system(st, 5, sys);
        sqlite3_reset(st);
        return DTM_OK;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_ENOTFOUND : fail(s, "key_find");
}

static int s_key_expire_all(struct dtm_store *s, const char *system_code, int64_t expires_at)
{
    sqlite3_stmt *st = stmt(s, Q_KEY_EXPIRE);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, expires_at);
    bind_text(st, 2, system_code);
    sqlite3_bind_int64(st, 3, expires_at);
    return exec_done(s, st, "key_expire");
}

static int s_key_revoke(struct dtm_store *s, const char *id, int64_t now)
{
    sqlite3_stmt *st = stmt(s, Q_KEY_REVOKE);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, now);
    bind_text(st, 2, id);
    if ((rc = exec_done(s, st, "key_revoke")))
        return rc;
    return sqlite3_changes(DB(s)) == 1 ? DTM_OK : DTM_ENOTFOUND;
}

static int s_client_add(struct dtm_store *s, const char *client_id, const char *system_code,
                        const uint8_t secret_hash[32], int64_t now)
{
    sqlite3_stmt *st = stmt(s, Q_CLIENT_ADD);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, client_id);
    bind_text(st, 2, system_code);
    sqlite3_bind_blob(st, 3, secret_hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    return exec_done(s, st, "client_add");
}

static int s_client_set(struct dtm_store *s, const struct dtm_oauth_client *c)
{
    sqlite3_stmt *st = stmt(s, Q_CLIENT_SET);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, c->client_id);
    sqlite3_bind_blob(st, 2, c->secret_hash, 32, SQLITE_STATIC);
    bind_opt_i64(st, 3, c->revoked_at, 0);
    sqlite3_bind_int64(st, 4, c->generation);
    if ((rc = exec_done(s, st, "client_set")))
        return rc;
    return sqlite3_changes(DB(s)) == 1 ? DTM_OK : DTM_ENOTFOUND;
}

static int s_dataset_def_put(struct dtm_store *s, const char *code, const char *definition,
                             int64_t now, const char *by)
{
    sqlite3_stmt *st = stmt(s, Q_DSDEF_PUT);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, code);
    bind_text(st, 2, definition);
    sqlite3_bind_int64(st, 3, now);
    bind_text(st, 4, by);
    return exec_done(s, st, "dataset_def_put");
}

static int s_dataset_def_list(struct dtm_store *s, dtm_dataset_def_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_DSDEF_LIST);
    int rc;
    if (!st)
        return DTM_ESTORE;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *code = (const char *)sqlite3_column_text(st, 0);
        const char *def = (const char *)sqlite3_column_text(st, 1);
        if ((rc = cb(ctx, code ? code : "", def ? def : ""))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "dataset_def_list");
}

static int s_token_revoke(struct dtm_store *s, const char *jti, int64_t expires_at, int64_t now)
{
    sqlite3_stmt *st = stmt(s, Q_TOK_REVOKE);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, jti);
    sqlite3_bind_int64(st, 2, expires_at);
    sqlite3_bind_int64(st, 3, now);
    if ((rc = exec_done(s, st, "token_revoke")))
        return rc;
    if ((st = stmt(s, Q_TOK_PURGE)) == NULL)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, now);
    return exec_done(s, st, "token_purge");
}

static int s_token_revoked(struct dtm_store *s, const char *jti)
{
    sqlite3_stmt *st = stmt(s, Q_TOK_REVOKED);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, jti);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return DTM_OK;
    return rc == SQLITE_DONE ? DTM_ENOTFOUND : fail(s, "token_revoked");
}

static int s_warn_net_put(struct dtm_store *s, const struct dtm_warn_net *n)
{
    sqlite3_stmt *st = stmt(s, Q_WNET_PUT);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, n->system_code);
    sqlite3_bind_blob(st, 2, n->network, sizeof(n->network), SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, n->first_seen);
    sqlite3_bind_int64(st, 4, n->last_seen);
    return exec_done(s, st, "warn_net_put");
}

static int s_warn_net_list(struct dtm_store *s, int64_t since, dtm_warn_net_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_WNET_LIST);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, since);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_warn_net n = {0};
        col_text(st, 0, n.system_code, sizeof(n.system_code));
        if (sqlite3_column_bytes(st, 1) != (int)sizeof(n.network))
            continue;
        memcpy(n.network, sqlite3_column_blob(st, 1), sizeof(n.network));
        n.first_seen = sqlite3_column_int64(st, 2);
        n.last_seen = sqlite3_column_int64(st, 3);
        if ((rc = cb(ctx, &n))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "warn_net_list");
}

static int s_warn_net_purge(struct dtm_store *s, int64_t before)
{
    sqlite3_stmt *st = stmt(s, Q_WNET_PURGE);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, before);
    return exec_done(s, st, "warn_net_purge");
}

static int s_key_list(struct dtm_store *s, const char *system_code, dtm_key_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_KEY_LIST);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, system_code);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_key k = {0};
        col_text(st, 0, k.id, sizeof(k.id));
        col_text(st, 1, k.system_code, sizeof(k.system_code));
        k.created_at = sqlite3_column_int64(st, 2);
        k.expires_at = sqlite3_column_int64(st, 3);
        k.revoked_at = sqlite3_column_int64(st, 4);
        if ((rc = cb(ctx, &k))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "key_list");
}

static int s_client_get(struct dtm_store *s, const char *client_id, struct dtm_oauth_client *out)
{
    sqlite3_stmt *st = stmt(s, Q_CLIENT_GET);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, client_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        col_text(st, 0, out->client_id, sizeof(out->client_id));
        col_text(st, 1, out->system_code, sizeof(out->system_code));
        if (sqlite3_column_bytes(st, 2) == 32)
            memcpy(out->secret_hash, sqlite3_column_blob(st, 2), 32);
        out->created_at = sqlite3_column_int64(st, 3);
        out->revoked_at = sqlite3_column_int64(st, 4);
        out->generation = sqlite3_column_int64(st, 5);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return DTM_ENOTFOUND;
    return rc == SQLITE_ROW ? DTM_OK : fail(s, "client_get");
}

static int s_signing_key_add(struct dtm_store *s, const struct dtm_signing_key *k)
{
    sqlite3_stmt *st = stmt(s, Q_SIGNKEY_ADD);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, k->kid);
    bind_text(st, 2, k->alg);
    bind_text(st, 3, k->public_jwk);
    bind_text(st, 4, k->public_pem);
    sqlite3_bind_blob(st, 5, k->sealed, (int)k->sealed_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, k->created_at);
    return exec_done(s, st, "signing_key_add");
}

static int s_signing_key_retire(struct dtm_store *s, int64_t now)
{
    sqlite3_stmt *st = stmt(s, Q_SIGNKEY_RETIRE);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, now);
    return exec_done(s, st, "signing_key_retire");
}

static int s_signing_key_list(struct dtm_store *s, int64_t retired_after, dtm_signing_key_cb cb,
                              void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_SIGNKEY_LIST);
    struct dtm_signing_key *k;
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (!(k = malloc(sizeof(*k))))
        return DTM_ENOMEM;
    sqlite3_bind_int64(st, 1, retired_after);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 4);
        memset(k, 0, sizeof(*k));
        col_text(st, 0, k->kid, sizeof(k->kid));
        col_text(st, 1, k->alg, sizeof(k->alg));
        col_text(st, 2, k->public_jwk, sizeof(k->public_jwk));
        col_text(st, 3, k->public_pem, sizeof(k->public_pem));
        if (n > 0 && (size_t)n <= sizeof(k->sealed)) {
            memcpy(k->sealed, sqlite3_column_blob(st, 4), (size_t)n);
            k->sealed_len = (size_t)n;
        }
        k->created_at = sqlite3_column_int64(st, 5);
        k->retired_at = sqlite3_column_int64(st, 6);
        if ((rc = cb(ctx, k))) {
            sqlite3_reset(st);
            free(k);
            return rc;
        }
    }
    sqlite3_reset(st);
    free(k);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "signing_key_list");
}

static int s_user_add(struct dtm_store *s, const char *username, const char *role,
                      const char *password_hash, int64_t now)
{
    sqlite3_stmt *st = stmt(s, Q_USER_ADD);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, username);
    bind_text(st, 2, role);
    bind_text(st, 3, password_hash);
    sqlite3_bind_int64(st, 4, now);
    return exec_done(s, st, "user_add");
}

static void read_user(sqlite3_stmt *st, struct dtm_user *u)
{
    const void *b;
    int n;
    memset(u, 0, sizeof(*u));
    col_text(st, 0, u->username, sizeof(u->username));
    col_text(st, 1, u->role, sizeof(u->role));
    col_text(st, 2, u->password_hash, sizeof(u->password_hash));
    u->created_at = sqlite3_column_int64(st, 3);
    u->password_changed_at = sqlite3_column_int64(st, 4);
    u->disabled = sqlite3_column_int(st, 5) != 0;
    u->mfa_enabled = sqlite3_column_int(st, 6) != 0;
    u->mfa_last_step = sqlite3_column_int64(st, 7);
    b = sqlite3_column_blob(st, 8);
    n = sqlite3_column_bytes(st, 8);
    if (b && n > 0 && (size_t)n <= sizeof(u->mfa_secret)) {
        memcpy(u->mfa_secret, b, (size_t)n);
        u->mfa_secret_len = (size_t)n;
    }
}

static int s_user_get(struct dtm_store *s, const char *username, struct dtm_user *out)
{
    sqlite3_stmt *st = stmt(s, Q_USER_GET);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, username);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_user(st, out);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return DTM_OK;
    return rc == SQLITE_DONE ? DTM_ENOTFOUND : fail(s, "user_get");
}

static int s_user_list(struct dtm_store *s, dtm_user_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_USER_LIST);
    int rc;
    if (!st)
        return DTM_ESTORE;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_user u;
        read_user(st, &u);
        if ((rc = cb(ctx, &u))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "user_list");
}

static int s_user_update(struct dtm_store *s, const struct dtm_user *u)
{
    sqlite3_stmt *st = stmt(s, Q_USER_UPDATE);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, u->username);
    bind_text(st, 2, u->role);
    bind_text(st, 3, u->password_hash);
    bind_opt_i64(st, 4, u->password_changed_at, 0);
    sqlite3_bind_int(st, 5, u->disabled);
    sqlite3_bind_int(st, 6, u->mfa_enabled);
    if (u->mfa_secret_len)
        sqlite3_bind_blob(st, 7, u->mfa_secret, (int)u->mfa_secret_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 7);
    if ((rc = exec_done(s, st, "user_update")))
        return rc;
    return sqlite3_changes(DB(s)) ? DTM_OK : DTM_ENOTFOUND;
}

/* Runs a statement with one text parameter; *changed = rows changed. */
static int exec_text1(struct dtm_store *s, enum stmt_id id, const char *v, int *changed)
{
    sqlite3_stmt *st = stmt(s, id);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, v);
    if ((rc = exec_done(s, st, sql[id])))
        return rc;
    if (changed)
        *changed = sqlite3_changes(DB(s));
    return DTM_OK;
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
    sqlite3_stmt *st = stmt(s, Q_USER_MFA_STEP);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, username);
    sqlite3_bind_int64(st, 2, step);
    if ((rc = exec_done(s, st, "user_mfa_step")))
        return rc;
    return sqlite3_changes(DB(s)) ? DTM_OK : DTM_ECONFLICT;
}

static int s_session_put(struct dtm_store *s, const struct dtm_session *se)
{
    sqlite3_stmt *st = stmt(s, Q_SESS_PUT);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_blob(st, 1, se->id_hash, 32, SQLITE_STATIC);
    bind_text(st, 2, se->username);
    bind_text(st, 3, se->csrf);
    sqlite3_bind_int64(st, 4, se->created_at);
    sqlite3_bind_int64(st, 5, se->last_seen);
    sqlite3_bind_int64(st, 6, se->expires_at);
    bind_text(st, 7, se->source_ip);
    return exec_done(s, st, "session_put");
}

static int s_session_get(struct dtm_store *s, const uint8_t id_hash[32], struct dtm_session *out)
{
    sqlite3_stmt *st = stmt(s, Q_SESS_GET);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_blob(st, 1, id_hash, 32, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        memcpy(out->id_hash, id_hash, 32);
        col_text(st, 0, out->username, sizeof(out->username));
        col_text(st, 1, out->csrf, sizeof(out->csrf));
        out->created_at = sqlite3_column_int64(st, 2);
        out->last_seen = sqlite3_column_int64(st, 3);
        out->expires_at = sqlite3_column_int64(st, 4);
        col_text(st, 5, out->source_ip, sizeof(out->source_ip));
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return DTM_OK;
    return rc == SQLITE_DONE ? DTM_ENOTFOUND : fail(s, "session_get");
}

static int s_session_touch(struct dtm_store *s, const uint8_t id_hash[32], int64_t last_seen)
{
    sqlite3_stmt *st = stmt(s, Q_SESS_TOUCH);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_blob(st, 1, id_hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, last_seen);
    return exec_done(s, st, "session_touch");
}

static int s_session_delete(struct dtm_store *s, const uint8_t id_hash[32])
{
    sqlite3_stmt *st = stmt(s, Q_SESS_DEL);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_blob(st, 1, id_hash, 32, SQLITE_STATIC);
    return exec_done(s, st, "session_delete");
}

static int s_session_delete_user(struct dtm_store *s, const char *username, const uint8_t *keep)
{
    sqlite3_stmt *st = stmt(s, Q_SESS_DEL_USER);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, username);
    if (keep)
        sqlite3_bind_blob(st, 2, keep, 32, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    return exec_done(s, st, "session_delete_user");
}

static int s_session_purge(struct dtm_store *s, int64_t now, int64_t idle_before)
{
    sqlite3_stmt *st = stmt(s, Q_SESS_PURGE);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, idle_before);
    return exec_done(s, st, "session_purge");
}

static int s_recovery_set(struct dtm_store *s, const char *username, const uint8_t (*hashes)[32],
                          size_t n)
{
    int rc;
    if ((rc = exec_text1(s, Q_USER_DEL_RECOVERY, username, NULL)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = stmt(s, Q_RECOV_ADD);
        if (!st)
            return DTM_ESTORE;
        bind_text(st, 1, username);
        sqlite3_bind_blob(st, 2, hashes[i], 32, SQLITE_STATIC);
        if ((rc = exec_done(s, st, "recovery_set")))
            return rc;
    }
    return DTM_OK;
}

static int s_recovery_use(struct dtm_store *s, const char *username, const uint8_t hash[32],
                          int64_t now)
{
    sqlite3_stmt *st = stmt(s, Q_RECOV_USE);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, username);
    sqlite3_bind_blob(st, 2, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    if ((rc = exec_done(s, st, "recovery_use")))
        return rc;
    return sqlite3_changes(DB(s)) ? DTM_OK : DTM_ENOTFOUND;
}

static int s_receipt_next_seq(struct dtm_store *s, int64_t *seq)
{
    sqlite3_stmt *st = stmt(s, Q_RCPT_NEXT);
    int rc;
    if (!st)
        return DTM_ESTORE;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return fail(s, "receipt_next_seq");
    }
    *seq = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return DTM_OK;
}

static int s_receipt_put(struct dtm_store *s, const struct dtm_receipt *r)
{
    struct sqlite_store *q = (struct sqlite_store *)s;
    sqlite3_stmt *st = stmt(s, Q_RCPT_PUT);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, r->seq);
    bind_text(st, 2, r->id);
    bind_text(st, 3, r->dataset);
    bind_text(st, 4, r->system_code);
    bind_text(st, 5, r->request_id);
    sqlite3_bind_int64(st, 6, r->received_at);
    sqlite3_bind_int64(st, 7, r->accepted);
    sqlite3_bind_int64(st, 8, r->duplicates);
    sqlite3_bind_int64(st, 9, r->updated);
    sqlite3_bind_int64(st, 10, r->rejected);
    bind_opt_i64(st, 11, q->new_min, 0);
    bind_opt_i64(st, 12, q->new_max, 0);
    q->new_min = q->new_max = 0;
    return exec_done(s, st, "receipt_put");
}

static int s_record_put(struct dtm_store *s, const char *dataset, const struct dtm_store_record *r,
                        int64_t receipt_seq, int64_t now, enum dtm_put_outcome *out,
                        dtm_version_cb replaced, void *ctx)
{
    sqlite3_stmt *st;
    int64_t id, ds;
    int rc;
    if ((rc = ds_id(s, dataset, true, &ds)))
        return rc;
    if (!(st = stmt(s, Q_REC_INSERT)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, ds);
    sqlite3_bind_blob(st, 2, r->key_hash, 16, SQLITE_STATIC);
    bind_str(st, 3, r->system_code);
    bind_opt_i64(st, 4, r->event_time, INT64_MIN);
    sqlite3_bind_int64(st, 5, receipt_seq);
    sqlite3_bind_blob(st, 6, r->content_hash, 16, SQLITE_STATIC);
    sqlite3_bind_blob(st, 7, r->content.p, (int)r->content.n, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, now);
    if ((rc = exec_done(s, st, "record_insert")))
        return rc;
    if (sqlite3_changes(DB(s)) == 1) {
        struct sqlite_store *q = (struct sqlite_store *)s;
        int64_t nid = sqlite3_last_insert_rowid(DB(s));
        if (!q->new_min || nid < q->new_min)
            q->new_min = nid;
        if (nid > q->new_max)
            q->new_max = nid;
        *out = DTM_PUT_NEW;
        return DTM_OK;
    }
    /* the key exists: same content → duplicate; else keep the old version in history */
    if (!(st = stmt(s, Q_REC_FIND)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, ds);
    sqlite3_bind_blob(st, 2, r->key_hash, 16, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return fail(s, "record_find");
    }
    id = sqlite3_column_int64(st, 0);
    if (sqlite3_column_bytes(st, 1) == 16 &&
        memcmp(sqlite3_column_blob(st, 1), r->content_hash, 16) == 0) {
        sqlite3_reset(st);
        *out = DTM_PUT_DUPLICATE;
        return DTM_OK;
    }
    if (replaced) {
        struct dtm_record_version v = {
            .revision = sqlite3_column_int64(st, 2),
            .receipt_seq = sqlite3_column_int64(st, 3),
            .received_at = sqlite3_column_int64(st, 4),
            .content = {sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5)}};
        if ((rc = open_content(s, r->key_hash, 16, &v.content)) || (rc = replaced(ctx, &v))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    if (!(st = stmt(s, Q_REC_HISTORY)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, receipt_seq);
    sqlite3_bind_int64(st, 3, id);
    if ((rc = exec_done(s, st, "record_history")))
        return rc;
    if (!(st = stmt(s, Q_REC_UPDATE)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, receipt_seq);
    sqlite3_bind_blob(st, 2, r->content_hash, 16, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, r->content.p, (int)r->content.n, SQLITE_STATIC);
    bind_opt_i64(st, 4, r->event_time, INT64_MIN);
    bind_str(st, 5, r->system_code);
    sqlite3_bind_int64(st, 6, now);
    sqlite3_bind_int64(st, 7, id);
    if ((rc = exec_done(s, st, "record_update")))
        return rc;
    *out = DTM_PUT_UPDATED;
    return DTM_OK;
}

static int s_receipt_get(struct dtm_store *s, int64_t seq, struct dtm_receipt *out)
{
    sqlite3_stmt *st = stmt(s, Q_RCPT_GET);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, seq);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        out->seq = sqlite3_column_int64(st, 0);
        col_text(st, 1, out->id, sizeof(out->id));
        col_text(st, 2, out->dataset, sizeof(out->dataset));
        col_text(st, 3, out->system_code, sizeof(out->system_code));
        col_text(st, 4, out->request_id, sizeof(out->request_id));
        out->received_at = sqlite3_column_int64(st, 5);
        out->accepted = sqlite3_column_int64(st, 6);
        out->duplicates = sqlite3_column_int64(st, 7);
        out->updated = sqlite3_column_int64(st, 8);
        out->rejected = sqlite3_column_int64(st, 9);
        sqlite3_reset(st);
        return DTM_OK;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_ENOTFOUND : fail(s, "receipt_get");
}

static int s_receipt_records(struct dtm_store *s, int64_t seq, size_t limit, dtm_version_cb cb,
                             void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_RCPT_RECORDS);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, (int64_t)limit);
    return version_rows(s, st, cb, ctx, "receipt_records");
}

static int s_record_get(struct dtm_store *s, const char *dataset, const uint8_t key_hash[16],
                        dtm_version_cb cb, void *ctx)
{
    sqlite3_stmt *st;
    int64_t id, ds;
    int rc;
    if ((rc = ds_id(s, dataset, false, &ds)))
        return rc; /* DTM_ENOTFOUND: no record of that dataset at all */
    if (!(st = stmt(s, Q_REC_GET)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, ds);
    sqlite3_bind_blob(st, 2, key_hash, 16, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? DTM_ENOTFOUND : fail(s, "record_get");
    }
    id = sqlite3_column_int64(st, 0);
    struct dtm_record_version cur = {
        .revision = sqlite3_column_int64(st, 1),
        .receipt_seq = sqlite3_column_int64(st, 2),
        .received_at = sqlite3_column_int64(st, 3),
        .content = {sqlite3_column_blob(st, 4), (size_t)sqlite3_column_bytes(st, 4)},
    };
    if ((rc = open_content(s, key_hash, 16, &cur.content)) == DTM_OK)
        rc = cb(ctx, &cur);
    sqlite3_reset(st);
    if (rc)
        return rc;
    if (!(st = stmt(s, Q_REC_GET_HISTORY)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_blob(st, 2, key_hash, 16, SQLITE_STATIC);
    return version_rows(s, st, cb, ctx, "record_history");
}

static int s_idem_get(struct dtm_store *s, const char *system_code, struct dtm_str key,
                      int64_t not_before, struct dtm_idem *out)
{
    sqlite3_stmt *st = stmt(s, Q_IDEM_GET);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, system_code);
    bind_str(st, 2, key);
    sqlite3_bind_int64(st, 3, not_before);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        if (sqlite3_column_bytes(st, 0) == 32)
            memcpy(out->request_hash, sqlite3_column_blob(st, 0), 32);
        out->status = sqlite3_column_int(st, 1);
        out->body_len = (size_t)sqlite3_column_bytes(st, 2);
        out->body = malloc(out->body_len + 1);
        if (!out->body) {
            sqlite3_reset(st);
            return DTM_ENOMEM;
        }
        if (out->body_len)
            memcpy(out->body, sqlite3_column_blob(st, 2), out->body_len);
        out->body[out->body_len] = '\0';
        out->created_at = sqlite3_column_int64(st, 3);
        sqlite3_reset(st);
        return DTM_OK;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_ENOTFOUND : fail(s, "idem_get");
}

static int s_idem_put(struct dtm_store *s, const char *system_code, struct dtm_str key,
                      const struct dtm_idem *v)
{
    sqlite3_stmt *st = stmt(s, Q_IDEM_PUT);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, system_code);
    bind_str(st, 2, key);
    sqlite3_bind_blob(st, 3, v->request_hash, 32, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, v->status);
    sqlite3_bind_blob(st, 5, v->body ? v->body : "", (int)v->body_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, v->created_at);
    return exec_done(s, st, "idem_put");
}

static int s_idem_purge(struct dtm_store *s, int64_t before)
{
    sqlite3_stmt *st = stmt(s, Q_IDEM_PURGE);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, before);
    return exec_done(s, st, "idem_purge");
}

/* Checkpoints copy the WAL into the database and sync it. A PASSIVE checkpoint on another
 * connection does most of that work beside the writer; the writer keeps SQLite's automatic
 * checkpoint (every 1000 pages), which then finds little left to copy and lets its next
 * transaction start the WAL over. (Without the writer's own checkpoint the WAL never wraps under
 * continuous load: it grew to hundreds of MB, and every new frame extended the file, which ext4
 * zero-fills — measured at 14 % of the writer's time.) A larger threshold for the writer
 * (8000 pages) cut the bytes written per record from 10.8 to 9.1 KB but not the CPU per request,
 * and its bigger checkpoints raised p99 by 5-10 ms, so SQLite's default stays. */
static int s_maintain(struct dtm_store *s)
{
    int log = 0, done = 0;
    if (sqlite3_wal_checkpoint_v2(DB(s), NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done) != SQLITE_OK)
        return sqlite3_errcode(DB(s)) == SQLITE_BUSY ? DTM_OK : fail(s, "checkpoint");
    return DTM_OK;
}

static int s_tune_writer(struct dtm_store *s)
{
    if (sqlite3_exec(DB(s), "PRAGMA main.cache_size=-65536;", NULL, NULL, NULL) != SQLITE_OK)
        return fail(s, "tune_writer");
    return DTM_OK;
}

static int s_record_scan(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                         bool ordered, dtm_version_cb cb, void *ctx)
{
    bool all = from == INT64_MIN && to == INT64_MAX;
    sqlite3_stmt *st;
    int64_t ds;
    int rc = ds_id(s, dataset, false, &ds);
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    if (!(st = stmt(s, !all ? Q_REC_SCAN : ordered ? Q_REC_SCAN_ALL : Q_REC_SCAN_TABLE)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, ds);
    if (!all) {
        sqlite3_bind_int64(st, 2, from);
        sqlite3_bind_int64(st, 3, to);
    }
    return version_rows(s, st, cb, ctx, "record_scan");
}

static int s_record_scan_table(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                               dtm_version_cb cb, void *ctx)
{
    sqlite3_stmt *st;
    int64_t ds;
    int rc = ds_id(s, dataset, false, &ds);
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    if (!(st = stmt(s, Q_REC_SCAN_TABLE_RANGE)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, ds);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, to);
    return version_rows(s, st, cb, ctx, "record_scan_table");
}

static int s_record_id_split(struct dtm_store *s, int64_t *mid)
{
    sqlite3_stmt *st = stmt(s, Q_REC_ID_RANGE);
    if (!st)
        return DTM_ESTORE;
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_type(st, 0) == SQLITE_NULL) {
        sqlite3_reset(st);
        return DTM_ENOTFOUND; /* no record at all */
    }
    *mid = sqlite3_column_int64(st, 0) +
           (sqlite3_column_int64(st, 1) - sqlite3_column_int64(st, 0) + 1) / 2;
    sqlite3_reset(st);
    return DTM_OK;
}

static int s_record_scan_part(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                              int64_t id_from, int64_t id_to, dtm_version_cb cb, void *ctx)
{
    bool all = from == INT64_MIN && to == INT64_MAX;
    sqlite3_stmt *st;
    int64_t ds;
    int rc = ds_id(s, dataset, false, &ds);
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    if (!(st = stmt(s, all ? Q_REC_SCAN_PART_ALL : Q_REC_SCAN_PART)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, id_from);
    sqlite3_bind_int64(st, 2, id_to);
    sqlite3_bind_int64(st, 3, ds);
    if (!all) {
        sqlite3_bind_int64(st, 4, from);
        sqlite3_bind_int64(st, 5, to);
    }
    return version_rows(s, st, cb, ctx, "record_scan_part");
}

static int s_reopen(struct dtm_store *s, struct dtm_store **out)
{
    char err[256];
    int rc = dtm_store_sqlite_open(((struct sqlite_store *)s)->path, out, err, sizeof(err));
    if (rc == DTM_OK)
        (*out)->keys = s->keys; /* T4.2 */
    return rc;
}

static void bind_batch(sqlite3_stmt *st, const struct dtm_batch *b)
{
    const int64_t n[] = {b->bytes,    b->byte_offset, b->next_row,   b->total,
                         b->accepted, b->duplicates,  b->updated,    b->rejected,
                         b->nerrors,  b->created_at,  b->started_at, b->finished_at};
    bind_text(st, 1, b->id);
    bind_text(st, 2, b->system_code);
    bind_text(st, 3, b->dataset);
    bind_text(st, 4, b->format);
    bind_text(st, 5, b->origin);
    bind_text(st, 6, b->status);
    sqlite3_bind_int(st, 7, b->priority);
    sqlite3_bind_int(st, 8, b->masked);
    bind_text(st, 9, b->source);
    for (int i = 0; i < (int)DTM_ARRAY_LEN(n); i++)
        sqlite3_bind_int64(st, 10 + i, n[i]);
    bind_text(st, 22, b->error);
}

static void read_batch(sqlite3_stmt *st, struct dtm_batch *b)
{
    int64_t *n[] = {&b->bytes,    &b->byte_offset, &b->next_row,   &b->total,
                    &b->accepted, &b->duplicates,  &b->updated,    &b->rejected,
                    &b->nerrors,  &b->created_at,  &b->started_at, &b->finished_at};
    memset(b, 0, sizeof(*b));
    col_text(st, 0, b->id, sizeof(b->id));
    col_text(st, 1, b->system_code, sizeof(b->system_code));
    col_text(st, 2, b->dataset, sizeof(b->dataset));
    col_text(st, 3, b->format, sizeof(b->format));
    col_text(st, 4, b->origin, sizeof(b->origin));
    col_text(st, 5, b->status, sizeof(b->status));
    b->priority = sqlite3_column_int(st, 6);
    b->masked = sqlite3_column_int(st, 7) != 0;
    col_text(st, 8, b->source, sizeof(b->source));
    for (int i = 0; i < (int)DTM_ARRAY_LEN(n); i++)
        *n[i] = sqlite3_column_int64(st, 9 + i);
    col_text(st, 21, b->error, sizeof(b->error));
}

static int s_batch_put(struct dtm_store *s, const struct dtm_batch *b)
{
    sqlite3_stmt *st = stmt(s, Q_BATCH_PUT);
    if (!st)
        return DTM_ESTORE;
    bind_batch(st, b);
    return exec_done(s, st, "batch_put");
}

static int s_batch_update(struct dtm_store *s, const struct dtm_batch *b)
{
    sqlite3_stmt *st = stmt(s, Q_BATCH_UPDATE);
    if (!st)
        return DTM_ESTORE;
    bind_batch(st, b);
    return exec_done(s, st, "batch_update");
}

static int s_batch_get(struct dtm_store *s, const char *id, struct dtm_batch *out)
{
    sqlite3_stmt *st = stmt(s, Q_BATCH_GET);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_batch(st, out);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? DTM_OK : rc == SQLITE_DONE ? DTM_ENOTFOUND : fail(s, "batch_get");
}

/* Runs a batch query and hands each row to cb. */
static int batch_rows(struct dtm_store *s, sqlite3_stmt *st, dtm_batch_cb cb, void *ctx)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_batch b;
        read_batch(st, &b);
        if ((rc = cb(ctx, &b))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "batch_list");
}

static int s_batch_list(struct dtm_store *s, const char *system_code, size_t limit, dtm_batch_cb cb,
                        void *ctx)
{
    sqlite3_stmt *st = stmt(s, system_code ? Q_BATCH_LIST : Q_BATCH_LIST_ALL);
    if (!st)
        return DTM_ESTORE;
    if (system_code) {
        bind_text(st, 1, system_code);
        sqlite3_bind_int64(st, 2, (int64_t)limit);
    } else {
        sqlite3_bind_int64(st, 1, (int64_t)limit);
    }
    return batch_rows(s, st, cb, ctx);
}

static int s_batch_pending(struct dtm_store *s, const char *origin, dtm_batch_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_BATCH_PENDING);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, origin);
    return batch_rows(s, st, cb, ctx);
}

static int s_batch_error_put(struct dtm_store *s, const char *batch_id,
                             const struct dtm_batch_error *e)
{
    sqlite3_stmt *st = stmt(s, Q_BATCH_ERR_PUT);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, batch_id);
    sqlite3_bind_int64(st, 2, e->seq);
    sqlite3_bind_int64(st, 3, e->row);
    sqlite3_bind_int64(st, 4, e->line);
    bind_text(st, 5, e->field);
    bind_text(st, 6, e->code);
    bind_text(st, 7, e->arg);
    sqlite3_bind_int(st, 8, e->rule);
    return exec_done(s, st, "batch_error_put");
}

static int s_batch_errors(struct dtm_store *s, const char *batch_id, int64_t after, size_t limit,
                          dtm_batch_error_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_BATCH_ERRS);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, batch_id);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, (int64_t)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_batch_error e = {
            .seq = sqlite3_column_int64(st, 0),
            .row = sqlite3_column_int64(st, 1),
            .line = sqlite3_column_int64(st, 2),
            .rule = sqlite3_column_int(st, 6),
        };
        col_text(st, 3, e.field, sizeof(e.field));
        col_text(st, 4, e.code, sizeof(e.code));
        col_text(st, 5, e.arg, sizeof(e.arg));
        if ((rc = cb(ctx, &e))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "batch_errors");
}

static int s_set_durable(struct dtm_store *s, bool durable)
{
    if (sqlite3_exec(DB(s),
                     durable ? "PRAGMA main.synchronous=FULL" : "PRAGMA main.synchronous=NORMAL",
                     NULL, NULL, NULL) != SQLITE_OK)
        return fail(s, "set_durable");
    return DTM_OK;
}

/* ---- live rollups */

static int s_cube_id(struct dtm_store *s, const char *dataset, const char *dims, bool create,
                     int64_t *id, bool *complete)
{
    sqlite3_stmt *st;
    int64_t ds;
    int rc;
    if ((rc = ds_id(s, dataset, create, &ds)))
        return rc;
    if (!(st = stmt(s, Q_CUBE_GET)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, ds);
    bind_text(st, 2, dims);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        *complete = sqlite3_column_int(st, 1) != 0;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return DTM_OK;
    if (rc != SQLITE_DONE)
        return fail(s, "cube_get");
    if (!create)
        return DTM_ENOTFOUND;
    /* complete when no record exists yet: every record will pass through it */
    if (!(st = stmt(s, Q_DS_HAS_RECORDS)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, ds);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return fail(s, "dataset_has_records");
    *complete = rc == SQLITE_DONE;
    if (!(st = stmt(s, Q_CUBE_ADD)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, ds);
    bind_text(st, 2, dims);
    sqlite3_bind_int(st, 3, *complete);
    if ((rc = exec_done(s, st, "cube_add")))
        return rc;
    *id = sqlite3_last_insert_rowid(DB(s));
    return DTM_OK;
}

static int s_cube_apply(struct dtm_store *s, int64_t cube, int grain, int64_t bucket,
                        const void *dims, size_t dimslen, int64_t n, const void *agg, size_t agglen)
{
    sqlite3_stmt *st;
    if (grain == DTM_GRAIN_GAP) {
        if (!(st = stmt(s, Q_CUBE_GAP_ADD)))
            return DTM_ESTORE;
        sqlite3_bind_int64(st, 1, cube);
        sqlite3_bind_int64(st, 2, bucket);
        return exec_done(s, st, "cube_gap_add");
    }
    if (!(st = stmt(s, Q_CUBE_APPLY)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, cube);
    sqlite3_bind_int(st, 2, grain);
    sqlite3_bind_int64(st, 3, bucket);
    sqlite3_bind_blob(st, 4, dimslen ? dims : "", (int)dimslen, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, n);
    sqlite3_bind_blob(st, 6, agg, (int)agglen, SQLITE_STATIC);
    return exec_done(s, st, "cube_apply");
}

static int cube_rows(struct dtm_store *s, sqlite3_stmt *st, dtm_cube_row_cb cb, void *ctx)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int crc = cb(ctx, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
                     (size_t)sqlite3_column_bytes(st, 1), sqlite3_column_int64(st, 2),
                     sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3));
        if (crc) {
            sqlite3_reset(st);
            return crc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "cube_scan");
}

static int s_cube_scan(struct dtm_store *s, int64_t cube, int grain, int64_t from, int64_t to,
                       const void *prefix, size_t prefixlen, dtm_cube_row_cb cb, void *ctx)
{
    uint8_t end[256];
    size_t k;
    sqlite3_stmt *st;
    int rc;
    /* the tuples that start with prefix are [prefix, prefix with its last byte + 1) */
    if (prefixlen && prefixlen <= sizeof(end)) {
        memcpy(end, prefix, prefixlen);
        for (k = prefixlen; k > 0 && end[k - 1] == 0xff; k--)
            end[k - 1] = 0;
        if (k > 0 && from != INT64_MIN && to != INT64_MAX) {
            end[k - 1]++;
            for (int64_t b = from; b < to; b++) {
                if (!(st = stmt(s, Q_CUBE_SEEK)))
                    return DTM_ESTORE;
                sqlite3_bind_int64(st, 1, cube);
                sqlite3_bind_int(st, 2, grain);
                sqlite3_bind_int64(st, 3, b);
                sqlite3_bind_blob(st, 4, prefix, (int)prefixlen, SQLITE_STATIC);
                sqlite3_bind_blob(st, 5, end, (int)k, SQLITE_STATIC);
                if ((rc = cube_rows(s, st, cb, ctx)))
                    return rc;
            }
            return DTM_OK;
        }
    }
    /* no usable prefix: the whole range (the caller filters) */
    if (!(st = stmt(s, Q_CUBE_SCAN)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, cube);
    sqlite3_bind_int(st, 2, grain);
    sqlite3_bind_int64(st, 3, from);
    sqlite3_bind_int64(st, 4, to);
    return cube_rows(s, st, cb, ctx);
}

static int s_cube_reset(struct dtm_store *s, int64_t cube, bool complete)
{
    sqlite3_stmt *st = stmt(s, Q_CUBE_CLEAR);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, cube);
    if ((rc = exec_done(s, st, "cube_clear")))
        return rc;
    if (!(st = stmt(s, Q_CUBE_GAP_CLEAR)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, cube);
    if ((rc = exec_done(s, st, "cube_gap_clear")))
        return rc;
    if (!(st = stmt(s, Q_CUBE_MARK)))
        return DTM_ESTORE;
    sqlite3_bind_int(st, 1, complete);
    sqlite3_bind_int64(st, 2, cube);
    return exec_done(s, st, "cube_mark");
}

static int s_cube_purge(struct dtm_store *s, int grain, int64_t before)
{
    int64_t ids[256];
    size_t n = 0;
    sqlite3_stmt *st = stmt(s, Q_CUBE_LIST);
    int rc;
    if (!st)
        return DTM_ESTORE;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < DTM_ARRAY_LEN(ids))
        ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return fail(s, "cube_list");
    for (size_t i = 0; i < n; i++) {
        if (!(st = stmt(s, Q_CUBE_PURGE)))
            return DTM_ESTORE;
        sqlite3_bind_int64(st, 1, ids[i]);
        sqlite3_bind_int(st, 2, grain);
        sqlite3_bind_int64(st, 3, before);
        if ((rc = exec_done(s, st, "cube_purge")))
            return rc;
        if (grain != DTM_GRAIN_HOUR)
            continue;
        if (!(st = stmt(s, Q_CUBE_GAP_PURGE)))
            return DTM_ESTORE;
        sqlite3_bind_int64(st, 1, ids[i]);
        sqlite3_bind_int64(st, 2, before);
        if ((rc = exec_done(s, st, "cube_gap_purge")))
            return rc;
    }
    return DTM_OK;
}

static int s_cube_gap_any(struct dtm_store *s, int64_t cube, int64_t from, int64_t to, bool *any)
{
    sqlite3_stmt *st = stmt(s, Q_CUBE_GAP_ANY);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, cube);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, to);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return fail(s, "cube_gap_any");
    *any = rc == SQLITE_ROW;
    return DTM_OK;
}

static int s_cube_applied(struct dtm_store *s, int64_t seq)
{
    sqlite3_stmt *st = stmt(s, Q_CUBE_APPLIED);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, seq);
    return exec_done(s, st, "cube_applied");
}

static int s_cube_invalidate(struct dtm_store *s)
{
    sqlite3_stmt *st = stmt(s, Q_CUBE_ALL_INCOMPLETE);
    return st ? exec_done(s, st, "cube_incomplete") : DTM_ESTORE;
}

static int s_cube_check(struct dtm_store *s, bool *lagging)
{
    sqlite3_stmt *st = stmt(s, Q_CUBE_LAG);
    int64_t last = 0, applied = 0;
    int rc;
    if (!st)
        return DTM_ESTORE;
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        last = sqlite3_column_int64(st, 0);
        applied = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return fail(s, "cube_lag");
    *lagging = applied < last;
    if (!*lagging)
        return DTM_OK;
    if ((rc = s_cube_invalidate(s)))
        return rc;
    return s_cube_applied(s, last);
}

/* dtm_agg_merge(stored, delta) for the cube upsert */
static void sql_agg_merge(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    struct dtm_buf out;
    (void)argc;
    dtm_buf_init(&out, 1 << 20);
    if (dtm_agg_merge(sqlite3_value_blob(argv[0]), (size_t)sqlite3_value_bytes(argv[0]),
                      sqlite3_value_blob(argv[1]), (size_t)sqlite3_value_bytes(argv[1]),
                      &out) != DTM_OK) {
        dtm_buf_free(&out);
        sqlite3_result_error(cx, "broken cube aggregate", -1);
        return;
    }
    sqlite3_result_blob(cx, out.p, (int)out.n, SQLITE_TRANSIENT);
    dtm_buf_free(&out);
}

/* ---- grants */

static int s_grant_put(struct dtm_store *s, const char *system_code, const char *dataset,
                       int64_t now)
{
    sqlite3_stmt *st = stmt(s, Q_GRANT_PUT);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, system_code);
    bind_text(st, 2, dataset);
    sqlite3_bind_int64(st, 3, now);
    if ((rc = exec_done(s, st, "grant_put")))
        return rc; /* DTM_EEXIST here: no such system (foreign key) */
    return sqlite3_changes(DB(s)) == 1 ? DTM_OK : DTM_EEXIST;
}

static int s_grant_delete(struct dtm_store *s, const char *system_code, const char *dataset)
{
    sqlite3_stmt *st = stmt(s, Q_GRANT_DEL);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, system_code);
    bind_text(st, 2, dataset);
    if ((rc = exec_done(s, st, "grant_delete")))
        return rc;
    return sqlite3_changes(DB(s)) == 1 ? DTM_OK : DTM_ENOTFOUND;
}

static int s_grant_check(struct dtm_store *s, const char *system_code, const char *dataset)
{
    sqlite3_stmt *st = stmt(s, Q_GRANT_CHECK);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, system_code);
    bind_text(st, 2, dataset);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? DTM_OK : rc == SQLITE_DONE ? DTM_ENOTFOUND : fail(s, "grant_check");
}

static int s_grant_list(struct dtm_store *s, const char *system_code, dtm_grant_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, system_code ? Q_GRANT_LIST : Q_GRANT_LIST_ALL);
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (system_code)
        bind_text(st, 1, system_code);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_grant g;
        col_text(st, 0, g.system_code, sizeof(g.system_code));
        col_text(st, 1, g.dataset, sizeof(g.dataset));
        g.granted_at = sqlite3_column_int64(st, 2);
        if ((rc = cb(ctx, &g))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "grant_list");
}

/* ---- record pages (exports) and retention */

#define PAGE_MAX_SYSTEMS 256

/* The page statement: the cached one without a systems filter; with one, a statement made for
 * this call (the list has a varying length; *own says it must be finalized). */
static sqlite3_stmt *page_stmt(struct dtm_store *s, bool timed, size_t nsystems, bool *own)
{
    struct dtm_buf q;
    sqlite3_stmt *st = NULL;
    *own = false;
    if (!nsystems)
        return stmt(s, timed ? Q_REC_PAGE : Q_REC_PAGE_NOTIME);
    dtm_buf_init(&q, 16384);
    dtm_buf_addc(&q, PAGE_COLS);
    dtm_buf_addc(&q, timed ? PAGE_TIMED : PAGE_NOTIME);
    dtm_buf_addc(&q, " AND r.system_code IN (");
    for (size_t i = 0; i < nsystems; i++)
        dtm_buf_printf(&q, "%s?%zu", i ? "," : "", i + 7);
    dtm_buf_addch(&q, ')');
    dtm_buf_addc(&q, timed ? PAGE_TIMED_ORDER : PAGE_NOTIME_ORDER);
    if (!q.err && sqlite3_prepare_v2(DB(s), q.p, (int)q.n, &st, NULL) != SQLITE_OK) {
        fail(s, "record_page");
        st = NULL;
    }
    dtm_buf_free(&q);
    *own = st != NULL;
    return st;
}

/* One query of record_page; *n counts the rows handed out. */
static int page_query(struct dtm_store *s, int64_t ds, bool timed, int64_t from, int64_t to,
                      int64_t after_time, int64_t after_id, const char *const *systems,
                      size_t nsystems, size_t limit, dtm_record_row_cb cb, void *ctx, size_t *n)
{
    bool own, stopped = false;
    sqlite3_stmt *st = page_stmt(s, timed, nsystems, &own);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, ds);
    sqlite3_bind_int64(st, 2, DTM_MAX(from, after_time));
    sqlite3_bind_int64(st, 3, to);
    sqlite3_bind_int64(st, 4, after_time);
    sqlite3_bind_int64(st, 5, after_id);
    sqlite3_bind_int64(st, 6, (int64_t)DTM_MIN(limit, (size_t)INT64_MAX));
    for (size_t i = 0; i < nsystems; i++)
        bind_text(st, (int)i + 7, systems[i]);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_record_row row = {
            .id = sqlite3_column_int64(st, 0),
            .event_time =
                sqlite3_column_type(st, 1) == SQLITE_NULL ? INT64_MAX : sqlite3_column_int64(st, 1),
            .system_code = {(const char *)sqlite3_column_text(st, 2),
                            (size_t)sqlite3_column_bytes(st, 2)},
            .sender = {(const char *)sqlite3_column_text(st, 3),
                       (size_t)sqlite3_column_bytes(st, 3)},
            .content = {sqlite3_column_blob(st, 4), (size_t)sqlite3_column_bytes(st, 4)},
        };
        (*n)++;
        if ((rc = open_content(s, sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5),
                               &row.content)) ||
            (rc = cb(ctx, &row))) {
            stopped = true;
            break;
        }
    }
    /* rc: the callback's result, SQLITE_DONE at the end, or an SQLite error */
    if (!stopped)
        rc = rc == SQLITE_DONE ? DTM_OK : fail(s, "record_page");
    if (own)
        sqlite3_finalize(st);
    else
        sqlite3_reset(st);
    return rc;
}

static int s_record_page(struct dtm_store *s, const char *dataset, int64_t from, int64_t to,
                         int64_t after_time, int64_t after_id, const char *const *systems,
                         size_t nsystems, size_t limit, dtm_record_row_cb cb, void *ctx)
{
    size_t n = 0;
    int64_t ds;
    int rc = ds_id(s, dataset, false, &ds);
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    if (nsystems > PAGE_MAX_SYSTEMS)
        return DTM_ETOOBIG;
    if (limit == 0)
        return DTM_OK;
    if (after_time != INT64_MAX) {
        rc = page_query(s, ds, true, from, to, after_time, after_id, systems, nsystems, limit, cb,
                        ctx, &n);
        if (rc || n == limit)
            return rc;
        after_id = 0;
    }
    if (from != INT64_MIN || to != INT64_MAX)
        return DTM_OK;
    return page_query(s, ds, false, from, to, INT64_MAX, after_id, systems, nsystems, limit - n, cb,
                      ctx, &n);
}

static int s_record_purge(struct dtm_store *s, const char *dataset, int64_t before, size_t limit,
                          int64_t *removed)
{
    static const enum stmt_id steps[] = {Q_PURGE_HISTORY, Q_PURGE_RECORDS};
    int64_t ds;
    sqlite3_stmt *st;
    int rc = ds_id(s, dataset, false, &ds);
    *removed = 0;
    if (rc)
        return rc == DTM_ENOTFOUND ? DTM_OK : rc;
    /* the history first: both select the same oldest records inside the transaction */
    for (size_t i = 0; i < DTM_ARRAY_LEN(steps); i++) {
        if (!(st = stmt(s, steps[i])))
            return DTM_ESTORE;
        sqlite3_bind_int64(st, 1, ds);
        sqlite3_bind_int64(st, 2, before);
        sqlite3_bind_int64(st, 3, limit ? (int64_t)limit : -1);
        if ((rc = exec_done(s, st, "record_purge")))
            return rc;
    }
    *removed = sqlite3_changes(DB(s));
    if (!(st = stmt(s, Q_PURGE_CUBES)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, ds);
    sqlite3_bind_int64(st, 2, dtm_cube_bucket(DTM_GRAIN_HOUR, before));
    sqlite3_bind_int64(st, 3, dtm_cube_bucket(DTM_GRAIN_DAY, before));
    sqlite3_bind_int64(st, 4, INT64_MIN); /* the rows of records without a time stay */
    return exec_done(s, st, "record_purge_rollups");
}

/* ---- the audit trail */

static int s_audit_head(struct dtm_store *s, int64_t *seq, uint8_t hash[32])
{
    sqlite3_stmt *st = stmt(s, Q_AUDIT_HEAD);
    int rc;
    *seq = 0;
    memset(hash, 0, 32);
    if (!st)
        return DTM_ESTORE;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *h = sqlite3_column_blob(st, 1);
        *seq = sqlite3_column_int64(st, 0);
        if (h && sqlite3_column_bytes(st, 1) == 32)
            memcpy(hash, h, 32);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? DTM_OK : fail(s, "audit_head");
}

static int s_audit_append(struct dtm_store *s, struct dtm_audit_entry *e, dtm_audit_seal_fn seal,
                          void *ctx)
{
    sqlite3_stmt *st;
    int rc;
    if ((rc = s_audit_head(s, &e->seq, e->prev_hash)))
        return rc;
    e->seq++;
    if ((rc = seal(ctx, e)))
        return rc;
    if (!(st = stmt(s, Q_AUDIT_PUT)))
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, e->seq);
    sqlite3_bind_int64(st, 2, e->at);
    bind_text(st, 3, e->actor_kind);
    bind_text(st, 4, e->actor);
    bind_text(st, 5, e->action);
    bind_text(st, 6, e->target);
    bind_text(st, 7, e->detail);
    bind_text(st, 8, e->source_ip);
    sqlite3_bind_blob(st, 9, e->prev_hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 10, e->hash, 32, SQLITE_STATIC);
    return exec_done(s, st, "audit_append");
}

/* A blob column of 32 bytes into out; anything else (an altered row) as far as it goes, the rest
 * zero — verification then reports the mismatch. */
static void col_hash(sqlite3_stmt *st, int i, uint8_t out[32])
{
    const void *p = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    memset(out, 0, 32);
    if (p && n > 0)
        memcpy(out, p, (size_t)DTM_MIN(n, 32));
}

static int s_audit_list(struct dtm_store *s, const struct dtm_audit_filter *f, int64_t after_seq,
                        size_t limit, dtm_audit_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_AUDIT_LIST);
    struct dtm_audit_entry *e;
    int rc;
    if (!st)
        return DTM_ESTORE;
    if (!(e = malloc(sizeof(*e))))
        return DTM_ENOMEM;
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, f ? f->from : INT64_MIN);
    sqlite3_bind_int64(st, 3, f ? f->to : INT64_MAX);
    if (f && f->actor)
        bind_text(st, 4, f->actor);
    if (f && f->action)
        bind_text(st, 5, f->action);
    sqlite3_bind_int64(st, 6, limit ? (int64_t)limit : -1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        e->seq = sqlite3_column_int64(st, 0);
        e->at = sqlite3_column_int64(st, 1);
        col_text(st, 2, e->actor_kind, sizeof(e->actor_kind));
        col_text(st, 3, e->actor, sizeof(e->actor));
        col_text(st, 4, e->action, sizeof(e->action));
        col_text(st, 5, e->target, sizeof(e->target));
        col_text(st, 6, e->detail, sizeof(e->detail));
        col_text(st, 7, e->source_ip, sizeof(e->source_ip));
        col_hash(st, 8, e->prev_hash);
        col_hash(st, 9, e->hash);
        if ((rc = cb(ctx, e))) {
            sqlite3_reset(st);
            free(e);
            return rc;
        }
    }
    sqlite3_reset(st);
    free(e);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "audit_list");
}

/* ---- alerts and the vulnerability register (alert/, issue 5 items 8 and 10): few rows, so
 * their statements are prepared per call */

static sqlite3_stmt *prep(struct dtm_store *s, const char *text)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(DB(s), text, -1, &st, NULL) != SQLITE_OK) {
        fail(s, text);
        return NULL;
    }
    return st;
}

/* Runs a statement that returns no rows, then finalizes it. */
static int run_done(struct dtm_store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st), out = DTM_OK;
    if (rc != SQLITE_DONE)
        out = rc == SQLITE_CONSTRAINT ? DTM_EEXIST : fail(s, what);
    sqlite3_finalize(st);
    return out;
}

#define ALERT_COLS                                                                                 \
    "id,rule,key,severity,state,title,detail,first_seen,last_seen,count,acknowledged_by,"          \
    "acknowledged_at,resolved_by,resolved_at,suppressed"

static void read_alert(sqlite3_stmt *st, struct dtm_alert *a)
{
    memset(a, 0, sizeof(*a));
    a->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, a->rule, sizeof(a->rule));
    col_text(st, 2, a->key, sizeof(a->key));
    col_text(st, 3, a->severity, sizeof(a->severity));
    col_text(st, 4, a->state, sizeof(a->state));
    col_text(st, 5, a->title, sizeof(a->title));
    col_text(st, 6, a->detail, sizeof(a->detail));
    a->first_seen = sqlite3_column_int64(st, 7);
    a->last_seen = sqlite3_column_int64(st, 8);
    a->count = sqlite3_column_int64(st, 9);
    col_text(st, 10, a->acknowledged_by, sizeof(a->acknowledged_by));
    a->acknowledged_at = sqlite3_column_int64(st, 11);
    col_text(st, 12, a->resolved_by, sizeof(a->resolved_by));
    a->resolved_at = sqlite3_column_int64(st, 13);
    a->suppressed = sqlite3_column_int(st, 14) != 0;
}

/* Binds the members alert_update writes, from ?2 on. */
static void bind_alert_state(sqlite3_stmt *st, const struct dtm_alert *a)
{
    bind_text(st, 2, a->severity);
    bind_text(st, 3, a->state);
    bind_text(st, 4, a->title);
    bind_text(st, 5, a->detail[0] ? a->detail : "{}");
    sqlite3_bind_int64(st, 6, a->last_seen);
    sqlite3_bind_int64(st, 7, a->count);
    bind_text(st, 8, a->acknowledged_by);
    sqlite3_bind_int64(st, 9, a->acknowledged_at);
    bind_text(st, 10, a->resolved_by);
    sqlite3_bind_int64(st, 11, a->resolved_at);
    sqlite3_bind_int(st, 12, a->suppressed);
}

static int s_alert_insert(struct dtm_store *s, struct dtm_alert *a)
{
    sqlite3_stmt *st = prep(s, "INSERT INTO alerts(severity,state,title,detail,last_seen,count,"
                               "acknowledged_by,acknowledged_at,resolved_by,resolved_at,"
                               "suppressed,rule,key,first_seen) "
                               "VALUES(?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)");
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_alert_state(st, a);
    bind_text(st, 13, a->rule);
    bind_text(st, 14, a->key);
    sqlite3_bind_int64(st, 15, a->first_seen);
    if ((rc = run_done(s, st, "alert_insert")) == DTM_OK)
        a->id = sqlite3_last_insert_rowid(DB(s));
    return rc;
}

static int s_alert_update(struct dtm_store *s, const struct dtm_alert *a)
{
    sqlite3_stmt *st = prep(s, "UPDATE alerts SET severity=?2,state=?3,title=?4,detail=?5,"
                               "last_seen=?6,count=?7,acknowledged_by=?8,acknowledged_at=?9,"
                               "resolved_by=?10,resolved_at=?11,suppressed=?12 WHERE id=?1");
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, a->id);
    bind_alert_state(st, a);
    if ((rc = run_done(s, st, "alert_update")) == DTM_OK && sqlite3_changes(DB(s)) == 0)
        rc = DTM_ENOTFOUND;
    return rc;
}

/* Steps a statement that returns at most one alert, then finalizes it. */
static int one_alert(struct dtm_store *s, sqlite3_stmt *st, struct dtm_alert *out, const char *what)
{
    int rc = sqlite3_step(st), out_rc = DTM_ENOTFOUND;
    if (rc == SQLITE_ROW) {
        read_alert(st, out);
        out_rc = DTM_OK;
    } else if (rc != SQLITE_DONE) {
        out_rc = fail(s, what);
    }
    sqlite3_finalize(st);
    return out_rc;
}

static int s_alert_get(struct dtm_store *s, int64_t id, struct dtm_alert *out)
{
    sqlite3_stmt *st = prep(s, "SELECT " ALERT_COLS " FROM alerts WHERE id=?1");
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, id);
    return one_alert(s, st, out, "alert_get");
}

static int s_alert_open(struct dtm_store *s, const char *rule, const char *key,
                        struct dtm_alert *out)
{
    sqlite3_stmt *st = prep(s, "SELECT " ALERT_COLS " FROM alerts WHERE rule=?1 AND key=?2 AND "
                               "state IN ('firing','acknowledged') ORDER BY id DESC LIMIT 1");
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, rule);
    bind_text(st, 2, key);
    return one_alert(s, st, out, "alert_open");
}

static int s_alert_last_resolved(struct dtm_store *s, const char *rule, const char *key,
                                 int64_t *at)
{
    sqlite3_stmt *st = prep(s, "SELECT coalesce(max(resolved_at),0) FROM alerts WHERE rule=?1 AND "
                               "key=?2 AND state='resolved'");
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, rule);
    bind_text(st, 2, key);
    *at = 0;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *at = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? DTM_OK : fail(s, "alert_last_resolved");
}

static int s_alert_list(struct dtm_store *s, const struct dtm_alert_filter *f, int64_t before_id,
                        size_t limit, dtm_alert_cb cb, void *ctx)
{
    sqlite3_stmt *st = prep(s, "SELECT " ALERT_COLS " FROM alerts WHERE id<?1 AND "
                               "(?2 IS NULL OR state=?2) AND (?3 IS NULL OR severity=?3) AND "
                               "(?4 IS NULL OR rule=?4) AND last_seen>=?5 AND last_seen<?6 "
                               "ORDER BY id DESC LIMIT ?7");
    struct dtm_alert *a;
    int rc, out = DTM_OK;
    if (!st)
        return DTM_ESTORE;
    if (!(a = malloc(sizeof(*a)))) {
        sqlite3_finalize(st);
        return DTM_ENOMEM;
    }
    sqlite3_bind_int64(st, 1, before_id > 0 ? before_id : INT64_MAX);
    if (f && f->state)
        bind_text(st, 2, f->state);
    if (f && f->severity)
        bind_text(st, 3, f->severity);
    if (f && f->rule)
        bind_text(st, 4, f->rule);
    sqlite3_bind_int64(st, 5, f ? f->from : INT64_MIN);
    sqlite3_bind_int64(st, 6, f ? f->to : INT64_MAX);
    sqlite3_bind_int64(st, 7, limit ? (int64_t)limit : -1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_alert(st, a);
        if ((out = cb(ctx, a)))
            break;
    }
    if (!out && rc != SQLITE_DONE)
        out = fail(s, "alert_list");
    sqlite3_finalize(st);
    free(a);
    return out;
}

static int s_alert_delivery_put(struct dtm_store *s, const struct dtm_alert_delivery *d)
{
    sqlite3_stmt *st = prep(s, "INSERT OR REPLACE INTO alert_deliveries(alert_id,channel,status,"
                               "attempts,error,updated_at,event) VALUES(?1,?2,?3,?4,?5,?6,?7)");
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, d->alert_id);
    bind_text(st, 2, d->channel);
    bind_text(st, 3, d->status);
    sqlite3_bind_int64(st, 4, d->attempts);
    bind_text(st, 5, d->error);
    sqlite3_bind_int64(st, 6, d->updated_at);
    bind_text(st, 7, d->event[0] ? d->event : "fired");
    return run_done(s, st, "alert_delivery_put");
}

/* alert_id < 0: every pending delivery */
static int deliveries(struct dtm_store *s, int64_t alert_id, dtm_alert_delivery_cb cb, void *ctx)
{
    sqlite3_stmt *st =
        prep(s, alert_id >= 0 ? "SELECT alert_id,channel,status,attempts,error,updated_at,"
                                "event FROM alert_deliveries WHERE alert_id=?1 "
                                "ORDER BY event,channel"
                              : "SELECT alert_id,channel,status,attempts,error,updated_at,"
                                "event FROM alert_deliveries WHERE status='pending' "
                                "ORDER BY alert_id,event,channel");
    struct dtm_alert_delivery d;
    int rc, out = DTM_OK;
    if (!st)
        return DTM_ESTORE;
    if (alert_id >= 0)
        sqlite3_bind_int64(st, 1, alert_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&d, 0, sizeof(d));
        d.alert_id = sqlite3_column_int64(st, 0);
        col_text(st, 1, d.channel, sizeof(d.channel));
        col_text(st, 2, d.status, sizeof(d.status));
        d.attempts = sqlite3_column_int64(st, 3);
        col_text(st, 4, d.error, sizeof(d.error));
        d.updated_at = sqlite3_column_int64(st, 5);
        col_text(st, 6, d.event, sizeof(d.event));
        if ((out = cb(ctx, &d)))
            break;
    }
    if (!out && rc != SQLITE_DONE)
        out = fail(s, "alert_deliveries");
    sqlite3_finalize(st);
    return out;
}

static int s_alert_deliveries(struct dtm_store *s, int64_t alert_id, dtm_alert_delivery_cb cb,
                              void *ctx)
{
    return deliveries(s, alert_id < 0 ? 0 : alert_id, cb, ctx);
}

static int s_alert_deliveries_pending(struct dtm_store *s, dtm_alert_delivery_cb cb, void *ctx)
{
    return deliveries(s, -1, cb, ctx);
}

#define VULN_COLS                                                                                  \
    "id,title,severity,found,remediation_plan,deadline,status,created_by,created_at,updated_at"

static void read_vuln(sqlite3_stmt *st, struct dtm_vuln *v)
{
    memset(v, 0, sizeof(*v));
    v->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, v->title, sizeof(v->title));
    col_text(st, 2, v->severity, sizeof(v->severity));
    col_text(st, 3, v->found, sizeof(v->found));
    col_text(st, 4, v->remediation_plan, sizeof(v->remediation_plan));
    col_text(st, 5, v->deadline, sizeof(v->deadline));
    col_text(st, 6, v->status, sizeof(v->status));
    col_text(st, 7, v->created_by, sizeof(v->created_by));
    v->created_at = sqlite3_column_int64(st, 8);
    v->updated_at = sqlite3_column_int64(st, 9);
}

static void bind_vuln(sqlite3_stmt *st, const struct dtm_vuln *v)
{
    bind_text(st, 2, v->title);
    bind_text(st, 3, v->severity);
    bind_text(st, 4, v->found);
    bind_text(st, 5, v->remediation_plan);
    bind_text(st, 6, v->deadline);
    bind_text(st, 7, v->status);
    sqlite3_bind_int64(st, 8, v->updated_at);
}

static int s_vuln_insert(struct dtm_store *s, struct dtm_vuln *v)
{
    sqlite3_stmt *st = prep(s, "INSERT INTO vulnerabilities(title,severity,found,remediation_plan,"
                               "deadline,status,updated_at,created_by,created_at) "
                               "VALUES(?2,?3,?4,?5,?6,?7,?8,?9,?10)");
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_vuln(st, v);
    bind_text(st, 9, v->created_by);
    sqlite3_bind_int64(st, 10, v->created_at);
    if ((rc = run_done(s, st, "vuln_insert")) == DTM_OK)
        v->id = sqlite3_last_insert_rowid(DB(s));
    return rc;
}

static int s_vuln_update(struct dtm_store *s, const struct dtm_vuln *v)
{
    sqlite3_stmt *st = prep(s, "UPDATE vulnerabilities SET title=?2,severity=?3,found=?4,"
                               "remediation_plan=?5,deadline=?6,status=?7,updated_at=?8 "
                               "WHERE id=?1");
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, v->id);
    bind_vuln(st, v);
    if ((rc = run_done(s, st, "vuln_update")) == DTM_OK && sqlite3_changes(DB(s)) == 0)
        rc = DTM_ENOTFOUND;
    return rc;
}

static int s_vuln_get(struct dtm_store *s, int64_t id, struct dtm_vuln *out)
{
    sqlite3_stmt *st = prep(s, "SELECT " VULN_COLS " FROM vulnerabilities WHERE id=?1");
    int rc, out_rc = DTM_ENOTFOUND;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_vuln(st, out);
        out_rc = DTM_OK;
    } else if (rc != SQLITE_DONE) {
        out_rc = fail(s, "vuln_get");
    }
    sqlite3_finalize(st);
    return out_rc;
}

static int s_vuln_list(struct dtm_store *s, dtm_vuln_cb cb, void *ctx)
{
    sqlite3_stmt *st = prep(s, "SELECT " VULN_COLS " FROM vulnerabilities ORDER BY id");
    struct dtm_vuln *v;
    int rc, out = DTM_OK;
    if (!st)
        return DTM_ESTORE;
    if (!(v = malloc(sizeof(*v)))) {
        sqlite3_finalize(st);
        return DTM_ENOMEM;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_vuln(st, v);
        if ((out = cb(ctx, v)))
            break;
    }
    if (!out && rc != SQLITE_DONE)
        out = fail(s, "vuln_list");
    sqlite3_finalize(st);
    free(v);
    return out;
}

/* ---- backups (issue 10; backup/) */

static int s_backup_run_add(struct dtm_store *s, const struct dtm_backup_run *r)
{
    sqlite3_stmt *st = prep(s, "INSERT INTO backup_runs(at,path,status,error,bytes,records,ms)"
                               " VALUES(?1,?2,?3,?4,?5,?6,?7)");
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, r->at);
    bind_text(st, 2, r->path);
    bind_text(st, 3, r->status);
    bind_text(st, 4, r->error);
    sqlite3_bind_int64(st, 5, r->bytes);
    sqlite3_bind_int64(st, 6, r->records);
    sqlite3_bind_int64(st, 7, r->ms);
    return run_done(s, st, "backup_run_add");
}

static int s_backup_run_last(struct dtm_store *s, bool ok_only, struct dtm_backup_run *out)
{
    sqlite3_stmt *st = prep(s, "SELECT at,path,status,error,bytes,records,ms FROM backup_runs"
                               " WHERE status=CASE WHEN ?1 THEN 'ok' ELSE status END"
                               " AND status<>'drill' ORDER BY id DESC LIMIT 1");
    int rc, out_rc = DTM_ENOTFOUND;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int(st, 1, ok_only ? 1 : 0);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        out->at = sqlite3_column_int64(st, 0);
        snprintf(out->path, sizeof(out->path), "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(out->status, sizeof(out->status), "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(out->error, sizeof(out->error), "%s", (const char *)sqlite3_column_text(st, 3));
        out->bytes = sqlite3_column_int64(st, 4);
        out->records = sqlite3_column_int64(st, 5);
        out->ms = sqlite3_column_int64(st, 6);
        out_rc = DTM_OK;
    } else if (rc != SQLITE_DONE) {
        out_rc = fail(s, "backup_run_last");
    }
    sqlite3_finalize(st);
    return out_rc;
}

/* ---- data-quality counters (report/qcount.c; migration 23) */

static int s_quality_add(struct dtm_store *s, int64_t day, const char *system_code,
                         const char *dataset, const char *kind, const char *item, int64_t n)
{
    sqlite3_stmt *st = stmt(s, Q_QUAL_ADD);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, day);
    bind_text(st, 2, system_code);
    bind_text(st, 3, dataset);
    bind_text(st, 4, kind);
    bind_text(st, 5, item);
    sqlite3_bind_int64(st, 6, n);
    return exec_done(s, st, "quality_add");
}

static int s_quality_sum(struct dtm_store *s, int64_t day_from, int64_t day_to, dtm_quality_cb cb,
                         void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_QUAL_SUM);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, day_from);
    sqlite3_bind_int64(st, 2, day_to);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t[4];
        for (int i = 0; i < 4; i++) {
            t[i] = (const char *)sqlite3_column_text(st, i);
            if (!t[i])
                t[i] = "";
        }
        if ((rc = cb(ctx, t[0], t[1], t[2], t[3], sqlite3_column_int64(st, 4)))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "quality_sum");
}

/* issue 8: the catalogue's quality summary (store.h catalog_summary) */
static int s_catalog_summary(struct dtm_store *s, int64_t since, dtm_catalog_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_CATALOG_SUM);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, since);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_catalog_row row = {0};
        const char *d = (const char *)sqlite3_column_text(st, 0);
        snprintf(row.dataset, sizeof(row.dataset), "%s", d ? d : "");
        row.accepted = sqlite3_column_int64(st, 1);
        row.duplicates = sqlite3_column_int64(st, 2);
        row.updated = sqlite3_column_int64(st, 3);
        row.rejected = sqlite3_column_int64(st, 4);
        row.receipts = sqlite3_column_int64(st, 5);
        row.systems = sqlite3_column_int64(st, 6);
        row.last_received = sqlite3_column_int64(st, 7);
        if ((rc = cb(ctx, &row))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "catalog_summary");
}

/* ---- kept reports (report/; migration 22) */

static int s_report_claim(struct dtm_store *s, const char *kind, const char *period,
                          const char *lang, int64_t now, int64_t stale_before)
{
    sqlite3_stmt *st = prep(s, "INSERT INTO reports(kind,period,lang,status,claimed_at)"
                               " VALUES(?1,?2,?3,'running',?4) ON CONFLICT(kind,period,lang)"
                               " DO UPDATE SET claimed_at=excluded.claimed_at"
                               " WHERE reports.status='running' AND reports.claimed_at<?5");
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, kind);
    bind_text(st, 2, period);
    bind_text(st, 3, lang);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_int64(st, 5, stale_before);
    if ((rc = run_done(s, st, "report_claim")))
        return rc;
    return sqlite3_changes(DB(s)) > 0 ? DTM_OK : DTM_EEXIST;
}

static int s_report_put(struct dtm_store *s, const char *kind, const char *period, const char *lang,
                        int64_t generated_at, const char *doc, size_t n)
{
    sqlite3_stmt *st = prep(s, "INSERT INTO reports(kind,period,lang,status,claimed_at,"
                               "generated_at,size,document) VALUES(?1,?2,?3,'done',?4,?4,?5,?6)"
                               " ON CONFLICT(kind,period,lang) DO UPDATE SET status='done',"
                               "generated_at=excluded.generated_at,size=excluded.size,"
                               "document=excluded.document");
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, kind);
    bind_text(st, 2, period);
    bind_text(st, 3, lang);
    sqlite3_bind_int64(st, 4, generated_at);
    sqlite3_bind_int64(st, 5, (int64_t)n);
    sqlite3_bind_text(st, 6, doc, (int)n, SQLITE_TRANSIENT);
    return run_done(s, st, "report_put");
}

static void read_report(sqlite3_stmt *st, struct dtm_report_row *r)
{
    memset(r, 0, sizeof(*r));
    col_text(st, 0, r->kind, sizeof(r->kind));
    col_text(st, 1, r->period, sizeof(r->period));
    col_text(st, 2, r->lang, sizeof(r->lang));
    col_text(st, 3, r->status, sizeof(r->status));
    r->claimed_at = sqlite3_column_int64(st, 4);
    r->generated_at = sqlite3_column_int64(st, 5);
    r->size = sqlite3_column_int64(st, 6);
}

#define REPORT_COLS "kind,period,lang,status,claimed_at,generated_at,size"

static int s_report_get(struct dtm_store *s, const char *kind, const char *period, const char *lang,
                        struct dtm_report_row *row, struct dtm_buf *doc)
{
    sqlite3_stmt *st = prep(s, "SELECT " REPORT_COLS ",document FROM reports WHERE kind=?1"
                               " AND period=?2 AND lang=?3 AND status='done'");
    int rc, out = DTM_ENOTFOUND;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, kind);
    bind_text(st, 2, period);
    bind_text(st, 3, lang);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_report(st, row);
        out =
            doc ? dtm_buf_add(doc, sqlite3_column_text(st, 7), (size_t)sqlite3_column_bytes(st, 7))
                : DTM_OK;
    } else if (rc != SQLITE_DONE) {
        out = fail(s, "report_get");
    }
    sqlite3_finalize(st);
    return out;
}

static int s_report_list(struct dtm_store *s, dtm_report_cb cb, void *ctx)
{
    sqlite3_stmt *st = prep(s, "SELECT " REPORT_COLS " FROM reports WHERE status='done'"
                               " ORDER BY generated_at DESC,kind,period,lang");
    struct dtm_report_row row;
    int rc, out = DTM_OK;
    if (!st)
        return DTM_ESTORE;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_report(st, &row);
        if ((out = cb(ctx, &row)))
            break;
    }
    if (!out && rc != SQLITE_DONE)
        out = fail(s, "report_list");
    sqlite3_finalize(st);
    return out;
}

static int s_report_purge(struct dtm_store *s, int64_t before)
{
    sqlite3_stmt *st = prep(s, "DELETE FROM reports WHERE (status='done' AND generated_at<?1)"
                               " OR (status='running' AND claimed_at<?1)");
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, before);
    return run_done(s, st, "report_purge");
}

/* ---- subscriptions (F3; share/, migration 19) */

#define SUB_COLS                                                                                   \
    "id,system_code,dataset,where_json,metrics,group_by,bucket_interval,url,secret,created_at,"    \
    "next_bucket,attempts,next_attempt_at,last_error,delivered,last_delivered_at,lease_owner,"     \
    "lease_until"

static void read_sub(sqlite3_stmt *st, struct dtm_subscription *u)
{
    size_t n = (size_t)sqlite3_column_bytes(st, 8);
    memset(u, 0, sizeof(*u));
    col_text(st, 0, u->id, sizeof(u->id));
    col_text(st, 1, u->system_code, sizeof(u->system_code));
    col_text(st, 2, u->dataset, sizeof(u->dataset));
    col_text(st, 3, u->where, sizeof(u->where));
    col_text(st, 4, u->metrics, sizeof(u->metrics));
    col_text(st, 5, u->group_by, sizeof(u->group_by));
    col_text(st, 6, u->interval, sizeof(u->interval));
    col_text(st, 7, u->url, sizeof(u->url));
    u->secret_len = DTM_MIN(n, sizeof(u->secret));
    if (u->secret_len)
        memcpy(u->secret, sqlite3_column_blob(st, 8), u->secret_len);
    u->created_at = sqlite3_column_int64(st, 9);
    u->next_bucket = sqlite3_column_int64(st, 10);
    u->attempts = sqlite3_column_int64(st, 11);
    u->next_attempt_at = sqlite3_column_int64(st, 12);
    col_text(st, 13, u->last_error, sizeof(u->last_error));
    u->delivered = sqlite3_column_int64(st, 14);
    u->last_delivered_at = sqlite3_column_int64(st, 15);
    col_text(st, 16, u->lease_owner, sizeof(u->lease_owner));
    u->lease_until = sqlite3_column_int64(st, 17);
}

static int s_subscription_put(struct dtm_store *s, const struct dtm_subscription *u)
{
    sqlite3_stmt *st = prep(s, "INSERT INTO subscriptions(" SUB_COLS ",deleted_at) VALUES(?1,?2,"
                               "?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,0)");
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, u->id);
    bind_text(st, 2, u->system_code);
    bind_text(st, 3, u->dataset);
    bind_text(st, 4, u->where);
    bind_text(st, 5, u->metrics);
    bind_text(st, 6, u->group_by);
    bind_text(st, 7, u->interval);
    bind_text(st, 8, u->url);
    sqlite3_bind_blob(st, 9, u->secret, (int)u->secret_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, u->created_at);
    sqlite3_bind_int64(st, 11, u->next_bucket);
    sqlite3_bind_int64(st, 12, u->attempts);
    sqlite3_bind_int64(st, 13, u->next_attempt_at);
    bind_text(st, 14, u->last_error);
    sqlite3_bind_int64(st, 15, u->delivered);
    sqlite3_bind_int64(st, 16, u->last_delivered_at);
    bind_text(st, 17, u->lease_owner);
    sqlite3_bind_int64(st, 18, u->lease_until);
    return run_done(s, st, "subscription_put");
}

static int s_subscription_get(struct dtm_store *s, const char *id, struct dtm_subscription *out)
{
    sqlite3_stmt *st =
        prep(s, "SELECT " SUB_COLS " FROM subscriptions WHERE id=?1 AND deleted_at=0");
    int rc, out_rc = DTM_ENOTFOUND;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_sub(st, out);
        out_rc = DTM_OK;
    } else if (rc != SQLITE_DONE) {
        out_rc = fail(s, "subscription_get");
    }
    sqlite3_finalize(st);
    return out_rc;
}

static int s_subscription_list(struct dtm_store *s, const char *system_code, dtm_subscription_cb cb,
                               void *ctx)
{
    sqlite3_stmt *st = prep(s, "SELECT " SUB_COLS " FROM subscriptions WHERE deleted_at=0 AND "
                               "(?1 IS NULL OR system_code=?1) ORDER BY created_at,id");
    struct dtm_subscription *u;
    int rc, out = DTM_OK;
    if (!st)
        return DTM_ESTORE;
    if (!(u = malloc(sizeof(*u)))) {
        sqlite3_finalize(st);
        return DTM_ENOMEM;
    }
    if (system_code)
        bind_text(st, 1, system_code);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_sub(st, u);
        if ((out = cb(ctx, u)))
            break;
    }
    if (!out && rc != SQLITE_DONE)
        out = fail(s, "subscription_list");
    sqlite3_finalize(st);
    free(u);
    return out;
}

static int s_subscription_delete(struct dtm_store *s, const char *id, int64_t now)
{
    sqlite3_stmt *st =
        prep(s, "UPDATE subscriptions SET deleted_at=?2 WHERE id=?1 AND deleted_at=0");
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    if ((rc = run_done(s, st, "subscription_delete")) == DTM_OK && sqlite3_changes(DB(s)) == 0)
        rc = DTM_ENOTFOUND;
    return rc;
}

static int s_subscription_claim(struct dtm_store *s, const char *id, int64_t bucket,
                                const char *owner, int64_t now, int64_t until)
{
    sqlite3_stmt *st = prep(s, "UPDATE subscriptions SET lease_owner=?3,lease_until=?5 "
                               "WHERE id=?1 AND deleted_at=0 AND next_bucket=?2 AND "
                               "(lease_until<?4 OR lease_owner=?3)");
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, bucket);
    bind_text(st, 3, owner);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_int64(st, 5, until);
    if ((rc = run_done(s, st, "subscription_claim")) == DTM_OK && sqlite3_changes(DB(s)) == 0)
        rc = DTM_EBUSY;
    return rc;
}

static int s_subscription_done(struct dtm_store *s, const char *id, const char *owner,
                               int64_t bucket, bool ok, int64_t next_bucket,
                               int64_t next_attempt_at, const char *error, int64_t now)
{
    sqlite3_stmt *st = prep(
        s, ok ? "UPDATE subscriptions SET next_bucket=?4,attempts=0,next_attempt_at=0,"
                "last_error='',delivered=delivered+1,last_delivered_at=?6,lease_owner='',"
                "lease_until=0 WHERE id=?1 AND lease_owner=?2 AND next_bucket=?3"
              : "UPDATE subscriptions SET attempts=attempts+1,next_attempt_at=?4,last_error=?5,"
                "lease_owner='',lease_until=0 WHERE id=?1 AND lease_owner=?2 AND next_bucket=?3 "
                "");
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, id);
    bind_text(st, 2, owner);
    sqlite3_bind_int64(st, 3, bucket);
    sqlite3_bind_int64(st, 4, ok ? next_bucket : next_attempt_at);
    bind_text(st, 5, error ? error : "");
    sqlite3_bind_int64(st, 6, now);
    if ((rc = run_done(s, st, "subscription_done")) == DTM_OK && sqlite3_changes(DB(s)) == 0)
        rc = DTM_EBUSY;
    return rc;
}

static int s_subscription_delivery_add(struct dtm_store *s,
                                       const struct dtm_subscription_delivery *d)
{
    sqlite3_stmt *st = prep(s, "INSERT INTO subscription_deliveries(subscription_id,bucket,"
                               "attempt,status,ok,error,at,ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)");
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, d->subscription_id);
    sqlite3_bind_int64(st, 2, d->bucket);
    sqlite3_bind_int64(st, 3, d->attempt);
    sqlite3_bind_int64(st, 4, d->status);
    sqlite3_bind_int64(st, 5, d->ok ? 1 : 0);
    bind_text(st, 6, d->error);
    sqlite3_bind_int64(st, 7, d->at);
    sqlite3_bind_int64(st, 8, d->ms);
    return run_done(s, st, "subscription_delivery_add");
}

static int s_subscription_deliveries(struct dtm_store *s, const char *id, int64_t after,
                                     size_t limit, dtm_subscription_delivery_cb cb, void *ctx)
{
    sqlite3_stmt *st = prep(s, "SELECT seq,subscription_id,bucket,attempt,status,ok,error,at,ms "
                               "FROM subscription_deliveries WHERE subscription_id=?1 AND "
                               "seq>?2 ORDER BY seq LIMIT ?3");
    struct dtm_subscription_delivery d;
    int rc, out = DTM_OK;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, limit ? (int64_t)limit : -1);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&d, 0, sizeof(d));
        d.seq = sqlite3_column_int64(st, 0);
        col_text(st, 1, d.subscription_id, sizeof(d.subscription_id));
        d.bucket = sqlite3_column_int64(st, 2);
        d.attempt = sqlite3_column_int64(st, 3);
        d.status = sqlite3_column_int64(st, 4);
        d.ok = sqlite3_column_int64(st, 5) != 0;
        col_text(st, 6, d.error, sizeof(d.error));
        d.at = sqlite3_column_int64(st, 7);
        d.ms = sqlite3_column_int64(st, 8);
        if ((out = cb(ctx, &d)))
            break;
    }
    if (!out && rc != SQLITE_DONE)
        out = fail(s, "subscription_deliveries");
    sqlite3_finalize(st);
    return out;
}

/* ---- data keys (T4.2; gate/datakey.c) */

static void read_datakey(sqlite3_stmt *st, struct dtm_datakey_row *k)
{
    size_t n = (size_t)sqlite3_column_bytes(st, 1);
    memset(k, 0, sizeof(*k));
    k->id = sqlite3_column_int64(st, 0);
    k->wrapped_len = DTM_MIN(n, sizeof(k->wrapped));
    if (k->wrapped_len)
        memcpy(k->wrapped, sqlite3_column_blob(st, 1), k->wrapped_len);
    col_text(st, 2, k->kek_id, sizeof(k->kek_id));
    k->created_at = sqlite3_column_int64(st, 3);
    k->retired_at = sqlite3_column_int64(st, 4);
    k->sealed = sqlite3_column_int64(st, 5);
}

static int s_datakey_add(struct dtm_store *s, const struct dtm_datakey_row *k)
{
    sqlite3_stmt *st = stmt(s, Q_DK_ADD);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, k->id);
    sqlite3_bind_blob(st, 2, k->wrapped, (int)k->wrapped_len, SQLITE_STATIC);
    bind_text(st, 3, k->kek_id);
    sqlite3_bind_int64(st, 4, k->created_at);
    bind_opt_i64(st, 5, k->retired_at, 0);
    sqlite3_bind_int64(st, 6, k->sealed);
    return exec_done(s, st, "datakey_add");
}

static int s_datakey_get(struct dtm_store *s, int64_t id, struct dtm_datakey_row *out)
{
    sqlite3_stmt *st = stmt(s, Q_DK_GET);
    int rc;
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_datakey(st, out);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return DTM_ENOTFOUND;
    return rc == SQLITE_ROW ? DTM_OK : fail(s, "datakey_get");
}

static int s_datakey_list(struct dtm_store *s, dtm_datakey_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_DK_LIST);
    int rc;
    if (!st)
        return DTM_ESTORE;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct dtm_datakey_row k;
        read_datakey(st, &k);
        if ((rc = cb(ctx, &k))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "datakey_list");
}

static int s_datakey_update(struct dtm_store *s, const struct dtm_datakey_row *k)
{
    sqlite3_stmt *st = stmt(s, Q_DK_UPDATE);
    if (!st)
        return DTM_ESTORE;
    sqlite3_bind_int64(st, 1, k->id);
    sqlite3_bind_blob(st, 2, k->wrapped, (int)k->wrapped_len, SQLITE_STATIC);
    bind_text(st, 3, k->kek_id);
    bind_opt_i64(st, 4, k->retired_at, 0);
    sqlite3_bind_int64(st, 5, k->sealed);
    return exec_done(s, st, "datakey_update");
}

static int s_secret_put(struct dtm_store *s, const char *name, const uint8_t *sealed, size_t n,
                        int64_t now)
{
    sqlite3_stmt *st = stmt(s, Q_SECRET_PUT);
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, name);
    sqlite3_bind_blob(st, 2, sealed, (int)n, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    return exec_done(s, st, "secret_put");
}

static int s_secret_get(struct dtm_store *s, const char *name, struct dtm_buf *out)
{
    sqlite3_stmt *st = stmt(s, Q_SECRET_GET);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, name);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        dtm_buf_reset(out);
        dtm_buf_add(out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return DTM_ENOTFOUND;
    if (rc != SQLITE_ROW)
        return fail(s, "secret_get");
    return out->err ? DTM_ENOMEM : DTM_OK;
}

static int s_secret_list(struct dtm_store *s, dtm_secret_cb cb, void *ctx)
{
    sqlite3_stmt *st = stmt(s, Q_SECRET_LIST);
    int rc;
    if (!st)
        return DTM_ESTORE;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if ((rc = cb(ctx, name ? name : "", sqlite3_column_int64(st, 1)))) {
            sqlite3_reset(st);
            return rc;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? DTM_OK : fail(s, "secret_list");
}

static int s_secret_delete(struct dtm_store *s, const char *name)
{
    sqlite3_stmt *st = stmt(s, Q_SECRET_DEL);
    int rc;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, name);
    if ((rc = exec_done(s, st, "secret_delete")))
        return rc;
    return sqlite3_changes(((struct sqlite_store *)(void *)s)->db) ? DTM_OK : DTM_ENOTFOUND;
}

/* ---- rounds of periodic jobs (forecast/anomaly.c; migration 24) */

static int s_job_claim(struct dtm_store *s, const char *job, int64_t slot, const char *owner,
                       int64_t now, int64_t before)
{
    sqlite3_stmt *st = prep(s, "INSERT INTO job_claims(job,slot,owner,claimed_at)"
                               " VALUES(?1,?2,?3,?4) ON CONFLICT(job,slot) DO NOTHING");
    int rc;
    bool took;
    if (!st)
        return DTM_ESTORE;
    bind_text(st, 1, job);
    sqlite3_bind_int64(st, 2, slot);
    bind_text(st, 3, owner);
    sqlite3_bind_int64(st, 4, now);
    if ((rc = run_done(s, st, "job_claim")))
        return rc;
    took = sqlite3_changes(DB(s)) > 0;
    if (!(st = prep(s, "DELETE FROM job_claims WHERE job=?1 AND claimed_at<?2")))
        return DTM_ESTORE;
    bind_text(st, 1, job);
    sqlite3_bind_int64(st, 2, before);
    if ((rc = run_done(s, st, "job_claim")))
        return rc;
    return took ? DTM_OK : DTM_EEXIST;
}

/* ---- batches claimed by one node (issue 9 item 3): one process writes a SQLite store, and
 * its one queue thread runs one batch at a time: nothing to claim */

static int s_batch_claim(struct dtm_store *s, const char *id)
{
    (void)s;
    (void)id;
    return DTM_OK;
}

static void s_batch_release(struct dtm_store *s, const char *id)
{
    (void)s;
    (void)id;
}

static const struct dtm_store_ops sqlite_ops = {
    .name = "sqlite",
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
    .warn_net_put = s_warn_net_put,
    .token_revoke = s_token_revoke,
    .dataset_def_put = s_dataset_def_put,
    .dataset_def_list = s_dataset_def_list,
    .token_revoked = s_token_revoked,
    .warn_net_list = s_warn_net_list,
    .warn_net_purge = s_warn_net_purge,
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
};

int dtm_store_sqlite_open(const char *path, struct dtm_store **out, char *err, size_t errsz)
{
    struct sqlite_store *q = calloc(1, sizeof(*q));
    static const char pragmas[] = "PRAGMA journal_mode=WAL;"
                                  "PRAGMA synchronous=FULL;"
                                  "PRAGMA foreign_keys=ON;"
                                  "PRAGMA cache_size=-8192;"
                                  "PRAGMA temp_store=MEMORY;";
    if (!q) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    q->super.ops = &sqlite_ops;
    snprintf(q->path, sizeof(q->path), "%s", path);
    dtm_buf_init(&q->plain, 64 << 20);
    if (sqlite3_open_v2(path, &q->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errsz, "cannot open database %s: %s", path,
                 q->db ? sqlite3_errmsg(q->db) : "out of memory");
        sqlite3_close(q->db);
        free(q);
        return DTM_ESTORE;
    }
    sqlite3_busy_timeout(q->db, 10000);
    sqlite3_extended_result_codes(q->db, 0);
    sqlite3_create_function(q->db, "dtm_agg_merge", 2,
                            SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL,
                            sql_agg_merge, NULL, NULL);
    if (sqlite3_exec(q->db, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
        attach_cubes(q->db, path) != SQLITE_OK) {
        snprintf(err, errsz, "cannot configure database %s: %s", path, sqlite3_errmsg(q->db));
        sqlite3_close(q->db);
        free(q);
        return DTM_ESTORE;
    }
    *out = &q->super;
    return DTM_OK;
}
