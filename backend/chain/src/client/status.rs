//! StatusLedger (SC2): per-group, per-timestep status commits, and their events.
//!
//! A commit is identified by `(group, timestep, revision)`: revision 0 is the quarter-hour
//! tick's schedule, revisions 1, 2, … the event re-plans within the timestep. The contract takes
//! a timestep's revisions only after its tick and in order, and reverts a replay of any of them
//! with `StatusLedgerAlreadyCommitted(groupId, timestep, revision)`, which the writes here turn
//! into "already done" when the chain holds the same hashes.

use alloy::primitives::{B256, Bytes, TxHash, U256};
use alloy::sol_types::SolEvent;
use serde::{Deserialize, Serialize};

use super::{ChainClient, PendingTx, TxInfo, WriteOutcome, log_position};
use crate::bindings::{StatusCommit, StatusLedger, StatusLedger::StatusLedgerErrors};
use crate::error::{ChainError, Contract, ContractError, decode_call_error};
use crate::ids::ChargePointId;
use crate::members::{MemberStatus, pack_members, unpack_members};

/// One group's status at one timestep, as committed to SC2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCommitInput {
    /// The group.
    pub group_id: u64,
    /// The 15-minute timestep (e.g. unix seconds / 900).
    pub timestep: u64,
    /// The revision within the timestep: 0 for the tick's schedule, 1, 2, … for the event
    /// re-plans (committed after the tick's, in order).
    #[serde(default)]
    pub revision: u32,
    /// keccak-256 of the canonical scheduler inputs.
    pub inputs_hash: B256,
    /// keccak-256 of the quantized schedule.
    pub schedule_hash: B256,
    /// A usable algorithm version id.
    pub algorithm_version: B256,
    /// Every member's status.
    pub members: Vec<MemberStatus>,
}

impl StatusCommitInput {
    /// `(group, timestep, revision)`: what identifies the commit on chain.
    pub fn key(&self) -> (u64, u64, u32) {
        (self.group_id, self.timestep, self.revision)
    }

    fn conflict(&self) -> ChainError {
        ChainError::CommitConflict {
            group_id: self.group_id,
            timestep: self.timestep,
            revision: self.revision,
        }
    }

    fn to_commit(&self) -> StatusCommit {
        StatusCommit {
            groupId: self.group_id,
            timestep: self.timestep,
            revision: self.revision,
            inputsHash: self.inputs_hash,
            scheduleHash: self.schedule_hash,
            algorithmVersion: self.algorithm_version,
            members: pack_members(&self.members),
        }
    }
}

/// A `StatusCommitted` event read from the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCommitRecord {
    /// What was committed.
    pub commit: StatusCommitInput,
    /// The block.
    pub block_number: u64,
    /// The transaction.
    pub tx_hash: TxHash,
}

/// The result of [`ChainClient::commit_status_batch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitBatchOutcome {
    /// The transaction that committed the rest, if any was left to commit.
    pub tx: Option<TxInfo>,
    /// `(group, timestep, revision)` of the commits already on chain with the same hashes (not
    /// re-sent).
    pub already_committed: Vec<(u64, u64, u32)>,
}

/// Where a status commit stands on chain ([`ChainClient::commit_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    /// Nothing committed for its group, timestep and revision.
    Absent,
    /// Committed with exactly its hashes (done).
    Same,
    /// Committed with other hashes.
    Conflict,
}

/// The result of [`ChainClient::confirm_status_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusBatchOutcome {
    /// The transaction.
    pub tx: TxInfo,
    /// `(group, timestep, revision)` of every `StatusCommitted` event it emitted, in order.
    pub committed: Vec<(u64, u64, u32)>,
}

impl ChainClient {
    /// Commits one group's status at one timestep and revision. A replay of a commit already on
    /// chain with the same hashes is [`WriteOutcome::AlreadyDone`]; one with other hashes is
    /// [`ChainError::CommitConflict`]. A revision sent before its timestep's tick or out of order
    /// is the contract's `StatusLedgerRevisionOfUncommitted` or `StatusLedgerRevisionNotNext`.
    #[tracing::instrument(skip_all, fields(group_id = input.group_id, timestep = input.timestep, revision = input.revision, members = input.members.len()))]
    pub async fn commit_status(
        &self,
        input: &StatusCommitInput,
    ) -> Result<WriteOutcome, ChainError> {
        let c = input.to_commit();
        let call = self.status_ledger.commit(
            c.groupId,
            c.timestep,
            c.revision,
            c.inputsHash,
            c.scheduleHash,
            c.algorithmVersion,
            c.members,
        );
        match self.send(Contract::StatusLedger, "commit", call).await {
            Ok(tx) => Ok(WriteOutcome::Mined(tx)),
            Err(
                ChainError::Reverted {
                    error:
                        ContractError::StatusLedger(StatusLedgerErrors::StatusLedgerAlreadyCommitted(_)),
                    ..
                }
                | ChainError::FailedOnChain { .. },
            ) if self.is_committed(input).await? => Ok(WriteOutcome::AlreadyDone),
            Err(ChainError::Reverted {
                error:
                    ContractError::StatusLedger(StatusLedgerErrors::StatusLedgerAlreadyCommitted(_)),
                ..
            }) => Err(input.conflict()),
            Err(e) => Err(e),
        }
    }

    /// Whether `input`'s hashes are committed for its group, timestep and revision.
    async fn is_committed(&self, input: &StatusCommitInput) -> Result<bool, ChainError> {
        self.matches(
            input.group_id,
            input.timestep,
            input.revision,
            input.inputs_hash,
            input.schedule_hash,
            input.algorithm_version,
        )
        .await
    }

    /// Where `input` stands on chain: not committed, committed with these hashes, or committed
    /// with other hashes (for its group, timestep and revision).
    pub async fn commit_state(&self, input: &StatusCommitInput) -> Result<CommitState, ChainError> {
        let (group_id, timestep, revision) = input.key();
        if self.commitment_of(group_id, timestep, revision).await? == B256::ZERO {
            Ok(CommitState::Absent)
        } else if self.is_committed(input).await? {
            Ok(CommitState::Same)
        } else {
            Ok(CommitState::Conflict)
        }
    }

    /// Phase one of a batch commit: broadcasts one `commitBatch` of `inputs` (check them with
    /// [`commit_state`](Self::commit_state) first: the contract reverts the whole batch if one
    /// is committed). The contract commits them in order, so a timestep's tick and its revisions
    /// may share a batch, the tick first and the revisions in increasing order.
    #[tracing::instrument(skip_all, fields(count = inputs.len()))]
    pub async fn broadcast_status_batch(
        &self,
        inputs: &[StatusCommitInput],
    ) -> Result<PendingTx, ChainError> {
        let commits = inputs.iter().map(StatusCommitInput::to_commit).collect();
        let call = self.status_ledger.commitBatch(commits);
        self.broadcast(Contract::StatusLedger, "commitBatch", call)
            .await
    }

    /// Phase two of a batch commit: the receipt and the `(group, timestep, revision)` its
    /// `StatusCommitted` events name.
    pub async fn confirm_status_batch(
        &self,
        pending: &PendingTx,
    ) -> Result<StatusBatchOutcome, ChainError> {
        let (tx, logs) = self.confirm_logs(pending).await?;
        let ledger = self.deployment.contracts.status_ledger;
        let committed = logs
            .iter()
            .filter(|l| l.address() == ledger)
            .filter_map(|l| StatusLedger::StatusCommitted::decode_log(&l.inner).ok())
            .map(|ev| (ev.groupId, ev.timestep, ev.revision))
            .collect();
        Ok(StatusBatchOutcome { tx, committed })
    }

    /// Commits several groups in one atomic transaction, leaving out those already committed
    /// with the same hashes (a replayed batch sends nothing); fails with
    /// [`ChainError::CommitConflict`] if one is committed with other hashes. The writer runs the
    /// same steps with a database write between the phases.
    #[tracing::instrument(skip_all, fields(count = inputs.len()))]
    pub async fn commit_status_batch(
        &self,
        inputs: &[StatusCommitInput],
    ) -> Result<CommitBatchOutcome, ChainError> {
        let mut todo = Vec::with_capacity(inputs.len());
        let mut already_committed = Vec::new();
        for input in inputs {
            match self.commit_state(input).await? {
                CommitState::Absent => todo.push(input.clone()),
                CommitState::Same => already_committed.push(input.key()),
                CommitState::Conflict => return Err(input.conflict()),
            }
        }
        if todo.is_empty() {
            return Ok(CommitBatchOutcome {
                tx: None,
                already_committed,
            });
        }
        let pending = self.broadcast_status_batch(&todo).await?;
        let outcome = self.confirm_status_batch(&pending).await?;
        Ok(CommitBatchOutcome {
            tx: Some(outcome.tx),
            already_committed,
        })
    }

    /// The stored commitment of `(group_id, timestep, revision)`, zero if none.
    pub async fn commitment_of(
        &self,
        group_id: u64,
        timestep: u64,
        revision: u32,
    ) -> Result<B256, ChainError> {
        self.status_ledger
            .commitmentOf(group_id, timestep, revision)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::StatusLedger, "commitmentOf", e))
    }

    /// Whether `(group_id, timestep, revision)` is committed with exactly these hashes.
    pub async fn matches(
        &self,
        group_id: u64,
        timestep: u64,
        revision: u32,
        inputs_hash: B256,
        schedule_hash: B256,
        algorithm_version: B256,
    ) -> Result<bool, ChainError> {
        self.status_ledger
            .matches(
                group_id,
                timestep,
                revision,
                inputs_hash,
                schedule_hash,
                algorithm_version,
            )
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::StatusLedger, "matches", e))
    }

    /// How many revisions after the tick's `(group_id, timestep)` has on chain: 0 when only the
    /// tick's (or nothing) is committed, else its highest revision.
    pub async fn revision_count(&self, group_id: u64, timestep: u64) -> Result<u32, ChainError> {
        self.status_ledger
            .revisionCount(group_id, timestep)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::StatusLedger, "revisionCount", e))
    }

    /// The last timestep of `group_id` with a tick commit (revision 0), zero if none.
    pub async fn last_timestep(&self, group_id: u64) -> Result<u64, ChainError> {
        self.status_ledger
            .lastTimestep(group_id)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::StatusLedger, "lastTimestep", e))
    }

    /// Decodes member `index` of `packed` with the contract's own `decodeMember` view.
    pub async fn decode_member_on_chain(
        &self,
        packed: &Bytes,
        index: u64,
    ) -> Result<MemberStatus, ChainError> {
        let m = self
            .status_ledger
            .decodeMember(packed.clone(), U256::from(index))
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::StatusLedger, "decodeMember", e))?;
        Ok(MemberStatus {
            cp_id: ChargePointId::try_from(m.cpId)
                .map_err(|e| ChainError::Invalid(e.to_string()))?,
            status: m.status,
            setpoint_w: m.setpointW,
            measured_w: m.measuredW,
            energy_left_wh: m.energyLeftWh,
            time_left_s: m.timeLeftS,
        })
    }

    /// `StatusCommitted` events (ticks and revisions) in blocks `from_block..=to_block`,
    /// optionally of one group, in chain order (for audit and verification).
    #[tracing::instrument(skip_all, fields(from_block, to_block, group_id))]
    pub async fn status_commits(
        &self,
        from_block: u64,
        to_block: u64,
        group_id: Option<u64>,
    ) -> Result<Vec<StatusCommitRecord>, ChainError> {
        let mut filter = self
            .status_ledger
            .StatusCommitted_filter()
            .from_block(from_block)
            .to_block(to_block);
        if let Some(g) = group_id {
            filter = filter.topic1(U256::from(g));
        }
        let logs = filter
            .query()
            .await
            .map_err(|e| decode_call_error(Contract::StatusLedger, "getLogs", e))?;
        logs.into_iter()
            .map(|(ev, log)| {
                let (block_number, tx_hash) = log_position(&log);
                Ok(StatusCommitRecord {
                    commit: StatusCommitInput {
                        group_id: ev.groupId,
                        timestep: ev.timestep,
                        revision: ev.revision,
                        inputs_hash: ev.inputsHash,
                        schedule_hash: ev.scheduleHash,
                        algorithm_version: ev.algorithmVersion,
                        members: unpack_members(&ev.members)?,
                    },
                    block_number,
                    tx_hash,
                })
            })
            .collect()
    }
}
