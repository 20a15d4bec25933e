-- store::users: EV users and their smart-charging consent; store::requests: charging requests
-- and their admission result.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    token_uid TEXT,
    opted_in BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX users_token_uid ON users (token_uid);

CREATE TABLE charging_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id),
    session_row BIGINT NOT NULL REFERENCES sessions (id),
    group_id BIGINT,
    energy_wh BIGINT NOT NULL,
    target_soc_percent BIGINT,
    battery_capacity_wh BIGINT,
    departure_ts BIGINT NOT NULL,
    session_energy_wh_at_request BIGINT NOT NULL,
    decision TEXT NOT NULL,
    max_guaranteed_wh BIGINT,
    earliest_full_departure_ts BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX charging_requests_session ON charging_requests (session_row, decision);
