-- Issue 5 (chain writer, e-wallets, billing).
-- store::outbox_drain: the chain writer's bookkeeping on chain_outbox (receipts, back-off).
ALTER TABLE chain_outbox ADD COLUMN gas_used BIGINT;
ALTER TABLE chain_outbox ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE chain_outbox ADD COLUMN sent_at BIGINT;
ALTER TABLE chain_outbox ADD COLUMN note TEXT;

-- store::wallets: one custodial wallet per user (keystore sealed with the master secret), or an
-- external address that signed in with SIWE (keystore_json NULL); SIWE nonces.
CREATE TABLE wallets (
    user_id BIGINT PRIMARY KEY REFERENCES users (id),
    address TEXT NOT NULL UNIQUE,
    keystore_json TEXT,
    consent_nonce BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE auth_nonces (
    nonce TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- store::bills (owned by billing): one bill per CDR, signed by the CPO meter key.
CREATE TABLE bills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cdr_key TEXT NOT NULL UNIQUE,
    user_id BIGINT,
    user_address TEXT,
    cpo_address TEXT NOT NULL,
    session_id TEXT,
    chain_session_id TEXT NOT NULL,
    start_ts BIGINT NOT NULL,
    end_ts BIGINT NOT NULL,
    energy_wh BIGINT NOT NULL,
    cdr_energy_wh BIGINT NOT NULL,
    meter_energy_wh BIGINT,
    energy_discrepancy_wh BIGINT NOT NULL DEFAULT 0,
    price_micro_eur_per_kwh BIGINT NOT NULL,
    credit_wh BIGINT NOT NULL,
    flexibility_wh BIGINT NOT NULL,
    cost_micro_eur BIGINT NOT NULL,
    uncontrolled_cost_micro_eur BIGINT NOT NULL,
    saving_micro_eur BIGINT NOT NULL,
    meter_signature TEXT,
    status TEXT NOT NULL,
    tx_hash TEXT,
    block_number BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX bills_user ON bills (user_id, id);
