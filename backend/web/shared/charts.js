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
