// CPO cockpit in headless Chromium against the real evflex binary: CPO token sign-in, every
// charge point with its power against its rating, live updates, the load chart's planned
// import under the capacity line, the schedule heatmap, the audit panel; and the OpenAPI
// viewer. Saves desktop and 375 px screenshots to docs/screenshots/.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TOPOLOGY, browser, call, meter, screenshot, site, until } from './helpers.mjs';

let s;
let ctx;
let page;

before(async () => {
  s = await site([
    { evse: 'EVSE-1', session: 'S1', user: 'Ann' },
    { evse: 'EVSE-2', session: 'S2', user: 'Ben' },
    { evse: 'EVSE-3', session: 'S3', card: 'CARD-3' },
  ], { users: ['Ann', 'Ben'] });
  await meter(s.base, s.auth, { evse: 'EVSE-1', session: 'S1', powerKw: 7.2, soc: 40, energyWh: 1200 });
  await meter(s.base, s.auth, { evse: 'EVSE-2', session: 'S2', powerKw: 11, soc: 62, energyWh: 4000 });
  await meter(s.base, s.auth, { evse: 'EVSE-3', session: 'S3', powerKw: 0, soc: 80, energyWh: 9000 });
  // Two opted-in drivers with requests, one uncontrolled session: a busy 22 kW group.
  for (const [name, session, kwh, hours] of [['Ann', 'S1', 18, 5], ['Ben', 'S2', 25, 8]]) {
    const departure = new Date(Date.now() + hours * 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const r = await call(s.base, 'POST', '/api/v1/requests', { session_id: session, energy_kwh: kwh, departure }, `Bearer ${s.users[name].token}`);
    assert.equal(r.decision, 'accepted');
  }
  // A stationary battery behind the connection, and the state its controller measured.
  await call(s.base, 'PUT', '/api/v1/groups/1', {
    ...TOPOLOGY.groups[0],
    batteries: [{ id: 'store', capacity_wh: 30_000, energy_wh: 15_000, max_charge_w: 10_000, max_discharge_w: 10_000, efficiency_permille: 900 }],
  }, s.auth);
  await call(s.base, 'PUT', '/api/v1/groups/1/batteries/store/state', { energy_wh: 12_000, power_w: -3_000 }, s.auth);
  await s.restart(); // the start-up tick plans the group
  ctx = await browser({ width: 1440, height: 1000 });
  page = await ctx.newPage();
});

after(async () => {
  await ctx?.cleanup();
  await s?.close();
});

test('a wrong CPO token is refused with a clear message', async () => {
  await page.goto(`${s.base}/cockpit/`);
  await page.getByLabel('CPO token').fill('not-a-token');
  await page.getByRole('button', { name: 'Open cockpit' }).click();
  await page.getByText('Token not accepted').waitFor();
});

test('the cockpit shows every charge point with its power against its rating', async () => {
  await page.getByLabel('CPO token').fill(s.tokenC);
  await page.getByRole('button', { name: 'Open cockpit' }).click();
  await page.getByRole('heading', { name: 'Garage A' }).waitFor();
  for (const [evse, power] of [['EVSE-1', /^7[.,]2 kW$/], ['EVSE-2', /^11 kW$/], ['EVSE-3', /^0[.,]0 kW$/]]) {
    const cp = page.locator(`li.cp[data-evse="${evse}"]`);
    await cp.waitFor();
    assert.match(await cp.locator('[data-field="power"]').textContent(), power);
    assert.match(await cp.textContent(), /\/ 11 kW/);
    assert.match(await cp.textContent(), /charging/i);
    assert.equal(await cp.getByRole('meter').getAttribute('aria-valuemax'), '11');
  }
  assert.match(await page.locator('li.cp[data-evse="EVSE-2"] .session').textContent(), /S2/);
  // The last profile of Ann's controlled session: the fake CPO took it (ACCEPTED), no result
  // yet (the start-up tick sends it; the page refetches on its event).
  const profile = page.locator('li.cp[data-evse="EVSE-1"] [data-field="profile"]');
  await until(async () => /^Profile .+: sent, awaiting the result, /.test((await profile.textContent({ timeout: 1000 }).catch(() => '')) ?? ''), 10_000, 'the profile sent');
});

test('the battery shows what it holds and what the plan gives it now', async () => {
  const battery = page.locator('[data-field="battery"][data-battery="store"]');
  await battery.waitFor();
  assert.match(await battery.textContent(), /^Battery 12[.,]0 kWh of 30[.,]0 kWh(, charging at [\d.,]+ kW|, giving [\d.,]+ kW|, idle)$/);
  assert.match(await battery.getAttribute('title'), /^Stationary battery store: measured /);
});

test('the planned load stays under the capacity line, and the heatmap has every vehicle', async () => {
  const series = await until(() => page.evaluate(() => {
    const x = window.evflexCockpit.loadSeries[1];
    return x && x.planned_kw.some((v) => v !== null) ? x : null;
  }), 15_000, 'the load series');
  assert.ok(series.timesteps.length >= 96, `a day of steps (${series.timesteps.length})`);
  series.planned_kw.forEach((p, i) => {
    if (p === null) return;
    assert.ok(series.capacity_kw[i] !== null, `capacity at step ${i}`);
    assert.ok(p <= series.capacity_kw[i] + 1e-9, `step ${series.labels[i]}: planned ${p} kW > capacity ${series.capacity_kw[i]} kW`);
  });
  assert.ok(Math.max(...series.planned_kw) > 2, 'the plan charges the vehicles');
  // The chart draws the same data.
  const drawn = await page.evaluate(() => {
    const chart = window.Chart.getChart(document.querySelector('[data-group="1"] canvas.load-chart'));
    return chart.data.datasets.map((d) => ({ label: d.label, n: d.data.length }));
  });
  assert.deepEqual(drawn.slice(0, 2).map((d) => d.label), ['Capacity (kW)', 'Planned grid import (kW)']);
  assert.equal(drawn[1].n, series.planned_kw.length);
  const heat = await page.evaluate(() => {
    const chart = window.Chart.getChart(document.querySelector('[data-group="1"] canvas.heat-chart'));
    return { type: chart.config.type, cells: chart.data.datasets[0].data.length };
  });
  const schedule = await page.evaluate(() => window.evflexCockpit.groups[0].schedule);
  assert.equal(heat.type, 'matrix');
  assert.equal(schedule.vehicle_ids.length, 3);
  assert.equal(heat.cells, 3 * schedule.power_w[0].length);
});

test('live power updates without reloading', async () => {
  await page.evaluate(() => { window.__sameDocument = true; });
  await until(() => page.evaluate(() => window.evflexCockpit.transport() === 'events'), 10_000, 'the event stream');
  await page.waitForTimeout(1000); // the refetch that follows the stream's opening settles
  // A meter-value batch refetches only the group of that charge point.
  const before = await page.evaluate(() => ({ ...window.evflexCockpit.fetches }));
  await call(s.base, 'POST', '/api/v1/meter-values', {
    meter_values: [{ evse_uid: 'EVSE-1', session_id: 'S1', meterValue: [{ timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      sampledValue: [{ measurand: 'Power.Active.Import', value: '6.9', unit: 'kW' }] }] }],
  }, s.auth);
  const p1 = page.locator('li.cp[data-evse="EVSE-1"] [data-field="power"]');
  await until(async () => /^6[.,]9 kW$/.test(await p1.textContent()), 5_000, 'EVSE-1 at 6.9 kW pushed');
  await until(() => page.evaluate((n) => window.evflexCockpit.fetches.group > n, before.group), 3_000, 'group 1 refetched');
  const after = await page.evaluate(() => ({ ...window.evflexCockpit.fetches }));
  const log = await page.evaluate(() => window.evflexCockpit.eventLog.join(', '));
  assert.ok(after.group > before.group, `group 1 was refetched (${JSON.stringify({ before, after })}; events: ${log})`);
  assert.equal(after.all, before.all, 'no other group was refetched');
  await meter(s.base, s.auth, { evse: 'EVSE-3', session: 'S3', powerKw: 3.7, soc: 81, energyWh: 9100 });
  const power = page.locator('li.cp[data-evse="EVSE-3"] [data-field="power"]');
  await until(async () => /^3[.,]7 kW$/.test(await power.textContent()), 10_000, 'EVSE-3 at 3.7 kW');
  assert.equal(await page.evaluate(() => window.__sameDocument), true);
});

test('billing and audit say what is not available yet', async () => {
  await page.locator('#commits').getByText(/On-chain schedule commits: not available yet|Chain unavailable/).waitFor();
  await page.locator('#settlements').getByText(/On-chain settlements: not available yet|Chain unavailable/).waitFor();
  // Until commits exist, the latest plan's hashes are listed.
  const hash = await page.evaluate(() => window.evflexCockpit.groups[0].schedule.schedule_hash);
  await page.locator(`#commits code[title="${hash}"]`).waitFor();
  await screenshot(page, 'cockpit-desktop.png', { fullPage: true });
  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForTimeout(500);
  await screenshot(page, 'cockpit-375.png', { fullPage: true });
  assert.deepEqual(ctx.pageErrors, []);
});

test('the OpenAPI viewer documents the API', async () => {
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${s.base}/api/docs`);
  await page.locator('.swagger-ui .info .title').getByText('evflex API').waitFor();
  await page.locator('.opblock-summary-path', { hasText: '/api/v1/requests' }).first().waitFor();
  await screenshot(page, 'api-docs.png');
});
