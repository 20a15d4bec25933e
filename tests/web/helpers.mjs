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
 * Starts `evflex serve` (wall-clock ticks: one runs at start) and waits for /healthz.
 *
 * Two modes: `--no-chain` (the default; the pages' chain panels must then say so, 503), or with
 * `chain: true` a chain-backed server: no `--rpc-url`, so evflex starts its own local anvil from
 * `anvil/state.json` (every contract deployed; demo keys) and stops it on exit; its outbox
 * writer runs continuously. A `topology` is written to a file and loaded at start
 * (`EVFLEX_TOPOLOGY`), so the start-up tick already plans (and commits) those groups.
 * @param {{port: number, dir: string, chain?: boolean, topology?: any}} opts `dir` holds the
 *   SQLite database and the log.
 * @returns {Promise<{base: string, stop: () => Promise<void>, log: string}>}
 */
export async function startServer({ port, dir, chain = false, topology }) {
  if (!fs.existsSync(BINARY)) throw new Error(`${BINARY} not found: run cargo build --workspace first`);
  if (!fs.existsSync(path.join(ROOT, 'backend/web/vendor/chart.umd.min.js'))) throw new Error('backend/web/vendor/ is missing: run scripts/build-web first');
  const logPath = path.join(dir, `evflex-${Date.now()}.log`);
  const log = fs.openSync(logPath, 'a');
  const extra = {};
  if (topology) {
    const file = path.join(dir, 'topology.json');
    fs.writeFileSync(file, JSON.stringify(topology));
    extra.EVFLEX_TOPOLOGY = file;
  }
  // A chain-backed server must not pick up a chain from the caller's environment.
  const env = { ...process.env };
  for (const k of ['EVFLEX_NO_CHAIN', 'EVFLEX_RPC_URL', 'EVFLEX_OPERATOR_KEY', 'EVFLEX_METER_KEY', 'EVFLEX_MASTER_SECRET', 'EVFLEX_DEPLOYMENT', 'EVFLEX_WRITER']) delete env[k];
  const child = spawn(BINARY, chain ? ['serve'] : ['serve', '--no-chain'], {
    cwd: ROOT,
    env: {
      ...env,
      ...extra,
      ...process.env,
      DATABASE_URL: `sqlite://${path.join(dir, 'evflex.sqlite')}?mode=rwc`,
      EVFLEX_LISTEN: `127.0.0.1:${port}`,
      EVFLEX_ALLOW_PRIVATE_URLS: '1', // the fake CPO listens on loopback
      EVFLEX_NO_RATE_LIMITS: '1', // every test driver signs up from 127.0.0.1
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
  const deadline = Date.now() + (chain ? 90_000 : 20_000);
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
  const evses = TOPOLOGY.groups[0].evses;
  await call(base, 'PUT', '/api/v1/topology', TOPOLOGY, auth);
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

/** Group 1 of `seedSite`, as `PUT /api/v1/topology` (and `EVFLEX_TOPOLOGY`) take it. */
export const TOPOLOGY = {
  groups: [{
    id: 1, name: 'Garage A', country_code: 'NL', party_id: 'EXA', capacity_w: 22_000, other_load_w: 2_000,
    evses: ['EVSE-1', 'EVSE-2', 'EVSE-3'], pv_inverters: [{ id: 'roof', peak_w: 10_000 }],
  }],
};

/**
 * Starts the fake CPO and evflex, does the handshake and seeds the site. With `chain: true`
 * evflex runs against its own local anvil and loads the topology at start, so its start-up
 * tick commits group 1's plan on chain (restarting would start a fresh anvil: not offered).
 * `users` sign up (opted in) before the sessions start: a session naming `user` instead of
 * `card` starts with the token evflex issued to that user, so it is theirs.
 * @param {{evse: string, session: string, card?: string, user?: string}[]} sessions
 * @param {{chain?: boolean, users?: string[]}} [opts]
 */
export async function site(sessions, { chain = false, users: names = [] } = {}) {
  const dir = tempDir('evflex-web-');
  const port = await freePort();
  const cpo = await fakeCpo();
  let server = await startServer({ port, dir, chain, topology: chain ? TOPOLOGY : undefined });
  const tokenC = await handshake(server.base, cpo);
  /** @type {Record<string, {user_id: number, token: string, token_uid: string}>} */
  const users = {};
  for (const name of names) users[name] = await call(server.base, 'POST', '/api/v1/users', { name, opted_in: true });
  const started = sessions.map((x) => (x.user ? { ...x, card: users[x.user].token_uid } : x));
  const auth = await seedSite(server.base, tokenC, /** @type {any} */ (started));
  return {
    dir, port, cpo, tokenC, auth, users,
    get base() { return server.base; },
    get server() { return server; },
    /** Restarts evflex on the same port and database: its start-up tick plans the current quarter hour. */
    async restart() {
      if (chain) throw new Error('a chain-backed server restarts with a fresh anvil: not supported');
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

/** Starts an ACTIVE OCPI session of `card` at `evse` (started 30 minutes ago). */
export async function startSession(base, auth, { evse, session, card }) {
  const start = new Date(Date.now() - 30 * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  await call(base, 'PUT', `/ocpi/2.2.1/sessions/NL/EXA/${session}`, {
    country_code: 'NL', party_id: 'EXA', id: session, start_date_time: start, kwh: 0,
    cdr_token: { country_code: 'NL', party_id: 'EXA', uid: card, type: 'RFID', contract_id: `NL-EXA-C${card}` },
    auth_method: 'WHITELIST', location_id: 'LOC-1', evse_uid: evse, connector_id: '1', currency: 'EUR',
    status: 'ACTIVE', last_updated: now(),
  }, auth);
}

/**
 * Ends a session as a CPO does: PATCH it COMPLETED, then POST its CDR over OCPI (`kwh` total).
 * evflex bills the CDR (its total_cost: 0.30 €/kWh incl. VAT) and its chain writer settles the
 * bill on EnergyBilling.
 */
export async function finishWithCdr(base, auth, { evse, session, card, kwh, cdr }) {
  const end = now();
  const start = new Date(Date.now() - 30 * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  await call(base, 'PATCH', `/ocpi/2.2.1/sessions/NL/EXA/${session}`, { status: 'COMPLETED', kwh, end_date_time: end, last_updated: end }, auth);
  await call(base, 'POST', '/ocpi/2.2.1/cdrs', {
    country_code: 'NL', party_id: 'EXA', id: cdr, start_date_time: start, end_date_time: end, session_id: session,
    cdr_token: { country_code: 'NL', party_id: 'EXA', uid: card, type: 'RFID', contract_id: `NL-EXA-C${card}` },
    auth_method: 'WHITELIST',
    cdr_location: {
      id: 'LOC-1', address: 'Stationsplein 1', city: 'Utrecht', country: 'NLD',
      coordinates: { latitude: '52.089', longitude: '5.110' }, evse_uid: evse, evse_id: `NL*EXA*E${evse}`,
      connector_id: '1', connector_standard: 'IEC_62196_T2', connector_format: 'SOCKET', connector_power_type: 'AC_3_PHASE',
    },
    currency: 'EUR',
    charging_periods: [{ start_date_time: start, dimensions: [{ type: 'ENERGY', volume: kwh }] }],
    // What the CPO charged (0.30 €/kWh incl. VAT): evflex bills a CDR's total_cost.
    total_cost: { excl_vat: Math.round(kwh * 0.25 * 1e6) / 1e6, incl_vat: Math.round(kwh * 0.30 * 1e6) / 1e6 },
    total_energy: kwh, total_time: 0.5, last_updated: end,
  }, auth);
}

/** Foundry's `cast` from node_modules (the native binary of @foundry-rs/cast). */
function castBinary() {
  const dir = path.join(ROOT, 'node_modules/@foundry-rs');
  const pkg = fs.existsSync(dir) ? fs.readdirSync(dir).find((d) => /^cast-/.test(d)) : undefined;
  const bin = pkg ? path.join(dir, pkg, 'bin/cast') : 'cast';
  return bin;
}

/**
 * A test Ethereum wallet whose key stays in node: `cast wallet` (Foundry, pinned in
 * package-lock.json) derives the address and signs EIP-191 `personal_sign` messages.
 * @param {string} privateKey 0x-hex.
 */
export function testWallet(privateKey) {
  const cast = castBinary();
  const run = (args) => new Promise((resolve, reject) => {
    const p = spawn(cast, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (c) => { out += c; });
    p.stderr.on('data', (c) => { err += c; });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`cast ${args[0]} ${args[1]}: ${err.trim()}`))));
  });
  return {
    address: () => run(['wallet', 'address', '--private-key', privateKey]),
    /** `personal_sign`: a 0x-hex message is signed as bytes, anything else as UTF-8 text. */
    sign: (message) => run(['wallet', 'sign', '--private-key', privateKey, message]),
  };
}

/**
 * Gives the page an EIP-1193 provider (`window.ethereum`) backed by `wallet`: it answers
 * `eth_requestAccounts`/`eth_accounts` with the wallet's address and signs `personal_sign` in
 * node. Records every request in `window.__walletRequests`.
 */
export async function injectWallet(page, wallet) {
  const address = await wallet.address();
  await page.exposeFunction('__evflexTestWalletSign', (message) => wallet.sign(message));
  await page.addInitScript((addr) => {
    window.__walletRequests = [];
    window.ethereum = {
      isEvflexTestWallet: true,
      async request({ method, params }) {
        window.__walletRequests.push(method);
        if (method === 'eth_requestAccounts' || method === 'eth_accounts') return [addr];
        if (method === 'eth_chainId') return '0x7a69';
        if (method === 'personal_sign') {
          const [message, account] = params;
          if (String(account).toLowerCase() !== addr.toLowerCase()) throw Object.assign(new Error('unknown account'), { code: 4100 });
          return window.__evflexTestWalletSign(message);
        }
        throw Object.assign(new Error(`unsupported method ${method}`), { code: 4200 });
      },
    };
  }, address);
  return address;
}
