// bench/coldjoin: how long the first WHEP POST on a new HTTPS connection takes, as a client sees it.
//
//   node bench/coldjoin.mjs [--joins 50] [--offer tests/fixtures/offers/chromium-156.sdp]
//                           [--bin target/release/glasscast] [--port 18660] [--transport forward]
//
// A fresh glasscast serves HTTPS with its self-signed certificate (1280x720 test stream). Then curl, an
// HTTP client that is not ours, POSTs a recorded browser offer (the fixture) --joins times, each on a new
// TCP + TLS connection. For every join curl reports its TLS handshake and the wait from the request sent
// to the answer received (glasscast's time to answer, plus loopback). The first join after start is
// reported on its own. Each session is left to time out (it never connects: no ICE from curl).
// JSON on stdout.
import { execFileSync } from 'node:child_process';
import { machine, parseArgs, percentiles, startServer } from './lib.mjs';

const opts = parseArgs(process.argv.slice(2), {
  joins: '50', offer: 'tests/fixtures/offers/chromium-156.sdp', bin: 'target/release/glasscast', port: '18660',
  transport: 'forward',
});

/// One POST on a new connection: status, TLS handshake ms, request-sent-to-answer ms.
function join(url) {
  const format = '%{http_code} %{time_appconnect} %{time_pretransfer} %{time_total}';
  const out = execFileSync('curl', ['-sk', '-o', '/dev/null', '-w', format, '-X', 'POST',
    '-H', 'content-type: application/sdp', '--data-binary', `@${opts.offer}`, url], { encoding: 'utf8' });
  const [status, tls, pre, total] = out.trim().split(' ').map(Number);
  const ms = (s) => Math.round(s * 10_000) / 10;
  return { status, tls_ms: ms(tls), answer_ms: ms(total - pre) };
}

const server = await startServer({
  bin: opts.bin, port: Number(opts.port), tls: true,
  webrtc: { transport: opts.transport, mux_port: 0, connect_timeout_s: 5 },
  stream: { width: 1280, height: 720, fps: 30, max_viewers: Number(opts.joins) + 10 },
});
try {
  const url = `${server.base}/whep/main`;
  const runs = Array.from({ length: Number(opts.joins) }, () => join(url));
  const refused = runs.filter((r) => r.status !== 201).length;
  const [first, ...rest] = runs;
  console.log(JSON.stringify({
    bench: 'coldjoin', date: new Date().toISOString(), machine: machine(), transport: opts.transport,
    command: `node bench/coldjoin.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    joins: runs.length, refused, first,
    tls_ms: percentiles(rest.map((r) => r.tls_ms)), answer_ms: percentiles(rest.map((r) => r.answer_ms)),
  }, null, 1));
} finally {
  await server.stop();
}
