// The stream list. Streams come from GET /streams with the link's token (#token=..., never part of a URL
// the server sees), and each link carries the token on to the player.
const token = new URLSearchParams(location.hash.slice(1)).get('token');
const status = document.getElementById('status');
const list = document.getElementById('streams');

function item(s) {
  const li = document.createElement('li');
  const a = document.createElement('a');
  a.href = `/watch/${encodeURIComponent(s.name)}` + (token ? `#token=${encodeURIComponent(token)}` : '');
  a.textContent = s.name;
  const meta = document.createElement('span');
  meta.className = 'meta';
  const viewers = `${s.viewers} viewer${s.viewers === 1 ? '' : 's'}`;
  meta.textContent = ` ${s.width}x${s.height}@${s.fps}${s.audio ? ' + audio' : ''}, ${s.state}, ${viewers}`;
  li.append(a, meta);
  return li;
}

async function load() {
  const resp = await fetch('/streams', { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (resp.status === 401 || resp.status === 403) {
    status.textContent = token
      ? 'This link is no longer valid (expired or revoked). Ask for a new one.'
      : 'This server needs a viewer link. Open the link you were given.';
    return;
  }
  if (!resp.ok) {
    status.textContent = `Could not list streams (HTTP ${resp.status}).`;
    return;
  }
  const streams = await resp.json();
  status.textContent = streams.length ? 'Live streams (WHEP):' : 'No streams.';
  list.replaceChildren(...streams.map(item));
}

load().catch((e) => { status.textContent = `Could not list streams: ${e}`; });
