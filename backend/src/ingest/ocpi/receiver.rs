//! Receiver interfaces: validate, then store in one transaction (nothing partial on error).
//!
//! Objects are stored per level (location without `evses`, EVSE without `connectors`,
//! connector); a PATCH is merged into the stored object (top-level fields replace, as OCPI
//! specifies) and the merged object is validated like a PUT before anything is written. The
//! session PATCH is the hot path (thousands per second): it is parsed into
//! [`model::SessionPatch`] and applied as one `UPDATE`.

use super::model::{self, Cdr, Connector, Evse, Location, Session, SessionPatch, parse};
use crate::domain::WattHours;
use crate::domain::bounds;
use crate::ingest::{IngestError, IngestResult, Written, assets};
use crate::store::locations::{self, ConnectorRecord, EvseRecord, LocationRecord, StoredEvse};
use crate::store::sessions::{self, CdrRecord, KeyedPatch, PatchQueue, SessionRecord};
use crate::store::{Conn, Db, meter, users};
use evflex_chain::work::CdrFacts;
use serde_json::{Map, Value};

/// Where an object arrived: its CPO party (from the URL) and the party row that sent it.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Country code from the URL.
    pub country_code: String,
    /// Party id from the URL.
    pub party_id: String,
    /// The authenticated party row.
    pub owner_party: i64,
}

fn invalid(msg: impl Into<String>) -> IngestError {
    IngestError::Invalid(msg.into())
}

/// A [`bounds`] check as an ingestion error (400 naming the field).
fn bounded<T>(checked: Result<T, String>) -> IngestResult<T> {
    checked.map_err(IngestError::Invalid)
}

/// A connector's values within what equipment has (V, A, W), and its id an OCPI id.
fn check_connector(c: &Connector, at: &str) -> IngestResult<()> {
    bounded(bounds::id(&format!("{at}id"), &c.id, bounds::ID_MAX_LEN))?;
    for (field, value, range, unit) in [
        ("max_voltage", c.max_voltage, &bounds::VOLTAGE_V, "V"),
        ("max_amperage", c.max_amperage, &bounds::CURRENT_A, "A"),
        (
            "max_electric_power",
            c.max_electric_power,
            &bounds::POWER_W,
            "W",
        ),
    ] {
        if let Some(v) = value {
            bounded(bounds::within(&format!("{at}{field}"), v, range, unit))?;
        }
    }
    if let Some(w) = c.rated_power_w() {
        bounded(bounds::within(
            &format!("{at}max_voltage × max_amperage"),
            w,
            &bounds::POWER_W,
            "W",
        ))?;
    }
    Ok(())
}

/// An EVSE's connectors: each within bounds, ids unique within the EVSE.
fn check_evse(evse: &Evse, at: &str) -> IngestResult<()> {
    for (i, c) in evse.connectors.iter().enumerate() {
        check_connector(c, &format!("{at}connectors[{i}]."))?;
        if evse.connectors[..i].iter().any(|o| o.id == c.id) {
            return Err(invalid(format!(
                "{at}connectors[{i}].id: {:?} appears twice in this EVSE",
                c.id
            )));
        }
    }
    Ok(())
}

/// An amount in EUR as micro-EUR within [`bounds::AMOUNT_MICRO_EUR`] (never negative).
fn amount(field: &str, eur: f64) -> IngestResult<i64> {
    bounded(bounds::scaled_within(
        field,
        eur,
        1_000_000.0,
        &bounds::AMOUNT_MICRO_EUR,
        "EUR",
    ))
}

fn object(body: Value, what: &str) -> IngestResult<Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(invalid(format!("body: a {what} must be a JSON object"))),
    }
}

/// OCPI ids and party codes are CiStrings (case-insensitive): a body may spell them in another
/// case than the URL that addresses it (Python's extrawest-ocpi, for one, lowercases every
/// CiString it builds). Each `(field, in_url)` the body spells the same but for case takes the
/// URL's spelling, so the object is stored and found under the one the URL used. Lookups
/// themselves stay exact: a later URL must spell the id as the first one did.
fn adopt_url_spelling(body: &mut Value, fields: &[(&str, &str)]) {
    let Some(map) = body.as_object_mut() else {
        return;
    };
    for (field, in_url) in fields {
        if let Some(Value::String(v)) = map.get_mut(*field)
            && v != in_url
            && v.eq_ignore_ascii_case(in_url)
        {
            *v = (*in_url).to_owned();
        }
    }
}

fn same(field: &str, in_body: &str, in_url: &str) -> IngestResult<()> {
    if in_body == in_url {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field}: {in_body:?} does not match the URL ({in_url:?})"
        )))
    }
}

fn merge(stored: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        stored.insert(k, v);
    }
}

fn require_last_updated(patch: &Map<String, Value>) -> IngestResult<()> {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Meta {
        last_updated: model::DateTime,
    }
    parse::<Meta>(Value::Object(patch.clone()))
        .map(|_| ())
        .map_err(IngestError::Invalid)
}

fn evse_json(evse: &StoredEvse, connectors: &[ConnectorRecord]) -> Map<String, Value> {
    let mut map = match &evse.record.body {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    map.insert(
        "connectors".to_owned(),
        Value::Array(connectors.iter().map(|c| c.body.clone()).collect()),
    );
    map
}

/// Stores one validated EVSE with its connectors and syncs its chain asset record.
async fn write_evse(
    conn: &mut Conn,
    cc: &str,
    pid: &str,
    location_id: &str,
    evse: &Evse,
    mut raw: Map<String, Value>,
    now: i64,
) -> IngestResult<()> {
    let raw_connectors = match raw.remove("connectors") {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    check_evse(evse, "")?;
    let connectors: Vec<ConnectorRecord> = evse
        .connectors
        .iter()
        .zip(raw_connectors)
        .map(|(c, body)| connector_record(c, body, evse.last_updated.0))
        .collect();
    let strongest = evse
        .connectors
        .iter()
        .filter(|c| c.rated_power_w().is_some())
        .max_by_key(|c| c.rated_power_w())
        .or(evse.connectors.first());
    let record = EvseRecord {
        country_code: cc.to_owned(),
        party_id: pid.to_owned(),
        location_id: location_id.to_owned(),
        uid: evse.uid.as_str().to_owned(),
        evse_id: evse.evse_id.clone(),
        status: evse.status.as_str().to_owned(),
        rated_power_w: strongest.and_then(Connector::rated_power_w),
        power_type: strongest
            .and_then(|c| c.power_type)
            .map(|p| p.as_str().to_owned()),
        phases: strongest
            .and_then(|c| c.power_type)
            .map(model::PowerType::phases),
        max_voltage_v: strongest.and_then(|c| c.max_voltage),
        max_current_a: strongest.and_then(|c| c.max_amperage),
        connector_standard: strongest.map(|c| c.standard.clone()),
        body: Value::Object(raw),
        last_updated: evse.last_updated.0,
    };
    let row = locations::upsert_evse(conn, &record).await?;
    locations::replace_connectors(conn, row, &connectors).await?;
    assets::sync_evse(conn, cc, pid, evse.uid.as_str(), now).await?;
    Ok(())
}

fn connector_record(c: &Connector, body: Value, evse_last_updated: i64) -> ConnectorRecord {
    ConnectorRecord {
        connector_id: c.id.clone(),
        standard: Some(c.standard.clone()),
        format: Some(c.format.as_str().to_owned()),
        power_type: c.power_type.map(|p| p.as_str().to_owned()),
        max_voltage_v: c.max_voltage,
        max_current_a: c.max_amperage,
        max_electric_power_w: c.rated_power_w(),
        body,
        last_updated: c.last_updated.map_or(evse_last_updated, |t| t.0),
    }
}

/// Stores a validated location (and the EVSEs it carries).
async fn write_location(
    conn: &mut Conn,
    origin: &Origin,
    loc: &Location,
    mut raw: Map<String, Value>,
    now: i64,
) -> IngestResult<()> {
    let raw_evses = raw.remove("evses");
    bounded(bounds::id("id", &loc.id, bounds::ID_MAX_LEN))?;
    if let Some(evses) = &loc.evses {
        for (i, evse) in evses.iter().enumerate() {
            check_evse(evse, &format!("evses[{i}]."))?;
            if evses[..i].iter().any(|o| o.uid == evse.uid) {
                return Err(invalid(format!(
                    "evses[{i}].uid: {:?} appears twice in this location",
                    evse.uid.as_str()
                )));
            }
        }
    }
    locations::upsert_location(
        conn,
        &LocationRecord {
            country_code: origin.country_code.clone(),
            party_id: origin.party_id.clone(),
            location_id: loc.id.clone(),
            owner_party: Some(origin.owner_party),
            name: loc.name.clone(),
            body: Value::Object(raw),
            last_updated: loc.last_updated.0,
        },
    )
    .await?;
    if let (Some(evses), Some(Value::Array(raw_evses))) = (&loc.evses, raw_evses) {
        for (evse, raw) in evses.iter().zip(raw_evses) {
            let raw = object(raw, "EVSE")?;
            write_evse(
                conn,
                &origin.country_code,
                &origin.party_id,
                &loc.id,
                evse,
                raw,
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// The object a Locations URL names: a location, one of its EVSEs, or one of their connectors.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LocationRef {
    /// Location id.
    pub location_id: String,
    /// EVSE uid (EVSE and connector URLs).
    pub evse_uid: Option<String>,
    /// Connector id (connector URLs).
    pub connector_id: Option<String>,
}

/// `PUT` (a whole object) or `PATCH` (some fields) of the location, EVSE or connector `target`
/// names; a location PATCH's `evses` field carries whole EVSEs to store.
pub async fn write_location_object(
    db: &Db,
    origin: &Origin,
    target: &LocationRef,
    body: Value,
    is_patch: bool,
    now: i64,
) -> IngestResult<Written> {
    let location_id = target.location_id.as_str();
    match (target.evse_uid.as_deref(), target.connector_id.as_deref()) {
        (None, _) => write_location_level(db, origin, location_id, body, is_patch, now).await,
        (Some(evse), None) => {
            write_evse_level(db, origin, location_id, evse, body, is_patch, now).await
        }
        (Some(evse), Some(connector)) => {
            write_connector(
                db,
                origin,
                location_id,
                evse,
                connector,
                body,
                is_patch,
                now,
            )
            .await
        }
    }
}

/// The object a PUT leaves (the body) or a PATCH leaves (the `stored` object with the body's
/// top-level fields replaced, as OCPI specifies), validated as `T` and `check`ed against the URL
/// before anything is written. Returns it parsed and raw.
async fn incoming<T: serde::de::DeserializeOwned>(
    conn: &mut Conn,
    body: Value,
    is_patch: bool,
    what: &str,
    stored: impl AsyncFnOnce(&mut Conn) -> IngestResult<Map<String, Value>>,
    check: impl Fn(&T) -> IngestResult<()>,
) -> IngestResult<(T, Map<String, Value>)> {
    if !is_patch {
        let parsed: T = parse(body.clone()).map_err(IngestError::Invalid)?;
        check(&parsed)?;
        return Ok((parsed, object(body, what)?));
    }
    let patch = object(body, &format!("{what} PATCH"))?;
    require_last_updated(&patch)?;
    let mut merged = stored(conn).await?;
    merge(&mut merged, patch);
    let parsed: T = parse(Value::Object(merged.clone())).map_err(IngestError::Invalid)?;
    check(&parsed)?;
    Ok((parsed, merged))
}

fn unknown_location(location_id: &str) -> IngestError {
    IngestError::UnknownLocation(format!("unknown location {location_id}"))
}

/// A whole Location, or some fields of one.
#[tracing::instrument(skip_all, fields(location = location_id))]
async fn write_location_level(
    db: &Db,
    origin: &Origin,
    location_id: &str,
    body: Value,
    is_patch: bool,
    now: i64,
) -> IngestResult<Written> {
    let (cc, pid) = (origin.country_code.as_str(), origin.party_id.as_str());
    let mut body = body;
    adopt_url_spelling(
        &mut body,
        &[("country_code", cc), ("party_id", pid), ("id", location_id)],
    );
    let mut tx = db.begin().await?;
    let existed = locations::get_location(&mut tx, cc, pid, location_id)
        .await?
        .is_some();
    let stored = async |conn: &mut Conn| {
        let stored = locations::get_location(conn, cc, pid, location_id)
            .await?
            .ok_or_else(|| unknown_location(location_id))?;
        object(stored.body, "stored Location")
    };
    let check = |loc: &Location| {
        same("country_code", &loc.country_code, cc)?;
        same("party_id", &loc.party_id, pid)?;
        same("id", &loc.id, location_id)
    };
    let (loc, raw) = incoming(&mut tx, body, is_patch, "Location", stored, check).await?;
    write_location(&mut tx, origin, &loc, raw, now).await?;
    tx.commit().await?;
    Ok(Written::new_if(existed))
}

/// A whole EVSE (of a stored location), or some fields of a stored one.
#[tracing::instrument(skip_all, fields(location = location_id, evse = evse_uid))]
async fn write_evse_level(
    db: &Db,
    origin: &Origin,
    location_id: &str,
    evse_uid: &str,
    body: Value,
    is_patch: bool,
    now: i64,
) -> IngestResult<Written> {
    let (cc, pid) = (origin.country_code.as_str(), origin.party_id.as_str());
    let mut body = body;
    adopt_url_spelling(&mut body, &[("uid", evse_uid)]);
    let mut tx = db.begin().await?;
    let existed = locations::get_evse(&mut tx, cc, pid, evse_uid)
        .await?
        .is_some_and(|e| e.record.location_id == location_id);
    let stored = async |conn: &mut Conn| {
        let (stored, connectors) = load_evse(conn, origin, location_id, evse_uid).await?;
        Ok(evse_json(&stored, &connectors))
    };
    let check = |evse: &Evse| same("uid", evse.uid.as_str(), evse_uid);
    let (evse, raw) = incoming(&mut tx, body, is_patch, "EVSE", stored, check).await?;
    if !is_patch
        && locations::get_location(&mut tx, cc, pid, location_id)
            .await?
            .is_none()
    {
        return Err(unknown_location(location_id));
    }
    write_evse(&mut tx, cc, pid, location_id, &evse, raw, now).await?;
    tx.commit().await?;
    Ok(Written::new_if(existed))
}

async fn load_evse(
    conn: &mut Conn,
    origin: &Origin,
    location_id: &str,
    evse_uid: &str,
) -> IngestResult<(StoredEvse, Vec<ConnectorRecord>)> {
    let evse = locations::get_evse(conn, &origin.country_code, &origin.party_id, evse_uid)
        .await?
        .filter(|e| e.record.location_id == location_id)
        .ok_or_else(|| {
            IngestError::NotFound(format!("unknown EVSE {evse_uid} at location {location_id}"))
        })?;
    let connectors = locations::connectors_of(conn, evse.id).await?;
    Ok((evse, connectors))
}

/// `PUT` (whole) or `PATCH` (some fields) of one connector.
#[tracing::instrument(skip_all, fields(location = location_id, evse = evse_uid, connector = connector_id))]
#[allow(clippy::too_many_arguments)]
async fn write_connector(
    db: &Db,
    origin: &Origin,
    location_id: &str,
    evse_uid: &str,
    connector_id: &str,
    body: Value,
    is_patch: bool,
    now: i64,
) -> IngestResult<Written> {
    let mut body = body;
    adopt_url_spelling(&mut body, &[("id", connector_id)]);
    let incoming = object(body, "Connector")?;
    if is_patch {
        require_last_updated(&incoming)?;
    }
    let mut tx = db.begin().await?;
    let (stored, connectors) = load_evse(&mut tx, origin, location_id, evse_uid).await?;
    let mut raw_connectors: Vec<Value> = connectors.iter().map(|c| c.body.clone()).collect();
    let position = connectors
        .iter()
        .position(|c| c.connector_id == connector_id);
    let new_connector = if is_patch {
        let i = position.ok_or_else(|| {
            IngestError::NotFound(format!(
                "unknown connector {connector_id} of EVSE {evse_uid}"
            ))
        })?;
        let mut merged = object(raw_connectors[i].clone(), "stored Connector")?;
        merge(&mut merged, incoming);
        merged
    } else {
        incoming
    };
    let connector: Connector =
        parse(Value::Object(new_connector.clone())).map_err(IngestError::Invalid)?;
    same("id", &connector.id, connector_id)?;
    let written = Written::new_if(position.is_some());
    match position {
        Some(i) => raw_connectors[i] = Value::Object(new_connector),
        None => raw_connectors.push(Value::Object(new_connector)),
    }
    let mut evse_raw = evse_json(&stored, &[]);
    evse_raw.insert("connectors".to_owned(), Value::Array(raw_connectors));
    let evse: Evse = parse(Value::Object(evse_raw.clone())).map_err(IngestError::Invalid)?;
    write_evse(
        &mut tx,
        &origin.country_code,
        &origin.party_id,
        location_id,
        &evse,
        evse_raw,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(written)
}

/// `GET` of a stored location (with EVSEs and connectors), EVSE or connector.
pub async fn get_location_object(
    db: &Db,
    origin: &Origin,
    target: &LocationRef,
) -> IngestResult<Value> {
    let location_id = target.location_id.as_str();
    let mut conn = db.conn().await?;
    let Some(evse_uid) = target.evse_uid.as_deref() else {
        let loc = locations::get_location(
            &mut conn,
            &origin.country_code,
            &origin.party_id,
            location_id,
        )
        .await?
        .ok_or_else(|| unknown_location(location_id))?;
        let mut map = object(loc.body, "stored Location")?;
        let mut evses = Vec::new();
        for e in locations::evses_of_location(
            &mut conn,
            &origin.country_code,
            &origin.party_id,
            location_id,
        )
        .await?
        {
            let connectors = locations::connectors_of(&mut conn, e.id).await?;
            evses.push(Value::Object(evse_json(&e, &connectors)));
        }
        if !evses.is_empty() {
            map.insert("evses".to_owned(), Value::Array(evses));
        }
        return Ok(Value::Object(map));
    };
    let (evse, connectors) = load_evse(&mut conn, origin, location_id, evse_uid).await?;
    match target.connector_id.as_deref() {
        None => Ok(Value::Object(evse_json(&evse, &connectors))),
        Some(id) => connectors
            .into_iter()
            .find(|c| c.connector_id == id)
            .map(|c| c.body)
            .ok_or_else(|| IngestError::NotFound(format!("unknown connector {id}"))),
    }
}

fn session_record(origin: &Origin, s: &Session, body: Value) -> IngestResult<SessionRecord> {
    for (field, value) in [
        ("id", s.id.as_str()),
        ("location_id", s.location_id.as_str()),
        ("connector_id", s.connector_id.as_str()),
        ("cdr_token.uid", s.cdr_token.uid.as_str()),
    ] {
        bounded(bounds::id(field, value, bounds::ID_MAX_LEN))?;
    }
    bounded(bounds::instant("start_date_time", s.start_date_time.0))?;
    if let Some(end) = s.end_date_time {
        bounded(bounds::instant("end_date_time", end.0))?;
        bounded(bounds::span("end_date_time", s.start_date_time.0, end.0))?;
    }
    if let Some(cost) = &s.total_cost {
        amount("total_cost.excl_vat", cost.excl_vat)?;
        if let Some(incl) = cost.incl_vat {
            amount("total_cost.incl_vat", incl)?;
        }
    }
    Ok(SessionRecord {
        country_code: origin.country_code.clone(),
        party_id: origin.party_id.clone(),
        session_id: s.id.clone(),
        owner_party: Some(origin.owner_party),
        location_id: s.location_id.clone(),
        evse_uid: s.evse_uid.as_str().to_owned(),
        connector_id: s.connector_id.clone(),
        status: s.status.as_str().to_owned(),
        start_ts: s.start_date_time.0,
        end_ts: s.end_date_time.map(|t| t.0),
        energy_wh: energy_wh("kwh", s.kwh)?,
        token_uid: s.cdr_token.uid.clone(),
        contract_id: Some(s.cdr_token.contract_id.clone()),
        charging_periods: body
            .get("charging_periods")
            .cloned()
            .unwrap_or(Value::Array(vec![])),
        total_cost: body.get("total_cost").cloned(),
        body,
        last_updated: s.last_updated.0,
    })
}

/// Energy of one session or CDR in Wh, within [`bounds::SESSION_ENERGY_WH`].
fn energy_wh(field: &str, kwh: f64) -> IngestResult<i64> {
    bounded(bounds::scaled_within(
        field,
        kwh,
        1_000.0,
        &bounds::SESSION_ENERGY_WH,
        "kWh",
    ))
}

/// `PUT /sessions/{cc}/{party}/{session_id}`: a whole Session. Links it to the user evflex
/// issued its `cdr_token.uid` to, if any (`engine::tokens`): the only way a session becomes a
/// user's.
#[tracing::instrument(skip_all, fields(session = session_id))]
pub async fn put_session(
    db: &Db,
    origin: &Origin,
    session_id: &str,
    body: Value,
) -> IngestResult<Written> {
    let mut body = body;
    adopt_url_spelling(
        &mut body,
        &[
            ("country_code", &origin.country_code),
            ("party_id", &origin.party_id),
            ("id", session_id),
        ],
    );
    let s: Session = parse(body.clone()).map_err(IngestError::Invalid)?;
    same("country_code", &s.country_code, &origin.country_code)?;
    same("party_id", &s.party_id, &origin.party_id)?;
    same("id", &s.id, session_id)?;
    object(body.clone(), "Session")?;
    let record = session_record(origin, &s, body)?;
    let mut tx = db.begin().await?;
    // One open session per EVSE: a car is charging there or not. A second one is refused until
    // the CPO completes the first (nothing is changed, so nothing is lost).
    if matches!(
        s.status,
        model::SessionStatus::Active | model::SessionStatus::Pending
    ) && let Some(open) = sessions::open_session_on_evse(
        &mut tx,
        &origin.country_code,
        &origin.party_id,
        s.evse_uid.as_str(),
    )
    .await?
        && open.record.session_id != s.id
    {
        return Err(invalid(format!(
            "evse_uid: {} already has the open session {} ({}); complete it first",
            s.evse_uid.as_str(),
            open.record.session_id,
            open.record.status
        )));
    }
    let existed = sessions::get(&mut tx, &origin.country_code, &origin.party_id, &s.id)
        .await?
        .is_some();
    let row = sessions::upsert(&mut tx, &record).await?;
    if let Some(user) = users::by_token_uid(&mut tx, &record.token_uid).await? {
        let stored = sessions::get_by_row(&mut tx, row).await?;
        if stored.is_some_and(|s| s.user_id.is_none()) {
            sessions::set_user(&mut tx, row, user.id).await?;
        }
    }
    tx.commit().await?;
    Ok(Written::new_if(existed))
}

/// `PATCH /sessions/{cc}/{party}/{session_id}`: validated here, then applied by the
/// [`PatchQueue`] (group commit); returns once committed.
pub async fn patch_session(
    db: &Db,
    queue: &PatchQueue,
    origin: &Origin,
    session_id: &str,
    body: Value,
) -> IngestResult<()> {
    if !body.is_object() {
        return Err(invalid("body: a Session PATCH must be a JSON object"));
    }
    let total_cost = body.get("total_cost").cloned();
    let charging_periods = body.get("charging_periods").cloned();
    let p: SessionPatch = parse(body).map_err(IngestError::Invalid)?;
    if let Some(end) = p.end_date_time {
        bounded(bounds::instant("end_date_time", end.0))?;
    }
    if let Some(cost) = &p.total_cost {
        amount("total_cost.excl_vat", cost.excl_vat)?;
        if let Some(incl) = cost.incl_vat {
            amount("total_cost.incl_vat", incl)?;
        }
    }
    let patch = sessions::SessionPatch {
        status: p.status.map(|s| s.as_str().to_owned()),
        end_ts: p.end_date_time.map(|t| t.0),
        energy_wh: p.kwh.map(|k| energy_wh("kwh", k)).transpose()?,
        charging_periods: p.charging_periods.and(charging_periods),
        total_cost: p.total_cost.and(total_cost),
        last_updated: p.last_updated.0,
    };
    let keyed = KeyedPatch {
        country_code: origin.country_code.clone(),
        party_id: origin.party_id.clone(),
        session_id: session_id.to_owned(),
        patch,
    };
    let last_updated = keyed.patch.last_updated;
    if queue.patch(keyed).await? {
        return Ok(());
    }
    // Not applied: the session is unknown, or what is stored is newer than this PATCH.
    let mut conn = db.conn().await?;
    match sessions::get(
        &mut conn,
        &origin.country_code,
        &origin.party_id,
        session_id,
    )
    .await?
    {
        Some(stored) if stored.record.last_updated > last_updated => Err(invalid(format!(
            "last_updated: {} is older than the stored session's ({}); the PATCH is not applied",
            crate::domain::format_rfc3339(last_updated),
            crate::domain::format_rfc3339(stored.record.last_updated)
        ))),
        _ => Err(IngestError::NotFound(format!(
            "unknown session {session_id}"
        ))),
    }
}

/// `GET` of a stored session: the last PUT with the columns evflex keeps current.
pub async fn get_session(db: &Db, origin: &Origin, session_id: &str) -> IngestResult<Value> {
    let mut conn = db.conn().await?;
    let s = sessions::get(
        &mut conn,
        &origin.country_code,
        &origin.party_id,
        session_id,
    )
    .await?
    .ok_or_else(|| IngestError::NotFound(format!("unknown session {session_id}")))?;
    let r = s.record;
    let mut map = object(r.body, "stored Session")?;
    map.insert("status".to_owned(), Value::from(r.status));
    map.insert(
        "kwh".to_owned(),
        Value::from(WattHours(r.energy_wh).as_kwh()),
    );
    map.insert("charging_periods".to_owned(), r.charging_periods);
    if let Some(cost) = r.total_cost {
        map.insert("total_cost".to_owned(), cost);
    }
    if let Some(end) = r.end_ts {
        map.insert(
            "end_date_time".to_owned(),
            Value::from(crate::domain::format_rfc3339(end)),
        );
    }
    map.insert(
        "last_updated".to_owned(),
        Value::from(crate::domain::format_rfc3339(r.last_updated)),
    );
    Ok(Value::Object(map))
}

/// The CDR as stored, once every value is within [`bounds`] (pure: the fuzz tests call it).
fn cdr_record(cdr: &Cdr, owner_party: i64, body: Value) -> IngestResult<CdrRecord> {
    for (field, value) in [
        ("id", cdr.id.as_str()),
        ("cdr_location.evse_uid", cdr.cdr_location.evse_uid.as_str()),
        ("cdr_token.uid", cdr.cdr_token.uid.as_str()),
    ]
    .into_iter()
    .chain(cdr.session_id.as_deref().map(|s| ("session_id", s)))
    {
        bounded(bounds::id(field, value, bounds::ID_MAX_LEN))?;
    }
    bounded(bounds::instant("start_date_time", cdr.start_date_time.0))?;
    bounded(bounds::instant("end_date_time", cdr.end_date_time.0))?;
    bounded(bounds::span(
        "end_date_time",
        cdr.start_date_time.0,
        cdr.end_date_time.0,
    ))?;
    bounded(bounds::scaled_within(
        "total_time",
        cdr.total_time,
        3_600.0,
        &bounds::DURATION_S,
        "h",
    ))?;
    if let Some(parking) = cdr.total_parking_time {
        bounded(bounds::scaled_within(
            "total_parking_time",
            parking,
            3_600.0,
            &bounds::DURATION_S,
            "h",
        ))?;
    }
    for (i, t) in cdr.tariffs.iter().enumerate() {
        bounded(super::tariffs::check_tariff(t, &format!("tariffs[{i}].")))?;
    }
    let cost = amount;
    Ok(CdrRecord {
        country_code: cdr.country_code.clone(),
        party_id: cdr.party_id.clone(),
        cdr_id: cdr.id.clone(),
        owner_party: Some(owner_party),
        session_id: cdr.session_id.clone(),
        evse_uid: cdr.cdr_location.evse_uid.clone(),
        start_ts: cdr.start_date_time.0,
        end_ts: cdr.end_date_time.0,
        energy_wh: energy_wh("total_energy", cdr.total_energy)?,
        total_cost_excl_vat_micro_eur: cdr
            .total_cost
            .as_ref()
            .map(|c| cost("total_cost.excl_vat", c.excl_vat))
            .transpose()?,
        total_cost_incl_vat_micro_eur: cdr
            .total_cost
            .as_ref()
            .and_then(|c| c.incl_vat)
            .map(|v| cost("total_cost.incl_vat", v))
            .transpose()?,
        currency: cdr.currency.clone(),
        token_uid: cdr.cdr_token.uid.clone(),
        body,
    })
}

/// The flexibility a session gave, the basis of its FLEX reward: measured from the meter
/// register over the session against its uncontrolled baseline (`billing::flexibility`), or,
/// without two register readings, the largest shift a plan asked of it.
async fn session_flexibility(
    conn: &mut Conn,
    session: &sessions::StoredSession,
    cdr: &CdrRecord,
) -> IngestResult<crate::billing::flexibility::Measured> {
    let planned = crate::billing::flexibility::Measured {
        shifted_wh: session.shifted_wh,
        value_micro_eur: session.shifted_value_micro_eur,
    };
    let (start, end) = (cdr.start_ts, cdr.end_ts.max(cdr.start_ts));
    let r = &session.record;
    let readings =
        meter::register_series(conn, &r.country_code, &r.party_id, &r.evse_uid, start, end).await?;
    let rated = locations::get_evse(conn, &r.country_code, &r.party_id, &r.evse_uid)
        .await?
        .and_then(|e| e.record.rated_power_w)
        .unwrap_or(crate::config::EngineConfig::default().default_evse_power_w);
    let vehicle_max = crate::store::requests::accepted_for_session(conn, session.id)
        .await?
        .and_then(|q| q.vehicle_max_power_w);
    let max_power_w = crate::engine::snapshot::vehicle_power_w(rated, vehicle_max);
    let prices = crate::store::prices::in_range(conn, start, end).await?;
    let flat = prices.first().map_or(0, |(_, p)| *p);
    Ok(
        crate::billing::flexibility::measured(start, end, max_power_w, &readings, &prices, flat)
            .unwrap_or(planned),
    )
}

/// `POST /cdrs`: a CDR. Stores it and enqueues its `settlement` in the same transaction;
/// returns (country code, party id, CDR id). A CDR already stored is accepted again without a
/// second settlement.
#[tracing::instrument(skip_all)]
pub async fn post_cdr(
    db: &Db,
    chain: Option<&crate::chain::ChainContext>,
    owner_party: i64,
    body: Value,
    now: i64,
) -> IngestResult<(String, String, String)> {
    // Party codes are CiStrings; evflex keeps them in upper case (`PartyKey`).
    let mut body = body;
    for field in ["country_code", "party_id"] {
        if let Some(Value::String(code)) = body.get_mut(field) {
            code.make_ascii_uppercase();
        }
    }
    let cdr: Cdr = parse(body.clone()).map_err(IngestError::Invalid)?;
    object(body.clone(), "CDR")?;
    let record = cdr_record(&cdr, owner_party, body)?;
    let mut tx = db.begin().await?;
    if sessions::insert_cdr(&mut tx, &record, now).await? {
        let session = match &cdr.session_id {
            Some(id) => sessions::get(&mut tx, &cdr.country_code, &cdr.party_id, id).await?,
            None => None,
        };
        let user_id = match session.as_ref().and_then(|s| s.user_id) {
            Some(id) => Some(id),
            None => users::by_token_uid(&mut tx, &record.token_uid)
                .await?
                .map(|u| u.id),
        };
        let flexibility = match &session {
            Some(s) => Some(session_flexibility(&mut tx, s, &record).await?),
            None => None,
        };
        let payload = CdrFacts {
            country_code: record.country_code.clone(),
            party_id: record.party_id.clone(),
            cdr_id: record.cdr_id.clone(),
            session_id: record.session_id.clone(),
            evse_uid: record.evse_uid.clone(),
            user_id,
            token_uid: record.token_uid.clone(),
            start_ts: record.start_ts,
            end_ts: record.end_ts,
            energy_wh: record.energy_wh,
            total_cost_excl_vat_micro: record.total_cost_excl_vat_micro_eur,
            total_cost_incl_vat_micro: record.total_cost_incl_vat_micro_eur,
            currency: record.currency.clone(),
            shifted_wh: flexibility.map_or(0, |f| f.shifted_wh),
            shifted_value_micro_eur: flexibility.map_or(0, |f| f.value_micro_eur),
        };
        let key = format!(
            "settlement:{}*{}*{}",
            record.country_code, record.party_id, record.cdr_id
        );
        let pricing = crate::billing::CdrPricing {
            tariffs: cdr.tariffs.clone(),
            tariff_ids: crate::billing::tariff_ids_of_periods(
                record.body.get("charging_periods").unwrap_or(&Value::Null),
            ),
            usage: crate::billing::tariff::usage_from_cdr(
                record.start_ts,
                record.end_ts,
                record.energy_wh,
                cdr.total_parking_time
                    .map_or(0, |h| (h * 3_600.0).round() as i64),
                &cdr.charging_periods,
            ),
            location_id: cdr.cdr_location.id.clone(),
            connector_id: cdr.cdr_location.connector_id.clone(),
        };
        // With a chain, the bill is computed, signed and stored here too (same transaction).
        crate::billing::enqueue_settlement(&mut tx, chain, &key, payload, &pricing, now).await?;
    }
    tx.commit().await?;
    Ok((cdr.country_code, cdr.party_id, cdr.id))
}

/// `GET /cdrs/{id}`: a CDR `owner_party` sent, as received (another party's is unknown).
pub async fn get_cdr(db: &Db, owner_party: i64, cdr_id: &str) -> IngestResult<Value> {
    let mut conn = db.conn().await?;
    sessions::get_cdr_body(&mut conn, owner_party, cdr_id)
        .await?
        .ok_or_else(|| IngestError::NotFound(format!("unknown CDR {cdr_id}")))
}

#[cfg(test)]
mod fuzz;
