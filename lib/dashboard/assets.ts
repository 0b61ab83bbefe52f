/**
 * The dashboard's static assets, as text modules so they ship in dist with the code (no files to copy, no
 * build step, no CDN): the stylesheet, the refresh script and the icon. The page loads them from the
 * dashboard's own mount path; the Content-Security-Policy allows nothing else.
 *
 * The script only copies the server's formatted texts (`state.json`'s `view`) into the elements that name them,
 * and reloads the page when the table's shape changed: the server is the one renderer.
 */
import { createHash } from 'node:crypto';

export interface Asset {
  type: string;
  body: Buffer;
  /** A strong ETag, and the `?v=` that changes when the asset does. */
  etag: string;
  version: string;
}

const SCRIPT = `(function () {
  'use strict';
  var body = document.body;
  var base = body.getAttribute('data-base') || '';
  var every = Number(body.getAttribute('data-refresh')) || 5000;
  var shape = body.getAttribute('data-shape');
  var status = document.querySelector('[data-status]');
  var has = Object.prototype.hasOwnProperty;

  function setStatus(text, tone) {
    if (!status) return;
    status.textContent = text;
    status.setAttribute('data-tone', tone);
  }

  function apply(state) {
    var view = state && state.view;
    if (!view) return;
    // Routes, stages or targets changed (a reload of the gateway): the server renders the new table.
    if (view.shape !== shape) {
      window.location.reload();
      return;
    }
    var i, node, key;
    var texts = document.querySelectorAll('[data-f]');
    for (i = 0; i < texts.length; i++) {
      node = texts[i];
      key = node.getAttribute('data-f');
      if (has.call(view.texts, key) && node.textContent !== view.texts[key]) node.textContent = view.texts[key];
    }
    var toned = document.querySelectorAll('[data-t]');
    for (i = 0; i < toned.length; i++) {
      node = toned[i];
      key = node.getAttribute('data-t');
      if (has.call(view.tones, key)) node.setAttribute('data-tone', view.tones[key]);
    }
    var sparks = document.querySelectorAll('svg[data-spark]');
    for (i = 0; i < sparks.length; i++) {
      node = sparks[i];
      var spark = view.sparks[Number(node.getAttribute('data-spark'))];
      if (!spark) continue;
      node.querySelector('.requests').setAttribute('points', spark.requests);
      node.querySelector('.errors').setAttribute('points', spark.errors);
      node.setAttribute('aria-label', spark.label);
      var title = node.querySelector('title');
      if (title) title.textContent = spark.label;
    }
    body.setAttribute('data-refreshed', state.generatedAt);
  }

  var timer;
  function tick() {
    clearTimeout(timer);
    fetch(base + '/state.json', { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (res) {
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.json();
      })
      .then(
        function (state) {
          apply(state);
          setStatus('live', 'ok');
        },
        function (err) {
          setStatus('refresh failed (' + err.message + ')', 'bad');
        }
      )
      .then(function () {
        timer = setTimeout(tick, every);
      });
  }
  timer = setTimeout(tick, every);
  // Back on a hidden tab: refresh at once rather than show numbers that are minutes old.
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible') tick();
  });
})();
`;

const STYLE = `:root {
  --ink: #1d2330; --muted: #5d6675; --line: #dde1e8; --paper: #ffffff; --wash: #f5f6f9;
  --ok: #1f7a4d; --warn: #9a6400; --bad: #b42318;
  --monolith: #5d6675; --shadow: #6941c6; --cutover: #b54708; --service: #1f7a4d;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--wash);
}
* { box-sizing: border-box; }
body { margin: 0; }
header { background: var(--paper); border-bottom: 1px solid var(--line); padding: 14px 24px; display: flex; flex-wrap: wrap; align-items: center; gap: 8px 28px; }
h1 { font-size: 18px; margin: 0; }
h1 span { color: var(--muted); font-weight: 400; }
h2 { font-size: 15px; margin: 0 0 10px; }
h3 { font-size: 14px; margin: 0 0 4px; }
main { padding: 18px 24px 40px; display: grid; gap: 18px; }
section { background: var(--paper); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; overflow-x: auto; }
.summary { margin: 0; color: var(--muted); }
.stages { list-style: none; display: flex; gap: 6px; margin: 0; padding: 0; }
.stages li { border: 1px solid var(--line); border-radius: 6px; padding: 2px 10px; background: var(--wash); }
.stages li b { font-variant-numeric: tabular-nums; margin-left: 4px; }
.stages li + li::before { content: "→"; color: var(--muted); margin: 0 8px 0 -2px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: middle; white-space: nowrap; }
thead th { font-size: 12px; color: var(--muted); font-weight: 600; }
tbody th { font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.path { display: block; font-weight: 400; color: var(--muted); font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.stage { display: inline-block; border-radius: 999px; padding: 1px 9px; font-size: 12px; font-weight: 600; color: #fff; }
.stage[data-stage="monolith"] { background: var(--monolith); }
.stage[data-stage="shadow"] { background: var(--shadow); }
.stage[data-stage="cutover"] { background: var(--cutover); }
.stage[data-stage="service"] { background: var(--service); }
.percent { font-weight: 600; margin-left: 6px; font-variant-numeric: tabular-nums; }
.split { display: block; color: var(--muted); font-size: 12px; }
form.cutover { display: inline-flex; gap: 4px; margin-left: 8px; }
form.cutover input { width: 64px; font: inherit; padding: 1px 4px; }
form.cutover button { font: inherit; padding: 1px 8px; cursor: pointer; }
[data-tone="ok"] { color: var(--ok); }
[data-tone="warn"] { color: var(--warn); font-weight: 600; }
[data-tone="bad"] { color: var(--bad); font-weight: 600; }
svg.spark { display: block; }
svg.spark .requests { fill: none; stroke: #3b63c4; stroke-width: 1.5; }
svg.spark .errors { fill: none; stroke: var(--bad); stroke-width: 1.5; }
svg.spark .axis { stroke: var(--line); }
.shadow-route + .shadow-route { margin-top: 14px; padding-top: 14px; border-top: 1px solid var(--line); }
.muted { color: var(--muted); }
pre { margin: 6px 0 0; padding: 8px 10px; background: var(--wash); border-radius: 6px; font: 12px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap; overflow-wrap: anywhere; }
.notice { margin: 0; padding: 10px 14px; border: 1px solid #f0c36d; background: #fffaeb; border-radius: 8px; }
.status[data-tone="ok"]::before { content: "●"; margin-right: 4px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
`;

const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="7" y="3" width="18" height="27" rx="2" fill="#1d2330"/><rect x="10" y="6" width="12" height="24" fill="#3b63c4"/><circle cx="19" cy="18" r="1.6" fill="#fff"/></svg>`;

function asset(type: string, text: string): Asset {
  const body = Buffer.from(text, 'utf8');
  const version = createHash('sha256').update(body).digest('base64url').slice(0, 12);
  return { type, body, etag: `"${version}"`, version };
}

/** The assets by the path they are served at, under the dashboard's mount path. */
export const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ['/dashboard.js', asset('text/javascript; charset=utf-8', SCRIPT)],
  ['/dashboard.css', asset('text/css; charset=utf-8', STYLE)],
  ['/favicon.svg', asset('image/svg+xml', ICON)],
]);
