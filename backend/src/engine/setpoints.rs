//! Set-points out: pending OCPI 2.2.1 `SetChargingProfile` requests are sent to each CPO's
//! `chargingprofiles` endpoint as `PUT {url}/{session_id}` with the CPO's token (token B),
//! retried with exponential back-off on network errors, 5xx and 429. The CPO's asynchronous
//! `ChargingProfileResult` arrives at our `response_url`
//! (`{public_url}/ocpi/{version}/chargingprofiles/{setpoint_id}`, in the party's version) and is stored with the set-point.
//!
//! A set-point's `status` follows the CPO's answers (the `ChargingProfileResponse` `result`,
//! then the asynchronous result): `sent` (the CPO took the request: `ACCEPTED`), `in_force`
//! (its result said `ACCEPTED`), `rejected` (`REJECTED` or `NOT_SUPPORTED`, or a result other
//! than `ACCEPTED`: given up, the reason in `error`; the next tick's plan is a new set-point),
//! and `pending` again on `TOO_OFTEN`, backing off: not sent before 60 s, doubling with each
//! `TOO_OFTEN` up to an hour (`not_before`; a newer set-point of the session inherits the
//! back-off, so re-planning does not flood a CPO that asked for less). `UNKNOWN_SESSION` is
//! tried three times with the same back-off (the CPO's session PUT and our profile may have
//! crossed), then given up. A wait ends within a second of `not_before` (the re-plan worker's
//! poll): the set-point goes out then if it is still its group's plan, else its group is
//! re-planned first ([`end_waits`]), since the plans made while it waited counted the car at
//! its measured draw.
//!
//! Profiles of uncontrolled sessions (users who did not opt in) are queued by the tick, in the
//! group's transaction, only where the schedule curtails them (`engine::tick`); a set-point
//! whose profile is null clears the previous one: `DELETE {url}/{session_id}?response_url=…`
//! (ClearProfile), with the same answers as a `PUT`.
//!
//! **Only changes are sent** (issue 15: a CPO is not flooded with a fresh 24-hour profile per
//! car at every tick): a new set-point whose profile says what the profile the CPO confirmed
//! in force already says ([`unchanged`]) is stored as `unchanged` and not sent. A profile is
//! sent again when a limit falls at all (the plan gave the watts it takes away to other cars,
//! so a limit left a little high would put the group over its capacity), rises by more than
//! [`UNCHANGED_W`] (any change of an amps limit),
//! when its unit or minimum changes, when the one in force was not confirmed (`sent` without a
//! result, or refused), or when the one in force would end within [`REFRESH_BEFORE_END_S`] of
//! the new one's end (so a profile never runs out while the car is still planned).

use super::Engine;
use crate::ingest::ocpi::credentials::authorization;
use crate::ingest::ocpi::model::{ActiveChargingProfile, ChargingRateUnit};
use crate::ingest::ocpi::version::OcpiVersion;
use crate::outbound::{Outbound, Route};
use crate::store::active_profiles;
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
    /// Profiles in force asked for (GET ActiveChargingProfile), because a result was overdue.
    pub active_queries: usize,
}

impl DeliveryReport {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Self) {
        self.sent += other.sent;
        self.failed += other.failed;
        self.rejected += other.rejected;
        self.deferred += other.deferred;
        self.retries += other.retries;
        self.active_queries += other.active_queries;
    }
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
    route: Route<'_>,
    body: &serde_json::Value,
) -> Attempt {
    call_ocpi(http, reqwest::Method::PUT, url, token, route, Some(body)).await
}

/// `method url` (with `body`, if any) and the party's token, read as an OCPI response.
async fn call_ocpi(
    http: &Outbound,
    method: reqwest::Method,
    url: &str,
    token: &str,
    route: Route<'_>,
    body: Option<&serde_json::Value>,
) -> Attempt {
    let what = format!("{method} {url}");
    let request = match http.request(method, url) {
        Ok(r) => {
            let r = route.apply(r.header("Authorization", authorization(token)));
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
    deliver(engine, None).await
}

/// Sends the pending set-points of one group (a re-plan's, right after its commit).
pub async fn deliver_pending_of(engine: &Engine, group_id: i64) -> DeliveryReport {
    deliver(engine, Some(group_id)).await
}

async fn deliver(engine: &Engine, group_id: Option<i64>) -> DeliveryReport {
    let mut report = DeliveryReport::default();
    let (pending, parties) = match load(engine, group_id).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = ?e, "set-points: cannot read pending set-points");
            return report;
        }
    };
    let mut set = tokio::task::JoinSet::new();
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    for Pending { sp, to } in pending {
        let party = sp
            .record
            .owner_party
            .and_then(|id| parties.get(&id).cloned());
        let engine = engine.clone();
        let limit = limit.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            deliver_one(&engine, sp, party, to).await
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
    // Overdue results are asked for in the rounds over every group (the tick's), not in each
    // re-plan's.
    if group_id.is_none() {
        report.active_queries = query_overdue(engine).await;
    }
    metrics::counter!("evflex_setpoints_total", "result" => "sent").increment(report.sent as u64);
    metrics::counter!("evflex_setpoints_total", "result" => "failed")
        .increment(report.failed as u64);
    report
}

/// Pending set-points, the parties they go to, and the party codes of each one's session (the
/// `OCPI-to-*` of its call: the CPO itself, or the CPO behind a hub).
async fn load(
    engine: &Engine,
    group_id: Option<i64>,
) -> crate::store::StoreResult<(Vec<Pending>, HashMap<i64, Party>)> {
    let mut conn = engine.db.conn().await?;
    let now = engine.clock.now();
    let setpoints = match group_id {
        Some(g) => schedules::pending_of_group(&mut conn, g, now, 10_000).await?,
        None => schedules::pending(&mut conn, now, 10_000).await?,
    };
    let mut pending = Vec::with_capacity(setpoints.len());
    for sp in setpoints {
        let to = crate::store::sessions::get_by_row(&mut conn, sp.record.session_row)
            .await?
            .map(|s| (s.record.country_code, s.record.party_id));
        pending.push(Pending { sp, to });
    }
    let mut parties = HashMap::new();
    for id in pending.iter().filter_map(|p| p.sp.record.owner_party) {
        if let std::collections::hash_map::Entry::Vacant(e) = parties.entry(id)
            && let Some(p) = parties::get_party(&mut conn, id).await?
        {
            e.insert(p);
        }
    }
    Ok((pending, parties))
}

/// Ends the `TOO_OFTEN` or `UNKNOWN_SESSION` waits that are over.
///
/// While a set-point waits, its charge point is out of control (`standing`) and every plan of
/// its group counts the car at its measured draw (or the limit its CPO took) and gives the
/// others the rest. Sent as it was planned, before those plans, it could let the car take watts
/// they have since given to the others (a throttled rise put the demo's groups up to 5 kW over
/// capacity for minutes, until the next event). So:
/// - no plan of its group since its own: it is still the plan, and it is sent now;
/// - plans since, all made while it waited: its group is re-planned (the delivery rounds leave
///   it out, `schedules::pending`); the re-plan's fresh set-point for the car supersedes it,
///   keeping its back-off, and goes out;
/// - a plan since made after its wait ended gave the car no set-point (the session ended, or
///   is out of control for another reason): superseded, never sent.
///
/// The re-plan worker runs this at the start of every round, so a wait ends within a poll on a
/// real clock, not at the next tick.
pub async fn end_waits(engine: &Engine) {
    if let Err(e) = try_end_waits(engine).await {
        tracing::error!(error = ?e, "set-points: cannot end the waits that are over");
    }
}

async fn try_end_waits(engine: &Engine) -> crate::store::StoreResult<()> {
    let now = engine.clock.now();
    let mut conn = engine.db.conn().await?;
    let waited = schedules::waited(&mut conn, now).await?;
    if waited.is_empty() {
        return Ok(());
    }
    let mut due = std::collections::BTreeSet::new();
    let mut replan = std::collections::BTreeSet::new();
    let mut dropped = Vec::new();
    for w in waited {
        match w.newer_plan_at {
            None => {
                due.insert(w.group_id);
            }
            Some(at) if at < w.not_before => {
                replan.insert(w.group_id);
            }
            Some(_) => dropped.push(w.id),
        }
    }
    schedules::supersede(&mut conn, &dropped, now).await?;
    drop(conn);
    for group_id in replan {
        super::replan::request_or_log(engine, group_id, "wait ended").await;
    }
    for group_id in due {
        deliver_pending_of(engine, group_id).await;
    }
    Ok(())
}

/// A pending set-point and the party codes of its session.
struct Pending {
    sp: StoredSetpoint,
    to: Option<(String, String)>,
}

async fn deliver_one(
    engine: &Engine,
    sp: StoredSetpoint,
    party: Option<Party>,
    to: Option<(String, String)>,
) -> (Delivered, usize) {
    let mut attempts = sp.attempts;
    let outcome = match party
        .as_ref()
        .filter(|p| p.status == "registered")
        .and_then(|p| {
            p.endpoint("chargingprofiles", "RECEIVER").map(|url| {
                let codes = (p.country_code.clone(), p.party_id.clone());
                let version = OcpiVersion::of_party(p.version.as_deref());
                (url.to_owned(), p.token_b.clone(), codes, version)
            })
        }) {
        None => Attempt::Fatal("the CPO has no chargingprofiles endpoint".to_owned()),
        Some((base, token, party_codes, version)) => {
            let to = to.unwrap_or(party_codes);
            let identity = &engine.identity;
            let route = Route {
                from: (&identity.country_code, &identity.party_id),
                to: (&to.0, &to.1),
            };
            let url = format!("{}/{}", base.trim_end_matches('/'), sp.record.session_id);
            let response_url = format!(
                "{}/ocpi/{version}/chargingprofiles/{}",
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
                        route,
                        None,
                    )
                    .await
                } else {
                    put_ocpi(&engine.http, &url, &token, route, &body).await
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
    let wait = |why: &str| {
        let delay = back_off_s(sp.deferrals);
        (
            now + delay,
            format!("the CPO answered {why}: sent again in {delay} s at the earliest"),
        )
    };
    let (delivered, status, response, error) = match &outcome {
        Attempt::Sent(body) => match answer_of(body) {
            Answer::Accepted => (Delivered::Sent, "sent", Some(body.as_str()), None),
            answer @ (Answer::TooOften | Answer::UnknownSession)
                if answer == Answer::TooOften || sp.deferrals + 1 < UNKNOWN_SESSION_TRIES =>
            {
                let (not_before, error) = wait(answer.name());
                tracing::info!(setpoint = sp.id, session = %sp.record.session_id, %error, "set-point deferred");
                let deferred = match engine.db.conn().await {
                    Ok(mut conn) => {
                        schedules::defer(&mut conn, sp.id, attempts, not_before, body, &error, now)
                            .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = deferred {
                    tracing::error!(error = ?e, setpoint = sp.id, "set-point: cannot record deferral");
                }
                // Until it is sent again the profile is not in force (`standing`): plan the
                // charge point at its measured or full draw and give the others the rest at
                // once. (A throttled first profile let an arriving car overload its group for
                // up to 330 s in the demo, until the next event.)
                super::replan::request_or_log(engine, sp.record.group_id, "deferred").await;
                return (Delivered::Deferred, retries);
            }
            answer @ (Answer::TooOften | Answer::UnknownSession) => {
                refused = format!(
                    "the CPO answered {} {UNKNOWN_SESSION_TRIES} times: given up",
                    answer.name()
                );
                (
                    Delivered::Rejected,
                    "rejected",
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
    if delivered == Delivered::Rejected {
        // The charge point now draws what it wants: plan it at its measured or full draw and
        // give the others the rest at once (issue 15), not at the next tick.
        super::replan::request_or_log(engine, sp.record.group_id, "rejected").await;
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
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Accepted,
    TooOften,
    UnknownSession,
    Refused(String),
}

impl Answer {
    /// The OCPI `ChargingProfileResponseType`.
    fn name(&self) -> &str {
        match self {
            Self::Accepted => "ACCEPTED",
            Self::TooOften => "TOO_OFTEN",
            Self::UnknownSession => "UNKNOWN_SESSION",
            Self::Refused(other) => other,
        }
    }
}

/// How often `UNKNOWN_SESSION` is tried before evflex gives up: the CPO may learn of a session
/// a moment after evflex planned it (its session PUT and our profile crossed), but not later.
const UNKNOWN_SESSION_TRIES: i64 = 3;

/// First wait after a `TOO_OFTEN` or `UNKNOWN_SESSION` (s); it doubles with each one, up to
/// [`MAX_BACK_OFF_S`].
const FIRST_BACK_OFF_S: i64 = 60;
/// Longest wait between two tries of one session's profile (s).
const MAX_BACK_OFF_S: i64 = 3_600;

/// The wait after the CPO asked to wait `deferrals` times already.
fn back_off_s(deferrals: i64) -> i64 {
    FIRST_BACK_OFF_S
        .saturating_mul(1_i64 << deferrals.clamp(0, 20))
        .min(MAX_BACK_OFF_S)
}

/// The `ChargingProfileResponse` of the CPO's answer: its `data`, or the one item of a `data`
/// list (some implementations, e.g. Python's extrawest-ocpi, wrap every answer in a list).
fn response_of(body: &str) -> Option<serde_json::Value> {
    let v = serde_json::from_str::<serde_json::Value>(body).ok()?;
    match v.get("data")? {
        serde_json::Value::Array(items) if items.len() == 1 => items.first().cloned(),
        data => Some(data.clone()),
    }
}

/// Reads `data.result` of the CPO's answer; an answer without one counts as accepted (the OCPI
/// envelope said success).
fn answer_of(body: &str) -> Answer {
    let result = response_of(body).and_then(|d| d["result"].as_str().map(str::to_owned));
    match result.as_deref() {
        None | Some("ACCEPTED") => Answer::Accepted,
        Some("TOO_OFTEN") => Answer::TooOften,
        Some("UNKNOWN_SESSION") => Answer::UnknownSession,
        Some(other) => Answer::Refused(other.chars().take(40).collect()),
    }
}

/// Limits of a new profile at most this far above the profile in force are not worth a new
/// `PUT` (W): the car gets a little less than planned, which no limit minds. A limit that
/// falls is always sent. Amps limits are whole steps: any change is sent.
pub const UNCHANGED_W: f64 = 100.0;
/// A profile in force that ends more than this before the new one's end is refreshed (s).
pub const REFRESH_BEFORE_END_S: i64 = 4 * 3_600;

/// An OCPI `ChargingProfile` read back from its JSON: when it runs and its limits.
struct Limits {
    start: i64,
    end: i64,
    amps: bool,
    min: Option<f64>,
    /// `(instant, limit)`, ascending.
    periods: Vec<(i64, f64)>,
}

impl Limits {
    fn of(profile: &serde_json::Value) -> Option<Self> {
        let start = crate::domain::parse_rfc3339(profile["start_date_time"].as_str()?)?;
        let mut periods: Vec<(i64, f64)> = profile["charging_profile_period"]
            .as_array()?
            .iter()
            .map(|p| Some((start + p["start_period"].as_i64()?, p["limit"].as_f64()?)))
            .collect::<Option<_>>()?;
        periods.sort_by_key(|(t, _)| *t);
        Some(Self {
            start,
            end: start + profile["duration"].as_i64()?,
            amps: profile["charging_rate_unit"].as_str()? == "A",
            min: profile["min_charging_rate"].as_f64(),
            periods,
        })
    }

    fn at(&self, ts: i64) -> f64 {
        self.periods
            .iter()
            .rev()
            .find(|(t, _)| *t <= ts)
            .map_or(0.0, |(_, l)| *l)
    }
}

/// Whether a `new` profile says what the profile `in_force` says from the new one's start on,
/// no lower anywhere and at most [`UNCHANGED_W`] higher (module docs: only changes are sent).
pub fn unchanged(in_force: &serde_json::Value, new: &serde_json::Value) -> bool {
    let (Some(old), Some(new)) = (Limits::of(in_force), Limits::of(new)) else {
        return false;
    };
    if old.amps != new.amps
        || old.min != new.min
        || new.start < old.start
        || old.end < new.end - REFRESH_BEFORE_END_S
    {
        return false;
    }
    let tolerance = if new.amps { 1e-9 } else { UNCHANGED_W };
    let until = old.end.min(new.end);
    std::iter::once(new.start)
        .chain(old.periods.iter().chain(&new.periods).map(|(t, _)| *t))
        .filter(|t| (new.start..until).contains(t))
        .all(|t| {
            let rise = new.at(t) - old.at(t);
            (0.0..=tolerance).contains(&rise) || rise.abs() <= 1e-9
        })
}

/// The highest limit a profile sets between `from` and `until` (W; a limit in A is per phase, on
/// `phases` phases at 230 V); `None` when the profile does not read or is not running then.
pub fn highest_limit_w(
    profile: &serde_json::Value,
    from: i64,
    until: i64,
    phases: i64,
) -> Option<i64> {
    let limits = Limits::of(profile)?;
    let (from, until) = (from.max(limits.start), until.min(limits.end));
    if from >= until {
        return None;
    }
    let highest = std::iter::once(from)
        .chain(limits.periods.iter().map(|(t, _)| *t))
        .filter(|t| (from..until).contains(t))
        .map(|t| limits.at(t))
        .fold(0.0_f64, f64::max);
    let w = if limits.amps {
        highest * 230.0 * phases.max(1) as f64
    } else {
        highest
    };
    Some(w.round() as i64)
}

/// Until when a session whose last profile is `last` stays out of control for a reason that
/// passes ([`Standing::NotInForce`]): the end of the CPO's wait, or one timestep after a
/// failed delivery.
pub fn out_of_control_until(last: &schedules::ProfileState) -> i64 {
    match last.status.as_str() {
        "pending" => last.not_before,
        _ => last.updated_at + i64::from(crate::domain::TIME_STEP_S),
    }
}

/// Where a session's last profile stands, for the planner and the cockpit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// No profile yet, or one the CPO took: `pending` (due), `sent` (even past its result's
    /// timeout), `in_force`, `superseded`. The planner controls the charge point.
    Controlled,
    /// The CPO will not take profiles for this session (`REJECTED`, `NOT_SUPPORTED`, or
    /// `UNKNOWN_SESSION` given up): planned at its measured draw for the rest of the session.
    GivenUp(String),
    /// The last profile is not in force for now (the CPO could not be reached, its result did
    /// not come in time, or it asked to wait): planned at its measured draw until the cause
    /// passes (see [`standing`]).
    NotInForce(String),
}

/// How long a CPO may take to post the result of a profile it took, beyond the `timeout` it
/// gave in its answer (s), and the wait assumed when it gave none.
pub const RESULT_GRACE_S: i64 = 60;
/// The wait for a result when the answer named no `timeout` (s).
pub const DEFAULT_RESULT_TIMEOUT_S: i64 = 300;

/// When the result of a profile sent at `sent_at` with answer `response` is overdue.
pub fn result_due_by(sent_at: i64, response: Option<&str>) -> i64 {
    let timeout = response
        .and_then(response_of)
        .and_then(|d| d["timeout"].as_i64())
        .filter(|t| (0..=86_400).contains(t))
        .unwrap_or(DEFAULT_RESULT_TIMEOUT_S);
    sent_at + timeout + RESULT_GRACE_S
}

fn sent_at(state: &schedules::ProfileState) -> i64 {
    state.sent_at.unwrap_or(state.updated_at)
}

/// Whether a profile that was `sent` waits for its result past the time it was due.
pub fn timed_out(state: &schedules::ProfileState, now: i64) -> bool {
    state.status == "sent" && now > result_due_by(sent_at(state), state.response.as_deref())
}

/// Where the session whose last profile is `last` stands at `now`.
///
/// Rule: a refusal for the session (`rejected`) is final; a failure to deliver (`failed`) takes
/// the charge point out of control for one timestep, after which the next plan sends it a new
/// profile; a `TOO_OFTEN` (or early `UNKNOWN_SESSION`) keeps it out until the back-off ends. A
/// profile the CPO took whose result is overdue ([`timed_out`]) stays controlled: the CPO
/// accepted the request, evflex asks it for the profile in force (`query_overdue`), and the
/// cockpit shows it as timed out.
pub fn standing(last: Option<&schedules::ProfileState>, now: i64) -> Standing {
    let Some(state) = last else {
        return Standing::Controlled;
    };
    let reason = || state.error.clone().unwrap_or_else(|| state.status.clone());
    let recent = now - state.updated_at < i64::from(crate::domain::TIME_STEP_S);
    match state.status.as_str() {
        "rejected" => Standing::GivenUp(reason()),
        "failed" if recent => Standing::NotInForce(reason()),
        "pending" if state.not_before > now => Standing::NotInForce(reason()),
        _ => Standing::Controlled,
    }
}

/// Asks the CPO, once per set-point, for the profile in force (OCPI `GET
/// {chargingprofiles}/{session_id}?duration=…&response_url=…`) where it took a set-point but
/// its result is overdue. The answer comes to the `response_url` as an
/// `ActiveChargingProfileResult` ([`record_active`]). Returns how many were asked.
async fn query_overdue(engine: &Engine) -> usize {
    let now = engine.clock.now();
    let overdue: Vec<(StoredSetpoint, Party)> = match async {
        let mut conn = engine.db.conn().await?;
        let mut overdue = Vec::new();
        for (sp, sent_at) in schedules::sent_unqueried(&mut conn, 1_000).await? {
            let sent_at = sent_at.unwrap_or(0);
            if now <= result_due_by(sent_at, sp.response.as_deref()) {
                continue;
            }
            if let Some(party) = match sp.record.owner_party {
                Some(id) => parties::get_party(&mut conn, id).await?,
                None => None,
            } {
                overdue.push((sp, party));
            }
        }
        Ok::<_, crate::store::StoreError>(overdue)
    }
    .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = ?e, "set-points: cannot read overdue results");
            return 0;
        }
    };
    let mut asked = 0;
    for (sp, party) in overdue {
        let Some(base) = party.endpoint("chargingprofiles", "RECEIVER") else {
            continue;
        };
        let response_url = format!(
            "{}/ocpi/{}/chargingprofiles/{}/active",
            engine.public_url,
            OcpiVersion::of_party(party.version.as_deref()),
            sp.id
        );
        let url = format!(
            "{}/{}?duration={}&response_url={response_url}",
            base.trim_end_matches('/'),
            sp.record.session_id,
            crate::domain::TIME_STEP_S
        );
        let identity = &engine.identity;
        let route = Route {
            from: (&identity.country_code, &identity.party_id),
            to: (&party.country_code, &party.party_id),
        };
        let outcome = call_ocpi(
            &engine.http,
            reqwest::Method::GET,
            &url,
            &party.token_b,
            route,
            None,
        )
        .await;
        match outcome {
            Attempt::Sent(body) => {
                if let Answer::Accepted = answer_of(&body) {
                    asked += 1;
                } else {
                    tracing::info!(setpoint = sp.id, answer = %body, "active profile: the CPO declined the GET");
                }
            }
            Attempt::Retry(e) | Attempt::Fatal(e) => {
                tracing::info!(setpoint = sp.id, error = %e, "active profile: GET failed");
            }
        }
        if let Ok(mut conn) = engine.db.conn().await
            && let Err(e) = schedules::mark_active_queried(&mut conn, sp.id, now).await
        {
            tracing::error!(error = ?e, setpoint = sp.id, "active profile: cannot record the GET");
        }
    }
    asked
}

/// The tolerance of a limit in force against the set-point it should be (W).
const IN_FORCE_TOLERANCE_W: i64 = 100;

/// A profile in force the CPO reported for `session_row` (its `PUT`, or the result of our
/// `GET`): stored, and where its limit now is at most the session's newest set-point (which the
/// CPO took), that set-point is `in_force`. Limits in A are per phase: W = A × 230 V × phases
/// of the EVSE (one when unknown). Returns whether a set-point was confirmed.
pub async fn record_active(
    conn: &mut crate::store::Conn,
    session_row: i64,
    owner_party: i64,
    active: &ActiveChargingProfile,
    body: &serde_json::Value,
    source: active_profiles::Source,
    now: i64,
) -> crate::store::StoreResult<bool> {
    let unit = active.charging_profile.charging_rate_unit;
    let limit = active.limit_at(now);
    active_profiles::put(
        conn,
        session_row,
        owner_party,
        body,
        limit,
        unit.as_str(),
        source,
        now,
    )
    .await?;
    let Some(limit) = limit else {
        return Ok(false);
    };
    let limit_w = match unit {
        ChargingRateUnit::W => limit,
        ChargingRateUnit::A => {
            let phases = match crate::store::sessions::get_by_row(conn, session_row).await? {
                Some(s) => crate::store::locations::get_evse(
                    conn,
                    &s.record.country_code,
                    &s.record.party_id,
                    &s.record.evse_uid,
                )
                .await?
                .and_then(|e| e.record.phases),
                None => None,
            };
            limit * 230.0 * phases.unwrap_or(1) as f64
        }
    };
    schedules::confirm_in_force(
        conn,
        session_row,
        limit_w.round() as i64,
        IN_FORCE_TOLERANCE_W,
        now,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpos_answer_is_read_from_data_or_its_one_item_list() {
        let answer = |data: &str| {
            answer_of(&format!(
                r#"{{"status_code": 1000, "timestamp": "2024-05-01T10:00:00Z", "data": {data}}}"#
            ))
        };
        assert_eq!(
            answer(r#"{"result": "ACCEPTED", "timeout": 30}"#),
            Answer::Accepted
        );
        assert_eq!(
            answer(r#"[{"result": "REJECTED", "timeout": 30}]"#),
            Answer::Refused("REJECTED".into())
        );
        assert_eq!(answer(r#"[{"result": "TOO_OFTEN"}]"#), Answer::TooOften);
        assert_eq!(
            answer(r#"{"result": "UNKNOWN_SESSION"}"#),
            Answer::UnknownSession
        );
        assert_eq!(answer("null"), Answer::Accepted);
        let list = r#"{"status_code": 1000, "timestamp": "t", "data": [{"result": "ACCEPTED", "timeout": 90}]}"#;
        assert_eq!(
            result_due_by(1_000, Some(list)),
            1_000 + 90 + RESULT_GRACE_S
        );
        assert_eq!(
            result_due_by(1_000, None),
            1_000 + DEFAULT_RESULT_TIMEOUT_S + RESULT_GRACE_S
        );
    }

    #[test]
    fn the_highest_limit_is_read_over_a_window() {
        use serde_json::json;
        // From 10:00: 4 kW, 11 kW from 10:15, 2 kW from 10:30, for an hour.
        let watts = json!({"start_date_time": "2024-05-01T10:00:00Z", "duration": 3_600,
            "charging_rate_unit": "W", "charging_profile_period": [
                {"start_period": 0, "limit": 4000.0}, {"start_period": 900, "limit": 11000.0},
                {"start_period": 1800, "limit": 2000.0}]});
        let ten = 1_714_557_600;
        assert_eq!(highest_limit_w(&watts, ten + 60, ten + 120, 3), Some(4_000));
        // A wait that runs past 10:15 meets the rise.
        assert_eq!(
            highest_limit_w(&watts, ten + 60, ten + 960, 3),
            Some(11_000)
        );
        assert_eq!(
            highest_limit_w(&watts, ten + 1_800, ten + 7_200, 3),
            Some(2_000)
        );
        assert_eq!(
            highest_limit_w(&watts, ten + 3_600, ten + 7_200, 3),
            None,
            "ended"
        );
        // Amps are per phase.
        let amps = json!({"start_date_time": "2024-05-01T10:00:00Z", "duration": 3_600,
            "charging_rate_unit": "A", "charging_profile_period": [
                {"start_period": 0, "limit": 10.0}]});
        assert_eq!(highest_limit_w(&amps, ten, ten + 60, 3), Some(6_900));
        assert_eq!(
            highest_limit_w(&serde_json::Value::Null, ten, ten + 60, 3),
            None
        );
    }

    #[test]
    fn a_profile_saying_what_the_one_in_force_says_is_unchanged() {
        use serde_json::json;
        let profile = |start: &str, duration: i64, unit: &str, periods: serde_json::Value| {
            json!({"start_date_time": start, "duration": duration, "charging_rate_unit": unit,
                   "charging_profile_period": periods})
        };
        let day = 86_400;
        // Sent at 10:00: 11 kW until 11:00, then 4 kW.
        let in_force = profile(
            "2024-05-01T10:00:00Z",
            day,
            "W",
            json!([{"start_period": 0, "limit": 11040.0}, {"start_period": 3600, "limit": 4000.0}]),
        );
        // At 10:15 the plan says the same from 10:15 on (at most 100 W more): not sent.
        let same = profile(
            "2024-05-01T10:15:00Z",
            day,
            "W",
            json!([{"start_period": 0, "limit": 11040.0}, {"start_period": 2700, "limit": 4080.0}]),
        );
        assert!(unchanged(&in_force, &same));
        // A limit 40 W lower is sent: the plan gave those watts to another car, and the one in
        // force would put the group 40 W over its capacity.
        let lower = profile(
            "2024-05-01T10:15:00Z",
            day,
            "W",
            json!([{"start_period": 0, "limit": 11000.0}, {"start_period": 2700, "limit": 4000.0}]),
        );
        assert!(!unchanged(&in_force, &lower));
        // A step that moves by more than 100 W, or moves in time, is sent.
        let more = profile(
            "2024-05-01T10:15:00Z",
            day,
            "W",
            json!([{"start_period": 0, "limit": 11040.0}, {"start_period": 2700, "limit": 4200.0}]),
        );
        assert!(!unchanged(&in_force, &more));
        let earlier = profile(
            "2024-05-01T10:15:00Z",
            day,
            "W",
            json!([{"start_period": 0, "limit": 11040.0}, {"start_period": 1800, "limit": 4000.0}]),
        );
        assert!(!unchanged(&in_force, &earlier));
        // Another unit is a change; so is a profile in force that would run out first.
        let amps = profile(
            "2024-05-01T10:15:00Z",
            day,
            "A",
            json!([{"start_period": 0, "limit": 16.0}]),
        );
        assert!(!unchanged(&in_force, &amps));
        let late = profile(
            "2024-05-01T14:15:00Z",
            day,
            "W",
            json!([{"start_period": 0, "limit": 4000.0}]),
        );
        assert!(!unchanged(&in_force, &late));
        // Amps: any change of a whole step is sent.
        let a16 = profile(
            "2024-05-01T10:00:00Z",
            day,
            "A",
            json!([{"start_period": 0, "limit": 16.0}]),
        );
        let a15 = profile(
            "2024-05-01T10:15:00Z",
            day,
            "A",
            json!([{"start_period": 0, "limit": 15.0}]),
        );
        let a16_later = profile(
            "2024-05-01T10:15:00Z",
            day,
            "A",
            json!([{"start_period": 0, "limit": 16.0}]),
        );
        assert!(!unchanged(&a16, &a15));
        assert!(unchanged(&a16, &a16_later));
        // A clear (null) or malformed profile is never "unchanged".
        assert!(!unchanged(&in_force, &serde_json::Value::Null));
    }

    #[test]
    fn too_often_backs_off_doubling_up_to_an_hour() {
        assert_eq!(back_off_s(0), 60);
        assert_eq!(back_off_s(1), 120);
        assert_eq!(back_off_s(5), 1_920);
        assert_eq!(back_off_s(6), MAX_BACK_OFF_S);
        assert_eq!(back_off_s(1_000), MAX_BACK_OFF_S);
    }
}
