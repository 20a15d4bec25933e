-- store::parties: which party holds which OCPI party codes (country code and party id, upper
-- case). The primary key makes a code one party's only, so a credentials POST or PUT that names
-- a code another registered party holds fails atomically, even when two race. A party's rows
-- are replaced on every registration and deleted when it unregisters.
CREATE TABLE party_codes (
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    party_row BIGINT NOT NULL REFERENCES ocpi_parties (id),
    PRIMARY KEY (country_code, party_id)
);
CREATE INDEX party_codes_party ON party_codes (party_row);
-- Registered parties keep their first role's code (the others are claimed again at their next
-- credentials PUT); where two parties share one, the older keeps it.
INSERT INTO party_codes (country_code, party_id, party_row)
SELECT UPPER(country_code), UPPER(party_id), MIN(id) FROM ocpi_parties
WHERE status = 'registered' GROUP BY UPPER(country_code), UPPER(party_id);
