-- A blind index of every number's IMSI (R14 keeps the IMSI itself encrypted): the first 16 bytes of
-- HMAC-SHA-256 under an index key, so that a second number with an IMSI already stored is refused
-- (imports: IMSI_EXISTS) and the database itself holds the rule (UNIQUE). Index keys are random,
-- wrapped under the at-rest master key like the data keys, and re-wrapped when it changes.
CREATE TABLE index_keys (
    purpose     text PRIMARY KEY,
    wrapped     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- NULL until computed: rows stored before this migration get theirs at the next `numbers import`.
ALTER TABLE numbers ADD COLUMN imsi_tag bytea CHECK (octet_length(imsi_tag) = 16);
CREATE UNIQUE INDEX numbers_imsi_tag ON numbers (imsi_tag);
