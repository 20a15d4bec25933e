-- store::outbox: chain work written in the same transaction as the state it records; drained
-- by the chain writer. kind: asset_upsert | status_commit | settlement.
CREATE TABLE chain_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    tx_hash TEXT,
    block_number BIGINT,
    error TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX chain_outbox_status ON chain_outbox (status, id);
