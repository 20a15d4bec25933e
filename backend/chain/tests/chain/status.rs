//! SC2: status commits (ticks and their revisions), their idempotent replay, member packing and
//! the event reader.

use evflex_chain::alloy_types::B256;
use evflex_chain::bindings::StatusLedger::StatusLedgerErrors;
use evflex_chain::{
    ChainClient, ChainError, ChargePointId, CommitState, ContractError, EvseStatus, MemberStatus,
    StatusCommitInput, WriteOutcome, pack_members,
};

use crate::helpers::TestChain;

fn members(n: u32, seed: u32) -> Vec<MemberStatus> {
    (0..n)
        .map(|i| MemberStatus {
            cp_id: ChargePointId::try_from(100 + i).unwrap(),
            status: if i % 2 == 0 {
                EvseStatus::Charging as u8
            } else {
                EvseStatus::Available as u8
            },
            setpoint_w: 7_400 + seed + i,
            measured_w: 7_000 + i,
            energy_left_wh: 12_000 - i,
            time_left_s: 3_600 * (i + 1),
        })
        .collect()
}

async fn algorithm(op: &ChainClient) -> B256 {
    let (version, out) = op
        .register_algorithm(
            B256::repeat_byte(1),
            "highs-1.16.0",
            B256::repeat_byte(2),
            "https://evflex.example/alg",
        )
        .await
        .unwrap();
    assert!(matches!(out, WriteOutcome::Mined(_)));
    // registering the same version again is "already done"
    let (again, out) = op
        .register_algorithm(
            B256::repeat_byte(1),
            "highs-1.16.0",
            B256::repeat_byte(2),
            "https://evflex.example/alg",
        )
        .await
        .unwrap();
    assert_eq!((again, out), (version, WriteOutcome::AlreadyDone));
    assert!(op.is_algorithm_usable(version).await.unwrap());
    version
}

/// Revision `revision` of `(group_id, timestep)`.
fn revision(
    group_id: u64,
    timestep: u64,
    revision: u32,
    version: B256,
    seed: u8,
) -> StatusCommitInput {
    StatusCommitInput {
        revision,
        ..input(group_id, timestep, version, seed)
    }
}

fn input(group_id: u64, timestep: u64, version: B256, seed: u8) -> StatusCommitInput {
    StatusCommitInput {
        group_id,
        timestep,
        revision: 0,
        inputs_hash: B256::repeat_byte(0x10 + seed),
        schedule_hash: B256::repeat_byte(0x20 + seed),
        algorithm_version: version,
        members: members(4, seed as u32),
    }
}

#[tokio::test]
async fn commit_replay_is_idempotent_and_events_decode() {
    let t = TestChain::start().await;
    let op = t.operator().await;
    let version = algorithm(&op).await;
    let from = op.block_number().await.unwrap();

    let first = input(7, 1_000, version, 1);
    let out = op.commit_status(&first).await.unwrap();
    let tx = *out.tx().expect("mined");
    assert!(
        op.matches(7, 1_000, 0, first.inputs_hash, first.schedule_hash, version)
            .await
            .unwrap()
    );
    assert_ne!(op.commitment_of(7, 1_000, 0).await.unwrap(), B256::ZERO);
    assert_eq!(op.last_timestep(7).await.unwrap(), 1_000);

    // the outbox writer re-sends after a crash: already done, no error, no transaction
    let nonce_before = op.pending_nonce().await.unwrap();
    assert_eq!(
        op.commit_status(&first).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    assert_eq!(op.pending_nonce().await.unwrap(), nonce_before);

    // same (group, timestep) with other hashes: a conflict, not "done"
    let other = input(7, 1_000, version, 2);
    assert!(matches!(
        op.commit_status(&other).await,
        Err(ChainError::CommitConflict {
            group_id: 7,
            timestep: 1_000,
            revision: 0
        })
    ));
    // an older timestep: the decoded ordering error
    let err = op
        .commit_status(&input(7, 999, version, 3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.contract_error(),
            Some(ContractError::StatusLedger(StatusLedgerErrors::StatusLedgerTimestepNotAfterLast(e)))
                if e.last == 1_000
        ),
        "{err}"
    );
    // an unregistered algorithm version
    let err = op
        .commit_status(&input(8, 1, B256::repeat_byte(9), 1))
        .await
        .unwrap_err();
    assert_eq!(
        err.contract_error().unwrap().name(),
        "StatusLedgerUnusableAlgorithm",
        "{err}"
    );

    // no nonce gap after the refused transactions: the next commit mines at once
    let second = input(7, 1_001, version, 4);
    assert!(matches!(
        op.commit_status(&second).await.unwrap(),
        WriteOutcome::Mined(_)
    ));

    // the event reader gives back exactly what was committed
    let to = op.block_number().await.unwrap();
    let records = op.status_commits(from, to, Some(7)).await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].commit, first);
    assert_eq!(records[0].tx_hash, tx.tx_hash);
    assert_eq!(records[0].block_number, tx.block_number);
    assert_eq!(records[1].commit, second);
    assert!(
        op.status_commits(from, to, Some(8))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn pack_members_matches_the_contract_decoder() {
    let t = TestChain::start().await;
    let op = t.operator().await;
    let mut ms = members(3, 5);
    ms.push(MemberStatus {
        cp_id: ChargePointId::try_from(u32::MAX).unwrap(),
        status: EvseStatus::Unknown as u8,
        setpoint_w: u32::MAX,
        measured_w: 0,
        energy_left_wh: u32::MAX - 1,
        time_left_s: 1,
    });
    let packed = pack_members(&ms);
    assert_eq!(packed.len(), 21 * ms.len());
    for (i, m) in ms.iter().enumerate() {
        assert_eq!(
            op.decode_member_on_chain(&packed, i as u64).await.unwrap(),
            *m
        );
    }
}

#[tokio::test]
async fn batch_commit_skips_what_is_on_chain() {
    let t = TestChain::start().await;
    let op = t.operator().await;
    let version = algorithm(&op).await;

    let a = input(1, 50, version, 1);
    op.commit_status(&a).await.unwrap();
    let batch = vec![
        a.clone(),
        input(2, 50, version, 2),
        input(3, 50, version, 3),
    ];
    let out = op.commit_status_batch(&batch).await.unwrap();
    assert!(out.tx.is_some());
    assert_eq!(out.already_committed, vec![(1, 50, 0)]);
    for i in &batch {
        assert!(
            op.matches(
                i.group_id,
                i.timestep,
                i.revision,
                i.inputs_hash,
                i.schedule_hash,
                version
            )
            .await
            .unwrap()
        );
    }
    // full replay: nothing sent
    let out = op.commit_status_batch(&batch).await.unwrap();
    assert_eq!(out.tx, None);
    assert_eq!(out.already_committed.len(), 3);
    // a conflicting member in a batch fails the whole call before sending
    let conflict = vec![input(4, 50, version, 1), input(2, 50, version, 9)];
    assert!(matches!(
        op.commit_status_batch(&conflict).await,
        Err(ChainError::CommitConflict { group_id: 2, .. })
    ));
    assert_eq!(op.commitment_of(4, 50, 0).await.unwrap(), B256::ZERO);
}

/// Nonce gap: another process (a second replica, an operator with `cast`) sends with the same
/// key between our writes. The client takes the node's pending nonce for every transaction, so
/// neither side fails with "nonce too low" nor leaves a hole that stalls later transactions.
#[tokio::test]
async fn writes_survive_another_sender_on_the_same_key() {
    let t = TestChain::start().await;
    let a = t.operator().await;
    let b = t.operator().await;
    let version = algorithm(&a).await;

    let mut expected = Vec::new();
    for (i, client) in [&a, &b, &b, &a, &b, &a].into_iter().enumerate() {
        let nonce_before = client.pending_nonce().await.unwrap();
        let commit = input(9, 2_000 + i as u64, version, i as u8);
        let out = client.commit_status(&commit).await.unwrap();
        assert!(matches!(out, WriteOutcome::Mined(_)), "write {i}: {out:?}");
        assert_eq!(client.pending_nonce().await.unwrap(), nonce_before + 1);
        expected.push(commit);
    }
    for c in &expected {
        assert!(
            a.matches(
                c.group_id,
                c.timestep,
                c.revision,
                c.inputs_hash,
                c.schedule_hash,
                version
            )
            .await
            .unwrap()
        );
    }
    assert_eq!(a.last_timestep(9).await.unwrap(), 2_005);
}

/// Event re-plans: revisions 1, 2, … of a committed timestep, in order; a replayed revision is
/// "already done" with the same hashes and a conflict with others; a revision before its tick or
/// out of order is the contract's decoded error; revisions of an older timestep land after the
/// next tick without moving the group's last timestep; the event reader names each revision.
#[tokio::test]
async fn revisions_commit_in_order_and_replay_idempotently() {
    let t = TestChain::start().await;
    let op = t.operator().await;
    let version = algorithm(&op).await;
    let from = op.block_number().await.unwrap();

    // no tick yet: a revision is refused
    let err = op
        .commit_status(&revision(5, 300, 1, version, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.contract_error(),
            Some(ContractError::StatusLedger(
                StatusLedgerErrors::StatusLedgerRevisionOfUncommitted(e)
            )) if (e.groupId, e.timestep) == (5, 300)
        ),
        "{err}"
    );

    let tick = input(5, 300, version, 1);
    let first = revision(5, 300, 1, version, 2);
    for c in [&tick, &first] {
        assert!(matches!(
            op.commit_status(c).await.unwrap(),
            WriteOutcome::Mined(_)
        ));
    }
    assert_eq!(op.revision_count(5, 300).await.unwrap(), 1);
    assert!(
        op.matches(5, 300, 1, first.inputs_hash, first.schedule_hash, version)
            .await
            .unwrap()
    );
    // the tick's commitment is its own
    assert!(
        !op.matches(5, 300, 0, first.inputs_hash, first.schedule_hash, version)
            .await
            .unwrap()
    );
    assert_ne!(
        op.commitment_of(5, 300, 0).await.unwrap(),
        op.commitment_of(5, 300, 1).await.unwrap()
    );

    // a replayed revision: already done, nothing sent
    let nonce_before = op.pending_nonce().await.unwrap();
    assert_eq!(
        op.commit_status(&first).await.unwrap(),
        WriteOutcome::AlreadyDone
    );
    assert_eq!(op.pending_nonce().await.unwrap(), nonce_before);
    assert_eq!(op.commit_state(&first).await.unwrap(), CommitState::Same);
    // the same revision with other hashes: a conflict naming the revision
    let other = revision(5, 300, 1, version, 9);
    assert_eq!(
        op.commit_state(&other).await.unwrap(),
        CommitState::Conflict
    );
    assert!(matches!(
        op.commit_status(&other).await,
        Err(ChainError::CommitConflict {
            group_id: 5,
            timestep: 300,
            revision: 1
        })
    ));
    // a gap: revision 3 before revision 2
    let err = op
        .commit_status(&revision(5, 300, 3, version, 3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.contract_error(),
            Some(ContractError::StatusLedger(StatusLedgerErrors::StatusLedgerRevisionNotNext(e)))
                if e.revision == 3 && e.expected == 2
        ),
        "{err}"
    );

    // the next timestep's tick lands first; the older timestep still takes its next revision
    let next_tick = input(5, 301, version, 4);
    op.commit_status(&next_tick).await.unwrap();
    let second = revision(5, 300, 2, version, 5);
    assert_eq!(op.commit_state(&second).await.unwrap(), CommitState::Absent);
    let out = op
        .commit_status_batch(std::slice::from_ref(&second))
        .await
        .unwrap();
    assert!(out.tx.is_some());
    assert_eq!(op.revision_count(5, 300).await.unwrap(), 2);
    assert_eq!(op.revision_count(5, 301).await.unwrap(), 0);
    assert_eq!(op.last_timestep(5).await.unwrap(), 301);

    // a batch replay of everything sends nothing and names every revision
    let all = vec![
        tick.clone(),
        first.clone(),
        next_tick.clone(),
        second.clone(),
    ];
    let out = op.commit_status_batch(&all).await.unwrap();
    assert_eq!(out.tx, None);
    assert_eq!(
        out.already_committed,
        vec![(5, 300, 0), (5, 300, 1), (5, 301, 0), (5, 300, 2)]
    );

    // the events carry the revision
    let to = op.block_number().await.unwrap();
    let records = op.status_commits(from, to, Some(5)).await.unwrap();
    let commits: Vec<_> = records.into_iter().map(|r| r.commit).collect();
    assert_eq!(commits, all);
}
