// Patient: every study of the selected patient, here and at partners; the
// federated search of partners; access requests to them.
import { h, clear, field, textInput, select, button, table, empty, messageArea, busy, checkbox, section, badge, alertBox } from '../dom.js';
import { get, post, query } from '../api.js';
import { personName, dicomDate, number, modalities, partnerName, dateTime, dateOnly } from '../format.js';
import { pageHeader, sourceText, availabilityCell, studyActions, fetchButton, runningFetches } from './common.js';
import { selectedPatient, selectPatient, draftGrant } from '../state.js';

const REQUEST_REASONS = ['continuity-of-care', 'referral', 'second-opinion', 'follow-up', 'transfer', 'emergency-care'];
const PURPOSES = [['treatment', 'treatment'], ['second-opinion', 'second opinion']];

export async function patientPage(main, ctx) {
  const p = selectedPatient();
  main.append(pageHeader('Patient'));
  main.append(choosePatientForm(p));
  if (!p) {
    main.append(h('p', { class: 'hint', text: 'Choose a patient: enter a patient ID above, or use the Patient button of a study in Studies.' }));
    return;
  }
  const messages = messageArea();
  main.append(patientCard(p), messages);
  // An admin grants the patient (all studies here, and later ones).
  if (ctx.me.role === 'admin') {
    const g = h('a', { class: 'btn', href: '#/admin/grants', 'data-action': 'grant-patient', text: 'Grant this patient to a partner' });
    g.addEventListener('click', () => draftGrant({ patient_id: p.patient_id, issuer: p.issuer || '' }));
    main.append(h('div', { class: 'actions' }, g));
  }

  const studiesBox = h('div');
  const searchBox = h('div', { id: 'partner-search' });
  const requestsBox = h('div', { id: 'my-requests' });
  const searchBtn = button('Search partners', () => busy(searchBtn, () => searchPartners(p, searchBox, requestsBox, ctx)), { class: 'btn-primary', id: 'search-partners' });

  main.append(
    section('Studies here and shared with us', studiesBox),
    section('Studies at partners', h('p', { class: 'hint', text: 'Asks every partner which studies of this patient it holds (only partners that allow us to search them answer). The search is audited here and at each partner.' }), h('div', { class: 'actions' }, searchBtn), searchBox),
    section('Access requests for this patient', requestsBox),
  );

  await Promise.all([loadStudies(p, studiesBox, ctx), loadRequests(p, requestsBox, ctx)]);
}

function choosePatientForm(p) {
  const inId = textInput('patient_id', { value: '' });
  const inIssuer = textInput('issuer', { value: '' });
  const form = h('form', { class: 'inline-form', id: 'choose-patient' },
    field('Patient ID', inId),
    field('Issuer of patient ID (optional)', inIssuer),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, p ? 'Change patient' : 'Show patient')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = inId.value.trim();
    if (!id) return;
    selectPatient({ patient_id: id, issuer: inIssuer.value.trim() });
    // Re-render the page without putting the ID in the URL.
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  });
  return form;
}

function patientCard(p) {
  const dl = h('dl', { class: 'facts', id: 'patient-card' },
    h('dt', { text: 'Name' }), h('dd', { text: personName(p.patient_name) || '—' }),
    h('dt', { text: 'Patient ID' }), h('dd', { text: p.patient_id }),
    p.issuer ? [h('dt', { text: 'Issuer' }), h('dd', { text: p.issuer })] : null,
    h('dt', { text: 'Birth date' }), h('dd', { text: dicomDate(p.birth_date) || '—' }),
    p.sex ? [h('dt', { text: 'Sex' }), h('dd', { text: p.sex })] : null);
  return h('div', { class: 'panel patient-card' }, dl);
}

async function loadStudies(p, box, ctx) {
  clear(box);
  const msg = messageArea();
  box.append(msg, h('p', { class: 'loading', text: 'Loading studies…' }));
  let page;
  let fetching;
  try {
    [page, fetching] = await Promise.all([
      get('/api/v1/worklist' + query({ patient_id: p.patient_id, offset: 0, limit: 500 })),
      runningFetches(),
    ]);
  } catch (e) {
    if (!ctx.current()) return;
    clear(box);
    box.append(msg);
    msg.error(e);
    return;
  }
  if (!ctx.current()) return;
  clear(box);
  box.append(msg);
  const rows = (page.rows || []).filter((r) => !p.issuer || !r.issuer_of_patient_id || r.issuer_of_patient_id === p.issuer);
  rows.sort((a, b) => (b.study_date || '').localeCompare(a.study_date || '') || (b.study_time || '').localeCompare(a.study_time || ''));
  // Fill in the patient's details from the studies if we only had the ID.
  if (rows.length && !p.patient_name) {
    selectPatient({ ...rows[0], issuer: p.issuer });
    const card = document.getElementById('patient-card');
    if (card) card.parentElement.replaceWith(patientCard(selectedPatient()));
  }
  if (!rows.length) {
    box.append(empty('No studies of this patient here or shared with us.'));
    return;
  }
  if (page.total > rows.length) box.append(alertBox(`Showing ${rows.length} of ${number(page.total)} studies.`, 'info'));
  const cols = [
    { label: 'Date', cell: (r) => dicomDate(r.study_date), class: 'nowrap' },
    { label: 'Modality', cell: (r) => modalities(r.modalities) },
    { label: 'Description', cell: (r) => r.description || '' },
    { label: 'Accession', cell: (r) => r.accession_number || '' },
    { label: 'Images', cell: (r) => number(r.instances), class: 'num' },
    { label: 'Source', cell: (r) => sourceText(r) },
    { label: 'Availability', cell: (r) => availabilityCell(r, fetching) },
    { label: 'Actions', cell: (r) => studyActions(r, fetching, msg) },
  ];
  box.append(table(cols, rows, { id: 'patient-studies', class: 'data' }, (r) => ({ 'data-study-uid': r.study_uid })));
}

async function searchPartners(p, box, requestsBox, ctx) {
  clear(box);
  const msg = messageArea();
  box.append(msg, h('p', { class: 'loading', role: 'status', text: 'Asking partners…' }));
  let results;
  try {
    results = await post('/api/v1/search', { patient_id: p.patient_id, issuer: p.issuer || undefined });
  } catch (e) {
    if (!ctx.current()) return;
    clear(box);
    box.append(msg);
    msg.error(e);
    return;
  }
  if (!ctx.current()) return;
  clear(box);
  box.append(msg);
  if (!results || !results.length) {
    box.append(empty('There are no partners to ask.'));
    return;
  }
  for (const r of results) {
    const name = partnerName(r.holder);
    const card = h('div', { class: 'partner-result', 'data-peer-id': r.holder.peer_id, 'data-partner': name });
    card.append(h('h3', { text: name }));
    if (r.error) {
      card.append(alertBox(`${name} could not be asked: ${r.error}`, 'error'));
    } else if (!r.found || !r.found.length) {
      card.append(empty(`${name} holds no studies of this patient, or does not let us search it.`));
    } else {
      const cols = [
        { label: 'Date', cell: (s) => dicomDate(s.study_date), class: 'nowrap' },
        { label: 'Modality', cell: (s) => modalities(s.modalities) },
        { label: 'Description', cell: (s) => s.description || '' },
        { label: 'Images', cell: (s) => number(s.instances), class: 'num' },
        { label: 'Shared with us', cell: (s) => (s.shared ? badge(s.shared, s.shared) : 'no') },
        {
          label: 'Actions',
          cell: (s) => (s.shared === 'available' ? fetchButton(s.study_uid, r.holder.peer_id, msg) : ''),
        },
      ];
      const found = [...r.found].sort((a, b) => (b.study_date || '').localeCompare(a.study_date || ''));
      card.append(table(cols, found, { class: 'data found-studies' }, (s) => ({ 'data-study-uid': s.study_uid })));
    }
    if (!r.error) card.append(requestForm(p, r.holder, requestsBox, ctx));
    box.append(card);
  }
}

function requestForm(p, holder, requestsBox, ctx) {
  const name = partnerName(holder);
  const msg = messageArea();
  const purpose = select('purpose', PURPOSES, 'treatment');
  const reason = select('reason', REQUEST_REASONS.map((r) => [r, r.replaceAll('-', ' ')]), 'continuity-of-care');
  const accession = textInput('accession');
  const note = h('textarea', { name: 'note', rows: '2', maxlength: '1024' });
  const emergency = checkbox('emergency', 'Emergency access (break-glass)');
  const warn = h('div', { class: 'alert alert-warn', role: 'note', hidden: true },
    'Emergency access is granted at once only where this partner allows it for us, lasts a short time, and is reviewed afterwards by the partner\'s administrator. Use it only when the patient\'s care cannot wait.');
  emergency.input.addEventListener('change', () => {
    warn.hidden = !emergency.input.checked;
  });
  const submit = h('button', { type: 'submit', class: 'btn-primary' }, 'Request access');
  const form = h('form', { class: 'request-form', 'data-partner': name },
    h('fieldset', null,
      h('legend', { text: `Request access from ${name}` }),
      h('div', { class: 'form-grid' },
        field('Purpose', purpose),
        field('Reason', reason),
        field('Accession number (optional)', accession),
      ),
      field('Note for their administrator (optional)', note, 'At most 1024 characters. Kept out of the audit trail; the partner can erase it.'),
      emergency.wrap,
      warn,
      h('div', { class: 'actions' }, submit),
      msg));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await busy(submit, async () => {
      try {
        const body = {
          to: holder.peer_id,
          patient_id: p.patient_id,
          issuer: p.issuer || undefined,
          birth_date: p.birth_date || undefined,
          accession: accession.value.trim() || undefined,
          purpose: purpose.value,
          reason: reason.value,
          note: note.value.trim() || undefined,
          emergency: emergency.input.checked || undefined,
        };
        const ans = await post('/api/v1/requests', body);
        msg.ok(`Request sent to ${name}: ${stateText(ans)}.`);
        loadRequests(p, requestsBox, ctx);
      } catch (e) {
        msg.error(e);
      }
    });
  });
  return form;
}

function stateText(r) {
  switch (r.state) {
    case 'approved':
      return r.expires ? `approved, access until ${dateOnly(r.expires)}` : 'approved';
    case 'denied':
      return r.deny_reason ? `denied (${r.deny_reason})` : 'denied';
    case 'unsent':
      return 'not yet sent — the partner cannot be reached; it is sent as soon as it can';
    case 'failed':
      return 'failed';
    default:
      return r.state;
  }
}

async function loadRequests(p, box, ctx) {
  clear(box);
  const msg = messageArea();
  box.append(msg);
  let list;
  try {
    list = await get('/api/v1/requests');
  } catch (e) {
    if (!ctx.current()) return;
    msg.error(e);
    return;
  }
  if (!ctx.current()) return;
  const mineOnly = checkbox('mine', 'Only my requests', true);
  const tableBox = h('div');
  const render = () => {
    clear(tableBox);
    const rows = (list || []).filter((r) => r.patient_id === p.patient_id && (!mineOnly.input.checked || r.requesting_user === ctx.me.user_id));
    if (!rows.length) {
      tableBox.append(empty('No access requests for this patient.'));
      return;
    }
    const cols = [
      { label: 'Sent', cell: (r) => dateTime(r.created), class: 'nowrap' },
      { label: 'Partner', cell: (r) => partnerName(r.holder) },
      { label: 'Purpose', cell: (r) => r.purpose },
      { label: 'Reason', cell: (r) => r.reason },
      { label: 'Emergency', cell: (r) => (r.emergency ? badge('emergency', 'warn') : '') },
      { label: 'State', cell: (r) => h('span', null, badge(r.state, r.state), ' ', stateDetail(r)) },
    ];
    tableBox.append(table(cols, rows, { id: 'requests', class: 'data' }, (r) => ({ 'data-request-id': r.request_id, 'data-state': r.state })));
  };
  mineOnly.input.addEventListener('change', render);
  box.append(mineOnly.wrap, tableBox);
  render();
}

function stateDetail(r) {
  if (r.state === 'approved' && r.expires) return `access until ${dateOnly(r.expires)}`;
  if (r.state === 'denied' && r.deny_reason) return r.deny_reason;
  if ((r.state === 'unsent' || r.state === 'failed') && r.last_error) return r.last_error;
  if (r.checked) return `checked ${dateTime(r.checked)}`;
  return '';
}

