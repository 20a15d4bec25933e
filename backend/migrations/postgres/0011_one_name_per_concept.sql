-- One name per concept (DESIGN.md, glossary): the energy a plan moved away from the
-- as-fast-as-possible baseline is `shifted_wh` (its value at the day's prices
-- `shifted_value_micro_eur`), as in evflex_schedule::Flexibility.
ALTER TABLE sessions RENAME COLUMN flex_shifted_wh TO shifted_wh;
ALTER TABLE sessions RENAME COLUMN flex_value_micro_eur TO shifted_value_micro_eur;
