//! The simulated site: charge points, groups, PV, the capacity cut and the day's prices, and
//! their OCPI / topology JSON.
//!
//! Embedded real data (see `/work/shared/data/README.md` for sources and licences):
//! - `data/serf-east-pv-2016-07-14.csv`: measured AC power of NREL's SERF East array (~5.4 kWp)
//!   every 15 minutes on 2016-07-14 (local time, UTC−7), scaled to [`SimConfig::pv_peak_w`]
//!   and mapped by time of day onto the simulated day.
//! - `data/nl-day-ahead-2019-07-02.csv`: ENTSO-E NL day-ahead prices of 2019-07-02 (hourly,
//!   UTC); each hour applies to its four 15-minute steps.

use super::{STEPS_PER_DAY, SimConfig};
use evflex::domain::format_rfc3339;
use serde_json::{Value, json};

/// The embedded PV excerpt.
pub const PV_CSV: &str = include_str!("data/serf-east-pv-2016-07-14.csv");
/// The embedded price excerpt (`datetime_utc,price_eur_per_mwh`).
pub const PRICES_CSV: &str = include_str!("data/nl-day-ahead-2019-07-02.csv");

/// The electrical model of the three-phase group ([`SimConfig::three_phase_group`], issue 12):
/// a connection with a limit per phase, a cabinet beneath it feeding the group's first half of
/// charge points, every charge point wired with the installer's rotation (the `j`-th point of
/// the group by `j % 3` phases) and taking whole amps from 6 A.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    /// The connection's limit per phase (A).
    pub connection_a: i64,
    /// The cabinet's limit per phase (A).
    pub cabinet_a: i64,
}

/// Where the cabinet's share of a tree group's points ends: the first half hang from it.
pub const CABINET: &str = "cab-1";

/// The phase voltage of the simulated sites (V).
pub const PHASE_V: f64 = 230.0;

/// One charge point (one EVSE with one connector).
#[derive(Debug, Clone, PartialEq)]
pub struct ChargePoint {
    /// EVSE uid.
    pub uid: String,
    /// OCPI location (site) id.
    pub location_id: String,
    /// Group id.
    pub group_id: i64,
    /// Amperes per phase (3 phases, 230 V).
    pub amps: i64,
    /// In a tree group: the node phases (0 = L1) its own L1, L2, L3 are wired to, and whether
    /// it hangs from the cabinet (else from the connection).
    pub wiring: Option<([usize; 3], bool)>,
}

impl ChargePoint {
    /// The current (A) a car drawing `power_w` on `car_phases` phases puts on each node phase.
    pub fn phase_currents(&self, power_w: f64, car_phases: u8) -> [f64; 3] {
        let mut out = [0.0; 3];
        let (phases, _) = self.wiring.unwrap_or(([0, 1, 2], false));
        let k = usize::from(car_phases.clamp(1, 3));
        for p in &phases[..k] {
            out[*p] = power_w / (PHASE_V * k as f64);
        }
        out
    }
}

impl ChargePoint {
    /// Rated power (W): 230 V × amps × 3 phases, as evflex derives it from the connector.
    pub fn rated_w(&self) -> i64 {
        230 * self.amps * 3
    }
}

/// One group as the simulator knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Group id.
    pub id: i64,
    /// Site index.
    pub site: usize,
    /// Capacity (W) outside the cut.
    pub capacity_w: i64,
    /// Capacity cut: (first step, end step, capacity W), steps within the day.
    pub cut: Option<(usize, usize, i64)>,
    /// PV power per step of the day (W; zeros without PV).
    pub pv_w: Vec<i64>,
    /// PV peak (W; 0 without PV).
    pub pv_peak_w: i64,
    /// Per-phase limits and a cabinet (the three-phase group), `None`: one number.
    pub tree: Option<Tree>,
    /// A stationary battery behind the connection.
    pub battery: Option<SiteBattery>,
}

/// A stationary battery behind a group's connection, as the topology declares it to evflex
/// (its usable window; [`crate::live`] simulates it).
#[derive(Debug, Clone, PartialEq)]
pub struct SiteBattery {
    /// Id within the group.
    pub id: String,
    /// Usable capacity (Wh).
    pub capacity_wh: i64,
    /// Energy in it at the start of the day (Wh).
    pub energy_wh: i64,
    /// Most it charges or discharges (W).
    pub max_w: i64,
    /// Efficiency of charging (per mille; discharging is lossless, as evflex models it).
    pub efficiency_permille: u16,
}

impl SiteBattery {
    /// A battery of `capacity_wh`, half full, charging and discharging at up to half its
    /// capacity per hour (a 0.5 C commercial battery), 90 % efficient.
    pub fn half_full(capacity_wh: i64) -> Self {
        Self {
            id: "store".to_owned(),
            capacity_wh,
            energy_wh: capacity_wh / 2,
            max_w: capacity_wh / 2,
            efficiency_permille: 900,
        }
    }
}

impl Group {
    /// Capacity at step `k` of the day (W).
    pub fn capacity_at(&self, k: usize) -> i64 {
        match self.cut {
            Some((from, to, w)) if (from..to).contains(&k) => w,
            _ => self.capacity_w,
        }
    }
}

/// The whole site.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Charge points, by index.
    pub charge_points: Vec<ChargePoint>,
    /// Groups, by index (id = index + 1).
    pub groups: Vec<Group>,
    /// Price per step of the day (micro-EUR per kWh).
    pub price_micro_eur_per_kwh: Vec<i64>,
}

/// The SERF East profile as 96 values scaled to `peak_w` (negative night values clamp to 0).
pub fn pv_profile(peak_w: i64) -> Vec<i64> {
    let raw: Vec<f64> = PV_CSV
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(',')?.1.trim().parse::<f64>().ok())
        .map(|w| w.max(0.0))
        .collect();
    let max = raw.iter().copied().fold(0.0, f64::max);
    (0..STEPS_PER_DAY)
        .map(|k| {
            let w = raw.get(k).copied().unwrap_or(0.0);
            if max > 0.0 {
                (w / max * peak_w as f64).round() as i64
            } else {
                0
            }
        })
        .collect()
}

/// The embedded prices as 96 per-step values (micro-EUR per kWh).
pub fn price_profile() -> Vec<i64> {
    let rows = evflex::ingest::prices::parse_day_ahead_csv(PRICES_CSV).unwrap_or_default();
    (0..STEPS_PER_DAY)
        .map(|k| rows.get(k / 4).or(rows.last()).map_or(0, |(_, p)| *p))
        .collect()
}

impl Scenario {
    /// Builds the site of `cfg`.
    pub fn build(cfg: &SimConfig) -> Self {
        let groups_n = cfg.groups.max(1);
        let sites = cfg.sites.max(1);
        let charge_points: Vec<ChargePoint> = (0..cfg.charge_points)
            .map(|i| {
                let g = i % groups_n;
                let big = cfg.cp_22kw_every > 0 && i % cfg.cp_22kw_every == cfg.cp_22kw_every - 1;
                // The j-th point of its group.
                let j = i / groups_n;
                let in_group =
                    cfg.charge_points / groups_n + usize::from(g < cfg.charge_points % groups_n);
                let wiring = (cfg.three_phase_group && g == 0).then(|| {
                    let r = j % 3;
                    ([r, (r + 1) % 3, (r + 2) % 3], j < in_group / 2)
                });
                ChargePoint {
                    uid: format!("CP{:03}", i + 1),
                    location_id: format!("SITE-{}", g % sites + 1),
                    group_id: g as i64 + 1,
                    amps: if big { 32 } else { 16 },
                    wiring,
                }
            })
            .collect();
        let groups = (0..groups_n)
            .map(|g| {
                let rated: i64 = charge_points
                    .iter()
                    .filter(|c| c.group_id == g as i64 + 1)
                    .map(ChargePoint::rated_w)
                    .sum();
                let capacity_w = ((rated as f64 * cfg.capacity_share).round() as i64).max(1_000);
                let has_pv = g == 1 && cfg.pv_peak_w > 0;
                // The battery only in continuous time, whose simulator runs it.
                let has_battery = g == SimConfig::BATTERY_GROUP.min(groups_n - 1)
                    && cfg.battery_wh > 0
                    && cfg.continuous.is_some();
                let cut = (g == groups_n - 1 && groups_n > 1)
                    .then_some(cfg.capacity_cut)
                    .flatten()
                    .map(|share| {
                        let from = (cfg.cut_start_hour as usize * 4).min(STEPS_PER_DAY);
                        (
                            from,
                            (from + 8).min(STEPS_PER_DAY),
                            ((capacity_w as f64 * share).round() as i64).max(1),
                        )
                    });
                Group {
                    id: g as i64 + 1,
                    site: g % sites,
                    capacity_w,
                    cut,
                    pv_w: if has_pv {
                        pv_profile(cfg.pv_peak_w)
                    } else {
                        vec![0; STEPS_PER_DAY]
                    },
                    pv_peak_w: if has_pv { cfg.pv_peak_w } else { 0 },
                    battery: has_battery.then(|| SiteBattery::half_full(cfg.battery_wh)),
                    // The connection carries the capacity balanced over its phases; the
                    // cabinet, feeding half the points, 60 % of it: rotated single-phase cars
                    // must be spread for both to hold.
                    tree: (cfg.three_phase_group && g == 0).then(|| {
                        let connection_a = (capacity_w as f64 / (3.0 * PHASE_V)).floor() as i64;
                        Tree {
                            connection_a,
                            cabinet_a: (connection_a as f64 * 0.6).ceil() as i64,
                        }
                    }),
                }
            })
            .collect();
        Self {
            charge_points,
            groups,
            price_micro_eur_per_kwh: price_profile(),
        }
    }

    /// The OCPI 2.2.1 Location of site `site` with its EVSEs.
    pub fn location(&self, cfg: &SimConfig, site: usize, now: i64) -> Value {
        let id = format!("SITE-{}", site + 1);
        let ts = format_rfc3339(now);
        let evses: Vec<Value> = self
            .charge_points
            .iter()
            .filter(|c| c.location_id == id)
            .map(|c| {
                json!({
                    "uid": c.uid,
                    "evse_id": format!("{}*{}*E{}", cfg.country_code, cfg.party_id, c.uid),
                    "status": "AVAILABLE",
                    "connectors": [{"id": "1", "standard": "IEC_62196_T2", "format": "SOCKET",
                        "power_type": "AC_3_PHASE", "max_voltage": 230, "max_amperage": c.amps,
                        "last_updated": ts}],
                    "last_updated": ts
                })
            })
            .collect();
        json!({
            "country_code": cfg.country_code, "party_id": cfg.party_id, "id": id,
            "publish": true, "name": format!("Simulated site {}", site + 1),
            "address": format!("Simulatieweg {}", site + 1), "city": "Utrecht",
            "country": "NLD", "coordinates": {"latitude": "52.089", "longitude": "5.110"},
            "evses": evses, "time_zone": "Europe/Amsterdam", "last_updated": ts
        })
    }

    /// The topology document (`PUT /api/v1/topology`); capacity cuts are posted separately.
    pub fn topology(&self, cfg: &SimConfig) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| {
                let evses: Vec<&str> = self
                    .charge_points
                    .iter()
                    .filter(|c| c.group_id == g.id)
                    .map(|c| c.uid.as_str())
                    .collect();
                let pv: Vec<Value> = if g.pv_peak_w > 0 {
                    vec![json!({"id": "roof", "peak_w": g.pv_peak_w})]
                } else {
                    vec![]
                };
                let mut group = json!({"id": g.id,
                    "name": format!("Site {} group {}", g.site + 1, g.id),
                    "country_code": cfg.country_code, "party_id": cfg.party_id,
                    "capacity_w": g.capacity_w, "evses": evses, "pv_inverters": pv});
                if let Some(tree) = &g.tree {
                    group["electrical"] = self.electrical(g.id, tree);
                }
                if let Some(w) = cfg.arrival_reserve_w {
                    group["arrival_reserve_w"] = json!(w);
                }
                if let Some(b) = &g.battery {
                    group["batteries"] = json!([{"id": b.id, "capacity_wh": b.capacity_wh,
                        "energy_wh": b.energy_wh, "max_charge_w": b.max_w,
                        "max_discharge_w": b.max_w,
                        "efficiency_permille": b.efficiency_permille}]);
                }
                group
            })
            .collect();
        json!({ "groups": groups })
    }

    /// The `electrical` object of tree group `group_id` (README, "Topology").
    fn electrical(&self, group_id: i64, tree: &Tree) -> Value {
        const NAMES: [&str; 3] = ["L1", "L2", "L3"];
        let wired: Vec<Value> = self
            .charge_points
            .iter()
            .filter(|c| c.group_id == group_id)
            .filter_map(|c| {
                let (phases, cabinet) = c.wiring?;
                Some(json!({"evse_uid": c.uid,
                    "node": if cabinet { Some(CABINET) } else { None },
                    "phases": phases.map(|p| NAMES[p]),
                    "unit": "A", "min_current_a": 6, "max_current_a": c.amps,
                    "current_step_a": 1}))
            })
            .collect();
        let a = tree.connection_a;
        let cab = tree.cabinet_a;
        json!({"phase_voltage_v": PHASE_V as i64, "phase_limit_a": [a, a, a],
            "nodes": [{"id": CABINET, "parent": null, "kind": "cabinet",
                       "phase_limit_a": [cab, cab, cab]}],
            "charge_points": wired})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_site_has_the_demo_shape() {
        let cfg = SimConfig::default();
        let s = Scenario::build(&cfg);
        assert_eq!(s.charge_points.len(), 60);
        assert_eq!(s.groups.len(), 5);
        assert_eq!(
            s.charge_points
                .iter()
                .filter(|c| c.rated_w() == 22_080)
                .count(),
            20
        );
        assert!(s.groups[1].pv_w.iter().copied().max() == Some(40_000));
        assert!(s.groups[1].pv_w[0] == 0, "no PV at midnight");
        let g5 = &s.groups[4];
        assert!(g5.capacity_at(50) < g5.capacity_at(40));
        assert_eq!(s.price_micro_eur_per_kwh.len(), 96);
        assert_eq!(s.price_micro_eur_per_kwh[0], 25_480);
        assert_eq!(s.price_micro_eur_per_kwh[95], 28_070);
        assert!(
            s.groups.iter().all(|g| g.battery.is_none()),
            "the step simulator runs no battery"
        );
        let live = Scenario::build(&SimConfig {
            continuous: Some(crate::live::Continuous::default()),
            ..SimConfig::default()
        });
        let with: Vec<i64> = live
            .groups
            .iter()
            .filter(|g| g.battery.is_some())
            .map(|g| g.id)
            .collect();
        assert_eq!(with, [3]);
        let topology = live.topology(&SimConfig::default());
        assert_eq!(topology["groups"][2]["batteries"][0]["capacity_wh"], 60_000);
        assert_eq!(topology["groups"][2]["batteries"][0]["energy_wh"], 30_000);
    }
}
