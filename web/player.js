// glasscast player: a small WHEP client. Plain ES2020 modules, no build step, no dependencies.
// Served as /assets/player.js for /watch/{stream} (strict CSP, so all behaviour lives here); the protocol
// helpers (trickle, ICE restart, headers) are in whep.js.
import { applyIceServers, makeTrickler, problemDetail, retryAfterMs } from './whep.js';
import { makeLatencyMeter } from './latency.js';

(() => {
  const $ = (id) => document.getElementById(id);
  const video = $('video');
  const statusEl = $('status');
  const unmuteBtn = $('unmute');
  const statsEl = $('stats');

  // --- where to connect -------------------------------------------------------------------------------------
  const lastSegment = location.pathname.split('/').filter(Boolean).pop() || '';
  let stream;
  try { stream = decodeURIComponent(lastSegment); } catch { stream = lastSegment; }
  const endpoint = new URL(`/whep/${encodeURIComponent(stream)}`, location.href).href;
  // Optional bearer token in the URL fragment (#token=...): never sent to the server as part of a URL.
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  const auth = token ? { Authorization: `Bearer ${token}` } : {};
  document.title = `${stream} · glasscast`;
  // The way back to the stream list keeps the link's token (a `*` token lists every stream there).
  const back = document.querySelector('a.back');
  if (back && token) back.href = `/#token=${encodeURIComponent(token)}`;

  // --- test hooks / live state (read by tests/browser/watch.mjs) ---------------------------------------------
  const G = (window.glasscast = {
    stream,
    state: 'connecting', // connecting | connected | playing | disconnected | error | closed
    lastError: null,
    framesRendered: 0,
    firstFrameAt: null, // performance.now() of the first rendered frame (ms since navigation start)
    // The current session's join, in performance.now() ms: POST sent, answer received, connected, first frame
    // decoded (from rVFC receiveTime + processingDuration, when the browser reports them), first frame shown.
    join: null,
    latency: null, // the latency meter (web/latency.js) when the stream carries the probe code
    videoWidth: 0,
    videoHeight: 0,
    audioTrackLive: false,
    sessionUrl: null,
    connects: 0, // times a peer connection reached 'connected'
    attempts: 0, // POSTs sent
    iceRestarts: 0, // ICE restarts that got the server's new credentials
    restartIce: () => restartIce(current), // test hook: restart ICE on the current session now
    stats: null, // latest summary from getStats (see pollStats)
    pc: null, // the current RTCPeerConnection
  });

  const MIN_BACKOFF = 500;
  const MAX_BACKOFF = 10000;
  let backoff = MIN_BACKOFF;
  let generation = 0; // bumped on every (re)connect; stale async work compares and bails out
  let current = null; // { pc, gen, sessionUrl, etag, trickle, mediaStream, disconnectTimer }
  let retryTimer = null;
  let leaving = false;

  function setState(state, text) {
    G.state = state;
    statusEl.textContent = text;
    document.body.classList.toggle('is-playing', state === 'playing');
  }

  // --- connection lifecycle ---------------------------------------------------------------------------------
  async function connect() {
    clearTimeout(retryTimer);
    teardown(); // normally a no-op: fail() already tore the previous session down
    const gen = ++generation;
    setState('connecting', 'connecting…');
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    const cur = { pc, gen, sessionUrl: null, etag: null, mediaStream: new MediaStream(), disconnectTimer: null, restarting: false };
    cur.trickle = makeTrickler(cur, auth);
    cur.join = G.join = { postAt: null, answerAt: null, connectedAt: null, firstDecodedAt: null, firstRenderedAt: null };
    current = cur;
    G.pc = pc;

    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.getReceivers().forEach(tuneReceiver);

    pc.ontrack = (e) => {
      tuneReceiver(e.receiver);
      cur.mediaStream.addTrack(e.track);
      e.track.addEventListener('ended', refreshHooks);
      if (video.srcObject !== cur.mediaStream) {
        video.srcObject = cur.mediaStream; // once per connection
        startPlayback();
      }
      refreshHooks();
    };
    pc.onicecandidate = (e) => cur.trickle.push(e.candidate);
    pc.onconnectionstatechange = () => onConnectionState(cur);

    try {
      await pc.setLocalDescription(await pc.createOffer());
      G.attempts++;
      cur.join.postAt = performance.now();
      // POST right away: the server answers with all of its candidates, ours follow by PATCH (trickle).
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', ...auth },
        body: pc.localDescription.sdp,
      });
      if (gen !== generation) {
        // Torn down while the POST was in flight (page left, or superseded): release the new session.
        const loc = res.status === 201 && res.headers.get('Location');
        if (loc) fetch(new URL(loc, endpoint), { method: 'DELETE', keepalive: true, headers: { ...auth } }).catch(() => {});
        return;
      }
      if (res.status === 401 || res.status === 403) {
        // The link's token is missing, expired, revoked or for another stream: retrying cannot help.
        throw Object.assign(new Error(await problemDetail(res)), { denied: true });
      }
      if (res.status !== 201) {
        throw Object.assign(new Error(await problemDetail(res)), { retryAfter: retryAfterMs(res) });
      }
      const loc = res.headers.get('Location');
      if (!loc) throw new Error('the server sent no Location header');
      cur.join.answerAt = performance.now();
      cur.sessionUrl = G.sessionUrl = new URL(loc, endpoint).href;
      cur.etag = res.headers.get('ETag');
      const sdp = await res.text();

      applyIceServers(pc, res.headers.get('Link'));
      await pc.setRemoteDescription({ type: 'answer', sdp });
      if (gen !== generation) return;
      cur.trickle.start();
    } catch (err) {
      if (gen !== generation || leaving) return;
      if (err.denied) return void deny(err.message);
      fail(err.message || String(err), err.retryAfter);
    }
  }

  function onConnectionState(cur) {
    if (cur !== current) return;
    const st = cur.pc.connectionState;
    clearTimeout(cur.disconnectTimer);
    if (st === 'connected') {
      if (cur.join.connectedAt === null) cur.join.connectedAt = performance.now();
      cur.restarting = false;
      backoff = MIN_BACKOFF;
      G.connects++;
      G.lastError = null;
      // 'playing' is set by the first rendered frame (see onFrame).
      setState('connected', 'connected, waiting for video…');
    } else if (st === 'disconnected') {
      setState('disconnected', 'connection interrupted…');
      // Often transient (a network switch, a sleeping Wi-Fi): give ICE 2 s, then restart ICE on the same session.
      cur.disconnectTimer = setTimeout(() => {
        if (cur === current && cur.pc.connectionState === 'disconnected') restartIce(cur);
      }, 2000);
    } else if (st === 'failed') {
      if (cur.restarting) fail('connection failed');
      else restartIce(cur);
    }
  }

  // Renew the ICE path without a new session (keeps DTLS, tracks and the decoder); if that does not bring the
  // connection back within 5 s, start over with a new session.
  async function restartIce(cur) {
    if (!cur || cur !== current || cur.restarting) return { ok: false, error: 'no session, or a restart is under way' };
    cur.restarting = true;
    setState('disconnected', 'reconnecting (ICE restart)…');
    try {
      await cur.trickle.restart();
      G.iceRestarts++;
    } catch (err) {
      if (cur === current) fail(`ICE restart failed: ${err.message || err}`);
      return { ok: false, error: String(err.message || err) };
    }
    clearTimeout(cur.disconnectTimer);
    cur.disconnectTimer = setTimeout(() => {
      if (cur === current && cur.pc.connectionState !== 'connected') fail('connection lost');
    }, 5000);
    if (cur.pc.connectionState === 'connected') {
      cur.restarting = false;
      setState(G.framesRendered ? 'playing' : 'connected', G.framesRendered ? 'playing' : 'connected, waiting for video…');
    }
    return { ok: true };
  }

  /** Access refused: stop, and say so (no retry loop against a dead link). */
  function deny(message) {
    teardown();
    G.lastError = message;
    G.denied = true;
    setState('error', `${message} — this link no longer works; ask for a new one`);
  }

  // Tear down the current session, show the error and schedule a retry (Retry-After wins over the backoff).
  function fail(message, retryAfter) {
    teardown();
    G.lastError = message;
    let delay = retryAfter;
    if (delay === undefined) {
      delay = backoff;
      backoff = Math.min(backoff * 2, MAX_BACKOFF);
    }
    const until = performance.now() + delay;
    const tick = () => {
      if (leaving) return;
      const left = until - performance.now();
      if (left <= 0) return void connect();
      setState('error', `${message} — reconnecting in ${Math.ceil(left / 1000)}s…`);
      retryTimer = setTimeout(tick, left % 1000 || 1000); // wake when the shown seconds change
    };
    tick();
  }

  function teardown() {
    const cur = current;
    if (!cur) return;
    current = null;
    generation++;
    clearTimeout(cur.disconnectTimer);
    cur.trickle.stop();
    cur.pc.ontrack = cur.pc.onicecandidate = cur.pc.onconnectionstatechange = null;
    cur.pc.close();
    if (cur.sessionUrl) {
      // Fire and forget; keepalive lets it outlive the page on unload.
      fetch(cur.sessionUrl, { method: 'DELETE', keepalive: true, headers: { ...auth } }).catch(() => {});
    }
    G.sessionUrl = null;
    G.pc = null;
    refreshHooks();
  }

  function leave() {
    if (leaving) return;
    leaving = true;
    clearTimeout(retryTimer);
    teardown();
    G.state = 'closed';
  }
  window.addEventListener('pagehide', leave);
  window.addEventListener('beforeunload', leave);
  // Restored from the back/forward cache after leave(): start a fresh session.
  window.addEventListener('pageshow', (e) => {
    if (e.persisted && leaving) { leaving = false; connect(); }
  });

  // Lowest latency: ask the receivers not to buffer beyond what is needed.
  function tuneReceiver(receiver) {
    try { if ('jitterBufferTarget' in receiver) receiver.jitterBufferTarget = 0; } catch { /* unsupported */ }
    try { receiver.playoutDelayHint = 0; } catch { /* unsupported (legacy Chrome API) */ }
  }

  // --- playback -------------------------------------------------------------------------------------------
  async function startPlayback() {
    video.muted = false;
    try {
      await video.play();
      unmuteBtn.hidden = true;
    } catch (err) {
      if (err.name !== 'NotAllowedError') {
        if (err.name !== 'AbortError') console.warn('glasscast: play() failed', err);
        return;
      }
      // Autoplay with sound is blocked: play muted and offer an Unmute button.
      video.muted = true;
      unmuteBtn.hidden = false;
      video.play().catch((e) => { if (e.name !== 'AbortError') console.warn('glasscast: muted play() failed', e); });
    }
  }

  unmuteBtn.addEventListener('click', () => {
    video.muted = false;
    video.play().catch((e) => console.warn('glasscast: play() failed', e));
    unmuteBtn.hidden = true;
  });

  // Count presented frames; re-register on every frame.
  function onFrame(now, meta) {
    G.framesRendered++;
    if (G.firstFrameAt === null) G.firstFrameAt = performance.now();
    const join = current && current.join;
    if (join && join.firstRenderedAt === null) {
      join.firstRenderedAt = performance.now();
      if (meta && meta.receiveTime !== undefined && meta.processingDuration !== undefined) {
        join.firstDecodedAt = meta.receiveTime + meta.processingDuration * 1000;
      }
    }
    if (meta) meter.onFrame(meta);
    if (meta && meta.width) { G.videoWidth = meta.width; G.videoHeight = meta.height; }
    if (G.state === 'connected') setState('playing', 'playing');
    video.requestVideoFrameCallback(onFrame);
  }
  const meter = (G.latency = makeLatencyMeter(video));
  if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) video.requestVideoFrameCallback(onFrame);

  function refreshHooks() {
    if (video.videoWidth) { G.videoWidth = video.videoWidth; G.videoHeight = video.videoHeight; }
    const ms = video.srcObject;
    G.audioTrackLive = !!(current && ms && ms.getAudioTracks().some((t) => t.readyState === 'live'));
  }
  video.addEventListener('resize', refreshHooks);
  video.addEventListener('loadedmetadata', refreshHooks);

  // --- UI: fullscreen, keys, stats overlay ---------------------------------------------------------------
  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else document.documentElement.requestFullscreen().catch((e) => console.warn('glasscast: fullscreen', e));
  }
  $('fullscreen').addEventListener('click', toggleFullscreen);

  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const key = e.key.toLowerCase();
    if (key === 's') { statsEl.hidden = !statsEl.hidden; renderStats(); }
    else if (key === 'f') toggleFullscreen();
  });

  let prevBytes = null; // { pc, bytes, ts } for the video bitrate
  async function pollStats() {
    refreshHooks();
    const pc = current && current.pc;
    if (!pc) { G.stats = null; renderStats(); return; }
    let report;
    try { report = await pc.getStats(); } catch { return; }
    const s = { video: null, audio: null, rttMs: null };
    let pair = null;
    let selectedPairId = null;
    report.forEach((r) => {
      const kind = r.kind || r.mediaType;
      if (r.type === 'inbound-rtp' && kind === 'video') s.video = r;
      else if (r.type === 'inbound-rtp' && kind === 'audio') s.audio = r;
      else if (r.type === 'transport' && r.selectedCandidatePairId) selectedPairId = r.selectedCandidatePairId;
      else if (r.type === 'candidate-pair' && r.state === 'succeeded' && r.nominated && !pair) pair = r;
    });
    pair = (selectedPairId && report.get(selectedPairId)) || pair;
    if (pair && pair.currentRoundTripTime !== undefined) s.rttMs = pair.currentRoundTripTime * 1000;

    const out = { rttMs: s.rttMs, video: null, audio: null };
    if (s.video) {
      const v = s.video;
      let kbps = null;
      if (prevBytes && prevBytes.pc === pc && v.timestamp > prevBytes.ts) {
        kbps = ((v.bytesReceived - prevBytes.bytes) * 8) / (v.timestamp - prevBytes.ts); // bits per ms = kbit/s
      }
      prevBytes = { pc, bytes: v.bytesReceived, ts: v.timestamp };
      out.video = {
        width: v.frameWidth, height: v.frameHeight, fps: v.framesPerSecond, kbps,
        packetsLost: v.packetsLost, packetsReceived: v.packetsReceived,
        jitterBufferMs: v.jitterBufferEmittedCount ? (v.jitterBufferDelay / v.jitterBufferEmittedCount) * 1000 : null,
        framesDecoded: v.framesDecoded, decoderImplementation: v.decoderImplementation || null,
      };
    }
    if (s.audio) {
      out.audio = {
        packetsLost: s.audio.packetsLost, packetsReceived: s.audio.packetsReceived,
        totalSamplesReceived: s.audio.totalSamplesReceived,
      };
    }
    G.stats = out;
    renderStats();
  }
  setInterval(pollStats, 1000);

  function renderStats() {
    if (statsEl.hidden) return;
    const n = (x, digits = 0) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '–');
    const st = G.stats || {};
    const v = st.video || {};
    const a = st.audio || {};
    const lat = meter.summary();
    const j = G.join || {};
    const since = (t) => (j.postAt !== null && typeof t === 'number' ? t - j.postAt : null);
    statsEl.textContent = [
      `stream     ${stream}  [${G.state}]`,
      ...(lat ? [`latency    ${n(lat.last)} ms glass-to-glass (p50 ${n(lat.p50)}, p95 ${n(lat.p95)})`] : []),
      `join       answer ${n(since(j.answerAt))} / connected ${n(since(j.connectedAt))} / first frame ${n(since(j.firstRenderedAt))} ms`,
      `video      ${n(v.width)}x${n(v.height)} @ ${n(v.fps, 1)} fps`,
      `bitrate    ${n(v.kbps)} kbit/s`,
      `lost       video ${n(v.packetsLost)}  audio ${n(a.packetsLost)}`,
      `jitterbuf  ${n(v.jitterBufferMs, 1)} ms`,
      `rtt        ${n(st.rttMs, 1)} ms`,
      `decoded    ${n(v.framesDecoded)} frames (${v.decoderImplementation || '–'})`,
      `rendered   ${G.framesRendered} frames, connects ${G.connects}`,
    ].join('\n');
  }

  connect();
})();
