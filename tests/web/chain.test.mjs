// The pages against a chain-backed evflex (its own local anvil from anvil/state.json, every
// contract deployed): sign in with a browser wallet (an injected EIP-1193 provider whose key
// stays in node), a charging session driven to an on-chain settlement that the history shows
// with energy, cost, FLEX and a link to its transaction, and the cockpit's per-commit
// verification (hashes recomputed, StatusLedger asked, schedule re-checked). Saves screenshots.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { browser, call, finishWithCdr, injectWallet, meter, screenshot, site, startSession, testWallet, until } from './helpers.mjs';

// A throwaway test key (never funded, used only to sign in).
const WALLET_KEY = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318';

let s;
let ctx;

before(async () => {
  s = await site([], { chain: true });
  ctx = await browser({ width: 375, height: 812 });
});

after(async () => {
  await ctx?.cleanup();
  await s?.close();
});

test('sign in with a browser wallet: the page signs the challenge and shows the address', async () => {
  const page = await ctx.newPage();
  const wallet = testWallet(WALLET_KEY);
  const address = await injectWallet(page, wallet);
  await page.goto(`${s.base}/app/`);
  const button = page.getByRole('button', { name: 'Sign in with your wallet' });
  await button.waitFor();
  await button.click();
  // Signed in: the tabs appear; the wallet tab reads the address from the server.
  await page.getByRole('link', { name: /Wallet/ }).click();
  const shown = page.locator('#wallet-body [data-field="address"]');
  await shown.waitFor();
  assert.equal((await shown.textContent()).toLowerCase(), address.toLowerCase());
  assert.match(await page.locator('#wallet-body [data-field="flex"]').textContent(), /^0([.,]0+)? FLEX$/);
  assert.deepEqual(await page.evaluate(() => window.__walletRequests), ['eth_requestAccounts', 'personal_sign']);
  await page.getByRole('link', { name: /Profile/ }).click();
  assert.equal((await page.locator('[data-field="signed-in-address"]').textContent()).toLowerCase(), address.toLowerCase());
  // The token the page got is a real session of the user owning that address.
  const token = await page.evaluate(() => window.evflexApp.token);
  const w = await call(s.base, 'GET', '/api/v1/users/me/wallet', undefined, `Bearer ${token}`);
  assert.equal(w.address.toLowerCase(), address.toLowerCase());
  assert.equal(w.custodial, false);
  assert.deepEqual(ctx.pageErrors, []);
  await page.close();
});

test('a finished session is settled on chain: the history shows energy, cost, FLEX and the transaction', async () => {
  // A registered, topped-up user (custodial e-wallet) charges 5 kWh with the token evflex
  // issued to her.
  const user = await call(s.base, 'POST', '/api/v1/users', { name: 'Dana', opted_in: true });
  const bearer = `Bearer ${user.token}`;
  await call(s.base, 'POST', '/api/v1/users/me/wallet/top-up', { amount_eur: 20 }, bearer);
  const ses = { evse: 'EVSE-1', session: 'S9', card: user.token_uid };
  await startSession(s.base, s.auth, ses);
  await meter(s.base, s.auth, { ...ses, powerKw: 11, soc: 55, energyWh: 5000 });
  await finishWithCdr(s.base, s.auth, { ...ses, kwh: 5, cdr: 'CDR-9' });
  const bill = await until(async () => {
    const rows = await call(s.base, 'GET', '/api/v1/users/me/settlements', undefined, bearer);
    return rows.find((r) => r.session_id === 'S9' && r.status === 'settled' && r.tx_hash);
  }, 60_000, 'the settlement of S9 on chain');
  assert.equal(bill.energy_wh, 5000);
  assert.equal(bill.cost_micro_eur, 1_500_000); // the CDR's total: 5 kWh at 0.30 €/kWh incl. VAT

  const page = await ctx.newPage();
  await page.goto(`${s.base}/app/`);
  // The browser profile is still signed in from the wallet test: sign out first.
  await page.evaluate(() => localStorage.clear());
  await page.reload();
  await page.locator('summary', { hasText: 'I already have an access token' }).click();
  await page.getByLabel('Access token').fill(user.token);
  await page.getByRole('button', { name: 'Sign in with token' }).click();
  await page.getByRole('link', { name: /History/ }).click();
  const row = page.locator('#history-list li[data-session="S9"]');
  await row.waitFor();
  assert.match(await row.locator('[data-field="energy"]').textContent(), /^5([.,]0)? kWh$/);
  assert.match(await row.locator('[data-field="cost"]').textContent(), /1[.,]50/);
  assert.match(await row.locator('[data-field="cost"]').textContent(), /€/);
  assert.match(await row.locator('[data-field="flex"]').textContent(), /^\d+([.,]\d+)? FLEX$/);
  const link = row.locator('a[data-field="tx"]');
  const href = await link.getAttribute('href');
  assert.equal(href, `/api/v1/audit/transactions/${bill.tx_hash}`);
  // The link answers with the transaction's receipt from the chain.
  const receipt = await call(s.base, 'GET', href);
  assert.equal(receipt.success, true);
  assert.equal(receipt.tx_hash, bill.tx_hash);
  assert.ok(receipt.block_number > 0);
  await screenshot(page, 'user-app-history-375.png');
  assert.deepEqual(ctx.pageErrors, []);
  await page.close();
});

test('the cockpit verifies a schedule commit on demand', async () => {
  // The start-up tick planned group 1 (topology loaded at start); the writer commits it.
  const commit = await until(async () => {
    const rows = await call(s.base, 'GET', '/api/v1/audit/commits');
    return rows.find((r) => r.group_id === 1 && r.tx_hash);
  }, 60_000, 'a status commit on chain');
  const page = await ctx.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${s.base}/cockpit/`);
  await page.getByLabel('CPO token').fill(s.tokenC);
  await page.getByRole('button', { name: 'Open cockpit' }).click();
  // Event re-plans give a timestep more commits (revisions 1, 2, …): the row is the commit's revision.
  const revision = commit.revision ?? 0;
  const row = page.locator(`#commits tr[data-group="1"][data-timestep="${commit.timestep}"][data-revision="${revision}"]`);
  await row.waitFor({ timeout: 40_000 });
  const label = `Verify group 1 timestep ${commit.timestep}${revision ? ` revision ${revision}` : ''}`;
  await row.getByRole('button', { name: label, exact: true }).click();
  const verdict = row.locator('[data-verdict]');
  await verdict.waitFor({ timeout: 30_000 });
  assert.equal(await verdict.getAttribute('data-verdict'), 'ok', await row.textContent());
  const checks = await row.locator('.checks').textContent();
  for (const c of ['inputs hash OK', 'schedule hash OK', 'on chain', 'feasible']) assert.ok(checks.includes(c), `${c} in "${checks}"`);
  // The same verdict from the route directly.
  const r = await call(s.base, 'GET', `/api/v1/audit/groups/1/timesteps/${commit.timestep}/verify?revision=${revision}`);
  assert.deepEqual([r.revision, r.ok, r.inputs_hash_ok, r.schedule_hash_ok, r.on_chain, r.feasible], [revision, true, true, true, true, true]);
  await row.evaluate((el) => el.scrollIntoView({ block: 'center' }));
  await screenshot(page, 'cockpit-verify.png');
  // A (group, timestep) without a schedule is a 404, not a verdict.
  await assert.rejects(call(s.base, 'GET', '/api/v1/audit/groups/1/timesteps/1/verify'), /HTTP 404/);
  assert.deepEqual(ctx.pageErrors, []);
  await page.close();
});
