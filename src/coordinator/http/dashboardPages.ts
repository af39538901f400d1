/**
 * The dashboard's HTML, rendered on the server: the job list, the job page's frame (its contents are drawn by
 * static/job.js from the event stream) and error pages. Every value from a job goes through `escapeHtml`.
 */
import type { JobRecord } from '../state/stateStore.ts';

export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

function page(title: string, body: string, bodyAttrs = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)} · Phalanx</title>
<link rel="stylesheet" href="/static/vendor/uPlot.min.css">
<link rel="stylesheet" href="/static/dashboard.css">
</head>
<body${bodyAttrs}>
${body}
</body>
</html>
`;
}

function totalRounds(job: JobRecord): number {
  try {
    return (JSON.parse(job.spec) as { rounds?: number }).rounds ?? 0;
  } catch {
    return 0;
  }
}

export function jobListPage(jobs: JobRecord[]): string {
  const rows = [...jobs]
    .sort((a, b) => b.createdAt - a.createdAt)
    .map((j) => {
      const href = `/jobs/${encodeURIComponent(j.id)}`;
      return (
        `<tr data-job="${escapeHtml(j.id)}"><td><a href="${escapeHtml(href)}">${escapeHtml(j.id)}</a></td>` +
        `<td><span class="pill" data-state="${escapeHtml(j.state)}">${escapeHtml(j.state)}</span></td>` +
        `<td>${j.round}/${totalRounds(j)}</td><td>${new Date(j.createdAt).toISOString()}</td>` +
        `<td>${escapeHtml(j.error ?? '')}</td></tr>`
      );
    })
    .join('\n');
  return page(
    'Jobs',
    `<header><h1>Phalanx jobs</h1><span class="legend">as of ${new Date().toISOString()} (reload to refresh)</span></header>
<table id="jobs">
<thead><tr><th>job</th><th>state</th><th>rounds</th><th>created</th><th>error</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="5">no jobs this credential may see</td></tr>'}
</tbody>
</table>`,
  );
}

export function jobPage(job: JobRecord): string {
  return page(
    job.id,
    `<header>
<a href="/">jobs</a>
<h1>${escapeHtml(job.id)}</h1>
<span id="state" class="pill" data-state="${escapeHtml(job.state)}">${escapeHtml(job.state)}</span>
<span id="progress"></span>
<span id="connection" class="pill" data-state="connecting">connecting…</span>
</header>
<ul id="alerts" aria-live="polite"></ul>
<section class="grid">
<figure id="loss-chart"><figcaption>Loss</figcaption><div class="plot"></div></figure>
<figure id="accuracy-chart"><figcaption>Evaluation accuracy</figcaption><div class="plot"></div></figure>
</section>
<h2>Trust per worker and round</h2>
<div id="heat-trust" class="heatmap"></div>
<h2>Weight per worker and round</h2>
<div id="heat-weight" class="heatmap"></div>
<p class="legend">Darker = higher (weight relative to the largest shown). Red outline and stroke: flagged (excluded,
or the rule gave a reason); grey: no usable gradient (late, rejected, dropped). Hover a cell for the reason.
The last 200 rounds are shown.</p>
<ul id="flag-summary"></ul>
<section class="grid">
<figure id="norm-chart"><figcaption>Gradient norm per worker</figcaption><div class="plot"></div></figure>
<figure id="cosine-chart"><figcaption>Cosine to the update per worker</figcaption><div class="plot"></div></figure>
</section>
<section id="timings" hidden>
<h2>Round time by phase</h2>
<figure id="phase-chart"><figcaption>milliseconds per phase</figcaption><div class="plot"></div></figure>
</section>
<section id="compression" hidden>
<h2>Compression</h2>
<p id="compression-summary"></p>
<table><thead><tr><th>layer</th><th>setting</th><th>kB</th><th></th></tr></thead><tbody id="compression-layers"></tbody></table>
</section>
<script src="/static/vendor/uPlot.iife.min.js"></script>
<script type="module" src="/static/job.js"></script>`,
    ` data-job="${escapeHtml(job.id)}"`,
  );
}

export function errorPage(status: number, message: string, hint = ''): string {
  return page(
    `${status}`,
    `<header><h1>${status}</h1></header><p>${escapeHtml(message)}</p>${hint ? `<p>${escapeHtml(hint)}</p>` : ''}`,
  );
}
