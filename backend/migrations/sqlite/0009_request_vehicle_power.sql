-- A charging request may carry the vehicle's own maximum charging power (W); the planner uses
-- the lower of it and the charge point's rating.
ALTER TABLE charging_requests ADD COLUMN vehicle_max_power_w BIGINT;
