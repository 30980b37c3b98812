-- The operator console (R28, DESIGN §6): staff passwords, sign-in sessions, throttled sign-in attempts.
-- Passwords are scrypt hashes (memory-hard, `cryptography`); a session is kept as the SHA-256 of its
-- cookie, so reading this table gives no one a session.
ALTER TABLE staff_accounts ADD COLUMN password_hash text, ADD COLUMN password_set_at timestamptz;

CREATE TABLE console_sessions (
    id          bigserial PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    staff_id    bigint NOT NULL REFERENCES staff_accounts (id),
    csrf        text NOT NULL,
    address     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz
);
CREATE INDEX console_sessions_staff ON console_sessions (staff_id) WHERE ended_at IS NULL;

-- Every sign-in attempt, for the throttle (per account and per address) and the trace (R1).
CREATE TABLE console_signins (
    id        bigserial PRIMARY KEY,
    username  text NOT NULL,
    address   text NOT NULL,
    ok        boolean NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_signins_user ON console_signins (username, at);
CREATE INDEX console_signins_address ON console_signins (address, at);

-- The overview's charts of writes per hour and per day (R29) read finished writes by time.
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE state IN (4, 5);
