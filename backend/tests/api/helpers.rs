//! `spawn_app()`: the real server on port 0 with a fresh database (PostgreSQL by default:
//! a new `evflex_test_<random>` database on 127.0.0.1:5432, dropped afterwards; or a temporary
//! SQLite file), a simulated clock and manual ticks; plus a small axum server playing the CPO.

use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use base64::Engine;
use evflex::domain::SimClock;
use evflex::{AppState, Application, ServeConfig};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// 2024-05-01T10:00:00Z, a quarter-hour boundary.
pub const T0: i64 = 1_714_557_600;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL on 127.0.0.1:5432 (`EVFLEX_TEST_POSTGRES` overrides the admin URL).
    Postgres,
    /// A temporary SQLite file.
    Sqlite,
}

fn admin_url() -> String {
    std::env::var("EVFLEX_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn random_suffix() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A running evflex.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Shared state (ticks, faults, database).
    pub state: AppState,
    /// The simulated clock.
    pub clock: SimClock,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Token C once a CPO registered.
    pub cpo_token: Option<String>,
    backend: Backend,
    db_name: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// Starts evflex on PostgreSQL.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::Postgres).await
}

/// Starts evflex on the given backend.
pub async fn spawn_app_on(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts evflex on the given backend with a configuration tweak.
pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut ServeConfig)) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        evflex::telemetry::init_tracing();
    }
    let (url, db_name, dir) = match backend {
        Backend::Postgres => {
            let name = format!("evflex_test_{}", random_suffix());
            let admin = admin_url();
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("PostgreSQL on 127.0.0.1:5432 (database `test`)");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(b, _)| b)
                .to_owned();
            (format!("{base}/{name}"), Some(name), None)
        }
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("evflex.sqlite");
            (
                format!("sqlite://{}?mode=rwc", path.display()),
                None,
                Some(dir),
            )
        }
    };
    let mut config = ServeConfig::for_tests(url);
    config.engine.setpoint_backoff_ms = 20;
    tweak(&mut config);
    let clock = SimClock::new(T0);
    let app = Application::build(config, Arc::new(clock.clone()))
        .await
        .expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        state,
        clock,
        http: reqwest::Client::new(),
        cpo_token: None,
        backend,
        db_name,
        shutdown: Some(tx),
        _dir: dir,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let (Backend::Postgres, Some(name)) = (self.backend, self.db_name.take()) {
            // Drop the database from a thread of its own (we may be inside a runtime).
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(mut conn) =
                        <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url()).await
                    {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Operator key on the local anvil (dev account 1; never a real key).
pub const TEST_OPERATOR_KEY: &str =
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// Meter key on the local anvil (dev account 2; never a real key).
pub const TEST_METER_KEY: &str =
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

/// Starts evflex on PostgreSQL with `chain` configured (manual writer).
pub async fn spawn_app_on_chain(chain: &evflex_chain::LocalChain) -> TestApp {
    let endpoint = chain.endpoint();
    spawn_app_with(Backend::Postgres, move |c| {
        c.chain =
            evflex::chain::ChainConfig::for_tests(&endpoint, TEST_OPERATOR_KEY, TEST_METER_KEY);
    })
    .await
}

/// Starts a second evflex replica on `app`'s PostgreSQL database (the same data, the same
/// simulated clock, the same registered CPO), with a configuration tweak. Dropping the replica
/// leaves the database to `app`.
pub async fn spawn_replica(app: &TestApp, tweak: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let name = app
        .db_name
        .clone()
        .expect("replicas share a PostgreSQL database");
    let admin = admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let mut config = ServeConfig::for_tests(format!("{base}/{name}"));
    config.engine.setpoint_backoff_ms = 20;
    tweak(&mut config);
    let built = Application::build(config, Arc::new(app.clock.clone()))
        .await
        .expect("build replica");
    let address = format!("http://127.0.0.1:{}", built.port());
    let state = built.state();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(built.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        state,
        clock: app.clock.clone(),
        http: reqwest::Client::new(),
        cpo_token: app.cpo_token.clone(),
        backend: Backend::Postgres,
        db_name: None,
        shutdown: Some(tx),
        _dir: None,
    }
}

/// `Token <base64>` as OCPI 2.2.1 wants it.
pub fn token_header(token: &str) -> String {
    format!(
        "Token {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    )
}

/// An example object from `tests/data/ocpi`.
pub fn example(name: &str) -> Value {
    let path = format!("{}/tests/data/ocpi/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

impl TestApp {
    /// Sends a request with an optional `Authorization` header value and JSON body; returns the
    /// status and the JSON body (`Null` when empty).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.address));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends a raw body.
    pub async fn send_raw(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        let auth = token_header(self.cpo_token.as_deref().expect("registered CPO"));
        let resp = self
            .http
            .request(method, format!("{}{path}", self.address))
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A request as the registered CPO (token C).
    pub async fn cpo(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let auth = token_header(self.cpo_token.as_deref().expect("registered CPO"));
        self.send(method, path, Some(&auth), body).await
    }

    /// A request as a user (bearer token).
    pub async fn user(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.send(method, path, Some(&format!("Bearer {token}")), body)
            .await
    }

    /// Adds a registration token (token A).
    pub async fn add_registration_token(&self, token: &str) {
        let mut conn = self.state.db.conn().await.unwrap();
        evflex::store::parties::add_registration_token(&mut conn, token, T0)
            .await
            .unwrap();
    }

    /// Runs the credentials handshake with `cpo`; stores and returns token C.
    pub async fn register_cpo(&mut self, cpo: &MockCpo) -> String {
        self.add_registration_token("token-a").await;
        let body = json!({
            "token": "cpo-token-b",
            "url": format!("{}/ocpi/versions", cpo.address),
            // NL*EXA is the tests' own CPO; the other roles are the party codes the official
            // OCPI examples are published under, so one platform may send them all.
            "roles": [
                {"role": "CPO", "party_id": "EXA", "country_code": "NL",
                 "business_details": {"name": "Example CPO"}},
                {"role": "CPO", "party_id": "BEC", "country_code": "BE",
                 "business_details": {"name": "Example CPO"}},
                {"role": "CPO", "party_id": "EVC", "country_code": "SE",
                 "business_details": {"name": "Example CPO"}},
                {"role": "CPO", "party_id": "ALF", "country_code": "NL",
                 "business_details": {"name": "Example CPO"}},
                {"role": "CPO", "party_id": "ALL", "country_code": "NL",
                 "business_details": {"name": "Example CPO"}},
                {"role": "CPO", "party_id": "ALL", "country_code": "DE",
                 "business_details": {"name": "Example CPO"}},
                {"role": "CPO", "party_id": "STK", "country_code": "NL",
                 "business_details": {"name": "Example CPO"}}
            ]
        });
        let (status, resp) = self
            .send(
                reqwest::Method::POST,
                "/ocpi/2.2.1/credentials",
                Some(&token_header("token-a")),
                Some(&body),
            )
            .await;
        assert_eq!(status, 200, "{resp}");
        let token = resp["data"]["token"].as_str().unwrap().to_owned();
        self.cpo_token = Some(token.clone());
        token
    }

    /// Another party's credentials handshake (POST) with its own token A (added here), token B
    /// and `roles` as `(country_code, party_id)`; returns the status and the OCPI response.
    pub async fn register_party(
        &self,
        cpo: &MockCpo,
        token_a: &str,
        token_b: &str,
        roles: &[(&str, &str)],
    ) -> (u16, Value) {
        self.add_registration_token(token_a).await;
        self.send(
            reqwest::Method::POST,
            "/ocpi/2.2.1/credentials",
            Some(&token_header(token_a)),
            Some(&credentials(cpo, token_b, roles)),
        )
        .await
    }

    /// A second CPO, DE*BBB, registered with its own tokens A and B; returns it (keep it alive
    /// while evflex may call it) and its `Authorization` header (token C).
    pub async fn second_cpo(&self) -> (MockCpo, String) {
        let cpo = spawn_cpo().await;
        let (status, body) = self
            .register_party(&cpo, "token-a-b", "token-b-b", &[("DE", "BBB")])
            .await;
        assert_eq!(status, 200, "{body}");
        let auth = token_header(body["data"]["token"].as_str().unwrap());
        (cpo, auth)
    }

    /// Registers a user; returns (id, bearer token, the token uid evflex issued).
    pub async fn new_user(&self, name: &str, opted_in: bool) -> (i64, String, String) {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/users",
                None,
                Some(&json!({"name": name, "opted_in": opted_in})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["user_id"].as_i64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
            body["token_uid"].as_str().unwrap().to_owned(),
        )
    }

    /// Runs one tick at the clock's current timestep.
    pub async fn tick(&self) -> evflex::engine::TickReport {
        let ts = evflex::domain::timestep_of(self.clock.now_s(), 900);
        evflex::engine::run_tick(&self.state.engine, ts).await
    }

    /// `SELECT COUNT(*) FROM {table}`.
    pub async fn count(&self, table: &str) -> i64 {
        let (n,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(self.state.db.pool())
                .await
                .unwrap();
        n
    }

    /// Outbox rows of a kind.
    pub async fn outbox(&self, kind: &str) -> Vec<evflex::store::outbox::OutboxRow> {
        let mut conn = self.state.db.conn().await.unwrap();
        evflex::store::outbox::list(&mut conn, Some(kind), 1000)
            .await
            .unwrap()
    }

    /// PUTs a location of party NL*EXA with the given EVSEs ([`location_json`]).
    pub async fn put_site(&self, location_id: &str, evse_uids: &[&str]) {
        let loc = location_json(location_id, evse_uids, "AVAILABLE");
        let (status, body) = self
            .cpo(
                reqwest::Method::PUT,
                &format!("/ocpi/2.2.1/locations/NL/EXA/{location_id}"),
                Some(&loc),
            )
            .await;
        assert!(matches!(status, 200 | 201), "{status} {body}");
    }

    /// PUTs an ACTIVE session of party NL*EXA.
    pub async fn put_session(&self, session_id: &str, evse_uid: &str, token_uid: &str, kwh: f64) {
        self.put_session_at(session_id, evse_uid, token_uid, kwh, "2024-05-01T09:30:00Z")
            .await;
    }

    /// PUTs an ACTIVE NL*EXA session that started at `start` (RFC 3339), last updated then.
    pub async fn put_session_at(
        &self,
        session_id: &str,
        evse_uid: &str,
        token_uid: &str,
        kwh: f64,
        start: &str,
    ) {
        let s = json!({
            "country_code": "NL", "party_id": "EXA", "id": session_id,
            "start_date_time": start, "kwh": kwh,
            "cdr_token": {"uid": token_uid, "type": "RFID", "contract_id": format!("NL-EXA-{token_uid}")},
            "auth_method": "WHITELIST", "location_id": "LOC-A", "evse_uid": evse_uid,
            "connector_id": "1", "currency": "EUR", "status": "ACTIVE",
            "last_updated": start
        });
        let (status, body) = self
            .cpo(
                reqwest::Method::PUT,
                &format!("/ocpi/2.2.1/sessions/NL/EXA/{session_id}"),
                Some(&s),
            )
            .await;
        assert!(matches!(status, 200 | 201), "{status} {body}");
    }

    /// PUTs a group of NL*EXA EVSEs.
    pub async fn put_group(&self, id: i64, capacity_w: i64, evses: &[&str]) {
        let spec = json!({"id": id, "name": format!("group {id}"), "country_code": "NL",
            "party_id": "EXA", "capacity_w": capacity_w, "evses": evses});
        let (status, body) = self
            .cpo(
                reqwest::Method::PUT,
                &format!("/api/v1/groups/{id}"),
                Some(&spec),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

/// An OCPI Location of party NL*EXA with the given EVSEs, each in `status` with one connector
/// (AC 3-phase 230 V 16 A = 11 040 W).
pub fn location_json(location_id: &str, evse_uids: &[&str], status: &str) -> Value {
    let evses: Vec<Value> = evse_uids
        .iter()
        .map(|uid| {
            json!({
                "uid": uid, "evse_id": format!("NL*EXA*E{uid}"), "status": status,
                "connectors": [{"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET",
                    "power_type": "AC_3_PHASE", "max_voltage": 230, "max_amperage": 16,
                    "last_updated": "2024-05-01T09:00:00Z"}],
                "last_updated": "2024-05-01T09:00:00Z"
            })
        })
        .collect();
    json!({
        "country_code": "NL", "party_id": "EXA", "id": location_id, "publish": true,
        "address": "Stationsplein 1", "city": "Utrecht", "country": "NLD",
        "coordinates": {"latitude": "52.089", "longitude": "5.110"},
        "evses": evses, "time_zone": "Europe/Amsterdam", "last_updated": "2024-05-01T09:00:00Z"
    })
}

/// A credentials object for `cpo` with `token_b` and one CPO role per `(country_code,
/// party_id)`.
pub fn credentials(cpo: &MockCpo, token_b: &str, roles: &[(&str, &str)]) -> Value {
    let roles: Vec<Value> = roles
        .iter()
        .map(|(cc, pid)| {
            json!({"role": "CPO", "country_code": cc, "party_id": pid,
                   "business_details": {"name": format!("CPO {cc}*{pid}")}})
        })
        .collect();
    json!({"token": token_b, "url": format!("{}/ocpi/versions", cpo.address), "roles": roles})
}

/// Clock helper.
pub trait NowS {
    /// Now (Unix seconds).
    fn now_s(&self) -> i64;
}

impl NowS for SimClock {
    fn now_s(&self) -> i64 {
        evflex::domain::Clock::now(self)
    }
}

/// What the mock CPO received.
#[derive(Default)]
pub struct CpoLog {
    /// `PUT chargingprofiles/{session_id}` bodies.
    pub profiles: Vec<(String, Value)>,
    /// Authorization headers seen.
    pub auth: Vec<String>,
    /// Answer 503 to this many profile PUTs first.
    pub fail_first: usize,
    /// `PUT tokens/{cc}/{pid}/{uid}` as (path, query, body).
    pub tokens: Vec<(String, String, Value)>,
    /// (`X-Request-ID`, `X-Correlation-ID`) of every profile and token PUT.
    pub ids: Vec<(String, String)>,
    /// The `ChargingProfileResponse` result to answer profile PUTs with (`ACCEPTED` if unset).
    pub answer: Option<&'static str>,
    /// The same for one session's profile PUTs (before `answer`).
    pub answer_for: std::collections::HashMap<String, &'static str>,
    /// Credentials POSTed to it (evflex starting the handshake) as (Authorization, body).
    pub credentials: Vec<(String, Value)>,
    /// `DELETE chargingprofiles/{session_id}` (ClearProfile) as (session id, query).
    pub clears: Vec<(String, String)>,
    /// `GET chargingprofiles/{session_id}` (ActiveChargingProfile) as (session id, query).
    pub active_gets: Vec<(String, String)>,
    /// The routing headers of every profile PUT: `OCPI-from-*` and `OCPI-to-*` as `CC*PID`.
    pub routes: Vec<(String, String)>,
    /// What its sender interfaces hold, per module (`locations`, `sessions`, `cdrs`).
    pub sender: std::collections::HashMap<String, Vec<Value>>,
    /// Every GET of a sender interface as (module, query).
    pub sender_gets: Vec<(String, String)>,
    /// Answer HTTP 503 to sender GETs with a non-zero offset (a CPO that fails mid-pull).
    pub sender_fail_after_first_page: bool,
}

/// Largest page the mock CPO's sender interfaces answer (`X-Limit`), so pulls need the `Link`.
pub const MOCK_SENDER_PAGE: usize = 2;

/// One page of a mock sender interface: OCPI pagination (`date_from` inclusive, `offset`,
/// `limit` capped at [`MOCK_SENDER_PAGE`]) with `X-Total-Count`, `X-Limit` and `Link`.
fn sender_page(
    log: &Mutex<CpoLog>,
    base: &str,
    module: &str,
    query: Option<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let query = query.unwrap_or_default();
    let mut log = log.lock().unwrap();
    log.sender_gets.push((module.to_owned(), query.clone()));
    let parsed = reqwest::Url::parse(&format!("http://cpo/?{query}")).unwrap();
    let param = |name: &str| {
        parsed
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let offset: usize = param("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    if offset > 0 && log.sender_fail_after_first_page {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let limit = param("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(MOCK_SENDER_PAGE)
        .min(MOCK_SENDER_PAGE);
    let from = param("date_from");
    let matching: Vec<Value> = log
        .sender
        .get(module)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|o| {
            from.as_deref()
                .is_none_or(|f| o["last_updated"].as_str().unwrap_or("") >= f)
        })
        .collect();
    let page: Vec<Value> = matching.iter().skip(offset).take(limit).cloned().collect();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("X-Total-Count", matching.len().into());
    headers.insert("X-Limit", limit.into());
    if offset + page.len() < matching.len() {
        let mut next = format!(
            "{base}/ocpi/2.2.1/sender/{module}?offset={}&limit={limit}",
            offset + limit
        );
        if let Some(f) = &from {
            next.push_str(&format!("&date_from={f}"));
        }
        headers.insert("Link", format!("<{next}>; rel=\"next\"").parse().unwrap());
    }
    (
        headers,
        Json(json!({"data": page, "status_code": 1000, "timestamp": "2024-05-01T10:00:00Z"})),
    )
        .into_response()
}

/// The `OCPI-from-*` and `OCPI-to-*` headers of a request, as `CC*PID` each.
pub fn ocpi_route(headers: &axum::http::HeaderMap) -> (String, String) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (
        format!(
            "{}*{}",
            h("ocpi-from-country-code"),
            h("ocpi-from-party-id")
        ),
        format!("{}*{}", h("ocpi-to-country-code"), h("ocpi-to-party-id")),
    )
}

fn ocpi_ids(headers: &axum::http::HeaderMap) -> (String, String) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (h("x-request-id"), h("x-correlation-id"))
}

/// A small axum server playing the CPO: versions, version details, and a chargingprofiles
/// receiver that records what it gets.
pub struct MockCpo {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// What it received.
    pub log: Arc<Mutex<CpoLog>>,
}

/// Starts the mock CPO, offering OCPI 2.2.1.
pub async fn spawn_cpo() -> MockCpo {
    spawn_cpo_offering(&["2.2.1"]).await
}

/// Starts the mock CPO, offering the OCPI `versions` given (each lists the same endpoints).
pub async fn spawn_cpo_offering(versions: &[&str]) -> MockCpo {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(CpoLog::default()));
    let base = address.clone();
    let envelope = |data: Value| {
        Json(json!({"data": data, "status_code": 1000, "timestamp": "2024-05-01T10:00:00Z"}))
    };
    let offered: Vec<Value> = versions
        .iter()
        .map(|v| json!({"version": v, "url": format!("{base}/ocpi/{v}")}))
        .collect();
    let b2 = base.clone();
    let router = Router::new()
        .route(
            "/ocpi/versions",
            get(move || async move { envelope(Value::Array(offered)) }),
        )
        .route(
            "/ocpi/{version}",
            get(move |Path(version): Path<String>| async move {
                envelope(json!({"version": version, "endpoints": [
                    {"identifier": "locations", "role": "SENDER", "url": format!("{b2}/ocpi/2.2.1/sender/locations")},
                    {"identifier": "sessions", "role": "SENDER", "url": format!("{b2}/ocpi/2.2.1/sender/sessions")},
                    {"identifier": "cdrs", "role": "SENDER", "url": format!("{b2}/ocpi/2.2.1/sender/cdrs")},
                    {"identifier": "chargingprofiles", "role": "RECEIVER",
                     "url": format!("{b2}/ocpi/2.2.1/chargingprofiles")},
                    {"identifier": "tokens", "role": "RECEIVER", "url": format!("{b2}/ocpi/2.2.1/tokens")},
                    {"identifier": "credentials", "role": "RECEIVER", "url": format!("{b2}/ocpi/2.2.1/credentials")}
                ]}))
            }),
        )
        .route(
            "/ocpi/2.2.1/chargingprofiles/{session_id}",
            put(
                |State(log): State<Arc<Mutex<CpoLog>>>,
                 Path(session_id): Path<String>,
                 headers: axum::http::HeaderMap,
                 Json(body): Json<Value>| async move {
                    let mut log = log.lock().unwrap();
                    log.ids.push(ocpi_ids(&headers));
                    log.routes.push(ocpi_route(&headers));
                    log.auth.push(
                        headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned(),
                    );
                    if log.fail_first > 0 {
                        log.fail_first -= 1;
                        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(json!({})));
                    }
                    let result = log
                        .answer_for
                        .get(&session_id)
                        .copied()
                        .or(log.answer)
                        .unwrap_or("ACCEPTED");
                    log.profiles.push((session_id, body));
                    (
                        axum::http::StatusCode::OK,
                        Json(json!({"data": {"result": result, "timeout": 30},
                                    "status_code": 1000, "timestamp": "2024-05-01T10:00:00Z"})),
                    )
                },
            )
            .get(
                |State(log): State<Arc<Mutex<CpoLog>>>,
                 Path(session_id): Path<String>,
                 axum::extract::RawQuery(query): axum::extract::RawQuery| async move {
                    log.lock().unwrap().active_gets.push((session_id, query.unwrap_or_default()));
                    Json(json!({"data": {"result": "ACCEPTED", "timeout": 30},
                                "status_code": 1000, "timestamp": "2024-05-01T10:00:00Z"}))
                },
            )
            .delete(
                |State(log): State<Arc<Mutex<CpoLog>>>,
                 Path(session_id): Path<String>,
                 axum::extract::RawQuery(query): axum::extract::RawQuery| async move {
                    log.lock().unwrap().clears.push((session_id, query.unwrap_or_default()));
                    Json(json!({"data": {"result": "ACCEPTED", "timeout": 30},
                                "status_code": 1000, "timestamp": "2024-05-01T10:00:00Z"}))
                },
            ),
        )
        .route(
            "/ocpi/2.2.1/credentials",
            axum::routing::post({
                let versions = format!("{base}/ocpi/versions");
                move |State(log): State<Arc<Mutex<CpoLog>>>,
                      headers: axum::http::HeaderMap,
                      Json(body): Json<Value>| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    log.lock().unwrap().credentials.push((auth, body));
                    Json(json!({"status_code": 1000, "timestamp": "2024-05-01T10:00:00Z",
                        "data": {"token": "cpo-token-for-evflex", "url": versions,
                            "roles": [{"role": "CPO", "country_code": "DE", "party_id": "REG",
                                       "business_details": {"name": "Registered CPO"}}]}}))
                }
            }),
        )
        .route(
            "/ocpi/2.2.1/sender/{module}",
            get({
                let base = base.clone();
                move |State(log): State<Arc<Mutex<CpoLog>>>,
                      Path(module): Path<String>,
                      axum::extract::RawQuery(query): axum::extract::RawQuery| async move {
                    sender_page(&log, &base, &module, query)
                }
            }),
        )
        .route(
            "/ocpi/2.2.1/tokens/{cc}/{pid}/{uid}",
            put(
                |State(log): State<Arc<Mutex<CpoLog>>>,
                 Path((cc, pid, uid)): Path<(String, String, String)>,
                 axum::extract::RawQuery(query): axum::extract::RawQuery,
                 headers: axum::http::HeaderMap,
                 Json(body): Json<Value>| async move {
                    log.lock().unwrap().ids.push(ocpi_ids(&headers));
                    log.lock().unwrap().tokens.push((
                        format!("{cc}/{pid}/{uid}"),
                        query.unwrap_or_default(),
                        body,
                    ));
                    Json(json!({"status_code": 1000, "timestamp": "2024-05-01T10:00:00Z"}))
                },
            ),
        )
        .with_state(log.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    MockCpo { address, log }
}
