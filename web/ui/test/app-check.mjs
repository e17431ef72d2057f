// Clicks through every page of the web app in Chromium against
// test/app-devserver.mjs (one per node) and fails on console errors.
//
//   ADMIN_URL=http://127.0.0.1:17600 CLINICIAN_URL=http://127.0.0.1:17601 \
//   SYNTH_UID=... SYNTH2_UID=... node test/app-check.mjs
//
// ADMIN_URL's node holds studies granted to CLINICIAN_URL's node (St Mary ->
// Riverside in the setup the report describes); SYNTH_UID and SYNTH2_UID are
// two studies shared with the clinician's node and not yet fetched.
import { chromium } from '/work/main/interop/js/node_modules/playwright-core/index.mjs';
import assert from 'node:assert/strict';
import fs from 'node:fs';

const ADMIN = process.env.ADMIN_URL || 'http://127.0.0.1:17600';
const CLIN = process.env.CLINICIAN_URL || 'http://127.0.0.1:17601';
const SYNTH = process.env.SYNTH_UID;
const SYNTH2 = process.env.SYNTH2_UID;
// A study of the admin's node that is not shared: the send test stores it at the AE.
const SEND_UID = process.env.SEND_UID || '1.3.6.1.4.1.5962.1.2.10.1166562673.14401';
const SHOTS = process.env.SHOTS || '';
const headless = process.env.HEADED ? false : true;

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless, args: ['--no-sandbox'] });
const problems = [];
let step = '';

async function open(base, role, opts = {}) {
  const context = await browser.newContext({ viewport: opts.viewport || { width: 1280, height: 900 }, deviceScaleFactor: opts.scale || 1 });
  await context.addCookies([{ name: 'dev_role', value: role, url: base }]);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`[${role} ${step}] console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`[${role} ${step}] HTTP ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  page.on('pageerror', (e) => problems.push(`[${role} ${step}] page error: ${e.message}`));
  page.on('dialog', (d) => d.accept());
  page.setDefaultTimeout(15000);
  return { context, page };
}

async function go(page, base, hash) {
  step = hash;
  await page.goto(`${base}/app/${hash}`);
  await page.waitForSelector('main h1');
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

async function alerts(page) {
  return page.locator('[role=alert]').allTextContents();
}

function log(s) {
  console.log('ok  ' + s);
}

// ---- admin ----
{
  const { context, page } = await open(ADMIN, 'admin');
  step = 'start';
  await page.goto(`${ADMIN}/app/`);
  await page.waitForSelector('#studies');
  assert.match(page.url(), /#\/studies$/);
  assert.equal(await page.textContent('#facility'), 'St Mary');
  const nav = await page.locator('#nav a').allTextContents();
  assert.deepEqual(nav, ['Studies', 'Patient', 'Fetches', 'Sends', 'Partners', 'Grants', 'Access requests', 'Users', 'Node health', 'Audit']);
  const count = await page.locator('.pager-count').first().textContent();
  assert.match(count, /^1–\d+ of \d+$/);
  assert.ok(await page.locator('#studies tbody tr[data-study-uid]').count() > 10);
  // Names formatted, dates formatted.
  assert.ok(await page.locator('#studies td', { hasText: 'Doe, Archibald' }).count() === 1);
  assert.ok(await page.locator('#studies td', { hasText: '2001-01-01' }).count() >= 1);
  // The source select lists partners for an admin.
  assert.ok(await page.locator('select[name=source] option', { hasText: 'Riverside' }).count() === 1);
  await shot(page, 'admin-studies');
  log('studies list, pager, formatting');

  // Search by name.
  await page.getByLabel('Patient name').fill('doe');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.waitForFunction(() => document.querySelectorAll('#studies tbody tr').length === 1);
  assert.ok(!page.url().toLowerCase().includes('doe'), 'patient name must not be in the URL');
  await page.getByLabel('Study date from').fill('2001-01-01');
  await page.getByLabel('Study date to').fill('2001-01-01');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.waitForFunction(() => document.querySelectorAll('#studies tbody tr').length === 1);
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.waitForFunction(() => document.querySelectorAll('#studies tbody tr').length > 10);
  log('studies search form');

  // Patient page from a row; patient ID not in the URL.
  await page.locator('#studies tr', { hasText: 'Doe, Archibald' }).getByRole('button', { name: 'Patient' }).click();
  await page.waitForSelector('#patient-studies');
  assert.match(page.url(), /#\/patient$/);
  assert.equal(await page.locator('#patient-card dd').first().textContent(), 'Doe, Archibald');
  await page.getByRole('button', { name: 'Search partners' }).click();
  await page.waitForSelector('.partner-result[data-partner="Riverside"]');
  const form = page.locator('form.request-form[data-partner="Riverside"]');
  await form.getByLabel('Reason').selectOption('follow-up');
  await form.getByLabel('Emergency access (break-glass)').check();
  assert.ok(await form.locator('.alert-warn').isVisible());
  await form.getByLabel('Emergency access (break-glass)').uncheck();
  await form.getByRole('button', { name: 'Request access' }).click();
  await form.locator('.messages .alert').waitFor();
  const reqMsg = await form.locator('.messages .alert').textContent();
  log('patient page, partner search, request access: ' + reqMsg);
  await page.waitForSelector('#requests tbody tr');
  await shot(page, 'admin-patient');

  // Study page: send to our PACS.
  await go(page, ADMIN, `#/study/${SEND_UID}`);
  await page.waitForSelector('#series');
  assert.ok(await page.getByRole('link', { name: 'Download' }).getAttribute('href'));
  await page.waitForSelector('#send-form');
  await page.getByRole('button', { name: 'Send to our PACS' }).click();
  await page.waitForSelector('.send-job[data-state="done"], .send-job[data-state="failed"]', { timeout: 60000 });
  const sendState = await page.locator('.send-job').getAttribute('data-state');
  log('study page, send: ' + sendState + ' — ' + (await page.locator('.send-job p').textContent()));
  await shot(page, 'admin-study');
  await go(page, ADMIN, '#/sends');
  await page.waitForSelector('#sends tbody tr');
  log('sends list');

  // Partners.
  await go(page, ADMIN, '#/admin/partners');
  await page.waitForSelector('#partners tbody tr');
  assert.match(await page.inputValue('#invite'), /^pacsnet-invite-1:/);
  await page.getByRole('button', { name: 'Copy' }).click();
  await page.locator('text=/Copied|Selected/').waitFor();
  await page.getByLabel("Partner's invite").fill('pacsnet-invite-1:garbage');
  await page.getByRole('button', { name: 'Add partner' }).click();
  await page.locator('#add-partner [role=alert]').waitFor();
  log('partners: invite, copy, add error shown: ' + (await page.locator('#add-partner [role=alert]').textContent()));
  await shot(page, 'admin-partners');

  // Grants.
  await go(page, ADMIN, '#/admin/grants');
  await page.waitForSelector('#grants tbody tr');
  const before = await page.locator('#grants tbody tr').count();
  await page.getByLabel('Study UID').fill(SYNTH);
  await page.getByLabel('Lasts').fill('24h');
  await page.getByRole('button', { name: 'Grant', exact: true }).click();
  await page.locator('#grant-form .alert').waitFor();
  log('grant created: ' + (await page.locator('#grant-form .alert').textContent()));
  await page.waitForFunction((n) => document.querySelectorAll('#grants tbody tr').length === n + 1, before);
  await page.locator('#grants-state').selectOption('revoked');
  await page.waitForFunction(() => [...document.querySelectorAll('#grants tbody tr')].every((r) => r.dataset.state === 'revoked'));
  await page.locator('#grants-state').selectOption('active');
  const row = page.locator('#grants tbody tr').first();
  await row.getByLabel('Reason').selectOption('sent-in-error');
  await row.getByRole('button', { name: 'Revoke' }).click();
  await page.locator('main > .messages .alert-ok').waitFor();
  log('grants: filter, revoke');
  await shot(page, 'admin-grants');

  // Access requests.
  await go(page, ADMIN, '#/admin/requests');
  await page.waitForSelector('#incoming-requests tbody tr');
  // The note with markup is shown as text.
  assert.ok(await page.locator('#incoming-requests .note', { hasText: '<b>Doe</b>' }).count() === 1, 'note shown as text');
  assert.equal(await page.locator('#incoming-requests .note b').count(), 0);
  await page.locator('#incoming-requests tr', { hasText: 'transferred' }).getByRole('button', { name: 'Erase note' }).click();
  await page.locator('main > .messages .alert-ok').waitFor();
  await page.waitForSelector('#emergency-review tbody tr');
  await page.locator('#emergency-review tbody tr').first().getByRole('button', { name: 'Record review' }).click();
  await page.locator('main > .messages .alert-ok', { hasText: 'Review' }).waitFor();
  // Approve the one for PANCREAS_0001 narrowed to its studies; deny the other.
  const pRow = page.locator('#incoming-requests tr', { hasText: 'PANCREAS_0001' });
  await pRow.getByRole('button', { name: 'Choose studies…' }).click();
  await pRow.locator('fieldset input[type=checkbox]').first().waitFor();
  await pRow.getByRole('button', { name: 'Approve' }).click();
  await page.locator('main > .messages .alert-ok', { hasText: 'Approved' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#incoming-requests tbody tr').length >= 1);
  const dRow = page.locator('#incoming-requests tbody tr').first();
  await dRow.getByLabel('Deny reason').selectOption('no-consent');
  await dRow.getByRole('button', { name: 'Deny' }).click();
  await page.locator('main > .messages .alert-ok', { hasText: 'Denied' }).waitFor();
  await page.waitForSelector('#decided-requests tbody tr');
  log('requests: note as text, erase note, review, approve narrowed, deny');
  await shot(page, 'admin-requests');

  // Users and tokens.
  await go(page, ADMIN, '#/admin/users');
  await page.waitForSelector('#add-user');
  const uname = 'alice' + Date.now().toString(36);
  await page.locator('#user-name').fill(uname);
  await page.locator('#user-role').selectOption('clinician');
  await page.getByRole('button', { name: 'Add user' }).click();
  await page.waitForSelector('#new-password');
  assert.ok((await page.inputValue('#new-password')).length >= 8);
  const uRow = page.locator(`#users tr[data-user="${uname}"]`);
  await uRow.waitFor();
  await uRow.getByLabel('New role').selectOption('auditor');
  await uRow.getByRole('button', { name: 'Set role' }).click();
  await page.locator(`#users tr[data-user="${uname}"] .badge`, { hasText: 'auditor' }).waitFor();
  await page.locator(`#users tr[data-user="${uname}"]`).getByRole('button', { name: 'Reset password' }).click();
  await page.locator('main > .messages .alert-ok', { hasText: 'Password' }).waitFor();
  await page.locator('#token-user').selectOption(uname);
  await page.getByRole('button', { name: 'Add token' }).click();
  await page.waitForSelector('#new-token');
  await page.waitForSelector('#tokens tbody tr');
  await page.locator('#tokens tr', { hasText: uname }).first().getByRole('button', { name: 'Revoke' }).click();
  await page.locator('main > .messages .alert-ok', { hasText: 'Token revoked' }).waitFor();
  await page.locator(`#users tr[data-user="${uname}"]`).getByRole('button', { name: 'Disable' }).click();
  await page.locator(`#users tr[data-user="${uname}"][data-disabled="true"]`).waitFor();
  log('users: add, role, password, token add/revoke, disable');
  await shot(page, 'admin-users');

  // Audit.
  await go(page, ADMIN, '#/audit');
  await page.waitForSelector('#audit tbody tr');
  await page.getByRole('button', { name: 'Verify chain' }).click();
  await page.waitForSelector('#audit-verify[data-ok]');
  assert.equal(await page.getAttribute('#audit-verify', 'data-ok'), 'true');
  await page.locator('#audit-action').selectOption('grant');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('#audit tbody tr')].every((r) => r.dataset.action === 'grant'));
  const href = await page.locator('#audit-export a[data-format=syslog]').getAttribute('href');
  assert.match(href, /format=syslog/);
  assert.match(href, /action=grant/);
  const exp = await page.evaluate(async (u) => (await fetch(u)).status, href);
  assert.equal(exp, 200);
  await page.locator('#audit-limit').selectOption('50');
  await page.locator('#audit-action').selectOption('');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.waitForSelector('#audit tbody tr');
  if (await page.getByRole('button', { name: 'Next' }).isEnabled()) {
    await page.getByRole('button', { name: 'Next' }).click();
    await page.waitForFunction(() => document.querySelector('#audit tbody tr')?.dataset.seq === '51');
    await page.getByRole('button', { name: 'Previous' }).click();
    await page.waitForFunction(() => document.querySelector('#audit tbody tr')?.dataset.seq === '1');
  }
  log('audit: list, verify, filter, export link, paging');
  await shot(page, 'admin-audit');

  // Health.
  await go(page, ADMIN, '#/admin/health');
  await page.waitForSelector('#health[data-health]');
  await page.waitForSelector('#partner-states tbody tr');
  log('health: ' + (await page.getAttribute('#health', 'data-health')));
  await shot(page, 'admin-health');

  // Keyboard: Tab reaches the nav and Enter follows a link.
  await go(page, ADMIN, '#/studies');
  await page.waitForSelector('#studies');
  await page.locator('.skip-link').focus();
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
  let reached = false;
  for (let i = 0; i < 20 && !reached; i++) {
    reached = await page.evaluate(() => document.activeElement?.textContent === 'Grants');
    if (!reached) await page.keyboard.press('Tab');
  }
  assert.ok(reached, 'Tab reaches the nav');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#grants');
  log('keyboard navigation');

  // Logout.
  step = 'logout';
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(/\/login$/);
  log('logout');
  await context.close();
}

// ---- 200% zoom: no horizontal scrolling of the page ----
for (const hash of ['#/studies', '#/admin/grants', '#/admin/requests', '#/audit', '#/admin/users']) {
  const { context, page } = await open(ADMIN, 'admin', { viewport: { width: 640, height: 450 }, scale: 2 });
  await go(page, ADMIN, hash);
  await page.waitForTimeout(700);
  const over = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(over <= 1, `${hash} scrolls sideways at 200% by ${over}px`);
  if (hash === '#/studies') await shot(page, 'zoom-studies');
  await context.close();
}
log('200% zoom reflow');

// ---- clinician ----
{
  const { context, page } = await open(CLIN, 'clinician');
  await go(page, CLIN, '#/studies');
  await page.waitForSelector('#studies');
  const nav = await page.locator('#nav a').allTextContents();
  assert.deepEqual(nav, ['Studies', 'Patient', 'Fetches', 'Sends']);
  assert.equal(await page.locator('input[name=source]').count(), 1, 'clinician gets a text input for the source');
  const r = page.locator(`#studies tr[data-study-uid="${SYNTH}"]`);
  assert.equal(await r.locator('[data-availability]').getAttribute('data-availability'), 'partner');
  assert.match(await r.textContent(), /access until \d{4}-\d{2}-\d{2}/);
  assert.equal(await r.getByRole('link', { name: 'Open' }).count(), 0);
  await shot(page, 'clinician-studies');
  await r.getByRole('button', { name: 'Fetch' }).click();
  await page.waitForURL(/#\/fetch\//);
  await page.waitForSelector('#fetch-progress[data-state="done"]', { timeout: 120000 });
  assert.ok(await page.getByRole('link', { name: 'Open in viewer' }).getAttribute('href'));
  log('fetch with events: ' + (await page.locator('#fetch-facts').textContent()));
  await shot(page, 'clinician-fetch');

  // Fallback: events fail -> polling.
  await page.route('**/events', (route) => route.abort());
  await go(page, CLIN, '#/studies');
  await page.waitForSelector('#studies');
  await page.locator(`#studies tr[data-study-uid="${SYNTH2}"]`).getByRole('button', { name: 'Fetch' }).click();
  await page.waitForURL(/#\/fetch\//);
  await page.waitForSelector('#fetch-progress[data-state="done"]', { timeout: 120000 });
  await page.unroute('**/events');
  log('fetch with polling fallback');
  // Failed event requests log a console error in Chromium; they were forced.
  for (let i = problems.length - 1; i >= 0; i--) if (/\/events|ERR_FAILED/.test(problems[i])) problems.splice(i, 1);

  await go(page, CLIN, '#/fetches');
  await page.waitForSelector('#fetches tbody tr');
  log('fetches list');

  await go(page, CLIN, '#/studies');
  await page.waitForSelector('#studies');
  const fr = page.locator(`#studies tr[data-study-uid="${SYNTH}"]`);
  assert.equal(await fr.locator('[data-availability]').getAttribute('data-availability'), 'here');
  assert.equal(await fr.getByRole('link', { name: 'Open' }).count(), 1);
  // Granted and revoked in the setup (PANCREAS_0001 is approved again by the admin's steps above).
  const rv = page.locator('#studies tr[data-study-uid="1.2.826.0.1.3680043.8.498.12406831542731051035295345080039845114"]');
  assert.equal(await rv.locator('[data-availability]').first().getAttribute('data-availability'), 'revoked');
  log('availability here / revoked');

  // Patient page: partner search finds St Mary's studies.
  await fr.getByRole('button', { name: 'Patient' }).click();
  await page.waitForSelector('#patient-studies');
  await page.getByRole('button', { name: 'Search partners' }).click();
  await page.waitForSelector('.partner-result[data-partner="St Mary"]');
  const found = await page.locator('.partner-result[data-partner="St Mary"] .found-studies tbody tr').count();
  log(`partner search from the clinician: St Mary found ${found}`);
  await shot(page, 'clinician-patient');
  // Emergency request to St Mary (which allows break-glass for Riverside).
  const form = page.locator('form.request-form[data-partner="St Mary"]');
  await form.getByLabel('Emergency access (break-glass)').check();
  await form.getByLabel('Reason').selectOption('emergency-care');
  await form.getByLabel('Note for their administrator (optional)').fill('urgent');
  await form.getByRole('button', { name: 'Request access' }).click();
  await form.locator('.alert-ok, [role=alert]:not(.alert-warn)').first().waitFor();
  log('emergency request: ' + (await form.locator('.messages').textContent()));
  await page.waitForSelector('#requests tbody tr');

  // Choose a patient by ID.
  await go(page, CLIN, '#/patient');
  await page.locator('#choose-patient').getByLabel('Patient ID', { exact: true }).fill('77654033');
  await page.getByRole('button', { name: 'Change patient' }).click();
  await page.waitForFunction(() => document.querySelector('#patient-card dd')?.textContent === 'Doe, Archibald');
  assert.ok(!page.url().includes('77654033'));
  log('patient chosen by ID');

  // Study page and sends for a clinician.
  await go(page, CLIN, `#/study/${SYNTH}`);
  await page.waitForSelector('#series');
  await go(page, CLIN, '#/sends');
  await page.waitForSelector('main .empty, #sends');

  // Not allowed.
  for (const hash of ['#/admin/partners', '#/admin/users', '#/audit']) {
    await go(page, CLIN, hash);
    await page.waitForSelector('#not-allowed');
  }
  log('clinician: admin pages not allowed');
  await context.close();
}

// ---- auditor ----
{
  const { context, page } = await open(ADMIN, 'auditor');
  step = 'start';
  await page.goto(`${ADMIN}/app/`);
  await page.waitForSelector('#audit');
  assert.match(page.url(), /#\/audit$/);
  assert.deepEqual(await page.locator('#nav a').allTextContents(), ['Audit']);
  await page.getByRole('button', { name: 'Verify chain' }).click();
  await page.waitForSelector('#audit-verify[data-ok="true"]');
  for (const hash of ['#/studies', '#/admin/grants', '#/fetch/abc']) {
    await go(page, ADMIN, hash);
    await page.waitForSelector('#not-allowed');
  }
  log('auditor: audit only');
  await context.close();
}

// ---- no session ----
{
  const { context, page } = await open(ADMIN, 'none');
  step = 'no session';
  await page.goto(`${ADMIN}/app/#/studies`);
  await page.waitForURL(/\/login$/);
  // The 401 of /me is expected here.
  for (let i = problems.length - 1; i >= 0; i--) if (problems[i].startsWith('[none')) problems.splice(i, 1);
  log('401 -> /login');
  await context.close();
}

await browser.close();
// Expected: the deliberately bad invite (400 and Chromium's console line for it).
for (let i = problems.length - 1; i >= 0; i--) {
  if (/#\/admin\/partners\] (HTTP 400 POST \/api\/v1\/peers|console: Failed to load resource: the server responded with a status of 400)/.test(problems[i])) problems.splice(i, 1);
}
if (problems.length) {
  console.error('PROBLEMS:\n' + problems.join('\n'));
  process.exit(1);
}
console.log('all pages checked; no console errors');
void fs;
