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
