-- PostgreSQL peer of dtm's `transactions` dataset (src/dict/builtin/transactions.json), for
-- bench/ingest_batch/run.sh. Created before the clock starts.
--
-- transactions: every column typed, the dictionary's constraints as CHECKs (citizen_id is stored
-- masked, as dtm stores it), primary key = the data key, an index on the time field.
-- staging: UNLOGGED, typed, no constraints: a typed COPY of the CSV (same column order) loads
-- every row the generator writes, the invalid ones included; the load (pg_load.sql) filters them.
\set ON_ERROR_STOP 1

CREATE TABLE transactions (
    system_code    varchar(32)   NOT NULL CHECK (system_code ~ '^[A-Za-z0-9._-]{1,32}$'),
    txn_id         varchar(64)   NOT NULL,
    agency_code    varchar(64),
    service_code   varchar(64)   NOT NULL,
    channel        text          CHECK (channel IN ('web', 'mobile', 'api', 'kiosk', 'counter', 'other')),
    status         text          NOT NULL CHECK (status IN ('success', 'failed', 'pending')),
    error_code     varchar(64),
    error_reason   varchar(1000),
    started_at     timestamptz   NOT NULL,
    finished_at    timestamptz,
    response_ms    integer       CHECK (response_ms >= 0),
    citizen_id     varchar(12)   CHECK (citizen_id ~ '^[0-9]{4}\*{6}[0-9]{2}$'),
    business_id    varchar(14)   CHECK (business_id ~ '^[0-9]{10}(-?[0-9]{3})?$'),
    amount         numeric       CHECK (amount >= 0),
    region_code    varchar(32),
    priority       text          CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    classification text          CHECK (classification IN ('public', 'internal', 'confidential')),
    CHECK (status <> 'failed' OR error_code IS NOT NULL),
    CHECK (finished_at >= started_at),
    PRIMARY KEY (system_code, txn_id)
);
CREATE INDEX transactions_started_at ON transactions (started_at);

CREATE UNLOGGED TABLE staging (
    system_code    text,
    txn_id         text,
    agency_code    text,
    service_code   text,
    channel        text,
    status         text,
    error_code     text,
    error_reason   text,
    started_at     timestamptz,
    finished_at    timestamptz,
    response_ms    integer,
    citizen_id     text,
    business_id    text,
    amount         numeric,
    region_code    text,
    priority       text,
    classification text
);
