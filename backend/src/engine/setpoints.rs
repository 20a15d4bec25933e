//! Set-points out: pending OCPI 2.2.1 `SetChargingProfile` requests are sent to each CPO's
//! `chargingprofiles` endpoint as `PUT {url}/{session_id}` with the CPO's token (token B),
//! retried with exponential back-off on network errors, 5xx and 429. The CPO's asynchronous
//! `ChargingProfileResult` arrives at our `response_url`
//! (`{public_url}/ocpi/2.2.1/chargingprofiles/{setpoint_id}`) and is stored with the set-point.
//!
//! A set-point's `status` follows the CPO's answers (the `ChargingProfileResponse` `result`,
//! then the asynchronous result): `sent` (the CPO took the request: `ACCEPTED`), `in_force`
//! (its result said `ACCEPTED`), `rejected` (`REJECTED`, `NOT_SUPPORTED` or `UNKNOWN_SESSION`,
//! or a result other than `ACCEPTED`: given up, the reason in `error`; the next tick's plan is
//! a new set-point), and `pending` again on `TOO_OFTEN`: not retried in this round, but at
//! the next one.
//!
//! Profiles of uncontrolled sessions (users who did not opt in) are queued by the tick, in the
//! group's transaction, only where the schedule curtails them (`engine::tick`); a set-point
//! whose profile is null clears the previous one: `DELETE {url}/{session_id}?response_url=…`
//! (ClearProfile), with the same answers as a `PUT`.

use super::Engine;
use crate::ingest::ocpi::credentials::authorization;
use crate::outbound::Outbound;
use crate::store::parties::{self, Party};
use crate::store::schedules::{self, StoredSetpoint};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// What one delivery round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// Accepted by the CPO's endpoint.
    pub sent: usize,
    /// Given up on (not delivered, or refused by the CPO).
    pub failed: usize,
    /// Of those, refused by the CPO (`REJECTED`, `NOT_SUPPORTED`, `UNKNOWN_SESSION`).
    pub rejected: usize,
    /// Answered `TOO_OFTEN`: left pending for the next round.
    pub deferred: usize,
    /// Extra attempts made.
    pub retries: usize,
}

/// The outcome of one OCPI call to a CPO.
pub(super) enum Attempt {
    /// Answered with an OCPI 1xxx status; the body.
    Sent(String),
    /// A network error, 5xx or 429: worth trying again later.
    Retry(String),
    /// Any other answer: trying again will not help.
    Fatal(String),
}

/// `PUT url` with `body` and the party's token, read as an OCPI response (`status_code`
/// 1000–1999 is success).
pub(super) async fn put_ocpi(
    http: &Outbound,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> Attempt {
    call_ocpi(http, reqwest::Method::PUT, url, token, Some(body)).await
}

/// `method url` (with `body`, if any) and the party's token, read as an OCPI response.
async fn call_ocpi(
    http: &Outbound,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> Attempt {
    let what = format!("{method} {url}");
    let request = match http.request(method, url) {
        Ok(r) => {
            let r = r.header("Authorization", authorization(token));
            match body {
                Some(b) => r.json(b),
                None => r,
            }
        }
        Err(e) => return Attempt::Fatal(e.to_string()),
    };
    let (status, text) = match http.send(&what, request).await {
        Ok((status, bytes)) => (status, String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => return Attempt::Retry(e.to_string()),
    };
    if status.is_success() {
        let ocpi_status = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("status_code").and_then(serde_json::Value::as_i64));
        match ocpi_status {
            Some(1000..=1999) => Attempt::Sent(text),
            Some(code) => Attempt::Fatal(format!("{what}: OCPI status {code}")),
            None => Attempt::Fatal(format!("{what}: not an OCPI response")),
        }
    } else if status.is_server_error() || status.as_u16() == 429 {
        Attempt::Retry(format!("{what}: HTTP {status}"))
    } else {
        Attempt::Fatal(format!("{what}: HTTP {status}"))
    }
}

/// Sends every pending set-point (one round, with retries); the "run one step" of delivery.
#[tracing::instrument(skip_all)]
pub async fn deliver_pending(engine: &Engine) -> DeliveryReport {
    let mut report = DeliveryReport::default();
    let (pending, parties) = match load(engine).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = ?e, "set-points: cannot read pending set-points");
            return report;
        }
    };
    let mut set = tokio::task::JoinSet::new();
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    for sp in pending {
        let party = sp
            .record
            .owner_party
            .and_then(|id| parties.get(&id).cloned());
        let engine = engine.clone();
        let limit = limit.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            deliver_one(&engine, sp, party).await
        });
    }
    while let Some(joined) = set.join_next().await {
        if let Ok((delivered, retries)) = joined {
            match delivered {
                Delivered::Sent => report.sent += 1,
                Delivered::Deferred => report.deferred += 1,
                Delivered::Rejected => {
                    report.failed += 1;
                    report.rejected += 1;
                }
                Delivered::Failed => report.failed += 1,
            }
            report.retries += retries;
        }
    }
    metrics::counter!("evflex_setpoints_total", "result" => "sent").increment(report.sent as u64);
    metrics::counter!("evflex_setpoints_total", "result" => "failed")
        .increment(report.failed as u64);
    report
}

async fn load(
    engine: &Engine,
) -> crate::store::StoreResult<(Vec<StoredSetpoint>, HashMap<i64, Party>)> {
    let mut conn = engine.db.conn().await?;
    let pending = schedules::pending(&mut conn, 10_000).await?;
    let mut parties = HashMap::new();
    for id in pending.iter().filter_map(|s| s.record.owner_party) {
        if let std::collections::hash_map::Entry::Vacant(e) = parties.entry(id)
            && let Some(p) = parties::get_party(&mut conn, id).await?
        {
            e.insert(p);
        }
    }
    Ok((pending, parties))
}

async fn deliver_one(
    engine: &Engine,
    sp: StoredSetpoint,
    party: Option<Party>,
) -> (Delivered, usize) {
    let mut attempts = sp.attempts;
    let outcome = match party
        .as_ref()
        .filter(|p| p.status == "registered")
        .and_then(|p| {
            p.endpoint("chargingprofiles", "RECEIVER")
                .map(|url| (url.to_owned(), p.token_b.clone()))
        }) {
        None => Attempt::Fatal("the CPO has no chargingprofiles endpoint".to_owned()),
        Some((base, token)) => {
            let url = format!("{}/{}", base.trim_end_matches('/'), sp.record.session_id);
            let response_url = format!(
                "{}/ocpi/2.2.1/chargingprofiles/{}",
                engine.public_url, sp.id
            );
            // A null profile clears the one evflex set (OCPI ClearProfile).
            let clear = sp.record.profile.is_null();
            let clear_url = format!("{url}?response_url={response_url}");
            let body = serde_json::json!({
                "charging_profile": sp.record.profile,
                "response_url": response_url,
            });
            let mut backoff = Duration::from_millis(engine.config.setpoint_backoff_ms);
            loop {
                attempts += 1;
                let result = if clear {
                    call_ocpi(
                        &engine.http,
                        reqwest::Method::DELETE,
                        &clear_url,
                        &token,
                        None,
                    )
                    .await
                } else {
                    put_ocpi(&engine.http, &url, &token, &body).await
                };
                match result {
                    Attempt::Retry(e) if attempts < i64::from(engine.config.setpoint_attempts) => {
                        tracing::debug!(setpoint = sp.id, error = %e, "set-point: retrying");
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                    other => break other,
                }
            }
        }
    };
    let retries = (attempts - sp.attempts - 1).max(0) as usize;
    let now = engine.clock.now();
    let refused;
    let (delivered, status, response, error) = match &outcome {
        Attempt::Sent(body) => match answer_of(body) {
            Answer::Accepted => (Delivered::Sent, "sent", Some(body.as_str()), None),
            Answer::TooOften => {
                refused = "the CPO answered TOO_OFTEN: sent again at the next round".to_owned();
                (
                    Delivered::Deferred,
                    "pending",
                    Some(body.as_str()),
                    Some(refused.as_str()),
                )
            }
            Answer::Refused(result) => {
                refused = format!("the CPO answered {result}");
                (
                    Delivered::Rejected,
                    "rejected",
                    Some(body.as_str()),
                    Some(refused.as_str()),
                )
            }
        },
        Attempt::Retry(e) | Attempt::Fatal(e) => {
            (Delivered::Failed, "failed", None, Some(e.as_str()))
        }
    };
    if let Some(e) = error {
        tracing::warn!(setpoint = sp.id, session = %sp.record.session_id, error = %e, "set-point failed");
    }
    if let Ok(mut conn) = engine.db.conn().await
        && let Err(e) =
            schedules::record_attempt(&mut conn, sp.id, status, attempts, response, error, now)
                .await
    {
        tracing::error!(error = ?e, setpoint = sp.id, "set-point: cannot record attempt");
    }
    (delivered, retries)
}

/// How one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivered {
    Sent,
    Deferred,
    Rejected,
    Failed,
}

/// The CPO's `ChargingProfileResponse`, as far as delivery cares.
enum Answer {
    Accepted,
    TooOften,
    Refused(String),
}

/// Reads `data.result` of the CPO's answer; an answer without one counts as accepted (the OCPI
/// envelope said success).
fn answer_of(body: &str) -> Answer {
    let result = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["data"]["result"].as_str().map(str::to_owned));
    match result.as_deref() {
        None | Some("ACCEPTED") => Answer::Accepted,
        Some("TOO_OFTEN") => Answer::TooOften,
        Some(other) => Answer::Refused(other.chars().take(40).collect()),
    }
}
