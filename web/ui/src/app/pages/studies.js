// Studies: the worklist of studies here and shared by partners, server-paged.
import { h, clear, field, textInput, select, button, table, empty, messageArea } from '../dom.js';
import { get, query, ApiError } from '../api.js';
import { personName, dicomDate, toDicomDate, number, modalities } from '../format.js';
import { pageHeader, sourceText, patientButton, availabilityCell, studyActions, runningFetches } from './common.js';

const LIMIT = 50;
// Kept in memory only: the search may name a patient, which must not be in the URL.
const state = {
  filters: { patient_name: '', patient_id: '', from: '', to: '', modality: '', accession: '', source: '', location: '' },
  offset: 0,
};

let peersCache = null;

async function partnerOptions(role) {
  // Only admins may list partners (GET /api/v1/peers); others type a name.
  if (role !== 'admin') return { forbidden: true };
  if (peersCache) return peersCache;
  try {
    const peers = await get('/api/v1/peers');
    peersCache = { peers };
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) peersCache = { forbidden: true };
    else return { error: e };
  }
  return peersCache;
}

function dateInputValue(d) {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(d || '');
  return m ? `${m[1]}-${m[2]}-${m[3]}` : '';
}

export async function studiesPage(main, ctx) {
  const messages = messageArea();
  const results = h('div', { class: 'results' });
  const f = state.filters;

  const inName = textInput('patient_name', { value: f.patient_name });
  const inId = textInput('patient_id', { value: f.patient_id });
  const inFrom = h('input', { type: 'date', name: 'from', value: dateInputValue(f.from) });
  const inTo = h('input', { type: 'date', name: 'to', value: dateInputValue(f.to) });
  const inMod = textInput('modality', { value: f.modality, size: '6' });
  const inAcc = textInput('accession', { value: f.accession });
  const inLoc = select('location', [['', 'here and at partners'], ['here', 'here'], ['partner', 'at partners']], f.location);
  const sourceWrap = h('div', { class: 'field-slot' });

  let inSource = textInput('source', { value: f.source, placeholder: 'local, or a partner name' });
  const po = await partnerOptions(ctx.me.role);
  if (!ctx.current()) return;
  if (po.peers) {
    const opts = [['', 'any'], ['local', 'local (imported here)']];
    for (const p of po.peers) opts.push([p.name || p.peer_id, p.name || p.peer_id]);
    inSource = select('source', opts, f.source);
  }
  sourceWrap.append(field('Source facility', inSource, po.peers ? undefined : 'local, or a partner name or peer ID'));

  const form = h('form', { class: 'search-form', id: 'studies-search', role: 'search' },
    h('div', { class: 'form-grid' },
      field('Patient name', inName, 'words of the name in any order, e.g. smith jo'),
      field('Patient ID', inId),
      field('Study date from', inFrom),
      field('Study date to', inTo),
      field('Modality', inMod),
      field('Accession number', inAcc),
      sourceWrap,
      field('Location', inLoc),
    ),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'btn-primary' }, 'Search'),
      button('Clear', () => {
        for (const el of [inName, inId, inFrom, inTo, inMod, inAcc, inSource, inLoc]) el.value = '';
        readForm();
        state.offset = 0;
        load();
      }),
    ),
  );

  function readForm() {
    state.filters = {
      patient_name: inName.value.trim(),
      patient_id: inId.value.trim(),
      from: toDicomDate(inFrom.value),
      to: toDicomDate(inTo.value),
      modality: inMod.value.trim().toUpperCase(),
      accession: inAcc.value.trim(),
      source: inSource.value.trim(),
      location: inLoc.value,
    };
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    readForm();
    state.offset = 0;
    load();
  });

  main.append(pageHeader('Studies'), form, messages, results);

  async function load() {
    messages.clear();
    clear(results);
    results.append(h('p', { class: 'loading', role: 'status', text: 'Loading studies…' }));
    let page;
    let fetching;
    try {
      [page, fetching] = await Promise.all([
        get('/api/v1/worklist' + query({ ...state.filters, offset: state.offset, limit: LIMIT })),
        runningFetches(),
      ]);
    } catch (e) {
      if (!ctx.current()) return;
      clear(results);
      messages.error(e);
      return;
    }
    if (!ctx.current()) return;
    clear(results);
    renderPage(page, fetching);
  }

  function pager(page) {
    const total = page.total || 0;
    const rows = (page.rows || []).length;
    const first = rows ? page.offset + 1 : 0;
    const last = page.offset + rows;
    const prev = button('Previous', () => {
      state.offset = Math.max(0, page.offset - LIMIT);
      load();
    }, { disabled: page.offset <= 0, 'data-action': 'previous' });
    const next = button('Next', () => {
      state.offset = page.offset + LIMIT;
      load();
    }, { disabled: last >= total, 'data-action': 'next' });
    return h('nav', { class: 'pager', 'aria-label': 'Pages of studies' },
      prev,
      h('span', { class: 'pager-count', 'data-total': total }, `${number(first)}–${number(last)} of ${number(total)}`),
      next);
  }

  function renderPage(page, fetching) {
    const rows = page.rows || [];
    if (!rows.length) {
      results.append(pager(page), empty('No studies match.'));
      return;
    }
    const cols = [
      { label: 'Date', cell: (r) => dicomDate(r.study_date), class: 'nowrap' },
      { label: 'Patient', cell: (r) => personName(r.patient_name) },
      { label: 'Patient ID', cell: (r) => r.patient_id },
      { label: 'Modality', cell: (r) => modalities(r.modalities) },
      { label: 'Description', cell: (r) => r.description || '' },
      { label: 'Images', cell: (r) => number(r.instances), class: 'num' },
      { label: 'Source', cell: (r) => sourceText(r) },
      { label: 'Availability', cell: (r) => availabilityCell(r, fetching) },
      {
        label: 'Actions',
        cell: (r) => {
          const acts = studyActions(r, fetching, messages);
          acts.append(patientButton(r));
          return acts;
        },
      },
    ];
    results.append(
      pager(page),
      table(cols, rows, { id: 'studies', class: 'data' }, (r) => ({ 'data-study-uid': r.study_uid, 'data-location': r.location })),
      pager(page),
    );
  }

  load();
}
