//! Event re-plans on a real chain: each revision of a (group, timestep) goes through the writer
//! after the tick's, in the same `commitBatch`, and `evflex audit` and `evflex verify` (the
//! library functions and the audit routes) check every revision on its own.
//!
//! The re-plans are stored here as `engine::replan` stores them (a whole schedule of the
//! revision with its own hashes, and its `status_commit:{group}:{timestep}:r{revision}` work),
//! from a fresh solve of the tick's inputs with a lower capacity, so each revision has its own
//! inputs hash and its schedule is feasible and optimal for its inputs.

use crate::chain::{chain_app, writer};
use crate::helpers::{NowS, TestApp, spawn_cpo};
use evflex::chain::audit;
use evflex::store::{outbox, schedules};
use evflex_chain::work::StatusCommitWork;
use evflex_chain::{ChainClient, ChainWork, LocalChain, StatusCommitInput, WorkKind};
use evflex_schedule::{GroupInputs, hash};
use reqwest::Method;
use serde_json::json;

/// The tick's status commit of group 1 (revision 0), from the outbox.
async fn tick_commit(app: &TestApp) -> StatusCommitWork {
    let rows = app.outbox(WorkKind::StatusCommit.as_str()).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    serde_json::from_str(&rows[0].payload).unwrap()
}

/// Stores revision `revision` of (group 1, `timestep`): the tick's inputs with `capacity_w` on
/// every step, solved afresh, and enqueues its status commit.
async fn store_revision(app: &TestApp, tick: &StatusCommitWork, revision: i64, capacity_w: i64) {
    let mut conn = app.state.db.conn().await.unwrap();
    let base = schedules::get(&mut conn, 1, tick.timestep, 0)
        .await
        .unwrap()
        .expect("the tick's schedule");
    let mut inputs: GroupInputs = serde_json::from_value(base.inputs.clone()).unwrap();
    inputs.capacity_w = vec![capacity_w; inputs.horizon];
    let schedule =
        evflex_schedule::solve(&inputs, &app.state.engine.solve_options(), None).unwrap();
    let inputs_hash = hash::to_hex(&hash::inputs_hash(&inputs));
    let schedule_hash = hash::to_hex(&hash::schedule_hash(&schedule));
    let record = schedules::ScheduleRecord {
        revision,
        inputs_hash: inputs_hash.clone(),
        schedule_hash: schedule_hash.clone(),
        inputs: serde_json::to_value(&inputs).unwrap(),
        schedule: serde_json::to_value(&schedule).unwrap(),
        ..base
    };
    assert!(schedules::insert(&mut conn, &record).await.unwrap());
    let work = StatusCommitWork {
        revision,
        inputs_hash,
        schedule_hash,
        ..tick.clone()
    };
    let key = format!("status_commit:1:{}:r{revision}", tick.timestep);
    let now = app.clock.now_s();
    assert!(
        outbox::enqueue(&mut conn, &key, &ChainWork::StatusCommit(work), now)
            .await
            .unwrap()
    );
}

async fn verify(app: &TestApp, op: &ChainClient, timestep: i64, revision: i64) -> bool {
    let opts = app.state.engine.solve_options();
    let rec = audit::revision_record(&app.state.db, &opts, 1, timestep, revision)
        .await
        .unwrap()
        .expect("a stored revision");
    assert_eq!((rec.revision, rec.last_revision), (revision, 2));
    let report = audit::verify_record(&rec, Some(op)).await.unwrap();
    assert!(report.message.contains(if revision == 0 {
        "timestep"
    } else {
        "revision"
    }));
    report.ok
}

#[tokio::test]
async fn every_revision_is_committed_in_order_audited_and_verified() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let mut app = chain_app(&chain).await;
    let op = app.state.engine.chain.clone().unwrap().operator.clone();
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E2"]).await;
    app.put_group(1, 22_080, &["E1", "E2"]).await;
    let (_, _, alice_uid) = app.new_user("alice", true).await;
    let (_, _, bob_uid) = app.new_user("bob", false).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    app.put_session("S2", "E2", &bob_uid, 0.0).await;
    app.tick().await;
    let tick = tick_commit(&app).await;
    let ts = tick.timestep;

    // The tick and two re-plans of its timestep, all pending: one batch, in order.
    store_revision(&app, &tick, 1, 9_000).await;
    store_revision(&app, &tick, 2, 6_000).await;
    let r = writer(&app).run_until_idle(10).await.unwrap();
    assert_eq!(r.failed, 0, "{r:?}");
    let rows = app.outbox(WorkKind::StatusCommit.as_str()).await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.status == "done"), "{rows:?}");
    assert!(
        rows.iter().all(|r| r.tx_hash == rows[0].tx_hash),
        "one commitBatch: {rows:?}"
    );
    assert_eq!(op.revision_count(1, ts as u64).await.unwrap(), 2);
    let to = op.block_number().await.unwrap();
    let events = op.status_commits(0, to, Some(1)).await.unwrap();
    let keys: Vec<_> = events.iter().map(|e| e.commit.key()).collect();
    let t = ts as u64;
    assert_eq!(keys, vec![(1, t, 0), (1, t, 1), (1, t, 2)]);

    // A replayed writer finds every revision on chain: nothing sent.
    sqlx::query("UPDATE chain_outbox SET status = 'pending' WHERE kind = 'status_commit'")
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let r = writer(&app).run_until_idle(10).await.unwrap();
    assert_eq!((r.done, r.transactions, r.failed), (3, 0, 0), "{r:?}");

    // audit: clean; verify: every revision against its own commitment.
    let diffs = audit::audit(&app.state.db, &op).await.unwrap();
    assert!(diffs.is_empty(), "{diffs:#?}");
    for revision in 0..=2 {
        assert!(verify(&app, &op, ts, revision).await, "revision {revision}");
    }

    // `evflex verify` over the API and the RPC URL only: every revision, or the one asked for.
    let args = |revision: Option<i64>| audit::VerifyArgs {
        group: 1,
        timestep: ts,
        revision,
        api: app.address.clone(),
        rpc_url: chain.endpoint(),
        deployment: "anvil/deployment.json".into(),
    };
    assert!(audit::run_verify(&args(None)).await.unwrap());
    assert!(audit::run_verify(&args(Some(2))).await.unwrap());
    assert!(
        audit::run_verify(&args(Some(3))).await.is_err(),
        "no revision 3"
    );

    // The routes `evflex verify` and the cockpit use.
    let path = format!("/api/v1/audit/groups/1/timesteps/{ts}");
    let (status, body) = app.send(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["revision"].as_i64(), body["last_revision"].as_i64()),
        (Some(0), Some(2))
    );
    let (status, body) = app
        .send(Method::GET, &format!("{path}?revision=2"), None, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revision"].as_i64(), Some(2));
    let second: StatusCommitWork = serde_json::from_str(&rows[2].payload).unwrap();
    assert_eq!(
        body["schedule_hash"].as_str(),
        Some(second.schedule_hash.as_str())
    );
    let (status, _) = app
        .send(Method::GET, &format!("{path}?revision=3"), None, None)
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .send(
            Method::GET,
            &format!("{path}/verify?revision=1"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["revision"].as_i64(), body["ok"].as_bool()),
        (Some(1), Some(true)),
        "{body}"
    );
    let (status, body) = app
        .send(
            Method::POST,
            "/api/v1/audit/verify",
            None,
            Some(&json!({"group_id": 1, "timestep": ts, "revision": 2})),
        )
        .await;
    assert_eq!((status, body["ok"].as_bool()), (200, Some(true)), "{body}");
    let (status, body) = app
        .send(Method::GET, "/api/v1/audit/commits", None, None)
        .await;
    assert_eq!(status, 200, "{body}");
    let mut revisions: Vec<_> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["revision"].as_i64().unwrap())
        .collect();
    revisions.sort_unstable();
    assert_eq!(revisions, vec![0, 1, 2]);

    // A tampered revision is reported as that revision, and only it.
    let filter = format!("group_id = 1 AND timestep = {ts} AND revision = 1");
    let stored: (String,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT schedule_hash FROM schedules WHERE {filter}"
    )))
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    let tamper = |hash: String| {
        let sql = format!("UPDATE schedules SET schedule_hash = '{hash}' WHERE {filter}");
        let pool = app.state.db.pool().clone();
        async move {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    tamper(format!("0x{}", "ab".repeat(32))).await;
    let diffs = audit::audit(&app.state.db, &op).await.unwrap();
    assert!(
        diffs.len() == 1
            && diffs[0].contains(&format!("group 1 timestep {ts} revision 1: schedule hash")),
        "{diffs:#?}"
    );
    assert!(!verify(&app, &op, ts, 1).await);
    assert!(!audit::run_verify(&args(None)).await.unwrap());
    assert!(audit::run_verify(&args(Some(2))).await.unwrap());
    tamper(stored.0).await;

    // A revision on chain the database does not know.
    let mut extra: StatusCommitInput = events[2].commit.clone();
    extra.revision = 3;
    op.commit_status(&extra).await.unwrap();
    let diffs = audit::audit(&app.state.db, &op).await.unwrap();
    assert!(
        diffs.len() == 1
            && diffs[0].contains(&format!(
                "group 1 timestep {ts} revision 3: committed on chain, unknown to the database"
            )),
        "{diffs:#?}"
    );
}
