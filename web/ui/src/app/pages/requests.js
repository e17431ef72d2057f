// Access requests: partners' requests to us (approve, deny), emergency
// accesses to review, erasing a request's note.
import { h, clear, field, textInput, select, button, table, empty, messageArea, busy, section, badge, checkbox } from '../dom.js';
import { get, post, del, apiPath, query } from '../api.js';
import { dateTime, dateOnly, dicomDate, partnerName, modalities } from '../format.js';
import { pageHeader } from './common.js';

const DENY_REASONS = ['no-consent', 'not-our-patient', 'insufficient-reason', 'policy', 'duplicate', 'other'];
const REVIEW_OUTCOMES = [['justified', 'justified'], ['not-justified', 'not justified']];

export async function requestsPage(main, ctx) {
  const messages = messageArea();
  const refresh = button('Refresh', () => load());
  const pendingBox = h('div');
  const reviewBox = h('div');
  const decidedBox = h('div');
  main.append(pageHeader('Access requests', refresh), messages,
    section('Waiting for a decision', pendingBox),
    section('Emergency accesses to review', h('p', { class: 'hint', text: 'Granted at once by break-glass; record whether each was justified. Revoke the grant in Grants if it was not.' }), reviewBox),
    section('Decided', decidedBox));

  async function load() {
    let list;
    try {
      list = await get('/api/v1/requests/incoming');
    } catch (e) {
      if (ctx.current()) messages.error(e);
      return;
    }
    if (!ctx.current()) return;
    for (const b of [pendingBox, reviewBox, decidedBox]) clear(b);
    const pending = list.filter((r) => r.state === 'pending');
    const toReview = list.filter((r) => r.emergency && r.state === 'approved' && !r.review);
    const decided = list.filter((r) => r.state !== 'pending');

    const base = [
      { label: 'Received', cell: (r) => dateTime(r.created), class: 'nowrap' },
      { label: 'From', cell: (r) => h('span', null, partnerName(r.requester), h('span', { class: 'sub', text: `user ${r.requesting_user}` })) },
      { label: 'Patient ID', cell: (r) => r.patient_id + (r.issuer ? ` (${r.issuer})` : '') },
      { label: 'Birth date', cell: (r) => dicomDate(r.birth_date) },
      { label: 'Accession', cell: (r) => r.accession || '' },
      { label: 'Purpose / reason', cell: (r) => h('span', null, r.purpose, h('span', { class: 'sub', text: r.reason })) },
      { label: 'Studies here', cell: (r) => String(r.studies_here || 0), class: 'num' },
      { label: 'Note', cell: (r) => noteCell(r) },
    ];

    if (!pending.length) pendingBox.append(empty('No requests are waiting.'));
    else {
      pendingBox.append(table([...base, { label: 'Decision', cell: (r) => decideCell(r) }], pending,
        { id: 'incoming-requests', class: 'data' }, (r) => ({ 'data-request-id': r.request_id, 'data-state': r.state })));
    }
    if (!toReview.length) reviewBox.append(empty('No emergency accesses to review.'));
    else {
      reviewBox.append(table([...base, { label: 'Granted until', cell: (r) => dateTime(r.expires) }, { label: 'Review', cell: (r) => reviewCell(r) }], toReview,
        { id: 'emergency-review', class: 'data' }, (r) => ({ 'data-request-id': r.request_id })));
    }
    if (!decided.length) decidedBox.append(empty('None yet.'));
    else {
      decidedBox.append(table([...base,
        { label: 'Outcome', cell: (r) => h('span', null, badge(r.state, r.state), r.emergency ? [' ', badge('emergency', 'warn')] : null, h('span', { class: 'sub', text: outcome(r) })) },
      ], decided, { id: 'decided-requests', class: 'data' }, (r) => ({ 'data-request-id': r.request_id, 'data-state': r.state })));
    }
  }

  function outcome(r) {
    const parts = [];
    if (r.state === 'approved' && r.expires) parts.push(`until ${dateOnly(r.expires)}`);
    if (r.deny_reason) parts.push(r.deny_reason);
    if (r.decided_by) parts.push(`by ${r.decided_by}`);
    if (r.decided) parts.push(dateTime(r.decided));
    if (r.review) parts.push(`reviewed: ${r.review}${r.reviewed_by ? ' by ' + r.reviewed_by : ''}`);
    return parts.join(' · ');
  }

  function noteCell(r) {
    if (!r.note) return '';
    const b = button('Erase note', () => {
      if (!window.confirm('Erase this note for good? The request and its decision stay.')) return;
      busy(b, async () => {
        try {
          await del(apiPath('requests', 'incoming', r.request_id, 'note'));
          messages.ok('Note erased.');
          load();
        } catch (e) {
          messages.error(e);
        }
      });
    }, { class: 'btn-small', 'data-action': 'erase-note' });
    return h('div', null, h('p', { class: 'note', text: r.note }), b);
  }

  function decideCell(r) {
    const wrap = h('div', { class: 'decide' });
    // Approve, optionally narrowed to some of the patient's studies here.
    const expires = textInput('expires', { placeholder: 'default', size: '6' });
    const studiesBox = h('div', { class: 'study-choice' });
    let chosen = null;
    const choose = button('Choose studies…', async () => {
      await busy(choose, async () => {
        try {
          const page = await get('/api/v1/worklist' + query({ patient_id: r.patient_id, location: 'here', source: 'local', limit: 200 }));
          clear(studiesBox);
          const rows = (page.rows || []).filter((s) => !s.origin);
          if (!rows.length) {
            studiesBox.append(empty('No studies of this patient imported here.'));
            return;
          }
          chosen = [];
          const fs = h('fieldset', null, h('legend', { text: 'Grant only these studies' }));
          for (const s of rows) {
            const cb = checkbox('study', `${dicomDate(s.study_date)} ${modalities(s.modalities)} ${s.description || ''}`.trim(), true, { value: s.study_uid });
            chosen.push(cb.input);
            fs.append(cb.wrap);
          }
          studiesBox.append(fs);
          choose.hidden = true;
        } catch (e) {
          messages.error(e);
        }
      });
    });
    const approve = button('Approve', () => busy(approve, async () => {
      const body = { expires: expires.value.trim() || undefined };
      if (chosen) {
        const uids = chosen.filter((c) => c.checked).map((c) => c.value);
        if (!uids.length) {
          messages.show('Choose at least one study, or deny the request.');
          return;
        }
        body.study_uids = uids;
      }
      try {
        const ans = await post(apiPath('requests', 'incoming', r.request_id, 'approve'), body);
        messages.ok(`Approved: access until ${dateTime(ans.expires)}.`);
        load();
      } catch (e) {
        messages.error(e);
      }
    }), { class: 'btn-primary', 'data-action': 'approve' });
    const reason = select('reason', DENY_REASONS.map((x) => [x, x.replaceAll('-', ' ')]), 'insufficient-reason');
    const deny = button('Deny', () => busy(deny, async () => {
      try {
        await post(apiPath('requests', 'incoming', r.request_id, 'deny'), { reason: reason.value });
        messages.ok('Denied.');
        load();
      } catch (e) {
        messages.error(e);
      }
    }), { class: 'btn-danger', 'data-action': 'deny' });
    wrap.append(
      h('div', { class: 'row-actions' }, field('Lasts', expires), approve, choose),
      studiesBox,
      h('div', { class: 'row-actions' }, field('Deny reason', reason), deny),
    );
    return wrap;
  }

  function reviewCell(r) {
    const out = select('outcome', REVIEW_OUTCOMES, 'justified');
    const b = button('Record review', () => busy(b, async () => {
      try {
        await post(apiPath('requests', 'incoming', r.request_id, 'review'), { outcome: out.value });
        messages.ok('Review recorded.');
        load();
      } catch (e) {
        messages.error(e);
      }
    }), { class: 'btn-primary', 'data-action': 'review' });
    return h('div', { class: 'row-actions' }, field('Outcome', out), b);
  }

  await load();
}
