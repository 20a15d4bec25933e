//! Sync after downtime (`engine::sync`): what a CPO pushed while evflex was down is pulled from
//! its Locations, Sessions and CDRs sender interfaces, page by page, from where the last
//! complete pull ended; a pull that fails part-way keeps its cursor.

use crate::chain::cdr;
use crate::helpers::*;
use evflex::engine::sync::{self, SyncReport};
use evflex::store::{sessions, sync_cursors};
use serde_json::{Value, json};

fn session(id: &str, evse: &str, kwh: f64, status: &str, last_updated: &str) -> Value {
    json!({
        "country_code": "NL", "party_id": "EXA", "id": id,
        "start_date_time": "2024-05-01T09:30:00Z", "kwh": kwh,
        "cdr_token": {"country_code": "NL", "party_id": "EXA", "uid": format!("T-{id}"),
                      "type": "RFID", "contract_id": format!("NL-EXA-{id}")},
        "auth_method": "WHITELIST", "location_id": "LOC-A", "evse_uid": evse,
        "connector_id": "1", "currency": "EUR", "status": status,
        "last_updated": last_updated
    })
}

async fn energy_wh(app: &TestApp, id: &str) -> i64 {
    let mut conn = app.state.db.conn().await.unwrap();
    sessions::get(&mut conn, "NL", "EXA", id)
        .await
        .unwrap()
        .expect("session stored")
        .record
        .energy_wh
}

async fn cursor(app: &TestApp, party: i64, module: &str) -> sync_cursors::Cursor {
    let mut conn = app.state.db.conn().await.unwrap();
    sync_cursors::get(&mut conn, party, module)
        .await
        .unwrap()
        .expect("a cursor")
}

async fn party_row(app: &TestApp) -> i64 {
    let mut conn = app.state.db.conn().await.unwrap();
    evflex::store::parties::list_registered(&mut conn)
        .await
        .unwrap()[0]
        .id
}

#[tokio::test]
async fn what_a_cpo_pushed_while_evflex_was_down_is_pulled_from_its_senders() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    let party = party_row(&app).await;
    {
        let mut log = cpo.log.lock().unwrap();
        log.sender.insert(
            "locations".into(),
            vec![location_json("LOC-A", &["E1", "E2", "E3"], "CHARGING")],
        );
        log.sender.insert(
            "sessions".into(),
            vec![
                session("S1", "E1", 1.0, "ACTIVE", "2024-05-01T09:30:00Z"),
                session("S2", "E2", 2.0, "ACTIVE", "2024-05-01T09:40:00Z"),
                session("S3", "E3", 7.5, "COMPLETED", "2024-05-01T09:35:00Z"),
            ],
        );
        log.sender
            .insert("cdrs".into(), vec![cdr("CDR-3", "S3", "E3", "T-S3", 7.5)]);
    }

    let report = sync::pull_all(&app.state.engine).await;
    assert_eq!(
        report,
        SyncReport {
            parties: 1,
            pulls_completed: 3,
            pulls_failed: 0,
            // One page of locations, two of sessions (the mock pages by 2), one of CDRs.
            pages: 4,
            taken: 5,
            skipped_stale: 0,
            refused: 0,
        }
    );
    assert_eq!(app.count("locations").await, 1);
    assert_eq!(app.count("evses").await, 3);
    assert_eq!(app.count("sessions").await, 3);
    assert_eq!(app.count("cdrs").await, 1);
    assert_eq!(energy_wh(&app, "S2").await, 2_000);
    // The first pull asks for everything; each module's cursor is its newest `last_updated`.
    let first: Vec<(String, String)> = cpo.log.lock().unwrap().sender_gets.clone();
    assert!(
        first.iter().all(|(_, q)| !q.contains("date_from")),
        "{first:?}"
    );
    assert_eq!(
        cursor(&app, party, "sessions").await.date_from,
        evflex::domain::parse_rfc3339("2024-05-01T09:40:00Z")
    );
    assert_eq!(cursor(&app, party, "sessions").await.objects, 3);

    // While evflex is down again the CPO updates S1; evflex meanwhile has a newer S2 than the
    // CPO's sender shows (a PATCH that came in after the page was read).
    {
        let mut log = cpo.log.lock().unwrap();
        log.sender_gets.clear();
        let sessions = log.sender.get_mut("sessions").unwrap();
        sessions[0] = session("S1", "E1", 5.0, "ACTIVE", "2024-05-01T10:00:00Z");
    }
    let (status, body) = app
        .cpo(
            reqwest::Method::PATCH,
            "/ocpi/2.2.1/sessions/NL/EXA/S2",
            Some(&json!({"kwh": 3.0, "last_updated": "2024-05-01T10:05:00Z"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let report = sync::pull_all(&app.state.engine).await;
    // Sessions from the cursor (inclusive): S2 (09:40, older than evflex's copy) and S1.
    assert_eq!(report.skipped_stale, 1, "{report:?}");
    assert_eq!(energy_wh(&app, "S1").await, 5_000);
    assert_eq!(
        energy_wh(&app, "S2").await,
        3_000,
        "a stale pull overwrote a newer PATCH"
    );
    let second = cpo.log.lock().unwrap().sender_gets.clone();
    let sessions_query = &second.iter().find(|(m, _)| m == "sessions").unwrap().1;
    assert!(
        sessions_query.contains("date_from=2024-05-01T09%3A40%3A00Z"),
        "{sessions_query}"
    );
    // The CDR at the boundary is read again and not settled twice.
    assert_eq!(app.count("cdrs").await, 1);
}

#[tokio::test]
async fn a_pull_that_fails_part_way_keeps_its_cursor_and_the_next_one_catches_up() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    let party = party_row(&app).await;
    app.put_site("LOC-A", &["E1", "E2", "E3"]).await;
    {
        let mut log = cpo.log.lock().unwrap();
        log.sender.insert(
            "sessions".into(),
            vec![
                session("S1", "E1", 1.0, "ACTIVE", "2024-05-01T09:30:00Z"),
                session("S2", "E2", 2.0, "ACTIVE", "2024-05-01T09:40:00Z"),
                session("S3", "E3", 3.0, "ACTIVE", "2024-05-01T09:50:00Z"),
            ],
        );
        log.sender_fail_after_first_page = true;
    }

    let report = sync::pull_all(&app.state.engine).await;
    assert_eq!(report.pulls_failed, 1, "{report:?}");
    let failed = cursor(&app, party, "sessions").await;
    assert_eq!(failed.date_from, None, "a failed pull moved the cursor");
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("HTTP 503"),
        "{failed:?}"
    );
    assert_eq!(app.count("sessions").await, 2);

    cpo.log.lock().unwrap().sender_fail_after_first_page = false;
    let report = sync::pull_all(&app.state.engine).await;
    assert_eq!(report.pulls_failed, 0, "{report:?}");
    assert_eq!(app.count("sessions").await, 3);
    let done = cursor(&app, party, "sessions").await;
    assert_eq!(done.last_error, None);
    assert_eq!(
        done.date_from,
        evflex::domain::parse_rfc3339("2024-05-01T09:50:00Z")
    );
}

#[tokio::test]
async fn pulled_objects_under_another_partys_codes_are_refused() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    let mut foreign = session("S9", "E1", 1.0, "ACTIVE", "2024-05-01T09:30:00Z");
    foreign["country_code"] = json!("FR");
    foreign["party_id"] = json!("XYZ");
    cpo.log
        .lock()
        .unwrap()
        .sender
        .insert("sessions".into(), vec![foreign]);
    let report = sync::pull_all(&app.state.engine).await;
    assert_eq!((report.taken, report.refused), (0, 1), "{report:?}");
    assert_eq!(app.count("sessions").await, 0);
}
