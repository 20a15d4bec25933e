-- The taper knee the closed loop learned for a session's car from its meter values (issue 15,
-- `engine::closed_loop::knee_from_reading`): the SoC (‰) above which its power falls
-- linearly to 0 at full. NULL: not learned yet, the plan takes the configured knee.
ALTER TABLE sessions ADD COLUMN taper_knee_permille BIGINT;

-- An accepted offer (issue 15): all the energy its driver asked for (Wh, counted from the
-- offer's own request like `energy_wh`). The plan guarantees `energy_wh` and delivers the rest
-- as best effort. NULL: the request is all the driver wants.
ALTER TABLE charging_requests ADD COLUMN energy_wanted_wh BIGINT;
