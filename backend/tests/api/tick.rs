use crate::helpers::{
    Backend, NowS, T0, TEST_METER_KEY, TEST_OPERATOR_KEY, TestApp, spawn_app, spawn_app_on,
    spawn_app_on_chain, spawn_cpo, spawn_replica, token_header,
};
use evflex::chain::ChainConfig;
use evflex::domain::format_rfc3339;
use evflex::engine::{GroupOutcome, SkipReason, TickReport};
use evflex::store::{self, leases};
use evflex_chain::LocalChain;
use reqwest::Method;
use serde_json::{Value, json};

/// Two groups: group 1 (E1, E2; 15 kW) with an opted-in session without a request (S1) and an
/// anonymous one (S2, uncontrolled); group 2 (E3, E4; 30 kW) with an accepted request (S3) and
/// a user who did not opt in (S4, uncontrolled).
async fn two_groups(app: &mut TestApp) {
    app.put_site("LOC-A", &["E1", "E2", "E3", "E4"]).await;
    app.put_group(1, 15_000, &["E1", "E2"]).await;
    app.put_group(2, 30_000, &["E3", "E4"]).await;
    let (_, _, alice_uid) = app.new_user("alice", true).await;
    let (_, bob, bob_uid) = app.new_user("bob", true).await;
    let (_, _, carol_uid) = app.new_user("carol", false).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    app.put_session("S2", "E2", "ANON", 0.0).await;
    app.put_session("S3", "E3", &bob_uid, 2.0).await;
    app.put_session("S4", "E4", &carol_uid, 0.0).await;
    let req = json!({"session_id": "S3", "energy_kwh": 20.0, "departure": format_rfc3339(T0 + 6 * 3_600)});
    let (status, body) = app
        .user(&bob, Method::POST, "/api/v1/requests", Some(&req))
        .await;
    assert_eq!(
        (status, body["decision"].as_str()),
        (201, Some("accepted")),
        "{body}"
    );
}

/// The optimiser's (opaque) vehicle id of a session: `V` and its row id.
async fn vid(app: &crate::helpers::TestApp, session_id: &str) -> String {
    let (row,): (i64,) = sqlx::query_as("SELECT id FROM sessions WHERE session_id = $1")
        .bind(session_id)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    evflex::engine::snapshot::vehicle_id(row)
}

fn row<'a>(schedule: &'a Value, vehicle: &str) -> &'a Vec<Value> {
    let i = schedule["vehicle_ids"]
        .as_array()
        .unwrap()
        .iter()
        .position(|v| v == vehicle)
        .unwrap();
    schedule["power_w"][i].as_array().unwrap()
}

/// The full tick; with `chain`, evflex runs with that chain configured (PostgreSQL), without
/// one as `--no-chain`.
async fn full_tick(backend: Backend, chain: Option<&LocalChain>) {
    let mut app = match chain {
        Some(chain) => spawn_app_on_chain(chain).await,
        None => spawn_app_on(backend).await,
    };
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    cpo.log.lock().unwrap().fail_first = 1; // one retry

    let report = app.tick().await;
    assert_eq!(report.solved(), 2, "{report:?}");
    assert_eq!(app.count("schedules").await, 2);
    let ts = evflex::domain::timestep_of(T0, 900) as i64;
    let mut conn = app.state.db.conn().await.unwrap();
    let g1 = evflex::store::schedules::get(&mut conn, 1, ts, 0)
        .await
        .unwrap()
        .unwrap();
    let g2 = evflex::store::schedules::get(&mut conn, 2, ts, 0)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    assert!(g1.inputs_hash.starts_with("0x") && g1.inputs_hash.len() == 66);
    // Uncontrolled sessions charge at full power from the start; the others share the rest.
    assert_eq!(row(&g1.schedule, &vid(&app, "S2").await)[0], 11_040);
    assert_eq!(row(&g2.schedule, &vid(&app, "S4").await)[0], 11_040);
    let s1 = row(&g1.schedule, &vid(&app, "S1").await);
    assert!(s1[0].as_i64().unwrap() <= 15_000 - 11_040);
    // The accepted request is met by its departure (6 h = 24 steps): 20 kWh.
    let s3: i64 = row(&g2.schedule, &vid(&app, "S3").await)[..24]
        .iter()
        .map(|p| p.as_i64().unwrap() * 900 / 3_600)
        .sum();
    assert!(s3 >= 19_990, "delivered {s3} Wh");

    // Without a chain no chain work is enqueued (nothing would ever drain it).
    if chain.is_none() {
        assert!(app.outbox("status_commit").await.is_empty());
    } else {
        status_commits_of_two_groups(&app, ts, &g2).await;
    }

    set_points_and_rerun(&app, &cpo, &report, chain.is_some()).await;
}

/// Chain work in the tick's transactions: one status commit per group and tick.
async fn status_commits_of_two_groups(
    app: &TestApp,
    ts: i64,
    g2: &evflex::store::schedules::ScheduleRecord,
) {
    // Groups are solved and committed in parallel, so the rows' order is not fixed.
    let mut commits = app.outbox("status_commit").await;
    commits.sort_by(|a, b| a.dedupe_key.cmp(&b.dedupe_key));
    let keys: Vec<&str> = commits.iter().map(|c| c.dedupe_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("status_commit:1:{ts}"),
            format!("status_commit:2:{ts}")
        ]
    );
    let p: Value = serde_json::from_str(&commits[1].payload).unwrap();
    assert_eq!(p["group_id"], 2);
    assert_eq!(p["inputs_hash"], g2.inputs_hash.as_str());
    assert_eq!(p["schedule_hash"], g2.schedule_hash.as_str());
    let e3 = p["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["evse_uid"] == "E3")
        .unwrap();
    assert_eq!(e3["session_id"], "S3");
    assert_eq!(e3["energy_left_wh"], 20_000);
    assert_eq!(e3["time_left_s"], 6 * 3_600);
}

async fn set_points_and_rerun(
    app: &TestApp,
    cpo: &crate::helpers::MockCpo,
    report: &TickReport,
    with_chain: bool,
) {
    // Set-points reached the CPO for the opted-in sessions only, with token B.
    assert_eq!(report.delivery.sent, 2, "{report:?}");
    assert_eq!(report.delivery.retries, 1);
    let (profiles, auth) = {
        let log = cpo.log.lock().unwrap();
        (log.profiles.clone(), log.auth.clone())
    };
    let mut sessions: Vec<&str> = profiles.iter().map(|(s, _)| s.as_str()).collect();
    sessions.sort();
    assert_eq!(sessions, ["S1", "S3"]);
    assert!(auth.iter().all(|a| *a == token_header("cpo-token-b")));
    let (_, body) = profiles.iter().find(|(s, _)| s == "S3").unwrap();
    assert_eq!(body["charging_profile"]["charging_rate_unit"], "W");
    assert_eq!(
        body["charging_profile"]["start_date_time"],
        "2024-05-01T10:00:00Z"
    );
    let response_url = body["response_url"].as_str().unwrap().to_owned();
    assert!(response_url.starts_with(&format!("{}/ocpi/2.2.1/chargingprofiles/", app.address)));

    // The CPO's asynchronous result arrives at the response_url.
    let path = response_url.trim_start_matches(&app.address).to_owned();
    let (status, _) = app
        .cpo(Method::POST, &path, Some(&json!({"result": "ACCEPTED"})))
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .cpo(Method::POST, &path, Some(&json!({"result": "MAYBE"})))
        .await;
    assert_eq!((status, body["status_code"].as_i64()), (200, Some(2001)));

    // Re-running the same timestep is a no-op: both groups are committed, by this replica.
    let again = app.tick().await;
    let me = Some(app.state.engine.replica.to_string());
    assert!(
        again
            .groups
            .iter()
            .all(|g| g.outcome == GroupOutcome::Skipped
                && g.skip == Some(SkipReason::Committed { by: me.clone() })),
        "{again:?}"
    );
    assert!(again.committed_elsewhere().is_empty() && again.held_elsewhere().is_empty());
    assert_eq!(app.count("schedules").await, 2);
    assert_eq!(
        app.count("chain_outbox WHERE kind = 'status_commit'").await,
        if with_chain { 2 } else { 0 }
    );

    // The cockpit shows both groups.
    let (status, body) = app.cpo(Method::GET, "/api/v1/cockpit/groups/1", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["charge_points"].as_array().unwrap().len(), 2);
    assert_eq!(body["charge_points"][0]["rated_power_w"], 11_040);
    assert_eq!(body["load_history"][0]["capacity_w"], 15_000);
    assert_eq!(body["schedule"]["vehicle_ids"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn full_tick_over_two_groups_postgres() {
    full_tick(Backend::Postgres, None).await;
}

#[tokio::test]
async fn full_tick_over_two_groups_sqlite() {
    full_tick(Backend::Sqlite, None).await;
}

#[tokio::test]
async fn full_tick_with_a_chain_enqueues_one_status_commit_per_group() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    full_tick(Backend::Postgres, Some(&chain)).await;
}

async fn crashed_tick(backend: Backend, chain: Option<&LocalChain>) {
    let mut app = match chain {
        Some(chain) => spawn_app_on_chain(chain).await,
        None => spawn_app_on(backend).await,
    };
    let commits = i64::from(chain.is_some());
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    let outbox_before = app.count("chain_outbox").await;

    // Group 1 dies between solve and commit (everything written, COMMIT never happens).
    app.state.engine.faults.set_fail_before_commit(1, true);
    let report = app.tick().await;
    assert!(
        matches!(report.groups[0].outcome, GroupOutcome::Failed { .. }),
        "{report:?}"
    );
    assert!(
        matches!(report.groups[1].outcome, GroupOutcome::Solved { .. }),
        "{report:?}"
    );
    assert_eq!(app.count("schedules WHERE group_id = 1").await, 0);
    assert_eq!(app.count("setpoints WHERE group_id = 1").await, 0);
    assert_eq!(app.count("chain_outbox").await, outbox_before + commits);
    assert_eq!(
        app.count("sessions WHERE shifted_wh <> 0 AND evse_uid = 'E1'")
            .await,
        0
    );
    assert_eq!(
        cpo.log.lock().unwrap().profiles.len(),
        1,
        "only group 2's set-point"
    );

    // The restarted tick completes the group; group 2 is not solved twice.
    app.state.engine.faults.set_fail_before_commit(1, false);
    let report = app.tick().await;
    assert!(
        matches!(report.groups[0].outcome, GroupOutcome::Solved { .. }),
        "{report:?}"
    );
    assert_eq!(report.groups[1].outcome, GroupOutcome::Skipped);
    assert_eq!(app.count("schedules").await, 2);
    assert_eq!(
        app.count("chain_outbox WHERE kind = 'status_commit'").await,
        2 * commits
    );
}

/// A stored schedule that no longer decodes is not silently dropped: the tick logs and counts
/// it, and plans the group without it, as for its first timestep (the group is not stuck).
#[tokio::test]
async fn a_corrupt_previous_schedule_is_planned_around() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    assert_eq!(app.tick().await.solved(), 2);
    sqlx::query("UPDATE schedules SET schedule = '{\"power_w\": \"corrupt\"}' WHERE group_id = 1")
        .execute(app.state.db.pool())
        .await
        .unwrap();
    app.clock.advance(900);
    let report = app.tick().await;
    assert_eq!(report.solved(), 2, "{report:?}");
    assert_eq!(app.count("schedules").await, 4);
    let metrics = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("evflex_tick_corrupt_schedules_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn crashed_tick_leaves_no_half_written_state_postgres() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    crashed_tick(Backend::Postgres, Some(&chain)).await;
}

#[tokio::test]
async fn crashed_tick_leaves_no_half_written_state_sqlite() {
    crashed_tick(Backend::Sqlite, None).await;
}

#[tokio::test]
async fn a_failing_group_does_not_stop_the_others() {
    let mut app = spawn_app_on(Backend::Postgres).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    // Bad data: a negative forecast slipped past validation into the store.
    sqlx::query("INSERT INTO group_series (group_id, kind, ts, value_w) VALUES (1, 'pv', $1, -5)")
        .bind(T0)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let report = app.tick().await;
    match &report.groups[0].outcome {
        GroupOutcome::Failed { reason } => assert!(reason.contains("pv_w"), "{reason}"),
        other => panic!("group 1: {other:?}"),
    }
    assert!(matches!(
        report.groups[1].outcome,
        GroupOutcome::Solved { .. }
    ));
    assert_eq!(app.count("schedules").await, 1);
}

// ---- Replicas: several evflex instances on one PostgreSQL database ----

/// `n` groups of two EVSEs (15 kW each) with one opted-in session each.
async fn many_groups(app: &mut TestApp, n: usize) {
    let uids: Vec<String> = (1..=2 * n).map(|i| format!("E{i}")).collect();
    let uids: Vec<&str> = uids.iter().map(String::as_str).collect();
    app.put_site("LOC-A", &uids).await;
    for g in 0..n {
        app.put_group(g as i64 + 1, 15_000, &uids[2 * g..2 * g + 2])
            .await;
    }
    let (_, _, alice_uid) = app.new_user("alice", true).await;
    for g in 0..n {
        app.put_session(&format!("S{}", g + 1), uids[2 * g], &alice_uid, 0.0)
            .await;
    }
}

fn entry(report: &TickReport, group_id: i64) -> &evflex::engine::GroupReport {
    report
        .groups
        .iter()
        .find(|g| g.group_id == group_id)
        .unwrap_or_else(|| panic!("group {group_id} missing from {report:?}"))
}

fn solved(report: &TickReport) -> Vec<i64> {
    report
        .groups
        .iter()
        .filter(|g| matches!(g.outcome, GroupOutcome::Solved { .. }))
        .map(|g| g.group_id)
        .collect()
}

async fn lease_holder(app: &TestApp, group_id: i64) -> leases::Lease {
    let mut conn = app.state.db.conn().await.unwrap();
    leases::get(&mut conn, group_id).await.unwrap().unwrap()
}

#[tokio::test]
async fn two_replicas_solve_and_commit_every_group_exactly_once() {
    const GROUPS: usize = 8;
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let mut a = spawn_app_on_chain(&chain).await;
    let cpo = spawn_cpo().await;
    a.register_cpo(&cpo).await;
    many_groups(&mut a, GROUPS).await;
    let endpoint = chain.endpoint();
    let b = spawn_replica(&a, move |c| {
        c.chain = ChainConfig::for_tests(&endpoint, TEST_OPERATOR_KEY, TEST_METER_KEY);
    })
    .await;
    assert_ne!(a.state.engine.replica, b.state.engine.replica);

    // Both replicas run the same quarter hour at the same time.
    let (ra, rb) = tokio::join!(a.tick(), b.tick());
    let ts = evflex::domain::timestep_of(T0, 900) as i64;
    assert_eq!((ra.failed(), rb.failed()), (0, 0), "{ra:?}\n{rb:?}");
    let (solved_a, solved_b) = (solved(&ra), solved(&rb));
    eprintln!("replica A solved {solved_a:?}, replica B solved {solved_b:?}");
    assert_eq!(solved_a.len() + solved_b.len(), GROUPS, "{ra:?}\n{rb:?}");
    for g in 1..=GROUPS as i64 {
        // Solved by exactly one replica; the other skipped it, naming why.
        let (solver, other) = match (solved_a.contains(&g), solved_b.contains(&g)) {
            (true, false) => (&ra, &rb),
            (false, true) => (&rb, &ra),
            both => panic!("group {g} solved by (A, B) = {both:?}"),
        };
        let skipped = entry(other, g);
        assert_eq!(skipped.outcome, GroupOutcome::Skipped, "group {g}");
        match &skipped.skip {
            Some(SkipReason::Held) => assert!(other.held_elsewhere().contains(&g)),
            Some(SkipReason::Committed { by }) => {
                assert_eq!(by.as_deref(), Some(solver.replica.as_str()), "group {g}");
                assert!(other.committed_elsewhere().contains(&g));
            }
            other => panic!("group {g}: skipped as {other:?}"),
        }
        // One schedule, one status commit, one set-point; the lease names the solver.
        let where_g = format!("group_id = {g} AND timestep = {ts}");
        assert_eq!(a.count(&format!("schedules WHERE {where_g}")).await, 1);
        assert_eq!(a.count(&format!("setpoints WHERE {where_g}")).await, 1);
        assert_eq!(
            a.count(&format!(
                "chain_outbox WHERE dedupe_key = 'status_commit:{g}:{ts}'"
            ))
            .await,
            1
        );
        let lease = lease_holder(&a, g).await;
        assert_eq!(
            (lease.holder.as_str(), lease.timestep),
            (solver.replica.as_str(), ts)
        );
    }
    // Each report accounts for every group: the union covers all, with no overlap.
    let mut others_a = [ra.held_elsewhere(), ra.committed_elsewhere()].concat();
    let mut others_b = [rb.held_elsewhere(), rb.committed_elsewhere()].concat();
    others_a.sort();
    others_b.sort();
    assert_eq!((others_a, others_b), (solved_b.clone(), solved_a.clone()));
    assert_eq!(a.count("schedules").await, GROUPS as i64);
    assert_eq!(
        a.count("chain_outbox WHERE kind = 'status_commit'").await,
        GROUPS as i64
    );
    // Set-point delivery (engine::setpoints) is not leased: both replicas' delivery rounds may
    // send the same pending set-point. Every session got its profile at least once.
    let profiles = cpo.log.lock().unwrap().profiles.clone();
    eprintln!(
        "the CPO received {} profiles for {GROUPS} set-points",
        profiles.len()
    );
    for g in 1..=GROUPS {
        assert!(profiles.iter().any(|(s, _)| *s == format!("S{g}")), "S{g}");
    }

    // The next tick of either replica changes nothing.
    let again = b.tick().await;
    assert_eq!(again.solved(), 0, "{again:?}");
    let mut elsewhere = again.committed_elsewhere();
    elsewhere.sort();
    assert_eq!(elsewhere, solved_a);
    assert_eq!(a.count("schedules").await, GROUPS as i64);
}

#[tokio::test]
async fn a_replica_skips_the_group_another_holds_and_commits_the_rest() {
    let mut a = spawn_app().await;
    let cpo = spawn_cpo().await;
    a.register_cpo(&cpo).await;
    two_groups(&mut a).await;
    let b = spawn_replica(&a, |_| {}).await;

    // Replica A is mid-tick on group 1: its open transaction holds the group's lease.
    let mut conn = a.state.db.conn().await.unwrap();
    leases::ensure_all(&mut conn).await.unwrap();
    drop(conn);
    let mut held = a.state.db.begin().await.unwrap();
    let lease = leases::try_claim(&mut held, store::Backend::Postgres, 1)
        .await
        .unwrap();
    assert!(lease.is_some());

    let report = b.tick().await;
    assert_eq!(
        entry(&report, 1).outcome,
        GroupOutcome::Skipped,
        "{report:?}"
    );
    assert_eq!(entry(&report, 1).skip, Some(SkipReason::Held));
    assert!(matches!(
        entry(&report, 2).outcome,
        GroupOutcome::Solved { .. }
    ));
    assert_eq!(report.held_elsewhere(), [1]);
    assert_eq!(a.count("schedules WHERE group_id = 1").await, 0);
    assert_eq!(a.count("schedules WHERE group_id = 2").await, 1);
    // `--no-chain`: no chain work piles up.
    assert_eq!(
        a.count("chain_outbox WHERE kind = 'status_commit'").await,
        0
    );

    // A's transaction ends without a commit (as when A dies): the lease is free again, and
    // B's next run of the same timestep takes group 1 over.
    held.rollback().await.unwrap();
    let report = b.tick().await;
    assert!(
        matches!(entry(&report, 1).outcome, GroupOutcome::Solved { .. }),
        "{report:?}"
    );
    assert_eq!(
        entry(&report, 2).skip,
        Some(SkipReason::Committed {
            by: Some(b.state.engine.replica.to_string())
        })
    );
    assert!(report.held_elsewhere().is_empty() && report.committed_elsewhere().is_empty());
    assert_eq!(a.count("schedules").await, 2);

    // A, back, finds both groups committed by B.
    let ra = a.tick().await;
    assert_eq!(ra.solved(), 0, "{ra:?}");
    assert_eq!(ra.committed_elsewhere(), [1, 2]);
}

#[tokio::test]
async fn a_group_whose_replica_died_mid_tick_is_taken_over() {
    let mut a = spawn_app().await;
    let cpo = spawn_cpo().await;
    a.register_cpo(&cpo).await;
    two_groups(&mut a).await;
    let b = spawn_replica(&a, |_| {}).await;

    // A dies at group 1's commit boundary (solved, written, never committed).
    a.state.engine.faults.set_fail_before_commit(1, true);
    let ra = a.tick().await;
    assert!(
        matches!(entry(&ra, 1).outcome, GroupOutcome::Failed { .. }),
        "{ra:?}"
    );
    assert!(matches!(entry(&ra, 2).outcome, GroupOutcome::Solved { .. }));

    // B takes group 1 (its lease died with A's transaction) and leaves group 2 to A.
    let rb = b.tick().await;
    assert!(
        matches!(entry(&rb, 1).outcome, GroupOutcome::Solved { .. }),
        "{rb:?}"
    );
    assert_eq!(rb.committed_elsewhere(), [2]);
    assert_eq!(a.count("schedules").await, 2);
    assert_eq!(lease_holder(&a, 1).await.holder, *b.state.engine.replica);
    assert_eq!(lease_holder(&a, 2).await.holder, *a.state.engine.replica);
}

#[tokio::test]
async fn sqlite_ticks_record_the_lease_without_row_locks() {
    let mut app = spawn_app_on(Backend::Sqlite).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    let report = app.tick().await;
    assert_eq!(report.solved(), 2, "{report:?}");
    let ts = evflex::domain::timestep_of(T0, 900) as i64;
    let lease = lease_holder(&app, 2).await;
    assert_eq!(
        (lease.holder.as_str(), lease.timestep),
        (&*app.state.engine.replica, ts)
    );
    assert_eq!(
        app.count("chain_outbox WHERE kind = 'status_commit'").await,
        0
    );
}

/// The status of a set-point follows what the CPO answered: `REJECTED` is given up with the
/// reason, shown in the cockpit, and the session is then planned at its draw without further
/// profiles (its charge point is not controlled).
#[tokio::test]
async fn a_set_point_is_in_force_only_when_the_cpo_accepted_it() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    let status_of = |session: &'static str| {
        let pool = app.state.db.pool().clone();
        async move {
            sqlx::query_as::<_, (i64, String, Option<String>)>(
                "SELECT id, status, error FROM setpoints WHERE session_id = $1 ORDER BY id DESC",
            )
            .bind(session)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };

    cpo.log.lock().unwrap().answer = Some("REJECTED");
    let report = app.tick().await;
    assert_eq!(
        (
            report.delivery.sent,
            report.delivery.rejected,
            report.delivery.failed
        ),
        (0, 2, 2),
        "{report:?}"
    );
    let (id_rejected, status, error) = status_of("S3").await;
    assert_eq!(
        (status.as_str(), error.as_deref()),
        ("rejected", Some("the CPO answered REJECTED"))
    );
    // The cockpit shows it on the charge point, with the reason.
    let (_, g2) = app.cpo(Method::GET, "/api/v1/cockpit/groups/2", None).await;
    let e3 = g2["charge_points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["evse_uid"] == "E3")
        .unwrap();
    assert_eq!(e3["session_id"], "S3");
    assert_eq!(e3["profile"]["status"], "rejected", "{e3}");
    assert_eq!(e3["profile"]["reason"], "the CPO answered REJECTED");

    assert_eq!(e3["profile"]["controlled"], false, "{e3}");

    // REJECTED is final for the session: the next tick plans E3 at its draw (no meter value
    // came, so its full rating) as fixed load, sends it nothing, and plans the rest around it.
    app.clock.advance(900);
    let puts = cpo.log.lock().unwrap().profiles.len();
    let report = app.tick().await;
    assert_eq!(report.solved(), 2, "{report:?}");
    assert_eq!(
        status_of("S3").await,
        (
            id_rejected,
            "rejected".to_owned(),
            Some("the CPO answered REJECTED".to_owned())
        ),
        "no new set-point for a session whose CPO refused its profile"
    );
    let rated = e3["rated_power_w"].as_i64().unwrap();
    let mut conn = app.state.db.conn().await.unwrap();
    let ts = evflex::domain::timestep_of(T0 + 900, 900) as i64;
    let stored = evflex::store::schedules::get(&mut conn, 2, ts, 0)
        .await
        .unwrap()
        .expect("group 2 planned");
    drop(conn);
    assert_eq!(
        stored.inputs["other_load_w"][0], rated,
        "E3 at its full draw"
    );
    let s3 = vid(&app, "S3").await;
    assert!(
        !stored.inputs["vehicles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == s3.as_str()),
        "S3 is no vehicle of the plan"
    );
    let profiles = cpo.log.lock().unwrap().profiles.clone();
    assert!(
        profiles[puts..].iter().all(|(s, _)| s != "S3" && s != "S1"),
        "{profiles:?}"
    );
}

/// `TOO_OFTEN` leaves a set-point pending and backs off: not sent before 60 s, then 120 s, …;
/// a newer set-point of the session keeps the back-off. The asynchronous result then decides
/// whether the profile is in force. `UNKNOWN_SESSION` is tried three times, then given up.
#[tokio::test]
async fn too_often_backs_off_and_unknown_session_is_given_up_after_three_tries() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    let state_of = |session: &'static str| {
        let pool = app.state.db.pool().clone();
        async move {
            sqlx::query_as::<_, (i64, String, Option<String>, i64)>(
                "SELECT id, status, error, not_before FROM setpoints WHERE session_id = $1
                 ORDER BY id DESC",
            )
            .bind(session)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let engine = &app.state.engine;
    cpo.log.lock().unwrap().answer = Some("TOO_OFTEN");
    let report = app.tick().await;
    assert_eq!(
        (report.delivery.deferred, report.delivery.sent),
        (2, 0),
        "{report:?}"
    );
    let (id, status, error, not_before) = state_of("S3").await;
    assert_eq!(status, "pending");
    assert!(error.unwrap().contains("TOO_OFTEN"));
    assert_eq!(not_before, T0 + 60);
    // Meanwhile the profiles are not in force: both groups are re-planned at once with those
    // charge points at their measured or full draw.
    assert_eq!(app.count("replan_requests").await, 2);
    // Within the back-off nothing is sent.
    let puts = cpo.log.lock().unwrap().profiles.len();
    let delivery = evflex::engine::setpoints::deliver_pending(engine).await;
    assert_eq!((delivery.sent, delivery.deferred), (0, 0), "{delivery:?}");
    assert_eq!(cpo.log.lock().unwrap().profiles.len(), puts);
    // After it, tried again; a second TOO_OFTEN doubles the wait.
    app.clock.advance(61);
    let delivery = evflex::engine::setpoints::deliver_pending(engine).await;
    assert_eq!(delivery.deferred, 2, "{delivery:?}");
    assert_eq!(state_of("S3").await.3, T0 + 61 + 120);
    // A new plan's set-point for the session inherits the back-off.
    let (row,): (i64,) = sqlx::query_as("SELECT session_row FROM setpoints WHERE id = $1")
        .bind(id)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let replan = evflex::store::schedules::SetpointRecord {
        group_id: 2,
        timestep: evflex::domain::timestep_of(T0, 900) as i64 + 1,
        revision: 0,
        session_row: row,
        session_id: "S3".to_owned(),
        owner_party: Some(1),
        power_w: 5_000,
        profile: json!({"charging_rate_unit": "W", "charging_profile_period": [
            {"start_period": 0, "limit": 5000.0}]}),
    };
    let mut conn = app.state.db.conn().await.unwrap();
    evflex::store::schedules::insert_setpoint(&mut conn, &replan, T0 + 61)
        .await
        .unwrap();
    drop(conn);
    let (newest, status, _, not_before) = state_of("S3").await;
    assert!(newest > id);
    assert_eq!((status.as_str(), not_before), ("pending", T0 + 61 + 120));

    // The CPO takes them once the wait is over; the asynchronous result puts one in force and
    // refuses the other.
    cpo.log.lock().unwrap().answer = None;
    app.clock.advance(121);
    let delivery = evflex::engine::setpoints::deliver_pending(engine).await;
    assert_eq!((delivery.sent, delivery.deferred), (2, 0), "{delivery:?}");
    assert_eq!(state_of("S3").await.1, "sent");
    let path = format!("/ocpi/2.2.1/chargingprofiles/{newest}");
    let (status, _) = app
        .cpo(Method::POST, &path, Some(&json!({"result": "ACCEPTED"})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(state_of("S3").await.1, "in_force");
    let (s1, _, _, _) = state_of("S1").await;
    let path = format!("/ocpi/2.2.1/chargingprofiles/{s1}");
    let (status, _) = app
        .cpo(Method::POST, &path, Some(&json!({"result": "UNKNOWN"})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(state_of("S1").await.1, "rejected");

    // UNKNOWN_SESSION: the CPO may learn of the session a moment later, so it is tried three
    // times with the back-off, then given up.
    // The next tick's one new set-point (S1 is planned at its measured draw now that the CPO
    // refused it, S3's profile is in force) meets UNKNOWN_SESSION.
    app.clock.advance(900);
    cpo.log.lock().unwrap().answer = Some("UNKNOWN_SESSION");
    let report = app.tick().await;
    assert_eq!(report.delivery.deferred, 1, "{report:?}");
    let (latest, session): (i64, String) =
        sqlx::query_as("SELECT id, session_id FROM setpoints ORDER BY id DESC")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert!(latest > newest);
    app.clock.advance(61);
    let delivery = evflex::engine::setpoints::deliver_pending(engine).await;
    assert_eq!(delivery.deferred, 1, "{delivery:?}");
    app.clock.advance(121);
    let delivery = evflex::engine::setpoints::deliver_pending(engine).await;
    assert_eq!(
        (delivery.deferred, delivery.rejected),
        (0, 1),
        "{delivery:?}"
    );
    let (id, status, error, _) = sqlx::query_as::<_, (i64, String, Option<String>, i64)>(
        "SELECT id, status, error, not_before FROM setpoints WHERE session_id = $1
         ORDER BY id DESC",
    )
    .bind(&session)
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!((id, status.as_str()), (latest, "rejected"));
    assert!(error.unwrap().contains("UNKNOWN_SESSION 3 times"));
}

/// A set-point without a profile clears the one evflex set: OCPI ClearProfile, a `DELETE` of
/// the session's profile with the `response_url` for the result.
#[tokio::test]
async fn a_lifted_limit_is_a_clear_profile_request() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    let (row,): (i64,) = sqlx::query_as("SELECT id FROM sessions WHERE session_id = 'S4'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let clear = evflex::store::schedules::SetpointRecord {
        group_id: 2,
        timestep: evflex::domain::timestep_of(T0, 900) as i64,
        revision: 0,
        session_row: row,
        session_id: "S4".to_owned(),
        owner_party: Some(1),
        power_w: 11_040,
        profile: Value::Null,
    };
    let mut conn = app.state.db.conn().await.unwrap();
    evflex::store::schedules::insert_setpoint(&mut conn, &clear, T0)
        .await
        .unwrap();
    drop(conn);
    let delivery = evflex::engine::setpoints::deliver_pending(&app.state.engine).await;
    assert_eq!(delivery.sent, 1, "{delivery:?}");
    let clears = cpo.log.lock().unwrap().clears.clone();
    assert_eq!(clears.len(), 1, "{clears:?}");
    assert_eq!(clears[0].0, "S4");
    assert!(
        clears[0].1.starts_with(&format!(
            "response_url={}/ocpi/2.2.1/chargingprofiles/",
            app.address
        )),
        "{clears:?}"
    );
    assert!(
        cpo.log.lock().unwrap().profiles.is_empty(),
        "no PUT of a made-up limit"
    );
}

/// A profile the CPO took whose asynchronous result does not come in time: evflex asks the CPO
/// for the profile in force (OCPI `GET {chargingprofiles}/{session_id}?duration=…&response_url=…`)
/// once, and the `ActiveChargingProfileResult` that names a limit at most the set-point puts it
/// in force. Only the party the set-point went to may answer; a CPO may also report a profile in
/// force on its own (`PUT`).
#[tokio::test]
async fn an_overdue_result_is_asked_for_and_the_profile_in_force_confirms_the_set_point() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    let report = app.tick().await;
    assert!(report.delivery.sent > 0, "{report:?}");
    let latest = |session: &'static str| {
        let pool = app.state.db.pool().clone();
        async move {
            sqlx::query_as::<_, (i64, String, i64)>(
                "SELECT id, status, power_w FROM setpoints WHERE session_id = $1
                 ORDER BY id DESC",
            )
            .bind(session)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (id, status, power_w) = latest("S3").await;
    assert_eq!(status, "sent");

    // Within the CPO's timeout (30 s in the mock's answer) plus grace, nothing is asked.
    app.clock.advance(60);
    let delivery = evflex::engine::setpoints::deliver_pending(&app.state.engine).await;
    assert_eq!(delivery.active_queries, 0, "{delivery:?}");
    // Past it, the profile in force is asked for, once.
    app.clock.advance(31);
    let delivery = evflex::engine::setpoints::deliver_pending(&app.state.engine).await;
    assert!(delivery.active_queries >= 1, "{delivery:?}");
    let again = evflex::engine::setpoints::deliver_pending(&app.state.engine).await;
    assert_eq!(again.active_queries, 0, "asked once per set-point");
    let gets = cpo.log.lock().unwrap().active_gets.clone();
    let (_, query) = gets.iter().find(|(s, _)| s == "S3").expect("a GET for S3");
    let response_path = format!("/ocpi/2.2.1/chargingprofiles/{id}/active");
    assert!(query.contains("duration=900"), "{query}");
    assert!(query.contains(&response_path), "{query}");

    // The CPO's answer: the profile in force is the set-point.
    let result = json!({"result": "ACCEPTED", "profile": {
        "start_date_time": format_rfc3339(app.clock.now_s() - 90),
        "charging_profile": {"charging_rate_unit": "W",
            "charging_profile_period": [{"start_period": 0, "limit": power_w as f64}]}}});
    // Another CPO may not answer for it.
    let other = spawn_cpo().await;
    let (status, body) = app
        .register_party(&other, "token-a-2", "other-b", &[("DE", "OTH")])
        .await;
    assert_eq!(status, 200, "{body}");
    let other_c = body["data"]["token"].as_str().unwrap().to_owned();
    let (status, _) = app
        .send(
            Method::POST,
            &response_path,
            Some(&token_header(&other_c)),
            Some(&result),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(latest("S3").await.1, "sent");
    let (status, body) = app.cpo(Method::POST, &response_path, Some(&result)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(latest("S3").await.1, "in_force");

    // The CPO reports S1's profile in force on its own: stored for the session.
    let active = json!({"start_date_time": format_rfc3339(app.clock.now_s()),
        "charging_profile": {"charging_rate_unit": "A",
            "charging_profile_period": [{"start_period": 0, "limit": 10.0}]}});
    let (status, body) = app
        .cpo(
            Method::PUT,
            "/ocpi/2.2.1/chargingprofiles/S1",
            Some(&active),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (row,): (i64,) = sqlx::query_as("SELECT id FROM sessions WHERE session_id = 'S1'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let mut conn = app.state.db.conn().await.unwrap();
    let stored = evflex::store::active_profiles::get(&mut conn, row)
        .await
        .unwrap()
        .expect("S1's profile in force");
    assert_eq!(stored.limit_milli, Some(10_000), "{stored:?}");
    // An unknown session is refused.
    let (status, _) = app
        .cpo(
            Method::PUT,
            "/ocpi/2.2.1/chargingprofiles/NOPE",
            Some(&active),
        )
        .await;
    assert_eq!(status, 404);
}

/// The plan counts a session's energy as the freshest of the CPO's `kwh` and the meter register
/// since the session started (issue 15): meter values ahead of a stale `kwh` shorten what an
/// accepted request still needs, and a `kwh` ahead of the meter is not undone by it.
#[tokio::test]
async fn the_plan_counts_the_freshest_of_session_kwh_and_the_meter() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await; // S3 on E3: 20 kWh accepted at 2.0 kWh delivered
    let s3 = vid(&app, "S3").await;
    let wanted = |inputs: &Value| {
        inputs["vehicles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == s3.as_str())
            .unwrap()["energy_requested_wh"]
            .as_i64()
            .unwrap()
    };
    let meter = |ts: i64, wh: i64| {
        json!({"meter_values": [{"evse_uid": "E3", "session_id": "S3", "meterValue": [{
            "timestamp": format_rfc3339(ts),
            "sampledValue": [{"value": wh.to_string(), "unit": "Wh"}]}]}]})
    };
    // Register 10 000 Wh at the session's start (09:30) and 17 000 Wh at 10:00: 7 kWh in all,
    // 5 kWh since the request, while the CPO still says 2.0 kWh.
    for (ts, wh) in [(T0 - 1_800, 10_000), (T0, 17_000)] {
        let (status, body) = app
            .cpo(Method::POST, "/api/v1/meter-values", Some(&meter(ts, wh)))
            .await;
        assert!(matches!(status, 200 | 202), "{status} {body}");
    }
    let report = app.tick().await;
    assert_eq!(report.solved(), 2, "{report:?}");
    let ts = evflex::domain::timestep_of(T0, 900) as i64;
    let inputs = {
        let mut conn = app.state.db.conn().await.unwrap();
        store::schedules::get(&mut conn, 2, ts, 0)
            .await
            .unwrap()
            .unwrap()
            .inputs
    };
    assert_eq!(wanted(&inputs), 15_000, "{inputs}");

    // The CPO's kwh runs ahead of the meter (9 kWh): the plan takes it.
    app.clock.advance(900);
    let (status, body) = app
        .cpo(
            Method::PATCH,
            "/ocpi/2.2.1/sessions/NL/EXA/S3",
            Some(&json!({"kwh": 9.0, "last_updated": format_rfc3339(T0 + 900)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let report = app.tick().await;
    assert_eq!(report.solved(), 2, "{report:?}");
    let inputs = {
        let mut conn = app.state.db.conn().await.unwrap();
        store::schedules::get(&mut conn, 2, ts + 1, 0)
            .await
            .unwrap()
            .unwrap()
            .inputs
    };
    assert_eq!(wanted(&inputs), 13_000, "{inputs}");
}

/// A car that did not opt in and still draws past the energy evflex assumes for it is planned
/// to go on drawing its measured power for another hour (issue 15), not at 0 W: its draw stays
/// in the plan, so the others are planned around it.
#[tokio::test]
async fn an_uncontrolled_car_drawing_past_the_assumption_stays_in_the_plan() {
    let mut app = crate::helpers::spawn_app_with(Backend::Postgres, |c| {
        c.engine.uncontrolled_energy_wh = 30_000;
    })
    .await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await; // S2 on E2: anonymous, uncontrolled
    let s2 = vid(&app, "S2").await;
    let (status, body) = app
        .cpo(
            Method::PATCH,
            "/ocpi/2.2.1/sessions/NL/EXA/S2",
            Some(&json!({"kwh": 31.0, "last_updated": format_rfc3339(T0)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let batch = json!({"meter_values": [{"evse_uid": "E2", "session_id": "S2", "meterValue": [{
        "timestamp": format_rfc3339(T0 - 60),
        "sampledValue": [{"measurand": "Power.Active.Import", "value": "7.2", "unit": "kW"}]}]}]});
    let (status, body) = app
        .cpo(Method::POST, "/api/v1/meter-values", Some(&batch))
        .await;
    assert!(matches!(status, 200 | 202), "{status} {body}");
    let report = app.tick().await;
    assert_eq!(report.solved(), 2, "{report:?}");
    let ts = evflex::domain::timestep_of(T0, 900) as i64;
    let mut conn = app.state.db.conn().await.unwrap();
    let stored = store::schedules::get(&mut conn, 1, ts, 0)
        .await
        .unwrap()
        .unwrap();
    let v = stored.inputs["vehicles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == s2.as_str())
        .unwrap()
        .clone();
    assert_eq!(v["energy_requested_wh"], 7_200, "{v}");
    // It is planned to draw in the first step, beside the opted-in S1.
    assert!(row(&stored.schedule, &s2)[0].as_i64().unwrap() > 0);
}

/// Only changed set-points go out (issue 15): once the CPO confirmed S3's profile in force, a
/// tick whose plan says the same from now on records the set-point as `unchanged` and sends
/// nothing; a plan that moves a limit sends a new profile.
#[tokio::test]
async fn a_profile_the_cpo_has_in_force_is_not_sent_again_unchanged() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await; // S3: 20 kWh accepted at 2.0 kWh, by T0 + 6 h
    let puts_for = |s: &str| {
        cpo.log
            .lock()
            .unwrap()
            .profiles
            .iter()
            .filter(|(id, _)| id == s)
            .count()
    };
    let report = app.tick().await;
    assert_eq!(report.solved(), 2, "{report:?}");
    assert_eq!(puts_for("S3"), 1);
    // The CPO confirms it in force.
    let url = {
        let log = cpo.log.lock().unwrap();
        let (_, body) = log.profiles.iter().find(|(s, _)| s == "S3").unwrap();
        body["response_url"].as_str().unwrap().to_owned()
    };
    let path = url.trim_start_matches(&app.address).to_owned();
    let (status, _) = app
        .cpo(Method::POST, &path, Some(&json!({"result": "ACCEPTED"})))
        .await;
    assert_eq!(status, 200);
    let status_of_last = |app: &TestApp| {
        let pool = app.state.db.pool().clone();
        async move {
            let (status,): (String,) = sqlx::query_as(
                "SELECT status FROM setpoints WHERE session_id = 'S3' ORDER BY id DESC LIMIT 1",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            status
        }
    };
    assert_eq!(status_of_last(&app).await, "in_force");

    // A quarter hour later S3 has charged as planned (11.04 kW for 15 min): the plan from now
    // on is the profile in force. Nothing is sent.
    app.clock.advance(900);
    let (status, body) = app
        .cpo(
            Method::PATCH,
            "/ocpi/2.2.1/sessions/NL/EXA/S3",
            Some(&json!({"kwh": 4.76, "last_updated": format_rfc3339(T0 + 900)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let report = app.tick().await;
    assert_eq!(report.solved(), 2, "{report:?}");
    assert_eq!(puts_for("S3"), 1, "an unchanged profile was sent again");
    assert_eq!(status_of_last(&app).await, "unchanged");

    // The next quarter hour S3 charged nothing (the CPO reports no energy): the plan needs
    // another step at the end, the profile changes and is sent.
    app.clock.advance(900);
    let report = app.tick().await;
    assert_eq!(report.solved(), 2, "{report:?}");
    assert_eq!(puts_for("S3"), 2, "{report:?}");
    assert_eq!(status_of_last(&app).await, "sent");
}
