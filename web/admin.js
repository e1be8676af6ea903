// The admin console (issue 20, first part): streams (start, stop) and live sessions (kick), refreshed every
// second from the admin API. The admin token comes from #token=... (never in a URL the server sees) or the
// form, is kept in sessionStorage and sent as a bearer header: never a cookie, so no CSRF.
const KEY = 'glasscast-admin-token';
const $ = (id) => document.getElementById(id);
const status = $('status');
let token = new URLSearchParams(location.hash.slice(1)).get('token') || sessionStorage.getItem(KEY);
let timer = null;

if (location.hash) history.replaceState(null, '', location.pathname);

async function api(method, path) {
  const resp = await fetch(`/api/v1${path}`, { method, headers: { Authorization: `Bearer ${token}` } });
  if (resp.status === 401 || resp.status === 403) throw new SignInError(resp.status);
  if (!resp.ok) {
    const problem = await resp.json().catch(() => ({}));
    throw new Error(`${method} ${path}: HTTP ${resp.status} ${problem.detail || ''}`.trim());
  }
  return resp.status === 204 || resp.status === 202 ? null : resp.json();
}

class SignInError extends Error {
  constructor(status) {
    super(status === 401 ? 'That admin token is wrong or expired.' : 'That token is not the admin token.');
  }
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function button(label, onClick) {
  const td = document.createElement('td');
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', () => onClick().then(refresh).catch(show));
  td.append(b);
  return td;
}

function streamRow(s) {
  const tr = document.createElement('tr');
  tr.dataset.stream = s.name;
  const stopped = s.state === 'stopped';
  const action = stopped
    ? button('Start', () => api('POST', `/streams/${encodeURIComponent(s.name)}/start`))
    : button('Stop', () => api('POST', `/streams/${encodeURIComponent(s.name)}/stop`));
  tr.append(cell(s.name), cell(s.state), cell(s.encoder), cell(`${s.width}x${s.height}@${s.fps}`),
    cell(String(s.viewers)), action);
  return tr;
}

function age(since) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - since));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

function sessionRow(x) {
  const tr = document.createElement('tr');
  tr.dataset.session = x.id;
  tr.append(cell(x.id.slice(0, 8)), cell(x.role), cell(x.stream), cell(x.label || x.token_id || 'admin'),
    cell(x.client || ''), cell(age(x.since)), cell(x.connected ? 'yes' : 'no'),
    button('Kick', () => api('DELETE', `/sessions/${encodeURIComponent(x.id)}`)));
  return tr;
}

async function refresh() {
  const [streams, sessions] = await Promise.all([api('GET', '/streams'), api('GET', '/sessions')]);
  $('streams').tBodies[0].replaceChildren(...streams.map(streamRow));
  $('sessions').tBodies[0].replaceChildren(...sessions.map(sessionRow));
  status.textContent = `${streams.length} stream(s), ${sessions.length} session(s); updated ${new Date().toLocaleTimeString()}`;
}

function show(e) {
  if (e instanceof SignInError) return signIn(e.message);
  status.textContent = String(e.message || e);
}

function signIn(message) {
  clearInterval(timer);
  sessionStorage.removeItem(KEY);
  token = null;
  $('console').hidden = true;
  $('signin').hidden = false;
  status.textContent = message;
  $('token').focus();
}

async function start() {
  sessionStorage.setItem(KEY, token);
  try {
    await refresh();
  } catch (e) {
    return show(e);
  }
  $('signin').hidden = true;
  $('console').hidden = false;
  clearInterval(timer);
  timer = setInterval(() => refresh().catch(show), 1000);
}

$('signin').addEventListener('submit', (ev) => {
  ev.preventDefault();
  token = $('token').value.trim();
  $('token').value = '';
  start();
});
$('signout').addEventListener('click', () => signIn('Signed out.'));

if (token) start(); else signIn('Sign in with the admin token (auth.admin_token, or the one glasscast made in state_dir/auth/admin_token).');
