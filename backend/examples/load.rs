//! Load benchmark (not a test): sustained OCPI session PATCHes and meter-value batches against
//! `evflex serve` on PostgreSQL, over loopback; prints requests/s and p50/p99 latency.
//!
//! ```text
//! cargo run --release -p evflex --example load -- [--seconds 10] [--concurrency 64] \
//!     [--sessions 1000] [--database postgres://postgres@127.0.0.1:5432/test] [--async-commit on]
//! ```
//!
//! The server runs in this process (its own runtime and threads) on a fresh database, which is
//! dropped afterwards; a CPO party and its token are created directly in the store.

use evflex::engine::WallClock;
use evflex::{Application, ServeConfig};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    seconds: u64,
    concurrency: usize,
    sessions: usize,
    database: String,
    async_commit: bool,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 10,
        concurrency: 64,
        sessions: 1_000,
        database: "postgres://postgres@127.0.0.1:5432/test".to_owned(),
        async_commit: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency N"),
            "--sessions" => a.sessions = value.parse().expect("--sessions N"),
            "--database" => a.database = value,
            "--async-commit" => a.async_commit = value == "on",
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn phase(
    name: &str,
    base: &str,
    token: &str,
    args: &Args,
    make: impl Fn(usize, usize) -> (reqwest::Method, String, serde_json::Value) + Send + Sync + 'static,
) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    let make = Arc::new(make);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        let client = client.clone();
        let make = make.clone();
        let base = base.to_owned();
        let auth = evflex::ingest::ocpi::credentials::authorization(token);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut i = 0;
            while Instant::now() < deadline {
                let (method, path, body) = make(worker, i);
                i += 1;
                let t = Instant::now();
                let ok = client
                    .request(method, format!("{base}{path}"))
                    .header("Authorization", &auth)
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                latencies.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "{name}: {} requests in {elapsed:.1} s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {errors} (concurrency {})",
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        args.concurrency,
    );
}

fn main() -> anyhow::Result<()> {
    let args = args();
    let name = format!("evflex_load_{}", std::process::id());
    let base_url = args
        .database
        .rsplit_once('/')
        .map_or(args.database.as_str(), |(b, _)| b)
        .to_owned();
    let admin = args.database.clone();

    // The server: its own multi-threaded runtime, as `evflex serve` runs.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (address, token) = server_rt.block_on(async {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
        let mut config = ServeConfig::for_tests(format!("{base_url}/{name}"));
        config.db_max_connections = 32;
        config.db_async_commit = args.async_commit;
        let app = Application::build(config, Arc::new(WallClock)).await?;
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        tokio::spawn(app.run_until(std::future::pending()));
        // A CPO and its sessions, straight into the store.
        let mut conn = state.db.conn().await?;
        let reg = evflex::store::parties::PartyRegistration {
            country_code: "NL".into(),
            party_id: "EXA".into(),
            name: "load".into(),
            roles: json!([{"role": "CPO", "country_code": "NL", "party_id": "EXA",
                "business_details": {"name": "load"}}]),
            versions_url: "http://127.0.0.1:9/versions".into(),
            token_b: "b".into(),
            version: Some("2.2.1".into()),
            endpoints: vec![],
        };
        let party = evflex::store::parties::insert_party(&mut conn, &reg, 0).await?;
        evflex::store::parties::issue_credentials_token(&mut conn, party, "load-token", 0).await?;
        drop(conn);
        let client = reqwest::Client::new();
        let auth = evflex::ingest::ocpi::credentials::authorization("load-token");
        for i in 0..args.sessions {
            let s = json!({
                "country_code": "NL", "party_id": "EXA", "id": format!("S{i}"),
                "start_date_time": "2024-05-01T09:30:00Z", "kwh": 0.0,
                "cdr_token": {"uid": format!("T{i}"), "type": "RFID", "contract_id": format!("C{i}")},
                "auth_method": "WHITELIST", "location_id": "LOC", "evse_uid": format!("E{i}"),
                "connector_id": "1", "currency": "EUR", "status": "ACTIVE",
                "last_updated": "2024-05-01T09:30:00Z"
            });
            let r = client
                .put(format!("{address}/ocpi/2.2.1/sessions/NL/EXA/S{i}"))
                .header("Authorization", &auth)
                .json(&s)
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "seeding session {i}: {}", r.status());
        }
        anyhow::Ok((address, "load-token".to_owned()))
    })?;

    // The load generator: a runtime of its own.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    client_rt.block_on(async {
        let sessions = args.sessions;
        phase("session PATCH", &address, &token, &args, move |w, i| {
            let n = (w * 7_919 + i) % sessions;
            let body = json!({"kwh": (i as f64) * 0.01, "status": "ACTIVE",
                               "last_updated": "2024-05-01T10:00:00Z"});
            (reqwest::Method::PATCH, format!("/ocpi/2.2.1/sessions/NL/EXA/S{n}"), body)
        })
        .await;
        phase("meter-value batch (10 EVSEs × 3 measurands)", &address, &token, &args, move |w, i| {
            let values: Vec<_> = (0..10)
                .map(|k| {
                    let n = (w * 131 + i * 10 + k) % sessions;
                    json!({"evse_uid": format!("E{n}"), "session_id": format!("S{n}"), "meterValue": [{
                        "timestamp": "2024-05-01T10:00:00Z", "sampledValue": [
                            {"value": format!("{}", i * 10), "unit": "Wh"},
                            {"measurand": "Power.Active.Import", "value": "7200", "unit": "W"},
                            {"measurand": "SoC", "value": "50", "unit": "Percent"}]}]})
                })
                .collect();
            (reqwest::Method::POST, "/api/v1/meter-values".to_owned(), json!({"meter_values": values}))
        })
        .await;
    });
    drop(client_rt);
    server_rt.block_on(async {
        if let Ok(mut conn) = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
    });
    Ok(())
}
