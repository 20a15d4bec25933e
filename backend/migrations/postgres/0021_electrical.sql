-- Issue 12, the site as electricians build it.
-- store::groups: a group's electrical model (JSON, `store::groups::Electrical`): the per-phase
-- limits of its connection, the tree of limit nodes beneath it (transformers, fuses, cabinets)
-- and how each member charge point is wired (phases and rotation, amps or watts, min/max/step).
-- '{}' is a group that is one number, as before.
ALTER TABLE charging_groups ADD COLUMN electrical TEXT NOT NULL DEFAULT '{}';
-- store::meter: the phases a car draws on, counted from per-phase `Current.Import` samples
-- (a phase above 1 A), so a single-phase car on a three-phase point loads one phase in the plan.
ALTER TABLE meter_values ADD COLUMN car_phases BIGINT;
ALTER TABLE evse_live ADD COLUMN car_phases BIGINT;
