// A study held here: its series, Open, Download, Send to our PACS; the sends list.
import { h, clear, field, select, button, table, empty, messageArea, busy, section, badge } from '../dom.js';
import { get, post, apiPath } from '../api.js';
import { personName, dicomDate, dicomTime, number, modalities, bytes, partnerName, dateTime, shortId } from '../format.js';
import { pageHeader, viewerHref, patientButton } from './common.js';
import { rememberSend, draftGrant } from '../state.js';

export async function studyPage(main, ctx) {
  const uid = ctx.param;
  const messages = messageArea();
  main.append(pageHeader('Study'), messages);
  let studies;
  let instances;
  try {
    [studies, instances] = await Promise.all([get('/api/v1/studies'), get(apiPath('studies', uid, 'instances'))]);
  } catch (e) {
    if (ctx.current()) messages.error(e);
    return;
  }
  if (!ctx.current()) return;
  const st = (studies || []).find((s) => s.study_uid === uid);
  if (!st) {
    messages.show('This study is not held here.');
    return;
  }
  const complete = st.complete !== false;
  const facts = h('dl', { class: 'facts', id: 'study-facts', 'data-study-uid': uid },
    h('dt', { text: 'Patient' }), h('dd', { text: personName(st.patient_name) }),
    h('dt', { text: 'Patient ID' }), h('dd', { text: st.patient_id }),
    h('dt', { text: 'Birth date' }), h('dd', { text: dicomDate(st.patient_birth_date) || '—' }),
    h('dt', { text: 'Study date' }), h('dd', { text: `${dicomDate(st.study_date)} ${dicomTime(st.study_time)}`.trim() }),
    h('dt', { text: 'Description' }), h('dd', { text: st.description || '—' }),
    h('dt', { text: 'Modality' }), h('dd', { text: modalities(st.modalities) }),
    h('dt', { text: 'Accession' }), h('dd', { text: st.accession_number || '—' }),
    h('dt', { text: 'Images' }), h('dd', { text: st.expected ? `${number(st.instances)} of ${number(st.expected)}` : number(st.instances) }),
    h('dt', { text: 'Size' }), h('dd', { text: bytes(st.bytes) }),
    h('dt', { text: 'Source' }), h('dd', { text: st.origin ? `fetched from ${partnerName(st.origin)}` : 'imported here' }),
    h('dt', { text: 'Study UID' }), h('dd', { class: 'uid', text: uid }));

  const actions = h('div', { class: 'actions' });
  if (complete) {
    actions.append(h('a', { class: 'btn btn-primary', href: viewerHref(uid), 'data-action': 'open', text: 'Open' }));
  } else {
    actions.append(badge('incomplete: some images are not here yet', 'warn'));
  }
  actions.append(
    h('a', { class: 'btn', href: apiPath('studies', uid, 'download'), download: '', 'data-action': 'download', text: 'Download' }),
    patientButton(st),
  );
  // An admin grants a study imported here from its page.
  if (ctx.me.role === 'admin' && !st.origin) {
    actions.append(h('a', { class: 'btn', href: '#/admin/grants', 'data-action': 'grant', text: 'Grant to a partner' }));
    actions.lastChild.addEventListener('click', () => draftGrant({ study_uid: uid }));
  }
  main.append(h('div', { class: 'panel' }, facts, actions));

  // Series from the instance list.
  const series = new Map();
  for (const i of instances || []) {
    let s = series.get(i.series_uid);
    if (!s) {
      s = { uid: i.series_uid, number: i.series_number, modality: i.modality, description: i.series_description, count: 0, size: 0 };
      series.set(i.series_uid, s);
    }
    s.count += 1;
    s.size += i.size || 0;
  }
  const scols = [
    { label: 'Series', cell: (s) => (s.number !== undefined ? String(s.number) : ''), class: 'num' },
    { label: 'Modality', cell: (s) => s.modality || '' },
    { label: 'Description', cell: (s) => s.description || '' },
    { label: 'Images', cell: (s) => number(s.count), class: 'num' },
    { label: 'Size', cell: (s) => bytes(s.size), class: 'num' },
    { label: 'Actions', cell: (s) => (complete ? h('a', { class: 'btn btn-link', href: viewerHref(uid, s.uid), text: 'Open' }) : '') },
  ];
  main.append(section('Series', series.size ? table(scols, [...series.values()], { id: 'series', class: 'data' }, (s) => ({ 'data-series-uid': s.uid })) : empty('No images held.')));
  main.append(sendPanel(uid, ctx));
}

function sendPanel(uid, ctx) {
  const msg = messageArea();
  const box = h('div');
  const progress = h('div', { id: 'send-progress-box' });
  const panel = section('Send to our PACS', box, msg, progress);
  (async () => {
    let aes;
    try {
      aes = await get('/api/v1/aes');
    } catch (e) {
      msg.error(e);
      return;
    }
    if (!ctx.current()) return;
    if (!aes || !aes.length) {
      box.append(empty('No DICOM destinations are configured. An administrator adds them (pacsnet ae add).'));
      return;
    }
    const sel = select('to', aes.map((a) => [a.title, `${a.title} (${a.host}:${a.port})`]), aes[0].title, { id: 'send-to' });
    const go = h('button', { type: 'submit', class: 'btn-primary' }, 'Send to our PACS');
    const form = h('form', { class: 'inline-form', id: 'send-form' }, field('Destination', sel), h('div', { class: 'actions' }, go));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      busy(go, async () => {
        try {
          const job = await post('/api/v1/sends', { study_uid: uid, to: sel.value });
          rememberSend(job.send_id);
          msg.clear();
          followSend(job, progress, ctx);
        } catch (e) {
          msg.error(e);
        }
      });
    });
    box.append(form);
  })();
  return panel;
}

function sendView(job) {
  const total = job.instances || 0;
  const done = (job.completed || 0) + (job.warning || 0) + (job.failed || 0);
  const bar = h('progress', { class: 'send-progress', max: String(total || 1), value: String(total ? done : job.state === 'done' ? 1 : 0), 'data-state': job.state, 'aria-label': `Send to ${job.to}` });
  const parts = [`${number(job.completed)} stored`];
  if (job.warning) parts.push(`${number(job.warning)} with warnings`);
  if (job.failed) parts.push(`${number(job.failed)} refused`);
  return h('div', { class: 'send-job', 'data-send-id': job.send_id, 'data-state': job.state },
    h('p', null, badge(job.state, job.state), ` to ${job.to}: ${parts.join(', ')} of ${number(total)}`),
    bar,
    job.error ? h('div', { class: 'alert alert-error', role: 'alert', text: job.error }) : null);
}

function followSend(job, box, ctx) {
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));
  const show = (j) => {
    clear(box);
    box.append(sendView(j));
  };
  show(job);
  const tick = async () => {
    if (!ctx.current()) return;
    try {
      const j = await get(apiPath('sends', job.send_id));
      show(j);
      if (j.state === 'running') timer = setTimeout(tick, 500);
    } catch (e) {
      clear(box);
      box.append(h('div', { class: 'alert alert-error', role: 'alert', text: e.message }));
    }
  };
  if (job.state === 'running') timer = setTimeout(tick, 500);
}

export async function sendsPage(main, ctx) {
  const messages = messageArea();
  const box = h('div');
  const refresh = button('Refresh', () => load());
  main.append(pageHeader('Sends', refresh), messages,
    h('p', { class: 'hint', text: 'Sends to your DICOM destinations, newest first. Start one from a study held here (Studies → Details → Send to our PACS).' }),
    box);
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));

  async function load() {
    clearTimeout(timer);
    let jobs = [];
    try {
      jobs = (await get('/api/v1/sends')) || [];
    } catch (e) {
      if (ctx.current()) messages.error(e);
    }
    if (!ctx.current()) return;
    clear(box);
    if (!jobs.length) {
      box.append(empty('No sends yet.'));
      return;
    }
    const cols = [
      { label: 'Started', cell: (j) => dateTime(j.started), class: 'nowrap' },
      { label: 'Study', cell: (j) => h('a', { href: '#/study/' + encodeURIComponent(j.study_uid), class: 'uid', title: j.study_uid, text: shortId(j.study_uid) }) },
      { label: 'To', cell: (j) => j.to },
      { label: 'State', cell: (j) => badge(j.state, j.state) },
      { label: 'Stored', cell: (j) => `${number(j.completed)} / ${number(j.instances)}`, class: 'num' },
      { label: 'Refused', cell: (j) => number(j.failed), class: 'num' },
      { label: 'Error', cell: (j) => j.error || '' },
    ];
    box.append(table(cols, jobs, { id: 'sends', class: 'data' }, (j) => ({ 'data-send-id': j.send_id, 'data-state': j.state })));
    if (jobs.some((j) => j.state === 'running')) timer = setTimeout(load, 1000);
  }
  await load();
}
