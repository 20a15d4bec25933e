//! The outbox's path is the tested path: `ChainWork` values, stored and read back exactly as the
//! service's outbox does it (`kind` + `payload` columns), executed through the very client
//! methods the writer calls (`broadcast_*`, then `confirm_*` after the rows are marked `sent`,
//! or `tx_status` after a crash). The one-call batch methods (`settle_batch`,
//! `commit_status_batch`) are those same two phases, so a replay through them sees the work as
//! done.

use evflex_chain::alloy_types::{B256, U256};
use evflex_chain::wallet::eip712::sign_bill;
use evflex_chain::work::{CdrFacts, SettlementWork, SignedBill};
use evflex_chain::{
    Bill, ChainWork, ChargePointId, CommitState, EvseStatus, MemberStatus, SkipReason,
    StatusCommitInput, TxStatus, WorkKind,
};

use crate::helpers::TestChain;

/// Stores `work` as the outbox does and reads it back as the writer does.
fn through_the_outbox(work: &ChainWork) -> ChainWork {
    let (kind, payload) = (work.kind().as_str(), work.payload_json());
    ChainWork::from_stored(kind, &payload).expect("stored work reads back")
}

fn settlement(session: u8, signed: SignedBill) -> ChainWork {
    ChainWork::Settlement(SettlementWork {
        cdr: CdrFacts {
            country_code: "NL".into(),
            party_id: "EXA".into(),
            cdr_id: format!("C{session}"),
            session_id: Some(format!("S{session}")),
            evse_uid: "E1".into(),
            user_id: Some(1),
            token_uid: "T".into(),
            start_ts: 1_767_225_600,
            end_ts: 1_767_240_000,
            energy_wh: 10_000,
            total_cost_excl_vat_micro: Some(3_000_000),
            total_cost_incl_vat_micro: None,
            currency: "EUR".into(),
            shifted_wh: 2_000,
            shifted_value_micro_eur: 0,
        },
        bill: Some(signed),
    })
}

#[tokio::test]
async fn settlement_work_runs_through_the_writers_two_phases() {
    let t = TestChain::start().await;
    let op = t.operator().await;
    let meter = t.accounts.cpo_meter().unwrap();
    let cpo = t.accounts.cpo_admin().unwrap().address();
    let rich = t.accounts.demo_user(0).unwrap().address();
    let poor = t.accounts.demo_user(1).unwrap().address();
    op.top_up(rich, U256::from(20_000_000u64)).await.unwrap();
    let domain = op.billing_domain().await.unwrap();

    // What billing enqueues: the signed bill inside the work.
    let mut works = Vec::new();
    for (session, user) in [(21u8, rich), (22, poor)] {
        let bill = Bill {
            sessionId: B256::repeat_byte(session),
            user,
            cpo,
            energyWh: 10_000,
            priceMicroEurPerKwh: 300_000,
            creditWh: 0,
            flexibilityWh: 2_000,
            start: 1_767_225_600,
            end: 1_767_240_000,
        };
        let sig = sign_bill(&meter, &bill, &domain).unwrap();
        let work = settlement(session, SignedBill::new(&bill, &sig));
        assert!(work.wanted(false), "settlements are kept without a chain");
        works.push(through_the_outbox(&work));
    }
    // What the writer executes.
    let bills: Vec<_> = works
        .iter()
        .map(|w| match w {
            ChainWork::Settlement(SettlementWork { bill: Some(b), .. }) => b.to_bill().unwrap(),
            other => panic!("not a signed settlement: {other:?}"),
        })
        .collect();
    let pending = op.broadcast_settle_batch(&bills).await.unwrap();
    // (the writer marks its rows `sent` with this hash here)
    let outcome = op.confirm_settle_batch(&pending).await.unwrap();
    assert_eq!(outcome.tx.tx_hash, pending.tx_hash);
    assert_eq!(outcome.settled, vec![B256::repeat_byte(21)]);
    assert_eq!(outcome.skipped.len(), 1);
    assert_eq!(
        outcome.skipped[0].reason_kind(),
        SkipReason::InsufficientBalance
    );
    assert_eq!(
        outcome.skipped[0].reason_label(),
        "EnergyBillingInsufficientBalance"
    );
    // After a crash the writer asks by hash instead of re-sending.
    assert_eq!(
        op.tx_status(pending.tx_hash).await.unwrap(),
        TxStatus::Mined(outcome.tx)
    );
    // The one-call method is the same two phases: a replay finds the settled one settled.
    let replay = op.settle_batch(&bills[..1]).await.unwrap();
    assert!(replay.settled.is_empty());
    assert_eq!(replay.skipped[0].reason_kind(), SkipReason::AlreadySettled);
}

#[tokio::test]
async fn status_commits_run_through_the_writers_two_phases() {
    let t = TestChain::start().await;
    let op = t.operator().await;
    let (version, _) = op
        .register_algorithm(
            B256::repeat_byte(3),
            "highs-1.16.0",
            B256::repeat_byte(4),
            "https://evflex.example/alg",
        )
        .await
        .unwrap();
    let input = |group_id: u64, seed: u8| StatusCommitInput {
        group_id,
        timestep: 77,
        revision: 0,
        inputs_hash: B256::repeat_byte(0x30 + seed),
        schedule_hash: B256::repeat_byte(0x40 + seed),
        algorithm_version: version,
        members: vec![MemberStatus {
            cp_id: ChargePointId::try_from(u32::from(seed)).unwrap(),
            status: EvseStatus::Charging as u8,
            setpoint_w: 7_400,
            measured_w: 7_000,
            energy_left_wh: 5_000,
            time_left_s: 3_600,
        }],
    };
    // A re-plan of group 1 rides in the same batch as its tick, after it.
    let revision = StatusCommitInput {
        revision: 1,
        ..input(1, 5)
    };
    let batch = vec![input(1, 1), input(2, 2), revision];
    for i in &batch {
        assert_eq!(op.commit_state(i).await.unwrap(), CommitState::Absent);
    }
    let pending = op.broadcast_status_batch(&batch).await.unwrap();
    let outcome = op.confirm_status_batch(&pending).await.unwrap();
    assert_eq!(outcome.committed, vec![(1, 77, 0), (2, 77, 0), (1, 77, 1)]);
    assert_eq!(op.commit_state(&batch[0]).await.unwrap(), CommitState::Same);
    assert_eq!(
        op.commit_state(&input(2, 9)).await.unwrap(),
        CommitState::Conflict
    );
    // The one-call method checks with the same `commit_state` and sends nothing on a replay.
    let replay = op.commit_status_batch(&batch).await.unwrap();
    assert_eq!((replay.tx, replay.already_committed.len()), (None, 3));
    // Status commits are the one kind a chainless service does not enqueue.
    assert!(!WorkKind::StatusCommit.enqueued_without_chain());
}
