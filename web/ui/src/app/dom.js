// DOM building without innerHTML: every piece of data goes in as text.

let idSeq = 0;
export function uid(prefix = 'f') {
  idSeq += 1;
  return `${prefix}-${idSeq}`;
}

// h('tag', {class, text, for, id, on: {click: fn}, dataset: {...}, ...attrs}, ...children)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'for') el.htmlFor = v;
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      else if (k === 'dataset') for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else if (k === 'selected') el.selected = !!v;
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// alertBox shows a message in a role=alert element (kind: error, ok, warn, info).
export function alertBox(message, kind = 'error') {
  return h('div', { class: ['alert', 'alert-' + kind], role: kind === 'error' || kind === 'warn' ? 'alert' : 'status' }, message);
}

// A status area: a container whose content is replaced by messages.
export function messageArea() {
  const el = h('div', { class: 'messages', 'aria-live': 'polite' });
  el.show = (message, kind = 'error') => {
    clear(el);
    if (message) el.append(alertBox(message, kind));
  };
  el.error = (e) => el.show(errText(e), 'error');
  el.ok = (m) => el.show(m, 'ok');
  el.clear = () => clear(el);
  return el;
}

export function errText(e) {
  if (!e) return '';
  return e.message || String(e);
}

// Labelled form fields. Each returns {wrap, input}.
export function field(label, input, hint) {
  const id = input.id || uid('in');
  input.id = id;
  const kids = [h('label', { for: id, text: label }), input];
  if (hint) {
    const hid = id + '-hint';
    input.setAttribute('aria-describedby', hid);
    kids.push(h('span', { class: 'hint', id: hid, text: hint }));
  }
  return h('div', { class: 'field' }, kids);
}

export function textInput(name, attrs = {}) {
  return h('input', { type: 'text', name, autocomplete: 'off', ...attrs });
}

export function select(name, options, value, attrs = {}) {
  const s = h('select', { name, ...attrs });
  for (const o of options) {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    s.append(h('option', { value: v, text: label, selected: v === value }));
  }
  return s;
}

export function checkbox(name, label, checked = false, attrs = {}) {
  const id = uid('cb');
  const input = h('input', { type: 'checkbox', name, id, checked, ...attrs });
  return { wrap: h('div', { class: 'field field-check' }, input, h('label', { for: id, text: label })), input };
}

export function button(text, onClick, attrs = {}) {
  return h('button', { type: 'button', ...attrs, on: { click: onClick } }, text);
}

// table(columns, rows, attrs): columns [{label, cell(row) -> node|string, class}]
export function table(columns, rows, attrs = {}, rowAttrs) {
  const thead = h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.class, text: c.label }))));
  const tbody = h('tbody');
  for (const r of rows) {
    const tr = h('tr', rowAttrs ? rowAttrs(r) : null);
    columns.forEach((c, i) => {
      const v = c.cell(r);
      const cell = h(i === 0 && c.rowHeader ? 'th' : 'td', { class: c.class, scope: i === 0 && c.rowHeader ? 'row' : undefined, 'data-label': c.label });
      // One child per cell, so the narrow layout's label/value grid holds.
      if (v !== '' && v !== null && v !== undefined && v !== false) cell.append(h('div', { class: 'cell' }, v));
      tr.append(cell);
    });
    tbody.append(tr);
  }
  const t = h('table', attrs, thead, tbody);
  return h('div', { class: 'table-wrap' }, t);
}

export function empty(text) {
  return h('p', { class: 'empty', text });
}

export function section(title, ...children) {
  const id = uid('sec');
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id, text: title }), children);
}

export function badge(text, kind) {
  return h('span', { class: ['badge', kind ? 'badge-' + kind : ''] }, text);
}

// busy runs fn with the button disabled.
export async function busy(btn, fn) {
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
  }
}
