// The JSON API client: session cookie, CSRF header on every non-GET request,
// errors as ApiError carrying the server's sentence.

let csrf = '';

export function setCsrf(token) {
  signedIn = true;
  csrf = token || '';
}

export function getCsrf() {
  return csrf;
}

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

// signedIn: this page had a session (GET /api/v1/me answered), so a 401
// means it ended.
let signedIn = false;

// toLogin goes to the sign-in form; ended says the session ran out (the
// form says so).
export function toLogin(ended) {
  location.assign(ended ? '/login?ended=1' : '/login');
}

// request(method, path, body?, opts?) answers the decoded JSON body.
// opts.full: answer {data, headers, status}. opts.okStatuses: extra statuses
// whose body is answered rather than thrown (e.g. 409 of audit verify).
export async function request(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Pacsnet-CSRF'] = csrf;
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'The node could not be reached. Check the connection and try again.');
  }
  if (res.status === 401) {
    toLogin(signedIn);
    throw new ApiError(401, 'unauthorized', 'Your session has ended. Please log in again.');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  const allowed = opts.okStatuses && opts.okStatuses.includes(res.status);
  if (!res.ok && !allowed) {
    const msg = data && typeof data.error === 'string' && data.error
      ? data.error
      : `The request failed (HTTP ${res.status}).`;
    throw new ApiError(res.status, (data && data.code) || '', msg, data);
  }
  if (opts.full) return { data, headers: res.headers, status: res.status };
  return data;
}

export const get = (path, opts) => request('GET', path, undefined, opts);
export const post = (path, body, opts) => request('POST', path, body === undefined ? {} : body, opts);
export const del = (path, opts) => request('DELETE', path, undefined, opts);

// path joins /api/v1 with percent-escaped segments.
export function apiPath(...segments) {
  return '/api/v1/' + segments.map((s) => encodeURIComponent(String(s))).join('/');
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}
