// What the browser checks share about the built-in player page (playwright and puppeteer pages alike).

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The script's positional arguments, as many as `usage` names in <...>; without them it prints the usage and
// exits 2. Also arms a watchdog: after `ms` it prints {ok: false, failed} and exits 1.
export function scriptArgs(usage, ms) {
  const names = usage.match(/<[^>]+>/g) || [];
  const got = process.argv.slice(2, 2 + names.length);
  if (got.length < names.length || got.some((a) => !a)) {
    console.error(`usage: node ${usage}`);
    process.exit(2);
  }
  const watchdog = setTimeout(() => {
    console.log(JSON.stringify({ ok: false, failed: `watchdog: more than ${ms / 1000} s` }));
    process.exit(1);
  }, ms);
  watchdog.unref();
  return got;
}

// Opens `url` in `page` (until `load`, 15 s). Chromium fails a navigation with net::ERR_NETWORK_CHANGED
// while the interfaces it sees are still settling (a fresh network namespace: its IPv6 link-local
// addresses appear after a moment); that is tried again, twice at most, a second apart. So is a page
// that loaded but whose player never started (`window.glasscast` missing after 5 s): the same change failed
// the fetch of a module it imports (seen as a player with no state at all, in tests/media/reach.rs).
export async function open(page, url) {
  for (let attempt = 0; ; attempt++) {
    try {
      const resp = await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
      // The page loaded, but a module it imports may not have: a network change in a fresh namespace (IPv6
      // address settling) fails subresource fetches too, and then the player never starts.
      const started = await page.waitForFunction(() => window.glasscast !== undefined, null, { timeout: 5_000 })
        .then(() => true, () => false);
      if (started || attempt >= 2) return resp;
    } catch (e) {
      if (attempt >= 2 || !String(e && e.message).includes('ERR_NETWORK_CHANGED')) throw e;
    }
    await sleep(1000);
  }
}

// Waits up to `ms` for >= 20 rendered frames at width x height; returns {frames, width, height, state} or
// throws saying what was seen.
export async function waitPlaying(page, width, height, ms) {
  let snap = null;
  for (const t0 = Date.now(); Date.now() - t0 < ms; await sleep(100)) {
    snap = await page.evaluate(() => {
      const v = document.getElementById('video');
      const g = window.glasscast;
      return { frames: g ? g.framesRendered : 0, width: v.videoWidth, height: v.videoHeight, state: g && g.state };
    });
    if (snap.frames >= 20 && snap.width === width && snap.height === height) return snap;
  }
  throw Object.assign(new Error(`not playing at ${width}x${height}: ${JSON.stringify(snap)}`), { snap });
}

// The page's inbound video RTP stats now (Chromium's names): frames, freezes, NACKs/PLIs it sent, packets
// lost and received, retransmissions received; {} before there are any.
export async function inboundVideo(page) {
  return page.evaluate(async () => {
    const pc = window.glasscast && window.glasscast.pc;
    if (!pc) return {};
    let out = {};
    (await pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
      const keys = ['framesDecoded', 'framesDropped', 'freezeCount', 'totalFreezesDuration', 'nackCount', 'pliCount',
        'firCount', 'packetsLost', 'packetsReceived', 'retransmittedPacketsReceived', 'jitterBufferDelay',
        'jitterBufferEmittedCount', 'bytesReceived'];
      out = Object.fromEntries(keys.filter((k) => s[k] !== undefined).map((k) => [k, s[k]]));
    });
    return out;
  });
}

// `after` minus `before`, key by key (inboundVideo counters over a stretch of time).
export function statsDelta(before, after) {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, Math.round((v - (before[k] || 0)) * 1000) / 1000]));
}

// Keeps watching for `seconds`, looking every 100 ms: {seconds, frames (rendered meanwhile), lastFrames
// (in the last 3 s), longestGapMs (the longest time without a new frame), connects (times its peer
// connection connected again meanwhile), sameSession (its session URL never changed: no new POST) and
// inbound (the inboundVideo counters over the time)}.
export async function keepWatching(page, seconds) {
  const look = () => page.evaluate(() => ({
    frames: window.glasscast.framesRendered, connects: window.glasscast.connects, session: window.glasscast.sessionUrl,
  }));
  const first = await look();
  const stats0 = await inboundVideo(page);
  const seen = [];
  let [last, lastAt, longestGapMs] = [first.frames, Date.now(), 0];
  for (const t0 = Date.now(); Date.now() - t0 < seconds * 1000; await sleep(100)) {
    const now = { ...(await look()), at: Date.now() };
    seen.push(now);
    if (now.frames !== last) [last, lastAt] = [now.frames, now.at];
    longestGapMs = Math.max(longestGapMs, now.at - lastAt);
  }
  const end = seen[seen.length - 1] || { ...first, at: Date.now() };
  const threeBefore = seen.find((s) => s.at >= end.at - 3000) || end;
  return {
    seconds, frames: end.frames - first.frames, lastFrames: end.frames - threeBefore.frames, longestGapMs,
    connects: end.connects - first.connects, sameSession: seen.every((s) => s.session === first.session),
    inbound: statsDelta(stats0, await inboundVideo(page)),
  };
}

// Makes the page's video transceivers offer only `codec` (e.g. VP8: setCodecPreferences, as a browser
// without H.264 would), before any of its scripts run. A playwright page.
export async function preferVideoCodec(page, codec) {
  await page.addInitScript((want) => {
    const add = RTCPeerConnection.prototype.addTransceiver;
    RTCPeerConnection.prototype.addTransceiver = function (kind, init) {
      const t = add.call(this, kind, init);
      if (kind === 'video') {
        const keep = [`video/${want.toLowerCase()}`, 'video/rtx'];
        t.setCodecPreferences(RTCRtpReceiver.getCapabilities('video').codecs.filter((c) => keep.includes(c.mimeType.toLowerCase())));
      }
      return t;
    };
  }, codec);
}
