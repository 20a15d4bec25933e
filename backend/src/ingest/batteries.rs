//! A stationary battery's measured state, from the site's battery controller (issue 15). The
//! plan starts from it (`engine::battery`). It is validated against the battery the topology
//! declares: a state no such battery can be in is a 400 that says why, and stores nothing.

use super::topology::owned_group;
use super::{Actor, IngestError, IngestResult};
use crate::domain::{bounds, parse_rfc3339};
use crate::store::Db;
use crate::store::groups::{self, BatteryState};
use serde::Deserialize;

/// How far ahead of evflex's clock a measurement may be stamped (s): clock skew.
const MAX_SKEW_S: i64 = 300;

/// A battery's measured state (`PUT /api/v1/groups/{id}/batteries/{battery_id}/state`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatteryStateSpec {
    /// Energy stored now (Wh), within the usable capacity the topology gives.
    pub energy_wh: i64,
    /// Power at the battery's meter (W, + charging, − discharging).
    #[serde(default)]
    pub power_w: i64,
    /// When it was measured (RFC 3339); absent: now.
    #[serde(default)]
    pub measured_at: Option<String>,
}

/// What a state post did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// Stored: the next plan starts from it.
    Stored,
    /// Older than the stored state, which is kept.
    Stale,
}

/// Stores battery `battery_id`'s state in group `group_id`, which `actor` must own.
#[tracing::instrument(skip_all, fields(group_id, battery_id))]
pub async fn set_state(
    db: &Db,
    actor: Actor<'_>,
    group_id: i64,
    battery_id: &str,
    spec: &BatteryStateSpec,
    now: i64,
) -> IngestResult<Posted> {
    let measured_at = match &spec.measured_at {
        Some(s) => parse_rfc3339(s)
            .ok_or_else(|| IngestError::Invalid(format!("measured_at: invalid DateTime {s:?}")))?,
        None => now,
    };
    bounds::instant("measured_at", measured_at).map_err(IngestError::Invalid)?;
    if measured_at > now + MAX_SKEW_S {
        return Err(IngestError::Invalid(format!(
            "measured_at: {s} is more than {MAX_SKEW_S} s ahead of evflex's clock",
            s = spec.measured_at.as_deref().unwrap_or_default()
        )));
    }
    let mut tx = db.begin().await?;
    let group = owned_group(&mut tx, actor, group_id).await?;
    let battery = group
        .record
        .batteries
        .iter()
        .find(|b| b.id == battery_id)
        .ok_or_else(|| {
            IngestError::NotFound(format!("group {group_id} has no battery {battery_id:?}"))
        })?;
    if !(0..=battery.capacity_wh).contains(&spec.energy_wh) {
        return Err(IngestError::Invalid(format!(
            "energy_wh: {} Wh is outside battery {battery_id:?}'s 0 to {} Wh",
            spec.energy_wh, battery.capacity_wh
        )));
    }
    // A meter may read a little over the rating; twice it, no battery can draw.
    let (most_in, most_out) = (2 * battery.max_charge_w, 2 * battery.max_discharge_w);
    if !(-most_out..=most_in).contains(&spec.power_w) {
        return Err(IngestError::Invalid(format!(
            "power_w: {} W is not a power battery {battery_id:?} can have \
             (rated {} W charging, {} W discharging)",
            spec.power_w, battery.max_charge_w, battery.max_discharge_w
        )));
    }
    let state = BatteryState {
        energy_wh: spec.energy_wh,
        power_w: spec.power_w,
        measured_at,
    };
    let stored = groups::set_battery_state(&mut tx, group_id, battery_id, &state).await?;
    tx.commit().await?;
    Ok(if stored {
        Posted::Stored
    } else {
        Posted::Stale
    })
}
