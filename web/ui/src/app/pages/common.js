// Pieces shared by the clinical pages.
import { h, button, busy } from '../dom.js';
import { post, get } from '../api.js';
import { dateOnly, partnerName } from '../format.js';
import { rememberFetch, selectPatient } from '../state.js';

export function viewerHref(studyUid, seriesUid) {
  let s = '/app/viewer.html#study=' + encodeURIComponent(studyUid);
  if (seriesUid) s += '&series=' + encodeURIComponent(seriesUid);
  return s;
}

export function pageHeader(title, ...extra) {
  return h('div', { class: 'page-head' }, h('h1', { tabindex: '-1', text: title }), extra);
}

// runningFetches answers the study UIDs of fetches running or waiting (from
// GET /api/v1/status), or an empty set if the status cannot be read.
export async function runningFetches() {
  try {
    const st = await get('/api/v1/status');
    const m = new Map();
    for (const f of st.fetches || []) m.set(f.study_uid, f);
    return m;
  } catch {
    return new Map();
  }
}

// availability of a WorklistStudy: {key, text, detail}.
export function availability(row, fetching) {
  const shared = row.shared;
  const until = shared && shared.state === 'available' && shared.expires ? `access until ${dateOnly(shared.expires)}` : '';
  if (fetching && fetching.has(row.study_uid)) {
    return { key: 'fetching', text: 'fetching', detail: '' };
  }
  if (row.location === 'here') {
    if (row.complete === false) return { key: 'partial', text: 'here — incomplete', detail: until };
    return { key: 'here', text: 'here', detail: until };
  }
  if (!shared) return { key: 'partner', text: 'at partner — not fetched', detail: '' };
  switch (shared.state) {
    case 'available':
      return { key: 'partner', text: 'at partner — not fetched', detail: until };
    case 'revoked':
      return { key: 'revoked', text: 'revoked', detail: '' };
    case 'expired':
      return { key: 'expired', text: 'expired', detail: '' };
    case 'pending':
      return { key: 'pending', text: 'access not yet valid', detail: '' };
    default:
      return { key: shared.state, text: shared.state, detail: '' };
  }
}

export function sourceText(row) {
  return row.origin ? partnerName(row.origin) : 'here';
}

// fetchButton starts a fetch of a partner's study and goes to its page.
export function fetchButton(studyUid, from, messages) {
  const b = button('Fetch', async () => {
    await busy(b, async () => {
      try {
        const job = await post('/api/v1/fetches', { study_uid: studyUid, from });
        rememberFetch(job.fetch_id);
        location.hash = '#/fetch/' + encodeURIComponent(job.fetch_id);
      } catch (e) {
        messages.error(e);
      }
    });
  }, { class: 'btn-primary', 'data-action': 'fetch' });
  return b;
}

export function patientButton(row) {
  return button('Patient', () => {
    selectPatient(row);
    location.hash = '#/patient';
  }, { 'data-action': 'patient' });
}

export function openLink(studyUid) {
  return h('a', { class: 'btn btn-link', href: viewerHref(studyUid), 'data-action': 'open', text: 'Open' });
}

export function studyLink(studyUid, text = 'Details') {
  return h('a', { class: 'btn btn-link', href: '#/study/' + encodeURIComponent(studyUid), 'data-action': 'details', text });
}

// availabilityCell shows a WorklistStudy's availability as a badge (and
// how long our access lasts).
export function availabilityCell(r, fetching) {
  const a = availability(r, fetching);
  return h('span', { class: 'avail', 'data-availability': a.key },
    h('span', { class: ['badge', 'avail-' + a.key], text: a.text }),
    a.detail ? h('span', { class: 'avail-detail', text: a.detail }) : null);
}

// studyActions are a WorklistStudy's buttons: Open (here and complete),
// Fetch (a partner's available share not being fetched), Details (here).
export function studyActions(r, fetching, messages) {
  const acts = h('div', { class: 'row-actions' });
  if (r.location === 'here' && r.complete !== false) acts.append(openLink(r.study_uid));
  if (r.location === 'partner' && r.shared && r.shared.state === 'available' && r.origin && availability(r, fetching).key !== 'fetching') {
    acts.append(fetchButton(r.study_uid, r.origin.peer_id, messages));
  }
  if (r.location === 'here') acts.append(studyLink(r.study_uid));
  return acts;
}
