//! EV users and their smart-charging consent. Owns `users`.

use super::{Conn, StoreResult, flag, token_hash};
use sqlx::FromRow;

/// A user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// The OCPI token uid evflex issued to the user ([`issue_token_uid`]): a session whose
    /// `cdr_token.uid` is this uid is the user's. `None` only for users stored before the
    /// uid was issued at sign-up (migration 0013 issued theirs).
    pub token_uid: Option<String>,
    /// Whether the user opted into smart charging.
    pub opted_in: bool,
    /// When the user signed up (Unix seconds): their token's `last_updated`.
    pub created_at: i64,
}

#[derive(FromRow)]
struct UserRow {
    id: i64,
    name: String,
    token_uid: Option<String>,
    opted_in: i64,
    created_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            token_uid: r.token_uid,
            opted_in: r.opted_in != 0,
            created_at: r.created_at,
        }
    }
}

/// Length of an issued token uid: `EVF` and 13 hex digits (52 random bits).
pub const TOKEN_UID_LEN: usize = 16;

/// A fresh token uid for a new user: `EVF` and 13 random upper-case hex digits. The unique
/// index on `users.token_uid` refuses the (2^-52) collision rather than sharing a uid.
pub fn issue_token_uid() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random_range(0..1u64 << 52);
    format!("EVF{n:013X}")
}

/// Whether `uid` has the shape of a uid evflex issues (it may still belong to no one).
pub fn is_issued_shape(uid: &str) -> bool {
    uid.len() == TOKEN_UID_LEN
        && uid.starts_with("EVF")
        && uid[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// Creates a user with an issued token uid ([`issue_token_uid`]) and a bearer session token
/// (stored as a hash); returns the id.
#[tracing::instrument(skip_all)]
pub async fn create(
    conn: &mut Conn,
    name: &str,
    token_uid: &str,
    opted_in: bool,
    session_token: &str,
    now: i64,
) -> StoreResult<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO users (name, token_hash, token_uid, opted_in, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(name)
    .bind(token_hash(session_token))
    .bind(token_uid)
    .bind(flag(opted_in))
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// The user holding a bearer session token.
pub async fn by_session_token(conn: &mut Conn, session_token: &str) -> StoreResult<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, name, token_uid, opted_in, created_at FROM users WHERE token_hash = $1",
    )
    .bind(token_hash(session_token))
    .fetch_optional(conn)
    .await?;
    Ok(row.map(User::from))
}

/// A user by id.
pub async fn get(conn: &mut Conn, id: i64) -> StoreResult<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, name, token_uid, opted_in, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(User::from))
}

/// Which of `ids` are users who opted in (a group's snapshot asks for all its drivers at once).
pub async fn opted_in_among(
    conn: &mut Conn,
    ids: &[i64],
) -> StoreResult<std::collections::HashSet<i64>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "SELECT id FROM users WHERE opted_in <> 0 AND id IN ({})",
        super::numbered(1, ids.len())
    );
    let mut query = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id);
    }
    Ok(query
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect())
}

/// The user evflex issued an OCPI token uid to, if any (uids are unique).
pub async fn by_token_uid(conn: &mut Conn, token_uid: &str) -> StoreResult<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, name, token_uid, opted_in, created_at FROM users WHERE token_uid = $1",
    )
    // A token uid is an OCPI CiString: a CPO may report it in any case. evflex issues them in
    // upper case only (`EVF` and hex digits), so that is the stored spelling.
    .bind(token_uid.to_ascii_uppercase())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(User::from))
}

/// Opts a user in or out of smart charging.
pub async fn set_opted_in(conn: &mut Conn, id: i64, opted_in: bool, now: i64) -> StoreResult<()> {
    sqlx::query("UPDATE users SET opted_in = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(flag(opted_in))
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces a user's bearer session token (a wallet sign-in issues a new one; the previous
/// token stops working).
pub async fn set_session_token(
    conn: &mut Conn,
    id: i64,
    session_token: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE users SET token_hash = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(token_hash(session_token))
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// One page of the tokens evflex issued, oldest first: the total matching, then at most
/// `limit` (uid, issued at) from `offset`. `date_from` is inclusive and `date_to` exclusive,
/// as OCPI's list parameters are (on the issue time, which is the token's `last_updated`).
pub async fn issued_tokens(
    conn: &mut Conn,
    date_from: Option<i64>,
    date_to: Option<i64>,
    offset: i64,
    limit: i64,
) -> StoreResult<(i64, Vec<(String, i64)>)> {
    let from = date_from.unwrap_or(i64::MIN);
    let to = date_to.unwrap_or(i64::MAX);
    let (total,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM users
         WHERE token_uid IS NOT NULL AND created_at >= $1 AND created_at < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT token_uid, created_at FROM users
         WHERE token_uid IS NOT NULL AND created_at >= $1 AND created_at < $2
         ORDER BY id LIMIT $3 OFFSET $4",
    )
    .bind(from)
    .bind(to)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok((total, rows))
}
