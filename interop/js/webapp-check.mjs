// webapp-check.mjs drives pacsnet's web app, served by two real `pacsnet
// serve` processes (St Mary and Riverside), in Debian's headless Chromium
// through playwright-core, the way their people use it (issue 11):
//
//   1. St Mary's admin signs in, grants study A to Riverside in the Grants
//      page, and revokes the grant of study C there.
//   2. Riverside's clinician signs in, sees A in her worklist, fetches it
//      with live progress, opens the viewer, scrolls, picks a window
//      preset, and reads the pixel value under the mouse (reported as the
//      `probe` check, which the Go test compares with the DICOM file).
//   3. She looks up patient B, searches the partners and requests access;
//      St Mary's admin approves the request; B becomes fetchable for her.
//   4. C shows as revoked; admin pages and the admin API are refused to
//      her; St Mary's auditor sees only the audit and verifies the chain.
//
// Environment: MARY_URL, RIVER_URL, MARY_ADMIN(_PW), MARY_AUDITOR(_PW),
// RIVER_CLIN(_PW), STUDY_A, STUDY_B, PATIENT_B, STUDY_C, SHOTS (a folder
// for the screenshots of every main page), CHROMIUM (the browser),
// WEBAPP_TIMEOUT_MS (each wait, 30000).
//
// It prints one JSON line per check, {"name", "ok", "detail"}, and exits 1
// if any failed.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const env = process.env;
for (const k of ['MARY_URL', 'RIVER_URL', 'MARY_ADMIN', 'MARY_ADMIN_PW', 'MARY_AUDITOR', 'MARY_AUDITOR_PW', 'RIVER_CLIN', 'RIVER_CLIN_PW',
  'STUDY_A', 'STUDY_B', 'PATIENT_B', 'STUDY_C', 'SHOTS']) {
  if (!env[k]) {
    console.error(`webapp-check.mjs: $${k} is not set`);
    process.exit(2);
  }
}
const timeout = Number(env.WEBAPP_TIMEOUT_MS || 30000);
mkdirSync(env.SHOTS, { recursive: true });

let failed = 0;
function report(name, ok, detail) {
  if (!ok) failed++;
  process.stdout.write(JSON.stringify({ name, ok: !!ok, detail: String(detail || '') }) + '\n');
}

const consoleErrors = [];
const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist',
    '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});

async function shot(page, name) {
  await page.screenshot({ path: `${env.SHOTS}/${name}.png`, fullPage: false }).catch(() => {});
}

// signIn opens a fresh browser profile and signs in through the form.
async function signIn(base, user, password, who) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: 'block' });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  // The checks' own refused calls (403) are expected; any other error is not.
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 403/.test(m.text())) consoleErrors.push(`${who}: ${m.text().slice(0, 300)}`); });
  page.on('pageerror', (e) => consoleErrors.push(`${who}: page error: ${String(e.message || e).slice(0, 300)}`));
  page.on('dialog', (d) => d.accept());
  await page.goto(`${base}/login`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(/\/app\//), page.click('button[type=submit]')]);
  await page.waitForSelector('#nav a');
  return page;
}

async function go(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector('#main h1');
}

// until retries fn (which throws while not yet) for up to ms, reloading
// the page's route between attempts when reload is given.
async function until(what, ms, fn, reload) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what}: ${last && last.message}`);
    if (reload) await reload();
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function step(name, fn) {
  try {
    report(name, true, await fn());
  } catch (e) {
    report(name, false, String(e && e.message || e).slice(0, 600));
  }
}

const A = env.STUDY_A, B = env.STUDY_B, C = env.STUDY_C;
try {
  // The login page itself.
  await step('login page', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const resp = await page.goto(`${env.MARY_URL}/login`);
    const csp = resp.headers()['content-security-policy'] || '';
    if (!csp.includes("script-src 'self'")) throw new Error(`CSP ${csp}`);
    await page.fill('input[name=username]', env.MARY_ADMIN);
    await page.fill('input[name=password]', 'not the password');
    await page.click('button[type=submit]');
    const err = await page.textContent('#login-error');
    if (!/Wrong user name or password/.test(err)) throw new Error(`the form says "${err.trim()}"`);
    await shot(page, 'login');
    await ctx.close();
    return `wrong password: "${err.trim()}"`;
  });

  const admin = await signIn(env.MARY_URL, env.MARY_ADMIN, env.MARY_ADMIN_PW, 'St Mary admin');
  const cookies = await admin.context().cookies();
  const sc = cookies.find((c) => c.name === 'pacsnet_session');
  report('session cookie', sc && sc.httpOnly && sc.sameSite === 'Strict', sc ? `httpOnly=${sc.httpOnly} sameSite=${sc.sameSite} secure=${sc.secure}` : 'no cookie');

  await step('admin grants study A to Riverside in the UI', async () => {
    // From the study's page: "Grant to a partner" opens the form with it.
    await go(admin, `#/study/${encodeURIComponent(A)}`);
    await admin.click('[data-action=grant]');
    await admin.waitForSelector('#grant-form');
    const prefilled = await admin.inputValue('#grant-study');
    if (prefilled !== A) throw new Error(`the form has study "${prefilled}"`);
    await admin.selectOption('#grant-to', { label: 'Riverside' });
    await admin.click('#grant-form button[type=submit]');
    await admin.waitForSelector('#grant-form .alert-ok, #grant-form [role=status]');
    const text = await admin.textContent('#grant-form');
    if (!/Granted to Riverside/.test(text)) throw new Error(text.slice(0, 300));
    await admin.waitForSelector(`#grants tr[data-state=active]:has(span[title="${A}"])`);
    await shot(admin, 'admin-grants');
    return 'granted from the study page; listed as active';
  });

  await step('admin revokes the grant of study C', async () => {
    const row = admin.locator(`#grants tr:has(span[title="${C}"])`).first();
    await row.locator('select[name=reason]').selectOption('treatment-ended');
    await row.locator('button[data-action=revoke]').click();
    await admin.waitForSelector(`#grants tr[data-state=revoked]:has(span[title="${C}"])`);
    return 'revoked (treatment-ended)';
  });

  for (const [hash, name] of [['#/admin/partners', 'admin-partners'], ['#/admin/users', 'admin-users'], ['#/admin/health', 'admin-health'], ['#/studies', 'admin-studies']]) {
    await step(`admin page ${hash}`, async () => {
      await go(admin, hash);
      await admin.waitForLoadState('networkidle');
      await shot(admin, name);
      return 'shown';
    });
  }

  const clin = await signIn(env.RIVER_URL, env.RIVER_CLIN, env.RIVER_CLIN_PW, 'Riverside clinician');
  const studiesRow = (uid) => clin.locator(`#studies tr[data-study-uid="${uid}"]`).first();
  const reloadStudies = async () => { await go(clin, '#/fetches'); await go(clin, '#/studies'); };

  await step('clinician sees A in her worklist, at the partner', async () => {
    await go(clin, '#/studies');
    await until('study A listed', 30000, async () => {
      await studiesRow(A).locator('[data-availability=partner]').waitFor({ timeout: 1000 });
    }, reloadStudies);
    await shot(clin, 'clinician-studies');
    return (await studiesRow(A).innerText()).replace(/\s+/g, ' ').slice(0, 200);
  });

  await step('a revoked study shows as revoked', async () => {
    await until('study C revoked', 30000, async () => {
      await studiesRow(C).locator('[data-availability=revoked]').waitFor({ timeout: 1000 });
    }, reloadStudies);
    if (await studiesRow(C).locator('button:has-text("Fetch")').count()) throw new Error('C still offers Fetch');
    return 'revoked, no Fetch button';
  });

  let sawRunning = false;
  await step('clinician fetches A with live progress', async () => {
    await studiesRow(A).locator('button:has-text("Fetch")').click();
    await clin.waitForURL(/#\/fetch\//);
    const bar = clin.locator('#fetch-progress');
    await bar.waitFor();
    const t0 = Date.now();
    for (;;) {
      const st = await bar.getAttribute('data-state');
      if (st === 'running') {
        if (!sawRunning) await shot(clin, 'clinician-fetch-running');
        sawRunning = true;
      }
      if (st === 'done') break;
      if (st === 'failed') throw new Error(await clin.textContent('#main'));
      if (Date.now() - t0 > 60000) throw new Error(`still ${st} after 60 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await clin.waitForSelector('#open-viewer');
    await shot(clin, 'clinician-fetch');
    return `done in ${Date.now() - t0} ms${sawRunning ? ', progress seen while running' : ''}: ${(await clin.textContent('#fetch-state') || '').trim().slice(0, 120)}`;
  });

  await step('the viewer opens A, scrolls, changes the window', async () => {
    await clin.goto(`${env.RIVER_URL}/app/viewer.html#study=${encodeURIComponent(A)}`);
    await clin.evaluate(() => window.pacsnetViewer.ready);
    const n = await clin.evaluate(() => window.pacsnetViewer.count());
    if (n !== 12) throw new Error(`${n} images, want 12`);
    const canvas = clin.locator('canvas').first();
    const box = await canvas.boundingBox();
    await clin.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const i0 = await clin.evaluate(() => window.pacsnetViewer.currentIndex());
    for (let k = 0; k < 3; k++) {
      await clin.mouse.wheel(0, 120);
      await clin.waitForTimeout(150);
    }
    const i1 = await clin.evaluate(() => window.pacsnetViewer.currentIndex());
    if (i1 === i0) throw new Error(`the wheel did not scroll (image ${i0})`);
    await clin.keyboard.press('End');
    await clin.waitForTimeout(200);
    const iEnd = await clin.evaluate(() => window.pacsnetViewer.currentIndex());
    if (iEnd !== n - 1) throw new Error(`End went to ${iEnd}`);
    await clin.keyboard.press('Home');
    await clin.getByRole('button', { name: /lung/i }).first().click();
    await clin.waitForTimeout(200);
    const voi = await clin.evaluate(() => window.pacsnetViewer.voi());
    if (Math.round(voi.window) !== 1500 || Math.round(voi.level) !== -600) throw new Error(`lung preset gave ${JSON.stringify(voi)}`);
    return `${n} images; wheel ${i0}→${i1}; End→${iEnd}; lung W${voi.window} L${voi.level}`;
  });

  await step('probe', async () => {
    // The soft-tissue window, the middle slice, the mouse over the body.
    await clin.getByRole('button', { name: /soft tissue/i }).first().click();
    for (let k = 0; k < 6; k++) await clin.keyboard.press('ArrowDown');
    await clin.waitForTimeout(300);
    const canvas = clin.locator('canvas').first();
    const box = await canvas.boundingBox();
    await clin.mouse.move(box.x + box.width * 0.45, box.y + box.height * 0.55, { steps: 5 });
    await clin.waitForTimeout(300);
    const pv = clin.locator('#pixel-value');
    const col = Number(await pv.getAttribute('data-col'));
    const row = Number(await pv.getAttribute('data-row'));
    const value = Number(await pv.getAttribute('data-value'));
    const img = await clin.evaluate(() => window.pacsnetViewer.currentImage());
    if (!img || !Number.isFinite(col) || !Number.isFinite(value)) throw new Error(`no readout: ${await pv.textContent()}`);
    await shot(clin, 'viewer');
    return JSON.stringify({ sop_instance_uid: img.sopInstanceUID, col, row, value });
  });

  await step('clinician requests access to patient B', async () => {
    await clin.goto(`${env.RIVER_URL}/app/#/patient`);
    await clin.waitForSelector('#choose-patient');
    await clin.fill('#choose-patient input[name=patient_id]', env.PATIENT_B);
    await clin.click('#choose-patient button[type=submit]');
    await clin.click('#search-partners');
    const card = clin.locator('.partner-result[data-partner="St Mary"]');
    await card.waitFor();
    const found = (await card.innerText()).replace(/\s+/g, ' ');
    await card.locator('form button[type=submit]').click();
    await clin.waitForSelector('text=/Request sent to St Mary/');
    await shot(clin, 'clinician-patient');
    return found.slice(0, 200);
  });

  await step('St Mary admin approves the request', async () => {
    await go(admin, '#/admin/requests');
    const row = admin.locator('#incoming-requests tr[data-state=pending]').first();
    await until('the request listed', 30000, async () => { await row.waitFor({ timeout: 1000 }); },
      async () => { await go(admin, '#/studies'); await go(admin, '#/admin/requests'); });
    await shot(admin, 'admin-requests');
    await row.locator('button[data-action=approve]').click();
    await admin.waitForSelector('text=/Approved/');
    return 'approved';
  });

  await step('B becomes fetchable for the clinician', async () => {
    await go(clin, '#/studies');
    await until('B fetchable', 30000, async () => {
      await studiesRow(B).locator('button:has-text("Fetch")').waitFor({ timeout: 1000 });
    }, reloadStudies);
    return 'listed with a Fetch button';
  });

  await step('readable at 200% zoom (no sideways scrolling)', async () => {
    // 200% zoom of a 1280×800 window is a 640×400 CSS viewport.
    await clin.setViewportSize({ width: 640, height: 400 });
    const wide = [];
    for (const hash of ['#/studies', '#/patient', '#/fetches']) {
      await go(clin, hash);
      await clin.waitForLoadState('networkidle');
      const [sw, cw] = await clin.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
      if (sw > cw + 1) wide.push(`${hash} ${sw}>${cw}`);
    }
    await clin.goto(`${env.RIVER_URL}/app/viewer.html#study=${encodeURIComponent(A)}`);
    await clin.evaluate(() => window.pacsnetViewer.ready);
    const [sw, cw] = await clin.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    if (sw > cw + 1) wide.push(`viewer ${sw}>${cw}`);
    await shot(clin, 'viewer-200-percent');
    await clin.setViewportSize({ width: 1280, height: 800 });
    await clin.goto(`${env.RIVER_URL}/app/#/studies`);
    await clin.waitForSelector('#nav a');
    if (wide.length) throw new Error(wide.join('; '));
    return 'studies, patient, fetches and the viewer fit 640 CSS pixels';
  });

  await step('the clinician cannot reach admin pages, and the server refuses', async () => {
    await go(clin, '#/admin/users');
    await clin.waitForSelector('#not-allowed');
    await shot(clin, 'clinician-not-allowed');
    const navAdmin = await clin.locator('#nav a[data-path^="admin/"]').count();
    if (navAdmin) throw new Error(`${navAdmin} admin links in her menu`);
    const codes = await clin.evaluate(async () => {
      const me = await (await fetch('/api/v1/me')).json();
      const users = (await fetch('/api/v1/users')).status;
      const grant = (await fetch('/api/v1/grants', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Pacsnet-CSRF': me.csrf }, body: '{}' })).status;
      const noCsrf = (await fetch('/api/v1/fetches', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })).status;
      return { users, grant, noCsrf };
    });
    if (codes.users !== 403 || codes.grant !== 403 || codes.noCsrf !== 403) throw new Error(JSON.stringify(codes));
    return `GET users ${codes.users}, POST grants ${codes.grant}, a change without the CSRF header ${codes.noCsrf}`;
  });

  await step('the auditor sees only the audit and verifies the chain', async () => {
    const aud = await signIn(env.MARY_URL, env.MARY_AUDITOR, env.MARY_AUDITOR_PW, 'St Mary auditor');
    const links = await aud.locator('#nav a').allInnerTexts();
    if (links.length !== 1 || links[0] !== 'Audit') throw new Error(`menu: ${links.join(', ')}`);
    await aud.waitForSelector('#verify-chain');
    await aud.click('#verify-chain');
    await aud.waitForSelector('#audit-verify[data-ok]');
    const ok = await aud.getAttribute('#audit-verify', 'data-ok');
    if (ok !== 'true') throw new Error(await aud.textContent('#audit-verify'));
    await aud.waitForLoadState('networkidle');
    await shot(aud, 'auditor-audit');
    const worklist = await aud.evaluate(async () => (await fetch('/api/v1/worklist')).status);
    if (worklist !== 403) throw new Error(`the auditor's worklist: ${worklist}`);
    await go(aud, '#/studies');
    await aud.waitForSelector('#not-allowed');
    return `menu: Audit; chain intact; worklist ${worklist}`;
  });
} catch (e) {
  report('script', false, String(e && e.stack || e).slice(0, 800));
} finally {
  report('console', consoleErrors.length === 0, consoleErrors.slice(0, 10).join(' | '));
  await browser.close();
}
process.exit(failed ? 1 : 0);
