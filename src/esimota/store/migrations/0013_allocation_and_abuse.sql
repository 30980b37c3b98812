-- Chips allocated by the operator (§6.2.1.1 管理员为业务需求方分配数据资源, DESIGN §3) and bounded
-- BIP refusals (issue 14).

-- A chip is applied for only by the client it is allocated to: owner_client_id is now set by
-- `chips allocate` (never by a first apply), allocated_at says when.
ALTER TABLE chips ADD COLUMN allocated_at timestamptz;

-- Every chip that has an owner today stays allocated to that owner, and the audit log says so (R1).
UPDATE chips SET allocated_at = now() WHERE owner_client_id IS NOT NULL;
INSERT INTO audit_log (actor, action, target, detail)
SELECT 'migration:0013', 'chips.allocate', cl.client_id, jsonb_build_object('count', count(*))
FROM chips c JOIN clients cl ON cl.id = c.owner_client_id
GROUP BY cl.client_id;

ALTER TABLE chips ADD CONSTRAINT chips_allocated CHECK ((owner_client_id IS NULL) = (allocated_at IS NULL));
CREATE INDEX chips_owner ON chips (owner_client_id, id) WHERE owner_client_id IS NOT NULL;

-- Frames of unknown cards are counted per source address and minute, not stored one row per frame:
-- a stranger's HELLOs cannot grow the database (DESIGN §5.4 step 1, R1 still says who tried what).
CREATE TABLE bip_refusals (
    minute   timestamptz NOT NULL,
    source   text NOT NULL,
    reason   smallint NOT NULL,
    frames   integer NOT NULL CHECK (frames > 0),
    PRIMARY KEY (minute, source, reason)
);
CREATE INDEX bip_attempts_at ON bip_attempts (at);

-- `esimota staff revoke USER`: staff tokens issued at or before this moment no longer work (R28).
ALTER TABLE staff_accounts ADD COLUMN tokens_revoked_at timestamptz;
