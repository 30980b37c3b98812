-- Tasks, their events, counters of DESIGN §5.3, the callback outbox, exceptions and the audit log.

-- A write task (§6.2.2.2); at most one open (2 or 3) per chip — the index is the last line of
-- defence behind the chip row lock for idempotent applies (DESIGN §3, R18).
CREATE TABLE tasks (
    id             bigserial PRIMARY KEY,
    task_id        text NOT NULL UNIQUE,
    chip_id        bigint NOT NULL REFERENCES chips (id),
    client_id      bigint NOT NULL REFERENCES clients (id),
    write_type     smallint NOT NULL CHECK (write_type IN (0, 1)),
    province_code  char(2) REFERENCES provinces (code),
    number_id      bigint NOT NULL REFERENCES numbers (id),
    state          smallint NOT NULL CHECK (state BETWEEN 1 AND 6),
    script_total   integer NOT NULL DEFAULT 0,
    script_acked   integer NOT NULL DEFAULT 0,
    script_done    boolean NOT NULL DEFAULT false,
    result         text,
    diagnostic     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    progress_at    timestamptz,
    write_time     timestamptz,
    finished_at    timestamptz,
    cancelled_at   timestamptz
);
CREATE UNIQUE INDEX tasks_one_open_per_chip ON tasks (chip_id) WHERE state IN (2, 3);
CREATE INDEX tasks_writing ON tasks (progress_at) WHERE state = 3;

-- Every transition (who, when, from, to, why): §6.1 traceability (R1, R11).
CREATE TABLE task_events (
    id          bigserial PRIMARY KEY,
    chip_id     bigint NOT NULL REFERENCES chips (id),
    task_id     bigint REFERENCES tasks (id),
    operation   text NOT NULL,
    from_state  smallint NOT NULL,
    to_state    smallint NOT NULL,
    actor       text NOT NULL,
    reason      text,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX task_events_chip ON task_events (chip_id, id);
CREATE INDEX task_events_task ON task_events (task_id, id);

-- DESIGN §5.3 counters: the platform's CNTR per chip strictly increases across restarts (blocks
-- are reserved here before use); the card's counter is the last one seen in a verified HELLO/REPORT.
CREATE TABLE chip_counters (
    chip_id        bigint PRIMARY KEY REFERENCES chips (id),
    cntr_reserved  bigint NOT NULL DEFAULT 0 CHECK (cntr_reserved < 1099511627776),
    card_counter   bigint NOT NULL DEFAULT -1,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Callbacks of §7.3, written in the same transaction as the result they announce (R10).
CREATE TABLE callback_outbox (
    id               bigserial PRIMARY KEY,
    event_id         text NOT NULL UNIQUE,
    client_id        bigint NOT NULL REFERENCES clients (id),
    task_id          bigint NOT NULL REFERENCES tasks (id),
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'exhausted')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX callback_outbox_due ON callback_outbox (next_attempt_at) WHERE status = 'pending';

-- Every delivery attempt is recorded (DESIGN §6, R27: call logs kept ≥ 6 months).
CREATE TABLE callback_attempts (
    id           bigserial PRIMARY KEY,
    outbox_id    bigint NOT NULL REFERENCES callback_outbox (id),
    at           timestamptz NOT NULL DEFAULT now(),
    http_status  integer,
    outcome      text NOT NULL,
    detail       text
);

-- Exceptions of §8 (R22–R24): class × severity, a handling deadline, reported and closed times.
CREATE TABLE exceptions (
    id           bigserial PRIMARY KEY,
    class        text NOT NULL CHECK (class IN ('apply', 'write', 'interface', 'terminal')),
    severity     text NOT NULL CHECK (severity IN ('general', 'severe')),
    kind         text NOT NULL,
    chip_id      bigint REFERENCES chips (id),
    task_id      bigint REFERENCES tasks (id),
    client_id    bigint REFERENCES clients (id),
    detail       text,
    opened_at    timestamptz NOT NULL DEFAULT now(),
    deadline_at  timestamptz NOT NULL,
    reported_at  timestamptz,
    closed_at    timestamptz,
    resolution   text
);
-- one open exception of a kind per chip: a card repeating the same REPORT does not pile them up
CREATE UNIQUE INDEX exceptions_open_per_chip ON exceptions (kind, chip_id) WHERE closed_at IS NULL AND chip_id IS NOT NULL;
CREATE INDEX exceptions_open ON exceptions (opened_at) WHERE closed_at IS NULL;

-- Who did what, when (§6.1, R1, R28): admin commands and sensitive reads.
CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text,
    detail  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON audit_log (at);
