-- The partner API (DESIGN §6, R17, R21, R27): call log, ingested usage and locations, outbox wake-up.

-- Every API call (R27: kept at least 6 months, then purged by the retention job): who, what, how it
-- ended, how long it took, from where. `params` never holds a secret (client_secret, token).
CREATE TABLE api_calls (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    client_id   text,
    transport   text NOT NULL CHECK (transport IN ('http', 'grpc')),
    route       text NOT NULL,
    params      jsonb NOT NULL DEFAULT '{}'::jsonb,
    code        integer NOT NULL,
    reason      text,
    latency_ms  real NOT NULL,
    source_ip   inet
);
CREATE INDEX api_calls_at ON api_calls (at);
CREATE INDEX api_calls_client ON api_calls (client_id, at);

-- Usage records from the operator's charging feed (§7.2.3.3): the month's totals are summed from
-- these; `record_id` makes a repeated feed or CSV import add nothing.
CREATE TABLE usage_records (
    id          bigserial PRIMARY KEY,
    record_id   text NOT NULL UNIQUE,
    number_id   bigint NOT NULL REFERENCES numbers (id),
    month       date NOT NULL,
    used_mb     numeric(14, 3) NOT NULL CHECK (used_mb >= 0),
    recorded_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_records_month ON usage_records (number_id, month);

-- Wake the callback dispatcher as soon as a §7.3 callback is queued (it also polls).
CREATE FUNCTION callback_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('esimota_callbacks', '');
    RETURN NULL;
END $$;
CREATE TRIGGER callback_outbox_queued AFTER INSERT OR UPDATE OF next_attempt_at ON callback_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION callback_outbox_notify();
