-- One name per concept (DESIGN.md, glossary): the energy a plan moved away from the
-- as-fast-as-possible baseline is `shifted_wh` (its value at the day's prices
-- `shifted_value_micro_eur`), as in evflex_schedule::Flexibility; what a schedule row stores of
-- its solve options is their hash, `params_hash` (the on-chain algorithm version is derived from
-- it).
ALTER TABLE sessions RENAME COLUMN flex_shifted_wh TO shifted_wh;
ALTER TABLE sessions RENAME COLUMN flex_value_micro_eur TO shifted_value_micro_eur;
ALTER TABLE schedules RENAME COLUMN algorithm_version TO params_hash;
