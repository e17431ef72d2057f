// pacsnet viewer: /app/viewer.html#study=<StudyUID>[&series=<SeriesUID>]
//
// Reads the node's DICOMweb (same origin, session cookie): QIDO-RS for the
// study's series, WADO-RS metadata for a series' instances, and the frames
// through the dicom-image-loader's wadors: scheme, decoded in its web worker
// (decodeImageFrameWorker.js beside this file, codecs' .wasm beside it too).
// Renders with Cornerstone3D's stack viewport (WebGL, or its CPU path when
// there is no WebGL or the hash says cpu=1).
//
// Nothing here writes patient data into HTML or to the console.
import {
  RenderingEngine, Enums, init as csInit, eventTarget, setUseCPURendering,
  getShouldUseCPURendering, utilities as csUtils,
} from '@cornerstonejs/core';
import {
  init as toolsInit, addTool, ToolGroupManager, WindowLevelTool, PanTool, ZoomTool,
  LengthTool, StackScrollTool, Enums as ToolEnums, annotation,
} from '@cornerstonejs/tools';
import dicomImageLoader, { wadors } from '@cornerstonejs/dicom-image-loader';
import { listSeries, seriesMetadata, frames as buildFrames, HTTPError, value, num, personName } from './dicomweb.js';
import { renderTags } from './tags.js';

const $ = (id) => document.getElementById(id);
const el = {
  title: $('study-title'), error: $('error'), status: $('status'), seriesList: $('series-list'),
  viewport: $('viewport'), slice: $('slice'), sliceText: $('slice-text'), voiText: $('voi-text'),
  zoomText: $('zoom-text'), pixel: $('pixel-value'), tags: $('tags-list'), cine: $('cine'),
  play: $('play'), fps: $('fps'), invert: $('invert'), reset: $('reset'),
};

const ENGINE_ID = 'pacsnet';
const VIEWPORT_ID = 'stack';
const TOOL_GROUP_ID = 'pacsnet-tools';
const TOOLS = { WindowLevel: WindowLevelTool, Pan: PanTool, Zoom: ZoomTool, Length: LengthTool };

const state = {
  study: '', series: [], seriesUID: '', frames: [], viewport: null, engine: null,
  toolGroup: null, leftTool: 'WindowLevel', cineTimer: 0, loadToken: 0,
};

// ---- test API --------------------------------------------------------------
let resolveReady; let rejectReady;
const ready = new Promise((res, rej) => { resolveReady = res; rejectReady = rej; });
ready.catch(() => {}); // a failure is shown in the page; tests still see the rejection
function currentVOI() {
  const vp = state.viewport;
  const r = vp && vp.getProperties().voiRange;
  if (!r) return { window: undefined, level: undefined };
  const { windowWidth, windowCenter } = csUtils.windowLevel.toWindowLevel(r.lower, r.upper);
  return { window: round(windowWidth, 2), level: round(windowCenter, 2) };
}
Object.defineProperty(window, 'pacsnetViewer', {
  value: Object.freeze({
    ready,
    seriesUIDs: () => state.series.map((s) => s.uid),
    currentSeriesUID: () => state.seriesUID,
    currentIndex: () => (state.viewport ? state.viewport.getCurrentImageIdIndex() : -1), // 0-based
    count: () => state.frames.length,
    // The SOP Instance UID and frame number (from 1) on screen: a test
    // compares the pixel readout with the DICOM file it came from.
    currentImage: () => {
      const i = state.viewport ? state.viewport.getCurrentImageIdIndex() : -1;
      const f = state.frames[i];
      if (!f) return null;
      const m = /\/instances\/([^/]+)\/frames\//.exec(f.imageId);
      return { sopInstanceUID: m ? decodeURIComponent(m[1]) : '', frame: f.frame };
    },
    voi: currentVOI,
  }),
  writable: false,
  configurable: false,
});

// ---- messages ----------------------------------------------------------------
function round(x, d = 0) { const f = 10 ** d; return Math.round(x * f) / f; }
function setStatus(text) { el.status.textContent = text; }
function showError(err) {
  // The image loader rejects with its XMLHttpRequest (or an error with a
  // status); treat those like our own HTTP errors.
  if (!(err instanceof HTTPError) && err && typeof err.status === 'number' && err.status >= 400) {
    err = new HTTPError(err.status, `a frame request failed (${err.status})`);
  } else if (!(err instanceof Error) && !(err instanceof HTTPError)) {
    err = new Error('an image could not be loaded');
  }
  el.error.replaceChildren();
  const status = err instanceof HTTPError ? err.status : undefined;
  const p = document.createElement('p');
  if (status === 401) {
    p.append('Your session ended \u2014 log in again. ');
    const a = document.createElement('a');
    a.href = '/login';
    a.textContent = 'Log in';
    p.append(a);
  } else if (status === 404) {
    p.textContent = 'This study is not here yet \u2014 fetch it first (from the worklist), then open it again.';
  } else if (status === 403) {
    p.textContent = 'You may not view images (your role has no access to DICOMweb).';
  } else if (status === 0) {
    p.textContent = err.message;
  } else {
    p.textContent = `The images could not be loaded: ${err && err.message ? err.message : String(err)}`;
  }
  el.error.append(p);
  el.error.hidden = false;
  setStatus('');
}
function clearError() { el.error.hidden = true; el.error.replaceChildren(); }

function parseHash() {
  const h = new URLSearchParams(location.hash.replace(/^#/, ''));
  return { study: h.get('study') || '', series: h.get('series') || '', cpu: h.get('cpu') === '1' };
}

// ---- set-up ------------------------------------------------------------------
async function setUp(forceCPU) {
  csInit();
  if (forceCPU) setUseCPURendering(true);
  toolsInit();
  const base = new URL('.', import.meta.url).href; // where viewer.js, the worker and the .wasm files are
  dicomImageLoader.init({
    maxWebWorkers: Math.max(1, Math.min(2, (navigator.hardwareConcurrency || 2) - 1)),
    wasmBasePath: base,
  });

  for (const T of [WindowLevelTool, PanTool, ZoomTool, LengthTool, StackScrollTool]) addTool(T);
  const tg = ToolGroupManager.createToolGroup(TOOL_GROUP_ID);
  for (const T of [WindowLevelTool, PanTool, ZoomTool, LengthTool, StackScrollTool]) tg.addTool(T.toolName);
  const MB = ToolEnums.MouseBindings;
  tg.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MB.Wheel }] });
  tg.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MB.Auxiliary }] });
  tg.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MB.Secondary }] });
  tg.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MB.Primary }] });
  tg.setToolPassive(LengthTool.toolName);
  state.toolGroup = tg;

  const engine = new RenderingEngine(ENGINE_ID);
  engine.enableElement({
    viewportId: VIEWPORT_ID,
    type: Enums.ViewportType.STACK,
    element: el.viewport,
    defaultOptions: { background: [0, 0, 0] },
  });
  tg.addViewport(VIEWPORT_ID, ENGINE_ID);
  state.engine = engine;
  state.viewport = engine.getViewport(VIEWPORT_ID);
  el.viewport.addEventListener('contextmenu', (e) => e.preventDefault());
  new ResizeObserver(() => engine.resize(true, true)).observe(el.viewport);

  el.viewport.addEventListener(Enums.Events.STACK_NEW_IMAGE, onNewImage);
  el.viewport.addEventListener(Enums.Events.VOI_MODIFIED, showVOI);
  el.viewport.addEventListener(Enums.Events.CAMERA_MODIFIED, showZoom);
  eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_ERROR, (e) => {
    const d = e.detail || {};
    if (!d.imageId || !state.frames.some((f) => f.imageId === d.imageId)) return;
    const status = d.error && (d.error.status || (d.error.request && d.error.request.status));
    showError(status ? new HTTPError(status, `frame request failed (${status})`)
      : new Error('an image could not be decoded'));
  });
}

// ---- series ------------------------------------------------------------------
function renderSeriesList() {
  const frag = document.createDocumentFragment();
  for (const s of state.series) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.series = s.uid;
    const desc = document.createElement('span');
    desc.className = 'desc';
    desc.textContent = s.description || `Series ${s.number ?? ''}`.trim();
    const meta = document.createElement('span');
    meta.className = 'meta';
    const n = s.count ?? '?';
    meta.textContent = `${s.modality || '??'} \u00b7 #${s.number ?? '\u2013'} \u00b7 ${n} image${n === 1 ? '' : 's'}`;
    b.append(desc, meta);
    b.setAttribute('aria-label', `${desc.textContent}, ${meta.textContent}`);
    b.addEventListener('click', () => openSeries(s.uid).catch(showError));
    li.append(b);
    frag.append(li);
  }
  el.seriesList.replaceChildren(frag);
}
function markCurrentSeries() {
  for (const b of el.seriesList.querySelectorAll('button')) {
    b.setAttribute('aria-current', b.dataset.series === state.seriesUID ? 'true' : 'false');
  }
}

async function openSeries(seriesUID) {
  const token = ++state.loadToken;
  stopCine();
  clearError();
  state.seriesUID = seriesUID;
  markCurrentSeries();
  const h = new URLSearchParams({ study: state.study, series: seriesUID });
  history.replaceState(null, '', `#${h}`);
  setStatus('Loading the series\u2026');
  const md = await seriesMetadata(state.study, seriesUID);
  if (token !== state.loadToken) return;
  const frames = buildFrames(state.study, seriesUID, md, (id, ds) => wadors.metaDataManager.add(id, ds));
  if (!frames.length) throw new Error('this series has no images');
  state.frames = frames;
  annotation.state.removeAllAnnotations();
  const first = frames[0].ds;
  el.title.textContent = [personName(first, '00100010'), value(first, '00081030')].filter(Boolean).join(' \u2014 ') || 'Viewer';
  document.title = 'pacsnet viewer';
  el.slice.max = String(frames.length);
  el.slice.value = '1';
  el.slice.disabled = frames.length < 2;
  el.cine.hidden = frames.length < 2;
  await state.viewport.setStack(frames.map((f) => f.imageId), 0);
  if (token !== state.loadToken) return;
  state.viewport.render();
  setInvert(false);
  setStatus(frames.length > 1
    ? `${frames.length} images. Scroll with the mouse wheel, the arrow keys or the slider.`
    : '1 image.');
  onNewImage();
}

// ---- per-image display ---------------------------------------------------------
function currentFrame() {
  const i = state.viewport ? state.viewport.getCurrentImageIdIndex() : 0;
  return { i, f: state.frames[i] };
}
function showPosition(i) {
  el.sliceText.textContent = `image ${i + 1} / ${state.frames.length}`;
  if (el.slice.value !== String(i + 1)) el.slice.value = String(i + 1);
  el.slice.setAttribute('aria-valuetext', `image ${i + 1} of ${state.frames.length}`);
}
function onNewImage() {
  const { i, f } = currentFrame();
  if (!f) return;
  showPosition(i);
  const img = state.viewport.getCornerstoneImage && state.viewport.getCornerstoneImage();
  renderTags(el.tags, f.ds, { frame: f.frame, frames: f.frames, transferSyntax: img && img.transferSyntaxUID });
  showVOI();
  if (lastPointer) pixelValueAt(lastPointer);
}
function showVOI() {
  const { window: w, level: l } = currentVOI();
  el.voiText.textContent = w === undefined ? 'W \u2013 L \u2013' : `W ${round(w)} L ${round(l)}`;
}
function showZoom() {
  const vp = state.viewport;
  if (!vp || !vp.getZoom) return;
  el.zoomText.textContent = `zoom ${round(vp.getZoom() * 100)}%`;
}

// ---- scrolling -----------------------------------------------------------------
function go(index) {
  const n = state.frames.length;
  if (!n || !state.viewport) return;
  const i = Math.max(0, Math.min(n - 1, index));
  if (i !== state.viewport.getCurrentImageIdIndex()) {
    showPosition(i);
    state.viewport.setImageIdIndex(i);
  }
}
el.slice.addEventListener('input', () => go(Number(el.slice.value) - 1));
document.addEventListener('keydown', (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  const t = e.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT')) return;
  if (!state.viewport || !state.frames.length) return;
  const i = state.viewport.getCurrentImageIdIndex();
  const step = { ArrowUp: -1, ArrowDown: 1, PageUp: -10, PageDown: 10 }[e.key];
  if (step !== undefined) go(i + step);
  else if (e.key === 'Home') go(0);
  else if (e.key === 'End') go(state.frames.length - 1);
  else return;
  e.preventDefault();
});

// ---- tools, presets, invert, reset ----------------------------------------------
function setLeftTool(name) {
  const tg = state.toolGroup;
  const prev = TOOLS[state.leftTool];
  if (prev && state.leftTool !== name) tg.setToolPassive(prev.toolName);
  tg.setToolActive(TOOLS[name].toolName, { bindings: [{ mouseButton: ToolEnums.MouseBindings.Primary }] });
  state.leftTool = name;
  for (const b of document.querySelectorAll('button.tool')) {
    b.setAttribute('aria-pressed', b.dataset.tool === name ? 'true' : 'false');
  }
}
for (const b of document.querySelectorAll('button.tool')) {
  b.addEventListener('click', () => setLeftTool(b.dataset.tool));
}
for (const b of document.querySelectorAll('button.preset')) {
  b.addEventListener('click', () => {
    if (!state.viewport) return;
    const w = Number(b.dataset.window); const l = Number(b.dataset.level);
    state.viewport.setProperties({ voiRange: csUtils.windowLevel.toLowHighRange(w, l) });
    state.viewport.render();
    showVOI();
  });
}
function setInvert(on) {
  state.viewport.setProperties({ invert: on });
  el.invert.setAttribute('aria-pressed', on ? 'true' : 'false');
  state.viewport.render();
}
el.invert.addEventListener('click', () => {
  if (state.viewport) setInvert(el.invert.getAttribute('aria-pressed') !== 'true');
});
el.reset.addEventListener('click', () => {
  const vp = state.viewport;
  if (!vp) return;
  vp.resetCamera();
  vp.resetProperties();
  el.invert.setAttribute('aria-pressed', 'false');
  vp.render();
  showVOI();
  showZoom();
});

// ---- cine ------------------------------------------------------------------------
// Plays through the frames of the current multi-frame instance, else the series.
function stopCine() {
  if (state.cineTimer) clearInterval(state.cineTimer);
  state.cineTimer = 0;
  el.play.textContent = 'Play';
  el.play.setAttribute('aria-pressed', 'false');
}
function startCine() {
  stopCine();
  const { i, f } = currentFrame();
  if (!f) return;
  let lo = 0; let hi = state.frames.length - 1;
  if (f.frames > 1) { lo = i - (f.frame - 1); hi = lo + f.frames - 1; }
  const fps = Math.max(1, Math.min(60, Number(el.fps.value) || 10));
  state.cineTimer = setInterval(() => {
    const cur = state.viewport.getCurrentImageIdIndex();
    go(cur >= hi || cur < lo ? lo : cur + 1);
  }, 1000 / fps);
  el.play.textContent = 'Pause';
  el.play.setAttribute('aria-pressed', 'true');
}
el.play.addEventListener('click', () => (state.cineTimer ? stopCine() : startCine()));
el.fps.addEventListener('change', () => { if (state.cineTimer) startCine(); });

// ---- pixel value under the cursor --------------------------------------------------
let lastPointer = null;
function pixelValueAt(pt) {
  const vp = state.viewport;
  const { f } = currentFrame();
  const img = vp && vp.getCornerstoneImage && vp.getCornerstoneImage();
  if (!f || !img) return;
  const world = vp.canvasToWorld([pt.x, pt.y]);
  const { imageData } = vp.getImageData();
  const ijk = imageData.worldToIndex(world);
  const col = Math.round(ijk[0]); const row = Math.round(ijk[1]);
  const cols = img.columns; const rows = img.rows;
  if (!(col >= 0 && row >= 0 && col < cols && row < rows)) {
    el.pixel.textContent = 'Outside the image.';
    for (const k of ['col', 'row', 'value']) delete el.pixel.dataset[k];
    return;
  }
  const px = img.getPixelData();
  const spp = img.color ? (img.numberOfComponents || (px.length / (cols * rows))) : 1;
  const at = (row * cols + col) * spp;
  let text; let val;
  if (spp > 1) {
    const rgb = Array.from(px.slice(at, at + 3));
    val = rgb.join(',');
    text = `RGB ${rgb.join(', ')}`;
  } else {
    const raw = px[at];
    const ds = f.ds;
    const slope = img.slope ?? num(ds, '00281053') ?? 1;
    const intercept = img.intercept ?? num(ds, '00281052') ?? 0;
    const scaled = img.preScale && img.preScale.scaled;
    val = scaled ? raw : raw * slope + intercept;
    val = round(val, 4);
    const modality = value(ds, '00080060');
    text = `${val}${modality === 'CT' ? ' HU' : ''}`;
  }
  el.pixel.dataset.col = String(col);
  el.pixel.dataset.row = String(row);
  el.pixel.dataset.value = String(val);
  el.pixel.textContent = `col ${col}, row ${row}: ${text}`;
}
el.viewport.addEventListener('mousemove', (e) => {
  const r = el.viewport.getBoundingClientRect();
  lastPointer = { x: e.clientX - r.left, y: e.clientY - r.top };
  try { pixelValueAt(lastPointer); } catch { /* image not ready */ }
});
el.viewport.addEventListener('mouseleave', () => { lastPointer = null; });

// ---- start -----------------------------------------------------------------------
async function start() {
  const { study, series, cpu } = parseHash();
  if (!study) {
    throw new Error('no study given: open the viewer from the worklist (viewer.html#study=UID)');
  }
  state.study = study;
  await setUp(cpu);
  state.series = await listSeries(study);
  if (!state.series.length) throw new HTTPError(404, 'no series');
  renderSeriesList();
  const first = state.series.find((s) => s.uid === series) ? series : state.series[0].uid;
  await openSeries(first);
  return { renderer: getShouldUseCPURendering() ? 'cpu' : 'webgl' };
}

window.addEventListener('hashchange', () => {
  const { study, series } = parseHash();
  if (study !== state.study) { location.reload(); return; }
  if (series && series !== state.seriesUID && state.viewport) openSeries(series).catch(showError);
});

start().then(resolveReady, (err) => { showError(err); rejectReady(err); });
