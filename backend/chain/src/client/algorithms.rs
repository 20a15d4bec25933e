//! AlgorithmRegistry: the versions of the scheduling algorithm that status commits name.

use alloy::primitives::B256;

use super::{ChainClient, WriteOutcome};
use crate::bindings::AlgorithmRegistry::AlgorithmRegistryErrors;
use crate::error::{ChainError, Contract, ContractError, decode_call_error};

impl ChainClient {
    /// Registers an algorithm version and returns its derived id; [`WriteOutcome::AlreadyDone`]
    /// if it is registered already.
    #[tracing::instrument(skip_all, fields(solver_version))]
    pub async fn register_algorithm(
        &self,
        model_hash: B256,
        solver_version: &str,
        params_hash: B256,
        uri: &str,
    ) -> Result<(B256, WriteOutcome), ChainError> {
        let version = self
            .algorithm_registry
            .computeVersion(model_hash, solver_version.to_owned(), params_hash)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::AlgorithmRegistry, "computeVersion", e))?;
        let call = self.algorithm_registry.register(
            model_hash,
            solver_version.to_owned(),
            params_hash,
            uri.to_owned(),
        );
        match self
            .send(Contract::AlgorithmRegistry, "register", call)
            .await
        {
            Ok(tx) => Ok((version, WriteOutcome::Mined(tx))),
            Err(ChainError::Reverted {
                error:
                    ContractError::AlgorithmRegistry(
                        AlgorithmRegistryErrors::AlgorithmRegistryDuplicateVersion(_),
                    ),
                ..
            }) => Ok((version, WriteOutcome::AlreadyDone)),
            Err(e) => Err(e),
        }
    }

    /// Whether `version` is registered and not deprecated.
    pub async fn is_algorithm_usable(&self, version: B256) -> Result<bool, ChainError> {
        self.algorithm_registry
            .isUsable(version)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::AlgorithmRegistry, "isUsable", e))
    }
}
