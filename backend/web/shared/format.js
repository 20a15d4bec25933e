// Number, unit and time formatting: every figure the pages show carries its unit.

const locale = undefined; // the browser's

/**
 * Power in kW from watts, e.g. `7.4 kW`; `–` when unknown.
 * @param {number | null | undefined} w
 * @returns {string}
 */
export function kw(w) {
  if (w === null || w === undefined || Number.isNaN(w)) return '–';
  return `${num(w / 1000, Math.abs(w) < 10_000 ? 1 : 0)} kW`;
}

/**
 * Energy, e.g. `12.3 kWh`; `–` when unknown.
 * @param {number | null | undefined} kwhValue
 * @returns {string}
 */
export function kwh(kwhValue) {
  if (kwhValue === null || kwhValue === undefined || Number.isNaN(kwhValue)) return '–';
  return `${num(kwhValue, kwhValue < 100 ? 1 : 0)} kWh`;
}

/**
 * A percentage, e.g. `54 %`; `–` when unknown.
 * @param {number | null | undefined} p
 * @returns {string}
 */
export function pct(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return '–';
  return `${num(p, 0)} %`;
}

/**
 * Money in euros from micro-euros (or from euros with `fromEuros`), e.g. `€ 4.20`.
 * @param {number | null | undefined} value
 * @param {{fromEuros?: boolean}} [opts]
 * @returns {string}
 */
export function eur(value, { fromEuros = false } = {}) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  const euros = fromEuros ? value : value / 1e6;
  return new Intl.NumberFormat(locale, { style: 'currency', currency: 'EUR' }).format(euros);
}

/**
 * A token amount with its symbol, e.g. `12.5 FLEX`.
 * @param {number | string | null | undefined} amount
 * @param {string} symbol
 * @returns {string}
 */
export function token(amount, symbol) {
  if (amount === null || amount === undefined || amount === '') return '–';
  return `${num(Number(amount), 2)} ${symbol}`;
}

/**
 * A decimal number with a fixed number of fraction digits, in the browser's locale.
 * @param {number} value
 * @param {number} digits
 * @returns {string}
 */
export function num(value, digits) {
  return new Intl.NumberFormat(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);
}

/**
 * Local clock time of an RFC 3339 instant or Date, e.g. `14:45`.
 * @param {string | Date | null | undefined} t
 * @returns {string}
 */
export function clock(t) {
  if (!t) return '–';
  const d = t instanceof Date ? t : new Date(t);
  return d.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' });
}

/**
 * Local date and time, e.g. `Mon 14:45` within a week, else the date too.
 * @param {string | Date | null | undefined} t
 * @returns {string}
 */
export function dateTime(t) {
  if (!t) return '–';
  const d = t instanceof Date ? t : new Date(t);
  const days = Math.abs(Date.now() - d.getTime()) / 86_400_000;
  const opts = days < 6
    ? { weekday: 'short', hour: '2-digit', minute: '2-digit' }
    : { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };
  return d.toLocaleString(locale, opts);
}

/**
 * A duration from now until `t`, e.g. `in 3 h 15 min`, or `passed`.
 * @param {string | Date} t
 * @returns {string}
 */
export function until(t) {
  const ms = (t instanceof Date ? t : new Date(t)).getTime() - Date.now();
  if (ms <= 0) return 'passed';
  const min = Math.round(ms / 60_000);
  const h = Math.floor(min / 60);
  return h > 0 ? `in ${h} h ${min % 60} min` : `in ${min} min`;
}

/**
 * A long hex string shortened for display, e.g. `0x1234…abcd`.
 * @param {string | null | undefined} hex
 * @returns {string}
 */
export function shortHex(hex) {
  if (!hex) return '–';
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}

/**
 * Escapes text for safe use inside HTML.
 * @param {unknown} value
 * @returns {string}
 */
export function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
