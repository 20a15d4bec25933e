// The CPO cockpit: groups with capacity and live load, every charge point's power against its
// rating, the load-vs-capacity chart (actual and planned), the schedule heatmap (vehicles ×
// 15-minute steps, colour = kW) and billing/audit with on-demand verification.
//
// Authenticates with the CPO's OCPI credentials token. Live updates come from the server's event
// stream: a `meter` event refetches only the group of that charge point, a `tick` every group and
// the audit lists; the page polls every few seconds only when server-sent events fail (see
// backend/web/README.md).

import { api, ApiError, coalesced, every, live } from '/shared/api.js';
import { clock, dateTime, esc, eur, kw, kwh, shortHex, token as tokenAmount } from '/shared/format.js';
import { chartLib, colors, gnbuGradient, heatmapConfig, stepLabels, upsertChart } from '/shared/charts.js';

/** How the cockpit names a set-point's state (`ProfileView.status`). */
const PROFILE_STATES = {
  pending: 'waiting to be sent',
  sent: 'sent, awaiting the result',
  in_force: 'in force',
  rejected: 'rejected',
  failed: 'not delivered',
  superseded: 'replaced by a newer plan',
  unchanged: 'in force (the new plan says the same)',
};
import { $, notice, setLive, showBanner } from '/shared/page.js';

const POLL_MS = 4000;
const AUDIT_MS = 30_000;
const TOKEN_KEY = 'evflex.cpoToken';

/**
 * Per group, the series of the load chart in kW, by timestep (for the page and the tests).
 * @typedef {{timesteps: number[], labels: string[], capacity_kw: (number|null)[], planned_kw: (number|null)[], actual_kw: (number|null)[], pv_kw: (number|null)[], now_index: number}} LoadSeries
 */

/** @type {{token: string|null, header: string|null, groups: any[], loadSeries: Record<string, LoadSeries>, lastUpdate: Date|null, stop: (() => void)|null, stopAudit: (() => void)|null, transport: () => string, fetches: {all: number, group: number}, verified: Map<string, any>, eventLog: string[]}} */
const state = { token: null, header: null, groups: [], loadSeries: {}, lastUpdate: null, stop: null, stopAudit: null, transport: () => 'none', fetches: { all: 0, group: 0 }, verified: new Map(), eventLog: [] };
/** @type {any} */ (window).evflexCockpit = state;

// ---------------------------------------------------------------- sign in

/** Tries the token as OCPI specifies (base64), then as given; returns the header that works. */
async function authenticate(/** @type {string} */ token) {
  const candidates = [`Token ${btoa(token)}`, `Token ${token}`];
  let last = null;
  for (const header of candidates) {
    try {
      const groups = await api('/api/v1/cockpit/groups', { auth: header });
      return { header, groups };
    } catch (e) {
      last = e;
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
    }
  }
  throw last;
}

async function signIn(/** @type {string} */ token, /** @type {boolean} */ quiet = false) {
  const msg = $('#token-msg');
  try {
    const { header, groups } = await authenticate(token);
    state.token = token;
    state.header = header;
    localStorage.setItem(TOKEN_KEY, token);
    $('#signin').hidden = true;
    $('#cockpit').hidden = false;
    $('#signout').hidden = false;
    msg.textContent = '';
    state.groups = groups;
    start();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      localStorage.removeItem(TOKEN_KEY);
      if (!quiet) msg.innerHTML = notice('error', 'Token not accepted', 'Check that you pasted the credentials token (token C) of a registered CPO.');
    } else {
      msg.innerHTML = notice('error', 'Cannot open the cockpit', esc(e.message));
    }
    showSignIn();
  }
}

function showSignIn() {
  $('#signin').hidden = false;
  $('#cockpit').hidden = true;
  $('#signout').hidden = true;
  setLive('idle', 'Not connected');
}

function signOut() {
  state.stop?.();
  state.stopAudit?.();
  state.stop = state.stopAudit = null;
  state.token = state.header = null;
  localStorage.removeItem(TOKEN_KEY);
  $('#groups').innerHTML = '';
  showSignIn();
}

// ---------------------------------------------------------------- refresh

function start() {
  state.stop?.();
  state.stopAudit?.();
  /** Groups whose charge points reported since the last refetch; `null` entries: all groups. */
  const dirty = new Set();
  const soon = coalesced(async () => {
    const ids = [...dirty];
    dirty.clear();
    if (ids.includes(null)) await refresh();
    else await refreshGroups(/** @type {number[]} */ (ids));
  }, 300);
  const all = () => {
    dirty.add(null);
    soon();
  };
  const audit = coalesced(loadAudit, 1000);
  const updates = live({
    refreshAll: async () => all(),
    pollMs: POLL_MS,
    onEvent: (name, data) => {
      state.eventLog.push(`${name} ${data.group_id ?? ''}`.trim());
      if (state.eventLog.length > 100) state.eventLog.shift();
      if (name === 'meter') {
        // The public stream names only the group; refetch its card if it is one of ours.
        if (state.groups.some((g) => g.group_id === data.group_id)) {
          dirty.add(data.group_id);
          soon();
        }
        return;
      }
      all();
      if (name === 'tick' || name === 'resync') audit();
    },
  });
  state.stop = updates.stop;
  state.transport = updates.transport;
  all();
  // Commits change status as the chain writer sends them (no event for that): a slow poll.
  state.stopAudit = every(loadAudit, AUDIT_MS);
}

/** Refetches only the named groups' cards (after meter values at their charge points). */
async function refreshGroups(/** @type {number[]} */ ids) {
  try {
    const fresh = await Promise.all(ids.map((id) => api(`/api/v1/cockpit/groups/${id}`, { auth: state.header ?? undefined })));
    state.fetches.group += fresh.length;
    for (const g of fresh) {
      const i = state.groups.findIndex((x) => x.group_id === g.group_id);
      if (i >= 0) state.groups[i] = g;
      else state.groups.push(g);
    }
    state.lastUpdate = new Date();
    showBanner(null);
    setLive('live', `Live · ${state.lastUpdate.toLocaleTimeString()}`);
    render();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut();
      return;
    }
    setLive('down', 'Reconnecting…');
    showBanner(e.message);
  }
}

async function refresh() {
  state.fetches.all += 1;
  try {
    const list = await api('/api/v1/cockpit/groups', { auth: state.header ?? undefined });
    const details = await Promise.all(list.map((g) => api(`/api/v1/cockpit/groups/${g.group_id}`, { auth: state.header ?? undefined })));
    state.groups = details;
    state.lastUpdate = new Date();
    showBanner(null);
    setLive('live', `Live · ${state.lastUpdate.toLocaleTimeString()}`);
    render();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut();
      $('#token-msg').innerHTML = notice('error', 'Signed out', 'The CPO token is no longer accepted.');
      return;
    }
    setLive('down', 'Reconnecting…');
    showBanner(e.message);
  }
}

function render() {
  renderOverview();
  const box = $('#groups');
  if (state.groups.length === 0) {
    box.innerHTML = notice('info', 'No charging groups yet', 'Send your site topology (PUT /api/v1/topology) and your locations over OCPI; groups appear here.');
    return;
  }
  box.querySelector('.notice')?.remove();
  const seen = new Set();
  for (const g of state.groups) {
    seen.add(String(g.group_id));
    let card = /** @type {HTMLElement|null} */ (box.querySelector(`[data-group="${g.group_id}"]`));
    if (!card) {
      card = document.createElement('section');
      card.className = 'card group';
      card.dataset.group = String(g.group_id);
      card.setAttribute('aria-labelledby', `g-${g.group_id}`);
      card.innerHTML = `<div class="group-head"><h2 id="g-${g.group_id}"></h2><span class="figures muted"></span></div>
        <div class="load-line"></div>
        <div class="group-grid">
          <div><h3>Charge points</h3><ul class="cps"></ul></div>
          <div>
            <h3>Load against capacity</h3>
            <div class="chart-box tall"><canvas class="load-chart" role="img"></canvas></div>
            <h3>Schedule heatmap</h3>
            <p class="muted heat-empty" hidden>No vehicles in the current plan.</p>
            <div class="chart-box heat"><canvas class="heat-chart" role="img"></canvas></div>
            <div class="legend-scale" aria-hidden="true"><span>0 kW</span><span class="ramp"></span><span class="heat-max"></span></div>
            <div class="hashes"></div>
          </div>
        </div>`;
      box.append(card);
    }
    renderGroup(card, g);
  }
  for (const el of box.querySelectorAll('[data-group]')) {
    if (!seen.has(/** @type {HTMLElement} */ (el).dataset.group)) el.remove();
  }
}

function renderOverview() {
  const gs = state.groups;
  const cps = gs.flatMap((g) => g.charge_points);
  const charging = cps.filter((c) => (c.power_w ?? 0) > 0).length;
  const load = gs.reduce((a, g) => a + g.load_w, 0);
  const cap = gs.reduce((a, g) => a + g.capacity_w, 0);
  const pv = gs.reduce((a, g) => a + g.pv_peak_w, 0);
  $('#overview').innerHTML = `
    <div class="stat"><dt>Groups</dt><dd>${gs.length}</dd></div>
    <div class="stat"><dt>Charge points</dt><dd>${cps.length} <small>${charging} charging</small></dd></div>
    <div class="stat"><dt>Live load / capacity</dt><dd>${esc(kw(load))} <small>of ${esc(kw(cap))}</small></dd></div>
    <div class="stat"><dt>PV peak</dt><dd>${pv > 0 ? esc(kw(pv)) : '<small>no PV</small>'}</dd></div>`;
}

/**
 * A stationary battery among a group's figures: what it holds, and what the plan gives it now.
 * @param {any} b A `BatteryView`.
 * @returns {string}
 */
function batteryFigure(b) {
  const plan = b.planned_w == null ? '' : b.planned_w > 0 ? `, charging at ${kw(b.planned_w)}` : b.planned_w < 0 ? `, giving ${kw(-b.planned_w)}` : ', idle';
  const seen = b.measured_at ? `measured ${dateTime(b.measured_at)}` : 'as the topology says (no state posted yet)';
  return ` · <span data-field="battery" data-battery="${esc(b.id)}" title="Stationary battery ${esc(b.id)}: ${esc(seen)}; the power is the plan's for now">Battery <b>${esc(kwh(b.energy_wh / 1000))} of ${esc(kwh(b.capacity_wh / 1000))}</b>${esc(plan)}</span>`;
}

/**
 * Fills one group's card: figures, charge points, charts.
 * @param {HTMLElement} card
 * @param {any} g A `CockpitGroup`.
 */
function renderGroup(card, g) {
  $('h2', card).textContent = g.name;
  $('.figures', card).innerHTML = `Capacity <b>${esc(kw(g.capacity_w))}</b> · Live load <b data-field="load">${esc(kw(g.load_w))}</b>${g.pv_peak_w > 0 ? ` · PV peak <b>${esc(kw(g.pv_peak_w))}</b>` : ''}${g.arrival_reserve_w > 0 ? ` · <span data-field="reserve" title="Headroom every plan keeps for cars that plug in before their first profile lands${g.arrival_reserve_configured_w != null ? ' (set for this group)' : ' (from the arrival rate and the free charge points)'}">Arrival reserve <b>${esc(kw(g.arrival_reserve_w))}</b></span>` : ''}${(g.batteries ?? []).map(batteryFigure).join('')}`;
  const share = g.capacity_w > 0 ? (100 * g.load_w) / g.capacity_w : 0;
  $('.load-line', card).innerHTML = `<div class="figures"><span>Live load</span><span>${esc(kw(g.load_w))} of ${esc(kw(g.capacity_w))} (${Math.round(share)} %)</span></div>
    <div class="bar big ${share > 100 ? 'over' : ''}" role="meter" aria-label="${esc(g.name)} load against capacity" aria-valuemin="0" aria-valuemax="${g.capacity_w / 1000}" aria-valuenow="${g.load_w / 1000}" aria-valuetext="${esc(kw(g.load_w))} of ${esc(kw(g.capacity_w))}"><span style="width:${Math.min(100, share)}%"></span></div>`;

  $('.cps', card).innerHTML = g.charge_points.map((c) => {
    const rated = c.rated_power_w ?? 0;
    const p = c.power_w ?? 0;
    const s = rated > 0 ? (100 * p) / rated : 0;
    return `<li class="cp" data-evse="${esc(c.evse_uid)}">
      <span class="name">${esc(c.evse_uid)} <span class="badge ${esc(c.status.toLowerCase())}">${esc(c.status.toLowerCase())}</span></span>
      <span class="power"><b data-field="power">${esc(kw(c.power_w))}</b> / ${esc(kw(c.rated_power_w))}</span>
      <div class="bar ${s > 100 ? 'over' : ''}" role="meter" aria-label="${esc(c.evse_uid)} power against rated power" aria-valuemin="0" aria-valuemax="${rated / 1000}" aria-valuenow="${p / 1000}" aria-valuetext="${esc(kw(p))} of ${esc(kw(rated))}"><span style="width:${Math.min(100, s)}%"></span></div>
      <span class="session">${c.session_id ? `Session <code>${esc(c.session_id)}</code>` : 'No session'}</span>
      ${c.over_limit_since ? `<span class="badge over" data-field="over-limit" title="Draws clearly more than its profile allows; planned at its measured draw">over its limit since ${esc(clock(c.over_limit_since))}</span>` : ''}
      ${c.observed_max_w != null ? `<span class="muted" data-field="observed-max" title="Drew clearly less than allowed (tapering, full, or a lower vehicle maximum): planned at no more than this">takes at most ${esc(kw(c.observed_max_w))}</span>` : ''}
      ${c.profile ? `<span class="profile" data-field="profile" title="${esc(c.profile.reason ?? '')}">Profile ${esc(kw(c.profile.limit_w))}: ${esc(PROFILE_STATES[c.profile.status] ?? c.profile.status)}${c.profile.reason ? ` (${esc(c.profile.reason)})` : ''}, ${esc(clock(c.profile.updated_at))}</span>` : ''}
    </li>`;
  }).join('') || '<li class="muted">No charge points in this group.</li>';

  const series = loadSeries(g);
  state.loadSeries[g.group_id] = series;
  try {
    drawLoadChart(/** @type {HTMLCanvasElement} */ ($('.load-chart', card)), g, series);
    drawHeatmap(card, g);
  } catch (e) {
    $('.hashes', card).innerHTML = notice('error', 'Charts unavailable', esc(e.message));
    return;
  }
  const sch = g.schedule;
  $('.hashes', card).innerHTML = sch
    ? `<span>Plan from ${esc(dateTime(sch.start))} (timestep ${sch.timestep}, solver <span class="badge ${esc(String(sch.status).toLowerCase())}">${esc(String(sch.status).toLowerCase())}</span>)</span>
       <span>Inputs hash <code title="${esc(sch.inputs_hash)}">${esc(shortHex(sch.inputs_hash))}</code> · Schedule hash <code title="${esc(sch.schedule_hash)}">${esc(shortHex(sch.schedule_hash))}</code></span>`
    : '<span>No plan yet: the next 15-minute tick computes one.</span>';
}

/**
 * The load chart's series: past ticks from the load history, then the latest plan.
 * @param {any} g A `CockpitGroup`.
 * @returns {LoadSeries}
 */
export function loadSeries(g) {
  /** @type {Map<number, {capacity: number|null, planned: number|null, actual: number|null, pv: number|null}>} */
  const byStep = new Map();
  for (const h of g.load_history ?? []) {
    byStep.set(h.timestep, { capacity: h.capacity_w, planned: h.planned_load_w, actual: h.measured_load_w, pv: h.pv_w });
  }
  const sch = g.schedule;
  let stepS = 900;
  let nowStep = Math.floor(Date.now() / 1000 / stepS);
  if (sch) {
    stepS = sch.time_step_s;
    nowStep = sch.timestep;
    const imp = Array.isArray(sch.grid_import_w) ? sch.grid_import_w : [];
    imp.forEach((w, i) => {
      const t = sch.timestep + i;
      const prev = byStep.get(t);
      byStep.set(t, {
        capacity: sch.capacity_w?.[i] ?? prev?.capacity ?? g.capacity_w,
        planned: w,
        actual: prev?.actual ?? null,
        pv: sch.pv_w?.[i] ?? prev?.pv ?? null,
      });
    });
  }
  const timesteps = [...byStep.keys()].sort((a, b) => a - b);
  const k = (/** @type {number|null|undefined} */ w) => (w === null || w === undefined ? null : w / 1000);
  const rows = timesteps.map((t) => byStep.get(t));
  return {
    timesteps,
    labels: timesteps.map((t) => new Date(t * stepS * 1000).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })),
    capacity_kw: rows.map((r) => k(r?.capacity)),
    planned_kw: rows.map((r) => k(r?.planned)),
    actual_kw: rows.map((r) => k(r?.actual)),
    pv_kw: rows.map((r) => k(r?.pv)),
    now_index: Math.max(0, timesteps.indexOf(nowStep)),
  };
}

function drawLoadChart(/** @type {HTMLCanvasElement} */ canvas, /** @type {any} */ g, /** @type {LoadSeries} */ s) {
  const peak = Math.max(0, ...s.planned_kw.map((v) => v ?? 0));
  canvas.setAttribute('aria-label', `${g.name}: planned grid import (peak ${peak.toFixed(1)} kW) against capacity ${kw(g.capacity_w)}, 15-minute steps.`);
  const hasPv = s.pv_kw.some((v) => (v ?? 0) > 0);
  const datasets = [
    { label: 'Capacity (kW)', data: s.capacity_kw, borderColor: colors.capacity, borderDash: [6, 4], borderWidth: 2, pointRadius: 0, stepped: 'before', fill: false },
    { label: 'Planned grid import (kW)', data: s.planned_kw, borderColor: colors.planned, backgroundColor: 'rgba(31, 95, 168, .12)', borderWidth: 2, pointRadius: 0, stepped: 'before', fill: 'origin' },
    { label: 'Measured EV load (kW)', data: s.actual_kw, borderColor: colors.actual, backgroundColor: colors.actual, borderWidth: 2, pointRadius: 2, spanGaps: false },
  ];
  if (hasPv) datasets.push({ label: 'PV (kW)', data: s.pv_kw, borderColor: colors.pv, backgroundColor: 'rgba(224, 161, 0, .15)', borderWidth: 1.5, pointRadius: 0, fill: 'origin' });
  upsertChart(canvas, {
    type: 'line',
    data: { labels: s.labels, datasets },
    options: {
      interaction: { mode: 'index', intersect: false },
      plugins: {
        legend: { position: 'bottom', labels: { boxWidth: 14 } },
        tooltip: { callbacks: { label: (c) => `${c.dataset.label.replace(' (kW)', '')}: ${c.parsed.y === null ? '–' : c.parsed.y.toFixed(1)} kW` } },
      },
      scales: {
        y: { beginAtZero: true, title: { display: true, text: 'Power (kW)' } },
        x: { title: { display: true, text: 'Time (15-minute steps)' }, ticks: { maxRotation: 0, autoSkipPadding: 16 } },
      },
    },
  });
}

/**
 * Draws the schedule heatmap: one row per vehicle, one column per 15-minute step, colour = kW.
 * @param {HTMLElement} card
 * @param {any} g A `CockpitGroup`.
 */
function drawHeatmap(card, g) {
  const canvas = /** @type {HTMLCanvasElement} */ ($('.heat-chart', card));
  const sch = g.schedule;
  const ids = Array.isArray(sch?.vehicle_ids) ? sch.vehicle_ids : [];
  const rows = Array.isArray(sch?.power_w) ? sch.power_w : [];
  const empty = ids.length === 0;
  $('.heat-empty', card).hidden = !empty;
  $('.chart-box.heat', card).hidden = empty;
  $('.legend-scale', card).hidden = empty;
  if (empty) return;
  const steps = Math.max(...rows.map((r) => r.length));
  const labels = stepLabels(sch.start, sch.time_step_s, steps);
  const names = ids.map((/** @type {string} */ id) => id.split('*').pop());
  const maxKw = Math.max(0.001, ...rows.flat().map((w) => w / 1000));
  $('.heat-max', card).textContent = kw(maxKw * 1000);
  $('.ramp', card).style.background = gnbuGradient();
  $('.chart-box.heat', card).style.height = `${Math.max(10, 4 + ids.length * 1.6)}rem`;
  canvas.setAttribute('aria-label', `Schedule heatmap of ${g.name}: ${ids.length} vehicles × ${steps} steps of 15 minutes, up to ${kw(maxKw * 1000)}.`);
  chartLib();
  upsertChart(canvas, heatmapConfig({ label: 'Planned power (kW)', names, labels, rows }));
}

// ---------------------------------------------------------------- billing and audit

async function loadAudit() {
  const auth = state.header ?? undefined;
  const commits = $('#commits');
  try {
    const rows = await api('/api/v1/audit/commits', { auth });
    renderCommits(Array.isArray(rows) ? rows : rows?.commits ?? []);
  } catch (e) {
    commits.innerHTML = (e instanceof ApiError && e.unavailable ? unavailable(e, 'On-chain schedule commits', 'The latest plans and their hashes, which will be committed, are below.') : notice('error', 'Could not load commits', esc(e.message)))
      + localPlans();
  }
  const settlements = $('#settlements');
  try {
    const rows = await api('/api/v1/cockpit/settlements', { auth });
    renderSettlements(Array.isArray(rows) ? rows : rows?.settlements ?? []);
  } catch (e) {
    settlements.innerHTML = e instanceof ApiError && e.unavailable
      ? unavailable(e, 'On-chain settlements', 'Each finished session will be settled on chain (energy cost and FLEX rewards) and listed here.')
      : notice('error', 'Could not load settlements', esc(e.message));
  }
}

function unavailable(/** @type {ApiError} */ e, /** @type {string} */ what, /** @type {string} */ more = '') {
  return e.kind === 'chain_unavailable'
    ? notice('warn', 'Chain unavailable', `${esc(what)} cannot be read from the chain right now. Retrying every 30 s.`)
    : notice('unavailable', `${what}: not available yet`, `This server does not write to the chain yet.${more ? ` ${esc(more)}` : ''}`);
}

/** The latest plan of each group with its hashes (local data, shown until commits exist). */
function localPlans() {
  const rows = state.groups.filter((g) => g.schedule);
  if (rows.length === 0) return '';
  return `<div class="table-wrap"><table><caption class="visually-hidden">Latest plans</caption>
    <thead><tr><th>Group</th><th>Timestep</th><th>Start</th><th>Inputs hash</th><th>Schedule hash</th></tr></thead><tbody>
    ${rows.map((g) => `<tr><td>${esc(g.name)}</td><td class="num">${g.schedule.timestep}</td><td>${esc(clock(g.schedule.start))}</td>
      <td><code title="${esc(g.schedule.inputs_hash)}">${esc(shortHex(g.schedule.inputs_hash))}</code></td>
      <td><code title="${esc(g.schedule.schedule_hash)}">${esc(shortHex(g.schedule.schedule_hash))}</code></td></tr>`).join('')}
    </tbody></table></div>`;
}

function renderCommits(/** @type {any[]} */ rows) {
  const box = $('#commits');
  if (rows.length === 0) {
    box.innerHTML = '<p class="muted">No commits yet.</p>';
    return;
  }
  box.innerHTML = `<div class="table-wrap"><table><caption class="visually-hidden">Schedule commits</caption>
    <thead><tr><th>Group</th><th>Timestep</th><th>Schedule hash</th><th>Transaction</th><th>Status</th><th>Verification</th></tr></thead><tbody>
    ${rows.map((r) => `<tr data-group="${esc(r.group_id)}" data-timestep="${esc(r.timestep)}" data-revision="${esc(r.revision ?? 0)}"><td>${esc(r.group_id)}</td><td class="num">${esc(r.timestep)}${r.revision ? ` <small title="event re-plan ${esc(r.revision)} of the timestep">r${esc(r.revision)}</small>` : ''}</td>
      <td><code title="${esc(r.schedule_hash)}">${esc(shortHex(r.schedule_hash))}</code></td>
      <td>${r.tx_hash ? `<a href="/api/v1/audit/transactions/${encodeURIComponent(r.tx_hash)}" rel="noopener" title="${esc(r.tx_hash)}"><code>${esc(shortHex(r.tx_hash))}</code></a>` : '–'}</td>
      <td><span class="badge ${esc(String(r.status ?? '').toLowerCase())}">${esc(r.status ?? 'queued')}</span></td>
      <td class="verdict"><button type="button" class="secondary verify" aria-label="Verify group ${esc(r.group_id)} timestep ${esc(r.timestep)}${r.revision ? ` revision ${esc(r.revision)}` : ''}">Verify</button>
        <span class="result" role="status">${verdictHtml(state.verified.get(commitKey(r)))}</span></td></tr>`).join('')}
    </tbody></table></div>`;
  box.querySelectorAll('button.verify').forEach((b, i) => b.addEventListener('click', () => verify(/** @type {HTMLButtonElement} */ (b), rows[i])));
}

/** A commit's `group:timestep:revision` (revision 0: the tick's; 1, 2, …: the event re-plans). */
function commitKey(/** @type {any} */ r) {
  return `${r.group_id}:${r.timestep}:${r.revision ?? 0}`;
}

/**
 * A verification result as badges: overall verdict, then each check.
 * @param {any} r The answer of `GET /api/v1/audit/groups/{g}/timesteps/{t}/verify`, or an `{error}`.
 * @returns {string}
 */
function verdictHtml(r) {
  if (!r) return '';
  if (r.error) return `<span class="badge failed">not verified</span> <small>${esc(r.error)}</small>`;
  const check = (/** @type {boolean|null|undefined} */ v, /** @type {string} */ yes, /** @type {string} */ no) =>
    (v === null || v === undefined ? '' : `<span class="check ${v ? 'pass' : 'fail'}">${esc(v ? yes : no)}</span>`);
  const checks = [
    check(r.inputs_hash_ok, 'inputs hash OK', 'inputs hash differs'),
    check(r.schedule_hash_ok, 'schedule hash OK', 'schedule hash differs'),
    check(r.on_chain, 'on chain', 'not on chain'),
    check(r.feasible, 'feasible', 'infeasible'),
    check(r.optimal, 'optimal', 'not optimal'),
  ].filter(Boolean).join(' ');
  return `<span class="badge ${r.ok ? 'verified' : 'mismatch'}" data-verdict="${r.ok ? 'ok' : 'failed'}">${r.ok ? 'OK' : 'failed'}</span> <small class="checks" title="${esc(r.message ?? '')}">${checks}</small>`;
}

async function verify(/** @type {HTMLButtonElement} */ button, /** @type {any} */ row) {
  const cell = /** @type {HTMLElement} */ (button.closest('tr')?.querySelector('.verdict .result'));
  const key = commitKey(row);
  const revision = row.revision ?? 0;
  button.disabled = true;
  cell.innerHTML = '<span class="badge">verifying…</span>';
  try {
    const r = await api(`/api/v1/audit/groups/${encodeURIComponent(row.group_id)}/timesteps/${encodeURIComponent(row.timestep)}/verify?revision=${encodeURIComponent(revision)}`, { auth: state.header ?? undefined });
    state.verified.set(key, r);
  } catch (e) {
    state.verified.set(key, { error: e.message });
  } finally {
    // The table may have been redrawn meanwhile: write into the current row.
    const current = document.querySelector(`#commits tr[data-group="${CSS.escape(String(row.group_id))}"][data-timestep="${CSS.escape(String(row.timestep))}"][data-revision="${CSS.escape(String(revision))}"] .verdict .result`);
    (current ?? cell).innerHTML = verdictHtml(state.verified.get(key));
    button.disabled = false;
  }
}

/** Where a bill's price came from (`price_source`), as the settlement list names it. */
const PRICE_SOURCES = /** @type {Record<string, string>} */ ({
  cdr_total_cost: 'CDR total',
  tariff: 'tariff',
  flat: 'flat rate',
});

function renderSettlements(/** @type {any[]} */ rows) {
  const box = $('#settlements');
  if (rows.length === 0) {
    box.innerHTML = '<p class="muted">No settlements yet.</p>';
    return;
  }
  box.innerHTML = `<div class="table-wrap"><table><caption class="visually-hidden">Settlements</caption>
    <thead><tr><th>Session</th><th class="num">Energy</th><th class="num">Cost</th><th>Priced by</th><th class="num">FLEX</th><th>Transaction</th></tr></thead><tbody>
    ${rows.map((r) => `<tr><td><code>${esc(r.session_id)}</code></td><td class="num">${esc(kwh(r.energy_kwh))}</td>
      <td class="num">${esc(r.cost_micro_eur !== undefined ? eur(r.cost_micro_eur) : eur(r.cost_eur, { fromEuros: true }))}</td>
      <td>${esc(PRICE_SOURCES[r.price_source] ?? r.price_source ?? '–')}</td>
      <td class="num">${esc(tokenAmount(r.flex_earned, 'FLEX'))}</td>
      <td>${r.tx_hash ? `<a href="${esc(r.tx_url ?? `/api/v1/audit/transactions/${encodeURIComponent(r.tx_hash)}`)}" rel="noopener" title="${esc(r.tx_hash)}">${esc(shortHex(r.tx_hash))}</a>` : esc(r.status_reason ? `${r.status ?? ''}: ${r.status_reason}` : (r.status ?? '–'))}</td></tr>`).join('')}
    </tbody></table></div>`;
}

// ---------------------------------------------------------------- start

async function main() {
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = /** @type {HTMLInputElement} */ ($('#cpo-token')).value.trim();
    if (t) signIn(t);
  });
  $('#signout').addEventListener('click', signOut);
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromUrl) history.replaceState(null, '', location.pathname);
  const saved = fromUrl ?? localStorage.getItem(TOKEN_KEY);
  if (saved) await signIn(saved, true);
  else showSignIn();
  document.body.dataset.ready = 'true';
}

main();
