// Shared fixtures of the browser tests: the real `evflex serve` binary on a free port with a
// temporary SQLite database, a minimal fake CPO (OCPI versions + charging-profile receiver) for
// the credentials handshake, seeding through the real APIs, and headless Debian Chromium
// driven by playwright-core.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SCREENSHOTS = path.join(ROOT, 'docs/screenshots');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache/evflex/target');
export const BINARY = process.env.EVFLEX_BIN ?? path.join(TARGET, 'debug/evflex');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const REGISTRATION_TOKEN = 'web-test-registration-token';

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = /** @type {net.AddressInfo} */ (srv.address());
  srv.close();
  await once(srv, 'close');
  return port;
}

/** A fresh temporary directory, removed by `cleanup`. */
export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Starts `evflex serve --no-chain` (wall-clock ticks: one runs at start) and waits for /healthz.
 * The pages are tested without a chain: their chain panels must then say so (503); the chain
 * itself is tested against anvil in backend/tests/api/chain.rs.
 * @param {{port: number, dir: string}} opts `dir` holds the SQLite database and the log.
 * @returns {Promise<{base: string, stop: () => Promise<void>, log: string}>}
 */
export async function startServer({ port, dir }) {
  if (!fs.existsSync(BINARY)) throw new Error(`${BINARY} not found: run cargo build -p evflex first`);
  if (!fs.existsSync(path.join(ROOT, 'backend/web/vendor/chart.umd.min.js'))) throw new Error('backend/web/vendor/ is missing: run scripts/build-web first');
  const logPath = path.join(dir, `evflex-${Date.now()}.log`);
  const log = fs.openSync(logPath, 'a');
  const child = spawn(BINARY, ['serve', '--no-chain'], {
    env: {
      ...process.env,
      DATABASE_URL: `sqlite://${path.join(dir, 'evflex.sqlite')}?mode=rwc`,
      EVFLEX_LISTEN: `127.0.0.1:${port}`,
      EVFLEX_TICK: 'wall-clock',
      EVFLEX_OCPI_REGISTRATION_TOKEN: REGISTRATION_TOKEN,
      EVFLEX_WEB_DIR: path.join(ROOT, 'backend/web'),
      EVFLEX_SETPOINT_ATTEMPTS: '1',
      RUST_LOG: process.env.RUST_LOG ?? 'info',
    },
    stdio: ['ignore', log, log],
  });
  // Never leave the server running when the test process ends, however it ends.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.removeListener('exit', killOnExit));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`evflex exited with ${child.exitCode}; log:\n${fs.readFileSync(logPath, 'utf8')}`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`evflex did not start; log:\n${fs.readFileSync(logPath, 'utf8')}`);
    await sleep(100);
  }
  return {
    base,
    log: logPath,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await once(child, 'exit');
        clearTimeout(timer);
      }
      fs.closeSync(log);
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value (or throws after `ms`). */
export async function until(fn, ms = 15_000, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(200);
  }
}

/**
 * A fake CPO backend: OCPI versions/details for the credentials handshake and a receiver that
 * accepts every charging profile evflex sends.
 * @returns {Promise<{url: string, tokenB: string, profiles: any[], close: () => Promise<void>}>}
 */
export async function fakeCpo() {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const profiles = [];
  const envelope = (data) => JSON.stringify({ data, status_code: 1000, status_message: 'Success', timestamp: new Date().toISOString() });
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/json');
      if (req.url === '/ocpi/versions') return res.end(envelope([{ version: '2.2.1', url: `${url}/ocpi/2.2.1` }]));
      if (req.url === '/ocpi/2.2.1') {
        return res.end(envelope({
          version: '2.2.1',
          endpoints: [
            { identifier: 'credentials', role: 'RECEIVER', url: `${url}/ocpi/2.2.1/credentials` },
            { identifier: 'chargingprofiles', role: 'RECEIVER', url: `${url}/ocpi/2.2.1/chargingprofiles` },
          ],
        }));
      }
      if (req.url?.startsWith('/ocpi/2.2.1/chargingprofiles')) {
        profiles.push({ url: req.url, body });
        return res.end(envelope({ result: 'ACCEPTED', timeout: 30 }));
      }
      res.statusCode = 404;
      res.end(envelope(null));
    });
  });
  srv.listen(port, '127.0.0.1');
  await once(srv, 'listening');
  return { url, tokenB: 'fake-cpo-token-b', profiles, close: () => new Promise((r) => srv.close(() => r())) };
}

/** Calls evflex with JSON; throws on a non-2xx answer. */
export async function call(base, method, p, body, authHeader) {
  const r = await fetch(`${base}${p}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(authHeader ? { Authorization: authHeader } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: HTTP ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const b64 = (s) => Buffer.from(s).toString('base64');
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The OCPI credentials handshake; returns token C (the CPO's credentials with evflex). */
export async function handshake(base, cpo) {
  const r = await call(base, 'POST', '/ocpi/2.2.1/credentials', {
    token: cpo.tokenB,
    url: `${cpo.url}/ocpi/versions`,
    roles: [{ role: 'CPO', business_details: { name: 'Demo CPO' }, party_id: 'EXA', country_code: 'NL' }],
  }, `Token ${b64(REGISTRATION_TOKEN)}`);
  if (r.status_code !== 1000) throw new Error(`handshake: ${JSON.stringify(r)}`);
  return r.data.token;
}

/**
 * Seeds one site: group 1 "Garage A" (22 kW, 10 kW PV) with three 11 kW EVSEs, a location
 * with them, and an ACTIVE session on each EVSE listed in `sessions`.
 * @param {string} base
 * @param {string} tokenC
 * @param {{evse: string, session: string, card: string}[]} sessions
 */
export async function seedSite(base, tokenC, sessions) {
  const auth = `Token ${b64(tokenC)}`;
  const evses = ['EVSE-1', 'EVSE-2', 'EVSE-3'];
  await call(base, 'PUT', '/api/v1/topology', {
    groups: [{
      id: 1, name: 'Garage A', country_code: 'NL', party_id: 'EXA', capacity_w: 22_000, other_load_w: 2_000,
      evses, pv_inverters: [{ id: 'roof', peak_w: 10_000 }],
    }],
  }, auth);
  const at = now();
  await call(base, 'PUT', '/ocpi/2.2.1/locations/NL/EXA/LOC-1', {
    country_code: 'NL', party_id: 'EXA', id: 'LOC-1', publish: true, name: 'Garage A',
    address: 'Stationsplein 1', city: 'Utrecht', country: 'NLD',
    coordinates: { latitude: '52.089', longitude: '5.110' }, time_zone: 'Europe/Amsterdam', last_updated: at,
    evses: evses.map((uid) => ({
      uid, evse_id: `NL*EXA*E${uid}`, status: sessions.some((s) => s.evse === uid) ? 'CHARGING' : 'AVAILABLE', last_updated: at,
      connectors: [{ id: '1', standard: 'IEC_62196_T2', format: 'SOCKET', power_type: 'AC_3_PHASE', max_voltage: 230, max_amperage: 16, max_electric_power: 11_000, last_updated: at }],
    })),
  }, auth);
  const start = new Date(Date.now() - 20 * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  for (const s of sessions) {
    await call(base, 'PUT', `/ocpi/2.2.1/sessions/NL/EXA/${s.session}`, {
      country_code: 'NL', party_id: 'EXA', id: s.session, start_date_time: start, kwh: 1.2,
      cdr_token: { country_code: 'NL', party_id: 'EXA', uid: s.card, type: 'RFID', contract_id: `NL-EXA-C${s.card}` },
      auth_method: 'WHITELIST', location_id: 'LOC-1', evse_uid: s.evse, connector_id: '1', currency: 'EUR',
      status: 'ACTIVE', last_updated: at,
    }, auth);
  }
  return auth;
}

/** Posts one meter reading (power kW, SoC %, energy register Wh) for an EVSE's session. */
export async function meter(base, auth, { evse, session, powerKw, soc, energyWh }) {
  const sampled = [
    { measurand: 'Energy.Active.Import.Register', value: String(energyWh), unit: 'Wh' },
    { measurand: 'Power.Active.Import', value: String(powerKw), unit: 'kW' },
  ];
  if (soc !== undefined) sampled.push({ measurand: 'SoC', value: String(soc), unit: 'Percent' });
  await call(base, 'POST', '/api/v1/meter-values', {
    meter_values: [{ evse_uid: evse, session_id: session, meterValue: [{ timestamp: now(), sampledValue: sampled }] }],
  }, auth);
  // The CPO reports the session's energy over OCPI too (what the app shows as "energy added").
  await call(base, 'PATCH', `/ocpi/2.2.1/sessions/NL/EXA/${session}`, { kwh: energyWh / 1000, last_updated: now() }, auth);
}

/**
 * Headless Debian Chromium with a fresh profile (never a downloaded browser).
 * @returns {Promise<import('playwright-core').BrowserContext & {cleanup: () => Promise<void>}>}
 */
export async function browser({ width = 375, height = 812 } = {}) {
  const profile = tempDir('evflex-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width, height },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const errors = [];
  context.on('weberror', (e) => errors.push(String(e.error())));
  return Object.assign(context, {
    pageErrors: errors,
    async cleanup() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  });
}

/**
 * Saves a screenshot under docs/screenshots/: the viewport as it is (a phone screen), or with
 * `fullPage` the whole page from the top.
 */
export async function screenshot(page, name, { fullPage = false } = {}) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  if (fullPage) await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(SCREENSHOTS, name), fullPage });
}

/** Starts the fake CPO and evflex, does the handshake and seeds the site. */
export async function site(sessions) {
  const dir = tempDir('evflex-web-');
  const port = await freePort();
  const cpo = await fakeCpo();
  let server = await startServer({ port, dir });
  const tokenC = await handshake(server.base, cpo);
  const auth = await seedSite(server.base, tokenC, sessions);
  return {
    dir, port, cpo, tokenC, auth,
    get base() { return server.base; },
    get server() { return server; },
    /** Restarts evflex on the same port and database: its start-up tick plans the current quarter hour. */
    async restart() {
      await server.stop();
      server = await startServer({ port, dir });
    },
    async close() {
      await server.stop();
      await cpo.close();
      if (!process.env.KEEP_TEST_DIRS) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
