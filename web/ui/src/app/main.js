// pacsnet web app: the shell (header, nav by role, logout) and hash routing.
import { get, setCsrf, getCsrf, toLogin, ApiError } from './api.js';
import { h, clear, alertBox, button, errText } from './dom.js';
import { session, clearSession } from './state.js';
import { studiesPage } from './pages/studies.js';
import { patientPage } from './pages/patient.js';
import { fetchPage, fetchesPage } from './pages/fetches.js';
import { studyPage, sendsPage } from './pages/study.js';
import { partnersPage } from './pages/partners.js';
import { grantsPage } from './pages/grants.js';
import { requestsPage } from './pages/requests.js';
import { usersPage } from './pages/users.js';
import { auditPage } from './pages/audit.js';
import { healthPage } from './pages/health.js';

const CLINICAL = ['clinician', 'admin'];
const ADMIN = ['admin'];
const AUDIT = ['admin', 'auditor'];

// Routes: pattern (first hash segments), nav label (null: not in nav), roles, page.
const routes = [
  { path: 'studies', label: 'Studies', roles: CLINICAL, page: studiesPage },
  { path: 'patient', label: 'Patient', roles: CLINICAL, page: patientPage },
  { path: 'study', param: true, label: null, roles: CLINICAL, page: studyPage },
  { path: 'fetches', label: 'Fetches', roles: CLINICAL, page: fetchesPage },
  { path: 'fetch', param: true, label: null, roles: CLINICAL, page: fetchPage },
  { path: 'sends', label: 'Sends', roles: CLINICAL, page: sendsPage },
  { path: 'admin/partners', label: 'Partners', roles: ADMIN, page: partnersPage, group: 'admin' },
  { path: 'admin/grants', label: 'Grants', roles: ADMIN, page: grantsPage, group: 'admin' },
  { path: 'admin/requests', label: 'Access requests', roles: ADMIN, page: requestsPage, group: 'admin' },
  { path: 'admin/users', label: 'Users', roles: ADMIN, page: usersPage, group: 'admin' },
  { path: 'admin/health', label: 'Node health', roles: ADMIN, page: healthPage, group: 'admin' },
  { path: 'audit', label: 'Audit', roles: AUDIT, page: auditPage, group: 'admin' },
];

function defaultRoute(role) {
  return role === 'auditor' ? '#/audit' : '#/studies';
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const parts = raw.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  for (const r of routes) {
    const segs = r.path.split('/');
    if (parts.length < segs.length) continue;
    if (!segs.every((s, i) => parts[i] === s)) continue;
    const rest = parts.slice(segs.length);
    if (r.param && rest.length !== 1) continue;
    if (!r.param && rest.length !== 0) continue;
    return { route: r, param: rest[0] };
  }
  return null;
}

let cleanups = [];
let renderSeq = 0;

function leave() {
  for (const fn of cleanups) {
    try {
      fn();
    } catch {
      /* ignore */
    }
  }
  cleanups = [];
}

async function render() {
  const main = document.getElementById('main');
  const me = session.me;
  if (!me) return;
  leave();
  renderSeq += 1;
  const seq = renderSeq;
  const match = parseHash();
  if (!location.hash || location.hash === '#' || location.hash === '#/') {
    location.replace(defaultRoute(me.role));
    return;
  }
  updateNav(match);
  clear(main);
  if (!match) {
    main.append(h('h1', { tabindex: '-1', text: 'Page not found' }), alertBox('There is no such page.', 'error'));
    focusHeading(main);
    return;
  }
  const { route, param } = match;
  document.title = `${route.label || titleFor(route.path)} — pacsnet`;
  if (!route.roles.includes(me.role)) {
    main.append(
      h('h1', { tabindex: '-1', text: route.label || titleFor(route.path) }),
      h('div', { class: 'alert alert-error', role: 'alert', id: 'not-allowed' }, 'This page is not allowed for your role.'),
    );
    focusHeading(main);
    return;
  }
  const ctx = {
    me,
    param,
    onLeave: (fn) => cleanups.push(fn),
    current: () => seq === renderSeq,
    navigate: (hash) => {
      location.hash = hash;
    },
  };
  try {
    await route.page(main, ctx);
  } catch (e) {
    if (seq !== renderSeq) return;
    main.append(alertBox(errText(e)));
  }
  if (seq === renderSeq) focusHeading(main);
}

function titleFor(path) {
  return { study: 'Study', fetch: 'Fetch' }[path] || path;
}

function focusHeading(main) {
  const h1 = main.querySelector('h1');
  if (h1 && document.activeElement && !main.contains(document.activeElement)) {
    h1.setAttribute('tabindex', '-1');
    h1.focus({ preventScroll: true });
  }
}

function updateNav(match) {
  for (const a of document.querySelectorAll('#nav a')) {
    const active = match && (a.dataset.path === match.route.path
      || (match.route.path === 'fetch' && a.dataset.path === 'fetches')
      || (match.route.path === 'study' && a.dataset.path === 'studies'));
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function buildShell(me) {
  const fac = document.getElementById('facility');
  fac.textContent = me.facility || 'pacsnet';
  const user = document.getElementById('user');
  clear(user);
  user.append(h('span', { class: 'user-name', text: me.name }), ' ', h('span', { class: ['badge', 'role-' + me.role], text: me.role }));
  const nav = document.getElementById('nav');
  clear(nav);
  const ul = h('ul');
  let group = '';
  for (const r of routes) {
    if (!r.label || !r.roles.includes(me.role)) continue;
    const g = r.group || 'clinical';
    if (group && g !== group) ul.append(h('li', { class: 'nav-sep', 'aria-hidden': 'true' }));
    group = g;
    ul.append(h('li', null, h('a', { href: '#/' + r.path, 'data-path': r.path, text: r.label })));
  }
  nav.append(ul);
  const logout = document.getElementById('logout');
  logout.hidden = false;
  logout.addEventListener('click', doLogout);
}

async function doLogout() {
  const btn = document.getElementById('logout');
  btn.disabled = true;
  try {
    await fetch('/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-Pacsnet-CSRF': getCsrf() } });
  } catch {
    /* the session is dropped client-side anyway */
  }
  clearSession();
  toLogin();
}

async function start() {
  const main = document.getElementById('main');
  let me;
  try {
    me = await get('/api/v1/me');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    clear(main);
    main.append(h('h1', { text: 'pacsnet' }), alertBox(errText(e)), button('Try again', () => location.reload()));
    return;
  }
  setCsrf(me.csrf);
  session.me = me;
  buildShell(me);
  window.addEventListener('hashchange', render);
  await render();
}


start();
