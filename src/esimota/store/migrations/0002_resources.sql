-- Resources (DESIGN §2, R13–R15): keys, provinces, clients, staff, projects, batches, chips, numbers.
-- Secrets are stored only as AES-256-GCM ciphertexts (store/crypto.py) or salted hashes (R14, R25).

-- Versioned data keys, each wrapped (AES-256-GCM) by the at-rest master key; `keys rotate` adds one.
CREATE TABLE data_keys (
    version     integer PRIMARY KEY,
    wrapped     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- GB/T 2260 provinces (§7.2.2.1); `writable` lets operators close a province to auto-allocation.
CREATE TABLE provinces (
    code      char(2) PRIMARY KEY CHECK (code ~ '^[1-9][0-9]$'),
    name      text NOT NULL,
    writable  boolean NOT NULL DEFAULT true
);
INSERT INTO provinces (code, name) VALUES
    ('11', '北京'),
    ('12', '天津'),
    ('13', '河北'),
    ('14', '山西'),
    ('15', '内蒙古'),
    ('21', '辽宁'),
    ('22', '吉林'),
    ('23', '黑龙江'),
    ('31', '上海'),
    ('32', '江苏'),
    ('33', '浙江'),
    ('34', '安徽'),
    ('35', '福建'),
    ('36', '江西'),
    ('37', '山东'),
    ('41', '河南'),
    ('42', '湖北'),
    ('43', '湖南'),
    ('44', '广东'),
    ('45', '广西'),
    ('46', '海南'),
    ('50', '重庆'),
    ('51', '四川'),
    ('52', '贵州'),
    ('53', '云南'),
    ('54', '西藏'),
    ('61', '陕西'),
    ('62', '甘肃'),
    ('63', '青海'),
    ('64', '宁夏'),
    ('65', '新疆');

-- Partners (§6.2.1.1, R15): created only by administrators (R31).
CREATE TABLE clients (
    id                   bigserial PRIMARY KEY,
    client_id            text NOT NULL UNIQUE,
    name                 text NOT NULL,
    phone                text NOT NULL,
    secret_hash          text NOT NULL,
    secret_rotated_at    timestamptz NOT NULL DEFAULT now(),
    ip_whitelist         cidr[] NOT NULL,
    permissions          text[] NOT NULL CHECK (permissions <@ ARRAY['write', 'chip', 'number']),
    callback_url         text NOT NULL,
    callback_secret_enc  bytea NOT NULL,
    rate_limit_per_min   integer NOT NULL DEFAULT 600 CHECK (rate_limit_per_min > 0),
    disabled_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now()
);

-- Staff with least-privilege roles (R28); leavers are disabled, never deleted (traceability, R1).
CREATE TABLE staff_accounts (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    display_name  text NOT NULL,
    phone         text,
    roles         text[] NOT NULL CHECK (roles <@ ARRAY['admin', 'operator', 'auditor', 'support']),
    reviewed_at   timestamptz,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Projects group a client's chips (R13 project management).
CREATE TABLE projects (
    id          bigserial PRIMARY KEY,
    client_id   bigint NOT NULL REFERENCES clients (id),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, name)
);

-- Chip batches: the vendor's AES-128 master key, encrypted (DESIGN §5.2).
CREATE TABLE chip_batches (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    master_key_enc  bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Seed chips with their temporary number (§5.1.2, R2) and lifecycle state (§6.3 table 2).
CREATE TABLE chips (
    id                    bigserial PRIMARY KEY,
    eid                   char(32) NOT NULL UNIQUE,
    batch_id              bigint NOT NULL REFERENCES chip_batches (id),
    chip_model            text NOT NULL,
    imei                  char(15),
    temp_iccid            varchar(20) NOT NULL UNIQUE,
    temp_msisdn           varchar(13) NOT NULL UNIQUE,
    network_type          text NOT NULL CHECK (network_type IN ('4G', 'NB-IoT')),
    open_time             date NOT NULL,
    temp_expires_on       date NOT NULL,
    test_flow_bytes       bigint NOT NULL CHECK (test_flow_bytes >= 0),
    remaining_flow_bytes  bigint NOT NULL CHECK (remaining_flow_bytes >= 0),
    state                 smallint NOT NULL DEFAULT 1 CHECK (state BETWEEN 1 AND 6),
    state_changed_at      timestamptz NOT NULL DEFAULT now(),
    production_status     text NOT NULL DEFAULT 'produced',
    logistics_status      text NOT NULL DEFAULT 'in_stock',
    owner_client_id       bigint REFERENCES clients (id),
    project_id            bigint REFERENCES projects (id),
    active_iccid          varchar(20),
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chips_expiry ON chips (temp_expires_on) WHERE state IN (1, 2, 3, 5, 6);
CREATE INDEX chips_state ON chips (state);

-- Operational numbers (§5.1.2): IMSI and Ki‖OPc only as ciphertexts (R14, DESIGN §2).
-- status: available → reserved (a task holds it) → bound (written into `chip_id`).
CREATE TABLE numbers (
    id                bigserial PRIMARY KEY,
    msisdn            varchar(13) NOT NULL UNIQUE,
    iccid             varchar(20) NOT NULL UNIQUE,
    imsi_enc          bytea NOT NULL,
    keys_enc          bytea NOT NULL,
    province_code     char(2) NOT NULL REFERENCES provinces (code),
    services          text[] NOT NULL CHECK (services <@ ARRAY['data', 'directed_voice', 'directed_sms']),
    monthly_quota_mb  numeric(12, 3) NOT NULL CHECK (monthly_quota_mb >= 0),
    used_flow_mb      numeric(12, 3) NOT NULL DEFAULT 0,
    usage_updated_at  timestamptz,
    client_id         bigint REFERENCES clients (id),
    allocated_at      timestamptz,
    status            text NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'reserved', 'bound')),
    chip_id           bigint UNIQUE REFERENCES chips (id),
    opened_at         timestamptz,
    city              text,
    location_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'bound') = (chip_id IS NOT NULL))
);
CREATE INDEX numbers_free ON numbers (province_code, id) WHERE status = 'available';
CREATE INDEX numbers_client ON numbers (client_id) WHERE client_id IS NOT NULL;

-- EID and IMEI blacklists (R32).
CREATE TABLE blacklist (
    kind        text NOT NULL CHECK (kind IN ('eid', 'imei')),
    value       text NOT NULL,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);
