// The console's pushes panel: each stream's pushes to WHIP endpoints and Janus rooms (target, state, bytes,
// attempts, last error) from /readyz's detail; add one (the origin must be in auth.push_allow), remove one.
import { $, api, bytes, button, cell, fillSelect, row } from './admin-lib.js';

export function setupPushes(done, fail) {
  $('push').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const stream = $('push-stream').value;
    const body = { url: $('push-url').value.trim(), token: $('push-token').value || undefined };
    api('POST', `/streams/${encodeURIComponent(stream)}/push`, { body })
      .then(() => { $('push-url').value = ''; $('push-token').value = ''; })
      .then(done)
      .catch(fail);
  });
}

// Fills the stream choices and the table from the readiness detail (`readiness.streams`).
export function renderPushes(readiness, done, fail) {
  fillSelect($('push-stream'), readiness.streams.map((s) => s.name));
  const rows = readiness.streams.flatMap((s) => (s.pushes || []).map((p) => row({ push: `${s.name}/${p.id}`, state: p.state }, [
    cell(s.name), cell(String(p.id)), cell(p.target), cell(p.state, p.state === 'connected' ? 'good' : p.state === 'retrying' ? 'bad' : ''),
    cell(bytes(p.bytes_sent)), cell(String(p.attempts)), cell(p.last_error || '', 'wrap'),
    button('Remove', () => api('DELETE', `/streams/${encodeURIComponent(s.name)}/push/${p.id}`), done, fail)])));
  $('pushes').tBodies[0].replaceChildren(...rows);
  $('pushes-empty').hidden = rows.length > 0;
}
