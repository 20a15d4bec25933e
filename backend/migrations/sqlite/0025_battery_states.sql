-- Owner: src/store/groups.rs. A stationary battery's last measured state (issue 15), posted by
-- the site's battery controller (`PUT /api/v1/groups/{id}/batteries/{battery_id}/state`): the
-- plan starts from it in place of the topology's `energy_wh`. A topology write of the group
-- clears it (the topology's figure is then the newer one).
CREATE TABLE battery_states (
    group_id BIGINT NOT NULL REFERENCES charging_groups (id) ON DELETE CASCADE,
    battery_id TEXT NOT NULL,
    energy_wh BIGINT NOT NULL,
    power_w BIGINT NOT NULL,
    measured_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, battery_id)
);
