// Headless-Chromium check that a stream's player page really shows its source.
//
//   node tests/browser/plays.mjs <watch-url> <expected-width> <expected-height>
//
// Opens the watch page and waits (up to 20 s) for >= 20 rendered frames at the expected size. Then it reads
// the picture back (the video element drawn on a canvas: the luma range of the frame) and, when the stream has
// audio, listens to it for 3 s with a Web Audio analyser (the loudest frequency and its level, at the loudest
// of ten looks). Prints one
// line of JSON: {ok, frames, width, height, lumaMin, lumaMax, audio: {hz, db} | null, pair: {remote, type,
// protocol} | null (the selected ICE pair's remote candidate), codec (the video's MIME type), failed?}.
// Environment: CHROMIUM = browser binary (default /usr/bin/chromium); VIDEO_CODEC = offer only this video
// codec (e.g. VP8: the page's video transceiver gets setCodecPreferences, as a browser without H.264);
// WATCH_S = then keep watching this long and report it as `watch` (player.mjs keepWatching).
import { launchChromium } from './chromium.mjs';
import { keepWatching, open, preferVideoCodec, scriptArgs, waitPlaying } from './player.mjs';

const [url, wArg, hArg] =
  scriptArgs('tests/browser/plays.mjs <watch-url> <expected-width> <expected-height>', 60_000);
const [width, height] = [Number(wArg), Number(hArg)];

const browser = await launchChromium({ ignoreHTTPSErrors: true });
const { context } = browser;
let out = { ok: false };
try {
  const page = context.pages()[0] || (await context.newPage());
  if (process.env.VIDEO_CODEC) await preferVideoCodec(page, process.env.VIDEO_CODEC);
  await open(page, url);
  try {
    out = { ...out, ...(await waitPlaying(page, width, height, 20_000)) };
  } catch (e) {
    out = { ...out, ...e.snap };
    throw e;
  }
  const seen = await page.evaluate(async () => {
    const v = document.getElementById('video');
    const c = document.createElement('canvas');
    [c.width, c.height] = [v.videoWidth, v.videoHeight];
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(v, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    let [lo, hi] = [255, 0];
    for (let i = 0; i < px.length; i += 16) {
      const y = Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]);
      lo = Math.min(lo, y);
      hi = Math.max(hi, y);
    }
    let audio = null;
    const stream = v.srcObject;
    if (stream && stream.getAudioTracks().length > 0) {
      const ac = new AudioContext();
      await ac.resume();
      const analyser = ac.createAnalyser();
      analyser.fftSize = 8192;
      ac.createMediaStreamSource(stream).connect(analyser);
      // Ten looks over 3 s; keep the loudest peak (a moment of dropout or silence does not decide).
      const bins = new Float32Array(analyser.frequencyBinCount);
      for (let look = 0; look < 10; look++) {
        await new Promise((r) => setTimeout(r, 300));
        analyser.getFloatFrequencyData(bins);
        let best = 1;
        for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
        const seen = { hz: Math.round((best * ac.sampleRate) / analyser.fftSize), db: Math.round(bins[best]) };
        if (!audio || seen.db > audio.db) audio = seen;
      }
      await ac.close();
    }
    return { lumaMin: lo, lumaMax: hi, audio };
  });
  // The ICE candidate pair carrying the media: its remote (glasscast's) address, type and protocol.
  const pair = await page.evaluate(async () => {
    const pc = window.glasscast && window.glasscast.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    let sel = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) sel = byId.get(s.selectedCandidatePairId);
    });
    if (!sel) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') sel = s; });
    const r = sel && byId.get(sel.remoteCandidateId);
    let codec = null;
    stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') codec = (byId.get(s.codecId) || {}).mimeType || null; });
    return { codec, pair: r ? { remote: `${r.address}:${r.port}`, type: r.candidateType, protocol: r.protocol } : null };
  });
  const watch = process.env.WATCH_S ? await keepWatching(page, Number(process.env.WATCH_S)) : undefined;
  out = { ...out, ...seen, pair: pair && pair.pair, codec: pair && pair.codec, watch, ok: true };
} catch (e) {
  out.failed = String(e && e.message ? e.message : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
