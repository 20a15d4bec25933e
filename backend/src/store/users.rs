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
    /// The OCPI token uid (RFID / app token) the user charges with, if registered.
    pub token_uid: Option<String>,
    /// Whether the user opted into smart charging.
    pub opted_in: bool,
}

#[derive(FromRow)]
struct UserRow {
    id: i64,
    name: String,
    token_uid: Option<String>,
    opted_in: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            token_uid: r.token_uid,
            opted_in: r.opted_in != 0,
        }
    }
}

/// Creates a user with a bearer session token (stored as a hash); returns the id.
#[tracing::instrument(skip_all)]
pub async fn create(
    conn: &mut Conn,
    name: &str,
    token_uid: Option<&str>,
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
    .bind(token_uid.map(str::to_owned))
    .bind(flag(opted_in))
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// The user holding a bearer session token.
pub async fn by_session_token(conn: &mut Conn, session_token: &str) -> StoreResult<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, name, token_uid, opted_in FROM users WHERE token_hash = $1")
            .bind(token_hash(session_token))
            .fetch_optional(conn)
            .await?;
    Ok(row.map(User::from))
}

/// A user by id.
pub async fn get(conn: &mut Conn, id: i64) -> StoreResult<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, name, token_uid, opted_in FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(User::from))
}

/// The user who registered an OCPI token uid, if any.
pub async fn by_token_uid(conn: &mut Conn, token_uid: &str) -> StoreResult<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT id, name, token_uid, opted_in FROM users WHERE token_uid = $1 ORDER BY id LIMIT 1",
    )
    .bind(token_uid)
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
