// Page furniture shared by the user app and the cockpit: the element lookup, the live
// indicator, the banner and notice blocks. Both pages have `#live` and `#banner` elements.

import { esc } from '/shared/format.js';

/**
 * The first element matching `sel` under `root`.
 * @param {string} sel
 * @param {ParentNode} [root]
 * @returns {HTMLElement}
 */
export const $ = (sel, root = document) => /** @type {HTMLElement} */ (root.querySelector(sel));

/**
 * Sets the live indicator (`#live`): its state and its text. A text `Live · <when>` shows
 * `<when>` on narrow screens and reads "Updated <when>" to screen readers.
 * @param {'live'|'down'|'idle'} s
 * @param {string} text
 */
export function setLive(s, text) {
  const el = $('#live');
  el.dataset.state = s;
  const live = /^Live · (.*)$/.exec(text);
  if (live) el.innerHTML = `<span class="wide-only">Live · </span><span class="visually-hidden">Updated </span>${esc(live[1])}`;
  else el.textContent = text;
}

/**
 * Shows `text` in the page's banner (`#banner`), or hides it for `null`.
 * @param {string|null} text
 */
export function showBanner(text) {
  const b = $('#banner');
  b.hidden = !text;
  b.textContent = text ?? '';
}

/**
 * A notice block.
 * @param {'info'|'ok'|'warn'|'error'|'unavailable'} kind
 * @param {string} title
 * @param {string} [bodyHtml] Trusted HTML (escape user data with `esc`).
 * @returns {string}
 */
export function notice(kind, title, bodyHtml = '') {
  return `<div class="notice ${kind}" role="${kind === 'error' ? 'alert' : 'status'}"><strong>${esc(title)}</strong>${bodyHtml ? `<p>${bodyHtml}</p>` : ''}</div>`;
}
