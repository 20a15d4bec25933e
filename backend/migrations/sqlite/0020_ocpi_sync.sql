-- store::sync_cursors: how far evflex has pulled each party's OCPI sender interfaces
-- (engine::sync). `date_from` is the newest `last_updated` (Unix s) of the objects of that module
-- seen in the last complete pull: the next pull asks from there (inclusive), so an update the
-- CPO made while evflex was down is fetched. `synced_at` is when that pull completed; a failed
-- pull leaves both untouched and records its error.
CREATE TABLE sync_cursors (
    party_row BIGINT NOT NULL,
    module TEXT NOT NULL,
    date_from BIGINT,
    synced_at BIGINT,
    objects BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (party_row, module)
);
