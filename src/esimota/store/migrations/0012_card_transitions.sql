-- One state machine (DESIGN §3, §6.3 table 2, R11; STYLE 15): the edges domain/lifecycle.TRANSITIONS
-- allows, as a table, and a guard that refuses any other change of a card's (or its task's) state.
-- tests/integration/store/test_transitions.py checks this table equals the one in domain/lifecycle.
CREATE TABLE card_transitions (
    from_state smallint NOT NULL,
    to_state   smallint NOT NULL,
    PRIMARY KEY (from_state, to_state)
);
INSERT INTO card_transitions (from_state, to_state) VALUES
    (1, 2), (5, 2), (6, 2),   -- apply (from 待写卡, 写卡失败, 申请失败) → 待开机上电
    (1, 6), (5, 6), (6, 6),   -- an apply that failed validation → 申请失败
    (2, 1),                   -- cancel (§7.2.2.4, R20)
    (2, 3), (3, 3),           -- power-on, resume after a drop, REPORT 01 (stays 写卡中, §6.2.4.1)
    (3, 4), (3, 5);           -- REPORT 00 → 写卡成功; chip fault / data error → 写卡失败

CREATE FUNCTION card_state_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM card_transitions WHERE from_state = OLD.state AND to_state = NEW.state) THEN
        RAISE EXCEPTION 'state % -> % of % % is not an edge of table 2', OLD.state, NEW.state, TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'check_violation', HINT = 'every change of card state goes through domain/lifecycle';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER chips_state_guard BEFORE UPDATE OF state ON chips
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION card_state_guard();
CREATE TRIGGER tasks_state_guard BEFORE UPDATE OF state ON tasks
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION card_state_guard();
