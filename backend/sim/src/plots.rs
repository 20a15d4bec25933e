//! The day's plots as one self-contained HTML file, `report.html`, drawn by the Chart.js the
//! cockpit uses: measured load against capacity per group (with the uncontrolled
//! counterfactual and PV), a heatmap of the measured power per vehicle and step (the schedule
//! as realised; hovering a cell names the session, the time and the power) and the energy cost
//! with and without smart charging.
//!
//! The page inlines the vendored Chart.js and matrix plugin (from the web folder,
//! [`evflex::api::web_dir`], filled by `scripts/build-web`), the cockpit's
//! `shared/charts.js` and this module's `report.js`, with the data as JSON, so it opens from
//! disk with no server.

use super::report::{Summary, uncontrolled};
use super::run::SimRecord;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The drawing code of the page. It runs in one module after `shared/charts.js`, whose
/// functions it calls by name.
const REPORT_JS: &str = include_str!("report.js");

/// The file the report is written to, inside the output folder.
pub const REPORT_FILE: &str = "report.html";

/// What the page draws: the simulated window only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportData {
    /// Demand source and window, for the title.
    pub title: String,
    /// `HH:MM` of each step of the window.
    pub labels: Vec<String>,
    /// One panel per group.
    pub groups: Vec<GroupSeries>,
    /// One heatmap row per plugged vehicle, in plug-in order.
    pub vehicles: Vec<VehicleRow>,
    /// The cost bars.
    pub cost: Vec<CostBar>,
}

/// A group's series over the window (W).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSeries {
    /// Group id.
    pub id: i64,
    /// Capacity.
    pub capacity_w: Vec<i64>,
    /// PV production.
    pub pv_w: Vec<i64>,
    /// EV load without smart charging (the counterfactual).
    pub uncontrolled_w: Vec<f64>,
    /// EV load measured at the simulated charge points.
    pub measured_w: Vec<f64>,
    /// The group's stationary battery under smart (+ charging), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub battery_w: Option<Vec<f64>>,
}

/// A vehicle's measured power per step of the window (W).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VehicleRow {
    /// OCPI session id.
    pub session_id: String,
    /// Opted into smart charging.
    pub opted_in: bool,
    /// Power per step.
    pub power_w: Vec<f64>,
}

/// One bar of the cost comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostBar {
    /// "smart" or "uncontrolled".
    pub name: String,
    /// Energy cost (EUR).
    pub eur: f64,
    /// Energy delivered (kWh).
    pub kwh: f64,
}

impl ReportData {
    /// The series of `rec`, cut to its window.
    pub fn of(rec: &SimRecord, summary: &Summary) -> Self {
        let window = rec.config.first_step()..rec.config.end_step();
        let (cf, _) = uncontrolled(rec);
        let cut = |v: &[f64]| v[window.clone()].to_vec();
        Self {
            title: format!("{}, {}", summary.demand, summary.window),
            labels: window.clone().map(super::hhmm).collect(),
            groups: rec
                .scenario
                .groups
                .iter()
                .enumerate()
                .map(|(g, group)| {
                    // The group's load holds its battery's power; the chart draws it apart.
                    let battery = rec
                        .trace
                        .iter()
                        .flat_map(|t| &t.batteries)
                        .find(|b| b.group == g)
                        .map(|b| cut(&b.power_w));
                    let mut measured_w = cut(&rec.group_load_w[g]);
                    for (w, b) in measured_w.iter_mut().zip(battery.iter().flatten()) {
                        *w -= b;
                    }
                    GroupSeries {
                        id: group.id,
                        capacity_w: window.clone().map(|k| group.capacity_at(k)).collect(),
                        pv_w: group.pv_w[window.clone()].to_vec(),
                        uncontrolled_w: cut(&cf[g]),
                        measured_w,
                        battery_w: battery,
                    }
                })
                .collect(),
            vehicles: rec
                .vehicles
                .iter()
                .filter(|v| v.cp.is_some())
                .map(|v| VehicleRow {
                    session_id: v.session_id.clone(),
                    opted_in: v.opted_in,
                    power_w: cut(&v.power_w),
                })
                .collect(),
            cost: vec![
                CostBar {
                    name: "smart".into(),
                    eur: summary.cost_eur,
                    kwh: summary.delivered_wh / 1_000.0,
                },
                CostBar {
                    name: "uncontrolled".into(),
                    eur: summary.uncontrolled_cost_eur,
                    kwh: summary.uncontrolled_delivered_wh / 1_000.0,
                },
            ],
        }
    }
}

/// The page for `data`, with the scripts read from the web folder `web`.
pub fn render(data: &ReportData, web: &Path) -> std::io::Result<String> {
    let read = |rel: &str| {
        std::fs::read_to_string(web.join(rel)).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{}: {e} (run scripts/build-web)", web.join(rel).display()),
            )
        })
    };
    let chart = read("vendor/chart.umd.min.js")?;
    let matrix = read("vendor/chartjs-chart-matrix.min.js")?;
    let charts = read("shared/charts.js")?;
    // JSON inside <script>: `<` escaped, so no string in it can close the element.
    let json = serde_json::to_string(data)
        .map_err(std::io::Error::other)?
        .replace('<', "\\u003c");
    let title = data.title.replace('&', "&amp;").replace('<', "&lt;");
    Ok(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>evflex demo: {title}</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #1c2733; }}
  .chart {{ position: relative; height: 16rem; max-width: 60rem; margin-bottom: 1.5rem; }}
  .chart.heat {{ height: auto; }}
</style>
</head>
<body>
<h1>evflex demo: {title}</h1>
<h2>Measured EV load against capacity, per group</h2>
<div id="groups"></div>
<h2>Measured charging power per vehicle</h2>
<div class="chart heat"><canvas id="heatmap"></canvas></div>
<h2>Energy cost at NL day-ahead prices (net of PV)</h2>
<div class="chart"><canvas id="cost"></canvas></div>
<script type="application/json" id="report-data">{json}</script>
<script>{chart}</script>
<script>{matrix}</script>
<script type="module">
{charts}
{REPORT_JS}
</script>
</body>
</html>
"#
    ))
}

/// Writes `report.html` into `dir`; returns its path.
pub fn write_report(rec: &SimRecord, summary: &Summary, dir: &Path) -> std::io::Result<PathBuf> {
    let page = render(&ReportData::of(rec, summary), &evflex::api::web_dir())?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(REPORT_FILE);
    std::fs::write(&path, page)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A web folder with stand-ins for the three scripts the page inlines.
    fn web_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("evflex-plots-{name}-{}", std::process::id()));
        for (rel, body) in [
            ("vendor/chart.umd.min.js", "/* chart */"),
            ("vendor/chartjs-chart-matrix.min.js", "/* matrix */"),
            ("shared/charts.js", "/* charts.js */"),
        ] {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        dir
    }

    fn data(session_id: &str) -> ReportData {
        ReportData {
            title: "generated, 08:00–09:00".into(),
            labels: vec!["08:00".into(), "08:15".into()],
            groups: vec![GroupSeries {
                id: 1,
                capacity_w: vec![22_000, 22_000],
                pv_w: vec![0, 500],
                uncontrolled_w: vec![11_000.0, 0.0],
                measured_w: vec![5_500.0, 5_500.0],
                battery_w: None,
            }],
            vehicles: vec![VehicleRow {
                session_id: session_id.into(),
                opted_in: true,
                power_w: vec![5_500.0, 5_500.0],
            }],
            cost: Vec::new(),
        }
    }

    #[test]
    fn the_page_inlines_the_scripts_in_order_with_the_data() {
        let dir = web_dir("order");
        let page = render(&data("S1"), &dir).unwrap();
        let at = |needle: &str| {
            page.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing"))
        };
        assert!(at("/* chart */") < at("/* matrix */"));
        assert!(at("/* matrix */") < at("/* charts.js */"));
        assert!(at("/* charts.js */") < at("heatmapConfig({"));
        let json = page
            .split(r#"<script type="application/json" id="report-data">"#)
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .unwrap();
        let back: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, serde_json::to_value(data("S1")).unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_session_id_cannot_close_the_data_element() {
        let dir = web_dir("escape");
        let hostile = "</script><script>alert(1)</script>";
        let page = render(&data(hostile), &dir).unwrap();
        assert!(!page.contains(hostile));
        // The data element, the two libraries and the module: four scripts, four closings.
        assert_eq!(page.matches("</script>").count(), 4);
        assert!(page.contains(r"\u003c/script>\u003cscript>alert(1)\u003c/script>"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_library_names_the_fix() {
        let dir = std::env::temp_dir().join(format!("evflex-plots-none-{}", std::process::id()));
        let err = render(&data("S1"), &dir).unwrap_err();
        assert!(err.to_string().contains("scripts/build-web"), "{err}");
    }
}
