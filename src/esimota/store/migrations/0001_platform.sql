-- The platform's own facts: one row per key (instance identity, created time, schema notes).
CREATE TABLE platform_info (
    key         text PRIMARY KEY,
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO platform_info (key, value) VALUES ('instance_id', md5(random()::text || clock_timestamp()::text));
