//! OCPI Sessions and CDRs. Owns `sessions` and `cdrs`.
//!
//! A session PATCH is an `UPDATE` of the columns evflex computes with (`COALESCE` keeps what
//! the PATCH leaves out), grouped with the other PATCHes waiting into one statement and one
//! commit by [`PatchQueue`]; `body` keeps the object of the last PUT and the columns override it
//! when the session is read back.

use super::{Conn, Db, StoreError, StoreResult, from_json, to_json};
use sqlx::FromRow;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A session as evflex stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// OCPI session id.
    pub session_id: String,
    /// The party row that sent it.
    pub owner_party: Option<i64>,
    /// Location id.
    pub location_id: String,
    /// EVSE uid.
    pub evse_uid: String,
    /// Connector id.
    pub connector_id: String,
    /// OCPI `SessionStatus`.
    pub status: String,
    /// Start (Unix seconds).
    pub start_ts: i64,
    /// End (Unix seconds), when ended.
    pub end_ts: Option<i64>,
    /// Energy charged so far (Wh; OCPI `kwh`).
    pub energy_wh: i64,
    /// `cdr_token.uid`.
    pub token_uid: String,
    /// `cdr_token.contract_id`.
    pub contract_id: Option<String>,
    /// `charging_periods` as received.
    pub charging_periods: serde_json::Value,
    /// `total_cost` as received.
    pub total_cost: Option<serde_json::Value>,
    /// The Session object of the last PUT.
    pub body: serde_json::Value,
    /// `last_updated` (Unix seconds).
    pub last_updated: i64,
}

/// A stored session with the columns evflex adds.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    /// Row id.
    pub id: i64,
    /// The record.
    pub record: SessionRecord,
    /// User linked to the session (by a charging request or the user's token uid).
    pub user_id: Option<i64>,
    /// Energy the latest schedule shifted away from the as-fast-as-possible baseline (Wh).
    pub shifted_wh: i64,
    /// Value of that shift at the day's prices (micro-EUR).
    pub shifted_value_micro_eur: i64,
    /// The most the car was seen able to draw (W): set when it drew clearly less than its limit
    /// in force (tapering, full, or a vehicle maximum below the charge point's), `None` while it
    /// takes what it is given (`engine::closed_loop`).
    pub observed_max_w: Option<i64>,
    /// Since when the car draws clearly more than its limit in force (Unix seconds), `None`
    /// while it complies (`engine::closed_loop`).
    pub over_limit_since: Option<i64>,
    /// The taper knee (‰ SoC) learned for the car from its meter values, `None` until a reading
    /// shows one (`engine::closed_loop::knee_from_reading`).
    pub taper_knee_permille: Option<i64>,
}

/// The fields a session PATCH may change, already parsed (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPatch {
    /// New status.
    pub status: Option<String>,
    /// New end.
    pub end_ts: Option<i64>,
    /// New energy (Wh).
    pub energy_wh: Option<i64>,
    /// New charging periods.
    pub charging_periods: Option<serde_json::Value>,
    /// New total cost.
    pub total_cost: Option<serde_json::Value>,
    /// `last_updated` (required by OCPI in every PATCH).
    pub last_updated: i64,
}

#[derive(FromRow)]
struct SessionRow {
    id: i64,
    country_code: String,
    party_id: String,
    session_id: String,
    owner_party: Option<i64>,
    location_id: String,
    evse_uid: String,
    connector_id: String,
    status: String,
    start_ts: i64,
    end_ts: Option<i64>,
    energy_wh: i64,
    token_uid: String,
    contract_id: Option<String>,
    charging_periods: String,
    total_cost: Option<String>,
    user_id: Option<i64>,
    shifted_wh: i64,
    shifted_value_micro_eur: i64,
    body: String,
    last_updated: i64,
    observed_max_w: Option<i64>,
    over_limit_since: Option<i64>,
    taper_knee_permille: Option<i64>,
}

impl TryFrom<SessionRow> for StoredSession {
    type Error = super::StoreError;
    fn try_from(r: SessionRow) -> StoreResult<Self> {
        Ok(Self {
            id: r.id,
            record: SessionRecord {
                country_code: r.country_code,
                party_id: r.party_id,
                session_id: r.session_id,
                owner_party: r.owner_party,
                location_id: r.location_id,
                evse_uid: r.evse_uid,
                connector_id: r.connector_id,
                status: r.status,
                start_ts: r.start_ts,
                end_ts: r.end_ts,
                energy_wh: r.energy_wh,
                token_uid: r.token_uid,
                contract_id: r.contract_id,
                charging_periods: from_json(&r.charging_periods, "sessions.charging_periods")?,
                total_cost: r
                    .total_cost
                    .as_deref()
                    .map(|t| from_json(t, "sessions.total_cost"))
                    .transpose()?,
                body: from_json(&r.body, "sessions.body")?,
                last_updated: r.last_updated,
            },
            user_id: r.user_id,
            shifted_wh: r.shifted_wh,
            shifted_value_micro_eur: r.shifted_value_micro_eur,
            observed_max_w: r.observed_max_w,
            over_limit_since: r.over_limit_since,
            taper_knee_permille: r.taper_knee_permille,
        })
    }
}

const SESSION_COLUMNS: &str = "id, country_code, party_id, session_id, owner_party, location_id, \
    evse_uid, connector_id, status, start_ts, end_ts, energy_wh, token_uid, contract_id, \
    charging_periods, total_cost, user_id, shifted_wh, shifted_value_micro_eur, body, \
    last_updated, observed_max_w, over_limit_since, taper_knee_permille";

/// Inserts or replaces a session (PUT); keeps evflex's own columns (user, flexibility).
#[tracing::instrument(skip_all, fields(session = %rec.session_id))]
pub async fn upsert(conn: &mut Conn, rec: &SessionRecord) -> StoreResult<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO sessions (country_code, party_id, session_id, owner_party, location_id,
             evse_uid, connector_id, status, start_ts, end_ts, energy_wh, token_uid, contract_id,
             charging_periods, total_cost, body, last_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (country_code, party_id, session_id) DO UPDATE SET
             owner_party = excluded.owner_party, location_id = excluded.location_id,
             evse_uid = excluded.evse_uid, connector_id = excluded.connector_id,
             status = excluded.status, start_ts = excluded.start_ts, end_ts = excluded.end_ts,
             energy_wh = excluded.energy_wh, token_uid = excluded.token_uid,
             contract_id = excluded.contract_id, charging_periods = excluded.charging_periods,
             total_cost = excluded.total_cost, body = excluded.body,
             last_updated = excluded.last_updated
         RETURNING id",
    )
    .bind(&rec.country_code)
    .bind(&rec.party_id)
    .bind(&rec.session_id)
    .bind(rec.owner_party)
    .bind(&rec.location_id)
    .bind(&rec.evse_uid)
    .bind(&rec.connector_id)
    .bind(&rec.status)
    .bind(rec.start_ts)
    .bind(rec.end_ts)
    .bind(rec.energy_wh)
    .bind(&rec.token_uid)
    .bind(rec.contract_id.clone())
    .bind(to_json(&rec.charging_periods))
    .bind(rec.total_cost.as_ref().map(to_json))
    .bind(to_json(&rec.body))
    .bind(rec.last_updated)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// A session PATCH addressed by the session's OCPI key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedPatch {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// OCPI session id.
    pub session_id: String,
    /// The fields to change.
    pub patch: SessionPatch,
}

impl KeyedPatch {
    fn key(&self) -> (&str, &str, &str) {
        (&self.country_code, &self.party_id, &self.session_id)
    }
}

type Pending = (KeyedPatch, oneshot::Sender<StoreResult<bool>>);

/// Group commit of session PATCHes, the hot ingestion path: handlers hand their validated
/// PATCH to [`PatchQueue::patch`], which returns once it is committed. Writer tasks take every
/// PATCH waiting (up to [`MAX_BATCH`]) and apply them with one multi-row `UPDATE` (one
/// transaction when a session repeats within the batch, each repeat in order), so a busy
/// service pays one statement and one WAL flush per batch instead of per PATCH. If a batch
/// fails, its PATCHes are applied again one by one, so each request gets its own outcome and
/// one bad PATCH cannot fail the others.
#[derive(Debug, Clone)]
pub struct PatchQueue {
    tx: mpsc::Sender<Pending>,
}

/// The most PATCHes one writer applies at once.
pub const MAX_BATCH: usize = 64;
/// Writer tasks (batches in flight at once: one commits while the next is built).
const WRITERS: usize = 2;

impl PatchQueue {
    /// Starts the writer tasks on the current runtime; they end when every handle is dropped.
    pub fn start(db: Db) -> Self {
        let (tx, rx) = mpsc::channel::<Pending>(16 * MAX_BATCH);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..WRITERS {
            let (db, rx) = (db.clone(), rx.clone());
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                while rx.lock().await.recv_many(&mut batch, MAX_BATCH).await > 0 {
                    apply(&db, std::mem::take(&mut batch)).await;
                }
            });
        }
        Self { tx }
    }

    /// Applies a PATCH once committed; `false` when the session is unknown or the PATCH is older
    /// than the stored session (`last_updated`), which the caller tells apart.
    pub async fn patch(&self, patch: KeyedPatch) -> StoreResult<bool> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Db(sqlx::Error::PoolClosed);
        self.tx.send((patch, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn apply(db: &Db, batch: Vec<Pending>) {
    let (patches, replies): (Vec<KeyedPatch>, Vec<_>) = batch.into_iter().unzip();
    metrics::counter!("evflex_session_patch_batches_total").increment(1);
    metrics::counter!("evflex_session_patch_batched_total").increment(patches.len() as u64);
    let results = match apply_batch(db, &patches).await {
        Ok(found) => found.into_iter().map(Ok).collect(),
        Err(e) if patches.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = ?e, patches = patches.len(),
                "session PATCH batch failed; applying its PATCHes one by one");
            let mut results = Vec::with_capacity(patches.len());
            for p in &patches {
                results.push(apply_batch(db, std::slice::from_ref(p)).await.map(|f| f[0]));
            }
            results
        }
    };
    for (reply, result) in replies.into_iter().zip(results) {
        // The handler may have gone (client disconnected): the PATCH is stored all the same.
        let _ = reply.send(result);
    }
}

/// Applies PATCHes in order, all or none; whether each found its session.
async fn apply_batch(db: &Db, patches: &[KeyedPatch]) -> StoreResult<Vec<bool>> {
    let mut runs = Vec::new();
    let mut keys = HashSet::new();
    let mut start = 0;
    for (i, p) in patches.iter().enumerate() {
        if !keys.insert(p.key()) {
            runs.push(start..i);
            keys = HashSet::from([p.key()]);
            start = i;
        }
    }
    runs.push(start..patches.len());
    let mut found = vec![false; patches.len()];
    if let [run] = runs.as_slice() {
        // One statement: atomic without an explicit transaction.
        let mut conn = db.conn().await?;
        update_many(&mut conn, &patches[run.clone()], &mut found[run.clone()]).await?;
        return Ok(found);
    }
    let mut tx = db.begin().await?;
    for run in runs {
        update_many(&mut tx, &patches[run.clone()], &mut found[run]).await?;
    }
    tx.commit().await?;
    Ok(found)
}

/// One `UPDATE` for PATCHes of distinct sessions; sets `found[i]` when `patches[i]` matched a
/// session whose stored `last_updated` is not newer than the PATCH's (a stale PATCH, older than
/// what is stored, changes nothing: OCPI objects are replaced by their newest version only).
async fn update_many(
    conn: &mut Conn,
    patches: &[KeyedPatch],
    found: &mut [bool],
) -> StoreResult<()> {
    // Key, then the fields of `SessionPatch`, typed (a NULL keeps the column).
    const TYPES: [&str; 9] = [
        "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "BIGINT",
    ];
    let rows: Vec<String> = (0..patches.len())
        .map(|i| {
            let cells: Vec<String> = (TYPES.iter().enumerate())
                .map(|(k, ty)| format!("CAST(${} AS {ty})", 9 * i + k + 1))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    let sql = format!(
        "UPDATE sessions SET
             status = COALESCE(v.column4, sessions.status),
             end_ts = COALESCE(v.column5, sessions.end_ts),
             energy_wh = COALESCE(v.column6, sessions.energy_wh),
             charging_periods = COALESCE(v.column7, sessions.charging_periods),
             total_cost = COALESCE(v.column8, sessions.total_cost),
             last_updated = v.column9
         FROM (VALUES {}) AS v
         WHERE sessions.country_code = v.column1 AND sessions.party_id = v.column2
             AND sessions.session_id = v.column3 AND sessions.last_updated <= v.column9
         RETURNING sessions.country_code, sessions.party_id, sessions.session_id",
        rows.join(", ")
    );
    let mut query = sqlx::query_as::<_, (String, String, String)>(sqlx::AssertSqlSafe(sql));
    for KeyedPatch {
        country_code,
        party_id,
        session_id,
        patch: p,
    } in patches
    {
        query = query
            .bind(country_code)
            .bind(party_id)
            .bind(session_id)
            .bind(p.status.clone())
            .bind(p.end_ts)
            .bind(p.energy_wh)
            .bind(p.charging_periods.as_ref().map(to_json))
            .bind(p.total_cost.as_ref().map(to_json))
            .bind(p.last_updated);
    }
    let updated: HashSet<(String, String, String)> =
        query.fetch_all(conn).await?.into_iter().collect();
    for (p, found) in patches.iter().zip(found) {
        let (cc, pid, id) = p.key();
        *found = updated.contains(&(cc.to_owned(), pid.to_owned(), id.to_owned()));
    }
    Ok(())
}

/// A session by its OCPI key.
pub async fn get(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    session_id: &str,
) -> StoreResult<Option<StoredSession>> {
    let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE country_code = $1 AND party_id = $2 AND session_id = $3"
    )))
    .bind(country_code)
    .bind(party_id)
    .bind(session_id)
    .fetch_optional(conn)
    .await?;
    row.map(StoredSession::try_from).transpose()
}

/// A session by row id.
pub async fn get_by_row(conn: &mut Conn, id: i64) -> StoreResult<Option<StoredSession>> {
    let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(StoredSession::try_from).transpose()
}

/// The open (`ACTIVE` or `PENDING`) sessions on a group's member EVSEs, by session id.
pub async fn open_sessions_of_group(
    conn: &mut Conn,
    group_id: i64,
) -> StoreResult<Vec<StoredSession>> {
    let columns = SESSION_COLUMNS
        .split(", ")
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM sessions s JOIN group_members m
             ON m.country_code = s.country_code AND m.party_id = s.party_id
                AND m.evse_uid = s.evse_uid
         WHERE m.group_id = $1 AND s.status IN ('ACTIVE', 'PENDING')
         ORDER BY s.country_code, s.party_id, s.session_id"
    )))
    .bind(group_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(StoredSession::try_from).collect()
}

/// How many sessions started on the group's charge points in `[since, until)` (its arrival
/// count, for the arrival reserve).
pub async fn started_in_group(
    conn: &mut Conn,
    group_id: i64,
    since: i64,
    until: i64,
) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM sessions s JOIN group_members m
             ON m.country_code = s.country_code AND m.party_id = s.party_id
                AND m.evse_uid = s.evse_uid
         WHERE m.group_id = $1 AND s.start_ts >= $2 AND s.start_ts < $3",
    )
    .bind(group_id)
    .bind(since)
    .bind(until)
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// The open session on an EVSE, if any (the most recently started).
pub async fn open_session_on_evse(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    evse_uid: &str,
) -> StoreResult<Option<StoredSession>> {
    let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE country_code = $1 AND party_id = $2 AND evse_uid = $3
             AND status IN ('ACTIVE', 'PENDING')
         ORDER BY start_ts DESC, id DESC LIMIT 1"
    )))
    .bind(country_code)
    .bind(party_id)
    .bind(evse_uid)
    .fetch_optional(conn)
    .await?;
    row.map(StoredSession::try_from).transpose()
}

/// Sessions linked to a user, newest first.
pub async fn of_user(conn: &mut Conn, user_id: i64, limit: i64) -> StoreResult<Vec<StoredSession>> {
    let rows: Vec<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1
         ORDER BY start_ts DESC, id DESC LIMIT $2"
    )))
    .bind(user_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(StoredSession::try_from).collect()
}

/// Links a session to a user.
pub async fn set_user(conn: &mut Conn, session_row: i64, user_id: i64) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET user_id = $2 WHERE id = $1")
        .bind(session_row)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// What the closed loop learned of a session's draw (`engine::closed_loop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw {
    /// [`StoredSession::observed_max_w`].
    pub observed_max_w: Option<i64>,
    /// [`StoredSession::over_limit_since`].
    pub over_limit_since: Option<i64>,
    /// [`StoredSession::taper_knee_permille`].
    pub taper_knee_permille: Option<i64>,
}

impl StoredSession {
    /// What the closed loop knows of this session's draw.
    pub fn draw(&self) -> Draw {
        Draw {
            observed_max_w: self.observed_max_w,
            over_limit_since: self.over_limit_since,
            taper_knee_permille: self.taper_knee_permille,
        }
    }
}

/// Records what the closed loop learned of a session's draw (`engine::closed_loop`).
pub async fn set_draw(conn: &mut Conn, session_row: i64, draw: Draw) -> StoreResult<()> {
    sqlx::query(
        "UPDATE sessions SET observed_max_w = $2, over_limit_since = $3, \
         taper_knee_permille = $4 WHERE id = $1",
    )
    .bind(session_row)
    .bind(draw.observed_max_w)
    .bind(draw.over_limit_since)
    .bind(draw.taper_knee_permille)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the flexibility sessions give, `(session_row, shifted_wh, value_micro_eur)`, in one
/// statement (a group's commit writes all its sessions at once): for each, the largest shift
/// any tick's plan asked of it.
///
/// Each tick plans over the rest of the plug-in window, so its figure shrinks as the window
/// runs out (the last tick before departure usually shifts nothing). Keeping the largest
/// figure (with the value from the same plan) records what the user's window let evflex move;
/// billing caps the reward at the billed energy.
pub async fn set_flexibilities(conn: &mut Conn, rows: &[(i64, i64, i64)]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = (0..rows.len())
        .map(|i| {
            let cells: Vec<String> = (1..=3)
                .map(|k| format!("CAST(${} AS BIGINT)", 3 * i + k))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect();
    let sql = format!(
        "UPDATE sessions SET shifted_wh = v.column2, shifted_value_micro_eur = v.column3
         FROM (VALUES {}) AS v
         WHERE sessions.id = v.column1 AND sessions.shifted_wh < v.column2",
        values.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (row, shifted, value) in rows {
        query = query.bind(row).bind(shifted).bind(value);
    }
    query.execute(conn).await?;
    Ok(())
}

/// The flexibility all sessions gave: shifted energy (Wh) and its value (micro-EUR), summed.
pub async fn flexibility_totals(conn: &mut Conn) -> StoreResult<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(shifted_wh), 0) AS BIGINT), \
                CAST(COALESCE(SUM(shifted_value_micro_eur), 0) AS BIGINT) FROM sessions",
    )
    .fetch_one(conn)
    .await?)
}

/// Number of sessions stored.
pub async fn count(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions")
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// A charge detail record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CdrRecord {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// OCPI CDR id.
    pub cdr_id: String,
    /// The party row that sent it.
    pub owner_party: Option<i64>,
    /// Session id, when given.
    pub session_id: Option<String>,
    /// EVSE uid (`cdr_location.evse_uid`).
    pub evse_uid: String,
    /// Start (Unix seconds).
    pub start_ts: i64,
    /// End (Unix seconds).
    pub end_ts: i64,
    /// `total_energy` (Wh).
    pub energy_wh: i64,
    /// `total_cost.excl_vat` (micro-EUR, or micro-units of `currency`), when the CDR has a
    /// `total_cost`.
    pub total_cost_excl_vat_micro_eur: Option<i64>,
    /// `total_cost.incl_vat`.
    pub total_cost_incl_vat_micro_eur: Option<i64>,
    /// ISO 4217 currency.
    pub currency: String,
    /// `cdr_token.uid`.
    pub token_uid: String,
    /// The CDR object as received.
    pub body: serde_json::Value,
}

/// Inserts a CDR; `false` when one with the same key exists (CDRs are immutable in OCPI).
#[tracing::instrument(skip_all, fields(cdr = %rec.cdr_id))]
pub async fn insert_cdr(conn: &mut Conn, rec: &CdrRecord, now: i64) -> StoreResult<bool> {
    let result = sqlx::query(
        "INSERT INTO cdrs (country_code, party_id, cdr_id, owner_party, session_id, evse_uid,
             start_ts, end_ts, energy_wh, total_cost_excl_vat_micro_eur,
             total_cost_incl_vat_micro_eur, currency, token_uid, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (country_code, party_id, cdr_id) DO NOTHING",
    )
    .bind(&rec.country_code)
    .bind(&rec.party_id)
    .bind(&rec.cdr_id)
    .bind(rec.owner_party)
    .bind(rec.session_id.clone())
    .bind(&rec.evse_uid)
    .bind(rec.start_ts)
    .bind(rec.end_ts)
    .bind(rec.energy_wh)
    .bind(rec.total_cost_excl_vat_micro_eur)
    .bind(rec.total_cost_incl_vat_micro_eur)
    .bind(&rec.currency)
    .bind(&rec.token_uid)
    .bind(to_json(&rec.body))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// A CDR's body by its OCPI id (any party).
pub async fn get_cdr_body(
    conn: &mut Conn,
    owner_party: i64,
    cdr_id: &str,
) -> StoreResult<Option<serde_json::Value>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT body FROM cdrs WHERE cdr_id = $1 AND owner_party = $2 ORDER BY id LIMIT 1",
    )
    .bind(cdr_id)
    .bind(owner_party)
    .fetch_optional(conn)
    .await?;
    row.map(|(b,)| from_json(&b, "cdrs.body")).transpose()
}

/// Number of CDRs stored.
pub async fn count_cdrs(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM cdrs")
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// The caller's session with this OCPI session id (the newest, should two CPOs use one id).
pub async fn of_user_by_session_id(
    conn: &mut Conn,
    user_id: i64,
    session_id: &str,
) -> StoreResult<Option<StoredSession>> {
    let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND session_id = $2
         ORDER BY id DESC LIMIT 1"
    )))
    .bind(user_id)
    .bind(session_id)
    .fetch_optional(conn)
    .await?;
    row.map(StoredSession::try_from).transpose()
}

/// The caller's open (ACTIVE or PENDING) sessions, newest first, at most `limit`.
pub async fn open_of_user(
    conn: &mut Conn,
    user_id: i64,
    limit: i64,
) -> StoreResult<Vec<StoredSession>> {
    let rows: Vec<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE user_id = $1 AND status IN ('ACTIVE', 'PENDING')
         ORDER BY start_ts DESC, id DESC LIMIT $2"
    )))
    .bind(user_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(StoredSession::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> SessionRecord {
        SessionRecord {
            country_code: "NL".into(),
            party_id: "EXA".into(),
            session_id: id.into(),
            owner_party: None,
            location_id: "LOC".into(),
            evse_uid: "E1".into(),
            connector_id: "1".into(),
            status: "ACTIVE".into(),
            start_ts: 0,
            end_ts: None,
            energy_wh: 0,
            token_uid: "T".into(),
            contract_id: None,
            charging_periods: serde_json::json!([]),
            total_cost: None,
            body: serde_json::json!({}),
            last_updated: 0,
        }
    }

    fn keyed(id: &str, energy_wh: i64) -> KeyedPatch {
        KeyedPatch {
            country_code: "NL".into(),
            party_id: "EXA".into(),
            session_id: id.into(),
            patch: SessionPatch {
                energy_wh: Some(energy_wh),
                last_updated: energy_wh,
                ..SessionPatch::default()
            },
        }
    }

    async fn energy(db: &Db, id: &str) -> (i64, String) {
        let mut conn = db.conn().await.unwrap();
        let s = get(&mut conn, "NL", "EXA", id).await.unwrap().unwrap();
        (s.record.energy_wh, s.record.status)
    }

    #[tokio::test]
    async fn a_batch_applies_repeats_in_order_and_reports_unknown_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("db").display());
        let db = Db::connect(&url, 1).await.unwrap();
        db.migrate().await.unwrap();
        let mut conn = db.conn().await.unwrap();
        for id in ["S1", "S2"] {
            upsert(&mut conn, &record(id)).await.unwrap();
        }
        drop(conn);
        let batch = [
            keyed("S1", 10),
            keyed("S2", 20),
            keyed("nope", 1),
            keyed("S1", 30),
            keyed("S1", 40),
        ];
        let found = apply_batch(&db, &batch).await.unwrap();
        assert_eq!(found, [true, true, false, true, true]);
        assert_eq!(energy(&db, "S1").await, (40, "ACTIVE".to_owned()));
        assert_eq!(energy(&db, "S2").await, (20, "ACTIVE".to_owned()));

        // Through the queue, from many tasks at once: each gets its own answer.
        let queue = PatchQueue::start(db.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let (queue, id) = (queue.clone(), ["S1", "S2", "nope"][i % 3]);
            tasks.spawn(async move { (id, queue.patch(keyed(id, 100 + i as i64)).await) });
        }
        while let Some(done) = tasks.join_next().await {
            let (id, found) = done.unwrap();
            assert_eq!(found.unwrap(), id != "nope", "{id}");
        }
        assert!(energy(&db, "S1").await.0 >= 100);
    }
}
