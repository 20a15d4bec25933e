-- store::tariffs: the Tariffs a CPO pushed to evflex's Tariffs receiver (OCPI 2.2.1), as
-- received, keyed like every CPO object by (party codes, tariff id) and owned by the party row
-- that sent it. `currency` is the tariff's ISO 4217 code (billing refuses any but EUR).
CREATE TABLE tariffs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    tariff_id TEXT NOT NULL,
    owner_party BIGINT,
    currency TEXT NOT NULL,
    body TEXT NOT NULL,
    last_updated BIGINT NOT NULL,
    UNIQUE (country_code, party_id, tariff_id)
);

-- store::bills: where a bill's price came from (billing, "Price sources"): `cdr_total_cost`
-- (the CDR's total_cost), `tariff` (the OCPI tariff the CDR or its session names, priced by
-- billing::tariff) or `flat` (EVFLEX_CPO_TARIFF, the last resort; every bill before 0019 was
-- flat). `currency`: the currency the price was stated in. `status_reason`: why a bill is
-- `unbillable` (e.g. "CDR currency USD does not match the payment token (EUR)").
ALTER TABLE bills ADD COLUMN price_source TEXT NOT NULL DEFAULT 'flat';
ALTER TABLE bills ADD COLUMN currency TEXT NOT NULL DEFAULT 'EUR';
ALTER TABLE bills ADD COLUMN status_reason TEXT;

-- store::sessions: a CDR may come without total_cost (billing then prices it from its tariff).
-- SQLite cannot drop a NOT NULL in place: the table is rebuilt with the same columns in the
-- same order.
CREATE TABLE cdrs_0019 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    cdr_id TEXT NOT NULL,
    owner_party BIGINT,
    session_id TEXT,
    evse_uid TEXT NOT NULL,
    start_ts BIGINT NOT NULL,
    end_ts BIGINT NOT NULL,
    energy_wh BIGINT NOT NULL,
    total_cost_excl_vat_micro_eur BIGINT,
    total_cost_incl_vat_micro_eur BIGINT,
    currency TEXT NOT NULL,
    token_uid TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (country_code, party_id, cdr_id)
);
INSERT INTO cdrs_0019 (id, country_code, party_id, cdr_id, owner_party, session_id, evse_uid,
        start_ts, end_ts, energy_wh, total_cost_excl_vat_micro_eur,
        total_cost_incl_vat_micro_eur, currency, token_uid, body, created_at)
    SELECT id, country_code, party_id, cdr_id, owner_party, session_id, evse_uid, start_ts,
        end_ts, energy_wh, total_cost_excl_vat_micro_eur, total_cost_incl_vat_micro_eur,
        currency, token_uid, body, created_at
    FROM cdrs;
DROP TABLE cdrs;
ALTER TABLE cdrs_0019 RENAME TO cdrs;
