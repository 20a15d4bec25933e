//! The OCPI credentials handshake (2.2.1 and 2.3.0: the highest both sides speak), both
//! directions.
//!
//! A CPO gets a registration token (token A) out of band (`--ocpi-registration-token`, or
//! [`crate::store::parties::add_registration_token`]). With it, it may read evflex's versions
//! and `POST` its credentials (its token B and versions URL). evflex then reads the CPO's
//! versions and the endpoints of the highest common version with token B (so it knows where to send charging profiles),
//! stores the party, issues token C, revokes token A and answers with its own credentials;
//! the API layer then pushes every user's token to the party (`engine::tokens`).
//! `PUT` re-does this for a registered party (new token C); `DELETE` unregisters it.

use super::model::{
    BusinessDetails, Credentials, CredentialsRole, Role, Version, VersionDetails, parse,
};
use super::version::OcpiVersion;
use crate::domain::PartyKey;
use crate::ingest::{IngestError, IngestResult};
use crate::outbound::Outbound;
use crate::store::Db;
use crate::store::parties::{self, PartyEndpoint, PartyRegistration};
use crate::store::token_deliveries;
use base64::Engine;
use serde_json::Value;

/// How evflex presents itself in the handshake.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Our versions URL (`{public_url}/ocpi/versions`).
    pub versions_url: String,
    /// Our country code.
    pub country_code: String,
    /// Our party id.
    pub party_id: String,
    /// Our business name.
    pub name: String,
}

impl Identity {
    /// Our credentials carrying `token` (token C).
    pub fn credentials(&self, token: String) -> Credentials {
        let role = |role| CredentialsRole {
            role,
            business_details: BusinessDetails {
                name: self.name.clone(),
                website: None,
            },
            party_id: self.party_id.clone(),
            country_code: self.country_code.clone(),
        };
        Credentials {
            token,
            url: self.versions_url.clone(),
            roles: vec![role(Role::Emsp), role(Role::Scsp)],
        }
    }
}

/// `Authorization` header value for calling another party with its token.
pub fn authorization(token: &str) -> String {
    format!(
        "Token {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    )
}

/// A fresh random token (256 bits, hex).
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

async fn get_ocpi_data(http: &Outbound, url: &str, token: &str) -> Result<Value, String> {
    let what = format!("GET {url}");
    let request = http
        .request(reqwest::Method::GET, url)
        .map_err(|e| e.to_string())?
        .header("Authorization", authorization(token));
    let (status, body) = http.send(&what, request).await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{what}: HTTP {status}"));
    }
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| format!("{what}: not JSON: {e}"))?;
    body.get("data")
        .cloned()
        .ok_or_else(|| format!("{what}: no data in the response"))
}

/// Reads a party's versions and the endpoints of the highest version both sides speak (2.3.0,
/// else 2.2.1; [`OcpiVersion::highest_common`]): unreachable (3001) when they cannot be read,
/// incompatible when it offers neither version (3002) or no `chargingprofiles` receiver (3003),
/// without which evflex could never send it a set-point. Returns the chosen version number.
#[tracing::instrument(skip_all, fields(url = versions_url))]
pub async fn discover(
    http: &Outbound,
    versions_url: &str,
    token_b: &str,
) -> IngestResult<(String, Vec<PartyEndpoint>)> {
    let unreachable = IngestError::PartyUnreachable;
    let versions: Vec<Version> = parse(
        get_ocpi_data(http, versions_url, token_b)
            .await
            .map_err(unreachable)?,
    )
    .map_err(unreachable)?;
    let offered: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
    let chosen = OcpiVersion::highest_common(offered.iter().copied()).ok_or_else(|| {
        IngestError::PartyIncompatible {
            code: 3002,
            message: format!(
                "the party offers OCPI {offered:?}, evflex speaks {:?}",
                OcpiVersion::ALL.map(OcpiVersion::as_str)
            ),
        }
    })?;
    let v = versions
        .iter()
        .find(|v| OcpiVersion::parse(&v.version) == Some(chosen))
        .ok_or_else(|| IngestError::PartyUnreachable("no version chosen".to_owned()))?;
    let details: VersionDetails = parse(
        get_ocpi_data(http, &v.url, token_b)
            .await
            .map_err(unreachable)?,
    )
    .map_err(unreachable)?;
    if !details
        .endpoints
        .iter()
        .any(|e| e.identifier == "chargingprofiles" && e.role.eq_ignore_ascii_case("RECEIVER"))
    {
        return Err(IngestError::PartyIncompatible {
            code: 3003,
            message: "the party has no chargingprofiles RECEIVER endpoint: evflex could not \
                      send it set-points"
                .to_owned(),
        });
    }
    let endpoints = details
        .endpoints
        .into_iter()
        .map(|e| PartyEndpoint {
            identifier: e.identifier,
            role: e.role,
            url: e.url,
        })
        .collect();
    Ok((chosen.as_str().to_owned(), endpoints))
}

/// What the credentials module may do for the token presented.
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    /// A registration token (token A).
    Registering,
    /// A registered party (token C).
    Registered(i64),
}

/// `POST` (`update == false`) or `PUT` credentials. Returns evflex's credentials with the new
/// token C.
#[tracing::instrument(skip_all, fields(update))]
#[allow(clippy::too_many_arguments)]
pub async fn register(
    db: &Db,
    http: &Outbound,
    me: &Identity,
    caller: Caller,
    presented_token: &str,
    body: Value,
    update: bool,
    now: i64,
) -> IngestResult<Credentials> {
    let creds: Credentials = parse(body).map_err(IngestError::Invalid)?;
    let first = creds
        .roles
        .first()
        .ok_or_else(|| IngestError::Invalid("roles: at least one role is required".to_owned()))?;
    let codes = creds
        .roles
        .iter()
        .enumerate()
        .map(|(i, role)| {
            PartyKey::parse(&role.country_code, &role.party_id)
                .map_err(|e| IngestError::Invalid(format!("roles[{i}]: {e}")))
        })
        .collect::<IngestResult<Vec<_>>>()?;
    if creds.token.is_empty() {
        return Err(IngestError::Invalid("token: must not be empty".to_owned()));
    }
    let (version, endpoints) = discover(http, &creds.url, &creds.token).await?;
    let registration = PartyRegistration {
        country_code: first.country_code.clone(),
        party_id: first.party_id.clone(),
        name: first.business_details.name.clone(),
        roles: serde_json::to_value(&creds.roles).unwrap_or(Value::Null),
        versions_url: creds.url.clone(),
        token_b: creds.token.clone(),
        version: Some(version),
        endpoints,
    };
    let token_c = new_token();
    let mut tx = db.begin().await?;
    let party_row = match (caller, update) {
        (Caller::Registering, false) => {
            if !parties::consume_registration_token(&mut tx, presented_token).await? {
                return Err(IngestError::Conflict(
                    "token: this registration token has been used already".to_owned(),
                ));
            }
            parties::insert_party(&mut tx, &registration, now).await?
        }
        (Caller::Registered(id), true) => {
            parties::update_party(&mut tx, id, &registration, now).await?;
            id
        }
        (Caller::Registered(_), false) => {
            return Err(IngestError::Conflict(
                "already registered: use PUT to update credentials".to_owned(),
            ));
        }
        (Caller::Registering, true) => {
            return Err(IngestError::Conflict(
                "not registered: use POST first".to_owned(),
            ));
        }
    };
    finish_registration(&mut tx, party_row, &codes, &token_c, now).await?;
    tx.commit().await?;
    Ok(me.credentials(token_c))
}

/// The end of a registration, in its transaction: the party takes its codes (refused when
/// another party holds one), gets `token_c` for calling evflex, and every user's token is
/// pushed to it again (`engine::tokens`: a new party, or one that may have lost them).
async fn finish_registration(
    tx: &mut crate::store::Conn,
    party_row: i64,
    codes: &[PartyKey],
    token_c: &str,
    now: i64,
) -> IngestResult<()> {
    if let Some(taken) = parties::claim_codes(tx, party_row, codes).await? {
        return Err(IngestError::Invalid(format!(
            "roles: {taken} is registered by another party; a party's codes are its own"
        )));
    }
    parties::issue_credentials_token(tx, party_row, token_c, now).await?;
    token_deliveries::reset(tx, party_row).await?;
    Ok(())
}

/// evflex starts the handshake (the other direction of [`register`]): a CPO issued evflex a
/// token A and named its versions URL. evflex reads the CPO's endpoints (highest common version) with token A,
/// `POST`s its own credentials (with a new token C for the CPO) to the CPO's credentials
/// endpoint, and stores the party with the token the CPO answers (which evflex then presents).
/// Returns the party's row. The party's codes must be free, as in [`register`].
#[tracing::instrument(skip_all, fields(url = versions_url))]
pub async fn register_with(
    db: &Db,
    http: &Outbound,
    me: &Identity,
    versions_url: &str,
    token_a: &str,
    now: i64,
) -> IngestResult<i64> {
    let (version, endpoints) = discover(http, versions_url, token_a).await?;
    let url = endpoints
        .iter()
        .find(|e| e.identifier == "credentials")
        .map(|e| e.url.clone())
        .ok_or_else(|| {
            IngestError::PartyUnreachable("the party has no credentials endpoint".to_owned())
        })?;
    let token_c = new_token();
    // The CPO reads evflex's versions with token C before it answers (OCPI 2.2.1 credentials:
    // the receiver checks the sender's versions and endpoints), so token C works for those as a
    // registration token does while the POST is under way; it becomes the party's credentials
    // token below, or is withdrawn if the POST fails.
    {
        let mut conn = db.conn().await?;
        parties::add_registration_token(&mut conn, &token_c, now).await?;
    }
    let posted = post_credentials(http, me, &url, token_a, &token_c).await;
    let theirs = match posted {
        Ok(theirs) => theirs,
        Err(e) => {
            let mut conn = db.conn().await?;
            parties::withdraw_registration_token(&mut conn, &token_c).await?;
            return Err(e);
        }
    };
    let what = format!("POST {url}");
    let first = theirs
        .roles
        .first()
        .ok_or_else(|| IngestError::PartyUnreachable(format!("{what}: the answer has no roles")))?;
    let codes = theirs
        .roles
        .iter()
        .map(|r| PartyKey::parse(&r.country_code, &r.party_id))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| IngestError::PartyUnreachable(format!("{what}: roles: {e}")))?;
    let registration = PartyRegistration {
        country_code: first.country_code.clone(),
        party_id: first.party_id.clone(),
        name: first.business_details.name.clone(),
        roles: serde_json::to_value(&theirs.roles).unwrap_or(Value::Null),
        versions_url: theirs.url.clone(),
        token_b: theirs.token.clone(),
        version: Some(version),
        endpoints,
    };
    let mut tx = db.begin().await?;
    parties::withdraw_registration_token(&mut tx, &token_c).await?;
    let party_row = parties::insert_party(&mut tx, &registration, now).await?;
    finish_registration(&mut tx, party_row, &codes, &token_c, now).await?;
    tx.commit().await?;
    Ok(party_row)
}

/// `POST`s evflex's credentials (with `token_c`) to the CPO's credentials `url` with its token
/// A; returns the CPO's credentials from its answer.
async fn post_credentials(
    http: &Outbound,
    me: &Identity,
    url: &str,
    token_a: &str,
    token_c: &str,
) -> IngestResult<Credentials> {
    let what = format!("POST {url}");
    let request = http
        .request(reqwest::Method::POST, url)
        .map_err(|e| IngestError::PartyUnreachable(e.to_string()))?
        .header("Authorization", authorization(token_a))
        .json(&me.credentials(token_c.to_owned()));
    let (status, body) = http
        .send(&what, request)
        .await
        .map_err(|e| IngestError::PartyUnreachable(e.to_string()))?;
    let envelope: Value = serde_json::from_slice(&body)
        .map_err(|e| IngestError::PartyUnreachable(format!("{what}: not JSON: {e}")))?;
    if !status.is_success() || envelope["status_code"].as_i64() != Some(1000) {
        return Err(IngestError::PartyUnreachable(format!(
            "{what}: HTTP {status}, OCPI {}: {}",
            envelope["status_code"],
            envelope["status_message"].as_str().unwrap_or("")
        )));
    }
    parse(envelope["data"].clone())
        .map_err(|e| IngestError::PartyUnreachable(format!("{what}: {e}")))
}
