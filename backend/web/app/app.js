// The EV user app: sign in or register, smart-charging consent, charging requests with the
// guaranteed-energy offer, a live view of the session, history and the e-wallet.
//
// State lives in the server; the page keeps only the bearer token (localStorage) and refetches
// `/api/v1/users/me/status` when the server's event stream says something changed (a tick, a
// meter value or session update at one of the user's charge points); it polls every few seconds
// only when server-sent events fail (see backend/web/README.md).

import { api, ApiError, coalesced, live, offeredOperations } from '/shared/api.js';
import { clock, dateTime, esc, eur, kw, kwh, pct, shortHex, token as tokenAmount, until } from '/shared/format.js';
import { colors, upsertChart } from '/shared/charts.js';
import { $, notice, setLive, showBanner } from '/shared/page.js';

const POLL_MS = 3000;
const TOKEN_KEY = 'evflex.userToken';
const ADDRESS_KEY = 'evflex.walletAddress';
const OPEN = new Set(['ACTIVE', 'PENDING']);

/** @type {{token: string|null, user: any, status: any[], ops: Set<string>, stopPolling: (() => void)|null, lastUpdate: Date|null, transport: () => string, refreshes: number, eventLog: string[]}} */
const state = { token: null, user: null, status: [], ops: new Set(), stopPolling: null, lastUpdate: null, transport: () => 'none', refreshes: 0, eventLog: [] };

// For browser tests and debugging: the data the page shows.
/** @type {any} */ (window).evflexApp = state;

const auth = () => (state.token ? `Bearer ${state.token}` : undefined);

// ---------------------------------------------------------------- routing

const VIEWS = ['charge', 'history', 'wallet', 'profile'];

function route() {
  const signedIn = Boolean(state.user);
  $('#tabs').hidden = !signedIn;
  $('#view-signin').hidden = signedIn;
  const wanted = location.hash.slice(1);
  const view = VIEWS.includes(wanted) ? wanted : 'charge';
  for (const v of VIEWS) $(`#view-${v}`).hidden = !signedIn || v !== view;
  for (const a of document.querySelectorAll('#tabs a')) {
    if (a.getAttribute('data-tab') === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!signedIn) return;
  if (view === 'history') loadHistory();
  if (view === 'wallet') loadWallet();
  if (view === 'profile') renderProfile();
}

function goto(/** @type {string} */ view) {
  if (location.hash === `#${view}`) route();
  else location.hash = view;
  $('#main').focus({ preventScroll: true });
}

// ---------------------------------------------------------------- notices

/** The notice for an unavailable chain feature. */
function unavailableNotice(/** @type {ApiError} */ e, /** @type {string} */ what) {
  if (e.kind === 'chain_unavailable') return notice('warn', 'Chain unavailable', `${esc(what)} cannot be read from the blockchain right now. Try again in a moment.`);
  return notice('unavailable', `${what}: not available yet`, 'This server does not offer on-chain billing yet. It appears here as soon as it does.');
}

// ---------------------------------------------------------------- sign in

async function loadMe() {
  try {
    state.user = await api('/api/v1/users/me', { auth: auth() });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut();
      return;
    }
    throw e;
  }
}

function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(ADDRESS_KEY);
  state.token = null;
  state.user = null;
  state.status = [];
  if (state.stopPolling) state.stopPolling();
  state.stopPolling = null;
  setLive('idle', 'Signed out');
  route();
}

async function signedIn(/** @type {string} */ token) {
  state.token = token;
  localStorage.setItem(TOKEN_KEY, token);
  await loadMe();
  if (!state.user) return;
  startPolling();
  if (!location.hash) location.hash = 'charge';
  route();
}

function bindSignIn() {
  const form = /** @type {HTMLFormElement} */ ($('#register-form'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const msg = $('#register-msg');
    const name = /** @type {HTMLInputElement} */ ($('#reg-name'));
    if (!name.value.trim()) {
      name.setAttribute('aria-invalid', 'true');
      msg.innerHTML = notice('error', 'Please enter your name.');
      name.focus();
      return;
    }
    name.removeAttribute('aria-invalid');
    msg.innerHTML = '';
    try {
      const r = await api('/api/v1/users', {
        body: { name: name.value.trim(), opted_in: /** @type {HTMLInputElement} */ ($('#reg-optin')).checked },
      });
      localStorage.removeItem(ADDRESS_KEY);
      await signedIn(r.token);
    } catch (e) {
      msg.innerHTML = notice('error', 'Registration failed', esc(e.message));
    }
  });

  $('#token-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = /** @type {HTMLInputElement} */ ($('#token-input')).value.trim();
    if (!t) return;
    localStorage.removeItem(ADDRESS_KEY);
    await signedIn(t);
    if (!state.user) $('#register-msg').innerHTML = notice('error', 'That access token is not valid.');
  });

  // Wallet sign-in (Sign-In with Ethereum style), offered once the server has the endpoints.
  if (state.ops.has('POST /api/v1/auth/challenge')) {
    $('#wallet-signin').hidden = false;
    $('#wallet-signin-button').addEventListener('click', walletSignIn);
  }
}

async function walletSignIn() {
  const msg = $('#wallet-signin-msg');
  const eth = /** @type {any} */ (window).ethereum;
  if (!eth) {
    msg.innerHTML = notice('warn', 'No browser wallet found', 'Install a wallet extension, or create an account below.');
    return;
  }
  try {
    msg.textContent = 'Waiting for your wallet…';
    const [address] = await eth.request({ method: 'eth_requestAccounts' });
    const challenge = await api('/api/v1/auth/challenge', { body: { address } });
    const signature = await eth.request({ method: 'personal_sign', params: [challenge.message, address] });
    const r = await api('/api/v1/auth/verify', { body: { message: challenge.message, signature } });
    msg.textContent = '';
    localStorage.setItem(ADDRESS_KEY, r.address ?? address);
    await signedIn(r.token);
  } catch (e) {
    msg.innerHTML = notice('error', 'Wallet sign-in failed', esc(e.message ?? String(e)));
  }
}

// ---------------------------------------------------------------- live status

/** Live updates: server-sent events, or polling when they fail. */
function startPolling() {
  if (state.stopPolling) state.stopPolling();
  const soon = coalesced(refreshStatus, 300);
  const updates = live({
    refreshAll: async () => soon(),
    pollMs: POLL_MS,
    onEvent: (name, data) => {
      state.eventLog.push(name);
      if (state.eventLog.length > 100) state.eventLog.shift();
      // A session update may be a new session of this user's token, at any charge point; the
      // public stream names only groups, so meter values count where one of ours is.
      const mine = name !== 'meter' || data.source === 'session'
        || state.status.some((s) => (s.group_id ?? null) === (data.group_id ?? null));
      if (mine) soon();
    },
  });
  state.stopPolling = updates.stop;
  state.transport = updates.transport;
  soon();
}

async function refreshStatus() {
  state.refreshes += 1;
  try {
    state.status = await api('/api/v1/users/me/status', { auth: auth() });
    state.lastUpdate = new Date();
    showBanner(null);
    setLive('live', `Live · ${state.lastUpdate.toLocaleTimeString()}`);
    renderSessions();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut();
      return;
    }
    setLive('down', 'Reconnecting…');
    showBanner(e.message);
  }
}

function renderSessions() {
  const box = $('#sessions');
  const open = state.status.filter((s) => OPEN.has(s.status));
  $('#optin-nudge').hidden = Boolean(state.user?.opted_in);
  $('#request-card').hidden = !state.user?.opted_in;
  fillSessionChoice();
  if (open.length === 0) {
    box.innerHTML = `<div class="card" id="no-session"><h2>No active charging session</h2>
      <p class="muted">Plug in and start charging with your evflex token (<code>${esc(state.user?.token_uid ?? '')}</code>), then ask for the energy you need below.</p></div>`;
    return;
  }
  box.querySelector('#no-session')?.remove();
  const seen = new Set();
  for (const s of open) {
    seen.add(s.session_id);
    let card = /** @type {HTMLElement|null} */ (box.querySelector(`[data-session="${CSS.escape(s.session_id)}"]`));
    if (!card) {
      card = document.createElement('article');
      card.className = 'card session';
      card.dataset.session = s.session_id;
      card.setAttribute('aria-labelledby', `s-${s.session_id}`);
      card.innerHTML = `<header><h2 id="s-${esc(s.session_id)}"></h2><span class="badge"></span></header>
        <div class="soc-block"></div>
        <dl class="stats"></dl>
        <div class="energy-progress"></div>
        <div class="guarantee"></div>
        <h3>Planned charging power</h3>
        <div class="chart-box"><canvas role="img"></canvas></div>
        <p class="muted profile-empty" hidden>No plan yet: the next planning round (every 15 minutes) sets it.</p>`;
      box.append(card);
    }
    updateSessionCard(card, s);
  }
  for (const el of box.querySelectorAll('[data-session]')) {
    if (!seen.has(/** @type {HTMLElement} */ (el).dataset.session)) el.remove();
  }
}

/**
 * Fills a live session card with the latest status (in place, so the chart stays steady).
 * @param {HTMLElement} card
 * @param {any} s A `SessionStatus`.
 */
function updateSessionCard(card, s) {
  $('h2', card).textContent = `Charging at ${s.evse_uid}`;
  const badge = $('.badge', card);
  badge.textContent = s.status === 'ACTIVE' ? (s.power_w > 0 ? 'Charging' : 'Plugged in') : s.status.toLowerCase();
  badge.className = `badge ${s.status === 'ACTIVE' ? 'charging' : s.status.toLowerCase()}`;

  const soc = s.soc_percent;
  $('.soc-block', card).innerHTML = soc === null || soc === undefined
    ? '<p class="muted">Battery level: not reported by this charge point.</p>'
    : `<div class="soc"><span class="value" data-field="soc">${esc(pct(soc))}</span><span class="muted">battery</span></div>
       <div class="bar big" role="progressbar" aria-label="Battery level" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${Math.round(soc)}"><span style="width:${Math.min(100, soc)}%"></span></div>`;

  const requested = s.requested_kwh;
  $('.stats', card).innerHTML = `
    <div class="stat"><dt>Energy added</dt><dd data-field="energy">${esc(kwh(s.energy_added_kwh))}</dd></div>
    <div class="stat"><dt>Power now</dt><dd data-field="power">${esc(kw(s.power_w))}</dd></div>
    <div class="stat"><dt>Departure</dt><dd data-field="departure">${s.departure ? `${esc(clock(s.departure))} <small class="block">${esc(until(s.departure))}</small>` : '–'}</dd></div>
    <div class="stat"><dt>Expected by departure</dt><dd data-field="expected">${esc(kwh(s.expected_energy_kwh))}</dd></div>`;

  const prog = $('.energy-progress', card);
  if (requested) {
    const share = Math.min(100, (100 * s.energy_added_kwh) / requested);
    prog.innerHTML = `<p class="muted"><small>${esc(kwh(s.energy_added_kwh))} of ${esc(kwh(requested))} requested</small></p>
      <div class="bar" role="progressbar" aria-label="Energy delivered of the request" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${Math.round(share)}"><span style="width:${share}%"></span></div>`;
  } else {
    prog.innerHTML = '';
  }

  const g = $('.guarantee', card);
  if (requested && s.warning) {
    // The plan cannot meet the guarantee any more (the car draws less than it needs, or the
    // group lost capacity): say so as soon as the re-plan shows it.
    g.innerHTML = notice('warn', `${kwh(s.shortfall_kwh)} short by ${clock(s.departure)}`, esc(s.warning));
  } else if (requested && (s.expected_energy_kwh === null || s.expected_energy_kwh === undefined)) {
    g.innerHTML = notice('ok', 'On track', `${esc(kwh(requested))} guaranteed by ${esc(clock(s.departure))}. Your charging plan appears at the next planning round (every 15 minutes).`);
  } else if (requested) {
    g.innerHTML = s.expected_energy_kwh + 0.05 >= requested
      ? notice('ok', 'On track', `${esc(kwh(requested))} guaranteed by ${esc(clock(s.departure))}.`)
      // An accepted request is guaranteed by admission control, so a plan below it predates it.
      : notice('info', `Guaranteed: ${kwh(requested)} by ${clock(s.departure)}`, `The plan below was made before your latest request and shows ${esc(kwh(s.expected_energy_kwh))}; the next planning round (within 15 minutes) includes your request.`);
  } else {
    g.innerHTML = state.user?.opted_in
      ? notice('info', 'No request yet', 'Tell us how much energy you need and when you leave (below).')
      : '';
  }

  const depMs = s.departure ? new Date(s.departure).getTime() : Infinity;
  const steps = (s.planned_profile ?? []).filter((p) => new Date(p.start).getTime() < depMs).slice(0, 96);
  const canvas = /** @type {HTMLCanvasElement} */ ($('canvas', card));
  $('.profile-empty', card).hidden = steps.length > 0;
  $('.chart-box', card).hidden = steps.length === 0;
  if (steps.length === 0) return;
  const data = steps.map((p) => p.power_w / 1000);
  canvas.setAttribute('aria-label', `Planned charging power until departure, 15-minute steps, peak ${kw(Math.max(...data) * 1000)}.`);
  try {
    upsertChart(canvas, {
      type: 'bar',
      data: {
        labels: steps.map((p) => clock(p.start)),
        datasets: [{ label: 'Planned power (kW)', data, backgroundColor: colors.profile, barPercentage: 1, categoryPercentage: 0.9 }],
      },
      options: {
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => `${c.parsed.y.toFixed(1)} kW` } } },
        scales: {
          y: { beginAtZero: true, title: { display: true, text: 'kW' } },
          x: { title: { display: true, text: 'Time (15-minute steps)' }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
        },
      },
    });
  } catch (e) {
    $('.profile-empty', card).hidden = false;
    $('.profile-empty', card).textContent = e.message;
  }
}

// ---------------------------------------------------------------- requests

/** Clock time of `t`, with the day when it is not today. */
function when(/** @type {string} */ t) {
  return new Date(t).toDateString() === new Date().toDateString() ? clock(t) : dateTime(t);
}

function defaultDeparture() {
  const d = new Date(Date.now() + 4 * 3600_000);
  d.setMinutes(Math.ceil(d.getMinutes() / 15) * 15, 0, 0);
  return d;
}

/** Offers the user's open sessions in the request form (the newest first, kept if chosen). */
function fillSessionChoice() {
  const select = /** @type {HTMLSelectElement} */ ($('#req-session'));
  const open = state.status.filter((s) => OPEN.has(s.status));
  const chosen = select.value;
  select.innerHTML = open.length
    ? open.map((s) => `<option value="${esc(s.session_id)}">Charge point ${esc(s.evse_uid)}</option>`).join('')
    : '<option value="">No open session</option>';
  if (open.some((s) => s.session_id === chosen)) select.value = chosen;
}

/** `datetime-local` value of a Date, in local time. */
function localInput(/** @type {Date} */ d) {
  const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function bindRequestForm() {
  const form = /** @type {HTMLFormElement} */ ($('#request-form'));
  const departure = /** @type {HTMLInputElement} */ ($('#req-departure'));
  departure.value = localInput(defaultDeparture());
  for (const radio of form.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener('change', () => {
      const mode = /** @type {HTMLInputElement} */ (form.querySelector('input[name="mode"]:checked')).value;
      for (const el of form.querySelectorAll('[data-mode]')) /** @type {HTMLElement} */ (el).hidden = el.getAttribute('data-mode') !== mode;
    });
  }
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    submitRequest();
  });
}

/**
 * Reads and checks the request form; marks invalid fields.
 * @returns {{body: any, error: string|null, field: HTMLInputElement|null}}
 */
function readRequestForm() {
  const form = /** @type {HTMLFormElement} */ ($('#request-form'));
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const val = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ ($(id));
  const fail = (/** @type {HTMLInputElement} */ field, /** @type {string} */ error) => {
    field.setAttribute('aria-invalid', 'true');
    return { body: null, error, field };
  };
  const session = /** @type {HTMLSelectElement} */ ($('#req-session'));
  if (!session.value) return fail(/** @type {any} */ (session), 'No open charging session yet: start charging with your evflex token first.');
  const dep = val('#req-departure');
  const depDate = new Date(dep.value);
  if (!dep.value || Number.isNaN(depDate.getTime())) return fail(dep, 'Choose your departure time.');
  if (depDate.getTime() <= Date.now() + 5 * 60_000) return fail(dep, 'Departure must be at least a few minutes from now.');
  /** @type {any} */
  const body = { session_id: session.value, departure: depDate.toISOString().replace(/\.\d{3}Z$/, 'Z') };
  const mode = /** @type {HTMLInputElement} */ (form.querySelector('input[name="mode"]:checked')).value;
  if (mode === 'energy') {
    const e = val('#req-energy');
    const v = Number(e.value);
    if (!(v > 0)) return fail(e, 'Enter the energy to add, in kWh (more than 0).');
    body.energy_kwh = v;
  } else {
    const t = val('#req-target');
    const b = val('#req-battery');
    const c = val('#req-current');
    if (!(Number(t.value) > 0 && Number(t.value) <= 100)) return fail(t, 'Target level: 1 to 100 %.');
    if (!(Number(b.value) > 0)) return fail(b, 'Enter the battery size in kWh.');
    body.target_soc_percent = Number(t.value);
    body.battery_capacity_kwh = Number(b.value);
    if (c.value !== '') {
      if (!(Number(c.value) >= 0 && Number(c.value) < 100)) return fail(c, 'Battery level now: 0 to 99 %.');
      body.current_soc_percent = Number(c.value);
    }
  }
  return { body, error: null, field: null };
}

async function submitRequest(/** @type {any} */ override = null) {
  const out = $('#request-result');
  const { body, error, field } = override ? { body: override, error: null, field: null } : readRequestForm();
  if (error) {
    out.innerHTML = notice('error', error);
    field?.focus();
    return;
  }
  out.innerHTML = '<p class="muted" role="status">Checking what the site can guarantee…</p>';
  try {
    const r = await api('/api/v1/requests', { body, auth: auth() });
    showDecision(r, body);
  } catch (e) {
    out.innerHTML = requestError(e, body);
    out.querySelector('[data-goto]')?.addEventListener('click', () => goto('profile'));
  }
}

/** An error of a request, in words for the user. */
function requestError(/** @type {ApiError} */ e, /** @type {any} */ body) {
  if (e.kind === 'not_found') {
    return notice('error', 'Charging session not found', 'That session is not open any more, or it is not yours. Start charging with your evflex token, then try again.');
  }
  if (e.kind === 'conflict' && /opted/.test(e.message)) {
    return `${notice('error', 'Smart charging is off', 'Turn smart charging on to make a request with a departure time.')}<button type="button" class="secondary" data-goto="profile">Smart charging settings</button>`;
  }
  if (e.kind === 'conflict') return notice('error', 'Request rejected', esc(e.message));
  if (e.kind === 'bad_request') return notice('error', 'Please check your request', esc(e.message));
  return notice('error', 'Request failed', esc(e.message));
}

/**
 * Shows an admission decision: accepted, or rejected with the guaranteed energy and the
 * choices (accept that energy, change the departure).
 * @param {any} r A `RequestView`.
 * @param {any} body The request that was sent.
 */
function showDecision(r, body) {
  const out = $('#request-result');
  out.dataset.decision = r.decision;
  if (r.decision === 'accepted') {
    const more = r.energy_wanted_kwh > r.energy_kwh
      ? ` The rest of your <span data-field="wanted">${esc(kwh(r.energy_wanted_kwh))}</span> is charged wherever the site has room.`
      : '';
    out.innerHTML = notice('ok', 'Request accepted', `<span data-field="accepted">${esc(kwh(r.energy_kwh))} guaranteed by ${esc(dateTime(r.departure))}</span>.${more} You will see the plan above; it is updated every 15 minutes.`);
    refreshStatus();
    return;
  }
  const max = r.max_guaranteed_kwh ?? 0;
  let html = notice('warn', `We can't guarantee ${kwh(r.energy_kwh)} by ${when(r.departure)}`,
    max > 0
      ? `The site can guarantee <b data-field="guaranteed">${esc(kwh(max))}</b> by then. If you accept, the rest is charged wherever the site has room.`
      : 'Nothing can be guaranteed by then: the site is fully booked.');
  html += '<div class="actions">';
  if (max > 0) html += `<button type="button" id="accept-offer">Accept ${esc(kwh(max))}</button>`;
  if (r.earliest_full_departure) {
    html += `<button type="button" class="secondary" id="later-departure">Leave at ${esc(when(r.earliest_full_departure))} for the full ${esc(kwh(r.energy_kwh))}</button>`;
  }
  html += '<button type="button" class="secondary" id="change-departure">Change departure</button></div>';
  out.innerHTML = html;
  $('#accept-offer', out)?.addEventListener('click', async (ev) => {
    /** @type {HTMLButtonElement} */ (ev.currentTarget).disabled = true;
    try {
      showDecision(await api(`/api/v1/requests/${r.request_id}/accept-offer`, { method: 'POST', auth: auth() }), body);
    } catch (e) {
      out.innerHTML = requestError(e, body);
    }
  });
  $('#later-departure', out)?.addEventListener('click', () => {
    /** @type {HTMLInputElement} */ ($('#req-departure')).value = localInput(new Date(r.earliest_full_departure));
    submitRequest({ ...body, departure: r.earliest_full_departure });
  });
  $('#change-departure', out)?.addEventListener('click', () => {
    const dep = /** @type {HTMLInputElement} */ ($('#req-departure'));
    dep.focus();
    dep.scrollIntoView({ block: 'center' });
  });
}

// ---------------------------------------------------------------- history

async function loadHistory() {
  const list = $('#history-list');
  const note = $('#settlements-note');
  const past = state.status.filter((s) => !OPEN.has(s.status));
  /** @type {Map<string, any>} */
  const settled = new Map();
  try {
    const rows = await api('/api/v1/users/me/settlements', { auth: auth() });
    for (const row of Array.isArray(rows) ? rows : rows?.settlements ?? []) settled.set(row.session_id, row);
    note.innerHTML = '';
  } catch (e) {
    note.innerHTML = e instanceof ApiError && e.unavailable
      ? unavailableNotice(e, 'Costs, FLEX rewards and settlement transactions')
      : notice('error', 'Could not load your settlements', esc(e.message));
  }
  const ids = new Set(past.map((s) => s.session_id));
  for (const id of settled.keys()) if (!ids.has(id)) past.push({ session_id: id, evse_uid: settled.get(id).evse_uid ?? '', status: 'COMPLETED', energy_added_kwh: settled.get(id).energy_kwh });
  if (past.length === 0) {
    list.innerHTML = '<li class="muted">No finished sessions yet.</li>';
    return;
  }
  list.innerHTML = past.map((s) => {
    const st = settled.get(s.session_id);
    // A local chain has no block explorer: the link opens the transaction's receipt.
    const txUrl = st?.tx_url ?? (st?.tx_hash ? `/api/v1/audit/transactions/${encodeURIComponent(st.tx_hash)}` : null);
    const tx = st?.tx_hash
      ? `<a href="${esc(txUrl)}" rel="noopener" data-field="tx" title="Settlement transaction ${esc(st.tx_hash)}">${esc(shortHex(st.tx_hash))}</a>`
      : (st?.status ? `<small>${esc(st.status)}</small>` : '–');
    return `<li data-session="${esc(s.session_id)}"><div><b>${esc(s.evse_uid)}</b> <span class="badge">${esc(s.status.toLowerCase())}</span>
      ${st?.settled_at ? `<small class="muted">${esc(dateTime(st.settled_at))}</small>` : ''}</div>
      <dl class="stats">
        <div class="stat"><dt>Energy</dt><dd data-field="energy">${esc(kwh(st?.energy_kwh ?? s.energy_added_kwh))}</dd></div>
        <div class="stat"><dt>Cost</dt><dd data-field="cost">${st ? esc(st.cost_micro_eur !== undefined ? eur(st.cost_micro_eur) : eur(st.cost_eur, { fromEuros: true })) : '–'}</dd></div>
        <div class="stat"><dt>FLEX earned</dt><dd data-field="flex">${st ? esc(tokenAmount(st.flex_earned, 'FLEX')) : '–'}</dd></div>
        <div class="stat"><dt>Settlement</dt><dd class="mono">${tx}</dd></div>
      </dl></li>`;
  }).join('');
}

// ---------------------------------------------------------------- wallet

async function loadWallet() {
  const body = $('#wallet-body');
  $('#topup-card').hidden = false;
  $('#export-card').hidden = false;
  try {
    const w = await api('/api/v1/users/me/wallet', { auth: auth() });
    const balances = w.balances ?? w;
    body.innerHTML = `<p>Address <code data-field="address">${esc(w.address ?? '–')}</code></p>
      <dl class="stats">
        <div class="stat"><dt>Balance</dt><dd data-field="eur">${esc(balances.payment_token_micro !== undefined ? eur(balances.payment_token_micro) : tokenAmount(balances.payment_token ?? balances.eur, '€'))}</dd></div>
        <div class="stat"><dt>FLEX</dt><dd data-field="flex">${esc(tokenAmount(balances.flex, 'FLEX'))}</dd></div>
      </dl>`;
  } catch (e) {
    body.innerHTML = e instanceof ApiError && e.unavailable
      ? unavailableNotice(e, 'Your e-wallet')
      : notice('error', 'Could not load your wallet', esc(e.message));
  }
}

function bindWallet() {
  $('#topup-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const msg = $('#topup-msg');
    const amount = Number(/** @type {HTMLInputElement} */ ($('#topup-amount')).value);
    if (!(amount > 0)) {
      msg.innerHTML = notice('error', 'Enter an amount in euros.');
      return;
    }
    try {
      await api('/api/v1/users/me/wallet/top-up', { body: { amount_eur: amount }, auth: auth() });
      msg.innerHTML = notice('ok', `Topped up ${eur(amount, { fromEuros: true })}`);
      loadWallet();
    } catch (e) {
      msg.innerHTML = e instanceof ApiError && e.unavailable ? unavailableNotice(e, 'Top-up') : notice('error', 'Top-up failed', esc(e.message));
    }
  });
  $('#export-button').addEventListener('click', async () => {
    const msg = $('#export-msg');
    if (!confirm('Download your encrypted wallet key? Keep the file secret.')) return;
    // The key file is encrypted with a password of the user's choice (sent in the body, never in a URL).
    const password = prompt('Choose a password for the key file (at least 8 characters):');
    if (!password) return;
    try {
      const key = await api('/api/v1/users/me/wallet/export', { body: { password }, auth: auth() });
      const blob = new Blob([JSON.stringify(key, null, 2)], { type: 'application/json' });
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = `evflex-wallet-${state.user.user_id}.json`;
      a.click();
      URL.revokeObjectURL(a.href);
      msg.innerHTML = notice('ok', 'Key file downloaded');
    } catch (e) {
      msg.innerHTML = e instanceof ApiError && e.unavailable ? unavailableNotice(e, 'Key export') : notice('error', 'Export failed', esc(e.message));
    }
  });
}

// ---------------------------------------------------------------- profile

function renderProfile() {
  const u = state.user;
  const form = /** @type {HTMLFormElement} */ ($('#consent-form'));
  const radio = /** @type {HTMLInputElement} */ (form.querySelector(`input[value="${u.opted_in}"]`));
  radio.checked = true;
  $('#account').innerHTML = `
    <div class="stat"><dt>Name</dt><dd>${esc(u.name)}</dd></div>
    <div class="stat"><dt>User ID</dt><dd>${esc(u.user_id)}</dd></div>
    <div class="stat"><dt>Your evflex token</dt><dd><code data-field="token-uid">${esc(u.token_uid ?? '–')}</code></dd></div>
    ${localStorage.getItem(ADDRESS_KEY) ? `<div class="stat"><dt>Signed in with wallet</dt><dd><code data-field="signed-in-address">${esc(localStorage.getItem(ADDRESS_KEY))}</code></dd></div>` : ''}`;
}

function bindProfile() {
  $('#consent-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const msg = $('#consent-msg');
    const checked = /** @type {HTMLInputElement|null} */ ($('#consent-form').querySelector('input[name="opted_in"]:checked'));
    if (!checked) return;
    const optedIn = checked.value === 'true';
    try {
      const r = await api('/api/v1/users/me/smart-charging', { method: 'PUT', body: { opted_in: optedIn }, auth: auth() });
      state.user.opted_in = r.opted_in;
      msg.innerHTML = notice('ok', r.opted_in ? 'Smart charging is on' : 'Smart charging is off',
        r.opted_in ? 'You can now make charging requests with a departure time.' : 'Your car charges at full power from plug-in.');
      renderSessions();
    } catch (e) {
      msg.innerHTML = notice('error', 'Could not save', esc(e.message));
    }
  });
  $('#signout').addEventListener('click', signOut);
}

// ---------------------------------------------------------------- start

async function main() {
  state.ops = await offeredOperations();
  bindSignIn();
  bindRequestForm();
  bindWallet();
  bindProfile();
  for (const b of document.querySelectorAll('[data-goto]')) b.addEventListener('click', () => goto(b.getAttribute('data-goto') ?? 'charge'));
  window.addEventListener('hashchange', route);
  const saved = localStorage.getItem(TOKEN_KEY);
  if (saved) {
    state.token = saved;
    try {
      await loadMe();
    } catch (e) {
      showBanner(e.message);
    }
    if (state.user) startPolling();
  }
  route();
  document.body.dataset.ready = 'true';
}

main();
