// HTTP client of the evflex JSON API, shared by the user app and the cockpit.
//
// Every failure becomes an `ApiError` whose `message` is fit to show a user: the server's own
// message for a rejected request, and plain words for "not available yet" (a route this
// server does not have, e.g. chain features before the chain service lands), "chain
// unavailable" (503) and "cannot reach the server" (network).

/** An API failure with a message for people. */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0: the server could not be reached).
   * @param {string} kind `not_available`, `chain_unavailable`, `network`, or the server's
   *   error kind (`bad_request`, `unauthorized`, `not_found`, `conflict`, `internal`).
   * @param {string} message What to tell the user.
   */
  constructor(status, kind, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.kind = kind;
  }

  /** True when the feature is missing on this server or its chain is down (not a user error). */
  get unavailable() {
    return this.kind === 'not_available' || this.kind === 'chain_unavailable';
  }
}

/**
 * Calls the API and returns the parsed JSON body (or `null` for an empty answer).
 *
 * @param {string} path Absolute path, e.g. `/api/v1/users/me`.
 * @param {object} [options]
 * @param {string} [options.method] HTTP method (default GET, or POST with a body).
 * @param {unknown} [options.body] JSON body.
 * @param {string} [options.auth] Full `Authorization` header value.
 * @param {AbortSignal} [options.signal] Cancels the call.
 * @returns {Promise<any>}
 * @throws {ApiError}
 */
export async function api(path, { method, body, auth, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth) headers.Authorization = auth;
  let response;
  try {
    response = await fetch(path, {
      method: method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Cannot reach the evflex server. Check your connection; retrying automatically.');
  }
  const text = await response.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (response.ok) return json;
  throw toError(response.status, json);
}

/**
 * Maps a failed response to an `ApiError`.
 *
 * @param {number} status
 * @param {any} json The parsed body, if it was JSON.
 * @returns {ApiError}
 */
export function toError(status, json) {
  const serverMessage = json && typeof json.message === 'string' ? json.message : null;
  const kind = json && typeof json.error === 'string' ? json.error : null;
  if ((status === 404 || status === 405) && !kind) {
    // The route itself does not exist: an API error always carries a JSON body.
    return new ApiError(status, 'not_available', 'Not available yet on this server.');
  }
  if (status === 503 || status === 502 || status === 504) {
    return new ApiError(status, 'chain_unavailable', serverMessage
      ? `Chain unavailable: ${serverMessage}`
      : 'The blockchain node is unavailable right now. Try again in a moment.');
  }
  if (status === 401) {
    return new ApiError(status, 'unauthorized', 'You are not signed in, or your sign-in expired.');
  }
  if (status >= 500) {
    return new ApiError(status, kind ?? 'internal', 'Something went wrong on the server. Try again in a moment.');
  }
  return new ApiError(status, kind ?? 'error', serverMessage ?? `Request failed (HTTP ${status}).`);
}

let openApiPaths = null;

/**
 * The operations the server documents in `/api/openapi.json`, as `"METHOD /path"` strings,
 * so a page can tell which features this server offers before calling them.
 *
 * @returns {Promise<Set<string>>}
 */
export async function offeredOperations() {
  if (!openApiPaths) {
    openApiPaths = api('/api/openapi.json').then((doc) => {
      const out = new Set();
      for (const [path, item] of Object.entries(doc?.paths ?? {})) {
        for (const method of Object.keys(item)) out.add(`${method.toUpperCase()} ${path}`);
      }
      return out;
    }).catch(() => {
      openApiPaths = null;
      return new Set();
    });
  }
  return openApiPaths;
}

/**
 * Runs `task` now and then every `ms` milliseconds while the page is visible, without
 * overlapping runs; returns a function that stops it.
 *
 * @param {() => Promise<void>} task
 * @param {number} ms
 * @returns {() => void}
 */
export function every(task, ms) {
  let timer = null;
  let running = false;
  let stopped = false;
  const run = async () => {
    if (stopped || running) return;
    running = true;
    try {
      if (document.visibilityState !== 'hidden') await task();
    } finally {
      running = false;
      if (!stopped) timer = setTimeout(run, ms);
    }
  };
  const onVisible = () => {
    if (document.visibilityState === 'visible' && !running) {
      clearTimeout(timer);
      run();
    }
  };
  document.addEventListener('visibilitychange', onVisible);
  run();
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisible);
  };
}

/**
 * Runs `task` soon after a trigger, never overlapping itself and at most once per `gapMs`;
 * triggers that arrive while it runs coalesce into one more run. Returns the trigger.
 *
 * @param {() => Promise<void>} task
 * @param {number} [gapMs]
 * @returns {() => void}
 */
export function coalesced(task, gapMs = 500) {
  let running = false;
  let again = false;
  let last = 0;
  /** @type {ReturnType<typeof setTimeout>|null} */
  let timer = null;
  const run = async () => {
    timer = null;
    running = true;
    last = Date.now();
    try {
      await task();
    } finally {
      running = false;
      if (again) {
        again = false;
        trigger();
      }
    }
  };
  const trigger = () => {
    if (running) {
      again = true;
      return;
    }
    if (timer) return;
    timer = setTimeout(run, Math.max(0, last + gapMs - Date.now()));
  };
  return trigger;
}

/** How long the event stream may take to open before the page polls instead (ms). */
const EVENTS_OPEN_TIMEOUT_MS = 8000;

/**
 * Live updates: listens to the server's change notifications (`GET /api/v1/events`,
 * server-sent events, same origin) and calls `onEvent(name, data)` for each (`tick`, `meter`,
 * `resync`); calls `refreshAll()` whenever the stream (re)opens (events sent while it was
 * down are lost) and when it drops (so the page shows the outage). Falls back to polling
 * `refreshAll` every `pollMs` only when server-sent events fail: no `EventSource`, an HTTP
 * error or non-stream answer, or no connection within a few seconds. Returns a function that
 * stops everything; `transport()` tells which way updates arrive.
 *
 * @param {object} options
 * @param {() => Promise<void>} options.refreshAll Refetches everything the page shows.
 * @param {(name: string, data: any) => void} options.onEvent
 * @param {number} options.pollMs Polling interval of the fallback.
 * @returns {{stop: () => void, transport: () => 'events'|'polling'|'connecting'}}
 */
export function live({ refreshAll, onEvent, pollMs }) {
  /** @type {EventSource|null} */
  let source = null;
  /** @type {(() => void)|null} */
  let stopPolling = null;
  let opened = false;
  let stopped = false;
  /** @type {ReturnType<typeof setTimeout>|null} */
  let openTimer = null;
  const fallback = () => {
    if (stopped || stopPolling) return;
    if (openTimer) clearTimeout(openTimer);
    source?.close();
    source = null;
    stopPolling = every(refreshAll, pollMs);
  };
  const stop = () => {
    stopped = true;
    if (openTimer) clearTimeout(openTimer);
    source?.close();
    source = null;
    stopPolling?.();
  };
  const transport = () => (stopPolling ? 'polling' : opened ? 'events' : 'connecting');
  if (typeof EventSource === 'undefined') {
    fallback();
    return { stop, transport };
  }
  source = new EventSource('/api/v1/events');
  openTimer = setTimeout(() => {
    if (!opened) fallback();
  }, EVENTS_OPEN_TIMEOUT_MS);
  source.addEventListener('open', () => {
    opened = true;
    if (openTimer) clearTimeout(openTimer);
    refreshAll();
  });
  source.addEventListener('error', () => {
    if (!source) return;
    // CLOSED: the server answered, but not with a stream (an old server, an error status):
    // poll instead. CONNECTING: the browser reconnects by itself; refresh to show the outage.
    if (source.readyState === EventSource.CLOSED) fallback();
    else refreshAll();
  });
  for (const name of ['tick', 'meter', 'resync']) {
    source.addEventListener(name, (ev) => {
      let data = {};
      try {
        data = JSON.parse(/** @type {MessageEvent} */ (ev).data) ?? {};
      } catch {
        data = {};
      }
      onEvent(name, data);
    });
  }
  return { stop, transport };
}
