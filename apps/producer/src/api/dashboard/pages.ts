/**
 * The dashboard's HTML pages: plain server-rendered HTML with inline CSS and (on the fleet page) a
 * small inline script, allowed by a per-response CSP nonce. No external assets: it works offline.
 */
import type { FleetView } from './fleet-view';
import { fleetRenderer, SECTIONS } from './render';

export function escapeHtml(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** Content-Security-Policy of every dashboard page: nothing external, scripts only with the nonce. */
export function csp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    "style-src 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

const STYLE = `
:root { color-scheme: light; --fg:#1d232b; --muted:#5d6875; --line:#d9dee4; --bg:#f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.2rem; background: #1d232b; color: #fff; }
header h1 { font-size: 1.05rem; margin: 0; font-weight: 600; }
header nav a { color: #cfe0ff; margin-right: 1rem; text-decoration: none; }
header nav a[aria-current] { color: #fff; font-weight: 600; }
header form { margin-left: auto; }
header button { background: none; border: 1px solid #6b7684; color: #fff; border-radius: 4px; padding: .2rem .6rem; cursor: pointer; }
main { padding: 1rem 1.2rem 3rem; max-width: 1400px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; margin-bottom: 1rem; }
section h2 { font-size: 1rem; margin: 0 0 .6rem; }
.status-line { color: var(--muted); font-size: .85rem; margin: 0 0 .8rem; }
.status-line .error { color: #b3261e; }
.tiles { display: flex; flex-wrap: wrap; gap: .8rem; background: none; border: 0; padding: 0; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .6rem .9rem; min-width: 11rem; }
.tile-label { color: var(--muted); font-size: .8rem; }
.tile-value { font-size: 1.5rem; font-weight: 600; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .8rem; color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: .85rem; }
.sub { color: var(--muted); font-size: .8rem; }
.empty { color: var(--muted); }
.chart { width: 100%; height: 110px; display: block; }
.meter { position: relative; height: 8px; width: 10rem; background: #eceff3; border-radius: 4px; overflow: hidden; margin-bottom: .2rem; }
.meter-eff { position: absolute; inset: 0 auto 0 0; background: #d7e6fb; }
.meter-use { position: absolute; inset: 0 auto 0 0; background: #2f7ed8; }
.bar { display: flex; height: 14px; width: 100%; min-width: 14rem; background: #eceff3; border-radius: 4px; overflow: hidden; }
.seg-completed { background: #4a9e5c; } .seg-failed { background: #c8423b; } .seg-cancelled { background: #9aa3ad; }
.seg-skipped { background: #b9d7be; } .seg-active { background: #2f7ed8; } .seg-queued { background: #eceff3; }
.count { margin-right: .4rem; white-space: nowrap; }
.plan-table { width: auto; font-size: .8rem; } .plan-table th, .plan-table td { padding: .1rem .4rem; border: 0; }
.plan-above { color: #a35c00; font-weight: 600; } .plan-below { color: #2e7d3e; }
.status-running { color: #2f7ed8; font-weight: 600; } .status-finished { color: #2e7d3e; } .status-cancelled { color: #6b7684; }
.status-finished-with-failures { color: #a35c00; font-weight: 600; } .status-failed { color: #b3261e; font-weight: 600; } .status-paused-budget { color: #a35c00; font-weight: 600; }
form.login { max-width: 24rem; margin: 4rem auto; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 1.2rem 1.4rem; }
form.login label { display: block; font-weight: 600; margin-bottom: .3rem; }
form.login input[type=password] { width: 100%; padding: .45rem .5rem; font: inherit; border: 1px solid #aab3bd; border-radius: 4px; }
form.login button { margin-top: .8rem; padding: .45rem 1rem; font: inherit; background: #2f7ed8; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
form.login .error { color: #b3261e; margin: 0 0 .6rem; }
`;

function layout(opts: { title: string; nonce: string; body: string; nav?: 'fleet' | 'none'; script?: string }): string {
  const nav =
    opts.nav === 'none'
      ? ''
      : `<nav><a href="/dashboard" aria-current="page" data-testid="nav-fleet">Fleet</a><a href="/dashboard/queues" data-testid="nav-queues">Queues (Bull Board)</a></nav>` +
        `<form method="post" action="/logout"><button type="submit" data-testid="logout">Log out</button></form>`;
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<meta name="robots" content="noindex"><title>${escapeHtml(opts.title)}</title><style>${STYLE}</style></head>` +
    `<body><header><h1>scribe-fleet</h1>${nav}</header><main>${opts.body}</main>` +
    (opts.script ? `<script nonce="${opts.nonce}">${opts.script}</script>` : '') +
    `</body></html>`
  );
}

export function loginPage(opts: { nonce: string; next: string; error?: string }): string {
  const body =
    `<form class="login" method="post" action="/login" data-testid="login-form">` +
    `<h2>Sign in</h2>` +
    (opts.error ? `<p class="error" role="alert" data-testid="login-error">${escapeHtml(opts.error)}</p>` : '') +
    `<label for="token">API token</label>` +
    `<input id="token" name="token" type="password" autocomplete="current-password" required autofocus data-testid="login-token">` +
    `<input type="hidden" name="next" value="${escapeHtml(opts.next)}">` +
    `<button type="submit" data-testid="login-submit">Sign in</button>` +
    `<p class="sub">One of the API tokens (API_TOKENS). It is kept in an HttpOnly cookie for this site only.</p>` +
    `</form>`;
  return layout({ title: 'scribe-fleet: sign in', nonce: opts.nonce, body, nav: 'none' });
}

const TITLES: Record<(typeof SECTIONS)[number], string> = {
  summary: '',
  caps: 'Cap buckets: slots and queues',
  throughput: 'Throughput',
  audio: 'Audio hours',
  failures: 'Failures by error code (24 h)',
  batches: 'Recent batches',
  queues: 'Batch finalisation and webhook queues',
};

/** The fleet page: every section rendered now, then re-rendered from GET /v1/fleet every `pollMs`. */
export function fleetPage(opts: { nonce: string; view: FleetView; pollMs: number; batches: number }): string {
  const r = fleetRenderer();
  const sections = SECTIONS.map((name) =>
    name === 'summary'
      ? `<section class="tiles" data-section="summary" data-testid="section-summary">${r.summary(opts.view)}</section>`
      : `<section data-testid="section-${name}"><h2>${TITLES[name]}</h2><div data-section="${name}">${r[name](opts.view)}</div></section>`,
  ).join('');
  const status =
    `<p class="status-line">Updated <time data-testid="fleet-updated" datetime="${escapeHtml(opts.view.generatedAt)}">${escapeHtml(opts.view.generatedAt.replace('T', ' ').slice(0, 19))} UTC</time>` +
    ` · refreshes every ${(opts.pollMs / 1000).toFixed(opts.pollMs % 1000 ? 1 : 0)} s <span class="error" data-testid="fleet-error" role="status"></span></p>`;
  // The renderer's own source, so the browser renders exactly what the server does.
  const script = `
(function () {
  var R = (${fleetRenderer.toString()})();
  var POLL_MS = ${Number(opts.pollMs)};
  var URL_ = '/v1/fleet?batches=${Number(opts.batches)}';
  var errorEl = document.querySelector('[data-testid="fleet-error"]');
  var updatedEl = document.querySelector('[data-testid="fleet-updated"]');
  var polls = 0;
  // Once a form is submitted (Log out) the page is leaving: no more polls. A poll answered 401 while
  // the logout response is on its way (the session is already revoked) would otherwise navigate to
  // /login?next=/dashboard and cancel the logout's own redirect.
  var leaving = false;
  document.addEventListener('submit', function () { leaving = true; });
  window.addEventListener('pagehide', function () { leaving = true; });
  async function poll() {
    if (leaving) return;
    try {
      var res = await fetch(URL_, { credentials: 'same-origin', headers: { accept: 'application/json' }, cache: 'no-store' });
      if (leaving) return;
      if (res.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search); return; }
      if (!res.ok) throw new Error('HTTP ' + res.status);
      var view = await res.json();
      document.querySelectorAll('[data-section]').forEach(function (el) {
        var fn = R[el.getAttribute('data-section')];
        if (fn) el.innerHTML = fn(view);
      });
      updatedEl.setAttribute('datetime', view.generatedAt);
      updatedEl.textContent = view.generatedAt.replace('T', ' ').slice(0, 19) + ' UTC';
      errorEl.textContent = '';
      document.body.setAttribute('data-polls', String(++polls));
    } catch (e) {
      errorEl.textContent = '· update failed: ' + (e && e.message ? e.message : e);
    } finally {
      if (!leaving) setTimeout(poll, POLL_MS);
    }
  }
  setTimeout(poll, POLL_MS);
})();`;
  return layout({ title: 'scribe-fleet: fleet', nonce: opts.nonce, body: status + sections, nav: 'fleet', script });
}
