// Partners: our invite, adding a partner from its invite, the partner list.
import { h, clear, field, button, table, empty, messageArea, busy, section, badge, alertBox } from '../dom.js';
import { get, post, del, apiPath } from '../api.js';
import { dateTime, shortId } from '../format.js';
import { pageHeader } from './common.js';

export async function partnersPage(main, ctx) {
  const messages = messageArea();
  main.append(pageHeader('Partners'), messages);

  // Our invite.
  const inviteBox = h('div');
  main.append(section('Our invite', h('p', { class: 'hint', text: 'Send this invite to a partner\'s administrator; they add it on their node. It is signed and names no patient.' }), inviteBox));
  (async () => {
    try {
      const inv = await get('/api/v1/invite');
      if (!ctx.current()) return;
      const ta = h('textarea', { id: 'invite', readonly: true, rows: '4', class: 'mono', spellcheck: 'false' });
      ta.value = inv.invite;
      const copied = h('span', { class: 'hint', role: 'status', 'aria-live': 'polite' });
      const copy = button('Copy', async () => {
        try {
          await navigator.clipboard.writeText(ta.value);
          copied.textContent = 'Copied.';
        } catch {
          ta.focus();
          ta.select();
          copied.textContent = 'Selected: press Ctrl+C to copy.';
        }
      }, { id: 'copy-invite' });
      inviteBox.append(field('Invite', ta));
      if (inv.notice) inviteBox.append(alertBox(inv.notice, 'warn'));
      inviteBox.append(h('div', { class: 'actions' }, copy, copied));
    } catch (e) {
      if (ctx.current()) inviteBox.append(alertBox(e.message));
    }
  })();

  // Add a partner.
  const addMsg = messageArea();
  const addTa = h('textarea', { id: 'partner-invite', name: 'invite', rows: '3', class: 'mono', spellcheck: 'false', required: true });
  const addBtn = h('button', { type: 'submit', class: 'btn-primary' }, 'Add partner');
  const addForm = h('form', { id: 'add-partner' }, field('Partner\'s invite', addTa, 'Paste the pacsnet-invite-1:… line the partner sent.'), h('div', { class: 'actions' }, addBtn), addMsg);
  addForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(addBtn, async () => {
      try {
        const p = await post('/api/v1/peers', { invite: addTa.value.trim() });
        addTa.value = '';
        addMsg.ok(`${p.name} is now a partner.`);
        load();
      } catch (e) {
        addMsg.error(e);
      }
    });
  });
  main.append(section('Add a partner', addForm));

  const listBox = h('div');
  main.append(section('Partner facilities', listBox));

  async function load() {
    let peers;
    let status;
    try {
      [peers, status] = await Promise.all([get('/api/v1/peers'), get('/api/v1/status').catch(() => null)]);
    } catch (e) {
      if (ctx.current()) messages.error(e);
      return;
    }
    if (!ctx.current()) return;
    clear(listBox);
    if (!peers.length) {
      listBox.append(empty('No partners yet.'));
      return;
    }
    const outbox = new Map();
    for (const ps of (status && status.partner_states) || []) outbox.set(ps.peer_id, ps);
    const cols = [
      { label: 'Name', cell: (p) => p.name, rowHeader: true },
      { label: 'Peer ID', cell: (p) => h('span', { class: 'uid', title: p.peer_id, text: shortId(p.peer_id) }) },
      {
        label: 'Connection',
        cell: (p) => (p.online ? badge('online', 'ok') : h('span', null, badge('offline', 'muted'), p.last_seen ? ` last seen ${dateTime(p.last_seen)}` : ' not seen since the node started')),
      },
      { label: 'Waiting manifests', cell: (p) => String((outbox.get(p.peer_id) || {}).outbox || 0), class: 'num' },
      { label: 'Added', cell: (p) => dateTime(p.added), class: 'nowrap' },
      {
        label: 'Actions',
        cell: (p) => {
          const b = button('Remove', () => {
            if (!window.confirm(`Remove ${p.name} as a partner? Its live grants are revoked and what it shared with us is forgotten.`)) return;
            busy(b, async () => {
              try {
                const r = await del(apiPath('peers', p.peer_id));
                messages.ok(`${r.name} removed: ${r.revoked_grants} grants revoked, ${r.delivered} revocations delivered, ${r.undelivered} not delivered in time.`);
                load();
              } catch (e) {
                messages.error(e);
              }
            });
          }, { class: 'btn-danger', 'data-action': 'remove' });
          return b;
        },
      },
    ];
    listBox.append(table(cols, peers, { id: 'partners', class: 'data' }, (p) => ({ 'data-peer-id': p.peer_id })));
  }
  await load();
}
