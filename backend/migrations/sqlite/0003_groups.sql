-- store::groups: site topology (charging groups sharing a cabinet/transformer), their members,
-- scheduled capacity changes and per-step forecasts; store::prices: the price signal.
CREATE TABLE charging_groups (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    capacity_w BIGINT NOT NULL,
    other_load_w BIGINT NOT NULL DEFAULT 0,
    pv_inverters TEXT NOT NULL DEFAULT '[]',
    batteries TEXT NOT NULL DEFAULT '[]',
    asset_version BIGINT NOT NULL DEFAULT 0,
    asset_hash TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES charging_groups (id) ON DELETE CASCADE,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    evse_uid TEXT NOT NULL,
    PRIMARY KEY (country_code, party_id, evse_uid)
);
CREATE INDEX group_members_group ON group_members (group_id);

CREATE TABLE group_capacity_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BIGINT NOT NULL REFERENCES charging_groups (id) ON DELETE CASCADE,
    start_ts BIGINT NOT NULL,
    end_ts BIGINT,
    capacity_w BIGINT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX group_capacity_changes_group ON group_capacity_changes (group_id, start_ts);

CREATE TABLE group_series (
    group_id BIGINT NOT NULL REFERENCES charging_groups (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    ts BIGINT NOT NULL,
    value_w BIGINT NOT NULL,
    PRIMARY KEY (group_id, kind, ts)
);

CREATE TABLE prices (
    ts BIGINT PRIMARY KEY,
    price_micro_eur_per_kwh BIGINT NOT NULL
);
