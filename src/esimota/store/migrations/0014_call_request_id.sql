-- esimota: no-transaction
-- The request id of every call (X-Request-Id, gRPC x-request-id) in the call log, so that a partner's
-- complaint, a proxy's log line and the platform's own log lines lead to the same row (issue 17).
-- No transaction: the index is built CONCURRENTLY, so a large api_calls table keeps taking writes;
-- DROP ... IF EXISTS first, because a failed concurrent build leaves an invalid index behind.
ALTER TABLE api_calls ADD COLUMN IF NOT EXISTS request_id text;
DROP INDEX CONCURRENTLY IF EXISTS api_calls_request_id;
CREATE INDEX CONCURRENTLY api_calls_request_id ON api_calls (request_id) WHERE request_id IS NOT NULL;
