//! `evflex bench replan`: the event-to-profile latency of event re-plans (issue 15), from the
//! session PUT of an arriving car leaving the CPO to the profile PUT for that car reaching the
//! CPO, against a real evflex (in this process, over HTTP, with its re-plan worker on) and the
//! simulator's CPO server.
//!
//! The world: `groups` groups of `evs` charge points (11.04 kW each) on connections at half
//! their ratings, every charge point but one occupied by a car that did not opt in and wants
//! more than it can get, so the group binds and each arriving car is curtailed (first come,
//! first served): its profile is the first thing the CPO hears of it. One round: every group
//! gets one arrival on its free charge point in the same second; the latency of each is
//! measured; the arrivals then leave (their sessions complete) and the re-plans settle before
//! the next round. `groups` = 1 measures one 40-EV group, 250 the 10,000-charge-point burst.

use crate::cpo::{self, Client, CpoServer, Quirks, token_header};
use evflex::config::{ReplanMode, Secret, ServeConfig};
use evflex::domain::{SimClock, format_rfc3339};
use evflex::{AppState, Application};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `evflex bench replan`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplanBenchArgs {
    /// Groups, each getting one arrival per round in the same second.
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Charge points per group (all but one occupied).
    #[arg(long, default_value_t = 40)]
    pub evs: usize,
    /// Rounds of arrivals.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Database (`postgres://…` for figures that mean something; a temporary SQLite file when
    /// absent). Use an empty database: the bench leaves its groups and sessions there.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Print JSON instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

/// What [`run`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct ReplanBenchReport {
    /// Groups.
    pub groups: usize,
    /// Charge points per group.
    pub evs_per_group: usize,
    /// Arrivals measured.
    pub arrivals: usize,
    /// Event-to-profile latency (ms).
    pub latency_ms: Latency,
    /// Database backend.
    pub database: &'static str,
}

/// Percentiles of a latency sample (ms).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Of `samples_ms` (nearest-rank percentiles); zeros when empty.
    pub fn of(samples_ms: &[f64]) -> Self {
        let mut s = samples_ms.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            if s.is_empty() {
                return 0.0;
            }
            let i = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
            s[i]
        };
        Self {
            p50: rank(0.50),
            p99: rank(0.99),
            max: s.last().copied().unwrap_or(0.0),
        }
    }
}

impl std::fmt::Display for ReplanBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "event-to-profile latency, {} group(s) × {} charge points, {} arrivals ({}): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            self.groups,
            self.evs_per_group,
            self.arrivals,
            self.database,
            self.latency_ms.p50,
            self.latency_ms.p99,
            self.latency_ms.max
        )
    }
}

/// The benchmark CPO's country code.
pub const CC: &str = "NL";
/// The benchmark CPO's party id.
pub const PARTY: &str = "BEN";
/// A fixed day (the clock does not move: the latency is measured on the wall clock).
pub const NOW: i64 = 1_714_557_600;

/// Runs the benchmark.
pub async fn run(args: &ReplanBenchArgs) -> anyhow::Result<ReplanBenchReport> {
    let (groups, evs) = (args.groups.max(1), args.evs.max(2));
    let dir = std::env::temp_dir().join(format!("evflex-bench-replan-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.join("bench.sqlite").display()));
    let database = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let token_a = "bench-registration";
    let mut config = ServeConfig::for_tests(url);
    config.ocpi_registration_token = Some(Secret::new(token_a.to_owned()));
    config.replan = ReplanMode::Auto;
    config.db_max_connections = 32;
    config.engine.uncontrolled_energy_wh = 100_000;
    let clock = SimClock::new(NOW);
    let app = Application::build(config, Arc::new(clock)).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));

    let cpo = cpo::spawn("bench-cpo-token-b", Quirks::NONE).await?;
    let client = Client::new(&base)?;
    let auth = register(&client, &cpo, token_a).await?;
    set_up(&client, &auth, &state, groups, evs).await?;
    confirm_profiles(&client, &auth, &cpo).await?;
    analyze(&state).await?;

    let run_id = std::process::id();
    let mut samples = Vec::with_capacity(groups * args.rounds);
    for round in 0..args.rounds {
        let ids: Vec<String> = (0..groups)
            .map(|g| format!("ARR-{run_id}-{round}-{g}"))
            .collect();
        let mut set = tokio::task::JoinSet::new();
        for (g, id) in ids.iter().enumerate() {
            let (client, auth, id) = (client.clone(), auth.clone(), id.clone());
            let body = session(&id, &uid(g, evs - 1), "ACTIVE");
            set.spawn(async move {
                let sent = Instant::now();
                client
                    .call(Method::PUT, &session_path(&id), Some(&auth), Some(&body))
                    .await
                    .map(|_| (id, sent))
            });
        }
        let mut sent = Vec::with_capacity(groups);
        while let Some(joined) = set.join_next().await {
            sent.push(joined??);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let all = {
                let inbox = cpo.inbox.lock().unwrap_or_else(|p| p.into_inner());
                sent.iter()
                    .all(|(id, _)| inbox.first_put_at.contains_key(id))
            };
            if all {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "round {round}: not every arrival got its profile within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        {
            let inbox = cpo.inbox.lock().unwrap_or_else(|p| p.into_inner());
            for (id, at) in &sent {
                if let Some(put) = inbox.first_put_at.get(id) {
                    samples.push(put.saturating_duration_since(*at).as_secs_f64() * 1e3);
                }
            }
        }
        // The arrivals leave; their groups settle before the next round.
        for (g, id) in ids.iter().enumerate() {
            let body = session(id, &uid(g, evs - 1), "COMPLETED");
            client
                .call(Method::PUT, &session_path(id), Some(&auth), Some(&body))
                .await?;
        }
        settle(&state).await?;
        confirm_profiles(&client, &auth, &cpo).await?;
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    drop(cpo);
    Ok(ReplanBenchReport {
        groups,
        evs_per_group: evs,
        arrivals: samples.len(),
        latency_ms: Latency::of(&samples),
        database,
    })
}

/// The CPO confirms every profile it took since the last call (its `ChargingProfileResult` to
/// each `response_url`), as a CPO does once its charge points applied them: the next plan then
/// sends only what changed (`engine::setpoints`, "only changes are sent"), not the whole group
/// again.
async fn confirm_profiles(client: &Client, auth: &str, cpo: &CpoServer) -> anyhow::Result<()> {
    let urls: Vec<String> = {
        let mut inbox = cpo.inbox.lock().unwrap_or_else(|p| p.into_inner());
        inbox.result_urls.drain().map(|(_, url)| url).collect()
    };
    for url in urls {
        let path = url
            .find("/ocpi/")
            .map(|at| &url[at..])
            .ok_or_else(|| anyhow::anyhow!("response_url outside evflex's OCPI routes: {url}"))?;
        client
            .call(
                Method::POST,
                path,
                Some(auth),
                Some(&json!({"result": "ACCEPTED"})),
            )
            .await?;
    }
    Ok(())
}

/// Gives the database's planner statistics for the world just created: a real database has them
/// (autovacuum analyzes a table once enough of it changed), but the benchmark builds 10,000
/// charge points in seconds, inside autovacuum's one-minute nap, and without statistics the
/// planner looked a group's EVSEs up through the wrong index (12.7 ms a snapshot at 50 groups).
async fn analyze(state: &AppState) -> anyhow::Result<()> {
    Ok(state.db.analyze().await?)
}

/// The CPO's credentials handshake; its `Authorization` header.
pub async fn register(client: &Client, cpo: &CpoServer, token_a: &str) -> anyhow::Result<String> {
    let creds = json!({
        "token": cpo.token_b,
        "url": format!("{}/ocpi/versions", cpo.address),
        "roles": [{"role": "CPO", "party_id": PARTY, "country_code": CC,
                   "business_details": {"name": "evflex benchmark CPO"}}]
    });
    let resp = client
        .call(
            Method::POST,
            "/ocpi/2.2.1/credentials",
            Some(&token_header(token_a)),
            Some(&creds),
        )
        .await?;
    let token = resp["data"]["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("credentials answer without a token: {resp}"))?;
    Ok(token_header(token))
}

/// The uid of charge point `cp` of group `group` (0-based).
pub fn uid(group: usize, cp: usize) -> String {
    format!("G{group:03}-CP{cp:02}")
}

/// The OCPI path of a session of the benchmark's CPO.
pub fn session_path(id: &str) -> String {
    format!("/ocpi/2.2.1/sessions/{CC}/{PARTY}/{id}")
}

/// A session of a car that did not opt in (an unknown token) on `evse_uid`.
pub fn session(id: &str, evse_uid: &str, status: &str) -> Value {
    let location = evse_uid.split_once("-CP").map_or("G", |(g, _)| g);
    let now = format_rfc3339(NOW);
    json!({
        "country_code": CC, "party_id": PARTY, "id": id, "start_date_time": now, "kwh": 0.0,
        "cdr_token": {"uid": "BENCH", "type": "RFID", "contract_id": "NL-BEN-BENCH",
            "country_code": CC, "party_id": PARTY},
        "auth_method": "WHITELIST", "location_id": location, "evse_uid": evse_uid,
        "connector_id": "1", "currency": "EUR", "status": status, "last_updated": now
    })
}

/// Locations, groups and the cars already charging; one tick; the re-plans settled.
async fn set_up(
    client: &Client,
    auth: &str,
    state: &AppState,
    groups: usize,
    evs: usize,
) -> anyhow::Result<()> {
    put_world(client, auth, groups, evs, evs - 1).await?;
    evflex::engine::run_tick(
        &state.engine,
        evflex::domain::timestep_of(NOW, evflex::domain::TIME_STEP_S),
    )
    .await;
    settle(state).await
}

/// The benchmark's world over HTTP: `groups` locations of `evs` charge points, each a group on
/// a connection at half their ratings, with cars that did not opt in on the first `occupied`
/// charge points of each (sessions `CAR-{group}-{cp}`).
pub async fn put_world(
    client: &Client,
    auth: &str,
    groups: usize,
    evs: usize,
    occupied: usize,
) -> anyhow::Result<()> {
    let stamp = format_rfc3339(NOW - 3_600);
    let mut specs = Vec::with_capacity(groups);
    for g in 0..groups {
        let location = format!("G{g:03}");
        let uids: Vec<String> = (0..evs).map(|c| uid(g, c)).collect();
        let evses: Vec<Value> = uids
            .iter()
            .map(|u| {
                json!({"uid": u, "evse_id": format!("NL*BEN*E{}", u.replace('-', "")),
                    "status": "AVAILABLE", "connectors": [{"id": "1", "standard": "IEC_62196_T2",
                    "format": "SOCKET", "power_type": "AC_3_PHASE", "max_voltage": 230,
                    "max_amperage": 16, "last_updated": stamp}], "last_updated": stamp})
            })
            .collect();
        let loc = json!({"country_code": CC, "party_id": PARTY, "id": location, "publish": true,
            "address": "Benchmark 1", "city": "Utrecht", "country": "NLD",
            "coordinates": {"latitude": "52.089", "longitude": "5.110"}, "evses": evses,
            "time_zone": "Europe/Amsterdam", "last_updated": stamp});
        client
            .call(
                Method::PUT,
                &format!("/ocpi/2.2.1/locations/{CC}/{PARTY}/{location}"),
                Some(auth),
                Some(&loc),
            )
            .await?;
        specs.push(
            json!({"id": g + 1, "name": format!("bench group {}", g + 1),
            "country_code": CC, "party_id": PARTY, "capacity_w": evs as i64 * 11_040 / 2,
            "evses": uids}),
        );
    }
    client
        .call(
            Method::PUT,
            "/api/v1/topology",
            Some(auth),
            Some(&json!({"groups": specs})),
        )
        .await?;
    for g in 0..groups {
        for c in 0..occupied.min(evs) {
            let id = format!("CAR-{g:03}-{c:02}");
            client
                .call(
                    Method::PUT,
                    &session_path(&id),
                    Some(auth),
                    Some(&session(&id, &uid(g, c), "ACTIVE")),
                )
                .await?;
        }
    }
    Ok(())
}

/// Waits until no event is waiting for a re-plan (the worker has planned them all) and the
/// set-points are delivered.
async fn settle(state: &AppState) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let waiting = {
            let mut conn = state.db.conn().await?;
            evflex::store::replans::waiting(&mut conn, 1).await?.len()
        };
        if waiting == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the re-plans did not settle within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The worker's delivery runs right after its commit: let the round's last one finish.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = Latency::of(&samples);
        assert_eq!((l.p50, l.p99, l.max), (50.0, 99.0, 100.0));
        let l = Latency::of(&[7.0]);
        assert_eq!((l.p50, l.p99, l.max), (7.0, 7.0, 7.0));
        let l = Latency::of(&[]);
        assert_eq!((l.p50, l.p99, l.max), (0.0, 0.0, 0.0));
    }
}
