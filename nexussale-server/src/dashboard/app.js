// The NexusSale console: hand-written, no build step, no dependency. The server compiles this
// file into its binary (nexussale-server/src/dashboard/); edit it and rebuild.
//
// Data: GET /v1/sales (the list), GET /v1/sales/{sku}/events (live stock, one EventSource a
// sale), GET /metrics (traffic, parsed here), GET /ready (backends); admin calls (reconcile,
// end, create, report) carry the token the user typed, kept in this tab's sessionStorage and
// sent as a bearer header, never in a URL.
'use strict';

const TOKEN_KEY = 'nexussale-admin-token';
const MAX_FEEDS = 50;
const HISTORY = 600;
const WINDOW_MS = 5000;
const OUTCOMES = ['accepted', 'sold_out', 'limit_exceeded', 'not_active', 'not_admitted', 'rate_limited', 'unavailable'];

const $ = (id) => document.getElementById(id);
const adminRequired = document.querySelector('meta[name="nexussale-admin"]').content === 'required';
let token = sessionStorage.getItem(TOKEN_KEY);
let selected = null;
const sales = new Map(); // sku -> {view, feed, history: [{t, available, reserved, sold}], row}
const samples = []; // [{t, metrics}] for rates over WINDOW_MS

// ---- the API -------------------------------------------------------------------------------

async function api(method, path, body) {
  const headers = {};
  const sent = token;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (sent) headers.authorization = `Bearer ${sent}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = response.headers.get('content-type') || '';
  const data = type.startsWith('application/json') ? await response.json() : await response.text();
  // A refusal of a token already replaced (its answer was in flight when another was typed)
  // asks nothing: it would reopen the dialog over the right one.
  if (response.status === 401 && sent === token) askToken(Boolean(sent));
  return { status: response.status, ok: response.ok, data };
}

const salePath = (sku, tail = '') => `/v1/sales/${encodeURIComponent(sku)}${tail}`;

function explain(answer) {
  if (answer.ok) return 'done';
  const data = answer.data || {};
  return `${answer.status} ${data.error || ''}: ${data.message || ''}`.trim();
}

// ---- the token ------------------------------------------------------------------------------

function askToken(refused) {
  $('token-error').hidden = !refused;
  // Opened empty; once open, what the user is typing stays (a poll's 401 comes every few seconds).
  if (!$('token-dialog').open) {
    $('token-input').value = '';
    $('token-dialog').showModal();
  }
}

$('token-form').addEventListener('submit', async () => {
  const submitted = $('token-input').value.trim();
  token = submitted;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('forget-token').hidden = false;
  // Checked on an admin read when there is a sale to read (`api` asks again on a 401).
  const first = sales.keys().next().value;
  if (first !== undefined) {
    const answer = await api('GET', salePath(first, '/report'));
    if (answer.status === 403 && token === submitted) askToken(true);
  }
  refreshBooks();
});

$('forget-token').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  $('forget-token').hidden = true;
  if (adminRequired) askToken(false);
});

// ---- sales ----------------------------------------------------------------------------------

async function loadSales() {
  const answer = await api('GET', '/v1/sales?limit=1000');
  if (!answer.ok) return;
  const seen = new Set();
  for (const view of answer.data.sales) {
    seen.add(view.sku);
    let sale = sales.get(view.sku);
    if (!sale) {
      sale = { view, history: [], feed: null, row: newRow(view.sku) };
      sales.set(view.sku, sale);
      if (sales.size <= MAX_FEEDS) listen(sale);
    }
    if (!sale.feed) update(sale, view);
  }
  for (const [sku, sale] of sales) {
    if (!seen.has(sku)) {
      if (sale.feed) sale.feed.close();
      sale.row.remove();
      sales.delete(sku);
    }
  }
  $('no-sales').hidden = sales.size > 0;
  if (selected === null && sales.size > 0) select(sales.keys().next().value);
}

function newRow(sku) {
  const row = document.createElement('tr');
  row.dataset.sku = sku;
  for (const name of ['sku', 'state', 'stock', 'available', 'reserved', 'sold', 'books', 'waiting']) {
    const cell = document.createElement('td');
    cell.dataset.field = name;
    if (['stock', 'available', 'reserved', 'sold'].includes(name)) cell.className = 'n';
    if (name === 'waiting') cell.textContent = '–';
    row.append(cell);
  }
  const view = document.createElement('td');
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = 'view';
  button.addEventListener('click', () => select(sku));
  view.append(button);
  row.append(view);
  row.querySelector('[data-field="sku"]').textContent = sku;
  $('sales').tBodies[0].append(row);
  return row;
}

function listen(sale) {
  const feed = new EventSource(salePath(sale.view.sku, '/events'));
  feed.addEventListener('stock', (event) => update(sale, JSON.parse(event.data)));
  sale.feed = feed;
}

function balanced(view) {
  return view.available + view.reserved + view.sold === view.stock;
}

function update(sale, view) {
  sale.view = view;
  sale.history.push({ t: Date.now(), available: view.available, reserved: view.reserved, sold: view.sold });
  if (sale.history.length > HISTORY) sale.history.shift();
  const cells = (name) => sale.row.querySelector(`[data-field="${name}"]`);
  for (const name of ['state', 'stock', 'available', 'reserved', 'sold']) cells(name).textContent = view[name];
  const books = cells('books');
  const difference = view.available + view.reserved + view.sold - view.stock;
  books.textContent = difference === 0 ? 'balanced' : `off by ${difference}`;
  books.className = difference === 0 ? 'good' : 'bad';
  if (selected === view.sku) showSale(sale);
}

function select(sku) {
  selected = sku;
  for (const row of $('sales').tBodies[0].rows) row.classList.toggle('selected', row.dataset.sku === sku);
  $('sale-panel').hidden = false;
  $('action-result').textContent = '';
  $('books-repository').textContent = '';
  showSale(sales.get(sku));
  refreshBooks();
}

function showSale(sale) {
  const view = sale.view;
  $('sale-sku').textContent = view.sku;
  $('sale-state').textContent = view.state;
  for (const name of ['available', 'reserved', 'sold', 'stock']) $(`sale-${name}`).textContent = view[name];
  const store = $('books-store');
  store.textContent = balanced(view)
    ? `Stock store: available ${view.available} + reserved ${view.reserved} + sold ${view.sold} = stock ${view.stock}.`
    : `Stock store: available + reserved + sold = ${view.available + view.reserved + view.sold}, stock ${view.stock}.`;
  store.className = balanced(view) ? 'good' : 'bad';
  draw(sale);
}

// ---- the burn-down --------------------------------------------------------------------------

function draw(sale) {
  const canvas = $('burndown');
  const scale = window.devicePixelRatio || 1;
  const width = canvas.clientWidth * scale;
  const height = canvas.clientHeight * scale;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, width, height);
  const points = sale.history;
  if (points.length === 0) return;
  const stock = Math.max(sale.view.stock, 1);
  const start = points[0].t;
  const span = Math.max(points[points.length - 1].t - start, 1);
  const styles = getComputedStyle(document.documentElement);
  for (const name of ['available', 'reserved', 'sold']) {
    context.strokeStyle = styles.getPropertyValue(`--${name}`).trim();
    context.lineWidth = 2 * scale;
    context.beginPath();
    points.forEach((point, index) => {
      const x = ((point.t - start) / span) * (width - 8 * scale) + 4 * scale;
      const y = height - 4 * scale - (point[name] / stock) * (height - 8 * scale);
      if (index === 0) context.moveTo(x, y);
      else context.lineTo(x, y);
    });
    context.stroke();
  }
  canvas.dataset.points = String(points.length);
}

// ---- the books and the actions ---------------------------------------------------------------

async function refreshBooks() {
  if (selected === null || (adminRequired && !token)) return;
  const answer = await api('POST', salePath(selected, '/reconcile'), { repair: false });
  showReconcile(answer);
}

function showReconcile(answer) {
  const line = $('books-repository');
  if (!answer.ok) {
    line.textContent = `Reconcile: ${explain(answer)}`;
    line.className = 'bad';
    return;
  }
  const report = answer.data;
  if (report.in_sync) {
    line.textContent = 'Stock store and orders agree (reconcile dry run).';
    line.className = 'good';
  } else {
    line.textContent = `Stock store and orders differ: reserved ${signed(report.reserved_drift)}, sold ${signed(report.sold_drift)} (orders still in the queue show here for a moment).`;
    line.className = 'bad';
  }
}

const signed = (n) => (n > 0 ? `+${n}` : String(n));

$('reconcile').addEventListener('click', async () => {
  const answer = await api('POST', salePath(selected, '/reconcile'), { repair: false });
  showReconcile(answer);
  $('action-result').textContent = `reconcile: ${explain(answer)}`;
});

$('repair').addEventListener('click', async () => {
  if (!window.confirm(`Rebuild the stock of ${selected} from its orders? Do it once purchases have stopped.`)) return;
  const answer = await api('POST', salePath(selected, '/reconcile'), { repair: true });
  showReconcile(answer);
  $('action-result').textContent = `repair: ${answer.ok ? (answer.data.repaired ? 'repaired' : 'nothing to repair') : explain(answer)}`;
});

$('end-sale').addEventListener('click', async () => {
  if (!window.confirm(`End the sale ${selected} now? Purchases are refused from this instant.`)) return;
  const answer = await api('POST', salePath(selected, '/end'));
  if (answer.ok) update(sales.get(selected), answer.data);
  $('action-result').textContent = `end: ${answer.ok ? answer.data.state : explain(answer)}`;
});

$('create-sale').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = {
    sku: form.get('sku'),
    stock: Number(form.get('stock')),
    per_user_limit: Number(form.get('per_user_limit') || 1),
  };
  const answer = await api('POST', '/v1/sales', body);
  $('create-result').textContent = answer.ok ? `created ${body.sku}` : explain(answer);
  if (answer.ok) {
    event.target.reset();
    await loadSales();
    select(body.sku);
  }
});

// ---- traffic, from /metrics -----------------------------------------------------------------

function parseMetrics(text) {
  const metrics = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match) metrics.set(match[1] + (match[2] || ''), Number(match[3]));
  }
  return metrics;
}

const value = (metrics, key) => metrics.get(key) || 0;

function delta(now, before, key) {
  return value(now, key) - (before ? value(before, key) : 0);
}

// The `q` quantile of a histogram from its buckets' counts (those of the window when it had
// observations, else since the start).
function quantile(now, before, name, q) {
  const buckets = [];
  for (const [key] of now) {
    const match = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\}$`).exec(key);
    if (match) buckets.push({ le: Number(match[1]), key });
  }
  buckets.sort((a, b) => a.le - b.le);
  let counts = buckets.map((bucket) => delta(now, before, bucket.key));
  if (counts.length === 0) return null;
  if (counts[counts.length - 1] <= 0) counts = buckets.map((bucket) => value(now, bucket.key));
  const total = counts[counts.length - 1];
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < buckets.length; i += 1) {
    if (counts[i] >= rank) return Number.isFinite(buckets[i].le) ? buckets[i].le : buckets[i - 1]?.le ?? null;
  }
  return null;
}

function seconds(value) {
  if (value === null) return '–';
  return value < 1 ? `≤ ${(value * 1000).toPrecision(3)} ms` : `≤ ${value.toPrecision(3)} s`;
}

async function loadMetrics() {
  const response = await fetch('/metrics');
  if (!response.ok) return;
  const now = { t: Date.now(), metrics: parseMetrics(await response.text()) };
  samples.push(now);
  while (samples.length > 1 && now.t - samples[0].t > WINDOW_MS) samples.shift();
  const before = samples.length > 1 ? samples[0] : null;
  const elapsed = before ? (now.t - before.t) / 1000 : 0;
  const body = $('outcomes').tBodies[0];
  body.replaceChildren();
  for (const outcome of OUTCOMES) {
    const key = `nexussale_purchases_total{outcome="${outcome}"}`;
    const row = body.insertRow();
    row.dataset.outcome = outcome;
    row.insertCell().textContent = outcome;
    const rate = row.insertCell();
    rate.className = 'n';
    rate.textContent = elapsed > 0 ? (delta(now.metrics, before.metrics, key) / elapsed).toFixed(1) : '–';
    const total = row.insertCell();
    total.className = 'n';
    total.textContent = value(now.metrics, key);
  }
  const previous = before ? before.metrics : null;
  $('p50').textContent = seconds(quantile(now.metrics, previous, 'nexussale_purchase_duration_seconds', 0.5));
  $('p99').textContent = seconds(quantile(now.metrics, previous, 'nexussale_purchase_duration_seconds', 0.99));
  $('lag').textContent = seconds(quantile(now.metrics, previous, 'nexussale_worker_lag_seconds', 0.99));
  const accepted = value(now.metrics, 'nexussale_purchases_total{outcome="accepted"}');
  const persisted = value(now.metrics, 'nexussale_orders_persisted_total');
  $('backlog').textContent = Math.max(accepted - persisted, 0);
  $('persisted').textContent = persisted;
  const dead = value(now.metrics, 'nexussale_dead_letters_total');
  $('dead-letters').textContent = dead;
  $('dead-letters').className = `figure ${dead > 0 ? 'bad' : ''}`;
  $('listeners').textContent = value(now.metrics, 'nexussale_sse_listeners');
  showWaitingRooms(now.metrics);
}

// The waiting room of each sale that has one, as the sale view counts it (from the store: the
// line every server shares), with this server's estimate of the wait from /metrics.
function showWaitingRooms(metrics) {
  for (const [sku, sale] of sales) {
    const room = sale.view.waiting_room;
    if (!room) continue;
    const label = `{sku="${sku.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"}`;
    const wait = value(metrics, `nexussale_waiting_room_estimated_wait_seconds${label}`);
    const cell = sale.row.querySelector('[data-field="waiting"]');
    cell.textContent = room.closed
      ? `closed: sold out (${room.admitted} admitted)`
      : `${room.waiting} waiting, ${room.passes_outstanding} passes out${wait > 0 ? `, ~${wait} s` : ''}`;
  }
}

async function loadReadiness() {
  const answer = await api('GET', '/ready');
  const backends = $('backends');
  backends.replaceChildren();
  const entries = Object.entries((answer.data && answer.data.backends) || {});
  if (entries.length === 0) {
    const span = document.createElement('span');
    span.className = 'ok';
    span.textContent = 'embedded backends';
    backends.append(span);
  }
  for (const [name, state] of entries) {
    const span = document.createElement('span');
    span.className = state === 'ok' ? 'ok' : 'down';
    span.textContent = `${name}: ${state}`;
    span.dataset.backend = name;
    backends.append(span);
  }
}

// ---- start ----------------------------------------------------------------------------------

function every(ms, task) {
  const run = () => task().catch((err) => console.warn('console refresh failed', err));
  run();
  setInterval(run, ms);
}

if (token) $('forget-token').hidden = false;
if (adminRequired && !token) askToken(false);
every(5000, loadSales);
every(2500, loadMetrics);
every(5000, loadReadiness);
every(10000, async () => refreshBooks());
window.addEventListener('resize', () => selected !== null && draw(sales.get(selected)));
