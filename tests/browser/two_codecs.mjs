// Headless Chromium check that an H.264 viewer loses nothing while a VP8 viewer makes the stream start and
// stop its second encoding (issue 16).
//
//   node tests/browser/two_codecs.mjs <watch-url> <expected-width> <expected-height>
//
// Page A opens the player as Chromium is (H.264). Once it plays, the script reads A's decoder counters
// (getStats: framesDecoded, framesDropped, freezeCount, packetsLost) and the stream's encoded frame count
// (/readyz). Page B then opens the player offering VP8 only (setCodecPreferences), plays >= 20 frames of VP8
// and closes (the player's DELETE on pagehide ends its session); the script waits until /readyz shows no
// VP8 encoding any more (it lingers a few seconds) and reads both counters again. Prints one line of JSON:
// {ok, h264: {decoded, dropped, freezes, freeze_ms, lost, codec}, encoded, vp8: {frames, codec}, vp8Stopped, failed?}
// where h264's numbers and `encoded` are what changed between the two reads. The caller judges them.
// Environment: CHROMIUM = browser binary (default /usr/bin/chromium).
import { launchChromium } from './chromium.mjs';
import { preferVideoCodec, scriptArgs, sleep, waitPlaying } from './player.mjs';

const [url, wArg, hArg] =
  scriptArgs('tests/browser/two_codecs.mjs <watch-url> <expected-width> <expected-height>', 90_000);
const [width, height] = [Number(wArg), Number(hArg)];

const readyz = new URL('/readyz', url);
const stream = async () => {
  const r = await (await fetch(readyz)).json();
  return r.streams[0];
};

// Page `page`'s video receiver counters.
const counters = (page) => page.evaluate(async () => {
  const out = { decoded: 0, dropped: 0, freezes: 0, freezeMs: 0, lost: 0, codec: null };
  const stats = await window.glasscast.pc.getStats();
  stats.forEach((s) => {
    if (s.type !== 'inbound-rtp' || (s.kind || s.mediaType) !== 'video') return;
    Object.assign(out, {
      decoded: s.framesDecoded || 0, dropped: s.framesDropped || 0, freezes: s.freezeCount || 0,
      freezeMs: Math.round((s.totalFreezesDuration || 0) * 1000),
      lost: s.packetsLost || 0, codec: (stats.get(s.codecId) || {}).mimeType || null,
    });
  });
  return out;
});

const browser = await launchChromium({ ignoreHTTPSErrors: true });
const { context } = browser;
let out = { ok: false };
try {
  const a = context.pages()[0] || (await context.newPage());
  await a.goto(url, { waitUntil: 'load', timeout: 15_000 });
  await waitPlaying(a, width, height, 20_000);
  await sleep(1000); // past the first keyframe's catch-up
  const [a0, s0] = [await counters(a), await stream()];

  const b = await context.newPage();
  await preferVideoCodec(b, 'VP8');
  await b.goto(url, { waitUntil: 'load', timeout: 15_000 });
  out.vp8 = { frames: (await waitPlaying(b, width, height, 20_000)).frames, codec: (await counters(b)).codec };
  await b.close({ runBeforeUnload: true });

  out.vp8Stopped = false;
  for (const t0 = Date.now(); !out.vp8Stopped && Date.now() - t0 < 30_000; await sleep(250)) {
    out.vp8Stopped = !(await stream()).encodings.some((e) => e.codec === 'vp8');
  }
  await sleep(1000); // A keeps playing on the H.264 encoder alone for a moment
  const [a1, s1] = [await counters(a), await stream()];
  out.h264 = {
    decoded: a1.decoded - a0.decoded, dropped: a1.dropped - a0.dropped, freezes: a1.freezes - a0.freezes,
    freeze_ms: a1.freezeMs - a0.freezeMs,
    lost: a1.lost - a0.lost, codec: a1.codec,
  };
  out.encoded = s1.frames - s0.frames;
  out.ok = true;
} catch (e) {
  out.failed = String(e && e.message ? e.message : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
