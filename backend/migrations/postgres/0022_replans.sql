-- Event re-plans (issue 15). A group re-planned within a timestep (a session starts, a request
-- is made, a capacity changes, …) stores a new revision of that timestep's schedule; revision 0
-- is the quarter-hour tick's. Set-points name the revision they came from.
ALTER TABLE schedules ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE schedules DROP CONSTRAINT schedules_pkey;
ALTER TABLE schedules ADD PRIMARY KEY (group_id, timestep, revision);
-- The arrival reserve each plan kept free (W, `engine::reserve`).
ALTER TABLE schedules ADD COLUMN reserve_w BIGINT NOT NULL DEFAULT 0;

ALTER TABLE setpoints ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE setpoints DROP CONSTRAINT setpoints_group_id_timestep_session_row_key;
ALTER TABLE setpoints ADD CONSTRAINT setpoints_group_id_timestep_revision_session_row_key
    UNIQUE (group_id, timestep, revision, session_row);

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
