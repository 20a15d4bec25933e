// Draws `report.html` (see plots.rs). This runs in the same module as the cockpit's
// shared/charts.js, inlined just before it, so chartLib, colors, gnbuGradient and heatmapConfig
// are in scope; the data is the JSON element #report-data (plots.rs `ReportData`).

const report = JSON.parse(document.getElementById('report-data').textContent);
const Chart = chartLib();
const kw = (/** @type {number[]} */ w) => w.map((x) => x / 1000);
const line = (label, data, color, dash = []) => ({
  label, data, borderColor: color, backgroundColor: color, borderDash: dash,
  borderWidth: 2, pointRadius: 0, stepped: 'before',
});

for (const g of report.groups) {
  const box = document.createElement('div');
  box.className = 'chart';
  const canvas = document.createElement('canvas');
  canvas.dataset.group = String(g.id);
  canvas.setAttribute('aria-label', `Group ${g.id}: measured EV load against capacity`);
  box.append(canvas);
  document.getElementById('groups').append(box);
  new Chart(canvas, {
    type: 'line',
    data: {
      labels: report.labels,
      datasets: [
        line('capacity (kW)', kw(g.capacity_w), colors.capacity, [6, 3]),
        line('PV (kW)', kw(g.pv_w), colors.pv, [2, 2]),
        line('uncontrolled (kW)', kw(g.uncontrolled_w), '#999999'),
        line('smart, measured (kW)', kw(g.measured_w), colors.planned),
        ...(g.battery_w ? [line('battery, smart (kW, + charging)', kw(g.battery_w), colors.actual, [4, 2])] : []),
      ],
    },
    options: {
      interaction: { mode: 'index', intersect: false },
      plugins: { title: { display: true, text: `Group ${g.id}` } },
      scales: { y: { beginAtZero: true, title: { display: true, text: 'kW' } } },
    },
  });
}

const heat = document.getElementById('heatmap');
heat.parentElement.style.height = `${Math.max(10, 4 + report.vehicles.length * 1.6)}rem`;
new Chart(heat, heatmapConfig({
  label: 'Measured power (kW)',
  names: report.vehicles.map((v) => (v.opted_in ? v.session_id : `${v.session_id} (not opted in)`)),
  labels: report.labels,
  rows: report.vehicles.map((v) => v.power_w),
}));

new Chart(document.getElementById('cost'), {
  type: 'bar',
  data: {
    labels: report.cost.map((b) => b.name),
    datasets: [{
      label: 'Energy cost (EUR)',
      data: report.cost.map((b) => b.eur),
      backgroundColor: [colors.planned, '#999999'],
    }],
  },
  options: {
    plugins: {
      legend: { display: false },
      tooltip: {
        callbacks: {
          label: (c) => {
            const b = report.cost[c.dataIndex];
            const per = b.kwh > 0 ? b.eur / b.kwh : 0;
            return `${b.eur.toFixed(2)} EUR for ${b.kwh.toFixed(1)} kWh (${per.toFixed(4)} EUR/kWh)`;
          },
        },
      },
    },
    scales: { y: { beginAtZero: true, title: { display: true, text: 'EUR' } } },
  },
});
document.body.dataset.ready = 'true';
