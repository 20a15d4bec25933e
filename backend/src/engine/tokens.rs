//! Users' tokens out: evflex is its users' eMSP (OCPI 2.2.1 Tokens module, eMSP sender side).
//!
//! At sign-up evflex issues each user a token uid (`store::users::issue_token_uid`). This module
//! pushes that Token to every registered CPO that offers a Tokens `RECEIVER` endpoint, as
//! `PUT {url}/{our country code}/{our party id}/{uid}?type=APP_USER` with the CPO's token
//! (token B). The CPO then authorises the user's app start, and its Session and CDR carry the
//! uid in `cdr_token.uid`: that is what links a session to a user (`ingest::ocpi::receiver`),
//! so only a session the CPO started for an evflex-issued token belongs to a user.
//!
//! Pushes run after sign-up, after a CPO registers (credentials POST or PUT: all tokens again)
//! and at every tick for whatever failed. `store::token_deliveries` records each user and party;
//! a push that keeps failing is given up after [`MAX_ATTEMPTS`] tries (a day of ticks). The
//! CPO can also pull the list from evflex's Tokens sender interface (`GET /ocpi/2.2.1/tokens`).

use super::Engine;
use super::setpoints::{Attempt, put_ocpi};
use crate::domain::format_rfc3339;
use crate::ingest::ocpi::credentials::Identity;
use crate::store::parties::{self, Party};
use crate::store::token_deliveries::{self, Undelivered};
use serde::Serialize;
use serde_json::{Value, json};

/// Pushes of one user's token to one CPO before it is given up (one a tick: a day).
pub const MAX_ATTEMPTS: i64 = 96;

/// Tokens pushed in one round at most, per CPO; the rest wait for the next round.
const BATCH: i64 = 1_000;

/// What one push round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenPushReport {
    /// Tokens a CPO accepted.
    pub pushed: usize,
    /// Pushes that failed (tried again at the next round, up to [`MAX_ATTEMPTS`]).
    pub failed: usize,
}

/// The OCPI `contract_id` evflex gives a token: `{country code}-{party id}-{uid}`.
pub fn contract_id(identity: &Identity, uid: &str) -> String {
    format!("{}-{}-{uid}", identity.country_code, identity.party_id)
}

/// The OCPI 2.2.1 Token object of an issued uid.
pub fn token_object(identity: &Identity, uid: &str, last_updated: i64) -> Value {
    json!({
        "country_code": identity.country_code,
        "party_id": identity.party_id,
        "uid": uid,
        "type": "APP_USER",
        "contract_id": contract_id(identity, uid),
        "issuer": identity.name,
        "valid": true,
        "whitelist": "ALLOWED",
        "last_updated": format_rfc3339(last_updated),
    })
}

/// Pushes every token that has not reached a registered CPO yet (one round).
#[tracing::instrument(skip_all)]
pub async fn push_pending(engine: &Engine) -> TokenPushReport {
    // A round waits for the one running: it then sees what that one delivered. (Replicas may
    // still push a token twice at once; a Token PUT is idempotent.)
    let _round = engine.token_pushes.lock().await;
    let mut report = TokenPushReport::default();
    let receivers = match receivers(engine).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = ?e, "tokens: cannot read parties");
            return report;
        }
    };
    for (party, url) in receivers {
        let pending = match engine.db.conn().await {
            Ok(mut conn) => {
                token_deliveries::undelivered(&mut conn, party.id, MAX_ATTEMPTS, BATCH).await
            }
            Err(e) => Err(e),
        };
        let pending = match pending {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = ?e, party = party.id, "tokens: cannot read deliveries");
                continue;
            }
        };
        for user in pending {
            if push_one(engine, &party, &url, &user).await {
                report.pushed += 1;
            } else {
                report.failed += 1;
            }
        }
    }
    metrics::counter!("evflex_token_pushes_total", "result" => "pushed")
        .increment(report.pushed as u64);
    metrics::counter!("evflex_token_pushes_total", "result" => "failed")
        .increment(report.failed as u64);
    report
}

/// Registered parties with a Tokens receiver, and its URL.
async fn receivers(engine: &Engine) -> crate::store::StoreResult<Vec<(Party, String)>> {
    let mut conn = engine.db.conn().await?;
    Ok(parties::list_registered(&mut conn)
        .await?
        .into_iter()
        .filter_map(|p| {
            let url = p
                .endpoint("tokens", "RECEIVER")?
                .trim_end_matches('/')
                .to_owned();
            Some((p, url))
        })
        .collect())
}

async fn push_one(engine: &Engine, party: &Party, base: &str, user: &Undelivered) -> bool {
    let identity = &engine.identity;
    let url = format!(
        "{base}/{}/{}/{}?type=APP_USER",
        identity.country_code, identity.party_id, user.token_uid
    );
    let body = token_object(identity, &user.token_uid, user.created_at);
    let route = crate::outbound::Route {
        from: (&identity.country_code, &identity.party_id),
        to: (&party.country_code, &party.party_id),
    };
    let error = match put_ocpi(&engine.http, &url, &party.token_b, route, &body).await {
        Attempt::Sent(_) => None,
        Attempt::Retry(e) | Attempt::Fatal(e) => Some(e),
    };
    if let Some(e) = &error {
        tracing::warn!(party = party.id, user = user.user_id, error = %e, "token push failed");
    }
    let now = engine.clock.now();
    let recorded = match engine.db.conn().await {
        Ok(mut conn) => {
            token_deliveries::record(&mut conn, party.id, user.user_id, error.as_deref(), now).await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = recorded {
        tracing::error!(error = ?e, party = party.id, "tokens: cannot record a push");
    }
    error.is_none()
}
