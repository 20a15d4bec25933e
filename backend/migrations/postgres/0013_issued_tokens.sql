-- store::users: evflex issues every user's OCPI token uid ('EVF' and 13 hex digits), and a uid
-- is one user's only. Uids that users declared themselves before this migration prove nothing,
-- so those users get an issued uid instead (sessions already linked stay linked).
UPDATE users SET token_uid = 'EVF' || upper(substr(md5(random()::text || id::text), 1, 13))
WHERE token_uid IS NULL OR token_uid NOT LIKE 'EVF%' OR length(token_uid) <> 16;
DROP INDEX users_token_uid;
CREATE UNIQUE INDEX users_token_uid ON users (token_uid);

-- store::token_deliveries: which user's token evflex has pushed to which CPO's OCPI Tokens
-- receiver (engine::tokens). A row without delivered_at is a push that failed so far.
CREATE TABLE token_deliveries (
    party_row BIGINT NOT NULL REFERENCES ocpi_parties (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (party_row, user_id)
);
