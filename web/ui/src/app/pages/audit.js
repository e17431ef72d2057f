// Audit: the hash-chained log, filtered and paged; verify; export.
import { h, clear, field, textInput, select, button, table, empty, messageArea, busy, section, badge } from '../dom.js';
import { get, query } from '../api.js';
import { dateTime, partnerName, shortId } from '../format.js';
import { pageHeader } from './common.js';

const ACTIONS = ['grant', 'revoke', 'manifest-sent', 'manifest-received', 'manifest-rejected', 'fetch-allowed', 'fetch-denied',
  'fetch-completed', 'fetch-failed', 'import', 'export', 'peer-added', 'peer-removed', 'access-requested', 'query', 'instance-read',
  'ae-added', 'ae-removed', 'association-accepted', 'association-rejected', 'storage-commitment', 'dicom-move', 'dicom-get',
  'dicom-send', 'dicom-forward', 'user-added', 'user-disabled', 'user-role-changed', 'user-password-changed', 'token-issued',
  'token-revoked', 'login', 'login-failed', 'login-locked', 'logout', 'audit-checkpoint', 'request-sent', 'request-approved',
  'request-denied', 'emergency-access', 'emergency-reviewed', 'ask-refused', 'patient-search', 'patient-query', 'audit-exported',
  'audit-verified', 'request-note-erased'];
const FORMATS = [['json', 'JSON lines'], ['dicom', 'DICOM audit messages'], ['syslog', 'syslog (RFC 5424)'], ['syslog-dicom', 'syslog with DICOM messages (IHE ATNA)']];

const state = { filters: { actor: '', partner: '', study_uid: '', action: '', since: '', until: '', limit: '100' }, after: 0, back: [] };

function rfc3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

export async function auditPage(main, ctx) {
  const messages = messageArea();
  const f = state.filters;
  const actor = textInput('actor', { value: f.actor, id: 'audit-actor' });
  const partner = textInput('partner', { value: f.partner, id: 'audit-partner' });
  const study = textInput('study_uid', { value: f.study_uid, id: 'audit-study' });
  const action = select('action', [['', 'any'], ...ACTIONS.map((a) => [a, a])], f.action, { id: 'audit-action' });
  const since = h('input', { type: 'datetime-local', name: 'since', value: f.since, id: 'audit-since' });
  const until = h('input', { type: 'datetime-local', name: 'until', value: f.until, id: 'audit-until' });
  const limit = select('limit', ['50', '100', '500', '1000'], f.limit, { id: 'audit-limit' });
  const form = h('form', { id: 'audit-filters', role: 'search' },
    h('div', { class: 'form-grid' },
      field('User', actor, 'a user name or ID, admin or system'),
      field('Partner', partner, 'name or peer ID'),
      field('Study UID', study),
      field('Action', action),
      field('Since', since),
      field('Until', until),
      field('Entries per page', limit)),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn-primary' }, 'Show')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.filters = {
      actor: actor.value.trim(), partner: partner.value.trim(), study_uid: study.value.trim(), action: action.value,
      since: since.value, until: until.value, limit: limit.value,
    };
    state.after = 0;
    state.back = [];
    load();
    renderExport();
  });

  // Verify.
  const verifyOut = h('div', { id: 'audit-verify', 'aria-live': 'polite' });
  const verifyBtn = button('Verify chain', () => busy(verifyBtn, async () => {
    clear(verifyOut);
    try {
      const v = await get('/api/v1/audit/verify', { okStatuses: [409] });
      verifyOut.dataset.ok = v.ok ? 'true' : 'false';
      const facts = `${v.entries} entries checked, ${v.checkpoints} signed checkpoints; head ${shortId(v.head)}`;
      if (v.ok) {
        verifyOut.append(h('div', { class: 'alert alert-ok verify-result', role: 'status' },
          h('strong', { text: 'The audit chain is intact.' }), ' ', facts,
          v.checkpoint ? `; latest checkpoint #${v.checkpoint.index} at entry ${v.checkpoint.seq} (${dateTime(v.checkpoint.time)})` : ''));
      } else {
        verifyOut.append(h('div', { class: 'alert alert-error verify-result', role: 'alert' },
          h('strong', { text: 'The audit chain is NOT intact.' }), ' ', v.error || '', ' — ', facts));
      }
    } catch (e) {
      verifyOut.dataset.ok = 'error';
      verifyOut.append(h('div', { class: 'alert alert-error', role: 'alert', text: e.message }));
    }
  }), { class: 'btn-primary', id: 'verify-chain' });

  const exportBox = h('div', { id: 'audit-export' });
  function renderExport() {
    clear(exportBox);
    const sf = state.filters;
    const q = { since: rfc3339(sf.since), until: rfc3339(sf.until), actor: sf.actor, partner: sf.partner, study_uid: sf.study_uid, action: sf.action };
    const ul = h('ul', { class: 'links' });
    for (const [fmt, label] of FORMATS) {
      ul.append(h('li', null, h('a', { href: '/api/v1/audit/export' + query({ ...q, format: fmt }), download: `audit.${fmt === 'json' ? 'jsonl' : 'txt'}`, 'data-format': fmt, text: `Export as ${label}` })));
    }
    exportBox.append(h('p', { class: 'hint', text: 'Exports every entry matching the filters above (audited as audit-exported).' }), ul);
  }
  renderExport();

  const results = h('div');
  main.append(pageHeader('Audit'), messages,
    section('Integrity', h('p', { class: 'hint', text: 'Checks every hash and link of the log and every signed checkpoint.' }), h('div', { class: 'actions' }, verifyBtn), verifyOut),
    section('Entries', form, results),
    section('Export', exportBox));

  async function load() {
    messages.clear();
    clear(results);
    results.append(h('p', { class: 'loading', text: 'Loading entries…' }));
    const sf = state.filters;
    let res;
    try {
      res = await get('/api/v1/audit' + query({
        after: state.after || undefined, limit: sf.limit, since: rfc3339(sf.since), until: rfc3339(sf.until), actor: sf.actor,
        partner: sf.partner, study_uid: sf.study_uid, action: sf.action,
      }), { full: true });
    } catch (e) {
      if (!ctx.current()) return;
      clear(results);
      messages.error(e);
      return;
    }
    if (!ctx.current()) return;
    clear(results);
    const next = res.headers.get('X-Pacsnet-Audit-Next');
    const rows = res.data || [];
    const prevB = button('Previous', () => {
      state.after = state.back.pop() || 0;
      load();
    }, { disabled: !state.back.length, 'data-action': 'previous' });
    const nextB = button('Next', () => {
      state.back.push(state.after);
      state.after = Number(next);
      load();
    }, { disabled: !next, 'data-action': 'next' });
    const first = (res.data || [])[0];
    const last = (res.data || [])[(res.data || []).length - 1];
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of the audit log' }, prevB,
      h('span', { class: 'pager-count', text: first ? `entries ${first.seq}–${last.seq}${rows.length !== res.data.length ? ` (${rows.length} shown)` : ''}` : 'no entries' }),
      nextB);
    results.append(pager);
    if (!rows.length) {
      results.append(empty(next ? 'No matching entries on this page; try Next.' : 'No matching entries.'));
      return;
    }
    const cols = [
      { label: 'Seq', cell: (e) => String(e.seq), class: 'num' },
      { label: 'Time', cell: (e) => dateTime(e.time), class: 'nowrap' },
      { label: 'Actor', cell: (e) => e.actor },
      { label: 'Action', cell: (e) => e.action },
      { label: 'Decision', cell: (e) => (e.decision ? badge(e.decision, e.decision === 'deny' ? 'denied' : 'ok') : '') },
      { label: 'Partner', cell: (e) => partnerName(e.peer) },
      { label: 'Study', cell: (e) => (e.study_uid ? h('span', { class: 'uid', title: e.study_uid, text: shortId(e.study_uid) }) : '') },
      { label: 'Reason', cell: (e) => e.reason || '' },
      { label: 'Count', cell: (e) => (e.count > 1 ? String(e.count) : ''), class: 'num' },
    ];
    results.append(table(cols, rows, { id: 'audit', class: 'data' }, (e) => ({ 'data-seq': e.seq, 'data-action': e.action })));
  }
  await load();
}
