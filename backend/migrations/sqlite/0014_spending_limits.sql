-- store::wallets: the nonce of the next EnergyBilling spending-limit update evflex signs with a
-- user's custodial key (wallet::enqueue_spending_limit), as consent_nonce is for consents.
ALTER TABLE wallets ADD COLUMN spending_nonce BIGINT NOT NULL DEFAULT 0;
