-- The BIP channel (DESIGN §5.4): every refused or failed channel attempt is recorded (R1 traceability).
CREATE TABLE bip_attempts (
    id          bigserial PRIMARY KEY,
    eid         text NOT NULL,
    chip_id     bigint REFERENCES chips (id),
    frame_type  smallint NOT NULL,
    close_reason smallint NOT NULL,
    detail      text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bip_attempts_chip ON bip_attempts (chip_id, at);
