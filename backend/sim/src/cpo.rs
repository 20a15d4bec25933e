//! The simulated CPO's OCPI side (an axum server on `127.0.0.1:0`: versions, 2.2.1 details,
//! a `chargingprofiles` receiver) and its client for calls to evflex.
//!
//! The receiver checks token B, records each session's latest profile and answers
//! `ACCEPTED`; [`Profile::limit_at`] gives the limit in force at an instant, which is what the
//! simulated charge point obeys. Like a real CPO (OCPI 2.2.1 `SetChargingProfile`), it then
//! posts the `ChargingProfileResult` to the profile's `response_url` once the charge point has
//! applied it (`crate::live`, at the second it takes effect).
//!
//! Like real CPO backends, it does not take every profile ([`Quirks`], on in the demo): some
//! charge points' firmware cannot be smart-charged, so the CPO answers `REJECTED` to every
//! profile for a session there (the car then draws what it wants), and its backend throttles,
//! answering `TOO_OFTEN` to every n-th profile PUT (evflex backs off and sends it again). A
//! profile that was not `ACCEPTED` is not in force: the car keeps its previous limit.

use super::{SimError, SimResult};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::{Json, Router};
use base64::Engine;
use evflex::domain::{format_rfc3339, parse_rfc3339};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A charging profile as received (OCPI 2.2.1 `ChargingProfile`, in W, or in A per phase).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `start_date_time` (Unix seconds).
    pub start_ts: i64,
    /// `duration` (s), when given.
    pub duration_s: Option<i64>,
    /// `(start_period s, limit)`, ascending, in the profile's unit.
    pub periods: Vec<(i64, f64)>,
    /// The limits are A per phase (`charging_rate_unit` `"A"`), else W.
    pub amps: bool,
}

impl Profile {
    /// Parses the `charging_profile` of a `SetChargingProfile` body.
    pub fn parse(body: &Value) -> Option<Self> {
        let p = body.get("charging_profile")?;
        let unit = p.get("charging_rate_unit").and_then(Value::as_str)?;
        let amps = match unit {
            "W" => false,
            "A" => true,
            _ => return None,
        };
        let start_ts = parse_rfc3339(p.get("start_date_time")?.as_str()?)?;
        let mut periods: Vec<(i64, f64)> = p
            .get("charging_profile_period")?
            .as_array()?
            .iter()
            .filter_map(|q| Some((q.get("start_period")?.as_i64()?, q.get("limit")?.as_f64()?)))
            .collect();
        periods.sort_by_key(|(s, _)| *s);
        Some(Self {
            start_ts,
            duration_s: p.get("duration").and_then(Value::as_i64),
            periods,
            amps,
        })
    }

    /// The limit in W at `ts` for a car drawing on `car_phases` phases (an amps limit is per
    /// phase at 230 V): see [`Self::limit_at`].
    pub fn limit_w_at(&self, ts: i64, car_phases: u8) -> f64 {
        let limit = self.limit_at(ts);
        if self.amps {
            limit * crate::scenario::PHASE_V * f64::from(car_phases.clamp(1, 3))
        } else {
            limit
        }
    }

    /// The limit (in the profile's unit) at `ts`: the last period started by then; 0 before the start and after
    /// the duration (the plan gives nothing there).
    pub fn limit_at(&self, ts: i64) -> f64 {
        let offset = ts - self.start_ts;
        if offset < 0 || self.duration_s.is_some_and(|d| offset >= d) {
            return 0.0;
        }
        self.periods
            .iter()
            .rev()
            .find(|(s, _)| *s <= offset)
            .map_or(0.0, |(_, w)| *w)
    }
}

/// What the CPO server received.
#[derive(Debug, Default)]
pub struct CpoInbox {
    /// Latest profile per OCPI session id.
    pub profiles: HashMap<String, Profile>,
    /// Profiles received per session id.
    pub received: HashMap<String, usize>,
    /// The `response_url` of each session's latest `ACCEPTED` profile: where the CPO posts its
    /// `ChargingProfileResult` once the charge point applied it (`crate::live`).
    pub result_urls: HashMap<String, String>,
    /// Requests refused for a wrong token.
    pub unauthorized: usize,
    /// Profile PUTs answered per `ChargingProfileResponse` result (`ACCEPTED`, `TOO_OFTEN`,
    /// `REJECTED`).
    pub answers: std::collections::BTreeMap<&'static str, usize>,
    /// When the first profile PUT for each session id arrived (wall clock), for the
    /// event-to-profile latency.
    pub first_put_at: HashMap<String, std::time::Instant>,
    /// Profile PUTs seen, for the throttle.
    puts: usize,
}

/// How the simulated CPO departs from "accept every profile".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// One in this many sessions sits at a charge point that cannot be smart-charged: every
    /// profile for it is `REJECTED` (0: none). The choice is a hash of the session id, so it is
    /// the same in every run.
    pub reject_one_in: u64,
    /// Every n-th profile PUT is answered `TOO_OFTEN` (0: never).
    pub too_often_every: usize,
}

impl Quirks {
    /// Accepts every profile.
    pub const NONE: Self = Self {
        reject_one_in: 0,
        too_often_every: 0,
    };
    /// The demo's CPO: one session in 12 at a charge point that rejects profiles, and every
    /// 9th profile PUT throttled.
    pub const DEMO: Self = Self {
        reject_one_in: 12,
        too_often_every: 9,
    };

    /// Whether every profile for `session_id` is rejected.
    pub fn rejects(&self, session_id: &str) -> bool {
        // FNV-1a: stable across runs and platforms (std's hasher is randomly seeded).
        let hash = session_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        self.reject_one_in > 0 && hash % self.reject_one_in == 0
    }
}

/// The running CPO server.
pub struct CpoServer {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Token B (evflex uses it to call us).
    pub token_b: String,
    /// What it received.
    pub inbox: Arc<Mutex<CpoInbox>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for CpoServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// `Token <base64>` (OCPI 2.2.1).
pub fn token_header(token: &str) -> String {
    format!(
        "Token {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    )
}

fn envelope(data: Value) -> Json<Value> {
    Json(json!({"data": data, "status_code": 1000,
        "timestamp": format_rfc3339(evflex::domain::unix_now())}))
}

#[derive(Clone)]
struct CpoState {
    base: String,
    token_b: String,
    inbox: Arc<Mutex<CpoInbox>>,
    quirks: Quirks,
}

fn authorized(state: &CpoState, headers: &HeaderMap) -> bool {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v == token_header(&state.token_b) || v == format!("Token {}", state.token_b)
        });
    if !ok {
        state
            .inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unauthorized += 1;
    }
    ok
}

fn unauthorized() -> (StatusCode, Json<Value>) {
    (
        StatusCode::UNAUTHORIZED,
        Json(
            json!({"status_code": 2000, "status_message": "unknown token",
            "timestamp": format_rfc3339(evflex::domain::unix_now())}),
        ),
    )
}

async fn versions(State(s): State<CpoState>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    (
        StatusCode::OK,
        envelope(json!([{"version": "2.2.1", "url": format!("{}/ocpi/2.2.1", s.base)}])),
    )
}

async fn details(State(s): State<CpoState>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let b = &s.base;
    (
        StatusCode::OK,
        envelope(json!({"version": "2.2.1", "endpoints": [
            {"identifier": "credentials", "role": "SENDER", "url": format!("{b}/ocpi/2.2.1/credentials")},
            {"identifier": "locations", "role": "SENDER", "url": format!("{b}/ocpi/2.2.1/locations")},
            {"identifier": "sessions", "role": "SENDER", "url": format!("{b}/ocpi/2.2.1/sessions")},
            {"identifier": "cdrs", "role": "SENDER", "url": format!("{b}/ocpi/2.2.1/cdrs")},
            {"identifier": "chargingprofiles", "role": "RECEIVER",
             "url": format!("{b}/ocpi/2.2.1/chargingprofiles")}
        ]})),
    )
}

async fn set_profile(
    State(s): State<CpoState>,
    headers: HeaderMap,
    Path(session_id): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let Some(profile) = Profile::parse(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"status_code": 2001, "status_message": "invalid charging_profile",
                "timestamp": format_rfc3339(evflex::domain::unix_now())}),
            ),
        );
    };
    let mut inbox = s.inbox.lock().unwrap_or_else(|p| p.into_inner());
    inbox.puts += 1;
    inbox
        .first_put_at
        .entry(session_id.clone())
        .or_insert_with(std::time::Instant::now);
    let result = if s.quirks.rejects(&session_id) {
        "REJECTED"
    } else if s.quirks.too_often_every > 0 && inbox.puts % s.quirks.too_often_every == 0 {
        "TOO_OFTEN"
    } else {
        "ACCEPTED"
    };
    *inbox.answers.entry(result).or_default() += 1;
    if result == "ACCEPTED" {
        *inbox.received.entry(session_id.clone()).or_default() += 1;
        match body.get("response_url").and_then(Value::as_str) {
            Some(url) => inbox.result_urls.insert(session_id.clone(), url.to_owned()),
            None => inbox.result_urls.remove(&session_id),
        };
        inbox.profiles.insert(session_id, profile);
    }
    (
        StatusCode::OK,
        envelope(json!({"result": result, "timeout": 30})),
    )
}

/// `DELETE chargingprofiles/{session_id}` (ClearProfile): the car may draw its maximum again.
async fn clear_profile(
    State(s): State<CpoState>,
    headers: HeaderMap,
    Path(session_id): Path<String>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let mut inbox = s.inbox.lock().unwrap_or_else(|p| p.into_inner());
    *inbox.received.entry(session_id.clone()).or_default() += 1;
    inbox.result_urls.remove(&session_id);
    inbox.profiles.remove(&session_id);
    (
        StatusCode::OK,
        envelope(json!({"result": "ACCEPTED", "timeout": 30})),
    )
}

/// Starts the CPO server with token B `token_b`, departing from "accept every profile" as
/// `quirks` say.
pub async fn spawn(token_b: &str, quirks: Quirks) -> SimResult<CpoServer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| SimError::Other(format!("binding the CPO server: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| SimError::Other(e.to_string()))?;
    let address = format!("http://{addr}");
    let inbox = Arc::new(Mutex::new(CpoInbox::default()));
    let state = CpoState {
        base: address.clone(),
        token_b: token_b.to_owned(),
        inbox: inbox.clone(),
        quirks,
    };
    let router = Router::new()
        .route("/ocpi/versions", get(versions))
        .route("/ocpi/2.2.1", get(details))
        .route(
            "/ocpi/2.2.1/chargingprofiles/{session_id}",
            put(set_profile).delete(clear_profile),
        )
        .with_state(state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Ok(CpoServer {
        address,
        token_b: token_b.to_owned(),
        inbox,
        stop: Some(tx),
    })
}

/// A client of evflex's HTTP API with one `Authorization` value.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client for `base` (`http://host:port`).
    pub fn new(base: &str) -> SimResult<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| SimError::Http {
                what: "building the HTTP client".to_owned(),
                source: e,
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends `method path` with `auth` and an optional JSON body; success (2xx, and OCPI status
    /// 1xxx where the answer is an OCPI envelope) gives the JSON body (`Null` when empty).
    ///
    /// While evflex cannot be reached (a restart) the call is retried with a short back-off for
    /// up to [`RETRY_FOR`]: always when the connection could not be made (nothing was sent),
    /// and after any transport failure for idempotent methods (GET, PUT, PATCH, DELETE).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> SimResult<Value> {
        let idempotent = matches!(
            method,
            reqwest::Method::GET
                | reqwest::Method::PUT
                | reqwest::Method::PATCH
                | reqwest::Method::DELETE
        );
        self.call_with(method, path, auth, body, idempotent).await
    }

    /// [`Client::call`] for a call the server treats as idempotent whatever its method (the
    /// operator's tick): retried after any transport failure.
    pub async fn call_idempotent(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
    ) -> SimResult<Value> {
        self.call_with(method, path, auth, body, true).await
    }

    async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<&str>,
        body: Option<&Value>,
        retry_any: bool,
    ) -> SimResult<Value> {
        let what = format!("{method} {path}");
        let deadline = std::time::Instant::now() + RETRY_FOR;
        let mut backoff = std::time::Duration::from_millis(50);
        loop {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let sent = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    resp.text().await.map(|text| (status, text))
                }
                Err(e) => Err(e),
            };
            let (status, text) = match sent {
                Ok(answer) => answer,
                Err(source) => {
                    let retry = source.is_connect() || (retry_any && !source.is_builder());
                    if retry && std::time::Instant::now() < deadline {
                        tracing::debug!(call = %what, error = %source, "sim: evflex unreachable, retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(std::time::Duration::from_millis(500));
                        continue;
                    }
                    return Err(SimError::Http { what, source });
                }
            };
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let ocpi_ok = value
                .get("status_code")
                .and_then(Value::as_i64)
                .is_none_or(|c| (1000..2000).contains(&c));
            return if (200..300).contains(&status) && ocpi_ok {
                Ok(value)
            } else {
                Err(SimError::Refused {
                    what,
                    status,
                    body: text.chars().take(500).collect(),
                })
            };
        }
    }
}

/// How long [`Client::call`] keeps retrying an unreachable evflex.
pub const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_limits_follow_the_periods() {
        let body = json!({"charging_profile": {"start_date_time": "2019-07-02T10:00:00Z",
            "duration": 2700, "charging_rate_unit": "W", "charging_profile_period": [
                {"start_period": 0, "limit": 11040.0}, {"start_period": 900, "limit": 0.0},
                {"start_period": 1800, "limit": 4000.0}]}});
        let p = Profile::parse(&body).unwrap();
        let t0 = parse_rfc3339("2019-07-02T10:00:00Z").unwrap();
        assert_eq!(p.limit_at(t0 - 1), 0.0);
        assert_eq!(p.limit_at(t0), 11_040.0);
        assert_eq!(p.limit_at(t0 + 900), 0.0);
        assert_eq!(p.limit_at(t0 + 2_000), 4_000.0);
        assert_eq!(p.limit_at(t0 + 2_700), 0.0);
        assert_eq!(p.limit_w_at(t0, 1), 11_040.0);
        // In A: per phase, times the phases the car draws on.
        let body = json!({"charging_profile": {"start_date_time": "2019-07-02T10:00:00Z",
            "charging_rate_unit": "A", "min_charging_rate": 6.0,
            "charging_profile_period": [{"start_period": 0, "limit": 16.0}]}});
        let p = Profile::parse(&body).unwrap();
        assert_eq!(p.limit_w_at(t0, 3), 11_040.0);
        assert_eq!(p.limit_w_at(t0, 1), 3_680.0);
    }
}
