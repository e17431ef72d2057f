// Development server for the viewer until the node serves /app/ itself:
// serves ../../dist at /app/ with the node's Content-Security-Policy and
// proxies /dicom-web/* to a running node, adding its bearer token.
//
//   PACSNET_API=http://127.0.0.1:7480 PACSNET_TOKEN="$(cat HOME/keys/api.token)" \
//     node test/devserver.mjs [--port 0]
//
// Listens on 127.0.0.1 only and prints one line: "devserver http://127.0.0.1:PORT".
// /login answers a stub page (the node's real one is server-rendered).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, '..', '..', 'dist');
const api = new URL(process.env.PACSNET_API || 'http://127.0.0.1:7480');
const token = (process.env.PACSNET_TOKEN || '').trim();
const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : Number(process.env.PORT || 0);
if (!token) console.error('devserver: PACSNET_TOKEN is empty; /dicom-web will answer 401');

export const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
  "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; " +
  "base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const types = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm', '.json': 'application/json', '.map': 'application/json',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.txt': 'text/plain; charset=utf-8',
};

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' });
  res.end(body);
}

function serveStatic(req, res, rel) {
  const file = path.resolve(dist, '.' + path.posix.normalize('/' + rel));
  if (!file.startsWith(dist + path.sep)) return send(res, 404, 'text/plain', 'not found');
  fs.stat(file, (err, st) => {
    if (err || !st.isFile()) return send(res, 404, 'text/plain', 'not found'); // no SPA fallback
    res.writeHead(200, { 'Content-Type': types[path.extname(file)] || 'application/octet-stream',
      'Content-Length': st.size, 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-store' });
    if (req.method === 'HEAD') return res.end();
    fs.createReadStream(file).pipe(res);
  });
}

function proxy(req, res) {
  const headers = { ...req.headers, host: api.host, authorization: `Bearer ${token}` };
  delete headers.cookie;
  const up = http.request({ hostname: api.hostname, port: api.port, method: req.method,
    path: req.url, headers }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
  });
  up.on('error', (e) => send(res, 502, 'application/json', JSON.stringify({ error: `node unreachable: ${e.message}` })));
  req.pipe(up);
}

const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname.startsWith('/dicom-web/')) return proxy(req, res);
  if (u.pathname === '/app' || u.pathname === '/app/') return serveStatic(req, res, 'index.html');
  if (u.pathname.startsWith('/app/')) return serveStatic(req, res, decodeURIComponent(u.pathname.slice(5)));
  if (u.pathname === '/') { res.writeHead(303, { Location: '/app/' }); return res.end(); }
  if (u.pathname === '/login') return send(res, 200, 'text/html; charset=utf-8', '<!doctype html><title>Log in</title><p>devserver: log in stub</p>');
  return send(res, 404, 'text/plain', 'not found');
});
server.listen(port, '127.0.0.1', () => {
  console.log(`devserver http://127.0.0.1:${server.address().port}`);
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => server.close(() => process.exit(0)));
