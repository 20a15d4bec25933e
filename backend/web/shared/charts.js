// Chart.js (vendored UMD build, global `Chart`) helpers: one place for colours, axes and the
// schedule heatmap's colour scale, so both pages draw alike.

/** Series colours. */
export const colors = {
  capacity: '#c62828',
  planned: '#1f5fa8',
  actual: '#0a6e55',
  pv: '#e0a100',
  profile: '#0a6e55',
};

/**
 * The Chart.js constructor, or an Error telling how to fix a missing vendor folder.
 * @returns {any}
 */
export function chartLib() {
  const Chart = /** @type {any} */ (globalThis).Chart;
  if (!Chart) {
    throw new Error('The chart library is missing on this server (run scripts/build-web).');
  }
  Chart.defaults.font.family = getComputedStyle(document.documentElement).fontFamily;
  Chart.defaults.color = '#4f5d6b';
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  return Chart;
}

/**
 * Creates a chart on `canvas`, or updates the one already there with new data (keeps
 * tooltips and zoom state steady between live updates).
 *
 * @param {HTMLCanvasElement} canvas
 * @param {object} config A Chart.js configuration.
 * @returns {any} The chart.
 */
export function upsertChart(canvas, config) {
  const Chart = chartLib();
  const existing = Chart.getChart(canvas);
  if (existing && existing.config.type === config.type) {
    existing.data.labels = config.data.labels;
    existing.data.datasets.forEach((ds, i) => {
      if (config.data.datasets[i]) Object.assign(ds, config.data.datasets[i]);
    });
    if (existing.data.datasets.length !== config.data.datasets.length) existing.data.datasets = config.data.datasets;
    existing.options = config.options;
    existing.update('none');
    return existing;
  }
  if (existing) existing.destroy();
  return new Chart(canvas, config);
}

// "GnBu" (ColorBrewer) stops, as the planner README's heatmap: light green-yellow to deep blue.
const GNBU = [
  [247, 252, 240], [224, 243, 219], [204, 235, 197], [168, 221, 181], [123, 204, 196],
  [78, 179, 211], [43, 140, 190], [8, 104, 172], [8, 64, 129],
];

/**
 * The heatmap colour of `value` on a 0..`max` scale (GnBu).
 * @param {number} value
 * @param {number} max
 * @returns {string} `rgb(…)`
 */
export function gnbu(value, max) {
  if (!(max > 0) || !(value > 0)) return 'rgb(241, 244, 246)';
  const x = Math.min(1, value / max) * (GNBU.length - 1);
  const i = Math.min(GNBU.length - 2, Math.floor(x));
  const f = x - i;
  const c = GNBU[i].map((a, k) => Math.round(a + (GNBU[i + 1][k] - a) * f));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

/**
 * A CSS linear gradient of the heatmap scale, for its legend.
 * @returns {string}
 */
export function gnbuGradient() {
  return `linear-gradient(to right, ${GNBU.map((c, i) => `rgb(${c.join(',')}) ${Math.round((i / (GNBU.length - 1)) * 100)}%`).join(', ')})`;
}

/**
 * Local `HH:MM` labels of `count` steps of `stepS` seconds from `startIso`.
 * @param {string} startIso
 * @param {number} stepS
 * @param {number} count
 * @returns {string[]}
 */
export function stepLabels(startIso, stepS, count) {
  const t0 = new Date(startIso).getTime();
  return Array.from({ length: count }, (_, i) => new Date(t0 + i * stepS * 1000)
    .toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' }));
}

/**
 * The Chart.js configuration of a schedule heatmap (`chartjs-chart-matrix`): one row per
 * vehicle, one cell per step, colour = kW on the GnBu scale; the tooltip names the vehicle, the
 * step and its power.
 *
 * @param {{label: string, names: string[], labels: string[], rows: number[][]}} heat `rows[y][x]`
 *   is vehicle y's power (W) in step x; `labels[x]` names step x.
 * @returns {object}
 */
export function heatmapConfig({ label, names, labels, rows }) {
  const steps = Math.max(0, ...rows.map((r) => r.length));
  const maxKw = Math.max(0.001, ...rows.flat().map((w) => w / 1000));
  /** @type {{x: number, y: number, v: number}[]} */
  const data = [];
  rows.forEach((row, y) => row.forEach((w, x) => data.push({ x, y, v: w / 1000 })));
  return {
    type: 'matrix',
    data: {
      datasets: [{
        label,
        data,
        backgroundColor: (/** @type {any} */ c) => gnbu(c.raw?.v ?? 0, maxKw),
        borderWidth: 0,
        width: (/** @type {any} */ c) => cellSize(c.chart.scales.x, 0.5),
        height: (/** @type {any} */ c) => cellSize(c.chart.scales.y, 1),
      }],
    },
    options: {
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            title: (/** @type {any[]} */ items) => `Vehicle ${names[items[0].raw.y]}`,
            label: (/** @type {any} */ c) => `${labels[c.raw.x]}: ${c.raw.v.toFixed(1)} kW`,
          },
        },
      },
      // Linear axes with one tick per vehicle and one per hour, so that cell (x, y) is step x of
      // vehicle y whatever the labels say.
      scales: {
        x: {
          type: 'linear', offset: false, min: -0.5, max: steps - 0.5,
          title: { display: true, text: 'Time (15-minute steps)' },
          afterBuildTicks: (/** @type {any} */ axis) => { axis.ticks = hourTicks(steps, axis.chart.width); },
          ticks: { callback: (/** @type {number} */ v) => labels[v] ?? '', maxRotation: 0, autoSkipPadding: 16, align: 'inner' },
          grid: { display: false },
        },
        y: {
          type: 'linear', offset: false, min: -0.5, max: names.length - 0.5, reverse: true,
          title: { display: true, text: 'Vehicle (session)' },
          afterBuildTicks: (/** @type {any} */ axis) => { axis.ticks = names.map((_, i) => ({ value: i })); },
          ticks: { callback: (/** @type {number} */ v) => names[v] ?? '', autoSkip: false },
          grid: { display: false },
        },
      },
    },
  };
}

/**
 * Tick positions every whole number of hours (4 steps), as many as fit about 80 px apart.
 * @param {number} steps
 * @param {number} widthPx
 * @returns {{value: number}[]}
 */
function hourTicks(steps, widthPx) {
  const fit = Math.max(2, Math.floor(widthPx / 80));
  const every = 4 * Math.max(1, Math.ceil(steps / fit / 4));
  const out = [];
  for (let i = 0; i < steps; i += every) out.push({ value: i });
  return out;
}

/**
 * A matrix cell's size along `scale`: one unit less `gap` pixels.
 * @param {any} scale
 * @param {number} gap
 * @returns {number}
 */
function cellSize(scale, gap) {
  if (!scale) return 1;
  return Math.max(1, Math.abs(scale.getPixelForValue(1) - scale.getPixelForValue(0)) - gap);
}
