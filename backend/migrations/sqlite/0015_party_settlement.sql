-- store::parties: where a CPO is paid and who signs its bills (billing::signer). One address is
-- one party's only. meter_signer is the address EnergyBilling checks its bills against, as
-- evflex verified it when the party set the row (the signer signed a probe bill with it).
CREATE TABLE party_settlement (
    party_row BIGINT PRIMARY KEY REFERENCES ocpi_parties (id),
    cpo_address TEXT NOT NULL UNIQUE,
    meter_signer TEXT NOT NULL,
    signer_url TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
