-- The dispatcher's wake-up (0005) fired for every statement that set next_attempt_at, rows or not,
-- and the dispatcher's own claim is such a statement: each claim woke it again at once, so worker 0
-- and PostgreSQL spun (about half a core each) on an idle platform. Now a NOTIFY goes out only when a
-- statement leaves a callback due within the second (a new one, a re-push); a claim moves its rows a
-- lease ahead and a retry its backoff ahead, and neither wakes anyone. The dispatcher still polls.
DROP TRIGGER callback_outbox_queued ON callback_outbox;

CREATE OR REPLACE FUNCTION callback_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed_rows WHERE status = 'pending'
               AND next_attempt_at <= now() + interval '1 second') THEN
        PERFORM pg_notify('esimota_callbacks', '');
    END IF;
    RETURN NULL;
END $$;

-- transition tables take one event per trigger
CREATE TRIGGER callback_outbox_inserted AFTER INSERT ON callback_outbox
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION callback_outbox_notify();
CREATE TRIGGER callback_outbox_updated AFTER UPDATE ON callback_outbox
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION callback_outbox_notify();
