-- Server streams (WatchWriteStatus) a client holds open, counted across every worker and node (issue 14,
-- R17): a client has ESIMOTA_WATCH_STREAMS numbered places; opening a stream takes the lowest free one in
-- one statement (the primary key makes two takers of one place, on any worker or node, exclude each
-- other), closing it deletes the row. The worker process holding a place renews it a few times per
-- ESIMOTA_WATCH_PLACE_TTL; one that is not renewed (its worker was killed) is free again once expired,
-- judged by the database's clock only. The rows are worth seconds, so the table is unlogged, as
-- rate_windows (a crash of PostgreSQL frees every place: the streams end with their database reads).
CREATE UNLOGGED TABLE stream_places (
    client_id   bigint NOT NULL,
    place       integer NOT NULL,
    node        text NOT NULL,
    worker      integer NOT NULL,
    holder      uuid NOT NULL,  -- one per worker process: a restarted worker never renews its predecessor's
    opened_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (client_id, place)
);
CREATE INDEX stream_places_holder ON stream_places (holder);
CREATE INDEX stream_places_expires ON stream_places (expires_at);
