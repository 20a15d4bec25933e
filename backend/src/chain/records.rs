//! What the service's rows are on chain: the chain records of groups, EVSEs, PV inverters and
//! batteries, and the chain input of a status commit. The writer derives them from the database
//! when it sends a [`ChainWork`](evflex_chain::ChainWork), and the audit derives the same records
//! to compare them with the chain, so the two never disagree on the mapping.
//!
//! Nothing here knows an ABI: the chain-side types are [`evflex_chain`]'s.

use super::{ChainContext, Error, chain_algorithm_version, evse_status, parse_b256, power_type};
use crate::store::{Conn, Db, groups, locations};
use alloy::primitives::B256;
use evflex_chain::work::{AssetWork, StatusCommitWork};
use evflex_chain::{
    Battery, ChainClient, ChargePoint, ChargePointId, ChargePointIdOutOfRange, Group, LimitNode,
    LimitNodeKind, MemberStatus, PhaseWiring, PvInverter, RateUnit, StatusCommitInput,
    WriteOutcome,
};
use std::collections::HashSet;

fn truncate_utf8(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A group's label on chain: its name cut to 32 bytes of UTF-8.
pub fn group_label(name: &str) -> String {
    truncate_utf8(name, 32)
}

/// The chain id of an asset named `id` within group `group_id` (PV inverters and batteries
/// have string ids local to their group): the first 8 bytes of
/// `keccak256("evflex:<kind>:<group>:<id>")`, never 0. Stable, so no mapping table is needed.
pub fn asset_chain_id(kind: &str, group_id: i64, id: &str) -> u64 {
    let h = alloy::primitives::keccak256(format!("evflex:{kind}:{group_id}:{id}"));
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_be_bytes(b).max(1)
}

/// The chain record of a group's PV inverter `id` of `peak_w`.
pub fn pv_inverter(group_id: i64, id: &str, peak_w: i64) -> PvInverter {
    PvInverter {
        id: asset_chain_id("pv", group_id, id),
        group_id: group_id as u64,
        peak_w: peak_w.max(0) as u64,
    }
}

/// The chain record of a group's battery `id` (available energy capped at its capacity).
pub fn battery(group_id: i64, id: &str, capacity_wh: i64, energy_wh: i64) -> Battery {
    let capacity_wh = capacity_wh.max(0) as u64;
    Battery {
        id: asset_chain_id("battery", group_id, id),
        group_id: group_id as u64,
        capacity_wh,
        available_wh: (energy_wh.max(0) as u64).min(capacity_wh),
    }
}

/// The chain record of an EVSE (cp id = the EVSE's row id, checked: [`ChargePointId`]).
pub fn charge_point(
    id: i64,
    group_id: i64,
    r: &locations::EvseRecord,
) -> Result<ChargePoint, ChargePointIdOutOfRange> {
    Ok(ChargePoint {
        id: ChargePointId::try_from(id)?,
        group_id: group_id as u64,
        evse_uid: r.uid.clone(),
        rated_power_w: r.rated_power_w.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
        power_type: power_type(r.power_type.as_deref()),
        phases: r.phases.unwrap_or(3).clamp(0, 255) as u8,
        voltage_v: r.max_voltage_v.unwrap_or(230).clamp(0, 65_535) as u16,
        max_current_a: r.max_current_a.unwrap_or(16).clamp(0, 65_535) as u16,
        connector_standard: truncate_utf8(r.connector_standard.as_deref().unwrap_or(""), 32),
        status: evse_status(&r.status),
    })
}

/// The chain id of node `node` of group `group_id`'s tree ([`asset_chain_id`]); the group's
/// connection is [`crate::engine::snapshot::CONNECTION_NODE`].
pub fn limit_node_id(group_id: i64, node: &str) -> u64 {
    asset_chain_id("limit-node", group_id, node)
}

/// A current in mA as the registry's deci-amperes (0.1 A, truncated), saturating.
fn deci_amps(ma: i64) -> u32 {
    (ma.max(0) / 100).min(i64::from(u32::MAX)) as u32
}

/// The chain records of a group's tree of limits, parents first: its connection (the root, a
/// `Connection` with the per-phase limits and the group's capacity in W), then its limit
/// nodes. Empty for a group without an electrical model.
pub fn limit_nodes(g: &groups::GroupRecord) -> Vec<LimitNode> {
    let e = &g.electrical;
    if e.is_empty() {
        return Vec::new();
    }
    let voltage = e.phase_voltage_v.clamp(0, u32::from(u16::MAX)) as u16;
    let root = crate::engine::snapshot::CONNECTION_NODE;
    let mut out = vec![LimitNode {
        id: limit_node_id(g.id, root),
        parent_id: None,
        kind: LimitNodeKind::Connection,
        phase_voltage_v: voltage,
        limit_da: e.phase_limit_ma.map(|l| l.map_or(0, deci_amps)),
        limit_w: g.capacity_w.max(0) as u64,
    }];
    out.extend(e.nodes.iter().map(|n| LimitNode {
        id: limit_node_id(g.id, &n.id),
        parent_id: Some(limit_node_id(g.id, n.parent.as_deref().unwrap_or(root))),
        kind: match n.kind {
            groups::NodeKind::Transformer => LimitNodeKind::Transformer,
            groups::NodeKind::Fuse => LimitNodeKind::Fuse,
            groups::NodeKind::Cabinet => LimitNodeKind::Cabinet,
        },
        phase_voltage_v: voltage,
        limit_da: n.phase_limit_ma.map(|l| l.map_or(0, deci_amps)),
        limit_w: n.limit_w.unwrap_or(0).max(0) as u64,
    }));
    out
}

/// The chain record of a charge point's wiring in group `group_id` (`rated_power_w` is the
/// maximum rate of a watts point).
pub fn phase_wiring(group_id: i64, w: &groups::CpWiring, rated_power_w: i64) -> PhaseWiring {
    let node = w
        .node
        .as_deref()
        .unwrap_or(crate::engine::snapshot::CONNECTION_NODE);
    let mut phases = [0u8; 3];
    for (slot, p) in phases.iter_mut().zip(&w.phases) {
        *slot = p.index() as u8 + 1;
    }
    let (unit, min_rate, max_rate, rate_step) = match w.unit {
        evflex_schedule::RateUnit::Amps => (
            RateUnit::DeciAmpere,
            deci_amps(w.min_current_ma),
            deci_amps(w.max_current_ma),
            deci_amps(w.current_step_ma).max(1),
        ),
        evflex_schedule::RateUnit::Watts => (
            RateUnit::Watt,
            0,
            rated_power_w.clamp(1, i64::from(u32::MAX)) as u32,
            1,
        ),
    };
    PhaseWiring {
        node_id: limit_node_id(group_id, node),
        phases,
        line_to_line: w.wiring == evflex_schedule::Wiring::LineToLine,
        unit,
        min_rate,
        max_rate,
        rate_step,
    }
}

/// Puts a group's tree of limits and its charge points' wiring on chain (after the group and
/// its charge points): nodes parents first, the group linked to its connection, each wired
/// member's wiring. Read from the database at send time, like the members.
async fn upsert_tree(op: &ChainClient, db: &Db, group_id: i64) -> Result<(), Error> {
    let (group, wired) = {
        let mut conn = db.conn().await?;
        let Some(group) = groups::get(&mut conn, group_id).await? else {
            return Ok(());
        };
        let g = &group.record;
        let mut wired = Vec::new();
        for w in &g.electrical.charge_points {
            if let Some(evse) =
                locations::get_evse(&mut conn, &g.country_code, &g.party_id, &w.evse_uid).await?
            {
                let rated = evse.record.rated_power_w.unwrap_or(0);
                wired.push((
                    ChargePointId::try_from(evse.id)?,
                    phase_wiring(g.id, w, rated),
                ));
            }
        }
        (group.record, wired)
    };
    let nodes = limit_nodes(&group);
    for node in &nodes {
        op.upsert_limit_node(node).await?;
    }
    op.set_group_limit_node(group_id as u64, nodes.first().map(|n| n.id))
        .await?;
    for (cp, wiring) in &wired {
        op.set_phase_wiring(*cp, wiring).await?;
    }
    Ok(())
}

/// Puts an asset record on chain through `op`, deriving the chain records from the database
/// at send time (no connection is held while sending); returns the outcome and a note for the
/// row.
pub async fn upsert_asset(
    op: &ChainClient,
    db: &Db,
    work: &AssetWork,
) -> Result<(WriteOutcome, Option<&'static str>), Error> {
    match work {
        AssetWork::Group {
            group_id,
            name,
            capacity_w,
            members,
            country_code,
            party_id,
            pv_inverters,
            batteries,
        } => {
            let group = Group {
                id: *group_id as u64,
                label: group_label(name),
                capacity_w: (*capacity_w).max(0) as u64,
            };
            let outcome = op.upsert_group(&group).await?;
            let mut cps = Vec::new();
            {
                let mut conn = db.conn().await?;
                for uid in members {
                    if let Some(evse) =
                        locations::get_evse(&mut conn, country_code, party_id, uid).await?
                    {
                        cps.push(charge_point(evse.id, *group_id, &evse.record)?);
                    }
                }
            }
            for cp in &cps {
                op.upsert_charge_point(cp).await?;
            }
            for pv in pv_inverters {
                op.upsert_pv_inverter(&pv_inverter(*group_id, &pv.id, pv.peak_w))
                    .await?;
            }
            for b in batteries {
                op.upsert_battery(&battery(*group_id, &b.id, b.capacity_wh, b.energy_wh))
                    .await?;
            }
            upsert_tree(op, db, *group_id).await?;
            Ok((outcome, None))
        }
        AssetWork::ChargePoint {
            country_code,
            party_id,
            evse_uid,
            group_id,
            active,
            ..
        } => {
            let Some(group_id) = group_id else {
                return Ok((
                    WriteOutcome::AlreadyDone,
                    Some("no group yet: registered with its group"),
                ));
            };
            let evse = {
                let mut conn = db.conn().await?;
                locations::get_evse(&mut conn, country_code, party_id, evse_uid).await?
            }
            .ok_or_else(|| Error::Invalid(format!("EVSE {evse_uid} is unknown")))?;
            let cp = charge_point(evse.id, *group_id, &evse.record)?;
            let outcome = if *active {
                op.upsert_charge_point(&cp).await?
            } else {
                op.retire_charge_point(cp.id).await?
            };
            Ok((outcome, None))
        }
    }
}

/// The on-chain algorithm versions known to be registered (each is checked, and registered if
/// needed, once per process).
#[derive(Debug, Default)]
pub struct KnownAlgorithms(tokio::sync::Mutex<HashSet<B256>>);

impl KnownAlgorithms {
    /// The on-chain id of the stored params hash `stored`, registered if it is not yet.
    pub async fn ensure(&self, ctx: &ChainContext, stored: &str) -> Result<B256, Error> {
        let params = parse_b256(stored)?;
        let version = chain_algorithm_version(params);
        let mut known = self.0.lock().await;
        if !known.contains(&version) {
            if !ctx.operator.is_algorithm_usable(version).await? {
                ctx.register_algorithm_params(params).await?;
            }
            known.insert(version);
        }
        Ok(version)
    }
}

/// The chain input of a status commit: members by charge point id (from the database), the
/// given on-chain algorithm version, the schedule's revision within its timestep.
pub async fn status_commit_input(
    conn: &mut Conn,
    work: &StatusCommitWork,
    algorithm_version: B256,
) -> Result<StatusCommitInput, Error> {
    let group = groups::get(conn, work.group_id)
        .await?
        .ok_or_else(|| Error::Invalid(format!("group {} is unknown", work.group_id)))?;
    let (cc, party) = (&group.record.country_code, &group.record.party_id);
    let mut members = Vec::with_capacity(work.members.len());
    for m in &work.members {
        let evse = locations::get_evse(conn, cc, party, &m.evse_uid)
            .await?
            .ok_or_else(|| Error::Invalid(format!("EVSE {} is unknown", m.evse_uid)))?;
        let u32c = |v: i64| v.clamp(0, i64::from(u32::MAX)) as u32;
        members.push(MemberStatus {
            cp_id: ChargePointId::try_from(evse.id)?,
            status: evse_status(&m.status) as u8,
            setpoint_w: u32c(m.setpoint_w),
            measured_w: u32c(m.measured_w),
            energy_left_wh: u32c(m.energy_left_wh),
            time_left_s: u32c(m.time_left_s),
        });
    }
    let revision = u32::try_from(work.revision)
        .map_err(|_| Error::Invalid(format!("revision {} is out of range", work.revision)))?;
    Ok(StatusCommitInput {
        group_id: work.group_id as u64,
        timestep: work.timestep as u64,
        revision,
        inputs_hash: parse_b256(&work.inputs_hash)?,
        schedule_hash: parse_b256(&work.schedule_hash)?,
        algorithm_version,
        members,
    })
}
