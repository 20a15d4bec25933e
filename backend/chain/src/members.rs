//! The StatusLedger member record: 21 bytes per charge point, big-endian
//! `uint32 cpId | uint8 status | uint32 setpointW | uint32 measuredW | uint32 energyLeftWh |
//! uint32 timeLeftS`, concatenated in the `members` argument of a commit.

use alloy::primitives::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::ChainError;
use crate::ids::ChargePointId;

/// Size of one packed member record.
pub const MEMBER_SIZE: usize = 21;

/// OCPI 2.2.1 EVSE status, in the order of `IAssetRegistry.EvseStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(u8)]
pub enum EvseStatus {
    /// Free to charge.
    Available = 0,
    /// Blocked (e.g. parked car not charging).
    Blocked = 1,
    /// Charging.
    Charging = 2,
    /// Not operational.
    Inoperative = 3,
    /// Broken.
    OutOfOrder = 4,
    /// Planned, not built yet.
    Planned = 5,
    /// Removed.
    Removed = 6,
    /// Reserved.
    Reserved = 7,
    /// Unknown.
    Unknown = 8,
}

impl EvseStatus {
    /// The status of ordinal `v`, if valid.
    pub fn from_u8(v: u8) -> Option<Self> {
        use EvseStatus::*;
        [
            Available,
            Blocked,
            Charging,
            Inoperative,
            OutOfOrder,
            Planned,
            Removed,
            Reserved,
            Unknown,
        ]
        .get(v as usize)
        .copied()
    }
}

/// OCPI 2.2.1 power type, in the order of `IAssetRegistry.PowerType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(u8)]
pub enum PowerType {
    /// Single-phase AC.
    Ac1Phase = 0,
    /// Two-phase AC.
    Ac2Phase = 1,
    /// Two-phase split AC.
    Ac2PhaseSplit = 2,
    /// Three-phase AC.
    Ac3Phase = 3,
    /// DC.
    Dc = 4,
}

/// One charge point's status in a group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Charge point id in the asset registry.
    pub cp_id: ChargePointId,
    /// `EvseStatus` ordinal.
    pub status: u8,
    /// Power the schedule allows this timestep, W.
    pub setpoint_w: u32,
    /// Power measured at the commit, W.
    pub measured_w: u32,
    /// Energy the user still asks for, Wh.
    pub energy_left_wh: u32,
    /// Time to the user's departure, s.
    pub time_left_s: u32,
}

/// Packs `members` into the contract's 21-byte records.
pub fn pack_members(members: &[MemberStatus]) -> Bytes {
    let mut out = Vec::with_capacity(members.len() * MEMBER_SIZE);
    for m in members {
        out.extend_from_slice(&m.cp_id.get().to_be_bytes());
        out.push(m.status);
        out.extend_from_slice(&m.setpoint_w.to_be_bytes());
        out.extend_from_slice(&m.measured_w.to_be_bytes());
        out.extend_from_slice(&m.energy_left_wh.to_be_bytes());
        out.extend_from_slice(&m.time_left_s.to_be_bytes());
    }
    out.into()
}

/// Unpacks 21-byte records (e.g. from a `StatusCommitted` event).
pub fn unpack_members(packed: &[u8]) -> Result<Vec<MemberStatus>, ChainError> {
    if !packed.len().is_multiple_of(MEMBER_SIZE) {
        return Err(ChainError::Invalid(format!(
            "members blob of {} bytes is not a multiple of {MEMBER_SIZE}",
            packed.len()
        )));
    }
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().expect("4 bytes"));
    packed
        .chunks_exact(MEMBER_SIZE)
        .map(|r| {
            Ok(MemberStatus {
                cp_id: ChargePointId::try_from(be(&r[0..4]))
                    .map_err(|e| ChainError::Invalid(e.to_string()))?,
                status: r[4],
                setpoint_w: be(&r[5..9]),
                measured_w: be(&r[9..13]),
                energy_left_wh: be(&r[13..17]),
                time_left_s: be(&r[17..21]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip_and_layout() {
        let m = MemberStatus {
            cp_id: ChargePointId::try_from(0x0102_0304_u32).unwrap(),
            status: EvseStatus::Charging as u8,
            setpoint_w: 11_000,
            measured_w: 10_950,
            energy_left_wh: 20_000,
            time_left_s: 3_600,
        };
        let packed = pack_members(&[m, m]);
        assert_eq!(packed.len(), 42);
        assert_eq!(&packed[..5], &[1, 2, 3, 4, 2]);
        assert_eq!(&packed[5..9], &11_000u32.to_be_bytes());
        assert_eq!(unpack_members(&packed).unwrap(), vec![m, m]);
        assert!(unpack_members(&packed[..20]).is_err());
        assert_eq!(EvseStatus::from_u8(8), Some(EvseStatus::Unknown));
        assert_eq!(EvseStatus::from_u8(9), None);
    }
}
