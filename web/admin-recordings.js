// The console's recordings panel: the chosen stream's recording state (from /readyz's detail: recording,
// waiting and why, stopped) with Start and Stop; its files, oldest first (start time in local time, size,
// the one being written), each with Play, Download and Delete (asked first; the file being written cannot be
// deleted). Play and Download go through a one-hour link to that one file: a <video> or a download sends no
// bearer header. The state follows every refresh, the file list every few seconds.
import { $, api, button, bytes, cell, fillSelect, localTime, row } from './admin-lib.js';

const LIST_EVERY_MS = 3000;
const MIB = 1024 * 1024;
let hooks = { done: () => {}, fail: () => {} };
let listed = { stream: null, at: 0, json: '' };

const streamPath = (stream) => `/streams/${encodeURIComponent(stream)}`;
const filePath = (stream, file) => `${streamPath(stream)}/recordings/${encodeURIComponent(file)}`;

export function setupRecordings(done, fail) {
  hooks = { done, fail };
  const act = (method) => () => api(method, `${streamPath($('rec-stream').value)}/record`)
    .then(() => listFiles(true)).then(done).catch(fail);
  $('rec-start').addEventListener('click', act('POST'));
  $('rec-stop').addEventListener('click', act('DELETE'));
  $('rec-stream').addEventListener('change', () => {
    resetPlayer();
    listFiles(true).then(done).catch(fail);
  });
  $('rec-player').addEventListener('error', () => {
    const video = $('rec-player');
    if (video.dataset.file) fail(new Error(`cannot play ${video.dataset.file}: ${video.error?.message || 'media error'}`));
  });
}

// Called on every refresh with the full readiness (GET /api/v1/host): the stream choices and the chosen
// stream's recording state; the file list when it is due.
export async function refreshRecordings(readiness) {
  fillSelect($('rec-stream'), readiness.streams.map((s) => s.name));
  const detail = readiness.streams.find((s) => s.name === $('rec-stream').value);
  showState(detail ? detail.recording : null);
  await listFiles(false);
}

function stateText(rec) {
  if (!rec) return 'not recording';
  return rec.state === 'waiting' && rec.reason ? `waiting: ${rec.reason}` : rec.state;
}

function detailText(rec) {
  if (!rec) return 'Start recording writes this stream into its configured directory (or state_dir/recordings/STREAM).';
  const parts = [`into ${rec.dir}`, `${rec.files} file(s) started`, `${bytes(rec.bytes_written)} written`];
  if (rec.current_file) parts.push(`now ${rec.current_file.split('/').pop()}`);
  if (rec.dir_bytes !== undefined) parts.push(`${bytes(rec.dir_bytes)} on disk, ${bytes(rec.free_bytes)} free`);
  if (rec.files_deleted) parts.push(`${rec.files_deleted} deleted by retention`);
  return parts.join('; ');
}

function showState(rec) {
  const active = Boolean(rec) && rec.state !== 'stopped';
  const state = $('rec-state');
  state.textContent = stateText(rec);
  state.className = rec?.state === 'recording' ? 'good' : rec?.state === 'waiting' ? 'bad' : '';
  state.dataset.state = rec ? rec.state : 'none';
  $('rec-detail').textContent = detailText(rec);
  $('rec-start').disabled = active;
  $('rec-stop').disabled = !active;
}

const mib = (n) => `${((n || 0) / MIB).toFixed(1)} MiB`;

// Lists the chosen stream's files when `force`d, when the stream changed, or every LIST_EVERY_MS; the
// table is rebuilt only when the list changed.
async function listFiles(force) {
  const stream = $('rec-stream').value;
  if (!stream) return;
  if (!force && stream === listed.stream && performance.now() - listed.at < LIST_EVERY_MS) return;
  const files = await api('GET', `${streamPath(stream)}/recordings`);
  if (stream !== $('rec-stream').value) return;
  const json = JSON.stringify(files);
  const changed = stream !== listed.stream || json !== listed.json;
  listed = { stream, at: performance.now(), json };
  if (!changed) return;
  $('recordings').tBodies[0].replaceChildren(...files.map((f) => fileRow(stream, f)));
  $('recordings-empty').hidden = files.length > 0;
}

function startedCell(f) {
  const td = cell(localTime(f.started_at));
  if (f.writing) {
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.textContent = 'writing';
    td.append(' ', badge);
  }
  return td;
}

function fileRow(stream, f) {
  const relist = () => listFiles(true).then(hooks.done);
  const remove = button('Delete', () => removeFile(stream, f.name), relist, hooks.fail);
  if (f.writing) {
    remove.firstChild.disabled = true;
    remove.firstChild.title = 'This file is being written: stop the recording first.';
  }
  return row({ file: f.name, writing: String(f.writing) }, [startedCell(f), cell(f.name), cell(mib(f.bytes)),
    button('Play', () => play(stream, f.name), () => {}, hooks.fail),
    button('Download', () => download(stream, f.name), () => {}, hooks.fail), remove]);
}

// A one-hour link to `file` (a path: the page's origin goes in front).
async function link(stream, file) {
  const made = await api('POST', `${filePath(stream, file)}/link`);
  return { url: new URL(made.url, location.origin).href, expiresAt: made.expires_at };
}

async function play(stream, file) {
  const { url, expiresAt } = await link(stream, file);
  const video = $('rec-player');
  Object.assign(video.dataset, { stream, file });
  video.src = url;
  video.hidden = false;
  $('rec-playing').textContent = `Playing ${stream}/${file} (its link works until ${localTime(expiresAt)}).`;
  // A refused or interrupted play() shows in the controls; a media error comes as the element's error event.
  await video.play().catch(() => {});
}

async function download(stream, file) {
  const { url } = await link(stream, file);
  const a = document.createElement('a');
  a.href = url;
  a.download = file;
  document.body.append(a);
  a.click();
  a.remove();
}

async function removeFile(stream, file) {
  if (!confirm(`Delete the recording ${stream}/${file}? This cannot be undone.`)) return;
  await api('DELETE', filePath(stream, file));
  const playing = $('rec-player').dataset;
  if (playing.stream === stream && playing.file === file) resetPlayer();
}

// Stops and hides the player (another stream chosen, its file deleted, signed out).
export function resetPlayer() {
  const video = $('rec-player');
  delete video.dataset.stream;
  delete video.dataset.file;
  video.pause();
  video.removeAttribute('src');
  video.load();
  video.hidden = true;
  $('rec-playing').textContent = '';
}
