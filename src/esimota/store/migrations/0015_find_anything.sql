-- Find anything (R1, R13, R32; §5.3.1.1 记录查询): the indexes behind the lists' filters, keyset paging
-- newest first (ORDER BY id DESC, WHERE id < cursor), so that every page is an index range scan;
-- channel sessions for the write history; alert notifications grouped per detector run.

-- tasks: `tasks list --client C [--state S]` and the partner's /api/v1/write/tasks (the caller's own,
-- newest first, filtered by card_status) walk (client_id, state, id) or (client_id, id); the operator's
-- state filter alone walks (state, id); --eid goes through chips.eid and tasks_chip (0007).
CREATE INDEX tasks_client_page ON tasks (client_id, id);
CREATE INDEX tasks_client_state_page ON tasks (client_id, state, id);
CREATE INDEX tasks_state_page ON tasks (state, id);
CREATE INDEX tasks_province_page ON tasks (province_code, id);

-- chips: --client (owner_client_id, allocation), --batch, --project, --state (chips_state, 0002),
-- --expiring-before (chips_expiry, 0002).
CREATE INDEX chips_owner_page ON chips (owner_client_id, id);
CREATE INDEX chips_batch_page ON chips (batch_id, id);
CREATE INDEX chips_project_page ON chips (project_id, id) WHERE project_id IS NOT NULL;

-- numbers: --province with --status (numbers_free covers the available ones), --client (numbers_client).
CREATE INDEX numbers_province_page ON numbers (province_code, status, id);

-- exceptions and alerts: --class / --severity / --open walk these; alerts by kind.
CREATE INDEX exceptions_class_page ON exceptions (class, id);
CREATE INDEX alerts_kind_page ON alerts (kind, id);

-- callbacks: --client and --status.
CREATE INDEX callback_outbox_client_page ON callback_outbox (client_id, id);
CREATE INDEX callback_outbox_status_page ON callback_outbox (status, id);

-- Each BIP channel session of a write (R1 "every step traceable"): when it started, whether it
-- resumed a dropped one, when and how it ended (CLOSE reason), the frames and bytes it carried.
CREATE TABLE bip_sessions (
    id            bigserial PRIMARY KEY,
    session_ref   bigint NOT NULL UNIQUE,  -- the worker's handle on the session it is recording
    chip_id       bigint NOT NULL REFERENCES chips (id),
    task_id       bigint REFERENCES tasks (id),
    resumed       boolean NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at      timestamptz,
    end_event     text,
    close_reason  smallint,
    frames        integer NOT NULL DEFAULT 0,
    bytes         bigint NOT NULL DEFAULT 0
);
CREATE INDEX bip_sessions_task ON bip_sessions (task_id, id);
CREATE INDEX bip_sessions_open ON bip_sessions (chip_id) WHERE ended_at IS NULL;

-- Alerts reach people (R12, R32): every new alert is sent once to the notification webhook, all the
-- alerts of one detector run in one post ('alerts' notifications, ref_id = the run's last alert id).
ALTER TABLE alerts ADD COLUMN notified_at timestamptz;
CREATE INDEX alerts_unnotified ON alerts (id) WHERE notified_at IS NULL;
ALTER TABLE notifications DROP CONSTRAINT notifications_source_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_source_check
    CHECK (source IN ('exception', 'alert', 'alerts'));
-- alerts opened before this migration were handled by the old per-alert queue (severe ones only)
UPDATE alerts SET notified_at = opened_at;

-- R32: the IMEI a usage or location record carries (optional), the last one seen per number.
ALTER TABLE numbers ADD COLUMN last_imei char(15);

-- R32 at HELLO: each worker reads the blacklist entries added since its last look.
CREATE INDEX blacklist_created ON blacklist (created_at);
