//! CPO data in: the OCPI 2.2.1 receiver interfaces (locations, sessions, CDRs), meter values,
//! and the site topology. Every function validates first and writes in one transaction, so a
//! rejected body stores nothing; writes that change chain-relevant data enqueue chain work in
//! the same transaction (see [`crate::store::outbox`]).

pub mod assets;
pub mod meter;
pub mod ocpi;
pub mod prices;
pub mod topology;

use crate::store::StoreError;

/// Errors of the ingestion layer.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is malformed; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The location a child object belongs to is unknown.
    #[error("{0}")]
    UnknownLocation(String),
    /// The object addressed is unknown.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with stored data.
    #[error("{0}")]
    Conflict(String),
    /// The other party's OCPI API could not be used (handshake).
    #[error("{0}")]
    PartyUnreachable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for IngestError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Db(e))
    }
}

/// Result alias of the ingestion layer.
pub type IngestResult<T> = Result<T, IngestError>;
