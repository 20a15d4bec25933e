//! The charge-point id: one type for every place that names a charge point on chain.
//!
//! A charge point's id is its EVSE's row id in evflex (`evses.id`). The AssetRegistry keys
//! charge points by `uint64`, but the StatusLedger's packed member records carry `uint32`, so
//! the id evflex may use is the narrower one: a non-zero `u32`. [`ChargePointId`] holds it, is
//! built only by a checked conversion, and widens losslessly to the registry's `u64`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A charge point's id on chain: non-zero, at most `u32::MAX` (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct ChargePointId(u32);

/// A number that is not a charge-point id: zero, negative or above `u32::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "charge point id {0} is outside 1..=4294967295 (the StatusLedger packs charge-point ids \
     in 32 bits)"
)]
pub struct ChargePointIdOutOfRange(pub i128);

impl ChargePointId {
    /// The id as the status records pack it.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for ChargePointId {
    type Error = ChargePointIdOutOfRange;

    fn try_from(id: u32) -> Result<Self, Self::Error> {
        if id == 0 {
            Err(ChargePointIdOutOfRange(0))
        } else {
            Ok(Self(id))
        }
    }
}

impl TryFrom<u64> for ChargePointId {
    type Error = ChargePointIdOutOfRange;

    fn try_from(id: u64) -> Result<Self, Self::Error> {
        u32::try_from(id)
            .map_err(|_| ChargePointIdOutOfRange(i128::from(id)))
            .and_then(Self::try_from)
    }
}

/// From a database row id (`evses.id`).
impl TryFrom<i64> for ChargePointId {
    type Error = ChargePointIdOutOfRange;

    fn try_from(id: i64) -> Result<Self, Self::Error> {
        u32::try_from(id)
            .map_err(|_| ChargePointIdOutOfRange(i128::from(id)))
            .and_then(Self::try_from)
    }
}

/// The AssetRegistry's key.
impl From<ChargePointId> for u64 {
    fn from(id: ChargePointId) -> Self {
        u64::from(id.0)
    }
}

impl fmt::Display for ChargePointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_zero_32_bit_ids_convert() {
        assert_eq!(
            ChargePointId::try_from(7_i64).map(ChargePointId::get),
            Ok(7)
        );
        assert_eq!(
            ChargePointId::try_from(u64::from(u32::MAX)).map(u64::from),
            Ok(u64::from(u32::MAX))
        );
        for bad in [0_i64, -1, i64::from(u32::MAX) + 1, i64::MAX] {
            assert_eq!(
                ChargePointId::try_from(bad),
                Err(ChargePointIdOutOfRange(i128::from(bad)))
            );
        }
        assert!(ChargePointId::try_from(1_u64 << 32).is_err());
        assert!(ChargePointId::try_from(0_u32).is_err());
    }

    #[test]
    fn serde_is_the_plain_number_and_checks_it() {
        let id = ChargePointId::try_from(42_u32).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<ChargePointId>("42").unwrap(), id);
        assert!(serde_json::from_str::<ChargePointId>("0").is_err());
        assert!(serde_json::from_str::<ChargePointId>("4294967296").is_err());
    }
}
