//! AssetRegistry (SC1): groups, charge points, PV inverters and batteries; the site's tree of
//! limit nodes (connection, transformer or fuse, cabinets), group-to-node links and each charge
//! point's phase wiring.

use serde::{Deserialize, Serialize};

use super::{ChainClient, TxInfo, WriteOutcome, bytes32_str, str_bytes32};
use crate::bindings::{
    AssetRegistry::AssetRegistryErrors, ChargePointParams, LimitNodeParams, LimitNodeRecord,
    PhaseWiringRecord, PowerInfo,
};
use crate::error::{ChainError, Contract, ContractError, decode_call_error};
use crate::ids::ChargePointId;
use crate::members::{EvseStatus, PowerType};

/// A group: the assets behind one grid connection of `capacity_w`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Group id (non-zero; the backend's id).
    pub id: u64,
    /// A short label (at most 32 bytes of UTF-8).
    pub label: String,
    /// Shared capacity, W.
    pub capacity_w: u64,
}

/// A charge point as registered in SC1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargePoint {
    /// Charge point id (the backend's EVSE row id; see [`ChargePointId`]).
    pub id: ChargePointId,
    /// Its group.
    pub group_id: u64,
    /// OCPI EVSE uid.
    pub evse_uid: String,
    /// Rated power, W.
    pub rated_power_w: u32,
    /// AC/DC and phases.
    pub power_type: PowerType,
    /// Number of phases.
    pub phases: u8,
    /// Voltage, V.
    pub voltage_v: u16,
    /// Maximum current, A.
    pub max_current_a: u16,
    /// OCPI connector type, e.g. `IEC_62196_T2`.
    pub connector_standard: String,
    /// OCPI EVSE status.
    pub status: EvseStatus,
}

/// A charge-point id read from the registry (which stores `uint64`).
fn chain_cp_id(id: u64) -> Result<ChargePointId, ChainError> {
    ChargePointId::try_from(id).map_err(|e| ChainError::Invalid(e.to_string()))
}

impl ChargePoint {
    fn to_params(&self) -> Result<ChargePointParams, ChainError> {
        Ok(ChargePointParams {
            id: self.id.into(),
            groupId: self.group_id,
            ratedPowerW: self.rated_power_w,
            status: self.status as u8,
            power: PowerInfo {
                powerType: self.power_type as u8,
                phases: self.phases,
                voltageV: self.voltage_v,
                maxCurrentA: self.max_current_a,
            },
            connectorStandard: bytes32_str(&self.connector_standard)?,
            evseUid: self.evse_uid.clone(),
        })
    }
}

/// A PV inverter as registered in SC1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PvInverter {
    /// Inverter id (non-zero).
    pub id: u64,
    /// Its group.
    pub group_id: u64,
    /// Peak AC power, W.
    pub peak_w: u64,
}

/// A stationary battery as registered in SC1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Battery {
    /// Battery id (non-zero).
    pub id: u64,
    /// Its group.
    pub group_id: u64,
    /// Usable capacity, Wh.
    pub capacity_wh: u64,
    /// Energy available, Wh (at most the capacity).
    pub available_wh: u64,
}

/// A charge point read back from SC1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredChargePoint {
    /// Its registered fields.
    pub charge_point: ChargePoint,
    /// Whether it is active (not deactivated).
    pub active: bool,
}

fn power_type(v: u8) -> Result<PowerType, ChainError> {
    use PowerType::*;
    [Ac1Phase, Ac2Phase, Ac2PhaseSplit, Ac3Phase, Dc]
        .get(v as usize)
        .copied()
        .ok_or_else(|| ChainError::Invalid(format!("unknown power type {v}")))
}

/// What a limit node of the site's tree is (the registry's `LimitNodeKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum LimitNodeKind {
    /// The site's grid connection: always the root, and the only root.
    Connection = 0,
    /// A transformer.
    Transformer = 1,
    /// A fuse (e.g. the main fuse).
    Fuse = 2,
    /// A cabinet (distribution board).
    Cabinet = 3,
}

impl LimitNodeKind {
    fn from_u8(v: u8) -> Result<Self, ChainError> {
        use LimitNodeKind::*;
        [Connection, Transformer, Fuse, Cabinet]
            .get(v as usize)
            .copied()
            .ok_or_else(|| ChainError::Invalid(format!("unknown limit node kind {v}")))
    }
}

/// One node of the site's tree of limits, as registered in SC1. The registry checks the rules
/// (a root is a connection and a connection is a root; at least one limit; a per-phase limit
/// needs a phase voltage; no node is its own ancestor) and reverts with a decoded error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitNode {
    /// Node id (non-zero; limit nodes have their own id space, separate from groups).
    pub id: u64,
    /// Parent node, `None` for the root (the connection).
    pub parent_id: Option<u64>,
    /// What the node is.
    pub kind: LimitNodeKind,
    /// Line-to-neutral phase voltage, V (0 only when there is no per-phase limit).
    pub phase_voltage_v: u16,
    /// Current limit of phases L1, L2, L3 in deci-amperes (0.1 A); 0: no limit on that phase.
    pub limit_da: [u32; 3],
    /// Power limit, W, for DC or balanced nodes (or a transformer's rating); 0: none.
    pub limit_w: u64,
}

impl LimitNode {
    fn to_params(&self) -> Result<LimitNodeParams, ChainError> {
        if self.parent_id == Some(0) {
            return Err(ChainError::Invalid(format!(
                "limit node {}: parent id 0 (use None for the root)",
                self.id
            )));
        }
        Ok(LimitNodeParams {
            id: self.id,
            parentId: self.parent_id.unwrap_or(0),
            kind: self.kind as u8,
            phaseVoltageV: self.phase_voltage_v,
            limitL1dA: self.limit_da[0],
            limitL2dA: self.limit_da[1],
            limitL3dA: self.limit_da[2],
            limitW: self.limit_w,
        })
    }
}

/// A limit node read back from SC1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredLimitNode {
    /// Its registered fields.
    pub node: LimitNode,
    /// Whether it is active (not deactivated).
    pub active: bool,
    /// How many active nodes have it as their parent.
    pub active_children: u32,
}

impl TryFrom<LimitNodeRecord> for RegisteredLimitNode {
    type Error = ChainError;

    fn try_from(n: LimitNodeRecord) -> Result<Self, ChainError> {
        Ok(Self {
            node: LimitNode {
                id: n.id,
                parent_id: (n.parentId != 0).then_some(n.parentId),
                kind: LimitNodeKind::from_u8(n.kind)?,
                phase_voltage_v: n.phaseVoltageV,
                limit_da: [n.limitL1dA, n.limitL2dA, n.limitL3dA],
                limit_w: n.limitW,
            },
            active: n.active,
            active_children: n.activeChildren,
        })
    }
}

/// The unit of a charge point's rate limits (OCPP `ChargingRateUnit`, the registry's `RateUnit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum RateUnit {
    /// Deci-amperes (0.1 A) per phase.
    DeciAmpere = 0,
    /// Watts.
    Watt = 1,
}

/// How a charge point is wired to its limit node, and the rate limits it accepts (SC1
/// `setPhaseWiring`). The registry checks the wiring: the charge point's L1 is wired, its wired
/// phases are contiguous from L1 and on distinct node phases, line-to-line needs two phases, and
/// `0 < max_rate`, `min_rate <= max_rate`, `0 < rate_step`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseWiring {
    /// The limit node the charge point hangs off.
    pub node_id: u64,
    /// The node phase (1 = L1, 2 = L2, 3 = L3; 0 = not wired) each of the charge point's phases
    /// L1, L2, L3 is wired to: `[1, 2, 3]` straight, `[2, 3, 1]` rotated, `[2, 0, 0]`
    /// single-phase on L2.
    pub phases: [u8; 3],
    /// Wired line-to-line (e.g. a 208 V pair) rather than line-to-neutral.
    pub line_to_line: bool,
    /// The unit of the three rates below.
    pub unit: RateUnit,
    /// Lowest rate the charge point accepts (deci-amperes per phase or W).
    pub min_rate: u32,
    /// Highest rate it accepts.
    pub max_rate: u32,
    /// Rate granularity: 10 for 1 A, 1 for 0.1 A (in deci-amperes), or W.
    pub rate_step: u32,
}

impl PhaseWiring {
    /// The registry's `phaseMap`: three 2-bit fields, the charge point's L1 in bits 0-1.
    pub fn phase_map(&self) -> Result<u8, ChainError> {
        let mut map = 0u8;
        for (i, &p) in self.phases.iter().enumerate() {
            if p > 3 {
                return Err(ChainError::Invalid(format!(
                    "phase wiring: node phase {p} of charge point phase L{} is not 0..=3",
                    i + 1
                )));
            }
            map |= p << (2 * i);
        }
        Ok(map)
    }

    /// The node phases of a registry `phaseMap` (see [`phases`](Self::phases)).
    pub fn phases_of(phase_map: u8) -> [u8; 3] {
        [phase_map & 3, (phase_map >> 2) & 3, (phase_map >> 4) & 3]
    }

    fn to_record(&self) -> Result<PhaseWiringRecord, ChainError> {
        Ok(PhaseWiringRecord {
            nodeId: self.node_id,
            phaseMap: self.phase_map()?,
            lineToLine: self.line_to_line,
            unit: self.unit as u8,
            minRate: self.min_rate,
            maxRate: self.max_rate,
            rateStep: self.rate_step,
        })
    }

    fn from_record(w: &PhaseWiringRecord) -> Result<Self, ChainError> {
        Ok(Self {
            node_id: w.nodeId,
            phases: Self::phases_of(w.phaseMap),
            line_to_line: w.lineToLine,
            unit: match w.unit {
                0 => RateUnit::DeciAmpere,
                1 => RateUnit::Watt,
                u => return Err(ChainError::Invalid(format!("unknown rate unit {u}"))),
            },
            min_rate: w.minRate,
            max_rate: w.maxRate,
            rate_step: w.rateStep,
        })
    }
}

impl ChainClient {
    /// Registers `group`; [`WriteOutcome::AlreadyDone`] if it is registered with the same label
    /// and capacity, [`ChainError::AssetConflict`] if with other values (use
    /// [`update_group`](Self::update_group)).
    #[tracing::instrument(skip_all, fields(group_id = group.id))]
    pub async fn register_group(&self, group: &Group) -> Result<WriteOutcome, ChainError> {
        let label = bytes32_str(&group.label)?;
        let call = self
            .asset_registry
            .registerGroup(group.id, label, group.capacity_w);
        match self
            .send(Contract::AssetRegistry, "registerGroup", call)
            .await
        {
            Ok(tx) => Ok(WriteOutcome::Mined(tx)),
            Err(ChainError::Reverted {
                error:
                    ContractError::AssetRegistry(AssetRegistryErrors::AssetRegistryDuplicateGroup(_)),
                ..
            }) => {
                let existing = self.group(group.id).await?;
                if existing.as_ref() == Some(group) {
                    Ok(WriteOutcome::AlreadyDone)
                } else {
                    Err(ChainError::AssetConflict {
                        what: "group",
                        id: group.id,
                    })
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Updates the label and capacity of an active group.
    #[tracing::instrument(skip_all, fields(group_id = group.id))]
    pub async fn update_group(&self, group: &Group) -> Result<TxInfo, ChainError> {
        let label = bytes32_str(&group.label)?;
        let call = self
            .asset_registry
            .updateGroup(group.id, label, group.capacity_w);
        self.send(Contract::AssetRegistry, "updateGroup", call)
            .await
    }

    /// Group `id`, `None` if it is not registered.
    pub async fn group(&self, id: u64) -> Result<Option<Group>, ChainError> {
        let registered = self
            .asset_registry
            .isGroupRegistered(id)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::AssetRegistry, "isGroupRegistered", e))?;
        if !registered {
            return Ok(None);
        }
        let g = self
            .asset_registry
            .group(id)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::AssetRegistry, "group", e))?;
        Ok(Some(Group {
            id: g.id,
            label: str_bytes32(&g.label),
            capacity_w: g.capacityW,
        }))
    }

    /// Registers charge points in one atomic transaction. Those already registered with the
    /// same values are left out (so a replayed batch is [`WriteOutcome::AlreadyDone`]); one
    /// registered with other values fails the call with [`ChainError::AssetConflict`].
    #[tracing::instrument(skip_all, fields(count = charge_points.len()))]
    pub async fn register_charge_points(
        &self,
        charge_points: &[ChargePoint],
    ) -> Result<WriteOutcome, ChainError> {
        let mut todo = Vec::with_capacity(charge_points.len());
        for cp in charge_points {
            match self.charge_point(cp.id).await? {
                None => todo.push(cp.to_params()?),
                Some(existing) if existing.charge_point == *cp => {}
                Some(_) => {
                    return Err(ChainError::AssetConflict {
                        what: "charge point",
                        id: cp.id.into(),
                    });
                }
            }
        }
        if todo.is_empty() {
            return Ok(WriteOutcome::AlreadyDone);
        }
        let call = self.asset_registry.registerChargePoints(todo);
        Ok(WriteOutcome::Mined(
            self.send(Contract::AssetRegistry, "registerChargePoints", call)
                .await?,
        ))
    }

    /// Replaces every field of active charge points in one atomic transaction.
    #[tracing::instrument(skip_all, fields(count = charge_points.len()))]
    pub async fn update_charge_points(
        &self,
        charge_points: &[ChargePoint],
    ) -> Result<TxInfo, ChainError> {
        let params = charge_points
            .iter()
            .map(ChargePoint::to_params)
            .collect::<Result<Vec<_>, _>>()?;
        let call = self.asset_registry.updateChargePoints(params);
        self.send(Contract::AssetRegistry, "updateChargePoints", call)
            .await
    }

    /// Sets the OCPI status of an active charge point.
    #[tracing::instrument(skip_all, fields(%cp_id))]
    pub async fn set_charge_point_status(
        &self,
        cp_id: ChargePointId,
        status: EvseStatus,
    ) -> Result<TxInfo, ChainError> {
        let call = self
            .asset_registry
            .setChargePointStatus(cp_id.into(), status as u8);
        self.send(Contract::AssetRegistry, "setChargePointStatus", call)
            .await
    }

    /// Deactivates a charge point.
    #[tracing::instrument(skip_all, fields(%cp_id))]
    pub async fn deactivate_charge_point(
        &self,
        cp_id: ChargePointId,
    ) -> Result<TxInfo, ChainError> {
        let call = self.asset_registry.deactivateChargePoint(cp_id.into());
        self.send(Contract::AssetRegistry, "deactivateChargePoint", call)
            .await
    }

    /// Charge point `id`, `None` if it is not registered.
    pub async fn charge_point(
        &self,
        id: ChargePointId,
    ) -> Result<Option<RegisteredChargePoint>, ChainError> {
        let cp = match self.asset_registry.chargePoint(id.into()).call().await {
            Ok(cp) => cp,
            Err(e) => {
                return match decode_call_error(Contract::AssetRegistry, "chargePoint", e) {
                    ChainError::Reverted {
                        error:
                            ContractError::AssetRegistry(
                                AssetRegistryErrors::AssetRegistryUnknownChargePoint(_),
                            ),
                        ..
                    } => Ok(None),
                    other => Err(other),
                };
            }
        };
        if cp.id == 0 {
            return Ok(None);
        }
        Ok(Some(RegisteredChargePoint {
            charge_point: ChargePoint {
                id: chain_cp_id(cp.id)?,
                group_id: cp.groupId,
                evse_uid: cp.evseUid,
                rated_power_w: cp.ratedPowerW,
                power_type: power_type(cp.power.powerType)?,
                phases: cp.power.phases,
                voltage_v: cp.power.voltageV,
                max_current_a: cp.power.maxCurrentA,
                connector_standard: str_bytes32(&cp.connectorStandard),
                status: EvseStatus::from_u8(cp.status).ok_or_else(|| {
                    ChainError::Invalid(format!("unknown EVSE status {}", cp.status))
                })?,
            },
            active: cp.active,
        }))
    }

    /// Every charge point registered in `group_id` (active or not), by id.
    #[tracing::instrument(skip_all, fields(group_id))]
    pub async fn charge_points_of(
        &self,
        group_id: u64,
    ) -> Result<Vec<RegisteredChargePoint>, ChainError> {
        let mut ids = self
            .asset_registry
            .chargePointsOf(group_id)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::AssetRegistry, "chargePointsOf", e))?;
        ids.sort_unstable();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(cp) = self.charge_point(chain_cp_id(id)?).await? {
                out.push(cp);
            }
        }
        Ok(out)
    }

    /// PV inverter `id` and whether it is active; `None` if it is not registered.
    pub async fn pv_inverter(&self, id: u64) -> Result<Option<(PvInverter, bool)>, ChainError> {
        match self.asset_registry.pvInverter(id).call().await {
            Ok(pv) if pv.id != 0 => Ok(Some((
                PvInverter {
                    id: pv.id,
                    group_id: pv.groupId,
                    peak_w: pv.peakW,
                },
                pv.active,
            ))),
            Ok(_) => Ok(None),
            Err(e) => match decode_call_error(Contract::AssetRegistry, "pvInverter", e) {
                ChainError::Reverted {
                    error:
                        ContractError::AssetRegistry(
                            AssetRegistryErrors::AssetRegistryUnknownPvInverter(_),
                        ),
                    ..
                } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Registers `pv`, or updates it if registered with other values;
    /// [`WriteOutcome::AlreadyDone`] if it holds these values already. A deactivated inverter
    /// cannot be updated (the registry refuses).
    #[tracing::instrument(skip_all, fields(pv_id = pv.id))]
    pub async fn upsert_pv_inverter(&self, pv: &PvInverter) -> Result<WriteOutcome, ChainError> {
        let call = match self.pv_inverter(pv.id).await? {
            Some((existing, true)) if &existing == pv => return Ok(WriteOutcome::AlreadyDone),
            Some(_) => {
                let call = self
                    .asset_registry
                    .updatePvInverter(pv.id, pv.group_id, pv.peak_w);
                return Ok(WriteOutcome::Mined(
                    self.send(Contract::AssetRegistry, "updatePvInverter", call)
                        .await?,
                ));
            }
            None => self
                .asset_registry
                .registerPvInverter(pv.id, pv.group_id, pv.peak_w),
        };
        Ok(WriteOutcome::Mined(
            self.send(Contract::AssetRegistry, "registerPvInverter", call)
                .await?,
        ))
    }

    /// Battery `id` and whether it is active; `None` if it is not registered.
    pub async fn battery(&self, id: u64) -> Result<Option<(Battery, bool)>, ChainError> {
        match self.asset_registry.battery(id).call().await {
            Ok(b) if b.id != 0 => Ok(Some((
                Battery {
                    id: b.id,
                    group_id: b.groupId,
                    capacity_wh: b.capacityWh,
                    available_wh: b.availableWh,
                },
                b.active,
            ))),
            Ok(_) => Ok(None),
            Err(e) => match decode_call_error(Contract::AssetRegistry, "battery", e) {
                ChainError::Reverted {
                    error:
                        ContractError::AssetRegistry(AssetRegistryErrors::AssetRegistryUnknownBattery(
                            _,
                        )),
                    ..
                } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Registers `battery`, or updates it if registered with other values;
    /// [`WriteOutcome::AlreadyDone`] if it holds these values already.
    #[tracing::instrument(skip_all, fields(battery_id = battery.id))]
    pub async fn upsert_battery(&self, battery: &Battery) -> Result<WriteOutcome, ChainError> {
        let b = battery;
        match self.battery(b.id).await? {
            Some((existing, true)) if &existing == b => Ok(WriteOutcome::AlreadyDone),
            Some(_) => {
                let call = self.asset_registry.updateBattery(
                    b.id,
                    b.group_id,
                    b.capacity_wh,
                    b.available_wh,
                );
                Ok(WriteOutcome::Mined(
                    self.send(Contract::AssetRegistry, "updateBattery", call)
                        .await?,
                ))
            }
            None => {
                let call = self.asset_registry.registerBattery(
                    b.id,
                    b.group_id,
                    b.capacity_wh,
                    b.available_wh,
                );
                Ok(WriteOutcome::Mined(
                    self.send(Contract::AssetRegistry, "registerBattery", call)
                        .await?,
                ))
            }
        }
    }

    /// Registers `group`, or updates it when it is registered with other values.
    pub async fn upsert_group(&self, group: &Group) -> Result<WriteOutcome, ChainError> {
        match self.register_group(group).await {
            Err(ChainError::AssetConflict { .. }) => {
                Ok(WriteOutcome::Mined(self.update_group(group).await?))
            }
            other => other,
        }
    }

    /// Registers `cp`, or updates it when it is registered with other values.
    pub async fn upsert_charge_point(&self, cp: &ChargePoint) -> Result<WriteOutcome, ChainError> {
        let one = std::slice::from_ref(cp);
        match self.register_charge_points(one).await {
            Err(ChainError::AssetConflict { .. }) => {
                Ok(WriteOutcome::Mined(self.update_charge_points(one).await?))
            }
            other => other,
        }
    }

    /// Deactivates charge point `cp_id` if it is registered and active; otherwise
    /// [`WriteOutcome::AlreadyDone`].
    pub async fn retire_charge_point(
        &self,
        cp_id: ChargePointId,
    ) -> Result<WriteOutcome, ChainError> {
        match self.charge_point(cp_id).await? {
            Some(r) if r.active => Ok(WriteOutcome::Mined(
                self.deactivate_charge_point(cp_id).await?,
            )),
            _ => Ok(WriteOutcome::AlreadyDone),
        }
    }

    // ------------------------------------------------------------------------------------------
    // Site topology: limit nodes, group links, phase wiring
    // ------------------------------------------------------------------------------------------

    /// Registers limit node `node` (its parent first: the registry refuses an unknown parent);
    /// [`WriteOutcome::AlreadyDone`] if it is registered with the same values,
    /// [`ChainError::AssetConflict`] if with other values (use
    /// [`update_limit_node`](Self::update_limit_node)).
    #[tracing::instrument(skip_all, fields(node_id = node.id))]
    pub async fn register_limit_node(&self, node: &LimitNode) -> Result<WriteOutcome, ChainError> {
        let call = self.asset_registry.registerLimitNode(node.to_params()?);
        match self
            .send(Contract::AssetRegistry, "registerLimitNode", call)
            .await
        {
            Ok(tx) => Ok(WriteOutcome::Mined(tx)),
            Err(ChainError::Reverted {
                error:
                    ContractError::AssetRegistry(AssetRegistryErrors::AssetRegistryDuplicateLimitNode(
                        _,
                    )),
                ..
            }) => match self.limit_node(node.id).await? {
                Some(existing) if existing.active && existing.node == *node => {
                    Ok(WriteOutcome::AlreadyDone)
                }
                _ => Err(ChainError::AssetConflict {
                    what: "limit node",
                    id: node.id,
                }),
            },
            Err(e) => Err(e),
        }
    }

    /// Replaces the kind, limits, voltage and parent of an active limit node (moving it under
    /// another parent; the registry refuses a move that would make it its own ancestor).
    #[tracing::instrument(skip_all, fields(node_id = node.id))]
    pub async fn update_limit_node(&self, node: &LimitNode) -> Result<TxInfo, ChainError> {
        let call = self.asset_registry.updateLimitNode(node.to_params()?);
        self.send(Contract::AssetRegistry, "updateLimitNode", call)
            .await
    }

    /// Registers `node`, or updates it when it is registered with other values.
    pub async fn upsert_limit_node(&self, node: &LimitNode) -> Result<WriteOutcome, ChainError> {
        match self.register_limit_node(node).await {
            Err(ChainError::AssetConflict { .. }) => {
                Ok(WriteOutcome::Mined(self.update_limit_node(node).await?))
            }
            other => other,
        }
    }

    /// Deactivates limit node `node_id` (it must have no active children).
    #[tracing::instrument(skip_all, fields(node_id))]
    pub async fn deactivate_limit_node(&self, node_id: u64) -> Result<TxInfo, ChainError> {
        let call = self.asset_registry.deactivateLimitNode(node_id);
        self.send(Contract::AssetRegistry, "deactivateLimitNode", call)
            .await
    }

    /// Limit node `id`, `None` if it is not registered.
    pub async fn limit_node(&self, id: u64) -> Result<Option<RegisteredLimitNode>, ChainError> {
        match self.asset_registry.limitNode(id).call().await {
            Ok(n) if n.id != 0 => Ok(Some(n.try_into()?)),
            Ok(_) => Ok(None),
            Err(e) => match decode_call_error(Contract::AssetRegistry, "limitNode", e) {
                ChainError::Reverted {
                    error:
                        ContractError::AssetRegistry(
                            AssetRegistryErrors::AssetRegistryUnknownLimitNode(_),
                        ),
                    ..
                } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Links the active group `group_id` to the active limit node `node_id` (usually its
    /// cabinet), or unlinks it with `None`; [`WriteOutcome::AlreadyDone`] if it is linked so.
    #[tracing::instrument(skip_all, fields(group_id))]
    pub async fn set_group_limit_node(
        &self,
        group_id: u64,
        node_id: Option<u64>,
    ) -> Result<WriteOutcome, ChainError> {
        if self.group_limit_node(group_id).await? == node_id {
            return Ok(WriteOutcome::AlreadyDone);
        }
        let call = self
            .asset_registry
            .setGroupLimitNode(group_id, node_id.unwrap_or(0));
        Ok(WriteOutcome::Mined(
            self.send(Contract::AssetRegistry, "setGroupLimitNode", call)
                .await?,
        ))
    }

    /// The limit node group `group_id` is linked to, `None` if none. An unknown group is an
    /// error (the registry's `AssetRegistryUnknownGroup`, decoded).
    pub async fn group_limit_node(&self, group_id: u64) -> Result<Option<u64>, ChainError> {
        let node_id = self
            .asset_registry
            .groupLimitNode(group_id)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::AssetRegistry, "groupLimitNode", e))?;
        Ok((node_id != 0).then_some(node_id))
    }

    /// Sets the phase wiring and rate limits of the active charge point `cp_id`;
    /// [`WriteOutcome::AlreadyDone`] if it holds this wiring already.
    #[tracing::instrument(skip_all, fields(%cp_id))]
    pub async fn set_phase_wiring(
        &self,
        cp_id: ChargePointId,
        wiring: &PhaseWiring,
    ) -> Result<WriteOutcome, ChainError> {
        let record = wiring.to_record()?;
        if self.phase_wiring(cp_id).await?.as_ref() == Some(wiring) {
            return Ok(WriteOutcome::AlreadyDone);
        }
        let call = self.asset_registry.setPhaseWiring(cp_id.into(), record);
        Ok(WriteOutcome::Mined(
            self.send(Contract::AssetRegistry, "setPhaseWiring", call)
                .await?,
        ))
    }

    /// The phase wiring of charge point `cp_id`; `None` if the charge point is not registered
    /// or has no wiring set.
    pub async fn phase_wiring(
        &self,
        cp_id: ChargePointId,
    ) -> Result<Option<PhaseWiring>, ChainError> {
        match self.asset_registry.phaseWiring(cp_id.into()).call().await {
            Ok(w) if w.nodeId != 0 => Ok(Some(PhaseWiring::from_record(&w)?)),
            Ok(_) => Ok(None),
            Err(e) => match decode_call_error(Contract::AssetRegistry, "phaseWiring", e) {
                ChainError::Reverted {
                    error:
                        ContractError::AssetRegistry(
                            AssetRegistryErrors::AssetRegistryUnknownChargePoint(_),
                        ),
                    ..
                } => Ok(None),
                other => Err(other),
            },
        }
    }
}
