//! Sync after downtime: evflex pulls what a CPO pushed while evflex could not take it.
//!
//! OCPI pushes are fire-and-forget for the CPO: an update it sent while evflex was down, or
//! that never reached evflex, is gone from the push channel. The CPO still has the objects, in
//! its sender interfaces. So [`pull_all`] asks every registered party that offers them for its
//! Locations, Sessions and CDRs (`GET {sender}?date_from=…&limit=…`), follows the `Link` header
//! page by page (OCPI pagination), and feeds each object through the same receiver functions a
//! push goes through (same validation, same tenancy check, same idempotency):
//!
//! - a Location is a whole-object `PUT`;
//! - a Session is a `PUT`, unless evflex already has the same session with a `last_updated` at
//!   least as new (a PATCH may have come in after the CPO's sender page was read);
//! - a CDR is a `POST` (a CDR already stored is accepted without a second settlement).
//!
//! `date_from` is the newest `last_updated` seen in the last *complete* pull of that module
//! (`store::sync_cursors`); OCPI's `date_from` is inclusive, so the object at the boundary is
//! read again and taken idempotently. A pull that fails part-way (the CPO unreachable, a page
//! that is not an OCPI list) stores nothing of its cursor, so the next pull asks from the same
//! point: nothing the CPO still has is lost because evflex, or the CPO, was down. An object the
//! receiver refuses (invalid, another party's codes) is logged and counted, and does not stop the
//! pull: asking for it again would bring the same refusal.
//!
//! When: [`super::run_wall_clock`] pulls at start (before the catch-up tick, so the first plan
//! sees what happened during the outage) and before every quarter-hour tick after it, which
//! also catches up after an outage of the CPO or of the network between the two.

use super::Engine;
use crate::domain::parse_rfc3339;
use crate::ingest::ocpi::credentials::authorization;
use crate::ingest::ocpi::version::{OcpiVersion, to_internal};
use crate::ingest::ocpi::{self as receiver, LocationRef, Origin};
use crate::outbound::{Route, next_link};
use crate::store::parties::{self, Party};
use crate::store::{sessions, sync_cursors};
use serde::Serialize;
use serde_json::Value;

/// The sender interfaces evflex pulls, in the order it pulls them (a session names its
/// location's EVSE, and a CDR its session).
pub const MODULES: [&str; 3] = ["locations", "sessions", "cdrs"];

/// Objects asked for per page (`limit`); the CPO may answer fewer (`X-Limit`).
pub const PAGE_LIMIT: usize = 100;

/// Most pages read in one pull of one module: a guard against a `Link` that never ends. The
/// pull then counts as failed and its cursor stays where it was.
pub const MAX_PAGES: usize = 1_000;

/// What one [`pull_all`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Parties asked.
    pub parties: usize,
    /// Pulls of one module of one party that completed.
    pub pulls_completed: usize,
    /// Pulls that failed (their cursors unchanged).
    pub pulls_failed: usize,
    /// Pages read.
    pub pages: usize,
    /// Objects taken (stored, or already stored).
    pub taken: usize,
    /// Sessions skipped because evflex's copy was as new or newer.
    pub skipped_stale: usize,
    /// Objects the receiver refused.
    pub refused: usize,
}

impl SyncReport {
    fn add(&mut self, other: &Self) {
        self.parties += other.parties;
        self.pulls_completed += other.pulls_completed;
        self.pulls_failed += other.pulls_failed;
        self.pages += other.pages;
        self.taken += other.taken;
        self.skipped_stale += other.skipped_stale;
        self.refused += other.refused;
    }
}

/// Pulls every registered party's Locations, Sessions and CDRs sender interfaces from where
/// the last complete pull ended. Errors are logged and recorded per (party, module); the
/// function itself never fails.
#[tracing::instrument(skip_all)]
pub async fn pull_all(engine: &Engine) -> SyncReport {
    let registered = match engine.db.conn().await {
        Ok(mut conn) => parties::list_registered(&mut conn).await,
        Err(e) => Err(e),
    };
    let registered = match registered {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = ?e, "sync: cannot read the parties");
            return SyncReport::default();
        }
    };
    let mut report = SyncReport::default();
    for party in registered {
        report.add(&pull_party(engine, &party).await);
    }
    if report.taken + report.refused > 0 || report.pulls_failed > 0 {
        tracing::info!(?report, "sync: pulled the parties' sender interfaces");
    }
    report
}

/// Pulls one party's sender interfaces (those it offers).
pub async fn pull_party(engine: &Engine, party: &Party) -> SyncReport {
    let mut report = SyncReport {
        parties: 1,
        ..SyncReport::default()
    };
    for module in MODULES {
        let Some(url) = party.endpoint(module, "SENDER") else {
            continue;
        };
        let url = url.to_owned();
        match pull_module(engine, party, module, &url, &mut report).await {
            Ok(()) => report.pulls_completed += 1,
            Err(error) => {
                report.pulls_failed += 1;
                tracing::warn!(party = party.id, module, %error, "sync: pull failed; it is tried again at the next round");
                let now = engine.clock.now();
                let recorded = match engine.db.conn().await {
                    Ok(mut conn) => {
                        sync_cursors::failed(&mut conn, party.id, module, &error, now).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = recorded {
                    tracing::error!(error = ?e, "sync: cannot record a failed pull");
                }
            }
        }
    }
    report
}

/// Pulls `module` of `party` from its cursor, page by page; stores the new cursor only when the
/// last page was read.
async fn pull_module(
    engine: &Engine,
    party: &Party,
    module: &str,
    sender_url: &str,
    report: &mut SyncReport,
) -> Result<(), String> {
    let from = {
        let mut conn = engine.db.conn().await.map_err(|e| e.to_string())?;
        sync_cursors::get(&mut conn, party.id, module)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|c| c.date_from)
    };
    let mut url = first_page_url(sender_url, from)?;
    let mut newest: Option<i64> = None;
    let mut objects = 0_i64;
    for _ in 0..MAX_PAGES {
        let (page, next) = get_page(engine, party, &url).await?;
        report.pages += 1;
        for object in page {
            objects += 1;
            if let Some(t) = object
                .get("last_updated")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339)
            {
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
            take(engine, party, module, object, report).await;
        }
        match next {
            Some(next) => url = next,
            None => {
                let now = engine.clock.now();
                let mut conn = engine.db.conn().await.map_err(|e| e.to_string())?;
                sync_cursors::completed(&mut conn, party.id, module, newest, objects, now)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
        }
    }
    Err(format!(
        "{module}: more than {MAX_PAGES} pages; the CPO's Link does not end"
    ))
}

/// The first page's URL: the sender URL with `date_from` (when there is a cursor) and `limit`.
fn first_page_url(sender_url: &str, date_from: Option<i64>) -> Result<String, String> {
    let mut url =
        reqwest::Url::parse(sender_url).map_err(|e| format!("{sender_url:?}: not a URL: {e}"))?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(from) = date_from {
            query.append_pair("date_from", &crate::domain::format_rfc3339(from));
        }
        query.append_pair("offset", "0");
        query.append_pair("limit", &PAGE_LIMIT.to_string());
    }
    Ok(url.into())
}

/// One page: its objects and the next page's URL (from `Link`), if any.
async fn get_page(
    engine: &Engine,
    party: &Party,
    url: &str,
) -> Result<(Vec<Value>, Option<String>), String> {
    let what = format!("GET {url}");
    let identity = &engine.identity;
    let route = Route {
        from: (&identity.country_code, &identity.party_id),
        to: (&party.country_code, &party.party_id),
    };
    let request = engine
        .http
        .request(reqwest::Method::GET, url)
        .map_err(|e| e.to_string())?
        .header("Authorization", authorization(&party.token_b));
    let answer = engine
        .http
        .fetch(&what, route.apply(request))
        .await
        .map_err(|e| e.to_string())?;
    if !answer.status.is_success() {
        return Err(format!("{what}: HTTP {}", answer.status));
    }
    let envelope: Value =
        serde_json::from_slice(&answer.body).map_err(|e| format!("{what}: not JSON: {e}"))?;
    if envelope["status_code"].as_i64() != Some(1000) {
        return Err(format!(
            "{what}: OCPI status {}: {}",
            envelope["status_code"],
            envelope["status_message"].as_str().unwrap_or("")
        ));
    }
    let page = match envelope.get("data") {
        Some(Value::Array(items)) => items.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(format!("{what}: data is not a list")),
    };
    Ok((page, next_link(&answer.headers)))
}

/// Feeds one pulled object through the receiver, as if the CPO had pushed it.
async fn take(
    engine: &Engine,
    party: &Party,
    module: &str,
    object: Value,
    report: &mut SyncReport,
) {
    let field = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (cc, pid, id) = (field("country_code"), field("party_id"), field("id"));
    if !party.owns_codes(&cc, &pid) {
        report.refused += 1;
        tracing::warn!(party = party.id, module, object = %id, "sync: an object under codes that are not the party's own is ignored");
        return;
    }
    let object = to_internal(OcpiVersion::of_party(party.version.as_deref()), object);
    let origin = Origin {
        country_code: cc.clone(),
        party_id: pid.clone(),
        owner_party: party.id,
    };
    let now = engine.clock.now();
    let result = match module {
        "locations" => {
            let target = LocationRef {
                location_id: id.clone(),
                evse_uid: None,
                connector_id: None,
            };
            receiver::write_location_object(&engine.db, &origin, &target, object, false, now)
                .await
                .map(drop)
        }
        "sessions" => {
            let pulled = object
                .get("last_updated")
                .and_then(Value::as_str)
                .and_then(parse_rfc3339);
            let stored = match engine.db.conn().await {
                Ok(mut conn) => sessions::get(&mut conn, &cc, &pid, &id).await,
                Err(e) => Err(e),
            };
            match stored {
                Ok(Some(s)) if pulled.is_some_and(|p| s.record.last_updated >= p) => {
                    report.skipped_stale += 1;
                    return;
                }
                Ok(_) => receiver::put_session(&engine.db, &origin, &id, object)
                    .await
                    .map(drop),
                Err(e) => Err(e.into()),
            }
        }
        "cdrs" => receiver::post_cdr(&engine.db, engine.chain.as_deref(), party.id, object, now)
            .await
            .map(drop),
        _ => return,
    };
    match result {
        Ok(()) => report.taken += 1,
        Err(e) => {
            report.refused += 1;
            tracing::warn!(party = party.id, module, object = %id, error = %e, "sync: the receiver refused a pulled object");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_page_asks_from_the_cursor_with_a_limit() {
        assert_eq!(
            first_page_url("https://cpo.example/ocpi/2.2.1/sessions", None).unwrap(),
            "https://cpo.example/ocpi/2.2.1/sessions?offset=0&limit=100"
        );
        assert_eq!(
            first_page_url(
                "https://cpo.example/ocpi/2.2.1/cdrs?x=1",
                Some(1_714_557_600)
            )
            .unwrap(),
            "https://cpo.example/ocpi/2.2.1/cdrs?x=1&date_from=2024-05-01T10%3A00%3A00Z&offset=0&limit=100"
        );
        assert!(first_page_url("not a url", None).is_err());
    }
}
