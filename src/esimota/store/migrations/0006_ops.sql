-- Operations and compliance (§8–§10; R13, R22–R24, R26, R28, R29, R32–R34).

-- §8.3.1 / R24: escalation, the report that closes a severe exception, who closed it.
ALTER TABLE exceptions ADD COLUMN escalated_at timestamptz,
                       ADD COLUMN report text,
                       ADD COLUMN closed_by text;
CREATE INDEX exceptions_opened ON exceptions (opened_at);

-- Monitoring alerts of R32 and R12 (quota, card–device separation, region, high-risk areas,
-- blacklists, temporary-number expiry): one open alert per (kind, subject).
CREATE TABLE alerts (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('general', 'severe')),
    subject     text NOT NULL,
    chip_id     bigint REFERENCES chips (id),
    number_id   bigint REFERENCES numbers (id),
    detail      text,
    opened_at   timestamptz NOT NULL DEFAULT now(),
    closed_at   timestamptz,
    resolution  text
);
CREATE UNIQUE INDEX alerts_open ON alerts (kind, subject) WHERE closed_at IS NULL;
CREATE INDEX alerts_opened ON alerts (opened_at);

-- The operator's notification outbox (§8.3.1: severe exceptions reported within 1 h), posted to the
-- configured webhook by a job; one notification per exception or alert.
CREATE TABLE notifications (
    id               bigserial PRIMARY KEY,
    source           text NOT NULL CHECK (source IN ('exception', 'alert')),
    ref_id           bigint NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (source, ref_id)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';

-- R32: regions a fixed-location number may be used in, and high-risk areas.
CREATE TABLE region_restrictions (
    number_id   bigint PRIMARY KEY REFERENCES numbers (id),
    cities      text[] NOT NULL CHECK (cardinality(cities) > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE high_risk_areas (
    city        text PRIMARY KEY,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- R13 / R33: a project's application field (应用领域), for the half-year report.
ALTER TABLE projects ADD COLUMN application_field text NOT NULL DEFAULT '未分类';

-- R34: regulator exports, kept 24 months then deleted; every access is in audit_log.
CREATE TABLE regulator_exports (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('subscribers', 'service')),
    period      text NOT NULL,
    path        text NOT NULL,
    sha256      text NOT NULL,
    rows        bigint NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    deleted_at  timestamptz
);

-- R28: when a staff account last acted (the permission review lists unused and stale ones).
ALTER TABLE staff_accounts ADD COLUMN last_active_at timestamptz;
