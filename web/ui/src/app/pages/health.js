// Node health: GET /api/v1/status and the outbox.
import { h, clear, button, table, empty, messageArea, section, badge } from '../dom.js';
import { get } from '../api.js';
import { bytes, dateTime, partnerName, number, mb, shortId } from '../format.js';
import { pageHeader } from './common.js';

export async function healthPage(main, ctx) {
  const messages = messageArea();
  const body = h('div');
  const refresh = button('Refresh', () => load());
  main.append(pageHeader('Node health', refresh), messages, body);
  let timer = null;
  ctx.onLeave(() => clearTimeout(timer));

  async function load() {
    clearTimeout(timer);
    let st;
    let outbox = [];
    try {
      [st, outbox] = await Promise.all([get('/api/v1/status'), get('/api/v1/outbox').catch((e) => {
        messages.error(e);
        return [];
      })]);
    } catch (e) {
      if (ctx.current()) messages.error(e);
      return;
    }
    if (!ctx.current()) return;
    clear(body);
    const ok = st.health === 'ok';
    const head = h('div', { class: ['panel', 'health', ok ? 'health-ok' : 'health-bad'], id: 'health', 'data-health': st.health },
      h('p', { class: 'health-line' }, badge(ok ? 'healthy' : st.health, ok ? 'ok' : 'denied'), ` ${st.name} (${st.ae_title})`),
      st.problems && st.problems.length
        ? h('ul', { class: 'problems', role: 'alert' }, st.problems.map((p) => h('li', { text: p })))
        : h('p', { text: 'No problems.' }));
    const usedPct = st.disk_total ? Math.round(100 * (1 - st.disk_free / st.disk_total)) : 0;
    const facts = h('dl', { class: 'facts', id: 'status-facts' },
      h('dt', { text: 'Disk free' }), h('dd', null, `${bytes(st.disk_free)} of ${bytes(st.disk_total)} `,
        h('meter', { min: '0', max: '100', low: '80', high: '95', optimum: '0', value: String(usedPct), 'aria-label': 'Disk used, percent' }), ` ${usedPct}% used`),
      h('dt', { text: 'Archive size' }), h('dd', { text: bytes(st.archive_bytes) }),
      h('dt', { text: 'Partners online' }), h('dd', { text: `${st.partners_online} of ${st.partners}` }),
      h('dt', { text: 'Outbox' }), h('dd', { text: `${number(st.outbox)} manifests waiting` }),
      h('dt', { text: 'Requests waiting' }), h('dd', null, String(st.requests_pending || 0), st.requests_pending ? [' ', h('a', { href: '#/admin/requests', text: 'decide' })] : null),
      h('dt', { text: 'Emergency accesses to review' }), h('dd', { text: String(st.emergency_to_review || 0) }),
      h('dt', { text: 'Local API' }), h('dd', { text: st.http }),
      h('dt', { text: 'DICOM' }), h('dd', { text: st.dicom ? `${st.ae_title} @ ${st.dicom}` : 'off' }),
      h('dt', { text: 'DICOM associations open' }), h('dd', { id: 'dicom-associations', text: number(st.dicom_associations || 0) }),
      st.forward_to ? [h('dt', { text: 'Forwarding to' }), h('dd', { text: `${st.forward_to} (${st.forwards_pending} waiting)${st.forward_last_error ? ' — ' + st.forward_last_error : ''}` })] : null,
      st.audit_shipping ? [h('dt', { text: 'Audit shipping' }), h('dd', { text: shippingText(st.audit_shipping) })] : null,
      h('dt', { text: 'Peer ID' }), h('dd', { class: 'uid', text: st.peer_id }),
      h('dt', { text: 'Version' }), h('dd', { text: st.version || 'not reported by the node' }));
    body.append(head, section('Node', facts));

    const pcols = [
      { label: 'Partner', cell: (p) => p.name || shortId(p.peer_id), rowHeader: true },
      { label: 'Connection', cell: (p) => (p.online ? badge('online', 'ok') : h('span', null, badge('offline', 'muted'), p.last_seen ? ` last seen ${dateTime(p.last_seen)}` : '')) },
      { label: 'Outbox', cell: (p) => number(p.outbox), class: 'num' },
      { label: 'Last error', cell: (p) => p.last_error || '' },
    ];
    body.append(section('Partners', (st.partner_states || []).length
      ? table(pcols, st.partner_states, { id: 'partner-states', class: 'data' }, (p) => ({ 'data-peer-id': p.peer_id }))
      : empty('No partners.')));

    const ocols = [
      { label: 'Seq', cell: (o) => String(o.seq), class: 'num' },
      { label: 'Partner', cell: (o) => partnerName(o.peer) },
      { label: 'Kind', cell: (o) => o.kind },
      { label: 'Study', cell: (o) => h('span', { class: 'uid', title: o.study_uid, text: shortId(o.study_uid) }) },
      { label: 'Attempts', cell: (o) => String(o.attempts), class: 'num' },
      { label: 'Next attempt', cell: (o) => dateTime(o.next), class: 'nowrap' },
      { label: 'Last error', cell: (o) => o.last_error || '' },
    ];
    body.append(section('Outbox', outbox.length ? table(ocols, outbox, { id: 'outbox', class: 'data' }) : empty('Nothing waiting for delivery.')));

    const fcols = [
      { label: 'Study', cell: (f) => h('a', { href: '#/fetch/' + encodeURIComponent(f.fetch_id), class: 'uid', title: f.study_uid, text: shortId(f.study_uid) }) },
      { label: 'From', cell: (f) => partnerName(f.holder) },
      { label: 'State', cell: (f) => badge(f.state, f.state) },
      { label: 'Progress', cell: (f) => `${number(f.instances_done)} / ${number(f.instances)} images, ${mb(f.bytes_done)} / ${mb(f.bytes)} MB` },
      { label: 'Error', cell: (f) => f.error || '' },
    ];
    body.append(section('Running fetches', (st.fetches || []).length ? table(fcols, st.fetches, { id: 'running-fetches', class: 'data' }) : empty('No fetches running.')));
    timer = setTimeout(load, 10000);
  }

  function shippingText(s) {
    const parts = [`${s.addr} (${s.format}${s.tls ? ', TLS' : ''})`, s.connected ? 'connected' : 'not connected', `backlog ${number(s.backlog)}`];
    if (s.last_error) parts.push(s.last_error);
    return parts.join(' · ');
  }

  await load();
}
