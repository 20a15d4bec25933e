-- store::locations: OCPI Locations, EVSEs and connectors as received from CPOs.
-- store::meter: raw meter values and the latest reading per EVSE (evse_live).
CREATE TABLE locations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    location_id TEXT NOT NULL,
    owner_party BIGINT,
    name TEXT,
    body TEXT NOT NULL,
    last_updated BIGINT NOT NULL,
    UNIQUE (country_code, party_id, location_id)
);

CREATE TABLE evses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    location_id TEXT NOT NULL,
    uid TEXT NOT NULL,
    evse_id TEXT,
    status TEXT NOT NULL,
    rated_power_w BIGINT,
    power_type TEXT,
    phases BIGINT,
    max_voltage_v BIGINT,
    max_current_a BIGINT,
    connector_standard TEXT,
    body TEXT NOT NULL,
    last_updated BIGINT NOT NULL,
    asset_version BIGINT NOT NULL DEFAULT 0,
    asset_hash TEXT NOT NULL DEFAULT '',
    UNIQUE (country_code, party_id, uid)
);
CREATE INDEX evses_location ON evses (country_code, party_id, location_id);

CREATE TABLE connectors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    evse_row BIGINT NOT NULL REFERENCES evses (id) ON DELETE CASCADE,
    connector_id TEXT NOT NULL,
    standard TEXT,
    format TEXT,
    power_type TEXT,
    max_voltage_v BIGINT,
    max_current_a BIGINT,
    max_electric_power_w BIGINT,
    body TEXT NOT NULL,
    last_updated BIGINT NOT NULL,
    UNIQUE (evse_row, connector_id)
);

CREATE TABLE meter_values (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    evse_uid TEXT NOT NULL,
    session_id TEXT,
    ts BIGINT NOT NULL,
    energy_wh BIGINT,
    power_w BIGINT,
    soc_permille BIGINT
);
CREATE INDEX meter_values_evse_ts ON meter_values (country_code, party_id, evse_uid, ts);

CREATE TABLE evse_live (
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    evse_uid TEXT NOT NULL,
    session_id TEXT,
    ts BIGINT NOT NULL,
    energy_wh BIGINT,
    power_w BIGINT,
    soc_permille BIGINT,
    PRIMARY KEY (country_code, party_id, evse_uid)
);
