// The console in a real browser (Debian's chromium driven by playwright-core): it loads without
// console errors, asks for the token (and refuses a wrong one), shows a sale created through the
// API, its burn-down moves during a burst this script runs, its numbers equal the API's, and
// reconcile, repair and end work from the page, and a waiting room's line shows. Screenshots (for docs/img/) go to SHOTS_DIR.
//
//   NEXUSSALE_NODE_MODULES=DIR node scripts/browser/console.mjs http://127.0.0.1:PORT ADMIN_TOKEN SHOTS_DIR
// (scripts/browser.sh installs playwright-core into DIR and runs this against a server with
// the admin token and no buyer authentication.)
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

const { chromium } = createRequire(join(resolve(process.env.NEXUSSALE_NODE_MODULES ?? '.'), 'x.js'))('playwright-core');

const [base, token, shots] = process.argv.slice(2);
if (!base || !token || !shots) {
  console.error('usage: console.mjs BASE_URL ADMIN_TOKEN SHOTS_DIR');
  process.exit(2);
}
const sku = 'console-drop';
const stock = 500;
const burst = 300;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function api(method, path, body, bearer = token) {
  const headers = { 'content-type': 'application/json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(base + path, { method, headers, body: body && JSON.stringify(body) });
  return { status: response.status, data: await response.json() };
}

async function eventually(what, probe, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last === true) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} (last: ${JSON.stringify(last)})`);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on('console', (message) => {
    // The wrong token's refusal is expected; anything else logged as an error is not.
    if (message.type() === 'error' && !/status of 401/.test(message.text())) errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('response', (response) => {
    if (response.status() >= 400 && response.status() !== 401) errors.push(`${response.status()} ${response.url()}`);
  });

  await page.goto(`${base}/dashboard`);
  await page.locator('#token-dialog').waitFor({ state: 'visible' });
  await page.screenshot({ path: `${shots}/console-token.png` });
  // Nothing admin was asked before the token: no 401 yet.
  // Answers to a wrong token come 1.5 s late here, as on a slow link: a refusal still in flight
  // while the right token is typed must not erase it, nor one arriving after it is submitted
  // reopen the dialog (both did: CI saw the dialog never close).
  const wrong = 'not-the-token';
  const late = (request) => request.headers().authorization === `Bearer ${wrong}`;
  await page.route('**/*', async (route) => {
    if (late(route.request())) await new Promise((done) => setTimeout(done, 1500));
    await route.continue();
  });
  const refusal = () => page.waitForResponse((response) => late(response.request()) && response.status() === 401);
  await page.fill('#token-input', wrong);
  await page.click('#token-submit');
  await page.locator('#token-error').waitFor({ state: 'visible' });
  await page.fill('#token-input', token);
  await refusal();
  await page.waitForTimeout(300);
  check((await page.inputValue('#token-input')) === token, 'a late refusal erased the token being typed');
  // Again, the right token submitted while the wrong one's refusals are on their way.
  await page.fill('#token-input', wrong);
  await page.click('#token-submit');
  await page.locator('#token-error').waitFor({ state: 'visible' });
  const stale = refusal();
  await page.fill('#token-input', token);
  await page.click('#token-submit');
  await page.locator('#token-dialog').waitFor({ state: 'hidden' });
  await stale;
  await page.waitForTimeout(300);
  check(!(await page.locator('#token-dialog').isVisible()), 'a late refusal of the wrong token reopened the dialog');
  // A handler may still be holding a wrong token's request back: wait for it, or its
  // `route.continue()` finds the route gone ("Route is already handled!", seen in CI).
  await page.unrouteAll({ behavior: 'wait' });
  const stored = await page.evaluate(() => sessionStorage.getItem('nexussale-admin-token'));
  check(stored === token, 'the token is not in the session storage');
  check(!page.url().includes(token), 'the token is in the URL');

  // A sale created through the API shows up.
  const created = await api('POST', '/v1/sales', { sku, stock, per_user_limit: 1 });
  check(created.status === 201, `create: ${JSON.stringify(created)}`);
  const row = page.locator(`tr[data-sku="${sku}"]`);
  await row.waitFor({ state: 'visible', timeout: 15000 });
  await row.locator('button').click();
  await eventually('the sale panel shows the sale', async () =>
    (await page.textContent('#sale-sku')) === sku && (await page.textContent('#sale-available')) === String(stock));

  // A burst: the burn-down moves while it runs.
  const pointsBefore = Number(await page.getAttribute('#burndown', 'data-points'));
  let next = 0;
  const buyer = async () => {
    while (next < burst) {
      const n = next++;
      const answer = await api('POST', `/v1/sales/${sku}/purchase`, { user: `buyer-${n}` }, null);
      check(answer.status === 202, `purchase ${n}: ${JSON.stringify(answer)}`);
      // Paced to last ~2 s: the page's stream coalesces to 2 updates a second, and a burst over
      // in a blink would leave a single new point however well the page follows.
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
  };
  await Promise.all(Array.from({ length: 10 }, buyer));
  const view = (await api('GET', `/v1/sales/${sku}`)).data;
  check(view.available === stock - burst, `the API's view after the burst: ${JSON.stringify(view)}`);
  await eventually('the page shows the stock the API shows', async () => {
    const shown = {};
    for (const name of ['available', 'reserved', 'sold', 'stock']) shown[name] = Number(await page.textContent(`#sale-${name}`));
    const rowAvailable = Number(await row.locator('[data-field="available"]').textContent());
    return (shown.available === view.available && shown.reserved === view.reserved && shown.sold === view.sold &&
      shown.stock === view.stock && rowAvailable === view.available) || { shown, rowAvailable };
  });
  const pointsAfter = Number(await page.getAttribute('#burndown', 'data-points'));
  check(pointsAfter >= pointsBefore + 2, `the burn-down did not move: ${pointsBefore} → ${pointsAfter} points`);
  await eventually('the traffic counts the burst', async () =>
    Number(await page.textContent('tr[data-outcome="accepted"] td:nth-child(3)')) === burst ||
    (await page.textContent('tr[data-outcome="accepted"]')));
  await page.locator('#books-store.good').waitFor();

  // Reconcile from the page: the books agree once the worker persisted the burst.
  await eventually('reconcile shows the books agree', async () => {
    await page.click('#reconcile');
    await page.waitForTimeout(300);
    return (await page.textContent('#books-repository')).includes('agree') || (await page.textContent('#books-repository'));
  });
  await page.screenshot({ path: `${shots}/console.png`, fullPage: true });

  // Repair asks first; declined, nothing happens; accepted, it runs.
  page.once('dialog', (dialog) => dialog.dismiss());
  await page.click('#repair');
  check((await page.textContent('#action-result')).startsWith('reconcile'), 'a declined repair ran');
  page.once('dialog', (dialog) => dialog.accept());
  await page.click('#repair');
  await eventually('the repair answered', async () =>
    (await page.textContent('#action-result')).startsWith('repair: nothing to repair') || (await page.textContent('#action-result')));

  // End the sale from the page: it says so, and purchases are refused.
  page.once('dialog', (dialog) => dialog.accept());
  await page.click('#end-sale');
  await eventually('the page shows the sale ended', async () => (await page.textContent('#sale-state')) === 'ended');
  const ended = await api('GET', `/v1/sales/${sku}`);
  check(ended.data.state === 'ended', `the API's state: ${JSON.stringify(ended.data)}`);
  const refused = await api('POST', `/v1/sales/${sku}/purchase`, { user: 'late' }, null);
  check(refused.status === 409 && refused.data.error === 'sale_not_active', `a purchase after the end: ${JSON.stringify(refused)}`);

  // A sale with a waiting room: the page shows its line as the server admits from it (one
  // unit, three buyers: one pass out, two waiting).
  const room = await api('POST', '/v1/sales', { sku: 'console-queue', stock: 1, waiting_room: {} });
  check(room.status === 201, `create a sale with a waiting room: ${JSON.stringify(room)}`);
  for (const user of ['q1', 'q2', 'q3']) {
    const joined = await api('POST', '/v1/sales/console-queue/queue', { user }, null);
    check(joined.status === 200, `join ${user}: ${JSON.stringify(joined)}`);
  }
  await eventually('the page shows the waiting room', async () =>
    (await page.textContent('tr[data-sku="console-queue"] td[data-field="waiting"]'))?.startsWith('2 waiting, 1 passes out') ||
    (await page.textContent('tr[data-sku="console-queue"]')));

  check(errors.length === 0, `console errors: ${errors.join(' | ')}`);
  console.log('console: ok');
} finally {
  await browser.close();
}
