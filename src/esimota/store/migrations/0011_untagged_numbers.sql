-- Every `numbers import` first looks for numbers without an IMSI tag (stored before 0009): without
-- an index that is a scan of the whole table on every import. Rows are inserted with their tag, so
-- this partial index stays empty once the old rows are tagged and costs inserts nothing.
CREATE INDEX numbers_untagged ON numbers (id) WHERE imsi_tag IS NULL;
