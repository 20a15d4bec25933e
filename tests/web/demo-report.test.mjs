// The demo's report (`evflex demo --exit`, crate evflex-sim, `report.html`) in headless
// Chromium: a short day without a chain is simulated by the real binary, then the page, opened
// from disk, draws one load chart per group, the heatmap with one row per plugged vehicle
// (hovering a cell names the session, the time and the power) and the cost bars, with no page
// error.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { BINARY, ROOT, browser, tempDir } from './helpers.mjs';

const GROUPS = 2;
let dir;
let ctx;
let page;
let data;

before(async () => {
  dir = tempDir('evflex-demo-report-');
  await promisify(execFile)(BINARY, [
    'demo', '--exit', '--no-chain', '--seed', '3', '--sites', '1', '--groups', String(GROUPS),
    '--charge-points', '6', '--vehicles', '8', '--start-hour', '8', '--hours', '3', '--out', dir,
  ], { cwd: ROOT, timeout: 300_000, maxBuffer: 16 << 20 });
  const html = fs.readFileSync(path.join(dir, 'report.html'), 'utf8');
  data = JSON.parse(/<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)[1]);
  ctx = await browser({ width: 1280, height: 900 });
  page = await ctx.newPage();
  await page.goto(pathToFileURL(path.join(dir, 'report.html')).href);
  await page.waitForSelector('body[data-ready="true"]');
});

after(async () => {
  await ctx?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('the report holds the simulated window of every group and plugged vehicle', () => {
  assert.equal(data.labels.length, 12, 'three hours of 15-minute steps');
  assert.equal(data.labels[0], '08:00');
  assert.equal(data.groups.length, GROUPS);
  for (const g of data.groups) {
    for (const series of [g.capacity_w, g.pv_w, g.uncontrolled_w, g.measured_w]) assert.equal(series.length, 12);
  }
  assert.ok(data.vehicles.length > 0, 'some vehicle plugged in');
  for (const v of data.vehicles) assert.equal(v.power_w.length, 12);
  const measured = data.groups.reduce((s, g) => s + g.measured_w.reduce((a, b) => a + b, 0), 0);
  const perVehicle = data.vehicles.reduce((s, v) => s + v.power_w.reduce((a, b) => a + b, 0), 0);
  assert.ok(Math.abs(measured - perVehicle) < 1e-6 * Math.max(1, measured), 'groups sum their vehicles');
  assert.deepEqual(data.cost.map((b) => b.name), ['smart', 'uncontrolled']);
  // The last group's stationary battery, drawn apart from the EV load.
  assert.deepEqual(data.groups.map((g) => g.battery_w?.length), [undefined, 12]);
});

test('the page draws every chart, and a heatmap cell names its session, time and power', async () => {
  assert.deepEqual(ctx.pageErrors, []);
  const charts = await page.evaluate(() => [...document.querySelectorAll('canvas')]
    .map((c) => globalThis.Chart.getChart(c)?.config.type));
  assert.deepEqual(charts, [...Array(GROUPS).fill('line'), 'matrix', 'bar']);
  const v = data.vehicles.findIndex((row) => row.power_w.some((w) => w > 0));
  const x = data.vehicles[v].power_w.findIndex((w) => w > 0);
  const tip = await page.evaluate(([y, x]) => {
    const chart = globalThis.Chart.getChart(document.getElementById('heatmap'));
    const points = chart.getDatasetMeta(0).data;
    const i = chart.data.datasets[0].data.findIndex((d) => d.x === x && d.y === y);
    chart.tooltip.setActiveElements([{ datasetIndex: 0, index: i }], { x: points[i].x, y: points[i].y });
    chart.update();
    return { title: chart.tooltip.title, body: chart.tooltip.body.flatMap((b) => b.lines) };
  }, [v, x]);
  const row = data.vehicles[v];
  assert.ok(tip.title[0].startsWith(`Vehicle ${row.session_id}`), tip.title[0]);
  assert.deepEqual(tip.body, [`${data.labels[x]}: ${(row.power_w[x] / 1000).toFixed(1)} kW`]);
});
