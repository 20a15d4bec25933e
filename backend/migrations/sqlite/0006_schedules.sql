-- store::schedules: one schedule per (group, timestep) with its canonical inputs and hashes,
-- and the set-points sent to CPOs from it.
CREATE TABLE schedules (
    group_id BIGINT NOT NULL,
    timestep BIGINT NOT NULL,
    time_step_s BIGINT NOT NULL,
    status TEXT NOT NULL,
    inputs_hash TEXT NOT NULL,
    schedule_hash TEXT NOT NULL,
    algorithm_version TEXT NOT NULL,
    inputs TEXT NOT NULL,
    schedule TEXT NOT NULL,
    members TEXT NOT NULL,
    capacity_w BIGINT NOT NULL,
    planned_load_w BIGINT NOT NULL,
    measured_load_w BIGINT NOT NULL,
    pv_w BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, timestep)
);

CREATE TABLE setpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BIGINT NOT NULL,
    timestep BIGINT NOT NULL,
    session_row BIGINT NOT NULL,
    session_id TEXT NOT NULL,
    owner_party BIGINT,
    power_w BIGINT NOT NULL,
    profile TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    response TEXT,
    result TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (group_id, timestep, session_row)
);
CREATE INDEX setpoints_status ON setpoints (status);
