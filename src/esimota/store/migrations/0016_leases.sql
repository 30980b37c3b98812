-- Several nodes over one PostgreSQL (issue 18): background jobs run under a lease held here, one node
-- per job at a time; a scheduled job records each period it ran, so a period never runs twice; backups
-- and regulator exports are recorded with the node that made them, and "is one due?" is asked here,
-- not of a node's local folder.

-- One row per job: the runner that holds it (node id and a token per runner process) and until when.
-- Expiry is judged by the database's clock only (now()), so nodes' clocks never have to agree.
CREATE TABLE job_leases (
    job          text PRIMARY KEY,
    node         text NOT NULL,
    token        uuid NOT NULL,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    renewed_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

-- One row per job and period: claimed before the pass ('running', with the lease token of the runner),
-- then 'done' or 'failed'. A failed period, or one left 'running' by a runner that lost its lease, may
-- be claimed again; a done one never.
CREATE TABLE job_runs (
    job          text NOT NULL,
    period       text NOT NULL,
    node         text NOT NULL,
    token        uuid NOT NULL,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
    attempts     integer NOT NULL DEFAULT 1,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    detail       text,
    PRIMARY KEY (job, period)
);
CREATE INDEX job_runs_started ON job_runs (started_at);

-- Every backup made (scheduled or by hand), where, and by which node (R26).
CREATE TABLE backups (
    id          bigserial PRIMARY KEY,
    file        text NOT NULL,
    manifest    text NOT NULL,
    sha256      text NOT NULL,
    bytes       bigint NOT NULL,
    node        text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backups_created ON backups (created_at);

-- R34: which node wrote each regulator export.
ALTER TABLE regulator_exports ADD COLUMN node text;
