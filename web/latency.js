// glasscast player: reads the latency-probe code that glasscast paints into frames when a stream has
// `latency_probe = true` (layout: src/media/source/probe.rs — keep the two in step) and keeps glass-to-glass samples.
// An ES module imported by player.js.

const CELLS = 64;
const TIME_BITS = 48;
const FIRST_TIME_CELL = 2;
const FIRST_CHECK_CELL = FIRST_TIME_CELL + TIME_BITS;
const FIRST_TAIL_CELL = FIRST_CHECK_CELL + 8;
const MAX_SAMPLES = 100_000;

// Cell values (true = white) -> painted Unix time in ms, or null when sync, check or tail do not match.
export function decodeCells(cells) {
  if (cells.length !== CELLS || !cells[0] || cells[1]) return null;
  let ms = 0;
  for (let i = 0; i < TIME_BITS; i++) ms = ms * 2 + (cells[FIRST_TIME_CELL + i] ? 1 : 0);
  let check = 0;
  for (let i = 0; i < 8; i++) check = (check << 1) | (cells[FIRST_CHECK_CELL + i] ? 1 : 0);
  let expected = 0x5a;
  for (let b = 5; b >= 0; b--) expected ^= Math.floor(ms / 2 ** (8 * b)) % 256;
  if (check !== expected) return null;
  for (let i = FIRST_TAIL_CELL; i < CELLS; i++) if (cells[i] !== ((i - FIRST_TAIL_CELL) % 2 === 0)) return null;
  return ms;
}

// Glass-to-glass samples from requestVideoFrameCallback: painted time -> the frame's callback (decoded and
// handed to the compositor; the last display interval to the glass is not included).
// Also the part up to the arrival of the frame's last packet (server + network) when the browser reports it.
// Server clock -> this page's performance.now() clock: `offset` such that perf = serverMs - offset. Taken from
// the /healthz round trip with the smallest RTT among a few (error <= RTT/2, ~0.5 ms on a LAN). Neither
// Date.now() nor performance.timeOrigin is good enough: headless Chromium's timeOrigin was seen up to ~16 ms
// off the wall clock, differently on every page load.
async function serverClockOffset(samples = 7) {
  let best = null;
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    const res = await fetch('/healthz', { cache: 'no-store' });
    const body = await res.json();
    const t1 = performance.now();
    if (typeof body.unix_ms !== 'number') throw new Error('/healthz has no unix_ms');
    if (!best || t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: body.unix_ms - (t0 + t1) / 2 };
  }
  return best;
}

export function makeLatencyMeter(video) {
  const canvas = document.createElement('canvas');
  canvas.height = 1;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const m = {
    lastMs: null, // latest glass-to-glass latency
    lastAt: 0, // performance.now() of the latest sample
    samples: [], // glass-to-glass, ms
    receiveSamples: [], // painted -> last packet received, ms
    misses: 0, // frames without a readable code (after the first code was seen)
    clock: null, // { rtt, offset } from serverClockOffset, refreshed every 10 s while codes are seen
  };
  let calibrating = false;
  let calibratedAt = -Infinity;
  function calibrate() {
    if (calibrating || performance.now() - calibratedAt < 10_000) return;
    calibrating = true;
    serverClockOffset()
      .then((c) => { m.clock = c; calibratedAt = performance.now(); })
      .catch(() => { calibratedAt = performance.now(); })
      .finally(() => { calibrating = false; });
  }

  function read(width) {
    const cell = Math.floor(width / CELLS) & ~1;
    if (cell < 4) return null;
    if (canvas.width !== width) canvas.width = width;
    ctx.drawImage(video, 0, cell >> 1, width, 1, 0, 0, width, 1);
    const px = ctx.getImageData(0, 0, width, 1).data;
    const cells = new Array(CELLS);
    for (let i = 0; i < CELLS; i++) {
      const o = (i * cell + (cell >> 1)) * 4;
      cells[i] = px[o] + px[o + 1] + px[o + 2] > 3 * 125;
    }
    return decodeCells(cells);
  }

  // Called for every presented frame with rVFC metadata.
  m.onFrame = (meta) => {
    const width = meta.width || video.videoWidth;
    if (!width) return;
    let painted;
    try { painted = read(width); } catch { return; }
    if (painted === null) {
      if (m.lastMs !== null) m.misses++;
      return;
    }
    calibrate();
    if (!m.clock) return;
    // "Shown" is when this callback runs: the frame has been decoded and handed to the compositor, and the
    // page can draw it. (rVFC's expectedDisplayTime is not usable headless: it was often *before* the
    // frame's last packet arrived.)
    const paintedPerf = painted - m.clock.offset;
    m.lastMs = performance.now() - paintedPerf;
    m.lastAt = performance.now();
    if (m.samples.length < MAX_SAMPLES) m.samples.push(m.lastMs);
    if (meta.receiveTime && m.receiveSamples.length < MAX_SAMPLES) m.receiveSamples.push(meta.receiveTime - paintedPerf);
  };

  // Samples collected so far, and start over (for benchmarks).
  m.take = () => {
    const out = { samples: m.samples, receiveSamples: m.receiveSamples, misses: m.misses };
    m.samples = [];
    m.receiveSamples = [];
    m.misses = 0;
    return out;
  };

  // Live summary of the last `windowN` samples: { last, p50, p95 } or null when the stream has no code.
  m.summary = (windowN = 300) => {
    if (m.lastMs === null || performance.now() - m.lastAt > 2000) return null;
    const recent = m.samples.slice(-windowN).sort((a, b) => a - b);
    const q = (p) => recent[Math.min(recent.length - 1, Math.floor(p * recent.length))];
    return { last: m.lastMs, p50: q(0.5), p95: q(0.95) };
  };
  return m;
}
