// The console's host panel: the process's CPU, memory, open files and uptime, readiness with its reasons,
// the on-call conditions of docs/alerts.yml that hold now, and the last warnings and errors in the log.
import { $, api, bytes, cell, row } from './admin-lib.js';

function uptime(s) {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

function facts(h) {
  const pct = (v) => (v === null || v === undefined ? 'unknown' : `${v.toFixed(0)}%`);
  const mem = h.memory_total_bytes ? `${bytes(h.memory_available_bytes)} available of ${bytes(h.memory_total_bytes)}` : 'unknown';
  return [
    ['Version', h.version],
    ['Uptime', uptime(h.uptime_s)],
    ['CPU', `${pct(h.cpu_pct_of_core)} of a core (${h.cpus} cores)`],
    ['Memory', `${bytes(h.rss_bytes)} resident; host ${mem}`],
    ['Open files', `${h.open_files ?? 'unknown'} of ${h.max_files || 'no limit'}`],
    ['Threads', String(h.threads ?? 'unknown')],
    ['State dir free', bytes(h.state_dir_free_bytes)],
    ['Ready', h.ready ? 'yes' : `no: ${h.not_ready.join('; ')}`],
  ];
}

export async function refreshHost() {
  const h = await api('GET', '/host');
  $('host').replaceChildren(...facts(h).flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    const dd = document.createElement('dd');
    dt.textContent = k;
    dd.textContent = v;
    return [dt, dd];
  }));
  $('conditions').tBodies[0].replaceChildren(...h.conditions.map((c) => row({ alert: c.alert, holds: String(c.holds) },
    [cell(c.holds ? 'HOLDS' : 'ok', c.holds ? 'bad' : 'good'), cell(c.alert), cell(c.detail, 'wrap'), cell(c.runbook, 'wrap')])));
  const lines = h.log.slice().reverse().map((e) => row({ level: e.level },
    [cell(new Date(e.at_ms).toLocaleTimeString()), cell(e.level, e.level === 'ERROR' ? 'bad' : ''), cell(e.target), cell(e.text, 'wrap')]));
  $('log').tBodies[0].replaceChildren(...lines);
  $('log-note').textContent = h.log.length
    ? `The last ${h.log.length} of ${h.log_total} warnings and errors since start, newest first.`
    : 'No warnings or errors since start.';
  return h;
}
