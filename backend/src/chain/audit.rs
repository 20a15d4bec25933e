//! Audit and verification.
//!
//! - [`audit`]: compares the database with the chain field by field: every group, member charge
//!   point, PV inverter and battery (SC1), every (group, timestep, revision) commit (inputs hash,
//!   schedule hash, algorithm version against the `StatusCommitted` event and the stored
//!   commitment; revision 0 is the tick's, 1, 2, … the event re-plans) and every bill (session id, settled or not, user, CPO, energy, credit,
//!   flexibility, price, cost, transaction against its `SessionSettled` event), plus records
//!   on chain the database does not know. Returns one line per difference (`evflex audit`
//!   prints them and exits non-zero if there is any).
//! - [`verify_record`]: for one (group, timestep, revision), recomputes the inputs and schedule
//!   hashes from the canonical inputs and the stored schedule, checks them (and the algorithm
//!   version implied by the published solve options) against the chain's commitment of that
//!   revision, and re-runs `evflex_schedule::check` (feasible, optimal within tolerance).
//!   `evflex verify` does this for every revision of a timestep (or the one asked for) from the
//!   public API (`GET /api/v1/audit/groups/{G}/timesteps/{T}?revision={R}`) and an RPC URL only,
//!   so anyone can run it without trusting the operator.

use super::{Error, chain_algorithm_version, parse_b256, records};
use crate::store::outbox;
use crate::store::{Db, bills, groups, locations, schedules};
use alloy::primitives::{B256, U256};
use clap::Args;
use evflex_chain::work::StatusCommitWork;
use evflex_chain::{ChainClient, Deployment, WorkKind};
use evflex_schedule::{GroupInputs, Schedule, SolveOptions, hash};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything needed to verify one (group, timestep, revision), as
/// `GET /api/v1/audit/groups/{G}/timesteps/{T}?revision={R}` publishes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimestepRecord {
    /// Group.
    pub group_id: i64,
    /// Timestep.
    pub timestep: i64,
    /// Revision within the timestep: 0 for the tick's schedule, 1, 2, … for the event re-plans
    /// (each committed on chain on its own).
    #[serde(default)]
    pub revision: i64,
    /// The timestep's highest stored revision: a verifier checks revisions 0 to this one.
    #[serde(default)]
    pub last_revision: i64,
    /// Stored inputs hash.
    pub inputs_hash: String,
    /// Stored schedule hash.
    pub schedule_hash: String,
    /// Stored params hash (`hash::params_hash` of the solve options).
    pub params_hash: String,
    /// The on-chain algorithm version id it maps to.
    pub chain_algorithm_version: String,
    /// Solve options the service uses (their hash must be `params_hash`).
    pub solve_options: SolveOptions,
    /// The canonical inputs.
    pub inputs: GroupInputs,
    /// The stored schedule.
    pub schedule: Schedule,
}

/// Reads the record of (group, timestep) from the database: its tick's schedule (revision 0).
pub async fn timestep_record(
    db: &Db,
    opts: &SolveOptions,
    group_id: i64,
    timestep: i64,
) -> Result<Option<TimestepRecord>, Error> {
    revision_record(db, opts, group_id, timestep, 0).await
}

/// Reads the record of (group, timestep, revision) from the database.
pub async fn revision_record(
    db: &Db,
    opts: &SolveOptions,
    group_id: i64,
    timestep: i64,
    revision: i64,
) -> Result<Option<TimestepRecord>, Error> {
    let mut conn = db.conn().await?;
    let Some(s) = schedules::get(&mut conn, group_id, timestep, revision).await? else {
        return Ok(None);
    };
    let last_revision = schedules::last_revision(&mut conn, group_id, timestep)
        .await?
        .unwrap_or(revision);
    let params = parse_b256(&s.params_hash)?;
    Ok(Some(TimestepRecord {
        group_id,
        timestep,
        revision,
        last_revision,
        inputs_hash: s.inputs_hash,
        schedule_hash: s.schedule_hash,
        params_hash: s.params_hash,
        chain_algorithm_version: chain_algorithm_version(params).to_string(),
        solve_options: opts.clone(),
        inputs: serde_json::from_value(s.inputs)
            .map_err(|e| Error::Invalid(format!("stored inputs: {e}")))?,
        schedule: serde_json::from_value(s.schedule)
            .map_err(|e| Error::Invalid(format!("stored schedule: {e}")))?,
    }))
}

/// The result of a verification.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Everything passed.
    pub ok: bool,
    /// The recomputed inputs hash equals the stored one.
    pub inputs_hash_ok: bool,
    /// The recomputed schedule hash equals the stored one.
    pub schedule_hash_ok: bool,
    /// The solve options hash to the stored params hash.
    pub algorithm_ok: bool,
    /// The chain holds exactly the recomputed hashes (`None` without a chain).
    pub on_chain: Option<bool>,
    /// Broken rules found by `evflex_schedule::check`.
    pub violations: Vec<String>,
    /// Objective gap against a fresh solve (EUR).
    pub objective_gap_eur: Option<f64>,
    /// A one-line summary.
    pub message: String,
}

/// "group G timestep T", and " revision R" for an event re-plan's record.
fn commit_name(group_id: i64, timestep: i64, revision: i64) -> String {
    if revision == 0 {
        format!("group {group_id} timestep {timestep}")
    } else {
        format!("group {group_id} timestep {timestep} revision {revision}")
    }
}

/// Verifies a record (see the module docs). `chain` is asked `matches` with the recomputed
/// hashes, for the record's revision.
pub async fn verify_record(
    rec: &TimestepRecord,
    chain: Option<&ChainClient>,
) -> Result<VerifyReport, Error> {
    let inputs_hash = B256::from(hash::inputs_hash(&rec.inputs));
    let schedule_hash = B256::from(hash::schedule_hash(&rec.schedule));
    let algorithm = B256::from(hash::params_hash(&rec.solve_options));
    let mut r = VerifyReport {
        inputs_hash_ok: inputs_hash == parse_b256(&rec.inputs_hash)?,
        schedule_hash_ok: schedule_hash == parse_b256(&rec.schedule_hash)?,
        algorithm_ok: algorithm == parse_b256(&rec.params_hash)?,
        ..VerifyReport::default()
    };
    if let Some(c) = chain {
        let revision = u32::try_from(rec.revision)
            .map_err(|_| Error::Invalid(format!("revision {} is out of range", rec.revision)))?;
        r.on_chain = Some(
            c.matches(
                rec.group_id as u64,
                rec.timestep as u64,
                revision,
                inputs_hash,
                schedule_hash,
                chain_algorithm_version(algorithm),
            )
            .await?,
        );
    }
    let (inputs, schedule, opts) = (
        rec.inputs.clone(),
        rec.schedule.clone(),
        rec.solve_options.clone(),
    );
    let check =
        tokio::task::spawn_blocking(move || evflex_schedule::check(&inputs, &schedule, &opts))
            .await
            .map_err(|e| Error::Invalid(format!("checker task: {e}")))?;
    r.violations = check.violations.iter().map(|v| format!("{v:?}")).collect();
    r.objective_gap_eur = check.objective_gap;
    r.ok = r.inputs_hash_ok
        && r.schedule_hash_ok
        && r.algorithm_ok
        && r.on_chain != Some(false)
        && r.violations.is_empty();
    let mut problems = Vec::new();
    if !r.inputs_hash_ok {
        problems.push("inputs hash differs from the stored one");
    }
    if !r.schedule_hash_ok {
        problems.push("schedule hash differs from the stored one");
    }
    if !r.algorithm_ok {
        problems.push("solve options do not hash to the algorithm version");
    }
    if r.on_chain == Some(false) {
        problems.push("the chain does not hold these hashes");
    }
    if !r.violations.is_empty() {
        problems.push("the schedule breaks the model's rules or is not optimal");
    }
    let name = commit_name(rec.group_id, rec.timestep, rec.revision);
    r.message = if problems.is_empty() {
        format!(
            "{name}: hashes match{}, schedule feasible and optimal",
            if r.on_chain.is_some() {
                " the chain"
            } else {
                ""
            }
        )
    } else {
        format!("{name}: {}", problems.join("; "))
    };
    Ok(r)
}

/// Pushes `"{what}: {field} {db} in the database, {chain} on chain"` when the two differ.
fn field<T: PartialEq + std::fmt::Display>(
    diffs: &mut Vec<String>,
    what: &str,
    name: &str,
    db: T,
    chain: T,
) {
    if db != chain {
        diffs.push(format!(
            "{what}: {name} {db} in the database, {chain} on chain"
        ));
    }
}

/// Compares the database with the chain; returns one line per difference (empty: they agree).
///
/// - **SC1 assets**, for every group in the database: registered; label and capacity; every
///   member charge point registered with the record the writer derives from the database
///   (group membership, EVSE uid, rated power, power type, phases, voltage, maximum current,
///   connector standard, active = not `REMOVED`); no charge point active in the group on chain
///   that the database does not list; every PV inverter (group, peak power, active) and battery
///   (group, capacity, available energy, active) registered with its values; a group's tree of
///   limits (each node's parent, kind, voltage and limits), its link to its connection, and
///   each wired charge point's phase wiring and rate limits. The live EVSE
///   status is not compared: it changes every few minutes and is recorded per timestep in SC2.
/// - **SC2 commits**, for every enqueued (group, timestep, revision) commit, the tick's and each
///   event re-plan's: the stored inputs hash, schedule hash and (on-chain id of the) algorithm
///   version of that revision's schedule against its `StatusCommitted` event, the commitment in
///   storage against the stored values, and the stored inputs and schedule against their stored
///   hashes; commits on chain the database does not know.
/// - **SC3 settlements**, for every bill: its session id (`keccak256(cdr key)`), settled on
///   chain exactly when settled in the database, and against its `SessionSettled` event: user,
///   CPO, energy, credit, flexibility (the FLEX it earns), price, cost, transaction and block;
///   settlements on chain without a bill.
#[tracing::instrument(skip_all)]
pub async fn audit(db: &Db, chain: &ChainClient) -> Result<Vec<String>, Error> {
    let mut diffs = Vec::new();
    let mut conn = db.conn().await?;
    audit_assets(&mut conn, chain, &mut diffs).await?;
    audit_commits(&mut conn, chain, &mut diffs).await?;
    audit_settlements(&mut conn, chain, &mut diffs).await?;
    Ok(diffs)
}

async fn audit_assets(
    conn: &mut crate::store::Conn,
    chain: &ChainClient,
    diffs: &mut Vec<String>,
) -> Result<(), Error> {
    for g in groups::list(conn).await? {
        let id = g.record.id;
        let what = format!("group {id}");
        match chain.group(id as u64).await? {
            None => diffs.push(format!("{what}: not registered on chain")),
            Some(c) => {
                field(
                    diffs,
                    &what,
                    "label",
                    records::group_label(&g.record.name),
                    c.label,
                );
                field(
                    diffs,
                    &what,
                    "capacity (W)",
                    g.record.capacity_w.max(0) as u64,
                    c.capacity_w,
                );
            }
        }
        let members = locations::evses_of_group(conn, id).await?;
        for evse in &members {
            let what = format!("charge point {} ({})", evse.id, evse.record.uid);
            let db = match records::charge_point(evse.id, id, &evse.record) {
                Ok(db) => db,
                Err(e) => {
                    diffs.push(format!("{what}: {e}"));
                    continue;
                }
            };
            let Some(on_chain) = chain.charge_point(db.id).await? else {
                diffs.push(format!("{what}: not registered on chain"));
                continue;
            };
            let c = &on_chain.charge_point;
            field(diffs, &what, "group", db.group_id, c.group_id);
            field(
                diffs,
                &what,
                "EVSE uid",
                db.evse_uid.as_str(),
                c.evse_uid.as_str(),
            );
            field(
                diffs,
                &what,
                "rated power (W)",
                db.rated_power_w,
                c.rated_power_w,
            );
            field(
                diffs,
                &what,
                "power type",
                format!("{:?}", db.power_type),
                format!("{:?}", c.power_type),
            );
            field(diffs, &what, "phases", db.phases, c.phases);
            field(diffs, &what, "voltage (V)", db.voltage_v, c.voltage_v);
            field(
                diffs,
                &what,
                "maximum current (A)",
                db.max_current_a,
                c.max_current_a,
            );
            field(
                diffs,
                &what,
                "connector standard",
                db.connector_standard.as_str(),
                c.connector_standard.as_str(),
            );
            field(
                diffs,
                &what,
                "active",
                evse.record.status != "REMOVED",
                on_chain.active,
            );
        }
        for cp in chain.charge_points_of(id as u64).await? {
            let cid = cp.charge_point.id;
            if cp.active && !members.iter().any(|m| m.id == i64::from(cid.get())) {
                diffs.push(format!(
                    "charge point {cid} ({}): active in group {id} on chain, not a member in the database",
                    cp.charge_point.evse_uid
                ));
            }
        }
        for pv in &g.record.pv_inverters {
            let what = format!("group {id} PV inverter {:?}", pv.id);
            let db = records::pv_inverter(id, &pv.id, pv.peak_w);
            match chain.pv_inverter(db.id).await? {
                None => diffs.push(format!("{what}: not registered on chain (id {})", db.id)),
                Some((c, active)) => {
                    field(diffs, &what, "group", db.group_id, c.group_id);
                    field(diffs, &what, "peak power (W)", db.peak_w, c.peak_w);
                    field(diffs, &what, "active", true, active);
                }
            }
        }
        for b in &g.record.batteries {
            let what = format!("group {id} battery {:?}", b.id);
            let db = records::battery(id, &b.id, b.capacity_wh, b.energy_wh);
            match chain.battery(db.id).await? {
                None => diffs.push(format!("{what}: not registered on chain (id {})", db.id)),
                Some((c, active)) => {
                    field(diffs, &what, "group", db.group_id, c.group_id);
                    field(diffs, &what, "capacity (Wh)", db.capacity_wh, c.capacity_wh);
                    field(
                        diffs,
                        &what,
                        "available energy (Wh)",
                        db.available_wh,
                        c.available_wh,
                    );
                    field(diffs, &what, "active", true, active);
                }
            }
        }
        audit_tree(conn, chain, &g.record, diffs).await?;
    }
    Ok(())
}

/// A group's tree of limits and its charge points' wiring against SC1 (issue 12): every node
/// (parent, kind, voltage, limits, active), the group's link to its connection, every wiring.
async fn audit_tree(
    conn: &mut crate::store::Conn,
    chain: &ChainClient,
    g: &groups::GroupRecord,
    diffs: &mut Vec<String>,
) -> Result<(), Error> {
    let id = g.id;
    let nodes = records::limit_nodes(g);
    let node_name = |chain_id: u64| {
        std::iter::once(crate::engine::snapshot::CONNECTION_NODE)
            .chain(g.electrical.nodes.iter().map(|n| n.id.as_str()))
            .find(|n| records::limit_node_id(id, n) == chain_id)
            .unwrap_or("?")
    };
    for db in &nodes {
        let what = format!(
            "group {id} limit node {:?} (id {})",
            node_name(db.id),
            db.id
        );
        match chain.limit_node(db.id).await? {
            None => diffs.push(format!("{what}: not registered on chain")),
            Some(c) => {
                field(
                    diffs,
                    &what,
                    "parent",
                    format!("{:?}", db.parent_id),
                    format!("{:?}", c.node.parent_id),
                );
                field(
                    diffs,
                    &what,
                    "kind",
                    format!("{:?}", db.kind),
                    format!("{:?}", c.node.kind),
                );
                field(
                    diffs,
                    &what,
                    "phase voltage (V)",
                    db.phase_voltage_v,
                    c.node.phase_voltage_v,
                );
                for ph in 0..3 {
                    field(
                        diffs,
                        &what,
                        &format!("L{} limit (0.1 A)", ph + 1),
                        db.limit_da[ph],
                        c.node.limit_da[ph],
                    );
                }
                field(diffs, &what, "limit (W)", db.limit_w, c.node.limit_w);
                field(diffs, &what, "active", true, c.active);
            }
        }
    }
    // An unregistered group is reported above; the registry cannot say what it is linked to.
    let linked = match chain.group(id as u64).await? {
        Some(_) => chain.group_limit_node(id as u64).await?,
        None => return Ok(()),
    };
    let want = nodes.first().map(|n| n.id);
    if linked != want {
        diffs.push(format!(
            "group {id}: linked to limit node {linked:?} on chain, {want:?} in the database"
        ));
    }
    for w in &g.electrical.charge_points {
        let Some(evse) =
            locations::get_evse(conn, &g.country_code, &g.party_id, &w.evse_uid).await?
        else {
            continue;
        };
        let what = format!("charge point {} ({}) wiring", evse.id, w.evse_uid);
        let cp = match evflex_chain::ChargePointId::try_from(evse.id) {
            Ok(cp) => cp,
            Err(e) => {
                diffs.push(format!("{what}: {e}"));
                continue;
            }
        };
        let db = records::phase_wiring(id, w, evse.record.rated_power_w.unwrap_or(0));
        match chain.phase_wiring(cp).await? {
            None => diffs.push(format!("{what}: not set on chain")),
            Some(c) if c != db => diffs.push(format!("{what}: database {db:?}, chain {c:?}")),
            Some(_) => {}
        }
    }
    Ok(())
}

/// The stored value, the value recomputed from the stored data (when it differs) and the chain's.
fn hash_field(
    diffs: &mut Vec<String>,
    what: &str,
    name: &str,
    stored: B256,
    recomputed: Option<B256>,
    chain: B256,
) {
    let bad_recompute = recomputed.filter(|r| *r != stored);
    if stored == chain && bad_recompute.is_none() {
        return;
    }
    let mut line = if stored == chain {
        format!("{what}: {name} {stored} in the database and on chain")
    } else {
        format!("{what}: {name} {stored} in the database, {chain} on chain")
    };
    if let Some(r) = bad_recompute {
        line.push_str(&format!(", but the stored data hash to {r}"));
    }
    diffs.push(line);
}

async fn audit_commits(
    conn: &mut crate::store::Conn,
    chain: &ChainClient,
    diffs: &mut Vec<String>,
) -> Result<(), Error> {
    let to = chain.block_number().await?;
    let mut events = std::collections::BTreeMap::new();
    for ev in chain
        .status_commits(chain.deployment().start_block, to, None)
        .await?
    {
        events.insert(ev.commit.key(), ev.commit);
    }
    let mut known = std::collections::BTreeSet::new();
    for row in outbox::list(conn, Some(WorkKind::StatusCommit.as_str()), i64::MAX).await? {
        let Ok(p) = serde_json::from_str::<StatusCommitWork>(&row.payload) else {
            diffs.push(format!("outbox row {}: unreadable payload", row.id));
            continue;
        };
        let what = commit_name(p.group_id, p.timestep, p.revision);
        let Ok(revision) = u32::try_from(p.revision) else {
            diffs.push(format!(
                "{what}: revision out of range in outbox row {}",
                row.id
            ));
            continue;
        };
        let key = (p.group_id as u64, p.timestep as u64, revision);
        if !known.insert(key) {
            continue;
        }
        let Some(s) = schedules::get(conn, p.group_id, p.timestep, p.revision).await? else {
            diffs.push(format!("{what}: commit enqueued but no schedule stored"));
            continue;
        };
        let inputs_hash = parse_b256(&s.inputs_hash)?;
        let schedule_hash = parse_b256(&s.schedule_hash)?;
        let algorithm = chain_algorithm_version(parse_b256(&s.params_hash)?);
        let recomputed_inputs = serde_json::from_value::<GroupInputs>(s.inputs.clone())
            .ok()
            .map(|i| B256::from(hash::inputs_hash(&i)));
        let recomputed_schedule = serde_json::from_value::<Schedule>(s.schedule.clone())
            .ok()
            .map(|x| B256::from(hash::schedule_hash(&x)));
        let Some(ev) = events.get(&key) else {
            let committed = chain.commitment_of(key.0, key.1, key.2).await?;
            diffs.push(if committed == B256::ZERO {
                format!(
                    "{what}: not committed on chain (outbox status {})",
                    row.status
                )
            } else {
                format!("{what}: a commitment is stored on chain without its event")
            });
            continue;
        };
        hash_field(
            diffs,
            &what,
            "inputs hash",
            inputs_hash,
            recomputed_inputs,
            ev.inputs_hash,
        );
        hash_field(
            diffs,
            &what,
            "schedule hash",
            schedule_hash,
            recomputed_schedule,
            ev.schedule_hash,
        );
        hash_field(
            diffs,
            &what,
            "algorithm version",
            algorithm,
            None,
            ev.algorithm_version,
        );
        if inputs_hash == ev.inputs_hash
            && schedule_hash == ev.schedule_hash
            && algorithm == ev.algorithm_version
            && !chain
                .matches(key.0, key.1, key.2, inputs_hash, schedule_hash, algorithm)
                .await?
        {
            diffs.push(format!(
                "{what}: the commitment in StatusLedger storage does not match its event"
            ));
        }
    }
    for (key, _) in events.iter().filter(|(k, _)| !known.contains(*k)) {
        diffs.push(format!(
            "{}: committed on chain, unknown to the database",
            commit_name(key.0 as i64, key.1 as i64, i64::from(key.2))
        ));
    }
    Ok(())
}

async fn audit_settlements(
    conn: &mut crate::store::Conn,
    chain: &ChainClient,
    diffs: &mut Vec<String>,
) -> Result<(), Error> {
    let to = chain.block_number().await?;
    let events = chain
        .settlement_events(chain.deployment().start_block, to)
        .await?;
    let mut seen = std::collections::HashSet::new();
    for b in bills::all(conn, i64::MAX).await? {
        let what = format!("bill {}", b.cdr_key);
        let sid = crate::billing::chain_session_id(&b.cdr_key);
        match parse_b256(&b.chain_session_id) {
            Ok(stored) if stored == sid => {}
            _ => diffs.push(format!(
                "{what}: session id {} in the database, keccak256 of the CDR key is {sid}",
                b.chain_session_id
            )),
        }
        seen.insert(sid);
        let settled = chain.is_settled(sid).await?;
        match (b.status.as_str(), settled) {
            ("settled", false) => {
                diffs.push(format!("{what}: settled in the database, not on chain"));
            }
            ("unbillable", _) => {}
            (s, false) => diffs.push(format!("{what}: not settled on chain (status {s})")),
            (s, true) if s != "settled" => {
                diffs.push(format!("{what}: settled on chain, {s} in the database"));
            }
            _ => {}
        }
        let Some(e) = events.settled.iter().find(|e| e.session_id == sid) else {
            continue;
        };
        let user = b
            .user_address
            .as_deref()
            .and_then(|a| a.parse::<alloy::primitives::Address>().ok());
        match user {
            Some(u) => field(diffs, &what, "user", u, e.user),
            None => diffs.push(format!(
                "{what}: no user address in the database, {} on chain",
                e.user
            )),
        }
        match b.cpo_address.parse::<alloy::primitives::Address>() {
            Ok(c) => field(diffs, &what, "CPO", c, e.cpo),
            Err(_) => diffs.push(format!("{what}: CPO address unreadable in the database")),
        }
        field(
            diffs,
            &what,
            "energy (Wh)",
            b.energy_wh.max(0) as u64,
            e.energy_wh,
        );
        field(
            diffs,
            &what,
            "credit (Wh)",
            b.credit_wh.max(0) as u64,
            e.credit_wh,
        );
        field(
            diffs,
            &what,
            "flexibility (Wh, FLEX basis)",
            b.flexibility_wh.max(0) as u64,
            e.flexibility_wh,
        );
        field(
            diffs,
            &what,
            "price (micro-EUR/kWh)",
            b.price_micro_eur_per_kwh.max(0) as u64,
            e.price_micro_eur_per_kwh,
        );
        field(
            diffs,
            &what,
            "cost (micro-EUR)",
            U256::from(b.cost_micro_eur.max(0) as u64),
            e.cost,
        );
        if let Some(tx) = b.tx_hash.as_deref() {
            field(
                diffs,
                &what,
                "transaction",
                tx.to_ascii_lowercase(),
                e.tx_hash.to_string(),
            );
        }
        if let Some(block) = b.block_number {
            field(diffs, &what, "block", block.max(0) as u64, e.block_number);
        }
    }
    for e in events
        .settled
        .iter()
        .filter(|e| !seen.contains(&e.session_id))
    {
        diffs.push(format!(
            "session {}: settled on chain (user {}, {} Wh), no bill in the database",
            e.session_id, e.user, e.energy_wh
        ));
    }
    Ok(())
}

/// `evflex audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Database URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://evflex.sqlite?mode=rwc"
    )]
    pub database_url: String,
    /// JSON-RPC URL of the chain.
    #[arg(long, env = "EVFLEX_RPC_URL", default_value = "http://127.0.0.1:8545")]
    pub rpc_url: String,
    /// Deployment file.
    #[arg(
        long,
        env = "EVFLEX_DEPLOYMENT",
        default_value = "anvil/deployment.json"
    )]
    pub deployment: PathBuf,
}

/// `evflex verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Group id.
    #[arg(long)]
    pub group: i64,
    /// Timestep (Unix seconds / 900).
    #[arg(long)]
    pub timestep: i64,
    /// Verify this revision only (0: the tick's schedule; 1, 2, …: the event re-plans). Without
    /// it, every revision the timestep has.
    #[arg(long)]
    pub revision: Option<i64>,
    /// Base URL of the evflex API.
    #[arg(long, env = "EVFLEX_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// JSON-RPC URL of the chain.
    #[arg(long, env = "EVFLEX_RPC_URL", default_value = "http://127.0.0.1:8545")]
    pub rpc_url: String,
    /// Deployment file.
    #[arg(
        long,
        env = "EVFLEX_DEPLOYMENT",
        default_value = "anvil/deployment.json"
    )]
    pub deployment: PathBuf,
}

/// A read-only client (a throwaway key: reads never send).
pub async fn reader(rpc_url: &str, deployment: &std::path::Path) -> Result<ChainClient, Error> {
    let mut path = deployment.to_path_buf();
    if path.is_relative() && !path.exists() {
        path = evflex_chain::repo_root().join(path);
    }
    let deployment = Deployment::load(&path)?;
    let key = evflex_chain::wallet::random_signer()?;
    Ok(ChainClient::connect(rpc_url, deployment, key).await?)
}

/// Runs `evflex audit`; `Ok(false)` when there are differences.
pub async fn run_audit(args: &AuditArgs) -> anyhow::Result<bool> {
    let db = Db::connect(&args.database_url, 2).await?;
    let chain = reader(&args.rpc_url, &args.deployment).await?;
    let diffs = audit(&db, &chain).await?;
    for d in &diffs {
        println!("{d}");
    }
    println!("{} difference(s)", diffs.len());
    Ok(diffs.is_empty())
}

/// Runs `evflex verify`: the revision asked for, or every revision of the timestep (the tick's
/// record names the last); `Ok(false)` when any verification fails.
pub async fn run_verify(args: &VerifyArgs) -> anyhow::Result<bool> {
    let first = fetch_record(args, args.revision.unwrap_or(0)).await?;
    let last = if args.revision.is_some() {
        first.revision
    } else {
        first.last_revision
    };
    let chain = reader(&args.rpc_url, &args.deployment).await?;
    let mut ok = true;
    for revision in first.revision..=last {
        let rec = if revision == first.revision {
            first.clone()
        } else {
            fetch_record(args, revision).await?
        };
        let report = verify_record(&rec, Some(&chain)).await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        println!("{}", report.message);
        ok &= report.ok;
    }
    Ok(ok)
}

/// `GET /api/v1/audit/groups/{G}/timesteps/{T}?revision={R}`, checked to answer for that
/// (group, timestep, revision).
async fn fetch_record(args: &VerifyArgs, revision: i64) -> anyhow::Result<TimestepRecord> {
    let url = format!(
        "{}/api/v1/audit/groups/{}/timesteps/{}?revision={revision}",
        args.api.trim_end_matches('/'),
        args.group,
        args.timestep
    );
    let resp = reqwest::get(&url).await?;
    anyhow::ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
    let rec: TimestepRecord = resp.json().await?;
    anyhow::ensure!(
        rec.group_id == args.group && rec.timestep == args.timestep && rec.revision == revision,
        "the API answered for another group, timestep or revision"
    );
    Ok(rec)
}
