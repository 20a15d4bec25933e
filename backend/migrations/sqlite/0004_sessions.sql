-- store::sessions: OCPI Sessions and CDRs as received from CPOs.
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    owner_party BIGINT,
    location_id TEXT NOT NULL,
    evse_uid TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_ts BIGINT NOT NULL,
    end_ts BIGINT,
    energy_wh BIGINT NOT NULL,
    token_uid TEXT NOT NULL,
    contract_id TEXT,
    charging_periods TEXT NOT NULL DEFAULT '[]',
    total_cost TEXT,
    user_id BIGINT,
    flex_shifted_wh BIGINT NOT NULL DEFAULT 0,
    flex_value_micro_eur BIGINT NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    last_updated BIGINT NOT NULL,
    UNIQUE (country_code, party_id, session_id)
);
CREATE INDEX sessions_evse_status ON sessions (country_code, party_id, evse_uid, status);
CREATE INDEX sessions_token_uid ON sessions (token_uid);

CREATE TABLE cdrs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    cdr_id TEXT NOT NULL,
    owner_party BIGINT,
    session_id TEXT,
    evse_uid TEXT NOT NULL,
    start_ts BIGINT NOT NULL,
    end_ts BIGINT NOT NULL,
    energy_wh BIGINT NOT NULL,
    total_cost_excl_vat_micro_eur BIGINT NOT NULL,
    total_cost_incl_vat_micro_eur BIGINT,
    currency TEXT NOT NULL,
    token_uid TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (country_code, party_id, cdr_id)
);
