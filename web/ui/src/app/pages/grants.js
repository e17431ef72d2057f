// Grants: create, list with filters, revoke with a reason code.
import { h, clear, field, textInput, select, button, table, empty, messageArea, busy, section, badge } from '../dom.js';
import { get, post, apiPath } from '../api.js';
import { dateTime, partnerName, shortId } from '../format.js';
import { pageHeader } from './common.js';
import { takeGrantDraft } from '../state.js';

const REVOKE_REASONS = ['consent-withdrawn', 'treatment-ended', 'sent-in-error', 'security', 'policy', 'partner-removed', 'unspecified'];
const PURPOSES = [['treatment', 'treatment'], ['second-opinion', 'second opinion']];
const STATES = [['', 'any'], ['active', 'active'], ['pending', 'pending (not yet valid)'], ['expired', 'expired'], ['revoked', 'revoked']];
const filters = { partner: '', state: '' };

export async function grantsPage(main, ctx) {
  const messages = messageArea();
  main.append(pageHeader('Grants'), messages);
  let peers = [];
  try {
    peers = await get('/api/v1/peers');
  } catch (e) {
    messages.error(e);
  }
  if (!ctx.current()) return;

  // Create.
  const msg = messageArea();
  const scope = select('scope', [['study', 'a study'], ['patient', 'a patient (all studies, also later ones)']], 'study', { id: 'grant-scope' });
  const studyUid = textInput('study_uid', { id: 'grant-study' });
  const patientId = textInput('patient_id', { id: 'grant-patient' });
  const issuer = textInput('issuer_of_patient_id', { id: 'grant-issuer' });
  const studyField = field('Study UID', studyUid);
  const patientFields = h('div', { class: 'form-grid', hidden: true }, field('Patient ID', patientId), field('Issuer of patient ID (optional)', issuer));
  scope.addEventListener('change', () => {
    const pat = scope.value === 'patient';
    studyField.hidden = pat;
    patientFields.hidden = !pat;
  });
  const to = select('to', peers.map((p) => [p.peer_id, p.name]), '', { id: 'grant-to' });
  const user = textInput('grantee_user', { id: 'grant-user' });
  const purpose = select('purpose', PURPOSES, 'treatment', { id: 'grant-purpose' });
  const notBefore = textInput('not_before', { id: 'grant-not-before', placeholder: 'now' });
  const expires = textInput('expires', { id: 'grant-expires', placeholder: 'default' });
  const submit = h('button', { type: 'submit', class: 'btn-primary' }, 'Grant');
  const form = h('form', { id: 'grant-form' },
    h('div', { class: 'form-grid' },
      field('Grant access to', scope),
      studyField,
      field('Partner', to),
      field('User at the partner (optional)', user, 'Only this user there may fetch.'),
      field('Purpose', purpose),
      field('Starts', notBefore, 'Empty: now; or a delay such as 12h, or an RFC 3339 time.'),
      field('Lasts', expires, 'A duration such as 72h, 90m or 3d; empty: the node\'s default.'),
    ),
    patientFields,
    h('div', { class: 'actions' }, submit),
    msg);
  if (!peers.length) submit.disabled = true;
  // "Grant to a partner" on a study or a patient page prefills the form.
  const draft = takeGrantDraft();
  if (draft && draft.patient_id) {
    scope.value = 'patient';
    patientId.value = draft.patient_id;
    issuer.value = draft.issuer || '';
    studyField.hidden = true;
    patientFields.hidden = false;
  } else if (draft && draft.study_uid) {
    studyUid.value = draft.study_uid;
  }
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(submit, async () => {
      const body = {
        to: to.value,
        purpose: purpose.value,
        grantee_user: user.value.trim() || undefined,
        not_before: notBefore.value.trim() || undefined,
        expires: expires.value.trim() || undefined,
      };
      if (scope.value === 'patient') body.patient = { patient_id: patientId.value.trim(), issuer_of_patient_id: issuer.value.trim() || undefined };
      else body.study_uid = studyUid.value.trim();
      try {
        const res = await post('/api/v1/grants', body, { full: true });
        const notice = res.headers.get('X-Pacsnet-Notice');
        msg.show(`Granted to ${partnerName(res.data.grantee)} until ${dateTime(res.data.expires)}.${notice ? ' ' + notice : ''}`, notice ? 'warn' : 'ok');
        load();
      } catch (e) {
        msg.error(e);
      }
    });
  });
  main.append(section('New grant', peers.length ? null : h('p', { class: 'hint', text: 'Add a partner first.' }), form));

  // List.
  const fPartner = select('partner', [['', 'any'], ...peers.map((p) => [p.peer_id, p.name])], filters.partner, { id: 'grants-partner' });
  const fState = select('state', STATES, filters.state, { id: 'grants-state' });
  const listBox = h('div');
  for (const el of [fPartner, fState]) {
    el.addEventListener('change', () => {
      filters.partner = fPartner.value;
      filters.state = fState.value;
      render();
    });
  }
  main.append(section('Grants issued', h('div', { class: 'form-grid filters' }, field('Partner', fPartner), field('State', fState)), listBox));

  let grants = [];
  async function load() {
    try {
      grants = await get('/api/v1/grants');
    } catch (e) {
      if (ctx.current()) messages.error(e);
      return;
    }
    if (ctx.current()) render();
  }

  function render() {
    clear(listBox);
    const rows = grants
      .filter((g) => !filters.partner || g.grantee.peer_id === filters.partner)
      .filter((g) => !filters.state || g.state === filters.state)
      .sort((a, b) => (b.created || '').localeCompare(a.created || ''));
    if (!rows.length) {
      listBox.append(empty('No grants match.'));
      return;
    }
    const cols = [
      { label: 'Created', cell: (g) => dateTime(g.created), class: 'nowrap' },
      { label: 'Partner', cell: (g) => partnerName(g.grantee) },
      { label: 'User there', cell: (g) => g.grantee_user || 'any' },
      {
        label: 'Access to',
        cell: (g) => (g.patient
          ? `patient ${g.patient.patient_id}${g.patient.issuer_of_patient_id ? ' (' + g.patient.issuer_of_patient_id + ')' : ''}`
          : h('span', null, (g.study_uids || []).map((u) => h('span', { class: 'uid block', title: u, text: shortId(u) })))),
      },
      { label: 'Purpose', cell: (g) => g.purpose },
      { label: 'Valid', cell: (g) => `${dateTime(g.not_before)} – ${dateTime(g.expires)}` },
      { label: 'State', cell: (g) => h('span', null, badge(g.state, g.state), g.revocation && g.revocation.reason ? ` (${g.revocation.reason})` : '') },
      {
        label: 'Actions',
        cell: (g) => {
          if (g.state === 'revoked') return '';
          const reason = select('reason', REVOKE_REASONS.map((r) => [r, r.replaceAll('-', ' ')]), 'treatment-ended');
          const b = button('Revoke', () => {
            if (!window.confirm(`Revoke this grant to ${partnerName(g.grantee)}?`)) return;
            busy(b, async () => {
              try {
                await post(apiPath('grants', g.grant_id, 'revoke'), { reason: reason.value });
                messages.ok('Grant revoked; the partner is told with a revocation manifest.');
                load();
              } catch (e) {
                messages.error(e);
              }
            });
          }, { class: 'btn-danger', 'data-action': 'revoke' });
          return h('div', { class: 'row-actions' }, field('Reason', reason), b);
        },
      },
    ];
    listBox.append(table(cols, rows, { id: 'grants', class: 'data' }, (g) => ({ 'data-grant-id': g.grant_id, 'data-state': g.state })));
  }
  await load();
}
