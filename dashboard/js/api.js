// The gateway's API: JSON over the same origin, the session cookie sent by the browser, and
// the session's CSRF token on every change.

import { serverText } from './i18n.js';

let csrf = '';

// A refusal, with the server's reason in the language shown.
export class ApiError extends Error {
  constructor(status, body) {
    super(serverText(body) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function setCsrf(token) { csrf = token || ''; }

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await res.json() : await res.text();
  if (!res.ok) throw new ApiError(res.status, typeof data === 'object' ? data : { error: data });
  return data;
}

// The live stream: `on(kind, data)` for every event; `state(up, closed)` when the link comes
// and goes (`closed`: the browser will not retry by itself).
// EventSource reconnects by itself; the first event after each connection is a snapshot.
export function stream(on, state) {
  const es = new EventSource('/api/v1/events');
  const kinds = ['snapshot', 'resync', 'room', 'door', 'alarm', 'alarm_cleared', 'device', 'decision', 'mode', 'power'];
  for (const k of kinds) {
    es.addEventListener(k, (e) => {
      try { on(k, JSON.parse(e.data)); } catch (err) { console.error('bad event', k, err); }
    });
  }
  es.onopen = () => state(true, false);
  es.onerror = () => state(false, es.readyState === EventSource.CLOSED);
  return es;
}

// A change made from a page: confirmed first when `confirm` is given, sent, said in a message,
// and the page's data read again with `refill` (also after a refusal, whose error is shown).
// Whether it went through.
export async function change(ctx, confirm, send, done, refill) {
  if (confirm && !window.confirm(confirm)) return false;
  try {
    await send();
  } catch (err) {
    ctx.error(err);
    await refill().catch(() => {});
    return false;
  }
  // Done, whatever reading the page again says: the caller shows what must be shown (a new
  // password) and clears its form.
  ctx.toast(done);
  await refill().catch((err) => ctx.error(err));
  return true;
}
