// glasscast player, WHEP protocol side (draft-ietf-wish-whep; RFC 9725 shares PATCH/DELETE): HTTP error
// details, Retry-After, Link ice-server headers, trickle ICE (RFC 8840 sdpfrag over PATCH) and ICE restart.
// An ES module imported by player.js; no build step.

// --- HTTP helpers -----------------------------------------------------------------------------------------
export async function problemDetail(res) {
  let detail = '';
  try {
    const type = res.headers.get('Content-Type') || '';
    if (type.includes('json')) detail = (await res.json()).detail || '';
  } catch { /* not JSON after all */ }
  return detail || `${res.status} ${res.statusText || 'error'}`.trim();
}

// Retry-After (seconds or HTTP date) on 409/503, in ms; undefined otherwise.
export function retryAfterMs(res) {
  if (res.status !== 409 && res.status !== 503) return undefined;
  const v = res.headers.get('Retry-After');
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

// Link: <stun:host:3478>; rel="ice-server", <turn:...>; rel="ice-server"; username="u"; credential="p"
// (fetch joins repeated headers with ", "; commas inside <> or quotes are not separators).
export function parseIceServerLinks(header) {
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
// The STUN/TURN servers of a response's Link header (if any) as the connection's from now on: the next
// gathering (a new offer, an ICE restart) uses them.
export function applyIceServers(pc, linkHeader) {
  const iceServers = parseIceServerLinks(linkHeader);
  if (!iceServers.length) return;
  try {
    pc.setConfiguration({ ...pc.getConfiguration(), iceServers });
  } catch (err) {
    console.warn('glasscast: could not apply ICE servers', err);
  }
}

export function makeTrickler(cur, auth) {
  let pending = [];
  let endPending = false;
  let started = false;
  let stopped = false;
  let holding = false; // an ICE restart is in flight: its PATCH must go first
  let timer = null;
  let chain = Promise.resolve(); // keep PATCHes in order

  const schedule = () => {
    if (started && !stopped && !holding && !timer && (pending.length || endPending)) timer = setTimeout(flush, 50);
  };
  const headers = () => ({
    'Content-Type': 'application/trickle-ice-sdpfrag',
    ...(cur.etag ? { 'If-Match': cur.etag } : {}),
    ...auth,
  });

  function flush() {
    timer = null;
    if (stopped || holding) return;
    const body = sdpFrag(cur.pc.localDescription.sdp, pending, endPending);
    pending = [];
    endPending = false;
    chain = chain.then(async () => {
      if (stopped) return;
      try {
        const res = await fetch(cur.sessionUrl, { method: 'PATCH', headers: headers(), body });
        if (res.status !== 204) console.warn(`glasscast: trickle PATCH answered ${res.status}`, await problemDetail(res));
      } catch (err) {
        console.warn('glasscast: trickle PATCH failed', err);
      }
    });
  }

  // ICE restart (RFC 9725 §4.3.2): new local credentials by an iceRestart offer, PATCHed with If-Match; the
  // server's 200 sdpfrag (its new credentials and candidates) is applied as the new answer. DTLS and the
  // media tracks stay; only the ICE path is renewed. The 200 carries fresh TURN credentials (Link headers;
  // they last a few hours): they are applied before the offer is set, so the restarted agent gathers its
  // relayed candidates with them. Resolves when the new answer is set; throws otherwise.
  async function restart() {
    if (!started || stopped) throw new Error('no session to restart');
    holding = true;
    clearTimeout(timer);
    timer = null;
    pending = []; // candidates of the old ICE generation are useless now
    endPending = false;
    const pc = cur.pc;
    try {
      const offer = await pc.createOffer({ iceRestart: true });
      const body = sdpFrag(offer.sdp, [], false);
      const done = chain.then(async () => {
        const res = await fetch(cur.sessionUrl, { method: 'PATCH', headers: { ...headers(), 'If-Match': cur.etag || '*' }, body });
        if (res.status !== 200) throw new Error(`ICE restart refused (${res.status}): ${await problemDetail(res)}`);
        const etag = res.headers.get('ETag');
        if (etag) cur.etag = etag;
        applyIceServers(pc, res.headers.get('Link'));
        const frag = await res.text();
        await pc.setLocalDescription(offer);
        await pc.setRemoteDescription({ type: 'answer', sdp: restartedAnswer(pc.remoteDescription.sdp, frag) });
      });
      chain = done.catch(() => {});
      await done;
    } finally {
      holding = false;
      schedule();
    }
  }

  return {
    push(c) {
      if (c === null) endPending = true; // gathering complete
      else if (c.candidate) pending.push(c); // skip Chrome's empty per-mid end markers
      schedule();
    },
    start() { started = true; schedule(); },
    stop() { stopped = true; clearTimeout(timer); },
    restart,
  };
}

// The previous answer with the server's new ICE credentials and candidates from a restart's sdpfrag.
export function restartedAnswer(answerSdp, fragText) {
  const frag = fragText.split(/\r?\n/);
  const ufrag = frag.find((l) => l.startsWith('a=ice-ufrag:'));
  const pwd = frag.find((l) => l.startsWith('a=ice-pwd:'));
  if (!ufrag || !pwd) throw new Error('the ICE restart answer has no a=ice-ufrag / a=ice-pwd');
  const candidates = frag.filter((l) => l.startsWith('a=candidate:') || l === 'a=end-of-candidates');
  const out = [];
  let firstMidSeen = false;
  for (const l of answerSdp.split(/\r?\n/)) {
    if (l === '' || l.startsWith('a=candidate:') || l === 'a=end-of-candidates') continue;
    if (l.startsWith('a=ice-ufrag:')) out.push(ufrag);
    else if (l.startsWith('a=ice-pwd:')) out.push(pwd);
    else out.push(l);
    if (l.startsWith('a=mid:') && !firstMidSeen) {
      firstMidSeen = true; // BUNDLE: the candidates belong to the first (tagged) section
      out.push(...candidates);
    }
  }
  return out.map((l) => `${l}\r\n`).join('');
}

// Build the PATCH body: ICE credentials, then per mid the m= line, a=mid and its candidates.
export function sdpFrag(localSdp, candidates, end) {
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

