//! OCPI parties (CPOs), the tokens they present to evflex and the party codes each holds. Owns
//! `ocpi_parties`, `ocpi_tokens`, `party_codes` and `party_settlement` (where each is paid).

use super::{Conn, StoreResult, from_json, to_json, token_hash};
use crate::domain::PartyKey;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;

/// What a token presented to evflex allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Token A: handed out of band; allows only the versions and credentials handshake.
    Registration,
    /// Token C: issued by evflex in the handshake; allows every module.
    Credentials,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Credentials => "credentials",
        }
    }
}

/// A known, unrevoked token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// Kind of token.
    pub kind: TokenKind,
    /// The party it belongs to (always set for credentials tokens).
    pub party_row: Option<i64>,
    /// The `(country_code, party_id)` of every role the party registered: the only codes it may
    /// write objects under.
    pub party_codes: Vec<(String, String)>,
    /// Whether the party registered the `HUB` role: a hub forwards the objects of the parties
    /// behind it, which it names in the `OCPI-from-*` routing headers (see
    /// [`claim_code_for_hub`]).
    pub hub: bool,
}

impl TokenGrant {
    /// Whether the party registered a role with this country code and party id.
    pub fn owns_codes(&self, country_code: &str, party_id: &str) -> bool {
        self.party_codes.iter().any(|(cc, pid)| {
            cc.eq_ignore_ascii_case(country_code) && pid.eq_ignore_ascii_case(party_id)
        })
    }
}

#[derive(FromRow)]
struct TokenRow {
    kind: String,
    party_row: Option<i64>,
    roles: Option<String>,
}

/// The `(country_code, party_id)` pairs of an OCPI `roles` array.
fn role_codes(roles: &serde_json::Value) -> Vec<(String, String)> {
    roles
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some((
                r.get("country_code")?.as_str()?.to_owned(),
                r.get("party_id")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// One OCPI module endpoint of a party (OCPI 2.2.1 `Endpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyEndpoint {
    /// Module identifier (`chargingprofiles`, `locations`, …).
    pub identifier: String,
    /// `SENDER` or `RECEIVER`.
    pub role: String,
    /// Endpoint URL.
    pub url: String,
}

/// A CPO that completed (or once completed) the credentials handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Row id.
    pub id: i64,
    /// Country code of its first role.
    pub country_code: String,
    /// Party id of its first role.
    pub party_id: String,
    /// Business name of its first role.
    pub name: String,
    /// The `roles` array it sent (OCPI `CredentialsRole` JSON).
    pub roles: serde_json::Value,
    /// Its versions URL.
    pub versions_url: String,
    /// Token B: the token evflex presents when calling the party.
    pub token_b: String,
    /// Negotiated OCPI version.
    pub version: Option<String>,
    /// Its endpoints of the negotiated version.
    pub endpoints: Vec<PartyEndpoint>,
    /// `registered` or `unregistered`.
    pub status: String,
}

impl Party {
    /// Whether the party registered a role with this country code and party id: the only codes
    /// it may read or write objects under.
    pub fn owns_codes(&self, country_code: &str, party_id: &str) -> bool {
        role_codes(&self.roles).iter().any(|(cc, pid)| {
            cc.eq_ignore_ascii_case(country_code) && pid.eq_ignore_ascii_case(party_id)
        })
    }

    /// The party codes of its registered roles, upper case.
    pub fn codes(&self) -> Vec<(String, String)> {
        role_codes(&self.roles)
            .into_iter()
            .map(|(cc, pid)| (cc.to_ascii_uppercase(), pid.to_ascii_uppercase()))
            .collect()
    }

    /// The URL of one of the party's modules in a given role (`chargingprofiles`, `RECEIVER`).
    pub fn endpoint(&self, identifier: &str, role: &str) -> Option<&str> {
        self.endpoints
            .iter()
            .find(|e| e.identifier == identifier && e.role.eq_ignore_ascii_case(role))
            .or_else(|| self.endpoints.iter().find(|e| e.identifier == identifier))
            .map(|e| e.url.as_str())
    }
}

#[derive(FromRow)]
struct PartyRow {
    id: i64,
    country_code: String,
    party_id: String,
    name: String,
    roles: String,
    versions_url: String,
    token_b: String,
    version: Option<String>,
    endpoints: String,
    status: String,
}

impl TryFrom<PartyRow> for Party {
    type Error = super::StoreError;
    fn try_from(r: PartyRow) -> StoreResult<Self> {
        Ok(Self {
            id: r.id,
            country_code: r.country_code,
            party_id: r.party_id,
            name: r.name,
            roles: from_json(&r.roles, "ocpi_parties.roles")?,
            versions_url: r.versions_url,
            token_b: r.token_b,
            version: r.version,
            endpoints: from_json(&r.endpoints, "ocpi_parties.endpoints")?,
            status: r.status,
        })
    }
}

/// What evflex learnt about a party in a handshake.
#[derive(Debug, Clone)]
pub struct PartyRegistration {
    /// Country code of its first role.
    pub country_code: String,
    /// Party id of its first role.
    pub party_id: String,
    /// Business name of its first role.
    pub name: String,
    /// The `roles` array as sent.
    pub roles: serde_json::Value,
    /// Its versions URL.
    pub versions_url: String,
    /// Token B.
    pub token_b: String,
    /// Negotiated version.
    pub version: Option<String>,
    /// Endpoints of the negotiated version.
    pub endpoints: Vec<PartyEndpoint>,
}

/// Stores a registration token (token A) that a CPO may use to start the handshake.
/// Idempotent.
#[tracing::instrument(skip_all)]
pub async fn add_registration_token(conn: &mut Conn, token: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO ocpi_tokens (token_hash, kind, party_row, revoked, created_at)
         VALUES ($1, $2, NULL, 0, $3) ON CONFLICT (token_hash) DO NOTHING",
    )
    .bind(token_hash(token))
    .bind(TokenKind::Registration.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Looks up an unrevoked token by its clear text.
pub async fn find_token(conn: &mut Conn, token: &str) -> StoreResult<Option<TokenGrant>> {
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT t.kind, t.party_row, p.roles FROM ocpi_tokens t
         LEFT JOIN ocpi_parties p ON p.id = t.party_row
         WHERE t.token_hash = $1 AND t.revoked = 0",
    )
    .bind(token_hash(token))
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        let roles = match &r.roles {
            Some(roles) => from_json(roles, "ocpi_parties.roles")?,
            None => serde_json::Value::Null,
        };
        let party_codes = role_codes(&roles);
        let hub = roles
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r.get("role").and_then(serde_json::Value::as_str) == Some("HUB"));
        Ok(TokenGrant {
            kind: if r.kind == "credentials" {
                TokenKind::Credentials
            } else {
                TokenKind::Registration
            },
            party_row: r.party_row,
            party_codes,
            hub,
        })
    })
    .transpose()
}

/// Creates a party row; returns its id.
#[tracing::instrument(skip_all, fields(party = %format!("{}*{}", reg.country_code, reg.party_id)))]
pub async fn insert_party(conn: &mut Conn, reg: &PartyRegistration, now: i64) -> StoreResult<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO ocpi_parties (country_code, party_id, name, roles, versions_url, token_b,
             version, endpoints, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'registered', $9, $9) RETURNING id",
    )
    .bind(&reg.country_code)
    .bind(&reg.party_id)
    .bind(&reg.name)
    .bind(to_json(&reg.roles))
    .bind(&reg.versions_url)
    .bind(&reg.token_b)
    .bind(reg.version.clone())
    .bind(to_json(&reg.endpoints))
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// Replaces what evflex knows about a party (credentials PUT).
#[tracing::instrument(skip_all, fields(party_row = id))]
pub async fn update_party(
    conn: &mut Conn,
    id: i64,
    reg: &PartyRegistration,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE ocpi_parties SET country_code = $2, party_id = $3, name = $4, roles = $5,
             versions_url = $6, token_b = $7, version = $8, endpoints = $9,
             status = 'registered', updated_at = $10
         WHERE id = $1",
    )
    .bind(id)
    .bind(&reg.country_code)
    .bind(&reg.party_id)
    .bind(&reg.name)
    .bind(to_json(&reg.roles))
    .bind(&reg.versions_url)
    .bind(&reg.token_b)
    .bind(reg.version.clone())
    .bind(to_json(&reg.endpoints))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a party unregistered and revokes every token it holds (credentials DELETE).
#[tracing::instrument(skip_all, fields(party_row = id))]
pub async fn unregister_party(conn: &mut Conn, id: i64, now: i64) -> StoreResult<()> {
    sqlx::query("UPDATE ocpi_parties SET status = 'unregistered', updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE ocpi_tokens SET revoked = 1 WHERE party_row = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM party_codes WHERE party_row = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Issues a new credentials token (token C) for a party, revoking its previous ones.
#[tracing::instrument(skip_all, fields(party_row = party_row))]
pub async fn issue_credentials_token(
    conn: &mut Conn,
    party_row: i64,
    token: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE ocpi_tokens SET revoked = 1 WHERE party_row = $1")
        .bind(party_row)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO ocpi_tokens (token_hash, kind, party_row, revoked, created_at)
         VALUES ($1, 'credentials', $2, 0, $3)",
    )
    .bind(token_hash(token))
    .bind(party_row)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Uses up a registration token (token A): `true` for the one caller that revoked it, `false`
/// when it was already used or never issued. One conditional update, so of two concurrent
/// handshakes with the same token A only one can go on.
pub async fn consume_registration_token(conn: &mut Conn, token: &str) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE ocpi_tokens SET revoked = 1 \
         WHERE token_hash = $1 AND kind = 'registration' AND revoked = 0",
    )
    .bind(token_hash(token))
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Makes `codes` the party codes of `party_row`, replacing those it held. Returns the first
/// code another party holds (then nothing is claimed past it: the caller rolls back).
pub async fn claim_codes(
    conn: &mut Conn,
    party_row: i64,
    codes: &[PartyKey],
) -> StoreResult<Option<PartyKey>> {
    sqlx::query("DELETE FROM party_codes WHERE party_row = $1")
        .bind(party_row)
        .execute(&mut *conn)
        .await?;
    for code in codes {
        let r = sqlx::query(
            "INSERT INTO party_codes (country_code, party_id, party_row) VALUES ($1, $2, $3) \
             ON CONFLICT (country_code, party_id) DO NOTHING",
        )
        .bind(&code.country_code)
        .bind(&code.party_id)
        .bind(party_row)
        .execute(&mut *conn)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(Some(code.clone()));
        }
    }
    Ok(None)
}

const PARTY_COLUMNS: &str = "id, country_code, party_id, name, roles, versions_url, token_b, \
                             version, endpoints, status";

/// A party by row id.
pub async fn get_party(conn: &mut Conn, id: i64) -> StoreResult<Option<Party>> {
    let row: Option<PartyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PARTY_COLUMNS} FROM ocpi_parties WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(Party::try_from).transpose()
}

/// Every registered party.
pub async fn list_registered(conn: &mut Conn) -> StoreResult<Vec<Party>> {
    let rows: Vec<PartyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PARTY_COLUMNS} FROM ocpi_parties WHERE status = 'registered' ORDER BY id"
    )))
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Party::try_from).collect()
}

/// Every party, registered or not, in registration order.
pub async fn list_all(conn: &mut Conn) -> StoreResult<Vec<Party>> {
    let rows: Vec<PartyRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PARTY_COLUMNS} FROM ocpi_parties ORDER BY id"
    )))
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Party::try_from).collect()
}

/// Where a CPO is paid and who signs its bills (`billing::signer`).
#[derive(Debug, Clone, PartialEq, Eq, FromRow, Serialize)]
pub struct Settlement {
    /// The party.
    pub party_row: i64,
    /// Its address in EnergyBilling (lower-case `0x`-hex): bills pay it.
    pub cpo_address: String,
    /// The meter signer EnergyBilling checks its bills against (lower-case `0x`-hex).
    pub meter_signer: String,
    /// The signer's URL.
    pub signer_url: String,
    /// Set at (Unix seconds).
    pub updated_at: i64,
}

/// Sets a party's settlement identity. `false` when another party holds the address.
pub async fn set_settlement(conn: &mut Conn, s: &Settlement) -> StoreResult<bool> {
    let taken: Option<(i64,)> =
        sqlx::query_as("SELECT party_row FROM party_settlement WHERE cpo_address = $1")
            .bind(&s.cpo_address)
            .fetch_optional(&mut *conn)
            .await?;
    if taken.is_some_and(|(row,)| row != s.party_row) {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO party_settlement (party_row, cpo_address, meter_signer, signer_url, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (party_row) DO UPDATE SET cpo_address = excluded.cpo_address,
             meter_signer = excluded.meter_signer, signer_url = excluded.signer_url,
             updated_at = excluded.updated_at",
    )
    .bind(s.party_row)
    .bind(&s.cpo_address)
    .bind(&s.meter_signer)
    .bind(&s.signer_url)
    .bind(s.updated_at)
    .execute(conn)
    .await?;
    Ok(true)
}

const SETTLEMENT_COLUMNS: &str = "party_row, cpo_address, meter_signer, signer_url, updated_at";

/// A party's settlement identity, if it set one.
pub async fn settlement_of(conn: &mut Conn, party_row: i64) -> StoreResult<Option<Settlement>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SETTLEMENT_COLUMNS} FROM party_settlement WHERE party_row = $1"
    )))
    .bind(party_row)
    .fetch_optional(conn)
    .await?)
}

/// The settlement identity with this EnergyBilling address (lower-case `0x`-hex), if any.
pub async fn settlement_by_address(
    conn: &mut Conn,
    cpo_address: &str,
) -> StoreResult<Option<Settlement>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SETTLEMENT_COLUMNS} FROM party_settlement WHERE cpo_address = $1"
    )))
    .bind(cpo_address)
    .fetch_optional(conn)
    .await?)
}

/// The registered party holding these codes (upper case), if any.
pub async fn party_of_codes(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
) -> StoreResult<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT party_row FROM party_codes WHERE country_code = $1 AND party_id = $2",
    )
    .bind(country_code.to_ascii_uppercase())
    .bind(party_id.to_ascii_uppercase())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(r,)| r))
}

/// A party code that a hub forwards objects for (`OCPI-from-*`), claimed for the hub: the code
/// becomes the hub's in `party_codes` unless a party already holds it. Returns whether the code
/// is the hub's now. So a hub can never act under the codes of a party registered directly (or
/// through another hub), and the ownership checks stay those of `party_codes`. A hub's claims go
/// with its codes when it registers again or unregisters, and are claimed again by its next
/// request.
pub async fn claim_code_for_hub(
    conn: &mut Conn,
    hub_row: i64,
    country_code: &str,
    party_id: &str,
) -> StoreResult<bool> {
    let (cc, pid) = (
        country_code.to_ascii_uppercase(),
        party_id.to_ascii_uppercase(),
    );
    sqlx::query(
        "INSERT INTO party_codes (country_code, party_id, party_row) VALUES ($1, $2, $3) \
         ON CONFLICT (country_code, party_id) DO NOTHING",
    )
    .bind(&cc)
    .bind(&pid)
    .bind(hub_row)
    .execute(&mut *conn)
    .await?;
    Ok(party_of_codes(conn, &cc, &pid).await? == Some(hub_row))
}
