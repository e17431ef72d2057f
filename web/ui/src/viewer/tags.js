// The key-attributes panel. Values go in with textContent only: they hold
// patient data, which is never put in HTML and never logged.
import { value, values, num, personName } from './dicomweb.js';

const TRANSFER_SYNTAXES = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
  '1.2.840.10008.1.2.4.202': 'HTJ2K Lossless RPCL',
  '1.2.840.10008.1.2.4.203': 'HTJ2K',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

function dicomDate(d) {
  return /^\d{8}$/.test(d || '') ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}` : (d || '');
}
function nums(ds, tag, digits = 2) {
  return values(ds, tag).map((v) => {
    const n = Number(v);
    return Number.isFinite(n) ? String(Math.round(n * 10 ** digits) / 10 ** digits) : String(v);
  });
}

// render(dl, ds, {frame, frames, transferSyntax})
export function renderTags(dl, ds, extra) {
  const ts = extra.transferSyntax || value(ds, '00020010') || '';
  const spacing = nums(ds, '00280030', 4);
  const rows = [
    ['Patient', personName(ds, '00100010')],
    ['Patient ID', value(ds, '00100020')],
    ['Study date', dicomDate(value(ds, '00080020'))],
    ['Study', value(ds, '00081030')],
    ['Series', value(ds, '0008103E')],
    ['Series number', value(ds, '00200011')],
    ['Modality', value(ds, '00080060')],
    ['Instance number', value(ds, '00200013')],
    ['Frame', extra.frames > 1 ? `${extra.frame} of ${extra.frames}` : ''],
    ['Image position (patient)', nums(ds, '00200032').join(' \\ ')],
    ['Slice thickness', num(ds, '00180050') !== undefined ? `${num(ds, '00180050')} mm` : ''],
    ['Pixel spacing', spacing.length ? `${spacing.join(' \\ ')} mm` : ''],
    ['Rows \u00d7 columns', num(ds, '00280010') ? `${num(ds, '00280010')} \u00d7 ${num(ds, '00280011')}` : ''],
    ['Transfer syntax', ts ? `${TRANSFER_SYNTAXES[ts] || 'other'} (${ts})` : ''],
  ];
  const frag = document.createDocumentFragment();
  for (const [label, v] of rows) {
    if (label === 'Frame' && !v) continue;
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = v === undefined || v === null || v === '' ? '\u2014' : String(v);
    frag.append(dt, dd);
  }
  dl.replaceChildren(frag);
}
