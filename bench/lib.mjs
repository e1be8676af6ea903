// Shared plumbing for the glasscast benchmarks (bench/*.mjs): start a glasscast server with a generated
// config, launch headless Chromium, sample a process's CPU from /proc, summarise samples, describe the machine.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir, cpus, release } from 'node:os';
import { join } from 'node:path';
import { launchChromium as launchTestChromium } from '../tests/browser/chromium.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --key value / --flag arguments into an object (values stay strings).
export function parseArgs(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2);
    if (!(key in defaults)) throw new Error(`unknown option --${key} (known: ${Object.keys(defaults).join(', ')})`);
    if (typeof defaults[key] === 'boolean') out[key] = true;
    else out[key] = argv[++i];
  }
  return out;
}

export function percentiles(values) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const r1 = (x) => Math.round(x * 10) / 10;
  return {
    n: s.length, min: r1(s[0]), p50: r1(q(0.5)), p95: r1(q(0.95)), p99: r1(q(0.99)), max: r1(s[s.length - 1]),
    mean: r1(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

export function machine() {
  const c = cpus();
  let chromiumVersion = null;
  try { chromiumVersion = execFileSync(chromiumPath(), ['--version'], { encoding: 'utf8' }).trim(); } catch { /* absent */ }
  return { cpus: c.length, cpu_model: c[0] && c[0].model, kernel: release(), chromium: chromiumVersion };
}

export function chromiumPath() {
  return process.env.CHROMIUM || '/usr/bin/chromium';
}

// Pin this process (and so Chromium, which it starts later) to the given CPU list, e.g. "1".
export function pinSelf(cpuList) {
  execFileSync('taskset', ['-cp', cpuList, String(process.pid)], { stdio: 'ignore' });
}

// utime + stime of a process in seconds (Linux /proc).
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100; // USER_HZ is 100 on Linux
}

// RSS in MiB, threads and open fds of a process.
export function processFootprint(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number((status.match(/VmRSS:\s+(\d+)/) || [])[1] || 0);
  const threads = Number((status.match(/Threads:\s+(\d+)/) || [])[1] || 0);
  const anonKb = Number((status.match(/RssAnon:\s+(\d+)/) || [])[1] || 0);
  let fds = null;
  try { fds = execFileSync('ls', [`/proc/${pid}/fd`], { encoding: 'utf8' }).split('\n').filter(Boolean).length; } catch { /* gone */ }
  return { rss_mib: Math.round((kb / 1024) * 10) / 10, rss_anon_mib: Math.round((anonKb / 1024) * 10) / 10, threads, fds };
}

// Starts `glasscast serve` on 127.0.0.1:port (plain HTTP: signalling only; media is DTLS-SRTP either way)
// with one stream `main` of the given settings; resolves once /readyz says 200.
// `webrtc`: extra [webrtc] keys, e.g. { transport: 'forward', mux_port: 0 }.
// `host`: the address it listens on (and `base` uses); `metricsPort`: its /metrics listener on 127.0.0.1.
// `tls`: serve HTTPS with glasscast's own self-signed certificate (`base` is then https://).
// GET `url` with curl, certificate unchecked (a self-signed server), as { status }.
async function curlStatus(url) {
  const out = execFileSync('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', url], { encoding: 'utf8' });
  return { status: Number(out) };
}

export async function startServer({ bin, port, stream, webrtc = {}, pinCpus, logFilter = 'warn', host = '127.0.0.1', metricsPort, tls = false }) {
  const dir = await mkdtemp(join(tmpdir(), 'glasscast-bench-'));
  const toml = (o) => Object.entries(o).map(([k, v]) => `${k} = ${typeof v === 'string' ? JSON.stringify(v) : v}`).join('\n');
  const streamToml = toml({ name: 'main', ...stream });
  const metrics = metricsPort ? `[metrics]\nlisten = "127.0.0.1:${metricsPort}"\n` : '';
  const config = `[server]\nlisten = "${host}:${port}"\nplain_http = ${!tls}\nstate_dir = ${JSON.stringify(join(dir, 'state'))}\n${metrics}` +
    // Access control off: the benchmarks measure media (tests/api/auth.rs covers tokens).
    `[auth]\nmode = "disabled"\n[webrtc]\n${toml(webrtc)}\n[log]\nfilter = "${logFilter}"\nformat = "human"\n[[streams]]\n${streamToml}\n`;
  const configPath = join(dir, 'glasscast.toml');
  await writeFile(configPath, config);
  const cmd = pinCpus ? 'taskset' : bin;
  const args = pinCpus ? ['-c', pinCpus, bin, 'serve', '--config', configPath] : ['serve', '--config', configPath];
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const base = `${tls ? 'https' : 'http'}://${host}:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`glasscast exited (${child.exitCode}): ${stderr}`);
    try {
      const r = tls ? await curlStatus(`${base}/readyz`) : await fetch(`${base}/readyz`);
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`glasscast not ready after 30 s: ${stderr}`);
    await sleep(100);
  }
  return {
    base,
    pid: child.pid, // with taskset, exec keeps the pid
    config,
    stderr: () => stderr,
    async stop() {
      child.kill('SIGTERM');
      for (let i = 0; i < 100 && child.exitCode === null; i++) await sleep(50);
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function launchChromium() {
  return launchTestChromium({ viewport: { width: 1280, height: 720 } });
}

const webDir = new URL('../web/', import.meta.url);

// Starts bench/peer (gst-plugins-rs whepserversink serving the probe source); resolves once it listens.
export async function startPeer({ bin, port, mode, bitrate, pinCpus }) {
  const args = ['--port', String(port), '--mode', mode, '--bitrate', String(bitrate)];
  const child = pinCpus ? spawn('taskset', ['-c', pinCpus, bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const base = `http://${host}:${port}`;
  for (let t0 = Date.now(); ; await sleep(200)) {
    if (child.exitCode !== null) throw new Error(`peer exited (${child.exitCode}): ${stderr}`);
    try { await fetch(`${base}/whep/endpoint`, { method: 'OPTIONS' }); break; } catch { /* not yet */ }
    if (Date.now() - t0 > 30_000) throw new Error(`peer not listening after 30 s: ${stderr}`);
  }
  await sleep(2000); // let its source run
  return {
    base, pid: child.pid,
    async stop() {
      child.kill('SIGKILL');
      for (let i = 0; i < 50 && child.exitCode === null; i++) await sleep(50);
    },
  };
}

// Playwright routes for a page: the player's files on a peer's origin, /whep/main to the peer's endpoint,
// /healthz with this process's clock; and the A/B offer edit.
export async function routePage(page, { peer, nodeClock, stripPlayoutDelay }) {
  if (peer) {
    await page.route('**/watch/main', async (r) => r.fulfill({ contentType: 'text/html', body: await readFile(new URL('watch.html', webDir)) }));
    await page.route('**/assets/*', async (r) => {
      const name = new URL(r.request().url()).pathname.split('/').pop();
      const type = name.endsWith('.css') ? 'text/css' : 'text/javascript';
      await r.fulfill({ contentType: type, body: await readFile(new URL(name, webDir)) });
    });
  }
  if (nodeClock) {
    await page.route('**/healthz', (r) => r.fulfill({ contentType: 'application/json', body: JSON.stringify({ status: 'ok', unix_ms: performance.timeOrigin + performance.now() }) }));
  }
  await page.route('**/whep/main', (r) => {
    let body = r.request().postData() || '';
    if (stripPlayoutDelay) body = body.replace(/a=extmap:\d+ [^\r\n]*playout-delay\r\n/g, '');
    r.continue({ postData: body, ...(peer ? { url: r.request().url().replace(/\/whep\/main$/, '/whep/endpoint') } : {}) });
  });
}

// Runs bench/loadclient (optionally pinned to `pinCpus`) and resolves with the JSON it prints.
export function runLoadClient({ bin, url, args, pinCpus }) {
  return new Promise((resolve, reject) => {
    const child = pinCpus
      ? spawn('taskset', ['-c', pinCpus, bin, url, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(bin, [url, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
    child.on('exit', (code) => {
      try { resolve(JSON.parse(out)); } catch { reject(new Error(`loadclient exited ${code}: ${err}`)); }
    });
  });
}
