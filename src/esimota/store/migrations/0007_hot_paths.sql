-- Indexes for the write's hot paths (DESIGN §5.5): a chip's latest task is looked up on every HELLO
-- and REPORT (and every status query); without this index each lookup scans every task.
CREATE INDEX tasks_chip ON tasks (chip_id, id);
CREATE INDEX callback_outbox_task ON callback_outbox (task_id);
