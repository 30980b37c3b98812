-- Per-client call counts of the current one-minute window, shared by every worker and node (§7.1.2, R17).
-- Each worker adds what it counted since its last sync a few times a second and reads the sum back; the
-- rows are worth a minute, so the table is unlogged (a crash forgets them, as a new window would).
CREATE UNLOGGED TABLE rate_windows (
    client_id   bigint NOT NULL,
    window_no   bigint NOT NULL,
    calls       integer NOT NULL,
    PRIMARY KEY (client_id, window_no)
);
