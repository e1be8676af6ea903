// The console's stream and session tables. Streams: state, source, encoder (and why others were rejected), size,
// frames per second in and out, the bitrate as a sparkline of the last minute, viewers, keyframes, send lag,
// restarts; stop/start. Sessions: token label, client, the media's path, age, bytes, RTT, loss, NACKs and
// PLIs; kick. Rates come from the difference between two refreshes.
import { api, bytes, button, cell, row } from './admin-lib.js';

const HISTORY = 60;
const seen = new Map(); // stream name -> { at, bytes, kbps: [] }

function bitrate(name, encodedBytes) {
  const now = performance.now();
  const s = seen.get(name) || { at: now, bytes: encodedBytes, kbps: [] };
  if (now - s.at >= 500) {
    const kbps = Math.max(0, ((encodedBytes - s.bytes) * 8) / (now - s.at));
    s.kbps = [...s.kbps, kbps].slice(-HISTORY);
    s.at = now;
    s.bytes = encodedBytes;
  }
  seen.set(name, s);
  return s.kbps;
}

const SVG = 'http://www.w3.org/2000/svg';

function sparkline(values) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${HISTORY} 20`);
  svg.setAttribute('class', 'spark');
  svg.setAttribute('role', 'img');
  const last = values.at(-1);
  svg.setAttribute('aria-label', last === undefined ? 'bitrate: measuring' : `bitrate ${Math.round(last)} kbit/s`);
  if (values.length > 1) {
    const max = Math.max(...values, 1);
    const x0 = HISTORY - values.length;
    const points = values.map((v, i) => `${x0 + i},${(19 - (v / max) * 18).toFixed(1)}`).join(' ');
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', points);
    svg.append(line);
  }
  return svg;
}

function sparkCell(values) {
  const td = cell('');
  const last = values.at(-1);
  td.append(sparkline(values), document.createTextNode(last === undefined ? ' …' : ` ${Math.round(last)} kbit/s`));
  return td;
}

const fps = (v) => (v === undefined || v === null ? '–' : v.toFixed(1));

function encoderCell(s, r) {
  const td = cell(s.encoder);
  if (r && r.encoders_rejected.length) {
    const small = document.createElement('div');
    small.className = 'meta wrap-text';
    small.textContent = `not used: ${r.encoders_rejected.join('; ')}`;
    td.append(small);
  }
  return td;
}

export function streamRow(s, r, refresh, show) {
  const path = `/streams/${encodeURIComponent(s.name)}`;
  const action = s.state === 'stopped'
    ? button('Start', () => api('POST', `${path}/start`), refresh, show)
    : button('Stop', () => api('POST', `${path}/stop`), refresh, show);
  const kbps = r ? bitrate(s.name, r.encoded_bytes) : [];
  const recording = r && r.recording ? `; recording ${r.recording.state}${r.recording.reason ? ` (${r.recording.reason})` : ''}` : '';
  const state = `${r && r.reason ? `${s.state}: ${r.reason}` : s.state}${recording}`;
  return row({ stream: s.name }, [cell(s.name), cell(state), cell(s.source), encoderCell(s, r), cell(`${s.width}x${s.height}@${s.fps}`),
    cell(r ? `${fps(r.fps_in)} / ${fps(r.fps_out)}${r.frames_dropped ? ` (${r.frames_dropped} dropped)` : ''}` : ''),
    sparkCell(kbps), cell(String(s.viewers)), cell(r ? `${r.keyframes_sent} / ${r.keyframes_requested}` : ''),
    cell(r && r.send_lag_ms !== undefined ? `${r.send_lag_ms} ms` : '–'), cell(r ? String(r.restarts) : ''), action]);
}

function age(since) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - since));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

// A viewer's rung of the stream's quality ladder (0: the top) and its send-side estimate; '–' for one encoding.
function rung(x) {
  if (x.rung === null || x.rung === undefined) return '–';
  const name = x.rung === 0 ? 'top' : `${x.rung} down`;
  const est = x.estimate_kbps ? `, ${(x.estimate_kbps / 1000).toFixed(1)} Mbit/s` : '';
  return `${name}${est} (${x.switches_down}↓ ${x.switches_up}↑)`;
}

export function sessionRow(x, refresh, show) {
  const path = x.candidate_type ? `${x.candidate_type}/${x.protocol}` : '–';
  const moved = x.role === 'publisher' ? `${bytes(x.bytes_received)} in` : bytes(x.bytes_sent);
  const rtt = x.rtt_ms === null || x.rtt_ms === undefined ? '–' : `${x.rtt_ms.toFixed(0)} ms`;
  const loss = x.fraction_lost === null || x.fraction_lost === undefined ? '–' : `${(x.fraction_lost * 100).toFixed(1)}%`;
  return row({ session: x.id }, [cell(x.id.slice(0, 8)), cell(x.role), cell(x.stream),
    cell(x.label || x.token_id || 'admin'), cell(x.client || ''), cell(path), cell(age(x.since)),
    cell(x.connected ? 'yes' : 'no'), cell(moved), cell(rtt), cell(loss), cell(`${x.nacks} / ${x.plis}`),
    cell(rung(x)),
    button('Kick', () => api('DELETE', `/sessions/${encodeURIComponent(x.id)}`), refresh, show)]);
}
