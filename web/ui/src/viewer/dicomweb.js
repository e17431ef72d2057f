// The viewer's small DICOMweb client: QIDO-RS series of a study, WADO-RS
// series metadata, and the wadors: imageIds of every frame of a series.
// Same origin; the browser sends the session cookie.

export const BASE = '/dicom-web';

export class HTTPError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function getJSON(path) {
  let res;
  try {
    res = await fetch(BASE + path, {
      credentials: 'same-origin',
      headers: { Accept: 'application/dicom+json' },
    });
  } catch (e) {
    throw new HTTPError(0, 'The node cannot be reached. Check your connection and reload the page.');
  }
  if (!res.ok) {
    let sentence = '';
    try { sentence = (await res.json()).error || ''; } catch { /* not JSON */ }
    throw new HTTPError(res.status, sentence || `${res.status} ${res.statusText}`);
  }
  if (res.status === 204) return [];
  return res.json();
}

// value(ds, tag) is the first value of a DICOM JSON attribute (or undefined);
// values() all of them.
export function values(ds, tag) {
  const a = ds && ds[tag];
  return a && Array.isArray(a.Value) ? a.Value : [];
}
export function value(ds, tag) {
  return values(ds, tag)[0];
}
export function num(ds, tag) {
  const v = value(ds, tag);
  const n = typeof v === 'number' ? v : parseFloat(v);
  return Number.isFinite(n) ? n : undefined;
}
export function personName(ds, tag) {
  const v = value(ds, tag);
  if (!v) return '';
  const pn = typeof v === 'string' ? v : (v.Alphabetic || v.Ideographic || v.Phonetic || '');
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = pn.split('^');
  const rest = [prefix, given, middle].filter(Boolean).join(' ');
  return [family, rest].filter(Boolean).join(', ') + (suffix ? ` ${suffix}` : '');
}

const enc = encodeURIComponent;

export async function listSeries(studyUID) {
  const rows = await getJSON(`/studies/${enc(studyUID)}/series`);
  return rows.map((s) => ({
    uid: value(s, '0020000E'),
    number: num(s, '00200011'),
    modality: value(s, '00080060') || '',
    description: value(s, '0008103E') || '',
    count: num(s, '00201209'),
  })).filter((s) => s.uid)
    .sort((a, b) => (a.number ?? 1e9) - (b.number ?? 1e9));
}

export function seriesMetadata(studyUID, seriesUID) {
  return getJSON(`/studies/${enc(studyUID)}/series/${enc(seriesUID)}/metadata`);
}

// Distance of an instance along the normal of its image plane, for sorting.
function along(ds) {
  const ipp = values(ds, '00200032').map(Number);
  const iop = values(ds, '00200037').map(Number);
  if (ipp.length !== 3 || iop.length !== 6) return undefined;
  const n = [iop[1] * iop[5] - iop[2] * iop[4], iop[2] * iop[3] - iop[0] * iop[5], iop[0] * iop[4] - iop[1] * iop[3]];
  return ipp[0] * n[0] + ipp[1] * n[1] + ipp[2] * n[2];
}

// frames(studyUID, seriesUID, metadata, add) sorts the instances (instance
// number, then position along the normal), gives each frame of each instance
// a wadors: imageId (frames are numbered from 1), calls add(imageId, ds) for
// each so the loader knows its metadata, and returns
// [{imageId, ds, frame, frames}] in display order.
export function frames(studyUID, seriesUID, metadata, add) {
  const withPixels = metadata.filter((ds) => ds['7FE00010'] || ds['7FE00008'] || ds['7FE00009'] || num(ds, '00280010'));
  withPixels.sort((a, b) => {
    const ia = num(a, '00200013'); const ib = num(b, '00200013');
    if (ia !== undefined && ib !== undefined && ia !== ib) return ia - ib;
    const pa = along(a); const pb = along(b);
    if (pa !== undefined && pb !== undefined && pa !== pb) return pa - pb;
    return String(value(a, '00080018')).localeCompare(String(value(b, '00080018')));
  });
  const root = `${location.origin}${BASE}/studies/${enc(studyUID)}/series/${enc(seriesUID)}/instances/`;
  const out = [];
  for (const ds of withPixels) {
    const sop = value(ds, '00080018');
    if (!sop) continue;
    const n = Math.max(1, Math.floor(num(ds, '00280008') || 1));
    for (let f = 1; f <= n; f++) {
      const imageId = `wadors:${root}${enc(sop)}/frames/${f}`;
      add(imageId, ds);
      out.push({ imageId, ds, frame: f, frames: n });
    }
  }
  return out;
}
