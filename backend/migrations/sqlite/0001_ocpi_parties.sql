-- store::parties: CPO parties that completed the OCPI credentials handshake, and the tokens
-- they present to evflex (registration token A, credentials token C; stored as SHA3-256 hashes).
CREATE TABLE ocpi_parties (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    roles TEXT NOT NULL,
    versions_url TEXT NOT NULL,
    token_b TEXT NOT NULL,
    version TEXT,
    endpoints TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE ocpi_tokens (
    token_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    party_row BIGINT REFERENCES ocpi_parties (id),
    revoked BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX ocpi_tokens_party ON ocpi_tokens (party_row);
