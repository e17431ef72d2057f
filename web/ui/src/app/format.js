// Formatting of DICOM and API values for people.

// personName formats a DICOM PN (Family^Given^Middle^Prefix^Suffix, with
// optional =ideographic=phonetic groups) as "Family, Given Middle".
export function personName(pn) {
  if (!pn) return '';
  const alpha = String(pn).split('=')[0];
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = alpha.split('^').map((s) => s.trim());
  const first = [prefix, given, middle].filter(Boolean).join(' ');
  let out = family;
  if (first) out = out ? `${out}, ${first}` : first;
  if (suffix) out = `${out} ${suffix}`;
  return out;
}

// dicomDate formats YYYYMMDD as YYYY-MM-DD.
export function dicomDate(d) {
  if (!d) return '';
  const s = String(d).trim();
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(s);
  return m ? `${m[1]}-${m[2]}-${m[3]}` : s;
}

// toDicomDate turns an <input type=date> value (YYYY-MM-DD) into YYYYMMDD.
export function toDicomDate(v) {
  return v ? v.replaceAll('-', '') : '';
}

export function dicomTime(t) {
  if (!t) return '';
  const m = /^(\d{2})(\d{2})?(\d{2})?/.exec(String(t));
  if (!m) return String(t);
  return [m[1], m[2] || '00'].join(':');
}

function pad(n) {
  return String(n).padStart(2, '0');
}

// dateTime formats an RFC 3339 time in local time: YYYY-MM-DD HH:MM.
export function dateTime(t) {
  if (!t) return '';
  const d = new Date(t);
  if (Number.isNaN(d.getTime()) || d.getFullYear() < 2) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function dateOnly(t) {
  const s = dateTime(t);
  return s ? s.slice(0, 10) : '';
}

export function number(n) {
  return Number(n || 0).toLocaleString('en-US');
}

export function bytes(n) {
  n = Number(n || 0);
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(n >= 100 ? 0 : 1)} ${units[i]}`;
}

export function mb(n) {
  return (Number(n || 0) / 1e6).toFixed(1);
}

export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function partnerName(ref) {
  if (!ref) return '';
  return ref.name || shortId(ref.peer_id);
}

export function shortId(id) {
  if (!id) return '';
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id;
}

export function modalities(list) {
  return (list || []).join(', ');
}
