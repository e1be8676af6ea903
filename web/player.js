// glasscast player: a small WHEP (RFC 9725) client. Plain ES2020, no build step, no dependencies.
// Served as /assets/player.js for /watch/{stream}; strict CSP, so all behaviour lives here.
'use strict';

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

  // --- test hooks / live state (read by tests/browser/watch.mjs) ---------------------------------------------
  const G = (window.glasscast = {
    stream,
    state: 'connecting', // connecting | connected | playing | disconnected | error | closed
    lastError: null,
    framesRendered: 0,
    firstFrameAt: null, // performance.now() of the first rendered frame (ms since navigation start)
    videoWidth: 0,
    videoHeight: 0,
    audioTrackLive: false,
    sessionUrl: null,
    connects: 0, // times a peer connection reached 'connected'
    attempts: 0, // POSTs sent
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
    const cur = { pc, gen, sessionUrl: null, etag: null, mediaStream: new MediaStream(), disconnectTimer: null };
    cur.trickle = makeTrickler(cur);
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
      if (res.status !== 201) {
        throw Object.assign(new Error(await problemDetail(res)), { retryAfter: retryAfterMs(res) });
      }
      const loc = res.headers.get('Location');
      if (!loc) throw new Error('the server sent no Location header');
      cur.sessionUrl = G.sessionUrl = new URL(loc, endpoint).href;
      cur.etag = res.headers.get('ETag');
      const sdp = await res.text();

      const iceServers = parseIceServerLinks(res.headers.get('Link'));
      if (iceServers.length) {
        try {
          pc.setConfiguration({ ...pc.getConfiguration(), iceServers });
        } catch (err) {
          console.warn('glasscast: could not apply ICE servers', err);
        }
      }
      await pc.setRemoteDescription({ type: 'answer', sdp });
      if (gen !== generation) return;
      cur.trickle.start();
    } catch (err) {
      if (gen !== generation || leaving) return;
      fail(err.message || String(err), err.retryAfter);
    }
  }

  function onConnectionState(cur) {
    if (cur !== current) return;
    const st = cur.pc.connectionState;
    clearTimeout(cur.disconnectTimer);
    if (st === 'connected') {
      backoff = MIN_BACKOFF;
      G.connects++;
      G.lastError = null;
      // 'playing' is set by the first rendered frame (see onFrame).
      setState('connected', 'connected, waiting for video…');
    } else if (st === 'disconnected') {
      setState('disconnected', 'connection interrupted…');
      // Often transient; give ICE 3 s to recover before starting over.
      cur.disconnectTimer = setTimeout(() => {
        if (cur === current && cur.pc.connectionState === 'disconnected') fail('connection lost');
      }, 3000);
    } else if (st === 'failed') {
      fail('connection failed');
    }
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

  // --- HTTP helpers -----------------------------------------------------------------------------------------
  async function problemDetail(res) {
    let detail = '';
    try {
      const type = res.headers.get('Content-Type') || '';
      if (type.includes('json')) detail = (await res.json()).detail || '';
    } catch { /* not JSON after all */ }
    return detail || `${res.status} ${res.statusText || 'error'}`.trim();
  }

  // Retry-After (seconds or HTTP date) on 409/503, in ms; undefined otherwise.
  function retryAfterMs(res) {
    if (res.status !== 409 && res.status !== 503) return undefined;
    const v = res.headers.get('Retry-After');
    if (!v) return undefined;
    if (/^\d+$/.test(v.trim())) return Number(v) * 1000;
    const at = Date.parse(v);
    return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
  }

  // Link: <stun:host:3478>; rel="ice-server", <turn:...>; rel="ice-server"; username="u"; credential="p"
  // (fetch joins repeated headers with ", "; commas inside <> or quotes are not separators).
  function parseIceServerLinks(header) {
    const servers = [];
    if (!header) return servers;
    const linkRe = /<([^>]*)>((?:\s*;\s*[^;,=\s]+(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,]*))?)*)/g;
    const paramRe = /;\s*([^;,=\s]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,]*)))?/g;
    for (const [, url, params] of header.matchAll(linkRe)) {
      const p = {};
      for (const [, key, quoted, bare] of params.matchAll(paramRe)) {
        p[key.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : (bare || '').trim();
      }
      if (!(p.rel || '').split(/\s+/).includes('ice-server')) continue;
      const server = { urls: url };
      if (p.username !== undefined) server.username = p.username;
      if (p.credential !== undefined) server.credential = p.credential;
      servers.push(server);
    }
    return servers;
  }

  // --- trickle ICE (RFC 8840 sdpfrag over PATCH) ------------------------------------------------------------
  // Candidates are queued until the POST returned a Location, then sent in batches every ~50 ms.
  function makeTrickler(cur) {
    let pending = [];
    let endPending = false;
    let started = false;
    let stopped = false;
    let timer = null;
    let chain = Promise.resolve(); // keep PATCHes in order

    const schedule = () => {
      if (started && !stopped && !timer && (pending.length || endPending)) timer = setTimeout(flush, 50);
    };

    function flush() {
      timer = null;
      if (stopped) return;
      const body = sdpFrag(cur.pc.localDescription.sdp, pending, endPending);
      pending = [];
      endPending = false;
      chain = chain.then(async () => {
        if (stopped) return;
        try {
          const res = await fetch(cur.sessionUrl, {
            method: 'PATCH',
            headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', ...(cur.etag ? { 'If-Match': cur.etag } : {}), ...auth },
            body,
          });
          if (res.status !== 204) console.warn(`glasscast: trickle PATCH answered ${res.status}`, await problemDetail(res));
        } catch (err) {
          console.warn('glasscast: trickle PATCH failed', err);
        }
      });
    }

    return {
      push(c) {
        if (c === null) endPending = true; // gathering complete
        else if (c.candidate) pending.push(c); // skip Chrome's empty per-mid end markers
        schedule();
      },
      start() { started = true; schedule(); },
      stop() { stopped = true; clearTimeout(timer); },
    };
  }

  // Build the PATCH body: ICE credentials, then per mid the m= line, a=mid and its candidates.
  function sdpFrag(localSdp, candidates, end) {
    const lines = localSdp.split(/\r?\n/);
    const ufrag = lines.find((l) => l.startsWith('a=ice-ufrag:'));
    const pwd = lines.find((l) => l.startsWith('a=ice-pwd:'));
    const mLines = new Map(); // mid -> m= line
    let firstM = null;
    let m = null;
    for (const l of lines) {
      if (l.startsWith('m=')) { m = l; firstM = firstM || l; }
      else if (m && l.startsWith('a=mid:')) mLines.set(l.slice(6), m);
    }
    const groups = new Map(); // mid -> candidate lines, insertion-ordered
    for (const c of candidates) {
      const mid = c.sdpMid ?? [...mLines.keys()][c.sdpMLineIndex ?? 0] ?? '0';
      if (!groups.has(mid)) groups.set(mid, []);
      groups.get(mid).push(`a=${c.candidate}`);
    }
    if (end && !groups.size) groups.set([...mLines.keys()][0] ?? '0', []);
    const out = [ufrag, pwd];
    const mids = [...groups.keys()];
    mids.forEach((mid, i) => {
      out.push(mLines.get(mid) || firstM, `a=mid:${mid}`, ...groups.get(mid));
      if (end && i === mids.length - 1) out.push('a=end-of-candidates');
    });
    return out.filter(Boolean).map((l) => `${l}\r\n`).join('');
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
    if (meta && meta.width) { G.videoWidth = meta.width; G.videoHeight = meta.height; }
    if (G.state === 'connected') setState('playing', 'playing');
    video.requestVideoFrameCallback(onFrame);
  }
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
    statsEl.textContent = [
      `stream     ${stream}  [${G.state}]`,
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
