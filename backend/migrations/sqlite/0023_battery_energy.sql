-- Taper-aware planning (issue 15): the energy in the car's battery when its driver made the
-- request (Wh; from the SoC the app gave, or the charge point's), so the plan knows where the
-- battery's taper starts. Energy charged since counts on top of it.
ALTER TABLE charging_requests ADD COLUMN battery_energy_wh BIGINT;
