//! Load benchmark (not a test): sustained OCPI session PATCHes and meter-value batches against
//! `evflex serve` on PostgreSQL, over loopback; prints requests/s and p50/p99 latency.
//!
//! ```text
//! cargo run --release -p evflex --example load -- [--seconds 10] [--concurrency 16] \
//!     [--runs 3] [--pool 16] [--sessions 1000] \
//!     [--database postgres://postgres@127.0.0.1:5432/test] [--async-commit on]
//! ```
//!
//! The server runs in this process (its own runtime and threads) on a fresh database, which is
//! dropped afterwards; a CPO party and its token are created directly in the store. The client
//! is a minimal HTTP/1.1 keep-alive client (one connection per worker, requests pre-formatted),
//! so that it takes as little as possible of the cores it shares with the server and
//! PostgreSQL. Each phase also prints where the CPU went (this process's server and client
//! threads, PostgreSQL, everything else on the machine) and, for PATCHes, the mean group-commit
//! batch.

use evflex::domain::WallClock;
use evflex::{Application, ServeConfig};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    seconds: u64,
    concurrency: usize,
    runs: usize,
    pool: u32,
    sessions: usize,
    database: String,
    /// The benchmark's own database (created and dropped here).
    database_name: String,
    async_commit: bool,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 10,
        concurrency: 16,
        runs: 1,
        pool: 16,
        sessions: 1_000,
        database: "postgres://postgres@127.0.0.1:5432/test".to_owned(),
        database_name: format!("evflex_load_{}", std::process::id()),
        async_commit: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency N"),
            "--runs" => a.runs = value.parse().expect("--runs N"),
            "--pool" => a.pool = value.parse().expect("--pool N"),
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

/// One keep-alive HTTP/1.1 connection; requests and responses one at a time.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends a whole request; returns the response status.
    async fn send(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let (head_end, status, length) = loop {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).unwrap_or("");
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                let length = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, status, length);
            }
        };
        while self.buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok(status)
    }
}

fn request(method: &str, path: &str, auth: &str, body: &serde_json::Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// CPU seconds so far: this process's threads by name prefix, PostgreSQL, the whole machine.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    server: f64,
    client: f64,
    postgres: f64,
    busy: f64,
}

fn ticks_of(stat: &str) -> Option<(String, f64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    let t = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((stat[open + 1..close].to_owned(), t / 100.0))
}

fn cpu(database: &str) -> Cpu {
    let mut c = Cpu::default();
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).ok();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Some((name, t)) = read(task.path().join("stat")).as_deref().and_then(ticks_of) {
            if name.starts_with("srv") {
                c.server += t;
            } else if name.starts_with("cli") {
                c.client += t;
            }
        }
    }
    // PostgreSQL: the backends of this benchmark's database and the auxiliary processes (WAL
    // writer, checkpointer, …); backends of other databases count as other processes.
    for proc in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some((name, t)) = read(proc.path().join("stat")).as_deref().and_then(ticks_of)
            && name == "postgres"
        {
            let title = read(proc.path().join("cmdline")).unwrap_or_default();
            let other_client = title.contains('(') || title.contains("[local]");
            if title.contains(database) || !other_client {
                c.postgres += t;
            }
        }
    }
    if let Some(line) = read("/proc/stat".into()).and_then(|s| s.lines().next().map(str::to_owned))
    {
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        c.busy = v.iter().take(8).sum::<f64>()
            - v.get(3).copied().unwrap_or(0.0)
            - v.get(4).copied().unwrap_or(0.0);
        c.busy /= 100.0;
    }
    c
}

fn counter(metrics: &PrometheusHandle, name: &str) -> f64 {
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// One phase's figures.
struct Figures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn phase(
    name: &str,
    address: &str,
    auth: &str,
    args: &Args,
    metrics: &PrometheusHandle,
    make: impl Fn(usize, usize) -> (&'static str, String, serde_json::Value) + Send + Sync + 'static,
) -> Figures {
    let make = Arc::new(make);
    let batches = counter(metrics, "evflex_session_patch_batches_total");
    let batched = counter(metrics, "evflex_session_patch_batched_total");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let before = cpu(&args.database_name);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        let (make, address, auth) = (make.clone(), address.to_owned(), auth.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut conn = Conn::open(&address).await.expect("connecting");
            let mut i = 0;
            while Instant::now() < deadline {
                let (method, path, body) = make(worker, i);
                let req = request(method, &path, &auth, &body);
                i += 1;
                let t = Instant::now();
                let status = match conn.send(&req).await {
                    Ok(status) => status,
                    Err(_) => {
                        conn = Conn::open(&address).await.expect("reconnecting");
                        0
                    }
                };
                latencies.push(t.elapsed());
                if !(200..300).contains(&status) {
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
    let after = cpu(&args.database_name);
    all.sort();
    let f = Figures {
        rate: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50).as_secs_f64() * 1e3,
        p99_ms: percentile(&all, 0.99).as_secs_f64() * 1e3,
    };
    println!(
        "{name}: {} requests in {elapsed:.1} s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {errors} (concurrency {})",
        all.len(),
        f.rate,
        f.p50_ms,
        f.p99_ms,
        args.concurrency,
    );
    let share = |x: f64| 100.0 * x / (elapsed * cores);
    let (server, client, pg) = (
        after.server - before.server,
        after.client - before.client,
        after.postgres - before.postgres,
    );
    let other = (after.busy - before.busy) - server - client - pg;
    let idle = elapsed * cores - (after.busy - before.busy);
    println!(
        "  CPU of {cores} cores: server {:.0}%, client {:.0}%, PostgreSQL {:.0}%, other processes {:.0}%, idle {:.0}%; per request: server {:.0} µs, PostgreSQL {:.0} µs",
        share(server),
        share(client),
        share(pg),
        share(other),
        share(idle),
        server / all.len().max(1) as f64 * 1e6,
        pg / all.len().max(1) as f64 * 1e6,
    );
    let batches = counter(metrics, "evflex_session_patch_batches_total") - batches;
    if batches > 0.0 {
        let batched = counter(metrics, "evflex_session_patch_batched_total") - batched;
        println!(
            "  group commit: {batches:.0} batches, {:.1} PATCHes per batch",
            batched / batches
        );
    }
    f
}

fn summary(name: &str, runs: &[Figures]) {
    let mut rates: Vec<f64> = runs.iter().map(|f| f.rate).collect();
    rates.sort_by(f64::total_cmp);
    let p99 = runs.iter().map(|f| f.p99_ms).fold(0.0, f64::max);
    let p50: Vec<String> = runs.iter().map(|f| format!("{:.1}", f.p50_ms)).collect();
    println!(
        "{name} over {} runs: {} req/s (min {:.0}, median {:.0}, max {:.0}); p50 {} ms; worst p99 {p99:.1} ms",
        runs.len(),
        runs.iter()
            .map(|f| format!("{:.0}", f.rate))
            .collect::<Vec<_>>()
            .join(" / "),
        rates[0],
        rates[rates.len() / 2],
        rates[rates.len() - 1],
        p50.join(" / "),
    );
}

fn main() -> anyhow::Result<()> {
    let args = args();
    let name = args.database_name.clone();
    let base_url = args
        .database
        .rsplit_once('/')
        .map_or(args.database.as_str(), |(b, _)| b)
        .to_owned();
    let admin = args.database.clone();

    // The server: its own multi-threaded runtime, as `evflex serve` runs.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("srv")
        .enable_all()
        .build()?;
    let (address, metrics) = server_rt.block_on(async {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
        let mut config = ServeConfig::for_tests(format!("{base_url}/{name}"));
        config.db_max_connections = args.pool;
        config.db_async_commit = args.async_commit;
        let app = Application::build(config, Arc::new(WallClock)).await?;
        let address = format!("127.0.0.1:{}", app.port());
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
        let auth = evflex::ingest::ocpi::credentials::authorization("load-token");
        let mut conn = Conn::open(&address).await?;
        for i in 0..args.sessions {
            let s = json!({
                "country_code": "NL", "party_id": "EXA", "id": format!("S{i}"),
                "start_date_time": "2024-05-01T09:30:00Z", "kwh": 0.0,
                "cdr_token": {"uid": format!("T{i}"), "type": "RFID", "contract_id": format!("C{i}")},
                "auth_method": "WHITELIST", "location_id": "LOC", "evse_uid": format!("E{i}"),
                "connector_id": "1", "currency": "EUR", "status": "ACTIVE",
                "last_updated": "2024-05-01T09:30:00Z"
            });
            let status = conn
                .send(&request("PUT", &format!("/ocpi/2.2.1/sessions/NL/EXA/S{i}"), &auth, &s))
                .await?;
            anyhow::ensure!(status == 200, "seeding session {i}: {status}");
        }
        anyhow::Ok((address, state.metrics.clone()))
    })?;
    let auth = evflex::ingest::ocpi::credentials::authorization("load-token");

    // The load generator: a runtime of its own.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("cli")
        .enable_all()
        .build()?;
    client_rt.block_on(async {
        let sessions = args.sessions;
        let (mut patches, mut batches) = (Vec::new(), Vec::new());
        for run in 1..=args.runs {
            println!("run {run}:");
            let f = phase("session PATCH", &address, &auth, &args, &metrics, move |w, i| {
                let n = (w * 7_919 + i) % sessions;
                let body = json!({"kwh": (i as f64) * 0.01, "status": "ACTIVE",
                                   "last_updated": "2024-05-01T10:00:00Z"});
                ("PATCH", format!("/ocpi/2.2.1/sessions/NL/EXA/S{n}"), body)
            })
            .await;
            patches.push(f);
            let f = phase("meter-value batch (10 EVSEs × 3 measurands)", &address, &auth, &args, &metrics, move |w, i| {
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
                ("POST", "/api/v1/meter-values".to_owned(), json!({"meter_values": values}))
            })
            .await;
            batches.push(f);
        }
        summary("session PATCH", &patches);
        summary("meter-value batch (10 EVSEs)", &batches);
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
