/**
 * The dashboard page, rendered on the server from the state and its view: every route with its stage, numbers
 * and sparkline, the shadowed routes' latest differences, the upstream targets, and the cutover forms when
 * changes are allowed. Every value is escaped; the page has no inline script or style (the CSP forbids them).
 */
import { ASSETS } from './assets';
import type { DashboardState, RouteState } from './state';
import type { DashboardView } from './view';
import { SPARK_HEIGHT, SPARK_WIDTH } from './view';

export interface PageOptions {
  /** The mount path the page's links start with (`/_frontdoor`), '' at the root. */
  base: string;
  title: string;
  refreshMs: number;
  /** The CSRF token of the cutover forms, when changes are allowed. */
  csrfToken: string | undefined;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML content and double-quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (char) => ESCAPES[char]);
}

/** A view text in an element that the script refreshes. */
function field(view: DashboardView, key: string, tag = 'span', attributes = ''): string {
  const tone = view.tones[key] === undefined ? '' : ` data-t="${escapeHtml(key)}" data-tone="${view.tones[key]}"`;
  return `<${tag} data-f="${escapeHtml(key)}"${tone}${attributes}>${escapeHtml(view.texts[key] ?? '')}</${tag}>`;
}

function routeRow(route: RouteState, index: number, view: DashboardView, options: PageOptions): string {
  const key = `routes.${index}`;
  const methods = route.methods ? `${route.methods.join(', ')} ` : '';
  const hosts = route.hosts ? ` on ${route.hosts.join(', ')}` : '';
  const spark = view.sparks[index];
  let stage = `<span class="stage" data-stage="${route.stage}">${route.stage}</span>`;
  if (route.cutover) {
    stage += field(view, `${key}.percent`, 'span', ' class="percent"');
    if (options.csrfToken !== undefined) {
      stage +=
        `<form class="cutover" method="post" action="${escapeHtml(`${options.base}/cutover`)}">` +
        `<input type="hidden" name="csrf" value="${escapeHtml(options.csrfToken)}">` +
        `<input type="hidden" name="route" value="${escapeHtml(route.name)}">` +
        `<label><span class="visually-hidden">Cutover percentage of ${escapeHtml(route.name)}</span>` +
        `<input type="number" name="percent" min="0" max="100" step="any" required value="${escapeHtml(route.cutover.percent)}"></label>` +
        `<button type="submit">Set</button></form>`;
    }
    stage += field(view, `${key}.split`, 'span', ' class="split"');
  }
  return `<tr id="route-${index}" data-route="${escapeHtml(route.name)}">
<th scope="row">${escapeHtml(route.name)}<span class="path">${escapeHtml(methods)}${escapeHtml(route.path)}${escapeHtml(hosts)}</span></th>
<td>${stage}</td>
${field(view, `${key}.rps`, 'td', ' class="num"')}
${field(view, `${key}.errors`, 'td', ' class="num"')}
${field(view, `${key}.service`, 'td', ' class="num"')}
${field(view, `${key}.monolith`, 'td', ' class="num"')}
${field(view, `${key}.shadow`, 'td', ' class="num"')}
${field(view, `${key}.fallbacks`, 'td')}
<td><svg class="spark" data-spark="${index}" width="${SPARK_WIDTH}" height="${SPARK_HEIGHT}" viewBox="0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}" role="img" aria-label="${escapeHtml(spark.label)}"><title>${escapeHtml(spark.label)}</title><line class="axis" x1="0" y1="${SPARK_HEIGHT - 0.5}" x2="${SPARK_WIDTH}" y2="${SPARK_HEIGHT - 0.5}"/><polyline class="requests" points="${spark.requests}"/><polyline class="errors" points="${spark.errors}"/></svg></td>
</tr>`;
}

function shadowSection(state: DashboardState, view: DashboardView): string {
  const shadowed = state.routes.map((route, index) => ({ route, index })).filter(({ route }) => route.shadow);
  if (shadowed.length === 0) return '';
  const blocks = shadowed.map(({ route, index }) => {
    const key = `routes.${index}`;
    return `<div class="shadow-route" id="shadow-${index}">
<h3>${escapeHtml(route.name)} <span class="muted">→ ${escapeHtml(route.shadow?.candidate.join(', '))}</span></h3>
<p class="muted">${field(view, `${key}.tally`)}</p>
<p>Fields that differ most: ${field(view, `${key}.fields`)}</p>
${field(view, `${key}.diffs`, 'pre')}
</div>`;
  });
  return `<section aria-labelledby="shadow-title"><h2 id="shadow-title">Shadow comparisons: latest differences</h2>
${blocks.join('\n')}
</section>`;
}

function upstreamSection(state: DashboardState, view: DashboardView): string {
  if (state.upstreams.length === 0) return '';
  const rows = state.upstreams.flatMap((upstream, u) =>
    upstream.targets.map(
      (target, t) => `<tr>
${t === 0 ? `<th scope="rowgroup" rowspan="${upstream.targets.length}">${escapeHtml(upstream.routes.join(', '))}</th>` : ''}
<td><code>${escapeHtml(target.url)}</code></td>
${field(view, `upstreams.${u}.${t}.health`, 'td')}
${field(view, `upstreams.${u}.${t}.inFlight`, 'td', ' class="num"')}
${field(view, `upstreams.${u}.${t}.lastError`, 'td')}
</tr>`,
    ),
  );
  return `<section aria-labelledby="upstreams-title"><h2 id="upstreams-title">Upstreams</h2>
<table class="upstreams"><thead><tr><th>Routes</th><th>Target</th><th>Health</th><th class="num">In flight</th><th>Last error</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table></section>`;
}

/** The whole page. */
export function renderPage(state: DashboardState, view: DashboardView, options: PageOptions): string {
  const { base } = options;
  const css = ASSETS.get('/dashboard.css');
  const js = ASSETS.get('/dashboard.js');
  const stages = (['monolith', 'shadow', 'cutover', 'service'] as const).map((stage) => `<li><span class="stage" data-stage="${stage}">${stage}</span>${field(view, `stages.${stage}`, 'b')}</li>`).join('');
  const notice = state.recording
    ? ''
    : `<p class="notice">Nothing records requests for this dashboard yet, so rates, errors and latency stay empty: set <code>dashboard: true</code> on <code>gateway()</code> (or mount <code>dashboardRecorder()</code> in front of it). Stages, shadow reports and upstream health are shown anyway.</p>`;
  const changes = state.allowChanges
    ? `<section aria-labelledby="changes-title"><h2 id="changes-title">Cutover changes made here</h2>${field(view, 'changes', 'pre')}</section>`
    : '';
  const rows = state.routes.map((route, index) => routeRow(route, index, view, options)).join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(options.title)} · migration</title>
<link rel="icon" type="image/svg+xml" href="${escapeHtml(`${base}/favicon.svg`)}">
<link rel="stylesheet" href="${escapeHtml(`${base}/dashboard.css?v=${css?.version}`)}">
<script src="${escapeHtml(`${base}/dashboard.js?v=${js?.version}`)}" defer></script>
</head>
<body data-base="${escapeHtml(base)}" data-refresh="${options.refreshMs}" data-shape="${escapeHtml(view.shape)}">
<header>
<h1>${escapeHtml(options.title)} <span>migration</span></h1>
<ol class="stages" aria-label="Routes by stage">${stages}</ol>
<p class="summary">${field(view, 'summary')} · updated ${field(view, 'updated')} <span class="status" data-status data-tone="none"></span></p>
</header>
<main>
${notice}
<section aria-labelledby="routes-title"><h2 id="routes-title">Routes</h2>
<table class="routes">
<thead><tr><th>Route</th><th>Stage</th><th class="num">Req/s <span class="muted">1 min</span></th><th class="num">5xx <span class="muted">5 min</span></th><th class="num">Service p50 / p99</th><th class="num">Monolith p50 / p99</th><th class="num">Shadow match</th><th>Fallbacks <span class="muted">5 min</span></th><th>Last 15 min</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</section>
${shadowSection(state, view)}
${upstreamSection(state, view)}
${changes}
</main>
</body>
</html>
`;
}
