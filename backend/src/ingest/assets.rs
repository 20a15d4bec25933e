//! Chain asset records (SC1): when an EVSE or a group arrives or its chain-relevant data
//! changes, an `asset_upsert` is enqueued in the same transaction. Only changes count: the hash
//! of the last enqueued record is kept on the asset's row, and a new record gets the next
//! version number in its dedupe key.
//!
//! Asset records are enqueued whether or not a chain is configured (the "no chain configured"
//! policy of `evflex_chain::work`), so the sync needs no chain handle; the assertion below keeps
//! it that way.

use crate::store::{Conn, StoreResult, groups, locations, outbox, to_json};
use evflex_chain::work::{AssetWork, BatterySpec, ChainWork, PvInverterSpec, WorkKind};
use sha3::{Digest, Keccak256};

const _: () = assert!(WorkKind::AssetUpsert.enqueued_without_chain());

fn payload_hash(payload: &AssetWork) -> String {
    hex::encode(Keccak256::digest(to_json(payload).as_bytes()))
}

/// Re-derives an EVSE's asset record and enqueues it if it changed; `true` when enqueued.
pub async fn sync_evse(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    uid: &str,
    now: i64,
) -> StoreResult<bool> {
    let Some(evse) = locations::get_evse(conn, country_code, party_id, uid).await? else {
        return Ok(false);
    };
    let group_id = groups::group_of_evse(conn, country_code, party_id, uid).await?;
    let r = &evse.record;
    let payload = AssetWork::ChargePoint {
        country_code: r.country_code.clone(),
        party_id: r.party_id.clone(),
        location_id: r.location_id.clone(),
        evse_uid: r.uid.clone(),
        evse_id: r.evse_id.clone(),
        rated_power_w: r.rated_power_w.unwrap_or(0),
        power_type: r.power_type.clone(),
        phases: r.phases,
        max_voltage_v: r.max_voltage_v,
        max_current_a: r.max_current_a,
        connector_standard: r.connector_standard.clone(),
        group_id,
        active: r.status != "REMOVED",
    };
    let hash = payload_hash(&payload);
    if hash == evse.asset_hash {
        return Ok(false);
    }
    let version = evse.asset_version + 1;
    let key = format!("asset_upsert:evse:{country_code}*{party_id}*{uid}:v{version}");
    outbox::enqueue(conn, &key, &ChainWork::AssetUpsert(payload), now).await?;
    locations::set_evse_asset_state(conn, evse.id, version, &hash).await?;
    Ok(true)
}

/// Re-derives a group's asset record and enqueues it if it changed; `true` when enqueued.
pub async fn sync_group(conn: &mut Conn, group_id: i64, now: i64) -> StoreResult<bool> {
    let Some(group) = groups::get(conn, group_id).await? else {
        return Ok(false);
    };
    let members = groups::members(conn, group_id).await?;
    let g = &group.record;
    let payload = AssetWork::Group {
        group_id,
        name: g.name.clone(),
        capacity_w: g.capacity_w,
        members,
        country_code: g.country_code.clone(),
        party_id: g.party_id.clone(),
        pv_inverters: g
            .pv_inverters
            .iter()
            .map(|pv| PvInverterSpec {
                id: pv.id.clone(),
                peak_w: pv.peak_w,
            })
            .collect(),
        batteries: g
            .batteries
            .iter()
            .map(|b| BatterySpec {
                id: b.id.clone(),
                capacity_wh: b.capacity_wh,
                energy_wh: b.energy_wh,
                max_charge_w: b.max_charge_w,
                max_discharge_w: b.max_discharge_w,
                efficiency_permille: b.efficiency_permille,
            })
            .collect(),
    };
    // The tree of limits and the wiring are read at send time (`chain::records`), so they are
    // not in the payload; they are in the hash, so a change to them alone is sent. A group
    // without an electrical model hashes as before.
    let hash = if g.electrical.is_empty() {
        payload_hash(&payload)
    } else {
        let both = format!("{}{}", to_json(&payload), to_json(&g.electrical));
        hex::encode(Keccak256::digest(both.as_bytes()))
    };
    if hash == group.asset_hash {
        return Ok(false);
    }
    let version = group.asset_version + 1;
    let key = format!("asset_upsert:group:{group_id}:v{version}");
    outbox::enqueue(conn, &key, &ChainWork::AssetUpsert(payload), now).await?;
    groups::set_asset_state(conn, group_id, version, &hash).await?;
    Ok(true)
}
