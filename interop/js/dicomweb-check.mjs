// dicomweb-check.mjs drives a DICOMweb server with dicomweb-client (the
// npm package OHIF itself uses; nobody here wrote it) and checks what it
// answers against the originals.
//
//   node dicomweb-check.mjs BASE_URL EXPECT_JSON
//
// BASE_URL is the service root, e.g. http://127.0.0.1:8042/dicom-web
// (or $DICOMWEB_URL); the bearer token, if any, comes from $DICOMWEB_TOKEN
// (never on the command line, where ps shows it). EXPECT_JSON (or
// $DICOMWEB_EXPECT) describes the studies the server holds and the files
// to store; interop/dicomweb.go writes it (type Expectation):
//
//   {"studies": [{"studyInstanceUID", "patientID", "studyDate",
//      "series": [{"seriesInstanceUID", "modality",
//        "instances": [{"sopInstanceUID", "sopClassUID", "transferSyntaxUID",
//          "path", "rows", "columns", "frames", "bitsAllocated", "samplesPerPixel"}]}]}],
//    "store": [the same study shape, for files sent with STOW-RS and then read back]}
//
// It prints one JSON line per check, {"name", "ok", "detail"}, and exits 1
// if any check failed (2 on a usage error).
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import XMLHttpRequest from 'xhr2';
import dicomweb from 'dicomweb-client';

// dicomweb-client speaks XMLHttpRequest, which Node.js lacks.
globalThis.XMLHttpRequest = XMLHttpRequest;

const baseURL = process.argv[2] || process.env.DICOMWEB_URL;
const expectPath = process.argv[3] || process.env.DICOMWEB_EXPECT;
const token = process.env.DICOMWEB_TOKEN || '';
if (!baseURL || !expectPath) {
  console.error('usage: node dicomweb-check.mjs BASE_URL EXPECT_JSON  (token in $DICOMWEB_TOKEN)');
  process.exit(2);
}
const expect = JSON.parse(readFileSync(expectPath, 'utf8'));
const client = new dicomweb.api.DICOMwebClient({
  url: baseURL.replace(/\/+$/, ''),
  headers: token ? { Authorization: `Bearer ${token}` } : {},
  verbose: false,
});

let failed = 0;
function report(name, ok, detail) {
  if (!ok) failed++;
  process.stdout.write(JSON.stringify({ name, ok: !!ok, detail: detail || '' }) + '\n');
}

// check runs fn, which returns a detail string (ok) or throws (failed).
async function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    report(name, true, `${detail || 'ok'} (${Date.now() - t0} ms)`);
  } catch (e) {
    report(name, false, describeError(e));
  }
}

function describeError(e) {
  if (e && e.request && typeof e.status === 'number') {
    let body = '';
    try {
      const r = e.response;
      body = typeof r === 'string' ? r : r instanceof ArrayBuffer ? Buffer.from(r).toString('utf8') : JSON.stringify(r);
    } catch { /* no body */ }
    return `HTTP ${e.status}: ${(body || '').slice(0, 300)}`;
  }
  return String(e && e.stack ? e.message : e);
}

function fail(msg) { throw new Error(msg); }

// DICOM JSON helpers.
const val = (ds, tag) => (ds && ds[tag] && Array.isArray(ds[tag].Value) ? ds[tag].Value[0] : undefined);
const T = {
  study: '0020000D', series: '0020000E', sop: '00080018', sopClass: '00080016', patientID: '00100020',
  studyDate: '00080020', modality: '00080060', rows: '00280010', columns: '00280011',
  nSeries: '00201206', nInstances: '00201208', nSeriesInstances: '00201209', pixelData: '7FE00010',
  tsuid: '00020010', frames: '00280008',
};

function sameSet(got, want, what) {
  const g = new Set(got), w = new Set(want);
  const missing = [...w].filter((x) => !g.has(x));
  const extra = [...g].filter((x) => !w.has(x));
  if (got.length !== g.size) fail(`${what}: duplicates in ${JSON.stringify(got)}`);
  if (missing.length || extra.length) fail(`${what}: missing ${JSON.stringify(missing)}, unexpected ${JSON.stringify(extra)}`);
}
function contains(got, want, what) {
  const g = new Set(got);
  const missing = want.filter((x) => !g.has(x));
  if (missing.length) fail(`${what}: missing ${JSON.stringify(missing)} among ${got.length} results`);
}

// Originals: the bytes after the 128-byte preamble (which an archive may
// zero), keyed by digest, so a retrieved part is matched whatever order
// the server sends the parts in.
const originals = new Map(); // path -> Buffer
function original(path) {
  if (!originals.has(path)) originals.set(path, readFileSync(path));
  return originals.get(path);
}
const afterPreamble = (b) => (b.length >= 132 && b.toString('latin1', 128, 132) === 'DICM' ? b.subarray(128) : b);
const digest = (b) => createHash('sha256').update(afterPreamble(b)).digest('hex');
const buf = (ab) => Array.isArray(ab) ? buf1(ab.length === 1 ? ab[0] : fail(`${ab.length} parts where one was expected`)) : buf1(ab);
const buf1 = (ab) => Buffer.from(ab instanceof ArrayBuffer ? ab : ab.buffer ? Buffer.from(ab.buffer, ab.byteOffset, ab.byteLength) : ab);

// matchParts checks that the retrieved Part-10 parts are exactly the
// originals of insts (after the preamble), and returns how many were
// byte-identical as whole files.
function matchParts(parts, insts, what) {
  if (!Array.isArray(parts)) fail(`${what}: expected an array of parts, got ${typeof parts}`);
  const want = new Map(insts.map((i) => [digest(original(i.path)), i]));
  const seen = new Set();
  let whole = 0;
  for (const p of parts) {
    const b = buf(p);
    const d = digest(b);
    const i = want.get(d);
    if (!i) fail(`${what}: a part of ${b.length} bytes matches no original (after the preamble)`);
    if (seen.has(d)) fail(`${what}: instance ${i.sopInstanceUID} sent twice`);
    seen.add(d);
    if (Buffer.compare(b, original(i.path)) === 0) whole++;
  }
  if (seen.size !== want.size) {
    const missing = [...want.entries()].filter(([d]) => !seen.has(d)).map(([, i]) => i.sopInstanceUID);
    fail(`${what}: ${parts.length} parts, missing ${JSON.stringify(missing)}`);
  }
  return whole;
}

const anyTS = [{ mediaType: 'application/dicom', transferSyntaxUID: '*' }];
const nativeTS = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1']);
const studies = expect.studies || [];
const allInstances = (s) => s.series.flatMap((se) => se.instances);

async function searchStudyUIDs(queryParams) {
  const r = await client.searchForStudies(queryParams ? { queryParams } : {});
  if (!Array.isArray(r)) fail(`QIDO answered ${typeof r}, not an array`);
  return r;
}

// ---- QIDO-RS ----------------------------------------------------------

let allStudyUIDs = [];
await check('qido.studies', async () => {
  const r = await searchStudyUIDs();
  allStudyUIDs = r.map((ds) => val(ds, T.study));
  contains(allStudyUIDs, studies.map((s) => s.studyInstanceUID), 'studies');
  for (const s of studies) {
    const ds = r.find((x) => val(x, T.study) === s.studyInstanceUID);
    if (val(ds, T.patientID) !== s.patientID) fail(`${s.studyInstanceUID}: PatientID ${val(ds, T.patientID)}, want ${s.patientID}`);
    if (s.studyDate && val(ds, T.studyDate) !== s.studyDate) fail(`${s.studyInstanceUID}: StudyDate ${val(ds, T.studyDate)}, want ${s.studyDate}`);
    const n = Number(val(ds, T.nInstances));
    if (ds[T.nInstances] && n !== allInstances(s).length) fail(`${s.studyInstanceUID}: NumberOfStudyRelatedInstances ${n}, want ${allInstances(s).length}`);
    const ns = Number(val(ds, T.nSeries));
    if (ds[T.nSeries] && ns !== s.series.length) fail(`${s.studyInstanceUID}: NumberOfStudyRelatedSeries ${ns}, want ${s.series.length}`);
  }
  return `${r.length} studies, the ${studies.length} expected among them with their PatientID, StudyDate and counts`;
});

await check('qido.studies.uid', async () => {
  for (const s of studies) {
    const r = await searchStudyUIDs({ StudyInstanceUID: s.studyInstanceUID });
    sameSet(r.map((ds) => val(ds, T.study)), [s.studyInstanceUID], `StudyInstanceUID=${s.studyInstanceUID}`);
  }
  if (studies.length > 1) {
    const list = studies.slice(0, 2).map((s) => s.studyInstanceUID);
    const r = await searchStudyUIDs({ StudyInstanceUID: list.join(',') });
    sameSet(r.map((ds) => val(ds, T.study)), list, 'a list of two study UIDs');
  }
  return `each study found by its UID${studies.length > 1 ? ', and two by a UID list' : ''}`;
});

await check('qido.studies.patientid', async () => {
  const ids = [...new Set(studies.map((s) => s.patientID).filter(Boolean))];
  for (const id of ids) {
    const r = await searchStudyUIDs({ PatientID: id });
    for (const ds of r) if (val(ds, T.patientID) !== id) fail(`PatientID=${id} returned a study of PatientID ${val(ds, T.patientID)}`);
    contains(r.map((ds) => val(ds, T.study)), studies.filter((s) => s.patientID === id).map((s) => s.studyInstanceUID), `PatientID=${id}`);
  }
  const none = await searchStudyUIDs({ PatientID: 'NO-SUCH-PATIENT-9f3a' });
  if (none.length) fail(`an unknown PatientID matched ${none.length} studies`);
  return `${ids.length} patient IDs matched exactly; an unknown one matched nothing`;
});

await check('qido.studies.wildcard', async () => {
  const s = studies.find((x) => x.patientID && x.patientID.length > 2);
  if (!s) return 'skipped: no patient ID long enough';
  const pattern = s.patientID.slice(0, 2) + '*';
  const r = await searchStudyUIDs({ PatientID: pattern });
  contains(r.map((ds) => val(ds, T.study)), [s.studyInstanceUID], `PatientID=${pattern}`);
  for (const ds of r) if (!String(val(ds, T.patientID)).startsWith(s.patientID.slice(0, 2))) fail(`PatientID=${pattern} matched ${val(ds, T.patientID)}`);
  return `PatientID=${pattern} matched`;
});

await check('qido.studies.daterange', async () => {
  const dated = studies.filter((s) => /^\d{8}$/.test(s.studyDate || ''));
  if (!dated.length) fail('no expected study has a StudyDate');
  const day = (d, n) => { const t = new Date(Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8) + n)); return t.toISOString().slice(0, 10).replace(/-/g, ''); };
  for (const s of dated) {
    const inRange = await searchStudyUIDs({ StudyDate: `${day(s.studyDate, -1)}-${day(s.studyDate, 1)}`, StudyInstanceUID: s.studyInstanceUID });
    sameSet(inRange.map((ds) => val(ds, T.study)), [s.studyInstanceUID], `StudyDate ${day(s.studyDate, -1)}-${day(s.studyDate, 1)}`);
    const open = await searchStudyUIDs({ StudyDate: `${s.studyDate}-` });
    contains(open.map((ds) => val(ds, T.study)), [s.studyInstanceUID], `StudyDate ${s.studyDate}-`);
    const before = await searchStudyUIDs({ StudyDate: `-${day(s.studyDate, -1)}` });
    if (before.some((ds) => val(ds, T.study) === s.studyInstanceUID)) fail(`StudyDate -${day(s.studyDate, -1)} matched ${s.studyInstanceUID} of ${s.studyDate}`);
    for (const ds of open) if (val(ds, T.studyDate) && val(ds, T.studyDate) < s.studyDate) fail(`StudyDate ${s.studyDate}- matched a study of ${val(ds, T.studyDate)}`);
  }
  return `${dated.length} studies matched by closed and open date ranges, and not by a range before them`;
});

await check('qido.studies.paging', async () => {
  const total = allStudyUIDs.length;
  if (!total) fail('no studies to page through');
  const size = Math.max(1, Math.ceil(total / 10));
  const walk = async () => {
    const seq = [];
    for (let offset = 0; offset < total + size; offset += size) {
      const page = await searchStudyUIDs({ limit: size, offset });
      if (page.length > size) fail(`limit=${size} offset=${offset} returned ${page.length}`);
      seq.push(...page.map((ds) => val(ds, T.study)));
      if (page.length < size) break;
    }
    return seq;
  };
  const a = await walk();
  const b = await walk();
  sameSet(a, allStudyUIDs, `pages of ${size}`);
  if (a.join() !== b.join()) fail(`two walks through the pages gave different orders`);
  return `${total} studies in pages of ${size}: all, once each, in the same order twice`;
});

await check('qido.series', async () => {
  let n = 0;
  for (const s of studies) {
    const r = await client.searchForSeries({ studyInstanceUID: s.studyInstanceUID });
    sameSet(r.map((ds) => val(ds, T.series)), s.series.map((se) => se.seriesInstanceUID), `series of ${s.studyInstanceUID}`);
    for (const se of s.series) {
      const ds = r.find((x) => val(x, T.series) === se.seriesInstanceUID);
      if (se.modality && val(ds, T.modality) !== se.modality) fail(`${se.seriesInstanceUID}: Modality ${val(ds, T.modality)}, want ${se.modality}`);
      if (ds[T.nSeriesInstances] && Number(val(ds, T.nSeriesInstances)) !== se.instances.length) fail(`${se.seriesInstanceUID}: NumberOfSeriesRelatedInstances ${val(ds, T.nSeriesInstances)}, want ${se.instances.length}`);
    }
    n += r.length;
  }
  const mod = studies.flatMap((s) => s.series).find((se) => se.modality);
  if (mod) {
    const r = await client.searchForSeries({ queryParams: { Modality: mod.modality } });
    contains(r.map((ds) => val(ds, T.series)), [mod.seriesInstanceUID], `all series, Modality=${mod.modality}`);
    for (const ds of r) if (val(ds, T.modality) !== mod.modality) fail(`Modality=${mod.modality} matched ${val(ds, T.modality)}`);
  }
  return `${n} series in ${studies.length} studies, Modality filter over all series`;
});

await check('qido.instances', async () => {
  let n = 0;
  for (const s of studies) {
    const inStudy = await client.searchForInstances({ studyInstanceUID: s.studyInstanceUID });
    sameSet(inStudy.map((ds) => val(ds, T.sop)), allInstances(s).map((i) => i.sopInstanceUID), `instances of study ${s.studyInstanceUID}`);
    for (const se of s.series) {
      const r = await client.searchForInstances({ studyInstanceUID: s.studyInstanceUID, seriesInstanceUID: se.seriesInstanceUID });
      sameSet(r.map((ds) => val(ds, T.sop)), se.instances.map((i) => i.sopInstanceUID), `instances of series ${se.seriesInstanceUID}`);
      for (const i of se.instances) {
        const ds = r.find((x) => val(x, T.sop) === i.sopInstanceUID);
        if (val(ds, T.sopClass) !== i.sopClassUID) fail(`${i.sopInstanceUID}: SOPClassUID ${val(ds, T.sopClass)}, want ${i.sopClassUID}`);
      }
      n += r.length;
    }
  }
  const big = studies.flatMap((s) => s.series).sort((a, b) => b.instances.length - a.instances.length)[0];
  if (big && big.instances.length > 2) {
    const st = studies.find((s) => s.series.includes(big));
    const page = await client.searchForInstances({ studyInstanceUID: st.studyInstanceUID, seriesInstanceUID: big.seriesInstanceUID, queryParams: { limit: 2, offset: 1 } });
    if (page.length !== 2) fail(`instances limit=2 offset=1 returned ${page.length}`);
  }
  return `${n} instances by study and by series, with their SOP classes; instance paging`;
});

// ---- WADO-RS ----------------------------------------------------------

// dicomweb-client 0.11.3's retrieveStudy/Series/Instance throw on any
// mediaTypes argument (they compare the common type "application/" with
// "application/dicom"), so without one they ask for the default
// (multipart/related; type="application/dicom": Explicit VR Little
// Endian), as OHIF does. The stored transfer syntax (transfer-syntax=*)
// is asked for through the client's own multipart request, the one
// retrieveStudy would make with that media type.
function retrieveAnyTS(path) {
  return client._httpGetMultipartApplicationDicom(`${client.wadoURL}${path}`, anyTS, false, {});
}
const studyPath = (s) => `/studies/${s.studyInstanceUID}`;
const seriesPath = (s, se) => `${studyPath(s)}/series/${se.seriesInstanceUID}`;
const instancePath = (s, se, i) => `${seriesPath(s, se)}/instances/${i.sopInstanceUID}`;

await check('wado.study', async () => {
  let n = 0, whole = 0;
  for (const s of studies) {
    const parts = await retrieveAnyTS(studyPath(s));
    whole += matchParts(parts, allInstances(s), `study ${s.studyInstanceUID}`);
    n += parts.length;
  }
  return `transfer-syntax=*: ${studies.length} studies, ${n} instances equal to the originals after the preamble (${whole} whole-file identical)`;
});

await check('wado.series', async () => {
  let n = 0;
  for (const s of studies) for (const se of s.series) {
    matchParts(await retrieveAnyTS(seriesPath(s, se)), se.instances, `series ${se.seriesInstanceUID}`);
    n++;
  }
  return `transfer-syntax=*: ${n} series equal to the originals`;
});

await check('wado.instance', async () => {
  let n = 0;
  for (const s of studies) for (const se of s.series) for (const i of se.instances) {
    matchParts(await retrieveAnyTS(instancePath(s, se, i)), [i], `instance ${i.sopInstanceUID}`);
    n++;
  }
  return `transfer-syntax=*: ${n} instances equal to the originals`;
});

// The default media type through the public methods, on what is stored
// in Explicit VR Little Endian, the default (anything else would have to
// be transcoded, or refused with 406).
const isExplicitLE = (i) => i.transferSyntaxUID === '1.2.840.10008.1.2.1';
await check('wado.default', async () => {
  let n = 0;
  for (const s of studies) {
    if (allInstances(s).every(isExplicitLE)) {
      matchParts(await client.retrieveStudy({ studyInstanceUID: s.studyInstanceUID }), allInstances(s), `study ${s.studyInstanceUID}`);
      n++;
    }
    for (const se of s.series) {
      if (se.instances.every(isExplicitLE)) {
        matchParts(await client.retrieveSeries({ studyInstanceUID: s.studyInstanceUID, seriesInstanceUID: se.seriesInstanceUID }), se.instances, `series ${se.seriesInstanceUID}`);
      }
      const i = se.instances.find(isExplicitLE);
      if (i) {
        const part = await client.retrieveInstance({ studyInstanceUID: s.studyInstanceUID, seriesInstanceUID: se.seriesInstanceUID, sopInstanceUID: i.sopInstanceUID });
        matchParts([part], [i], `instance ${i.sopInstanceUID}`);
      }
    }
  }
  return `retrieveStudy/Series/Instance with the default media type: ${n} Explicit VR LE studies, their series and instances equal`;
});

function checkMetadata(list, insts, what) {
  if (!Array.isArray(list)) fail(`${what}: metadata is not an array`);
  sameSet(list.map((ds) => val(ds, T.sop)), insts.map((i) => i.sopInstanceUID), what);
  for (const ds of list) {
    const i = insts.find((x) => x.sopInstanceUID === val(ds, T.sop));
    if (val(ds, T.sopClass) !== i.sopClassUID) fail(`${what}: ${i.sopInstanceUID} SOPClassUID ${val(ds, T.sopClass)}`);
    if (i.rows && val(ds, T.rows) !== i.rows) fail(`${what}: ${i.sopInstanceUID} Rows ${val(ds, T.rows)}, want ${i.rows}`);
    if (i.columns && val(ds, T.columns) !== i.columns) fail(`${what}: ${i.sopInstanceUID} Columns ${val(ds, T.columns)}, want ${i.columns}`);
    const px = ds[T.pixelData];
    if (px && px.Value) fail(`${what}: ${i.sopInstanceUID} PixelData inline as Value (want BulkDataURI or InlineBinary)`);
  }
}

const bulkURIs = [];
await check('wado.metadata.study', async () => {
  for (const s of studies) {
    const list = await client.retrieveStudyMetadata({ studyInstanceUID: s.studyInstanceUID });
    checkMetadata(list, allInstances(s), `metadata of study ${s.studyInstanceUID}`);
    for (const ds of list) {
      const i = allInstances(s).find((x) => x.sopInstanceUID === val(ds, T.sop));
      for (const [tag, el] of Object.entries(ds)) if (el && el.BulkDataURI) bulkURIs.push({ uri: el.BulkDataURI, tag, inst: i });
    }
  }
  return `${studies.reduce((n, s) => n + allInstances(s).length, 0)} instances' metadata, ${bulkURIs.length} BulkDataURIs`;
});

await check('wado.metadata.series', async () => {
  let n = 0;
  for (const s of studies) for (const se of s.series) {
    const list = await client.retrieveSeriesMetadata({ studyInstanceUID: s.studyInstanceUID, seriesInstanceUID: se.seriesInstanceUID });
    checkMetadata(list, se.instances, `metadata of series ${se.seriesInstanceUID}`);
    n++;
  }
  return `${n} series`;
});

await check('wado.metadata.instance', async () => {
  let n = 0;
  for (const s of studies) for (const se of s.series) for (const i of se.instances.slice(0, 3)) {
    const list = await client.retrieveInstanceMetadata({ studyInstanceUID: s.studyInstanceUID, seriesInstanceUID: se.seriesInstanceUID, sopInstanceUID: i.sopInstanceUID });
    checkMetadata(list, [i], `metadata of instance ${i.sopInstanceUID}`);
    n++;
  }
  return `${n} instances`;
});

await check('wado.bulkdata', async () => {
  if (!bulkURIs.length) return 'skipped: the metadata gave no BulkDataURI';
  const pick = bulkURIs.filter((b) => b.tag !== T.pixelData || nativeTS.has(b.inst.transferSyntaxUID)).slice(0, 5);
  for (const b of pick) {
    const parts = await client.retrieveBulkData({ BulkDataURI: b.uri });
    const data = buf(Array.isArray(parts) ? parts[0] : parts);
    if (!data.length) fail(`${b.uri}: empty`);
    if (original(b.inst.path).indexOf(data) < 0) fail(`${b.uri}: ${data.length} bytes not found in the original file`);
  }
  return `${pick.length} bulk data values found verbatim in the originals`;
});

const codecMagic = (b) => (b[0] === 0xff && b[1] === 0xd8 ? 'jpeg' : b[0] === 0xff && b[1] === 0x4f ? 'j2k' : b.subarray(4, 8).toString('latin1') === 'jP  ' ? 'jp2' : '');

await check('wado.frames', async () => {
  const out = [];
  for (const s of studies) for (const se of s.series) for (const i of se.instances.slice(0, 2)) {
    if (!i.frames) continue;
    const frameNumbers = i.frames > 1 ? [1, i.frames] : [1];
    const parts = await client.retrieveInstanceFrames({
      studyInstanceUID: s.studyInstanceUID, seriesInstanceUID: se.seriesInstanceUID, sopInstanceUID: i.sopInstanceUID, frameNumbers,
      mediaTypes: [{ mediaType: 'application/octet-stream', transferSyntaxUID: '*' }],
    });
    if (!Array.isArray(parts) || parts.length !== frameNumbers.length) fail(`${i.sopInstanceUID}: ${parts && parts.length} parts for frames ${frameNumbers}`);
    const orig = original(i.path);
    for (const p of parts) {
      const f = buf(p);
      if (nativeTS.has(i.transferSyntaxUID)) {
        const want = i.rows * i.columns * (i.samplesPerPixel || 1) * ((i.bitsAllocated || 16) / 8);
        if (i.rows && f.length !== want) fail(`${i.sopInstanceUID}: native frame of ${f.length} bytes, want ${want}`);
        if (orig.indexOf(f) < 0) fail(`${i.sopInstanceUID}: native frame not found verbatim in the original`);
      } else if (orig.indexOf(f) < 0 && !codecMagic(f)) {
        fail(`${i.sopInstanceUID}: encapsulated frame (${i.transferSyntaxUID}) neither a fragment of the original nor a known codec stream`);
      }
    }
    out.push(`${i.sopInstanceUID.slice(-12)}:${frameNumbers.length}`);
  }
  return `frames of ${out.length} instances match the originals' pixel data`;
});

function pngSize(b) {
  if (b.length < 24 || b.toString('latin1', 1, 4) !== 'PNG') fail(`not a PNG (${b.length} bytes, starts ${b.subarray(0, 8).toString('hex')})`);
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}

await check('wado.rendered', async () => {
  const out = [];
  for (const s of studies) for (const se of s.series) {
    const i = se.instances.find((x) => x.rows && x.frames);
    if (!i) continue;
    const ids = { studyInstanceUID: s.studyInstanceUID, seriesInstanceUID: se.seriesInstanceUID, sopInstanceUID: i.sopInstanceUID };
    if ((expect.notRendered || []).includes(i.transferSyntaxUID)) {
      let status = 0;
      try {
        await client.retrieveInstanceRendered({ ...ids, mediaTypes: [{ mediaType: 'image/png' }] });
      } catch (e) { status = e && e.status; }
      if (status !== 406) fail(`${i.sopInstanceUID}: rendered in ${i.transferSyntaxUID}, which the server says it does not render: HTTP ${status}, want 406`);
      out.push(`406 for ${i.transferSyntaxUID}`);
      continue;
    }
    const png = buf(await client.retrieveInstanceRendered({ ...ids, mediaTypes: [{ mediaType: 'image/png' }] }));
    const [w, h] = pngSize(png);
    if (w !== i.columns || h !== i.rows) fail(`${i.sopInstanceUID}: PNG ${w}x${h}, want ${i.columns}x${i.rows}`);
    const jpg = buf(await client.retrieveInstanceRendered({ ...ids, mediaTypes: [{ mediaType: 'image/jpeg' }] }));
    if (codecMagic(jpg) !== 'jpeg') fail(`${i.sopInstanceUID}: rendered image/jpeg does not start with a JPEG SOI`);
    out.push(`${w}x${h}`);
  }
  if (!out.length) return 'skipped: no image instances';
  return `PNG and JPEG of ${out.length} instances (${out.join(', ')})`;
});

// ---- STOW-RS ----------------------------------------------------------

await check('stow.store', async () => {
  const toStore = expect.store || [];
  if (!toStore.length) return 'skipped: nothing to store';
  let n = 0;
  for (const s of toStore) {
    const insts = allInstances(s);
    const datasets = insts.map((i) => { const b = original(i.path); return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength); });
    const resp = await client.storeInstances({ datasets, studyInstanceUID: s.studyInstanceUID });
    const r = typeof resp === 'string' ? JSON.parse(resp) : resp instanceof ArrayBuffer ? JSON.parse(Buffer.from(resp).toString('utf8')) : resp;
    const failedSeq = r && r['00081198'];
    if (failedSeq && failedSeq.Value && failedSeq.Value.length) fail(`FailedSOPSequence has ${failedSeq.Value.length} items: ${JSON.stringify(failedSeq.Value).slice(0, 300)}`);
    const refs = (r && r['00081199'] && r['00081199'].Value) || [];
    sameSet(refs.map((x) => val(x, '00081155')), insts.map((i) => i.sopInstanceUID), 'ReferencedSOPSequence');
    const found = await client.searchForInstances({ studyInstanceUID: s.studyInstanceUID });
    sameSet(found.map((ds) => val(ds, T.sop)), insts.map((i) => i.sopInstanceUID), `instances of the stored study ${s.studyInstanceUID}`);
    matchParts(await retrieveAnyTS(studyPath(s)), insts, `the stored study ${s.studyInstanceUID}`);
    n += insts.length;
  }
  return `${n} instances stored, referenced in the response, found by QIDO and retrieved equal`;
});

process.exit(failed ? 1 : 0);
