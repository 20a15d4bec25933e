//! AssetRegistry (SC1): groups, charge points, PV inverters and batteries.

use serde::{Deserialize, Serialize};

use super::{ChainClient, TxInfo, WriteOutcome, bytes32_str, str_bytes32};
use crate::bindings::{AssetRegistry::AssetRegistryErrors, ChargePointParams, PowerInfo};
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
}
