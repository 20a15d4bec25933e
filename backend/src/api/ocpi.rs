//! OCPI 2.2.1 and 2.3.0 over HTTP: versions, credentials, the receiver interfaces of
//! Locations, Sessions, CDRs and Tariffs, the eMSP's Tokens sender interface (evflex's users'
//! tokens, see `engine::tokens`), plus the `response_url` for asynchronous charging-profile
//! results. Both versions are served side by side (`/ocpi/2.2.1/…`, `/ocpi/2.3.0/…`) by the
//! same handlers; `ingest::ocpi::version` maps 2.3.0's wire differences to the internal model.
//!
//! Every response is the OCPI envelope (`data`, `status_code`, `status_message`, `timestamp`).
//! `Authorization: Token <token>` carries the token base64-encoded as OCPI 2.2.1 specifies; a
//! raw token (OCPI 2.1.1 style) is accepted too. Unknown or missing tokens get HTTP 401.

use crate::app::AppState;
use crate::domain::{PartyKey, format_rfc3339};
use crate::engine::replan;
use crate::ingest::ocpi::credentials::{self, Caller};
use crate::ingest::ocpi::model::{
    ActiveChargingProfile, ActiveChargingProfileResult, ChargingProfileResult,
    ChargingProfileResultType, Endpoint, Version, VersionDetails, parse,
};
use crate::ingest::ocpi::version::{OcpiVersion, to_internal};
use crate::ingest::ocpi::{self as receiver, LocationRef, Origin, tariffs};
use crate::ingest::{IngestError, Written};
use crate::store::parties::{self, TokenGrant, TokenKind};
use crate::store::{active_profiles, schedules};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The OCPI response envelope.
#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    /// Payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    /// OCPI status code (1000 success, 2001 invalid parameters, …).
    pub status_code: u16,
    /// Human-readable status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// When the response was generated.
    pub timestamp: String,
}

fn ok<T: Serialize>(state: &AppState, data: Option<T>) -> Response {
    Json(Envelope {
        data,
        status_code: 1000,
        status_message: Some("Success".to_owned()),
        timestamp: format_rfc3339(state.clock.now()),
    })
    .into_response()
}

/// An OCPI error: HTTP status, OCPI status code and a message (never internal details).
///
/// The HTTP status follows OCPI 2.2.1's rule (status_codes.asciidoc): a request that is valid
/// JSON, addresses an existing resource and comes from an authenticated sender has reached the
/// OCPI layer, and "an HTTP error status code MUST NOT be returned" to it: such errors are HTTP
/// 200 with the OCPI status code (2001 invalid field, 2003 unknown location, 3001–3003 at the
/// handshake, 3000 an internal failure). HTTP errors are left for the transport layer: 400 for a
/// body that is not JSON, 401 for an unknown token, 404 for a resource that does not exist (and,
/// as transport_and_format.asciidoc allows, for party codes that are not the caller's own, so
/// another tenant's objects cannot even be probed), 405 for a registration that exists, 413 for
/// an oversized body.
#[derive(Debug)]
pub struct OcpiError {
    http: StatusCode,
    code: u16,
    message: String,
}

impl OcpiError {
    fn new(http: StatusCode, code: u16, message: impl Into<String>) -> Self {
        Self {
            http,
            code,
            message: message.into(),
        }
    }

    fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 2000, "unknown or missing token")
    }

    /// 2001 at the OCPI layer: the body is JSON but a field is invalid or missing.
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::OK, 2001, message)
    }

    /// 2001 at the transport layer: the body is not JSON at all (HTTP 400, as the spec says).
    fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 2001, message)
    }

    /// Party codes in the URL or body that are not the caller's: HTTP 404 (transport_and_format
    /// "Errors"), so nothing tells a CPO whether another party's object exists.
    fn not_yours(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, 2000, message)
    }
}

impl IntoResponse for OcpiError {
    fn into_response(self) -> Response {
        let body = Envelope::<()> {
            data: None,
            status_code: self.code,
            status_message: Some(self.message),
            timestamp: format_rfc3339(crate::domain::unix_now()),
        };
        (self.http, Json(body)).into_response()
    }
}

impl From<IngestError> for OcpiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Invalid(m) => Self::invalid(m),
            IngestError::Forbidden(m) => Self::not_yours(m),
            IngestError::UnknownLocation(m) => Self::new(StatusCode::OK, 2003, m),
            IngestError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, 2000, m),
            IngestError::Conflict(m) => Self::new(StatusCode::METHOD_NOT_ALLOWED, 2000, m),
            IngestError::PartyUnreachable(m) => Self::new(
                StatusCode::OK,
                3001,
                format!("unable to use the client's API: {m}"),
            ),
            IngestError::PartyIncompatible { code, message } => Self::new(
                StatusCode::OK,
                code,
                format!("unable to work with the client's API: {message}"),
            ),
            IngestError::Store(e) => {
                tracing::error!(error = ?e, "OCPI: store error");
                Self::new(StatusCode::OK, 3000, "internal error")
            }
        }
    }
}

impl From<crate::store::StoreError> for OcpiError {
    fn from(e: crate::store::StoreError) -> Self {
        IngestError::Store(e).into()
    }
}

/// The caller of an OCPI endpoint: the token it presented and what it grants.
#[derive(Debug, Clone)]
pub struct OcpiCaller {
    /// The token (decoded).
    pub token: String,
    /// What it grants.
    pub grant: TokenGrant,
}

impl OcpiCaller {
    /// The registered party row, for a credentials token.
    pub fn registered_party(&self) -> Option<i64> {
        match self.grant.kind {
            TokenKind::Credentials => self.grant.party_row,
            TokenKind::Registration => None,
        }
    }
}

/// Resolves `Authorization: Token …` to a known token (cached).
pub async fn resolve_token(parts: &Parts, state: &AppState) -> Result<OcpiCaller, OcpiError> {
    let raw = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(OcpiError::unauthorized)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    for candidate in decoded
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(raw))
    {
        if let Some(grant) = state.tokens.get(candidate) {
            return Ok(OcpiCaller {
                token: candidate.to_owned(),
                grant,
            });
        }
        let mut conn = state.db.conn().await?;
        if let Some(grant) = parties::find_token(&mut conn, candidate).await? {
            // Only credentials tokens are cached: a registration token is used once, and the
            // token C evflex lends a CPO during its own handshake becomes a credentials token
            // in another process (`evflex parties register`) while this one serves.
            if grant.kind == TokenKind::Credentials {
                state.tokens.put(candidate, grant.clone());
            }
            return Ok(OcpiCaller {
                token: candidate.to_owned(),
                grant,
            });
        }
    }
    Err(OcpiError::unauthorized())
}

impl FromRequestParts<AppState> for OcpiCaller {
    type Rejection = OcpiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OcpiError> {
        resolve_token(parts, state).await
    }
}

/// One side of a request's routing headers: `(country_code, party_id)`, or none if absent.
/// Both headers of a pair or neither; each a CiString of the spec's length (2 and 3).
fn routing_pair(
    headers: &HeaderMap,
    (cc_header, pid_header): (&str, &str),
) -> Result<Option<(String, String)>, OcpiError> {
    let value = |name: &str| -> Result<Option<String>, OcpiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .ok()
                    .map(str::trim)
                    .filter(|v| !v.is_empty() && v.is_ascii())
                    .map(str::to_owned)
                    .ok_or_else(|| OcpiError::invalid(format!("{name}: not a party code")))
            })
            .transpose()
    };
    match (value(cc_header)?, value(pid_header)?) {
        (None, None) => Ok(None),
        (Some(cc), Some(pid)) => {
            let key = PartyKey::parse(&cc, &pid)
                .map_err(|e| OcpiError::invalid(format!("{cc_header}/{pid_header}: {e}")))?;
            Ok(Some((key.country_code, key.party_id)))
        }
        (Some(_), None) => Err(OcpiError::invalid(format!("{pid_header}: missing header"))),
        (None, Some(_)) => Err(OcpiError::invalid(format!("{cc_header}: missing header"))),
    }
}

/// The routing headers of a request to a functional module, checked against the caller:
/// - `OCPI-to-*`, when present, must name evflex (a message for another party is not ours to
///   process: 2000);
/// - `OCPI-from-*`, when present, must be one of the caller's roles (404 otherwise, like any
///   other party's codes). A hub (a party that registered the `HUB` role) forwards for the
///   parties behind it: their codes become the hub's unless another party holds them
///   ([`parties::claim_code_for_hub`]), and the request may then act under them, and only them.
///
/// Peer to peer, a CPO may omit the headers; its token's roles then apply as before.
async fn routed_grant(
    parts: &Parts,
    state: &AppState,
    party_row: i64,
    mut grant: TokenGrant,
) -> Result<TokenGrant, OcpiError> {
    use crate::outbound::routing::*;
    if let Some((cc, pid)) = routing_pair(&parts.headers, (TO_COUNTRY_CODE, TO_PARTY_ID))? {
        let us = &state.identity;
        if !(cc.eq_ignore_ascii_case(&us.country_code) && pid.eq_ignore_ascii_case(&us.party_id)) {
            return Err(OcpiError::new(
                StatusCode::OK,
                2000,
                format!(
                    "OCPI-to: the message is for {cc}*{pid}, this is {}*{}",
                    us.country_code, us.party_id
                ),
            ));
        }
    }
    let Some((cc, pid)) = routing_pair(&parts.headers, (FROM_COUNTRY_CODE, FROM_PARTY_ID))? else {
        return Ok(grant);
    };
    if grant.owns_codes(&cc, &pid) {
        // Through a hub, the request acts for the one party it names.
        if grant.hub {
            grant.party_codes = vec![(cc, pid)];
        }
        return Ok(grant);
    }
    if grant.hub {
        let mut conn = state.db.conn().await?;
        if parties::claim_code_for_hub(&mut conn, party_row, &cc, &pid).await? {
            grant.party_codes = vec![(cc, pid)];
            return Ok(grant);
        }
    }
    Err(OcpiError::not_yours(format!(
        "OCPI-from: {cc}*{pid} is not one of the roles this token registered"
    )))
}

/// The routing headers of an answer (transport_and_format, "Party to Party"): `OCPI-from-*`
/// names evflex, `OCPI-to-*` the party the request came from (its `OCPI-from-*`). On every
/// functional module's answer, errors included.
async fn route_answer(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use crate::outbound::routing::*;
    let from = routing_pair(request.headers(), (FROM_COUNTRY_CODE, FROM_PARTY_ID))
        .ok()
        .flatten();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(FROM_COUNTRY_CODE, &state.identity.country_code);
    set(FROM_PARTY_ID, &state.identity.party_id);
    if let Some((cc, pid)) = from {
        set(TO_COUNTRY_CODE, &cc);
        set(TO_PARTY_ID, &pid);
    }
    response
}

/// A caller holding a credentials token (token C) of a registered party.
pub struct RegisteredParty {
    /// The party row.
    pub party_row: i64,
    /// What its token grants, including the party codes it registered.
    pub grant: TokenGrant,
}

impl FromRequestParts<AppState> for RegisteredParty {
    type Rejection = OcpiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OcpiError> {
        let caller = resolve_token(parts, state).await?;
        let party_row = caller
            .registered_party()
            .ok_or_else(OcpiError::unauthorized)?;
        // Configuration modules are not routed (transport_and_format): their headers, if any,
        // are ignored.
        let grant = if parts.uri.path().ends_with("/credentials") {
            caller.grant
        } else {
            routed_grant(parts, state, party_row, caller.grant).await?
        };
        Ok(Self { party_row, grant })
    }
}

fn json_body(bytes: &Bytes) -> Result<Value, OcpiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| OcpiError::malformed(format!("body: invalid JSON: {e}")))
}

/// The object's origin from the URL's party codes, which must be one of the caller's own roles:
/// a CPO can never write (or read) objects under another party's codes.
fn origin(party: &RegisteredParty, cc: &str, pid: &str) -> Result<Origin, OcpiError> {
    let key = PartyKey::parse(cc, pid).map_err(OcpiError::invalid)?;
    if !party.grant.owns_codes(&key.country_code, &key.party_id) {
        return Err(OcpiError::not_yours(format!(
            "{cc}*{pid} is not one of the roles this token registered"
        )));
    }
    Ok(Origin {
        country_code: key.country_code,
        party_id: key.party_id,
        owner_party: party.party_row,
    })
}

fn count(module: &'static str, result: &Result<Response, OcpiError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) if e.code == 2001 => "invalid",
        Err(_) => "error",
    };
    metrics::counter!("evflex_ocpi_ingest_total", "module" => module, "result" => outcome)
        .increment(1);
}

/// The largest request body axum reads (its default), named in the 413 answer.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Every answer of an OCPI route is an OCPI envelope, also the body-size refusal that axum's
/// extractor produces as plain text: a 413 gets the envelope (status 2000) with the reason.
async fn envelope_too_large(response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return OcpiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            2000,
            format!("body: larger than {} MiB", MAX_BODY_BYTES >> 20),
        )
        .into_response();
    }
    response
}

/// OCPI routes.
pub fn router(state: AppState) -> Router<AppState> {
    routes(state).layer(axum::middleware::map_response(envelope_too_large))
}

fn routes(state: AppState) -> Router<AppState> {
    OcpiVersion::ALL.into_iter().fold(
        Router::new().route("/ocpi/versions", get(versions)),
        |router, version| router.merge(version_routes(state.clone(), version)),
    )
}

/// One version's routes under `/ocpi/{version}`, each handler told the version (an
/// [`Extension`]): 2.2.1 and 2.3.0 share the handlers, and [`to_internal`] maps what 2.3.0
/// puts differently on the wire.
fn version_routes(state: AppState, version: OcpiVersion) -> Router<AppState> {
    let base = format!("/ocpi/{version}");
    Router::new()
        .route(&base, get(version_details))
        .route(
            &format!("{base}/credentials"),
            get(get_credentials)
                .post(register)
                .put(register)
                .delete(delete_credentials),
        )
        .merge(
            module_routes(&base).layer(axum::middleware::from_fn_with_state(state, route_answer)),
        )
        .layer(Extension(version))
}

/// The functional modules under `base`: routed (OCPI-from/to headers on every answer).
fn module_routes(base: &str) -> Router<AppState> {
    Router::new()
        .route(
            &format!("{base}/locations/{{cc}}/{{pid}}/{{location_id}}"),
            get(get_location).put(write_location).patch(write_location),
        )
        .route(
            &format!("{base}/locations/{{cc}}/{{pid}}/{{location_id}}/{{evse_uid}}"),
            get(get_location).put(write_location).patch(write_location),
        )
        .route(
            &format!(
                "{base}/locations/{{cc}}/{{pid}}/{{location_id}}/{{evse_uid}}/{{connector_id}}"
            ),
            get(get_location).put(write_location).patch(write_location),
        )
        .route(
            &format!("{base}/sessions/{{cc}}/{{pid}}/{{session_id}}"),
            get(get_session).put(write_session).patch(write_session),
        )
        .route(
            &format!("{base}/tariffs/{{cc}}/{{pid}}/{{tariff_id}}"),
            get(get_tariff).put(put_tariff).delete(delete_tariff),
        )
        .route(&format!("{base}/tokens"), get(list_tokens))
        .route(
            &format!("{base}/tokens/{{token_uid}}/authorize"),
            post(authorize_token),
        )
        .route(&format!("{base}/cdrs"), post(post_cdr))
        .route(&format!("{base}/cdrs/{{cdr_id}}"), get(get_cdr))
        .route(
            &format!("{base}/chargingprofiles/{{id}}"),
            post(post_charging_profile_result).put(put_active_charging_profile),
        )
        .route(
            &format!("{base}/chargingprofiles/{{id}}/active"),
            post(post_active_profile_result),
        )
}

/// `GET /ocpi/versions`: every version evflex speaks, newest first.
async fn versions(State(state): State<AppState>, _caller: OcpiCaller) -> Response {
    let data: Vec<Version> = OcpiVersion::ALL
        .into_iter()
        .map(|v| Version {
            version: v.as_str().to_owned(),
            url: format!("{}/ocpi/{v}", state.public_url),
        })
        .collect();
    ok(&state, Some(data))
}

async fn version_details(
    State(state): State<AppState>,
    Extension(version): Extension<OcpiVersion>,
    _caller: OcpiCaller,
) -> Response {
    let base = format!("{}/ocpi/{version}", state.public_url);
    let endpoint = |identifier: &str, role: &str| Endpoint {
        identifier: identifier.to_owned(),
        role: role.to_owned(),
        url: format!("{base}/{identifier}"),
    };
    let data = VersionDetails {
        version: version.as_str().to_owned(),
        endpoints: vec![
            endpoint("credentials", "SENDER"),
            endpoint("credentials", "RECEIVER"),
            endpoint("locations", "RECEIVER"),
            endpoint("sessions", "RECEIVER"),
            endpoint("cdrs", "RECEIVER"),
            endpoint("tariffs", "RECEIVER"),
            endpoint("chargingprofiles", "SENDER"),
            endpoint("tokens", "SENDER"),
        ],
    };
    ok(&state, Some(data))
}

async fn get_credentials(
    State(state): State<AppState>,
    caller: OcpiCaller,
) -> Result<Response, OcpiError> {
    caller
        .registered_party()
        .ok_or_else(OcpiError::unauthorized)?;
    Ok(ok(&state, Some(state.identity.credentials(caller.token))))
}

/// `POST` (register) or `PUT` (update) of the caller's credentials.
async fn register(
    State(state): State<AppState>,
    caller: OcpiCaller,
    method: Method,
    body: Bytes,
) -> Result<Response, OcpiError> {
    let who = match caller.grant.kind {
        TokenKind::Registration => Caller::Registering,
        TokenKind::Credentials => {
            Caller::Registered(caller.grant.party_row.ok_or_else(OcpiError::unauthorized)?)
        }
    };
    let body = json_body(&body)?;
    let creds = credentials::register(
        &state.db,
        &state.http,
        &state.identity,
        who,
        &caller.token,
        body,
        method == Method::PUT,
        state.clock.now(),
    )
    .await?;
    state.tokens.clear();
    // The party's tokens receiver learns every user's token now, not at the next tick.
    let engine = state.engine.clone();
    tokio::spawn(async move { crate::engine::tokens::push_pending(&engine).await });
    Ok(ok(&state, Some(creds)))
}

async fn delete_credentials(
    State(state): State<AppState>,
    party: RegisteredParty,
) -> Result<Response, OcpiError> {
    let mut conn = state.db.conn().await?;
    parties::unregister_party(&mut conn, party.party_row, state.clock.now()).await?;
    state.tokens.clear();
    Ok(ok::<()>(&state, None))
}

/// The URL of a Locations object: the CPO's party codes, then the location, EVSE or connector.
#[derive(Debug, Deserialize)]
struct LocationPath {
    cc: String,
    pid: String,
    #[serde(flatten)]
    target: LocationRef,
}

/// The URL of a Session.
#[derive(Debug, Deserialize)]
struct SessionPath {
    cc: String,
    pid: String,
    session_id: String,
}

/// A `PUT` or `PATCH` of an OCPI object: the origin check, the JSON body, the receiver's
/// `write` (which validates, naming the field, and stores nothing partial), the envelope (HTTP
/// 201 for an object that is new, 200 for an update); counted per module.
async fn write_object(
    state: &AppState,
    party: &RegisteredParty,
    module: &'static str,
    (cc, pid): (&str, &str),
    body: &Bytes,
    write: impl AsyncFnOnce(Origin, Value) -> Result<Written, IngestError>,
) -> Result<Response, OcpiError> {
    let result = async {
        let origin = origin(party, cc, pid)?;
        let written = write(origin, json_body(body)?).await?;
        let status = match written {
            Written::Created => StatusCode::CREATED,
            Written::Updated => StatusCode::OK,
        };
        Ok((status, ok::<()>(state, None)).into_response())
    }
    .await;
    count(module, &result);
    result
}

async fn get_location(
    State(state): State<AppState>,
    party: RegisteredParty,
    Path(path): Path<LocationPath>,
) -> Result<Response, OcpiError> {
    let origin = origin(&party, &path.cc, &path.pid)?;
    let data = receiver::get_location_object(&state.db, &origin, &path.target).await?;
    Ok(ok(&state, Some(data)))
}

async fn write_location(
    State(state): State<AppState>,
    party: RegisteredParty,
    method: Method,
    Path(path): Path<LocationPath>,
    body: Bytes,
) -> Result<Response, OcpiError> {
    let codes = (path.cc.as_str(), path.pid.as_str());
    let response = write_object(
        &state,
        &party,
        "locations",
        codes,
        &body,
        async |origin, body| {
            let is_patch = method == Method::PATCH;
            let (db, now) = (&state.db, state.clock.now());
            receiver::write_location_object(db, &origin, &path.target, body, is_patch, now).await
        },
    )
    .await?;
    // An EVSE's status or rating changes its group's plan.
    for g in location_groups(&state, &path).await {
        replan::request_or_log(&state.engine, g, "evse").await;
    }
    Ok(response)
}

/// The groups of the EVSEs a Locations write touched: the EVSE of an EVSE or connector URL,
/// else every EVSE of the location.
async fn location_groups(state: &AppState, path: &LocationPath) -> Vec<i64> {
    let groups = async {
        let mut conn = state.db.conn().await?;
        let uids = match &path.target.evse_uid {
            Some(uid) => vec![uid.clone()],
            None => crate::store::locations::evses_of_location(
                &mut conn,
                &path.cc,
                &path.pid,
                &path.target.location_id,
            )
            .await?
            .into_iter()
            .map(|e| e.record.uid)
            .collect(),
        };
        let mut groups = Vec::new();
        for uid in uids {
            if let Some(g) =
                crate::store::groups::group_of_evse(&mut conn, &path.cc, &path.pid, &uid).await?
            {
                groups.push(g);
            }
        }
        groups.sort_unstable();
        groups.dedup();
        crate::store::StoreResult::Ok(groups)
    }
    .await;
    groups.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "re-plan: cannot find the groups of a location write");
        Vec::new()
    })
}

/// The URL of a Tariff.
#[derive(Debug, Deserialize)]
struct TariffPath {
    cc: String,
    pid: String,
    tariff_id: String,
}

/// `GET` of one of the caller's own tariffs (another party's codes: 404).
async fn get_tariff(
    State(state): State<AppState>,
    party: RegisteredParty,
    Path(path): Path<TariffPath>,
) -> Result<Response, OcpiError> {
    let origin = origin(&party, &path.cc, &path.pid)?;
    let data = tariffs::get_tariff(&state.db, &origin, &path.tariff_id).await?;
    Ok(ok(&state, Some(data)))
}

/// `PUT` of a whole Tariff: 201 when new, 200 when it replaces the stored one.
async fn put_tariff(
    State(state): State<AppState>,
    Extension(version): Extension<OcpiVersion>,
    party: RegisteredParty,
    Path(path): Path<TariffPath>,
    body: Bytes,
) -> Result<Response, OcpiError> {
    let codes = (path.cc.as_str(), path.pid.as_str());
    write_object(
        &state,
        &party,
        "tariffs",
        codes,
        &body,
        async |origin, body| {
            let body = to_internal(version, body);
            tariffs::put_tariff(&state.db, &origin, &path.tariff_id, body).await
        },
    )
    .await
}

/// `DELETE` of one of the caller's own tariffs.
async fn delete_tariff(
    State(state): State<AppState>,
    party: RegisteredParty,
    Path(path): Path<TariffPath>,
) -> Result<Response, OcpiError> {
    let result = async {
        let origin = origin(&party, &path.cc, &path.pid)?;
        tariffs::delete_tariff(&state.db, &origin, &path.tariff_id).await?;
        Ok(ok::<()>(&state, None))
    }
    .await;
    count("tariffs", &result);
    result
}

async fn get_session(
    State(state): State<AppState>,
    party: RegisteredParty,
    Path(path): Path<SessionPath>,
) -> Result<Response, OcpiError> {
    let origin = origin(&party, &path.cc, &path.pid)?;
    let data = receiver::get_session(&state.db, &origin, &path.session_id).await?;
    Ok(ok(&state, Some(data)))
}

async fn write_session(
    State(state): State<AppState>,
    Extension(version): Extension<OcpiVersion>,
    party: RegisteredParty,
    method: Method,
    Path(path): Path<SessionPath>,
    body: Bytes,
) -> Result<Response, OcpiError> {
    let codes = (path.cc.as_str(), path.pid.as_str());
    let response = write_object(
        &state,
        &party,
        "sessions",
        codes,
        &body,
        async |origin, body| {
            let id = path.session_id.as_str();
            let body = to_internal(version, body);
            if method == Method::PATCH {
                receiver::patch_session(&state.db, &state.session_patches, &origin, id, body)
                    .await
                    .map(|()| Written::Updated)
            } else {
                receiver::put_session(&state.db, &origin, id, body).await
            }
        },
    )
    .await?;
    // A session that starts, changes or stops changes its group's plan; a PATCH that only
    // reports energy or cost does not (the next plan reads it).
    let replan = method != Method::PATCH || patch_changes_plan(&body);
    if replan || state.engine.events.receivers() > 0 {
        let group = session_group(&state, &path.cc, &path.pid, &path.session_id).await;
        if replan && let Some(g) = group {
            replan::request_or_log(&state.engine, g, "session").await;
        }
        state.engine.events.meter([group], "session");
    }
    Ok(response)
}

/// Whether a Session PATCH body changes what the plan is made of: its status or its end.
fn patch_changes_plan(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| {
        ["status", "end_date_time"]
            .iter()
            .any(|k| v.get(k).is_some_and(|f| !f.is_null()))
    })
}

/// The group of a stored session's charge point (for the event stream).
async fn session_group(state: &AppState, cc: &str, pid: &str, session_id: &str) -> Option<i64> {
    let mut conn = state.db.conn().await.ok()?;
    let session = crate::store::sessions::get(&mut conn, cc, pid, session_id)
        .await
        .ok()??;
    crate::store::groups::group_of_evse(&mut conn, cc, pid, &session.record.evse_uid)
        .await
        .ok()?
}

async fn post_cdr(
    State(state): State<AppState>,
    Extension(version): Extension<OcpiVersion>,
    party: RegisteredParty,
    body: Bytes,
) -> Result<Response, OcpiError> {
    let result = async {
        let body = to_internal(version, json_body(&body)?);
        ensure_owned(&party, &body)?;
        let evse_uid = body
            .pointer("/cdr_location/evse_uid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (cc, pid, id) = receiver::post_cdr(
            &state.db,
            state.engine.chain.as_deref(),
            party.party_row,
            body,
            state.clock.now(),
        )
        .await?;
        // The session is over: its charge point's headroom goes to the others.
        if let Some(uid) = evse_uid {
            replan::request_for_evse_or_log(&state.engine, &cc, &pid, &uid, "cdr").await;
        }
        let mut headers = HeaderMap::new();
        let location = format!("{}/ocpi/{version}/cdrs/{id}", state.public_url);
        if let Ok(v) = HeaderValue::from_str(&location) {
            headers.insert(axum::http::header::LOCATION, v);
        }
        Ok((StatusCode::CREATED, headers, ok::<()>(&state, None)).into_response())
    }
    .await;
    count("cdrs", &result);
    result
}

async fn get_cdr(
    State(state): State<AppState>,
    party: RegisteredParty,
    Path(cdr_id): Path<String>,
) -> Result<Response, OcpiError> {
    // Scoped to the caller's own CDRs: another party's CDR id is as unknown as a missing one.
    let data = receiver::get_cdr(&state.db, party.party_row, &cdr_id).await?;
    Ok(ok(&state, Some(data)))
}

/// Largest page of [`list_tokens`] (`X-Limit`).
const TOKENS_PAGE: i64 = 1_000;

/// Query of an OCPI list (`date_from`, `date_to`, `offset`, `limit`).
#[derive(Debug, Deserialize)]
struct ListQuery {
    date_from: Option<String>,
    date_to: Option<String>,
    offset: Option<i64>,
    limit: Option<i64>,
}

/// `GET /tokens`: the Tokens sender interface, every token evflex issued to its users, paged
/// with `X-Total-Count`, `X-Limit` and a `Link` to the next page. Any registered party may
/// read it: a CPO needs every user's token to let them charge.
async fn list_tokens(
    State(state): State<AppState>,
    Extension(version): Extension<OcpiVersion>,
    _party: RegisteredParty,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Result<Response, OcpiError> {
    let instant = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| {
                crate::domain::parse_rfc3339(t)
                    .ok_or_else(|| OcpiError::invalid(format!("{field}: invalid DateTime {t:?}")))
            })
            .transpose()
    };
    let (from, to) = (
        instant("date_from", &q.date_from)?,
        instant("date_to", &q.date_to)?,
    );
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(OcpiError::invalid("offset: must not be negative"));
    }
    let limit = q.limit.unwrap_or(TOKENS_PAGE).clamp(1, TOKENS_PAGE);
    let mut conn = state.db.conn().await?;
    let (total, page) =
        crate::store::users::issued_tokens(&mut conn, from, to, offset, limit).await?;
    let identity = &state.identity;
    let data: Vec<Value> = page
        .iter()
        .map(|(uid, at)| crate::engine::tokens::token_object(identity, uid, *at))
        .collect();
    let next = offset + page.len() as i64;
    let mut response = ok(&state, Some(data));
    let headers = response.headers_mut();
    headers.insert("X-Total-Count", HeaderValue::from(total));
    headers.insert("X-Limit", HeaderValue::from(limit));
    if next < total {
        let mut url = format!(
            "{}/ocpi/{version}/tokens?offset={next}&limit={limit}",
            state.public_url
        );
        for (name, v) in [("date_from", &q.date_from), ("date_to", &q.date_to)] {
            if let Some(v) = v {
                url.push_str(&format!("&{name}={}", v.replace('+', "%2B")));
            }
        }
        if let Ok(link) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
            headers.insert("Link", link);
        }
    }
    Ok(response)
}

/// `POST /tokens/{token_uid}/authorize`: real-time authorisation of an evflex token. A token
/// evflex issued is `ALLOWED`; any other is 2004 (unknown token), as the spec says.
async fn authorize_token(
    State(state): State<AppState>,
    _party: RegisteredParty,
    Path(token_uid): Path<String>,
) -> Result<Response, OcpiError> {
    let mut conn = state.db.conn().await?;
    // A CiString: the CPO may spell the uid in any case; evflex issues it in upper case.
    let token_uid = token_uid.to_ascii_uppercase();
    let user = match crate::store::users::is_issued_shape(&token_uid) {
        true => crate::store::users::by_token_uid(&mut conn, &token_uid).await?,
        false => None,
    };
    let Some(user) = user else {
        return Err(OcpiError::new(StatusCode::NOT_FOUND, 2004, "unknown token"));
    };
    let uid = user.token_uid.unwrap_or(token_uid);
    let token = crate::engine::tokens::token_object(&state.identity, &uid, user.created_at);
    Ok(ok(
        &state,
        Some(serde_json::json!({"allowed": "ALLOWED", "token": token})),
    ))
}

/// An object that names its `country_code` and `party_id` (a CDR) must name one of the caller's
/// own roles. Missing codes are left to the receiver's validation (400, naming the field).
fn ensure_owned(party: &RegisteredParty, object: &Value) -> Result<(), OcpiError> {
    let code = |field: &str| object.get(field).and_then(Value::as_str);
    match (code("country_code"), code("party_id")) {
        (Some(cc), Some(pid)) => origin(party, cc, pid).map(|_| ()),
        _ => Ok(()),
    }
}

/// The `response_url` of a set-point: the CPO's asynchronous `ChargingProfileResult`.
async fn post_charging_profile_result(
    State(state): State<AppState>,
    party: RegisteredParty,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, OcpiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| OcpiError::invalid("id: not a set-point id"))?;
    let body = json_body(&body)?;
    let result: ChargingProfileResult = parse(body.clone()).map_err(OcpiError::invalid)?;
    let accepted = result.result == ChargingProfileResultType::Accepted;
    let mut conn = state.db.conn().await?;
    let now = state.clock.now();
    // Only the party the set-point was sent to may answer it; another party's id is unknown.
    let text = body.to_string();
    if !schedules::record_result(&mut conn, id, party.party_row, &text, accepted, now).await? {
        return Err(OcpiError::new(
            StatusCode::NOT_FOUND,
            2000,
            format!("unknown set-point {id}"),
        ));
    }
    if !accepted {
        // Refused after all: the group is re-planned with the charge point at its measured
        // or full draw.
        if let Some(sp) = schedules::get_setpoint(&mut conn, id).await? {
            drop(conn);
            replan::request_or_log(&state.engine, sp.record.group_id, "rejected").await;
        }
    }
    Ok(ok::<()>(&state, None))
}

/// `PUT /chargingprofiles/{session_id}`: the CPO's `ActiveChargingProfile` (the profile in
/// force at the session's charge point changed). Stored (`store::active_profiles`); where it
/// shows the session's newest profile applied, that profile is in force. Only for the caller's
/// own sessions: another party's session id is as unknown as a missing one.
async fn put_active_charging_profile(
    State(state): State<AppState>,
    party: RegisteredParty,
    Path(session_id): Path<String>,
    body: Bytes,
) -> Result<Response, OcpiError> {
    let body = json_body(&body)?;
    let active: ActiveChargingProfile = parse(body.clone()).map_err(OcpiError::invalid)?;
    let mut conn = state.db.conn().await?;
    let mut session = None;
    for (cc, pid) in &party.grant.party_codes {
        if let Some(s) = crate::store::sessions::get(&mut conn, cc, pid, &session_id).await? {
            session = Some(s);
            break;
        }
    }
    let session =
        session.ok_or_else(|| OcpiError::new(StatusCode::NOT_FOUND, 2000, "unknown session"))?;
    let now = state.clock.now();
    let source = active_profiles::Source::Put;
    crate::engine::setpoints::record_active(
        &mut conn,
        session.id,
        party.party_row,
        &active,
        &body,
        source,
        now,
    )
    .await?;
    tracing::info!(session = %session_id, "active charging profile reported by the CPO");
    Ok(ok::<()>(&state, None))
}

/// The `response_url` of evflex's `GET` of the profile in force behind set-point `{id}`: the
/// CPO's `ActiveChargingProfileResult`. Only the party the set-point went to may answer it.
async fn post_active_profile_result(
    State(state): State<AppState>,
    party: RegisteredParty,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, OcpiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| OcpiError::invalid("id: not a set-point id"))?;
    let body = json_body(&body)?;
    let result: ActiveChargingProfileResult = parse(body.clone()).map_err(OcpiError::invalid)?;
    let mut conn = state.db.conn().await?;
    let setpoint = schedules::get_setpoint(&mut conn, id)
        .await?
        .filter(|sp| sp.record.owner_party == Some(party.party_row))
        .ok_or_else(|| {
            OcpiError::new(
                StatusCode::NOT_FOUND,
                2000,
                format!("unknown set-point {id}"),
            )
        })?;
    match (&result.result, &result.profile) {
        (ChargingProfileResultType::Accepted, Some(active)) => {
            let profile = body.get("profile").cloned().unwrap_or_default();
            crate::engine::setpoints::record_active(
                &mut conn,
                setpoint.record.session_row,
                party.party_row,
                active,
                &profile,
                active_profiles::Source::Get,
                state.clock.now(),
            )
            .await?;
        }
        (other, _) => {
            tracing::info!(setpoint = id, result = ?other, "the CPO could not report the profile in force");
        }
    }
    Ok(ok::<()>(&state, None))
}
