// Fetch progress (#/fetch/<id>) and the list of fetches.
import { h, clear, table, empty, messageArea, button, badge, section } from '../dom.js';
import { get, apiPath, ApiError } from '../api.js';
import { partnerName, mb, duration, dateTime, number, shortId } from '../format.js';
import { pageHeader, viewerHref } from './common.js';
import { rememberFetch } from '../state.js';

const STATE_TEXT = {
  running: 'running',
  waiting: 'waiting for the partner',
  done: 'done',
  failed: 'failed',
};

export async function fetchPage(main, ctx) {
  const id = ctx.param;
  rememberFetch(id);
  const messages = messageArea();
  const bar = h('progress', { id: 'fetch-progress', max: '1', value: '0', 'data-state': 'starting', 'aria-label': 'Fetch progress' });
  const facts = h('dl', { class: 'facts', id: 'fetch-facts' });
  const stateEl = h('p', { class: 'fetch-state', id: 'fetch-state', role: 'status', 'aria-live': 'polite' });
  const after = h('div', { class: 'actions', id: 'fetch-after' });
  main.append(pageHeader('Fetch'), messages, h('div', { class: 'panel' }, stateEl, bar, facts, after),
    h('p', null, h('a', { href: '#/fetches', text: 'All fetches' })));

  // Rate from the samples seen: bytes received (not resumed) over time.
  const samples = [];
  let ended = false;
  let es = null;
  let timer = null;
  ctx.onLeave(() => {
    ended = true;
    if (es) es.close();
    if (timer) clearTimeout(timer);
  });

  function show(job) {
    if (!ctx.current()) return;
    const now = Date.now();
    samples.push({ t: now, b: job.bytes_done || 0 });
    while (samples.length > 2 && now - samples[0].t > 5000) samples.shift();
    let rate = 0;
    if (samples.length >= 2) {
      const a = samples[0];
      const b = samples[samples.length - 1];
      if (b.t > a.t) rate = (b.b - a.b) / ((b.t - a.t) / 1000);
    }
    if (job.state !== 'running' || rate <= 0) {
      // Over the whole fetch, when it is over or no samples yet, less the
      // time it waited for an unreachable holder (not a slow link).
      const end = job.finished ? new Date(job.finished).getTime() : now;
      const start = new Date(job.started).getTime();
      const got = (job.bytes_done || 0) - (job.bytes_resumed || 0);
      const secs = (end - start) / 1000 - (job.waited_seconds || 0);
      if (secs > 0 && got > 0) rate = got / secs;
    }
    // The node's own smoothed rate and time left, from the transfer engine,
    // when it reports them.
    if (job.state === 'running' && job.rate > 0) rate = job.rate;
    const total = job.bytes || 0;
    const done = job.bytes_done || 0;
    bar.max = total > 0 ? total : 1;
    bar.value = total > 0 ? done : job.state === 'done' ? 1 : 0;
    bar.dataset.state = job.state;
    bar.setAttribute('aria-valuetext', `${number(job.instances_done)} of ${number(job.instances)} images`);
    clear(stateEl);
    stateEl.append(badge(STATE_TEXT[job.state] || job.state, job.state));
    if (job.state === 'waiting' && job.next_attempt) stateEl.append(` — next attempt ${dateTime(job.next_attempt)}`);
    let eta = job.state === 'running' && rate > 0 ? duration((total - done) / rate) : '';
    if (job.state === 'running' && job.eta_seconds > 0) eta = duration(job.eta_seconds);
    clear(facts);
    const pairs = [
      ['Study', job.study_uid],
      ['From', partnerName(job.holder)],
      ['Images', `${number(job.instances_done)} / ${number(job.instances)}`],
      ['Data', `${mb(done)} / ${mb(total)} MB`],
      ['Rate', rate > 0 ? `${(rate / 1e6).toFixed(1)} MB/s` : '—'],
      ['Time left', eta || (job.state === 'done' ? '0 s' : '—')],
      ['Already held', job.bytes_resumed ? `${mb(job.bytes_resumed)} MB` : '—'],
      ['Sources', (job.sources || []).map((x) => `${partnerName(x.holder)}: ${mb(x.bytes)} MB (${x.state})`).join('; ') || partnerName(job.holder)],
      ['Started', dateTime(job.started)],
    ];
    if (job.finished) pairs.push(['Finished', dateTime(job.finished)]);
    if (job.waited_seconds >= 1) pairs.push(['Waited for the holder', duration(job.waited_seconds)]);
    if (job.give_up_at) pairs.push(['Gives up at', dateTime(job.give_up_at)]);
    for (const [k, v] of pairs) facts.append(h('dt', { text: k }), h('dd', { text: v, 'data-field': k.toLowerCase().replace(/\s+/g, '-') }));
    if (job.error) messages.show(job.state === 'waiting' ? `Waiting: ${job.error}` : job.error, job.state === 'failed' ? 'error' : 'warn');
    else messages.clear();
    clear(after);
    if (job.state === 'done') {
      after.append(
        h('a', { class: 'btn btn-primary', href: viewerHref(job.study_uid), id: 'open-viewer', text: 'Open in viewer' }),
        h('a', { class: 'btn btn-link', href: '#/study/' + encodeURIComponent(job.study_uid), text: 'Study details' }),
      );
    }
  }

  function finish(job) {
    ended = true;
    if (es) es.close();
    show(job);
  }

  async function poll() {
    if (ended || !ctx.current()) return;
    try {
      const job = await get(apiPath('fetches', id));
      if (job.state === 'done' || job.state === 'failed') {
        finish(job);
        return;
      }
      show(job);
    } catch (e) {
      if (!ctx.current()) return;
      messages.error(e);
      if (e instanceof ApiError && e.status === 404) return;
    }
    timer = setTimeout(poll, 500);
  }

  // The first state at once, then live events (polling if they fail).
  try {
    const job = await get(apiPath('fetches', id));
    if (job.state === 'done' || job.state === 'failed') {
      finish(job);
      return;
    }
    show(job);
  } catch (e) {
    messages.error(e);
    if (e instanceof ApiError && e.status === 404) return;
  }
  if (ended || !ctx.current()) return;
  if (typeof EventSource === 'function') {
    es = new EventSource(apiPath('fetches', id, 'events'), { withCredentials: true });
    const onData = (ev, last) => {
      let job;
      try {
        job = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (last || job.state === 'done' || job.state === 'failed') finish(job);
      else show(job);
    };
    es.addEventListener('progress', (ev) => onData(ev, false));
    es.addEventListener('end', (ev) => onData(ev, true));
    es.addEventListener('error', () => {
      if (ended) return;
      es.close();
      es = null;
      poll();
    });
  } else {
    poll();
  }
}

export async function fetchesPage(main, ctx) {
  const messages = messageArea();
  const box = h('div');
  const refresh = button('Refresh', () => load());
  main.append(pageHeader('Fetches', refresh), messages, section('Fetches', box));

  async function load() {
    messages.clear();
    clear(box);
    box.append(h('p', { class: 'loading', text: 'Loading fetches…' }));
    let list = [];
    try {
      list = await get('/api/v1/fetches');
    } catch (e) {
      messages.error(e);
    }
    if (!ctx.current()) return;
    clear(box);
    const rows = list || [];
    if (!rows.length) {
      box.append(empty('No fetches yet.'));
      return;
    }
    const cols = [
      { label: 'Started', cell: (j) => dateTime(j.started), class: 'nowrap' },
      { label: 'Study', cell: (j) => h('span', { class: 'uid', title: j.study_uid, text: shortId(j.study_uid) }) },
      { label: 'From', cell: (j) => partnerName(j.holder) },
      { label: 'State', cell: (j) => badge(STATE_TEXT[j.state] || j.state, j.state) },
      { label: 'Images', cell: (j) => `${number(j.instances_done)} / ${number(j.instances)}`, class: 'num' },
      { label: 'Data', cell: (j) => `${mb(j.bytes_done)} / ${mb(j.bytes)} MB`, class: 'num' },
      {
        label: 'Actions',
        cell: (j) => h('div', { class: 'row-actions' },
          h('a', { class: 'btn btn-link', href: '#/fetch/' + encodeURIComponent(j.fetch_id), text: 'Progress' }),
          j.state === 'done' ? h('a', { class: 'btn btn-link', href: viewerHref(j.study_uid), text: 'Open' }) : null),
      },
    ];
    box.append(table(cols, rows, { id: 'fetches', class: 'data' }, (j) => ({ 'data-fetch-id': j.fetch_id, 'data-state': j.state })));
    box.append(h('p', { class: 'hint', text: 'The fetches running on the node and the most recent finished ones, newest first.' }));
  }
  await load();
}
