// What every panel of the admin console shares: the admin token (sessionStorage, sent as a bearer header,
// never a cookie), the admin API call, and table cells and buttons built without innerHTML.
const KEY = 'glasscast-admin-token';
let token = null;

export const $ = (id) => document.getElementById(id);

export function setToken(t) {
  token = t;
  if (t) sessionStorage.setItem(KEY, t); else sessionStorage.removeItem(KEY);
}

export function storedToken() {
  return sessionStorage.getItem(KEY);
}

export class SignInError extends Error {
  constructor(status) {
    super(status === 401 ? 'That admin token is wrong or expired.' : 'That token is not the admin token.');
  }
}

// One admin API call; `body` (an object) goes as JSON. Resolves to the JSON answer, the text for
// `as: 'text'`, or null for 202/204.
export async function api(method, path, { body, as } = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (resp.status === 401 || resp.status === 403) throw new SignInError(resp.status);
  if (!resp.ok) {
    const problem = await resp.json().catch(() => ({}));
    throw new Error(`${method} ${path}: HTTP ${resp.status} ${problem.detail || ''}`.trim());
  }
  if (resp.status === 204 || resp.status === 202) return null;
  return as === 'text' ? resp.text() : resp.json();
}

export function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

// A cell with a button; `onClick` returns a promise, after which `done` runs (errors go to `fail`).
export function button(label, onClick, done, fail) {
  const td = document.createElement('td');
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', () => onClick().then(done).catch(fail));
  td.append(b);
  return td;
}

export function row(data, cells) {
  const tr = document.createElement('tr');
  Object.assign(tr.dataset, data);
  tr.append(...cells);
  return tr;
}

// Sets a <select>'s options to `values` (shown as `label(value)`) when they changed, keeping the choice
// made; a refresh with the same values leaves the element alone (an open list stays open).
export function fillSelect(select, values, label = (v) => v) {
  if ([...select.options].map((o) => o.value).join('\n') === values.join('\n')) return;
  const chosen = select.value;
  select.replaceChildren(...values.map((v) => new Option(label(v), v)));
  if (values.includes(chosen)) select.value = chosen;
}

export const localTime = (unixS) => new Date(unixS * 1000).toLocaleString();

export function bytes(n) {
  if (n === null || n === undefined) return 'unknown';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
