//! CPO data in: the OCPI 2.2.1 receiver interfaces (locations, sessions, CDRs), meter values,
//! and the site topology. Every function validates first and writes in one transaction, so a
//! rejected body stores nothing; writes that change chain-relevant data enqueue chain work in
//! the same transaction (see [`crate::store::outbox`]).

pub mod assets;
pub mod batteries;
pub mod meter;
pub mod ocpi;
pub mod prices;
pub mod topology;

use crate::store::StoreError;
use crate::store::parties::Party;

/// Who writes: the operator (the topology file loaded at start-up, `EVFLEX_TOPOLOGY`; the
/// simulator's operator) or a registered CPO, which may act only under the party codes it
/// registered. Every write of CPO-owned data takes one, so the check has one place.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// The service's operator: any codes.
    Operator,
    /// A CPO: only its own codes.
    Cpo(&'a Party),
}

impl Actor<'_> {
    /// Whether this actor may read or write objects under `country_code*party_id`.
    pub fn may_use(&self, country_code: &str, party_id: &str) -> bool {
        match self {
            Self::Operator => true,
            Self::Cpo(party) => party.owns_codes(country_code, party_id),
        }
    }

    /// [`IngestError::Forbidden`] unless [`Self::may_use`]; `field` names where the codes were.
    pub fn check(&self, field: &str, country_code: &str, party_id: &str) -> IngestResult<()> {
        if self.may_use(country_code, party_id) {
            Ok(())
        } else {
            Err(IngestError::Forbidden(format!(
                "{field}: {country_code}*{party_id} is not one of the roles this token registered"
            )))
        }
    }
}

/// Errors of the ingestion layer.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is malformed; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The caller named party codes that are not its own.
    #[error("{0}")]
    Forbidden(String),
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
    /// The other party's OCPI API answers, but cannot work with evflex: no version in common
    /// (OCPI 3002) or a module evflex needs missing (3003).
    #[error("{message}")]
    PartyIncompatible {
        /// The OCPI status code.
        code: u16,
        /// What is missing.
        message: String,
    },
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

/// What a `PUT` did: OCPI answers HTTP 201 for an object it did not have and 200 for an update
/// (OCPI 2.2.1 status codes: "201 Created when the object has been newly created").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The object is new.
    Created,
    /// An object with this id was stored already and is replaced (or patched).
    Updated,
}

impl Written {
    /// `Created` if nothing was stored before.
    pub fn new_if(existed: bool) -> Self {
        if existed {
            Self::Updated
        } else {
            Self::Created
        }
    }
}
