// Browser check of the viewer in headless Chromium (playwright-core).
//
//   VIEWER_BASE=http://127.0.0.1:PORT   the devserver (test/devserver.mjs) or a node serving /app/
//   STUDY=<uid>                         a CT study with several slices (scroll, presets, pixel value)
//   CINE_STUDY=<uid>                    optional: a study whose first series is multi-frame (cine)
//   MORE_STUDIES=<uid>,<uid>            optional: more studies that must open without errors (codecs)
//   SCREENSHOT=/path/viewer.png         optional: screenshot of the CT
//   CHROMIUM=/usr/bin/chromium          optional
//   CPU=1                               optional: open the viewer with #cpu=1 (Cornerstone's CPU renderer)
//   CHROMIUM_ARGS="..."                 optional: replaces the default flags (see below)
//
// Exit status 0 only if every check passed. It checks: the image loads and
// renders, wheel/keys/slider scroll, presets set the VOI, left-drag W/L
// changes it, zoom and length tools, invert, pixel value under the cursor
// (data-col/row/value against the frame read independently over WADO-RS),
// cine on a multi-frame instance, the 404 and 401 messages, and that the
// console shows no error, no CSP violation and no failed wasm load, and no
// request leaves 127.0.0.1.
import { chromium } from 'playwright-core';

const base = (process.env.VIEWER_BASE || '').replace(/\/$/, '');
const study = process.env.STUDY || '';
if (!base || !study) {
  console.error('viewer-check: set VIEWER_BASE and STUDY');
  process.exit(2);
}
const cpu = process.env.CPU === '1';
const hashExtra = cpu ? '&cpu=1' : '';
// Chromium flags: headless with SwiftShader for WebGL (no GPU here).
// CHROMIUM_ARGS="" (empty) runs without them: no WebGL, and the viewer
// falls back to Cornerstone's CPU renderer by itself.
const CHROMIUM_ARGS = process.env.CHROMIUM_ARGS !== undefined
  ? process.env.CHROMIUM_ARGS.split(/\s+/).filter(Boolean)
  : ['--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist'];

let failures = 0;
function check(ok, what, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ` (${detail})` : ''}`);
  if (!ok) failures++;
}

// ---- independent pixel read: WADO-RS frame as octet-stream ----------------------
async function frameBytes(url) {
  const res = await fetch(url, { headers: { Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
  if (!res.ok) throw new Error(`frame ${res.status}`);
  const ct = res.headers.get('content-type') || '';
  const m = /boundary="?([^";]+)"?/i.exec(ct);
  const buf = Buffer.from(await res.arrayBuffer());
  if (!m) return buf;
  const start = buf.indexOf('\r\n\r\n') + 4;
  const end = buf.indexOf(Buffer.from(`\r\n--${m[1]}`), start);
  return buf.subarray(start, end);
}
async function expectedValue(frameURL, ds, col, row) {
  const v = (t) => ds[t] && ds[t].Value ? ds[t].Value[0] : undefined;
  const bytes = await frameBytes(frameURL);
  const cols = Number(v('00280011')); const bits = Number(v('00280100'));
  const signed = Number(v('00280103')) === 1;
  const i = row * cols + col;
  let raw;
  if (bits === 16) raw = signed ? bytes.readInt16LE(i * 2) : bytes.readUInt16LE(i * 2);
  else if (bits === 8) raw = signed ? bytes.readInt8(i) : bytes.readUInt8(i);
  else throw new Error(`bits allocated ${bits}`);
  const slope = Number(v('00281053') ?? 1); const intercept = Number(v('00281052') ?? 0);
  return raw * slope + intercept;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: CHROMIUM_ARGS,
});
const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
const outside = [];
await context.route('**/*', (route) => {
  const u = new URL(route.request().url());
  if (u.protocol === 'data:' || u.protocol === 'blob:' || u.hostname === '127.0.0.1') return route.continue();
  outside.push(u.href);
  return route.abort();
});

const wasmLoads = new Map(); // file -> "status content-type"
context.on('response', (r) => {
  if (/\.wasm$/.test(new URL(r.url()).pathname)) {
    wasmLoads.set(new URL(r.url()).pathname, `${r.status()} ${r.headers()['content-type']}`);
  }
});
const consoleLog = []; // every console message of every page, to look for patient data
function watch(page, label) {
  const problems = [];
  page.on('console', (m) => {
    const t = m.text();
    consoleLog.push(t);
    if (m.type() === 'error' || /Content Security Policy|magic word|wasm/i.test(t)) problems.push(`${label} console ${m.type()}: ${t}`);
  });
  page.on('pageerror', (e) => problems.push(`${label} page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`${label} request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${label} HTTP ${r.status()} ${r.url()}`); });
  return problems;
}
async function addCSPListener(page) {
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
}

// Non-black pixels of the viewport, from a screenshot (a WebGL canvas
// cannot be read back), sampled every 97th pixel.
async function litPixels(page) {
  const shot = (await page.locator('#viewport').screenshot()).toString('base64');
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width; c.height = img.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let k = 0;
    for (let i = 0; i < d.length; i += 4 * 97) if (d[i] + d[i + 1] + d[i + 2] > 30) k++;
    return k;
  }, shot);
}

async function openViewer(page, uid) {
  await page.goto(`${base}/app/viewer.html#study=${encodeURIComponent(uid)}${hashExtra}`);
  return page.evaluate(() => window.pacsnetViewer.ready.then((r) => r, (e) => ({ error: String(e && e.message) })));
}
const api = (page, expr) => page.evaluate(expr);
async function waitIndex(page, want) {
  await page.waitForFunction((w) => window.pacsnetViewer.currentIndex() === w, want, { timeout: 5000 }).catch(() => {});
  return api(page, () => window.pacsnetViewer.currentIndex());
}

// ---- the CT -----------------------------------------------------------------------
const page = await context.newPage();
await addCSPListener(page);
const problems = watch(page, 'ct');
const t0 = Date.now();
const r = await openViewer(page, study);
check(r && !r.error, 'viewer ready on the CT', r && (r.error || `${r.renderer}, ${Date.now() - t0} ms`));
const canvas = page.locator('#viewport canvas').first();
await canvas.waitFor({ timeout: 10000 });
const n = await api(page, () => window.pacsnetViewer.count());
check(n > 1, 'several images in the series', `count ${n}`);
check((await api(page, () => window.pacsnetViewer.currentIndex())) === 0, 'starts at the first image');
check((await page.textContent('#slice-text')) === `image 1 / ${n}`, 'shows image 1 / n', await page.textContent('#slice-text'));

// The viewport shows the image: a screenshot of it (WebGL canvases cannot be
// read back) drawn into a 2D canvas has enough non-black pixels.
const lit = await litPixels(page);
check(lit > 50, 'the canvas shows the image', `${lit} sampled lit pixels`);

// Scrolling: keys, wheel, slider.
await page.focus('#viewport');
await page.keyboard.press('ArrowDown');
check((await waitIndex(page, 1)) === 1, 'ArrowDown goes to image 2');
await page.keyboard.press('End');
check((await waitIndex(page, n - 1)) === n - 1, 'End goes to the last image');
await page.keyboard.press('Home');
check((await waitIndex(page, 0)) === 0, 'Home goes to the first image');
await page.keyboard.press('PageDown');
check((await waitIndex(page, Math.min(10, n - 1))) === Math.min(10, n - 1), 'PageDown jumps 10');
const box = await canvas.boundingBox();
const cx = box.x + box.width / 2; const cy = box.y + box.height / 2;
await page.mouse.move(cx, cy);
const before = await api(page, () => window.pacsnetViewer.currentIndex());
await page.mouse.wheel(0, before >= n - 1 ? -120 : 120);
await page.waitForTimeout(300);
const afterWheel = await api(page, () => window.pacsnetViewer.currentIndex());
check(afterWheel !== before, 'mouse wheel scrolls', `${before} -> ${afterWheel}`);
await page.locator('#slice').fill('3');
check((await waitIndex(page, 2)) === 2, 'slider goes to image 3');
check((await page.textContent('#slice-text')) === `image 3 / ${n}`, 'label follows', await page.textContent('#slice-text'));

// Presets.
await page.getByRole('button', { name: /Soft tissue/ }).click();
let voi = await api(page, () => window.pacsnetViewer.voi());
check(voi.window === 400 && voi.level === 40, 'Soft tissue preset W400 L40', JSON.stringify(voi));
check(/W 400 L 40/.test(await page.textContent('#voi-text')), 'W/L shown', await page.textContent('#voi-text'));
await page.getByRole('button', { name: /Lung/ }).click();
voi = await api(page, () => window.pacsnetViewer.voi());
check(voi.window === 1500 && voi.level === -600, 'Lung preset W1500 L-600', JSON.stringify(voi));

// W/L drag with the left button.
await page.mouse.move(cx, cy);
await page.mouse.down();
await page.mouse.move(cx + 60, cy + 40, { steps: 5 });
await page.mouse.up();
const voi2 = await api(page, () => window.pacsnetViewer.voi());
check(voi2.window !== voi.window || voi2.level !== voi.level, 'left drag changes W/L', JSON.stringify(voi2));

// Pixel value under the cursor, against the frame read over WADO-RS.
const pv = async () => page.evaluate(() => {
  const e = document.getElementById('pixel-value');
  return { col: e.dataset.col, row: e.dataset.row, value: e.dataset.value, text: e.textContent };
});
const md = await (await fetch(`${base}/dicom-web/studies/${study}/series/${(await api(page, () => window.pacsnetViewer.currentSeriesUID()))}/metadata`)).json();
let mismatches = 0; let samples = 0; const seen = new Set();
for (const [fx, fy] of [[0.5, 0.5], [0.3, 0.6], [0.62, 0.41], [0.45, 0.7], [0.55, 0.25]]) {
  await page.mouse.move(box.x + box.width * fx, box.y + box.height * fy);
  await page.waitForTimeout(50);
  const p = await pv();
  if (p.col === undefined) continue;
  seen.add(`${p.col},${p.row}`);
  // which instance is shown: instance number from the tags panel
  const inst = await page.evaluate(() => {
    const dts = [...document.querySelectorAll('#tags-list dt')];
    const i = dts.findIndex((d) => d.textContent === 'Instance number');
    return i >= 0 ? dts[i].nextElementSibling.textContent : null;
  });
  const ds = md.find((d) => String(d['00200013']?.Value?.[0]) === inst);
  const sop = ds['00080018'].Value[0];
  const url = `${base}/dicom-web/studies/${study}/series/${ds['0020000E'].Value[0]}/instances/${sop}/frames/1`;
  const want = await expectedValue(url, ds, Number(p.col), Number(p.row));
  samples++;
  if (Math.abs(want - Number(p.value)) > 1e-6) { mismatches++; console.log(`     at ${p.col},${p.row}: page ${p.value}, file ${want}`); }
}
check(samples >= 4 && seen.size >= 4, 'pixel-value data attributes follow the mouse', `${samples} samples, ${seen.size} positions`);
check(mismatches === 0, 'pixel values match the frame read over WADO-RS (modality LUT applied)', `${mismatches} mismatches`);
const ptext = (await pv()).text;
check(/^col \d+, row \d+: -?[\d.]+ HU$/.test(ptext), 'pixel text "col c, row r: v HU"', ptext);

// Zoom tool, reset, pan, invert.
await page.getByRole('button', { name: 'Zoom', exact: true }).click();
const z0 = await page.textContent('#zoom-text');
await page.mouse.move(cx, cy);
await page.mouse.down();
await page.mouse.move(cx, cy - 80, { steps: 6 });
await page.mouse.up();
const z1 = await page.textContent('#zoom-text');
check(z0 !== z1, 'zoom tool zooms', `${z0} -> ${z1}`);
await page.getByRole('button', { name: 'Pan', exact: true }).click();
await page.mouse.move(cx, cy); await page.mouse.down(); await page.mouse.move(cx + 50, cy + 30, { steps: 4 }); await page.mouse.up();
await page.getByRole('button', { name: /Invert/ }).click();
check((await page.getAttribute('#invert', 'aria-pressed')) === 'true', 'invert toggles');
await page.getByRole('button', { name: /Reset/ }).click();
check((await page.getAttribute('#invert', 'aria-pressed')) === 'false', 'reset clears invert');

// Length measurement in mm.
await page.getByRole('button', { name: 'Length', exact: true }).click();
await page.mouse.move(cx - 80, cy);
await page.mouse.down();
await page.mouse.move(cx + 40, cy + 60, { steps: 8 });
await page.mouse.up();
await page.waitForTimeout(300);
const lengthText = await page.evaluate(() => [...document.querySelectorAll('#viewport svg text')].map((t) => t.textContent).join(' '));
check(/\d+(\.\d+)? mm/.test(lengthText), 'length measured in mm', lengthText);

// Tags panel.
const tags = await page.textContent('#tags-list');
check(/Pixel spacing/.test(tags) && /Transfer syntax/.test(tags) && /Rows × columns/.test(tags), 'key attributes panel', tags.slice(0, 80).replace(/\s+/g, ' '));

if (process.env.SCREENSHOT) {
  await page.getByRole('button', { name: 'W/L', exact: true }).click();
  await page.getByRole('button', { name: /Soft tissue/ }).click();
  await page.mouse.move(cx + 20, cy + 10);
  await page.screenshot({ path: process.env.SCREENSHOT });
  console.log(`     screenshot ${process.env.SCREENSHOT}`);
}
// Series strip: switch to another series (if the study has several) and back by the hash.
const uids = await api(page, () => window.pacsnetViewer.seriesUIDs());
if (uids.length > 1) {
  const cur = await api(page, () => window.pacsnetViewer.currentSeriesUID());
  const other = uids.find((u) => u !== cur);
  const btn = page.locator(`#series-list button[data-series="${other}"]`);
  await btn.focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction((o) => window.pacsnetViewer.currentSeriesUID() === o && window.pacsnetViewer.count() > 0, other, { timeout: 10000 }).catch(() => {});
  const now = await api(page, () => window.pacsnetViewer.currentSeriesUID());
  check(now === other && (await btn.getAttribute('aria-current')) === 'true' && page.url().includes(`series=${other}`),
    'series strip switches series (keyboard) and the hash follows', `${uids.length} series`);
  const pg = await context.newPage();
  await pg.goto(`${base}/app/viewer.html#study=${encodeURIComponent(study)}&series=${encodeURIComponent(other)}${hashExtra}`);
  await pg.evaluate(() => window.pacsnetViewer.ready);
  check((await pg.evaluate(() => window.pacsnetViewer.currentSeriesUID())) === other, '#series= opens that series');
  await pg.close();
}

const csp = await page.evaluate(() => window.__csp);
check(csp.length === 0, 'no CSP violations', csp.join('; '));
check(problems.length === 0, 'no console errors, failed requests or wasm errors', problems.join(' | '));

// ---- cine on a multi-frame instance ------------------------------------------------
if (process.env.CINE_STUDY) {
  const p2 = await context.newPage();
  await addCSPListener(p2);
  const pr2 = watch(p2, 'cine');
  const r2 = await openViewer(p2, process.env.CINE_STUDY);
  check(r2 && !r2.error, 'multi-frame study opens', r2 && r2.error);
  const frames = await api(p2, () => window.pacsnetViewer.count());
  check(frames > 1, 'multi-frame: one image per frame', `count ${frames}`);
  check(await p2.isVisible('#play'), 'cine controls shown');
  await p2.fill('#fps', '20');
  await p2.click('#play');
  const seenIdx = new Set();
  for (let i = 0; i < 12; i++) { seenIdx.add(await api(p2, () => window.pacsnetViewer.currentIndex())); await p2.waitForTimeout(60); }
  await p2.click('#play');
  check(seenIdx.size >= Math.min(frames, 3), 'cine plays through the frames', `${seenIdx.size} frames seen`);
  check((await p2.textContent('#play')) === 'Play', 'pause stops it');
  const csp2 = await p2.evaluate(() => window.__csp);
  check(csp2.length === 0 && pr2.length === 0, 'cine page: no errors', [...csp2, ...pr2].join(' | '));
  await p2.close();
}

// ---- other codecs -----------------------------------------------------------------------
for (const uid of (process.env.MORE_STUDIES || '').split(',').filter(Boolean)) {
  const p3 = await context.newPage();
  await addCSPListener(p3);
  const pr3 = watch(p3, uid);
  const r3 = await openViewer(p3, uid);
  await p3.waitForTimeout(500);
  const err = await p3.evaluate(() => (document.getElementById('error').hidden ? '' : document.getElementById('error').textContent));
  const ts = await p3.evaluate(() => {
    const dts = [...document.querySelectorAll('#tags-list dt')];
    const i = dts.findIndex((d) => d.textContent === 'Transfer syntax');
    return i >= 0 ? dts[i].nextElementSibling.textContent : '';
  });
  await p3.mouse.move(700, 450);
  const lit3 = await litPixels(p3);
  const csp3 = await p3.evaluate(() => window.__csp);
  check(r3 && !r3.error && !err && lit3 > 50 && csp3.length === 0 && pr3.length === 0, `study ${uid.slice(-12)} renders`,
    [ts, `${lit3} lit`, r3 && r3.error, err, ...csp3, ...pr3].filter(Boolean).join(' | '));
  await p3.close();
}

// ---- error messages ----------------------------------------------------------------------
{
  const p4 = await context.newPage();
  await openViewer(p4, '1.2.3.4.5.6.7.8.9');
  const msg = await p4.textContent('#error');
  check(/not here yet/.test(msg) && /fetch it first/.test(msg), '404: "not here yet — fetch it first"', msg);
  await p4.close();
  const p5 = await context.newPage();
  await p5.route('**/dicom-web/**', (route) => route.fulfill({ status: 401, contentType: 'application/json', body: '{"error":"no session","code":"unauthenticated"}' }));
  await openViewer(p5, study);
  const msg401 = await p5.textContent('#error');
  const href = await p5.getAttribute('#error a', 'href').catch(() => null);
  check(/session ended/.test(msg401) && href === '/login', '401: "session ended — log in again" with a link to /login', msg401);
  await p5.close();
  // The session ends between the metadata and the frames.
  const p6 = await context.newPage();
  await p6.route('**/frames/**', (route) => route.fulfill({ status: 401, contentType: 'application/json', body: '{"error":"no session","code":"unauthenticated"}' }));
  await openViewer(p6, study);
  await p6.waitForSelector('#error:not([hidden])', { timeout: 5000 }).catch(() => {});
  const msg6 = await p6.textContent('#error');
  check(/session ended/.test(msg6), '401 on a frame: "session ended"', msg6);
  await p6.close();
}

// ---- 200% zoom: a 700x450 CSS-pixel window with deviceScaleFactor 2 --------------
{
  const z = await browser.newContext({ viewport: { width: 700, height: 450 }, deviceScaleFactor: 2 });
  const pz = await z.newPage();
  const rz = await openViewer(pz, study);
  const overflow = await pz.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(rz && !rz.error && overflow <= 0, '200% zoom: opens, no horizontal scrolling', `overflow ${overflow}px`);
  if (process.env.SCREENSHOT) {
    const zp = process.env.SCREENSHOT.replace(/(\.png)?$/, '-200.png');
    await pz.screenshot({ path: zp, fullPage: true });
    console.log(`     screenshot ${zp}`);
  }
  await z.close();
}

console.log(`     wasm loaded: ${[...wasmLoads].map(([f, s]) => `${f} ${s}`).join(', ') || 'none'}`);
check([...wasmLoads.values()].every((s) => s.startsWith('200 application/wasm')), 'every .wasm answered as application/wasm');
{
  const first = md[0];
  const pn = first['00100010']?.Value?.[0]?.Alphabetic || '';
  const pid = first['00100020']?.Value?.[0] || '';
  const leaked = consoleLog.filter((t) => (pid && t.includes(pid)) || pn.split('^').some((part) => part.length > 2 && t.includes(part)));
  check(leaked.length === 0, 'no patient name or ID in the console', `${consoleLog.length} messages; ${leaked.length} leaked`);
}
check(outside.length === 0, 'nothing requested outside 127.0.0.1', outside.join(' '));
await browser.close();
console.log(failures ? `viewer-check: ${failures} check(s) failed` : 'viewer-check: all checks passed');
process.exit(failures ? 1 : 0);
