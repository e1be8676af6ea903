// The admin console: streams (start, stop), pushes (add, remove), live sessions (kick), recordings (start,
// stop, play, download, delete), links (issue with a QR code, revoke), signing keys (rotate, retire) and the
// host (resources, readiness, on-call conditions, recent warnings), refreshed every second from the admin API.
// The admin token comes from #token=... (never in a URL the server sees) or the form, is kept in
// sessionStorage and sent as a bearer header: never a cookie, so no CSRF.
import { $, SignInError, api, setToken, storedToken } from './admin-lib.js';
import { fillStreams, refreshLinks, setupLinks } from './admin-links.js';
import { refreshHost } from './admin-host.js';
import { sessionRow, streamRow } from './admin-streams.js';
import { renderPushes, setupPushes } from './admin-pushes.js';
import { refreshRecordings, resetPlayer, setupRecordings } from './admin-recordings.js';

const status = $('status');
let timer = null;
const fromLink = new URLSearchParams(location.hash.slice(1)).get('token');
if (location.hash) history.replaceState(null, '', location.pathname);

async function refresh() {
  const [streams, sessions, host, links] = await Promise.all([api('GET', '/streams'), api('GET', '/sessions'),
    refreshHost(), refreshLinks()]);
  const detail = new Map(host.readiness.streams.map((r) => [r.name, r]));
  $('streams').tBodies[0].replaceChildren(...streams.map((s) => streamRow(s, detail.get(s.name), refresh, show)));
  $('sessions').tBodies[0].replaceChildren(...sessions.map((x) => sessionRow(x, refresh, show)));
  fillStreams(streams);
  renderPushes(host.readiness, refresh, show);
  await refreshRecordings(host.readiness);
  const holding = host.conditions.filter((c) => c.holds).length;
  status.textContent = `${streams.length} stream(s), ${sessions.length} session(s), ${links.tokens} link(s), `
    + `${holding ? `${holding} on-call condition(s) holding` : 'no on-call condition holding'}; `
    + `updated ${new Date().toLocaleTimeString()}`;
}

function show(e) {
  if (e instanceof SignInError) return signIn(e.message);
  status.textContent = String(e.message || e);
}

function signIn(message) {
  clearInterval(timer);
  setToken(null);
  resetPlayer();
  $('console').hidden = true;
  $('signin').hidden = false;
  status.textContent = message;
  $('token').focus();
}

async function start(token) {
  setToken(token);
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
  const token = $('token').value.trim();
  $('token').value = '';
  start(token);
});
$('signout').addEventListener('click', () => signIn('Signed out.'));
setupLinks(refresh, show);
setupPushes(refresh, show);
setupRecordings(refresh, show);

const token = fromLink || storedToken();
if (token) start(token); else signIn('Sign in with the admin token (auth.admin_token, or the one glasscast made in state_dir/auth/admin_token).');
