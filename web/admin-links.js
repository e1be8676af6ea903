// The console's links and keys panels: issue a viewer link (stream or all, lifetime, label, most sessions)
// and show it with a copy button and a QR code the server draws; list links with their expiry in local
// time and revoke them; list the signing keys, rotate, and retire older ones.
import { $, api, button, cell, fillSelect, localTime, row } from './admin-lib.js';

let hooks = { done: () => {}, fail: () => {} };

export function setupLinks(done, fail) {
  hooks = { done, fail };
  $('issue').addEventListener('submit', (ev) => {
    ev.preventDefault();
    issue().then(done).catch(fail);
  });
  $('copy').addEventListener('click', () => copy().catch(fail));
  $('rotate').addEventListener('click', () => rotate(false).then(done).catch(fail));
  $('rotate-retire').addEventListener('click', () => rotate(true).then(done).catch(fail));
}

async function issue() {
  const max = $('link-max').value.trim();
  const body = {
    stream: $('link-stream').value,
    ttl_s: Number($('link-ttl').value),
    label: $('link-label').value.trim() || undefined,
    max_sessions: max ? Number(max) : undefined,
  };
  const issued = await api('POST', '/tokens', { body });
  const link = new URL(issued.watch_path, location.origin).href;
  const a = $('issued-link');
  a.href = link;
  a.textContent = link;
  const svg = await api('POST', '/qr', { body: { text: link }, as: 'text' });
  $('qr').src = `data:image/svg+xml,${encodeURIComponent(svg)}`;
  $('issued').hidden = false;
  $('copy-status').textContent = `Link for ${issued.stream === '*' ? 'every stream' : issued.stream}, valid until ${localTime(issued.expires_at)}. It is shown once.`;
}

async function copy() {
  const link = $('issued-link').href;
  try {
    await navigator.clipboard.writeText(link);
    $('copy-status').textContent = 'Copied.';
  } catch {
    // No clipboard (an insecure origin, or refused): select the link for the user to copy.
    getSelection().selectAllChildren($('issued-link'));
    $('copy-status').textContent = 'Press Ctrl+C (or long-press) to copy the selected link.';
  }
}

async function rotate(retirePrevious) {
  await api('POST', '/keys/rotate', { body: { retire_previous: retirePrevious } });
}

// The stream choices of the issue form (kept as chosen across refreshes).
export function fillStreams(streams) {
  fillSelect($('link-stream'), ['*', ...streams.map((s) => s.name)], (n) => (n === '*' ? 'All streams' : n));
}

function linkRow(t) {
  const state = t.revoked ? 'revoked' : t.expires_at * 1000 < Date.now() ? 'expired' : 'active';
  const action = t.revoked
    ? cell('')
    : button('Revoke', () => api('DELETE', `/tokens/${encodeURIComponent(t.id)}`), hooks.done, hooks.fail);
  return row({ token: t.id }, [cell(t.label || '(no label)'), cell(t.stream === '*' ? 'all' : t.stream),
    cell(t.publish ? 'publish' : 'view'), cell(localTime(t.expires_at)), cell(t.max_sessions ?? 'any'),
    cell(state), action]);
}

function keyRow(k) {
  const action = k.current
    ? cell('signs new links')
    : button('Retire', () => api('DELETE', `/keys/${encodeURIComponent(k.kid)}`), hooks.done, hooks.fail);
  return row({ kid: k.kid }, [cell(k.kid), cell(localTime(k.created_at)), cell(k.current ? 'current' : 'older'), action]);
}

export async function refreshLinks() {
  const [tokens, keys] = await Promise.all([api('GET', '/tokens'), api('GET', '/keys')]);
  $('links').tBodies[0].replaceChildren(...tokens.map(linkRow));
  $('keys').tBodies[0].replaceChildren(...keys.map(keyRow));
  return { tokens: tokens.length, keys: keys.length };
}
