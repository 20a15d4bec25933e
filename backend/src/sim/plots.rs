//! SVG plots of a simulated day, written by hand (no plotting crate, no fonts needed):
//! measured load against capacity per group (with the uncontrolled counterfactual and PV), a
//! heatmap of the measured power per vehicle and step (the schedule as realised), and the
//! energy cost with and without smart charging.

use super::report::{Summary, uncontrolled};
use super::run::SimRecord;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(w: f64, h: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n"
    )
}

fn hhmm(step: usize) -> String {
    format!("{:02}:{:02}", step / 4, step % 4 * 15)
}

/// Load vs capacity, one panel per group (kW over the simulated window).
#[allow(clippy::needless_range_loop)] // steps index several per-step series at once
pub fn load_vs_capacity(rec: &SimRecord) -> String {
    let (first, end) = (rec.config.first_step(), rec.config.end_step());
    let (cf, _) = uncontrolled(rec);
    let n = rec.scenario.groups.len().max(1);
    let (pw, ph, left, top) = (760.0, 170.0, 60.0, 30.0);
    let height = top + n as f64 * (ph + 40.0) + 30.0;
    let mut s = header(left + pw + 170.0, height);
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"18\" font-size=\"14\">Measured EV load vs capacity per group \
         (simulated day {}–{})</text>",
        hhmm(first),
        hhmm(end)
    );
    let steps = end.saturating_sub(first).max(1);
    for (g, group) in rec.scenario.groups.iter().enumerate() {
        let y0 = top + g as f64 * (ph + 40.0);
        let series: [(&str, &str, &str, Vec<f64>); 4] = [
            (
                "capacity",
                "#d62728",
                "6 3",
                (0..96).map(|k| group.capacity_at(k) as f64).collect(),
            ),
            (
                "PV",
                "#2ca02c",
                "2 2",
                group.pv_w.iter().map(|w| *w as f64).collect(),
            ),
            ("uncontrolled", "#999999", "", cf[g].clone()),
            (
                "smart (measured)",
                "#1f77b4",
                "",
                rec.group_load_w[g].clone(),
            ),
        ];
        let max = series
            .iter()
            .flat_map(|(_, _, _, v)| v[first..end].iter().copied())
            .fold(1_000.0, f64::max)
            * 1.05;
        let x = |k: usize| left + (k - first) as f64 / steps as f64 * pw;
        let y = |w: f64| y0 + ph - (w / max) * ph;
        let _ = writeln!(
            s,
            "<rect x=\"{left}\" y=\"{y0}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#ccc\"/>\
             <text x=\"{left}\" y=\"{}\" font-weight=\"bold\">group {}</text>",
            y0 - 4.0,
            group.id
        );
        for frac in [0.0, 0.5, 1.0] {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.0} kW</text>",
                left - 4.0,
                y(max * frac) + 4.0,
                max * frac / 1_000.0
            );
        }
        for k in (first..=end).step_by(8.max(steps / 6 / 4 * 4)) {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
                x(k),
                y0 + ph + 13.0,
                hhmm(k)
            );
        }
        for (i, (name, color, dash, v)) in series.iter().enumerate() {
            let mut pts = String::new();
            for k in first..end {
                // Steps are held for 15 minutes: draw both corners.
                let _ = write!(
                    pts,
                    "{:.1},{:.1} {:.1},{:.1} ",
                    x(k),
                    y(v[k]),
                    x(k + 1),
                    y(v[k])
                );
            }
            let _ = writeln!(
                s,
                "<polyline points=\"{pts}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\" \
                 stroke-dasharray=\"{dash}\"/>\
                 <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{color}\" stroke-width=\"2\" \
                 stroke-dasharray=\"{dash}\"/><text x=\"{}\" y=\"{}\">{}</text>",
                left + pw + 10.0,
                y0 + 15.0 + i as f64 * 16.0,
                left + pw + 30.0,
                y0 + 15.0 + i as f64 * 16.0,
                left + pw + 35.0,
                y0 + 19.0 + i as f64 * 16.0,
                esc(name)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Heatmap of the measured power per plugged vehicle (rows) and step (columns).
pub fn schedule_heatmap(rec: &SimRecord) -> String {
    let (first, end) = (rec.config.first_step(), rec.config.end_step());
    let rows: Vec<_> = rec.vehicles.iter().filter(|v| v.cp.is_some()).collect();
    let steps = end.saturating_sub(first).max(1);
    let (left, top, cw) = (90.0, 40.0, (760.0 / steps as f64).max(2.0));
    let rh = (600.0 / rows.len().max(1) as f64).clamp(3.0, 14.0);
    let width = left + cw * steps as f64 + 120.0;
    let height = top + rh * rows.len() as f64 + 40.0;
    let max = rows
        .iter()
        .flat_map(|v| v.power_w.iter().copied())
        .fold(1.0, f64::max);
    let mut s = header(width, height);
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"18\" font-size=\"14\">Measured charging power per vehicle \
         (blue: opted in, orange: not opted in; outline: plugged in)</text>"
    );
    for (r, v) in rows.iter().enumerate() {
        let y = top + r as f64 * rh;
        let (h, label) = if v.opted_in { (210, "") } else { (30, " *") };
        if rh >= 8.0 {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"{}\">{}{label}</text>",
                left - 4.0,
                y + rh - 2.0,
                (rh - 1.0).min(11.0),
                esc(&v.session_id)
            );
        }
        let span = v.plugged_steps(end);
        if span.start < span.end && span.start >= first {
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{rh:.1}\" fill=\"none\" stroke=\"#bbb\" stroke-width=\"0.5\"/>",
                left + (span.start - first) as f64 * cw,
                span.len() as f64 * cw
            );
        }
        for k in first..end {
            let p = v.power_w[k];
            if p <= 0.0 {
                continue;
            }
            let light = 90.0 - 55.0 * (p / max);
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{cw:.1}\" height=\"{rh:.1}\" \
                 fill=\"hsl({h},70%,{light:.0}%)\"><title>{} {}: {:.1} kW</title></rect>",
                left + (k - first) as f64 * cw,
                esc(&v.session_id),
                hhmm(k),
                p / 1_000.0
            );
        }
    }
    for k in (first..=end).step_by(8.max(steps / 6 / 4 * 4)) {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            left + (k - first) as f64 * cw,
            top + rh * rows.len() as f64 + 14.0,
            hhmm(k)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{}\">darkest = {:.1} kW</text>",
        left + cw * steps as f64 + 8.0,
        top + 10.0,
        max / 1_000.0
    );
    s.push_str("</svg>\n");
    s
}

/// Bars: energy cost and EUR/kWh, smart vs uncontrolled.
pub fn cost_comparison(summary: &Summary) -> String {
    let mut s = header(520.0, 300.0);
    s.push_str(
        "<text x=\"20\" y=\"20\" font-size=\"14\">Energy cost at NL day-ahead prices (net of PV)</text>\n",
    );
    let bars = [
        ("smart", summary.cost_eur, summary.delivered_wh, "#1f77b4"),
        (
            "uncontrolled",
            summary.uncontrolled_cost_eur,
            summary.uncontrolled_delivered_wh,
            "#999999",
        ),
    ];
    let max = bars.iter().map(|b| b.1).fold(0.01, f64::max);
    for (i, (name, eur, wh, color)) in bars.iter().enumerate() {
        let x = 80.0 + i as f64 * 200.0;
        let h = eur / max * 200.0;
        let per = if *wh > 0.0 { eur / (wh / 1_000.0) } else { 0.0 };
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"120\" height=\"{h:.1}\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{eur:.2} EUR</text>\
             <text x=\"{:.1}\" y=\"270\" text-anchor=\"middle\">{name}</text>\
             <text x=\"{:.1}\" y=\"286\" text-anchor=\"middle\" fill=\"#555\">{:.0} kWh, {per:.4} EUR/kWh</text>",
            250.0 - h,
            x + 60.0,
            245.0 - h,
            x + 60.0,
            x + 60.0,
            wh / 1_000.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Writes the three plots into `dir`; returns their paths.
pub fn write_all(rec: &SimRecord, summary: &Summary, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let files = [
        ("load_vs_capacity.svg", load_vs_capacity(rec)),
        ("schedule_heatmap.svg", schedule_heatmap(rec)),
        ("cost_comparison.svg", cost_comparison(summary)),
    ];
    let mut out = Vec::new();
    for (name, svg) in files {
        let path = dir.join(name);
        std::fs::write(&path, svg)?;
        out.push(path);
    }
    Ok(out)
}
