// ohif-check.mjs opens an OHIF viewer, served by someone else (the Go
// test's interop.ServeOHIF), in Debian's headless Chromium through
// playwright-core, and checks that a study shows.
//
//   node ohif-check.mjs PAGE_URL STUDY_UID SCREENSHOT.png
//
// It loads the study list (PAGE_URL/), checks the study is in the QIDO
// answer OHIF received and that its row is drawn (its patient ID is on
// the page), opens PAGE_URL/viewer?StudyInstanceUIDs=STUDY_UID, waits
// until a viewport canvas has non-blank pixels, and saves a screenshot.
// $CHROMIUM overrides the browser (/usr/bin/chromium); $OHIF_TIMEOUT_MS
// the wait for each step (30000).
//
// It prints one JSON line per check, {"name", "ok", "detail"}, the last
// one listing the browser's console errors, and exits 1 if any check
// failed (2 on a usage error).
import { chromium } from 'playwright-core';

const [pageURL, studyUID, screenshot] = process.argv.slice(2);
if (!pageURL || !studyUID || !screenshot) {
  console.error('usage: node ohif-check.mjs PAGE_URL STUDY_UID SCREENSHOT.png');
  process.exit(2);
}
const base = pageURL.replace(/\/+$/, '');
// The study list's screenshot goes beside the viewer's.
const listShot = screenshot.replace(/(\.png)?$/i, '-studylist.png');
const timeout = Number(process.env.OHIF_TIMEOUT_MS || 30000);

let failed = 0;
function report(name, ok, detail) {
  if (!ok) failed++;
  process.stdout.write(JSON.stringify({ name, ok: !!ok, detail: detail || '' }) + '\n');
}

const consoleErrors = [];
const failedRequests = [];
const serverRequests = new Set();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run'],
});
const t0 = Date.now();
const since = () => `${Date.now() - t0} ms`;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: 'block' });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text().slice(0, 300)); });
  page.on('pageerror', (e) => consoleErrors.push(`page error: ${String(e.message || e).slice(0, 300)}`));
  page.on('requestfailed', (r) => failedRequests.push(`${r.method()} ${r.url().slice(0, 200)}: ${r.failure() && r.failure().errorText}`));
  // What OHIF asks the server, UIDs folded, for the report.
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin === new URL(base).origin) return;
    const path = u.pathname.replace(/\/[0-9]+(\.[0-9]+)+/g, '/{uid}').replace(/\/frames\/[0-9,]+/, '/frames/{n}');
    const params = [...u.searchParams.keys()].sort().join(',');
    serverRequests.add(`${r.method()} ${path}${params ? '?' + params : ''} [${r.headers().accept || ''}]`);
  });
  page.on('response', (r) => { if (r.status() >= 400) failedRequests.push(`${r.request().method()} ${r.url().slice(0, 200)}: HTTP ${r.status()}`); });

  // The study list: OHIF asks QIDO-RS for studies and draws a row each
  // (name, date, modalities, description, instances: no UID or patient
  // ID). A row, once clicked, shows the patient ID and a "Basic Viewer"
  // button that opens the viewer on that study's UID.
  const viewerURL = `${base}/viewer?StudyInstanceUIDs=${encodeURIComponent(studyUID)}`;
  let opened = false;
  try {
    // Caught at once: a time-out before goto returns must not be an
    // unhandled rejection.
    const qido = page.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname.endsWith('/studies'), { timeout }).catch((e) => e);
    await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
    const resp = await qido;
    if (resp instanceof Error) throw resp;
    if (resp.status() !== 200) throw new Error(`QIDO studies answered HTTP ${resp.status()}`);
    const studies = await resp.json();
    const listed = studies.find((ds) => ds['0020000D'] && ds['0020000D'].Value && ds['0020000D'].Value[0] === studyUID);
    if (!listed) throw new Error(`the QIDO answer OHIF received (${studies.length} studies) lacks ${studyUID}`);
    const pid = String((listed['00100020'] && listed['00100020'].Value && listed['00100020'].Value[0]) || '');
    const rows = page.locator('tr[aria-selected]');
    await rows.first().waitFor({ state: 'visible', timeout });
    const n = await rows.count();
    let found = -1;
    for (let i = 0; i < n && found < 0; i++) {
      await rows.nth(i).click();
      const shown = page.getByText(pid, { exact: true });
      if (!pid || await shown.first().isVisible().catch(() => false) ||
        await shown.first().waitFor({ state: 'visible', timeout: 1500 }).then(() => true, () => false)) found = i;
    }
    if (found < 0) throw new Error(`none of the ${n} rows drawn shows patient ID ${pid} when selected`);
    const listedAfter = since();
    await page.getByRole('button', { name: 'Basic Viewer' }).first().click();
    await page.waitForURL((u) => u.pathname.endsWith('/viewer') && (u.searchParams.get('StudyInstanceUIDs') || '').split(',').includes(studyUID), { timeout });
    opened = true;
    report('ohif.studylist', true, `${studies.length} studies from QIDO, ${n} rows drawn; row ${found + 1} showed patient ID ${pid} after ${listedAfter} and its Basic Viewer button opened /viewer?StudyInstanceUIDs=${studyUID}`);
  } catch (e) {
    report('ohif.studylist', false, String(e.message || e).split('\n')[0]);
  }
  await page.screenshot({ path: listShot }).catch(() => {});

  // The viewer on the study: wait for a viewport canvas with an image.
  const t1 = Date.now();
  try {
    if (!opened) await page.goto(viewerURL, { waitUntil: 'domcontentloaded' });
    const handle = await page.waitForFunction(() => {
      let best = null;
      for (const c of document.querySelectorAll('canvas')) {
        if (c.width < 32 || c.height < 32) continue;
        const r = c.getBoundingClientRect();
        if (r.width < 32 || r.height < 32) continue;
        const probe = document.createElement('canvas');
        probe.width = c.width; probe.height = c.height;
        const ctx = probe.getContext('2d', { willReadFrequently: true });
        try { ctx.drawImage(c, 0, 0); } catch { continue; }
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let lit = 0;
        const levels = new Set();
        for (let i = 0; i < d.length; i += 4 * 7) {
          const y = (d[i] * 299 + d[i + 1] * 587 + d[i + 2] * 114) / 1000;
          if (y > 24) lit++;
          if (levels.size < 64) levels.add(d[i] >> 2);
        }
        const frac = lit / (d.length / (4 * 7));
        if (frac > 0.01 && levels.size > 4 && (!best || frac > best.frac)) best = { frac, levels: levels.size, w: c.width, h: c.height, cls: String(c.className) };
      }
      return best;
    }, null, { timeout, polling: 250 });
    const best = await handle.jsonValue();
    report('ohif.viewer', true, `a ${best.w}x${best.h} canvas (${best.cls || 'no class'}) drew an image: ${(best.frac * 100).toFixed(1)}% of pixels lit, ${best.levels}+ grey levels, after ${Date.now() - t1} ms`);
  } catch (e) {
    report('ohif.viewer', false, `no viewport canvas with non-blank pixels after ${Date.now() - t1} ms: ${String(e.message || e).split('\n')[0]}`);
  }
  // OHIF's onboarding tour covers part of the viewport on a first visit.
  const skip = page.getByRole('button', { name: 'Skip all' });
  if (await skip.first().isVisible().catch(() => false)) await skip.first().click().catch(() => {});
  try {
    await page.screenshot({ path: screenshot });
    report('ohif.screenshot', true, screenshot);
  } catch (e) {
    report('ohif.screenshot', false, String(e.message || e));
  }
} catch (e) {
  report('ohif.browser', false, String(e.message || e));
} finally {
  await browser.close();
}
// Console errors are reported, not judged: OHIF logs some on any server
// (a missing optional resource); the report is for the reader.
report('ohif.console', true, `${consoleErrors.length} console errors${consoleErrors.length ? ': ' + JSON.stringify([...new Set(consoleErrors)].slice(0, 10)) : ''}; ${failedRequests.length} failed requests${failedRequests.length ? ': ' + JSON.stringify([...new Set(failedRequests)].slice(0, 10)) : ''}`);
report('ohif.requests', true, `${serverRequests.size} kinds of request to the DICOMweb server: ${JSON.stringify([...serverRequests].sort())}`);
process.exit(failed ? 1 : 0);
