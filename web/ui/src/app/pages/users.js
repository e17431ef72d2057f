// Users and their API tokens.
import { h, clear, field, textInput, select, button, table, empty, messageArea, busy, section, badge, alertBox } from '../dom.js';
import { get, post, del, apiPath } from '../api.js';
import { dateTime } from '../format.js';
import { pageHeader } from './common.js';

const ROLES = [['clinician', 'clinician'], ['admin', 'admin'], ['auditor', 'auditor']];

// secretBox shows a password or token once, with a warning.
function secretBox(title, secret, id) {
  const out = h('input', { type: 'text', readonly: true, class: 'mono', id, value: secret, spellcheck: 'false' });
  const copy = button('Copy', async () => {
    try {
      await navigator.clipboard.writeText(secret);
    } catch {
      out.focus();
      out.select();
    }
  });
  return h('div', { class: 'alert alert-warn secret', role: 'alert' },
    h('p', { text: `${title} It is shown only now: copy it and hand it over safely.` }),
    field('Secret', out), copy);
}

export async function usersPage(main, ctx) {
  const messages = messageArea();
  const secretArea = h('div', { id: 'secret-area' });
  main.append(pageHeader('Users'), messages, secretArea);

  // Add a user.
  const addMsg = messageArea();
  const name = textInput('name', { id: 'user-name', required: true, pattern: '[a-z0-9._\\-]{1,64}' });
  const role = select('role', ROLES, 'clinician', { id: 'user-role' });
  const pw = h('input', { type: 'password', name: 'password', id: 'user-password', autocomplete: 'new-password', minlength: '8' });
  const addBtn = h('button', { type: 'submit', class: 'btn-primary' }, 'Add user');
  const addForm = h('form', { id: 'add-user' },
    h('div', { class: 'form-grid' },
      field('Name', name, 'a-z, 0-9, . _ - (users are never deleted, only disabled)'),
      field('Role', role),
      field('Password (optional)', pw, 'At least 8 characters; empty: the node generates a one-time password.')),
    h('div', { class: 'actions' }, addBtn), addMsg);
  addForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(addBtn, async () => {
      try {
        const ans = await post('/api/v1/users', { name: name.value.trim(), role: role.value, password: pw.value || undefined });
        addMsg.ok(`User ${ans.account.name} added as ${ans.account.role}.`);
        clear(secretArea);
        if (ans.password) secretArea.append(secretBox(`One-time password of ${ans.account.name}.`, ans.password, 'new-password'));
        name.value = '';
        pw.value = '';
        loadUsers();
      } catch (e) {
        addMsg.error(e);
      }
    });
  });

  const usersBox = h('div');
  const tokensBox = h('div');
  const tokenForm = h('div');
  main.append(section('Users', usersBox), section('Add a user', addForm), section('API tokens', tokenForm, tokensBox));

  let users = [];
  async function loadUsers() {
    try {
      users = await get('/api/v1/users');
    } catch (e) {
      if (ctx.current()) messages.error(e);
      return;
    }
    if (!ctx.current()) return;
    clear(usersBox);
    renderTokenForm();
    if (!users.length) {
      usersBox.append(empty('No users yet.'));
      return;
    }
    const cols = [
      { label: 'Name', cell: (u) => u.name, rowHeader: true },
      { label: 'Role', cell: (u) => badge(u.role, 'role-' + u.role) },
      { label: 'Status', cell: (u) => (u.disabled ? badge('disabled', 'muted') : badge('active', 'ok')) },
      { label: 'Added', cell: (u) => dateTime(u.created), class: 'nowrap' },
      { label: 'Password set', cell: (u) => dateTime(u.password_set), class: 'nowrap' },
      { label: 'Actions', cell: (u) => userActions(u) },
    ];
    usersBox.append(table(cols, users, { id: 'users', class: 'data' }, (u) => ({ 'data-user': u.name, 'data-disabled': u.disabled ? 'true' : 'false' })));
  }

  function userActions(u) {
    if (u.disabled) return '';
    const rs = select('role', ROLES, u.role);
    const setRole = button('Set role', () => busy(setRole, async () => {
      try {
        await post(apiPath('users', u.name, 'role'), { role: rs.value });
        messages.ok(`${u.name} is now ${rs.value}.`);
        loadUsers();
      } catch (e) {
        messages.error(e);
      }
    }), { 'data-action': 'set-role' });
    const newPw = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', minlength: '8' });
    const reset = button('Reset password', () => busy(reset, async () => {
      try {
        const ans = await post(apiPath('users', u.name, 'password'), { password: newPw.value || undefined });
        newPw.value = '';
        clear(secretArea);
        if (ans.password) secretArea.append(secretBox(`New one-time password of ${u.name}.`, ans.password, 'new-password'));
        messages.ok(`Password of ${u.name} set; their sessions ended.`);
        loadUsers();
      } catch (e) {
        messages.error(e);
      }
    }), { 'data-action': 'reset-password' });
    const disable = button('Disable', () => {
      if (!window.confirm(`Disable ${u.name}? Their tokens stop working and their sessions end at once.`)) return;
      busy(disable, async () => {
        try {
          await post(apiPath('users', u.name, 'disable'));
          messages.ok(`${u.name} disabled.`);
          loadUsers();
          loadTokens();
        } catch (e) {
          messages.error(e);
        }
      });
    }, { class: 'btn-danger', 'data-action': 'disable' });
    return h('div', { class: 'user-actions' },
      h('div', { class: 'row-actions' }, field('New role', rs), setRole),
      h('div', { class: 'row-actions' }, field('New password (optional)', newPw), reset),
      h('div', { class: 'row-actions' }, disable));
  }

  function renderTokenForm() {
    clear(tokenForm);
    const active = users.filter((u) => !u.disabled);
    if (!active.length) return;
    const msg = messageArea();
    const who = select('user_name', active.map((u) => [u.name, u.name]), active[0].name, { id: 'token-user' });
    const exp = textInput('expires', { id: 'token-expires', placeholder: '30d' });
    const b = h('button', { type: 'submit', class: 'btn-primary' }, 'Add token');
    const f = h('form', { id: 'add-token', class: 'inline-form' }, field('User', who), field('Lifetime', exp, 'e.g. 30d or 12h; at most 90d'), h('div', { class: 'actions' }, b), msg);
    f.addEventListener('submit', (ev) => {
      ev.preventDefault();
      busy(b, async () => {
        try {
          const ans = await post('/api/v1/tokens', { user_name: who.value, expires: exp.value.trim() || undefined });
          clear(secretArea);
          secretArea.append(secretBox(`API token of ${ans.token.user_name}, valid until ${dateTime(ans.token.expires)}.`, ans.secret, 'new-token'));
          msg.clear();
          loadTokens();
        } catch (e) {
          msg.error(e);
        }
      });
    });
    tokenForm.append(f);
  }

  async function loadTokens() {
    let tokens;
    try {
      tokens = await get('/api/v1/tokens');
    } catch (e) {
      if (ctx.current()) {
        clear(tokensBox);
        tokensBox.append(alertBox(e.message));
      }
      return;
    }
    if (!ctx.current()) return;
    clear(tokensBox);
    if (!tokens.length) {
      tokensBox.append(empty('No API tokens.'));
      return;
    }
    const cols = [
      { label: 'Token ID', cell: (t) => h('span', { class: 'uid', text: t.token_id }) },
      { label: 'User', cell: (t) => t.user_name },
      { label: 'Created', cell: (t) => dateTime(t.created), class: 'nowrap' },
      { label: 'Expires', cell: (t) => h('span', null, dateTime(t.expires), t.expired ? [' ', badge('expired', 'muted')] : null), class: 'nowrap' },
      {
        label: 'Actions',
        cell: (t) => {
          const b = button('Revoke', () => {
            if (!window.confirm(`Revoke token ${t.token_id} of ${t.user_name}? It stops working at once.`)) return;
            busy(b, async () => {
              try {
                await del(apiPath('tokens', t.token_id));
                messages.ok('Token revoked.');
                loadTokens();
              } catch (e) {
                messages.error(e);
              }
            });
          }, { class: 'btn-danger', 'data-action': 'revoke' });
          return b;
        },
      },
    ];
    tokensBox.append(table(cols, tokens, { id: 'tokens', class: 'data' }, (t) => ({ 'data-token-id': t.token_id })));
  }

  await Promise.all([loadUsers(), loadTokens()]);
}
