// A tiny development server for the web app while the node does not serve
// /app/, sessions or the new routes yet.
//
//   PACSNET_HOME=/path/to/home PORT=7600 ROLE=admin node test/app-devserver.mjs
//
// Serves ../dist at /app/ (with the node's Content-Security-Policy), proxies
// /api/* and /dicom-web/* to the node named by HOME/run/api.json (or
// NODE_URL) adding Authorization: Bearer <HOME/keys/api.token or TOKEN>,
// and fakes what the node lacks: GET /api/v1/me (role from the cookie
// dev_role, else ROLE; dev_role=none answers 401), GET /api/v1/worklist
// (built from /api/v1/studies and /api/v1/shared), the fetch events stream
// (by polling the node), /login and /logout. Non-GET API requests without
// the right X-Pacsnet-CSRF header are refused 403, as the node will.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(process.env.DIST || path.join(here, '..', '..', 'dist'));
const home = process.env.PACSNET_HOME || '';
const port = Number(process.env.PORT || 7600);
const defaultRole = process.env.ROLE || 'admin';
const CSRF = 'dev-csrf-0123456789abcdef';
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

function nodeURL() {
  if (process.env.NODE_URL) return process.env.NODE_URL.replace(/\/$/, '');
  const j = JSON.parse(fs.readFileSync(path.join(home, 'run', 'api.json'), 'utf8'));
  const u = j.api || j.url || j.http;
  return (u.startsWith('http') ? u : 'http://' + u).replace(/\/$/, '');
}
function token() {
  return process.env.TOKEN || fs.readFileSync(path.join(home, 'keys', 'api.token'), 'utf8').trim();
}

const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm', '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.map': 'application/json' };

function cookies(req) {
  const out = {};
  for (const part of (req.headers.cookie || '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

function sendJSON(res, status, v) {
  const b = JSON.stringify(v);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b) });
  res.end(b);
}

async function nodeGet(p) {
  const r = await fetch(nodeURL() + p, { headers: { Authorization: 'Bearer ' + token() } });
  const text = await r.text();
  if (!r.ok) {
    const e = new Error(`node ${p}: ${r.status} ${text}`);
    e.status = r.status;
    e.body = text;
    throw e;
  }
  return JSON.parse(text);
}

function pnMatch(pattern, name) {
  if (!pattern) return true;
  const esc = pattern.toLowerCase().replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  const n = (name || '').toLowerCase();
  return new RegExp('^' + esc).test(n) || n.includes(pattern.toLowerCase().replace(/\*/g, ''));
}

async function worklist(q) {
  const [studies, shared] = await Promise.all([nodeGet('/api/v1/studies'), nodeGet('/api/v1/shared')]);
  const byUID = new Map();
  for (const s of shared) byUID.set(s.study_uid, s);
  const sh = (s) => (s ? { state: s.state, grant_id: s.grant_id, expires: s.expires, scope: s.scope, grantee_user: s.grantee_user } : undefined);
  const attrs = (s) => {
    const o = {};
    for (const k of ['study_uid', 'patient_id', 'issuer_of_patient_id', 'patient_name', 'patient_birth_date', 'patient_sex', 'study_date', 'study_time', 'description', 'accession_number', 'study_id', 'modalities']) {
      if (s[k] !== undefined) o[k] = s[k];
    }
    return o;
  };
  const rows = [];
  const local = new Set();
  for (const s of studies) {
    local.add(s.study_uid);
    rows.push({ ...attrs(s), location: 'here', origin: s.origin, instances: s.instances, series: 0, complete: s.complete, shared: sh(byUID.get(s.study_uid)) });
  }
  for (const s of shared) {
    if (local.has(s.study_uid)) continue;
    rows.push({ ...attrs(s), location: 'partner', origin: s.issuer, instances: s.instances, series: 0, complete: false, shared: sh(s) });
  }
  const f = Object.fromEntries(q.entries());
  const out = rows.filter((r) => {
    if (f.patient_name && !pnMatch(f.patient_name, r.patient_name)) return false;
    if (f.patient_id && r.patient_id !== f.patient_id) return false;
    if (f.accession && r.accession_number !== f.accession) return false;
    if (f.modality && !(r.modalities || []).includes(f.modality.toUpperCase())) return false;
    if (f.from && (r.study_date || '') < f.from) return false;
    if (f.to && (r.study_date || '') > f.to) return false;
    if (f.location && r.location !== f.location) return false;
    if (f.source) {
      if (f.source === 'local') {
        if (r.origin) return false;
      } else if (!r.origin || (r.origin.name !== f.source && r.origin.peer_id !== f.source)) return false;
    }
    return true;
  });
  out.sort((a, b) => (b.study_date || '').localeCompare(a.study_date || '') || (b.study_time || '').localeCompare(a.study_time || ''));
  const offset = Math.max(0, Number(f.offset || 0));
  const limit = Math.min(500, Math.max(1, Number(f.limit || 50)));
  return { total: out.length, offset, limit, rows: out.slice(offset, offset + limit) };
}

async function events(req, res, id) {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
  let closed = false;
  req.on('close', () => {
    closed = true;
  });
  while (!closed) {
    let job;
    try {
      job = await nodeGet('/api/v1/fetches/' + encodeURIComponent(id));
    } catch (e) {
      res.end();
      return;
    }
    const end = job.state === 'done' || job.state === 'failed';
    res.write(`event: ${end ? 'end' : 'progress'}\ndata: ${JSON.stringify(job)}\n\n`);
    if (end) {
      res.end();
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function proxy(req, res, url) {
  const target = new URL(nodeURL() + url.pathname + url.search);
  const headers = { ...req.headers, authorization: 'Bearer ' + token(), host: target.host };
  delete headers.cookie;
  const preq = http.request(target, { method: req.method, headers }, (pres) => {
    res.writeHead(pres.statusCode, pres.headers);
    pres.pipe(res);
  });
  preq.on('error', (e) => sendJSON(res, 502, { error: 'The node could not be reached: ' + e.message, code: 'unavailable' }));
  req.pipe(preq);
}

function serveStatic(req, res, url) {
  let rel = decodeURIComponent(url.pathname.slice('/app/'.length)) || 'index.html';
  const file = path.resolve(dist, rel);
  if (!file.startsWith(dist + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found');
    return;
  }
  res.writeHead(200, { 'Content-Type': types[path.extname(file)] || 'application/octet-stream', 'Content-Security-Policy': CSP, 'Cache-Control': 'no-store' });
  fs.createReadStream(file).pipe(res);
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const role = cookies(req).dev_role || defaultRole;
  try {
    if (url.pathname === '/') {
      res.writeHead(303, { Location: '/app/' });
      res.end();
      return;
    }
    if (url.pathname === '/login') {
      if (req.method === 'POST') {
        res.writeHead(303, { Location: '/app/' });
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': CSP });
      res.end('<!doctype html><title>Log in</title><link rel="icon" href="data:,"><h1>Log in (dev server)</h1><p><a href="/app/">Continue to the app</a></p>');
      return;
    }
    if (url.pathname === '/logout' && req.method === 'POST') {
      if (req.headers['x-pacsnet-csrf'] !== CSRF) return sendJSON(res, 403, { error: 'missing CSRF header', code: 'forbidden' });
      res.writeHead(204);
      res.end();
      return;
    }
    if (url.pathname.startsWith('/app/')) return serveStatic(req, res, url);
    if (url.pathname.startsWith('/api/') && req.method !== 'GET' && req.method !== 'HEAD' && req.headers['x-pacsnet-csrf'] !== CSRF) {
      return sendJSON(res, 403, { error: 'The request lacks the CSRF header.', code: 'forbidden' });
    }
    if (url.pathname.startsWith('/api/') && role === 'none') return sendJSON(res, 401, { error: 'unauthorized', code: 'unauthorized' });
    if (url.pathname === '/api/v1/me') {
      let facility = 'pacsnet';
      try {
        facility = (await nodeGet('/api/v1/status')).name;
      } catch {
        /* keep default */
      }
      return sendJSON(res, 200, { user_id: 'admin', // the proxy acts with the node's admin token (actor admin)
         name: 'dev-' + role, role, csrf: CSRF, facility, session_idle_seconds: 900 });
    }
    // Enforce the roles the docs give, like the node does for users.
    const adminOnly = /^\/api\/v1\/(invite|peers|grants|outbox|users|tokens|requests\/incoming)/.test(url.pathname) || (url.pathname === '/api/v1/aes' && req.method !== 'GET');
    const auditOnly = /^\/api\/v1\/audit/.test(url.pathname);
    if (url.pathname.startsWith('/api/v1/') && url.pathname !== '/api/v1/status') {
      const ok = role === 'admin' || (role === 'clinician' && !adminOnly && !auditOnly) || (role === 'auditor' && auditOnly);
      if (!ok) return sendJSON(res, 403, { error: `This needs the role admin${auditOnly ? ' or auditor' : ''}.`, code: 'forbidden' });
    }
    if (url.pathname === '/api/v1/worklist' && req.method === 'GET') return sendJSON(res, 200, await worklist(url.searchParams));
    const ev = /^\/api\/v1\/fetches\/([^/]+)\/events$/.exec(url.pathname);
    if (ev && req.method === 'GET') return events(req, res, decodeURIComponent(ev[1]));
    if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/dicom-web/')) return proxy(req, res, url);
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found');
  } catch (e) {
    sendJSON(res, e.status || 500, e.body ? safeParse(e.body) : { error: e.message, code: 'internal' });
  }
});

function safeParse(s) {
  try {
    return JSON.parse(s);
  } catch {
    return { error: s, code: 'internal' };
  }
}

server.listen(port, '127.0.0.1', () => {
  console.log(`app dev server on http://127.0.0.1:${port}/app/ -> ${nodeURL()}`);
});
