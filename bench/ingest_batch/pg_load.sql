-- The timed part of the PostgreSQL peer (bench/ingest_batch/run.sh): what a DBA does by hand
-- to load a file with duplicates and bad rows — typed COPY into the UNLOGGED staging table,
-- then one transaction that keeps the valid rows (the dictionary's rules, as WHERE), masks
-- citizen_id (keep first 4 and last 2), drops in-file duplicates (DISTINCT ON the key) and
-- rows already stored (NOT EXISTS; no ON CONFLICT) and inserts the rest. Clock: from the start
-- of the COPY to the COMMIT. run.sh feeds the CSV on psql's stdin
-- (\copy … FROM pstdin is COPY … FROM STDIN on the wire).
\set ON_ERROR_STOP 1
\timing on
\copy staging FROM pstdin (FORMAT csv)
BEGIN;
INSERT INTO transactions
SELECT DISTINCT ON (s.system_code, s.txn_id)
       s.system_code, s.txn_id, s.agency_code, s.service_code, s.channel, s.status,
       s.error_code, s.error_reason, s.started_at, s.finished_at, s.response_ms,
       CASE WHEN s.citizen_id IS NULL THEN NULL
            ELSE left(s.citizen_id, 4) || '******' || right(s.citizen_id, 2) END,
       s.business_id, s.amount, s.region_code, s.priority, s.classification
  FROM staging s
 WHERE s.system_code ~ '^[A-Za-z0-9._-]{1,32}$'
   AND s.txn_id IS NOT NULL AND length(s.txn_id) <= 64
   AND (s.agency_code IS NULL OR length(s.agency_code) <= 64)
   AND s.service_code IS NOT NULL AND length(s.service_code) <= 64
   AND (s.channel IS NULL OR s.channel IN ('web', 'mobile', 'api', 'kiosk', 'counter', 'other'))
   AND s.status IN ('success', 'failed', 'pending')
   AND (s.error_code IS NULL OR length(s.error_code) <= 64)
   AND (s.error_reason IS NULL OR length(s.error_reason) <= 1000)
   AND s.started_at IS NOT NULL
   AND (s.response_ms IS NULL OR s.response_ms >= 0)
   AND (s.citizen_id IS NULL OR s.citizen_id ~ '^[0-9]{12}$')
   AND (s.business_id IS NULL OR s.business_id ~ '^[0-9]{10}(-?[0-9]{3})?$')
   AND (s.amount IS NULL OR s.amount >= 0)
   AND (s.region_code IS NULL OR length(s.region_code) <= 32)
   AND (s.priority IS NULL OR s.priority IN ('low', 'normal', 'high', 'urgent'))
   AND (s.classification IS NULL OR s.classification IN ('public', 'internal', 'confidential'))
   AND (s.status <> 'failed' OR s.error_code IS NOT NULL)
   AND (s.finished_at IS NULL OR s.finished_at >= s.started_at)
   AND NOT EXISTS (SELECT 1 FROM transactions t
                    WHERE t.system_code = s.system_code AND t.txn_id = s.txn_id)
 ORDER BY s.system_code, s.txn_id;
COMMIT;
