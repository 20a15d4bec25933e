-- Event re-plans (issue 15). A group re-planned within a timestep (a session starts, a request
-- is made, a capacity changes, …) stores a new revision of that timestep's schedule; revision 0
-- is the quarter-hour tick's. Set-points name the revision they came from. SQLite cannot change
-- a primary key or a table constraint in place: both tables are rebuilt.
CREATE TABLE schedules_new (
    group_id BIGINT NOT NULL,
    timestep BIGINT NOT NULL,
    revision BIGINT NOT NULL DEFAULT 0,
    time_step_s BIGINT NOT NULL,
    status TEXT NOT NULL,
    inputs_hash TEXT NOT NULL,
    schedule_hash TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    inputs TEXT NOT NULL,
    schedule TEXT NOT NULL,
    members TEXT NOT NULL,
    capacity_w BIGINT NOT NULL,
    planned_load_w BIGINT NOT NULL,
    measured_load_w BIGINT NOT NULL,
    pv_w BIGINT NOT NULL,
    -- The arrival reserve the plan kept free (W, `engine::reserve`).
    reserve_w BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, timestep, revision)
);
INSERT INTO schedules_new (group_id, timestep, revision, time_step_s, status, inputs_hash,
    schedule_hash, params_hash, inputs, schedule, members, capacity_w, planned_load_w,
    measured_load_w, pv_w, created_at)
SELECT group_id, timestep, 0, time_step_s, status, inputs_hash, schedule_hash, params_hash,
    inputs, schedule, members, capacity_w, planned_load_w, measured_load_w, pv_w, created_at
FROM schedules;
DROP TABLE schedules;
ALTER TABLE schedules_new RENAME TO schedules;

CREATE TABLE setpoints_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BIGINT NOT NULL,
    timestep BIGINT NOT NULL,
    revision BIGINT NOT NULL DEFAULT 0,
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
    not_before BIGINT NOT NULL DEFAULT 0,
    deferrals BIGINT NOT NULL DEFAULT 0,
    sent_at BIGINT,
    active_queried_at BIGINT,
    UNIQUE (group_id, timestep, revision, session_row)
);
INSERT INTO setpoints_new (id, group_id, timestep, revision, session_row, session_id,
    owner_party, power_w, profile, status, attempts, response, result, error, created_at,
    updated_at, not_before, deferrals, sent_at, active_queried_at)
SELECT id, group_id, timestep, 0, session_row, session_id, owner_party, power_w, profile,
    status, attempts, response, result, error, created_at, updated_at, not_before, deferrals,
    sent_at, active_queried_at
FROM setpoints;
DROP TABLE setpoints;
ALTER TABLE setpoints_new RENAME TO setpoints;
CREATE INDEX setpoints_status ON setpoints (status);

-- store::replans: the events a group still has to be re-planned for, coalesced to one row per
-- group. `seq` counts the events; a re-plan deletes the row only if no event came in while it
-- was solving (its `seq` is still the one it read), so no event is lost.
CREATE TABLE replan_requests (
    group_id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    reason TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL
);

-- The arrival reserve a CPO set for a group (W; NULL: evflex's rule, `engine::reserve`).
ALTER TABLE charging_groups ADD COLUMN arrival_reserve_w BIGINT;

-- The closed loop (`engine::closed_loop`): what a session's car was seen able to draw, and since
-- when it draws above its limit.
ALTER TABLE sessions ADD COLUMN observed_max_w BIGINT;
ALTER TABLE sessions ADD COLUMN over_limit_since BIGINT;

-- A session's set-points, newest first: every plan reads the last one of each of its sessions
-- and every new set-point supersedes the pending ones of its session (without this index, each
-- of those reads scanned the whole table, and a burst of re-plans over many groups slowed down
-- with the square of the set-points stored).
CREATE INDEX setpoints_session ON setpoints (session_row, id);
