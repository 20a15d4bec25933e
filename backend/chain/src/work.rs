//! [`ChainWork`]: every piece of work the service puts on chain, in the one shape the
//! `chain_outbox` stores and the writer executes.
//!
//! Producers (the tick, asset sync, billing, the wallets) build a `ChainWork` value and enqueue
//! it; the writer reads it back with [`ChainWork::from_stored`] and sends it through
//! [`ChainClient`](crate::ChainClient). The enum is tagged (`kind`) with its payload beside the
//! tag (`payload`), which is exactly the table's `kind` and `payload` columns: [`WorkKind`] is
//! the only list of outbox kinds.
//!
//! # No chain configured
//!
//! One rule, [`WorkKind::enqueued_without_chain`]:
//!
//! - Work that records a **fact the chain must eventually hold** (asset records, settlements,
//!   consents and revocations) is always enqueued, chain or not. It is bounded by the data that
//!   arrives (one row per asset change, CDR or opt-in) and waits `pending` until a writer with a
//!   chain drains it. A settlement enqueued without a chain carries the CDR's facts but no
//!   signed bill (there was no meter key to sign with); the writer records it `failed` as
//!   unbillable, exactly like a CDR of a user without a wallet.
//! - Work that **attests a moment** (status commits: one per group every 15 minutes) is enqueued
//!   only while a chain is configured. Without one it would grow the table without bound, and a
//!   commit sent days late attests nothing.

use alloy::primitives::{Bytes, U256};
use serde::{Deserialize, Serialize};

use crate::bindings::{Bill, Consent, Revocation, SpendingLimitUpdate};
use crate::error::ChainError;

/// The kinds of chain work, as stored in `chain_outbox.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkKind {
    /// SC1 asset records.
    AssetUpsert,
    /// SC2 status commits.
    StatusCommit,
    /// SC3 settlements.
    Settlement,
    /// A user's signed consent, relayed by the operator.
    Consent,
    /// A user's signed revocation, relayed by the operator.
    Revocation,
    /// A user's signed spending limit for settlements, relayed by the operator.
    SpendingLimit,
}

impl WorkKind {
    /// Every kind.
    pub const ALL: [Self; 6] = [
        Self::AssetUpsert,
        Self::StatusCommit,
        Self::Settlement,
        Self::Consent,
        Self::Revocation,
        Self::SpendingLimit,
    ];

    /// The stored name, e.g. `status_commit`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AssetUpsert => "asset_upsert",
            Self::StatusCommit => "status_commit",
            Self::Settlement => "settlement",
            Self::Consent => "consent",
            Self::Revocation => "revocation",
            Self::SpendingLimit => "spending_limit",
        }
    }

    /// The kind stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The "no chain configured" policy (see the module docs): whether a producer without a
    /// chain still enqueues work of this kind.
    pub const fn enqueued_without_chain(self) -> bool {
        !matches!(self, Self::StatusCommit)
    }

    /// How many consecutive rows of this kind the writer sends in one transaction (1: one call
    /// per row).
    pub const fn batch_limit(self) -> usize {
        match self {
            Self::StatusCommit | Self::Settlement => 50,
            Self::AssetUpsert | Self::Consent | Self::Revocation | Self::SpendingLimit => 1,
        }
    }
}

impl std::fmt::Display for WorkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One piece of chain work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum ChainWork {
    /// An SC1 asset record (register or update).
    AssetUpsert(AssetWork),
    /// One group's SC2 status commit for one timestep.
    StatusCommit(StatusCommitWork),
    /// A CDR's SC3 settlement.
    Settlement(SettlementWork),
    /// A signed consent to relay.
    Consent(ConsentWork),
    /// A signed revocation to relay.
    Revocation(ConsentWork),
    /// A signed spending limit to relay.
    SpendingLimit(SpendingLimitWork),
}

impl ChainWork {
    /// Its kind.
    pub fn kind(&self) -> WorkKind {
        match self {
            Self::AssetUpsert(_) => WorkKind::AssetUpsert,
            Self::StatusCommit(_) => WorkKind::StatusCommit,
            Self::Settlement(_) => WorkKind::Settlement,
            Self::Consent(_) => WorkKind::Consent,
            Self::Revocation(_) => WorkKind::Revocation,
            Self::SpendingLimit(_) => WorkKind::SpendingLimit,
        }
    }

    /// The payload as stored in `chain_outbox.payload` (JSON, without the kind).
    pub fn payload_json(&self) -> String {
        let json = match self {
            Self::AssetUpsert(w) => serde_json::to_string(w),
            Self::StatusCommit(w) => serde_json::to_string(w),
            Self::Settlement(w) => serde_json::to_string(w),
            Self::Consent(w) | Self::Revocation(w) => serde_json::to_string(w),
            Self::SpendingLimit(w) => serde_json::to_string(w),
        };
        // Plain data (strings, integers, vectors): serialising it cannot fail.
        json.unwrap_or_else(|_| "null".to_owned())
    }

    /// The "no chain configured" policy applied to this work (see the module docs): whether a
    /// producer enqueues it, given whether a chain is configured.
    pub fn wanted(&self, chain_configured: bool) -> bool {
        chain_configured || self.kind().enqueued_without_chain()
    }

    /// Reads work back from a row's `kind` and `payload`.
    pub fn from_stored(kind: &str, payload: &str) -> Result<Self, ChainError> {
        let payload: serde_json::Value = serde_json::from_str(payload)
            .map_err(|e| ChainError::Invalid(format!("bad payload: {e}")))?;
        serde_json::from_value(serde_json::json!({ "kind": kind, "payload": payload }))
            .map_err(|e| ChainError::Invalid(format!("bad {kind} payload: {e}")))
    }
}

/// Kind `asset_upsert`: an SC1 asset record, as the service knows it (the writer derives the
/// chain record, charge point ids included, from the database when it sends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "asset", rename_all = "snake_case")]
pub enum AssetWork {
    /// A charge point (OCPI EVSE).
    ChargePoint {
        /// Country code of the CPO.
        country_code: String,
        /// Party id of the CPO.
        party_id: String,
        /// Location id.
        location_id: String,
        /// OCPI EVSE uid.
        evse_uid: String,
        /// eMI3 EVSE id.
        evse_id: Option<String>,
        /// Rated power (W); 0 when unknown.
        rated_power_w: i64,
        /// `AC_1_PHASE`, `AC_3_PHASE`, `DC`, …
        power_type: Option<String>,
        /// Phases.
        phases: Option<i64>,
        /// Voltage (V).
        max_voltage_v: Option<i64>,
        /// Current (A).
        max_current_a: Option<i64>,
        /// Connector standard (`IEC_62196_T2`, …).
        connector_standard: Option<String>,
        /// Group the charge point belongs to, if any.
        group_id: Option<i64>,
        /// `false` once the EVSE is `REMOVED` (deactivate on chain).
        active: bool,
    },
    /// A charging group with its PV inverters and batteries.
    Group {
        /// Group id.
        group_id: i64,
        /// Name.
        name: String,
        /// Connection capacity (W).
        capacity_w: i64,
        /// Member EVSE uids (of `country_code*party_id`).
        members: Vec<String>,
        /// Country code of the members' CPO.
        country_code: String,
        /// Party id of the members' CPO.
        party_id: String,
        /// PV inverters.
        pv_inverters: Vec<PvInverterSpec>,
        /// Batteries.
        batteries: Vec<BatterySpec>,
    },
}

/// A group's PV inverter in an [`AssetWork::Group`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PvInverterSpec {
    /// Identifier within the group.
    pub id: String,
    /// Peak AC power (W).
    pub peak_w: i64,
}

/// A group's stationary battery in an [`AssetWork::Group`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatterySpec {
    /// Identifier within the group.
    pub id: String,
    /// Usable capacity (Wh).
    pub capacity_wh: i64,
    /// Energy stored now (Wh).
    pub energy_wh: i64,
    /// Maximum charging power (W).
    pub max_charge_w: i64,
    /// Maximum discharging power (W).
    pub max_discharge_w: i64,
    /// Round-trip efficiency (per mille).
    pub efficiency_permille: u16,
}

/// One member's line in a [`StatusCommitWork`], as the tick saw it (by EVSE uid; the writer
/// maps it to the chain's 21-byte [`MemberStatus`](crate::MemberStatus)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    /// EVSE uid.
    pub evse_uid: String,
    /// OCPI EVSE status.
    pub status: String,
    /// OCPI session id charging there, if any.
    pub session_id: Option<String>,
    /// Set-point for this timestep (W).
    pub setpoint_w: i64,
    /// Measured power at the snapshot (W).
    pub measured_w: i64,
    /// Energy the user still wants (Wh).
    pub energy_left_wh: i64,
    /// Seconds until the user's departure (0 when unknown or gone).
    pub time_left_s: i64,
}

/// Kind `status_commit`: one group's statuses and schedule hashes for one timestep (SC2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCommitWork {
    /// Group id.
    pub group_id: i64,
    /// Absolute timestep (Unix seconds / `time_step_s`).
    pub timestep: i64,
    /// The schedule's revision within the timestep: 0 for the tick's, 1, 2, … for the event
    /// re-plans (absent in rows written before revisions existed: 0).
    #[serde(default)]
    pub revision: i64,
    /// Step length (s).
    pub time_step_s: i64,
    /// keccak-256 of the canonical inputs (`0x`-hex, 32 bytes).
    pub inputs_hash: String,
    /// keccak-256 of the schedule (`0x`-hex).
    pub schedule_hash: String,
    /// The stored params hash (`0x`-hex); the writer registers and commits the on-chain
    /// algorithm version derived from it.
    #[serde(alias = "algorithm_version")]
    pub params_hash: String,
    /// Every member EVSE, by uid.
    pub members: Vec<MemberSnapshot>,
}

/// What a CDR says, as a settlement records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdrFacts {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// OCPI CDR id.
    pub cdr_id: String,
    /// OCPI session id, when the CDR names it.
    pub session_id: Option<String>,
    /// EVSE uid.
    pub evse_uid: String,
    /// evflex user, when the session is linked to one.
    pub user_id: Option<i64>,
    /// `cdr_token.uid`.
    pub token_uid: String,
    /// Start (Unix seconds).
    pub start_ts: i64,
    /// End (Unix seconds).
    pub end_ts: i64,
    /// Metered energy (Wh, `total_energy`).
    pub energy_wh: i64,
    /// `total_cost.excl_vat` (micro-units of `currency`), when the CDR has a `total_cost`.
    pub total_cost_excl_vat_micro: Option<i64>,
    /// `total_cost.incl_vat` (micro-units of `currency`).
    pub total_cost_incl_vat_micro: Option<i64>,
    /// ISO 4217 currency.
    pub currency: String,
    /// Energy the session's latest schedule shifted away from the baseline (Wh).
    #[serde(alias = "flexibility_shifted_wh")]
    pub shifted_wh: i64,
    /// Value of that shift at the day's prices (micro-EUR).
    #[serde(alias = "flexibility_value_micro_eur")]
    pub shifted_value_micro_eur: i64,
}

/// Kind `settlement`: the CDR's facts plus the signed bill (absent when the CDR could not be
/// billed on chain: no chain when it arrived, or no user wallet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementWork {
    /// What the CDR says.
    #[serde(flatten)]
    pub cdr: CdrFacts,
    /// The bill the meter key signed.
    #[serde(default)]
    pub bill: Option<SignedBill>,
}

/// An EIP-712 bill and the meter key's signature, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBill {
    /// `sessionId` (`0x`-hex bytes32).
    pub session_id: String,
    /// User address.
    pub user: String,
    /// CPO address.
    pub cpo: String,
    /// Billed energy (Wh).
    pub energy_wh: u64,
    /// Price (micro-EUR per kWh).
    pub price_micro_eur_per_kwh: u64,
    /// Credited energy (Wh).
    pub credit_wh: u64,
    /// Rewarded flexibility (Wh).
    pub flexibility_wh: u64,
    /// Start (Unix seconds).
    pub start: u64,
    /// End (Unix seconds).
    pub end: u64,
    /// The meter key's signature (`0x`-hex, 65 bytes).
    pub signature: String,
}

impl SignedBill {
    /// The JSON form of a signed `bill`.
    pub fn new(bill: &Bill, signature: &Bytes) -> Self {
        Self {
            session_id: bill.sessionId.to_string(),
            user: bill.user.to_string(),
            cpo: bill.cpo.to_string(),
            energy_wh: bill.energyWh,
            price_micro_eur_per_kwh: bill.priceMicroEurPerKwh,
            credit_wh: bill.creditWh,
            flexibility_wh: bill.flexibilityWh,
            start: bill.start,
            end: bill.end,
            signature: signature.to_string(),
        }
    }

    /// The contract's bill and signature.
    pub fn to_bill(&self) -> Result<(Bill, Bytes), ChainError> {
        let bad = |what: &str| ChainError::Invalid(format!("signed bill: bad {what}"));
        Ok((
            Bill {
                sessionId: self.session_id.parse().map_err(|_| bad("session id"))?,
                user: self.user.parse().map_err(|_| bad("user"))?,
                cpo: self.cpo.parse().map_err(|_| bad("cpo"))?,
                energyWh: self.energy_wh,
                priceMicroEurPerKwh: self.price_micro_eur_per_kwh,
                creditWh: self.credit_wh,
                flexibilityWh: self.flexibility_wh,
                start: self.start,
                end: self.end,
            },
            self.signature.parse().map_err(|_| bad("signature"))?,
        ))
    }
}

/// Payload of kind `spending_limit`: the user's EIP-712 `SpendingLimitUpdate` for
/// EnergyBilling and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendingLimitWork {
    /// The user's address.
    pub user: String,
    /// Highest price a settlement may charge (micro-EUR per kWh; 0: any).
    pub max_price_micro_eur_per_kwh: u64,
    /// What settlements may still debit (payment-token units, decimal; `u256::MAX`: no cap).
    pub allowance: String,
    /// The user's spending-limit nonce.
    pub nonce: u64,
    /// Last second the signature is valid (Unix seconds).
    pub deadline: u64,
    /// The user's signature (`0x`-hex).
    pub signature: String,
}

impl SpendingLimitWork {
    /// The contract's update and signature.
    pub fn to_update(&self) -> Result<(SpendingLimitUpdate, Bytes), ChainError> {
        let bad = |what: &str| ChainError::Invalid(format!("spending limit: bad {what}"));
        Ok((
            SpendingLimitUpdate {
                user: self.user.parse().map_err(|_| bad("user address"))?,
                maxPriceMicroEurPerKwh: self.max_price_micro_eur_per_kwh,
                allowance: self.allowance.parse().map_err(|_| bad("allowance"))?,
                nonce: U256::from(self.nonce),
                deadline: self.deadline,
            },
            self.signature.parse().map_err(|_| bad("signature hex"))?,
        ))
    }
}

/// Payload of kinds `consent` and `revocation`: the user's EIP-712 message and signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentWork {
    /// The user's address.
    pub user: String,
    /// Scope (`0x`-hex bytes32).
    pub scope: String,
    /// Expiry (Unix seconds; 0 for a revocation).
    pub expiry: u64,
    /// Consent nonce.
    pub nonce: u64,
    /// The user's signature (`0x`-hex).
    pub signature: String,
}

impl ConsentWork {
    fn parts(
        &self,
    ) -> Result<(alloy::primitives::Address, alloy::primitives::B256, Bytes), ChainError> {
        let bad = |what: &str| ChainError::Invalid(format!("consent: bad {what}"));
        Ok((
            self.user.parse().map_err(|_| bad("user address"))?,
            self.scope.parse().map_err(|_| bad("scope"))?,
            self.signature.parse().map_err(|_| bad("signature hex"))?,
        ))
    }

    /// The contract's consent and signature.
    pub fn to_consent(&self) -> Result<(Consent, Bytes), ChainError> {
        let (user, scope, sig) = self.parts()?;
        let consent = Consent {
            user,
            scope,
            expiry: self.expiry,
            nonce: U256::from(self.nonce),
        };
        Ok((consent, sig))
    }

    /// The contract's revocation and signature.
    pub fn to_revocation(&self) -> Result<(Revocation, Bytes), ChainError> {
        let (user, scope, sig) = self.parts()?;
        let revocation = Revocation {
            user,
            scope,
            nonce: U256::from(self.nonce),
        };
        Ok((revocation, sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_follow_the_policy() {
        for k in WorkKind::ALL {
            assert_eq!(WorkKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert!(!WorkKind::StatusCommit.enqueued_without_chain());
        assert!(WorkKind::AssetUpsert.enqueued_without_chain());
        assert!(WorkKind::Settlement.enqueued_without_chain());
    }

    #[test]
    fn stored_form_is_kind_plus_payload() {
        let w = ChainWork::Revocation(ConsentWork {
            user: "0x0000000000000000000000000000000000000001".into(),
            scope: format!("0x{}", "00".repeat(32)),
            expiry: 0,
            nonce: 3,
            signature: "0x00".into(),
        });
        let json = w.payload_json();
        assert!(json.starts_with("{\"user\""), "{json}");
        assert_eq!(ChainWork::from_stored("revocation", &json).unwrap(), w);
        assert!(ChainWork::from_stored("consent", "{}").is_err());
        assert!(ChainWork::from_stored("nonsense", &json).is_err());
    }
}
