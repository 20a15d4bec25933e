//! FlexToken (the FLEX reward, ERC-20) and TestEuro (the local chains' 6-decimals payment token).

use alloy::primitives::{Address, U256};

use super::{ChainClient, TxInfo};
use crate::error::{ChainError, Contract, decode_call_error};

impl ChainClient {
    /// Mints `amount` test-euro units to `to` (TestEuro's MINTER_ROLE; local chains only).
    #[tracing::instrument(skip_all, fields(%to, %amount))]
    pub async fn mint_test_euro(&self, to: Address, amount: U256) -> Result<TxInfo, ChainError> {
        let call = self.test_euro.mint(to, amount);
        self.send(Contract::TestEuro, "mint", call).await
    }

    /// `owner`'s payment-token (tEUR) wallet balance, outside EnergyBilling.
    pub async fn payment_token_balance(&self, owner: Address) -> Result<U256, ChainError> {
        self.test_euro
            .balanceOf(owner)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::TestEuro, "balanceOf", e))
    }

    /// `owner`'s FLEX balance, wei (18 decimals).
    pub async fn flex_balance(&self, owner: Address) -> Result<U256, ChainError> {
        self.flex_token
            .balanceOf(owner)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::FlexToken, "balanceOf", e))
    }

    /// FLEX in circulation, wei (18 decimals).
    pub async fn flex_total_supply(&self) -> Result<U256, ChainError> {
        self.flex_token
            .totalSupply()
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::FlexToken, "totalSupply", e))
    }
}
