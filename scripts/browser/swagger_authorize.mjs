// Swagger UI's Authorize button with a pasted buyer token: headless Chromium (playwright-core,
// Debian's /usr/bin/chromium) against a running server with buyer authentication on. Without the
// token "Try it out" on `GET /v1/orders` answers 401; with it pasted into `buyer_token`, 200.
//
//   NEXUSSALE_NODE_MODULES=DIR node scripts/browser/swagger_authorize.mjs http://127.0.0.1:PORT JWT_SECRET
// (scripts/browser.sh installs playwright-core into DIR and runs this.)
import { createRequire } from 'node:module';
import { createHmac } from 'node:crypto';
import { join, resolve } from 'node:path';

const { chromium } = createRequire(join(resolve(process.env.NEXUSSALE_NODE_MODULES ?? '.'), 'x.js'))('playwright-core');

const [base, secret] = process.argv.slice(2);
if (!base || !secret) {
  console.error('usage: swagger_authorize.mjs BASE_URL JWT_SECRET');
  process.exit(2);
}

const b64 = (value) => Buffer.from(value).toString('base64url');
const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
const claims = b64(JSON.stringify({ sub: 'ann', exp: Math.floor(Date.now() / 1000) + 600 }));
const signature = createHmac('sha256', secret).update(`${head}.${claims}`).digest('base64url');
const token = `${head}.${claims}.${signature}`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  // A fresh profile is Playwright's own; the rest keeps Chromium off the (closed) network.
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});
let failed = false;
try {
  const page = await browser.newPage();
  // Every request the page makes must stay on the server (the UI is compiled into the binary).
  const foreign = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(base) && !request.url().startsWith('data:')) foreign.push(request.url());
  });
  await page.goto(`${base}/api-docs/`);
  const operation = page.locator('#operations-orders-list_orders');
  await operation.waitFor();

  const tryIt = async () => {
    await operation.locator('.opblock-summary').click();
    await operation.getByRole('button', { name: 'Try it out' }).click();
    const answered = page.waitForResponse((response) => response.url().startsWith(`${base}/v1/orders`));
    await operation.getByRole('button', { name: 'Execute' }).click();
    const response = await answered;
    const sent = await response.request().allHeaders();
    const status = response.status();
    // Fold it again for the next round.
    await operation.getByRole('button', { name: 'Cancel' }).click();
    await operation.locator('.opblock-summary').click();
    return { status, authorization: sent.authorization };
  };

  const before = await tryIt();
  if (before.status !== 401 || before.authorization) {
    throw new Error(`without a token: ${JSON.stringify(before)}, expected 401 and no Authorization`);
  }

  await page.locator('.auth-wrapper .authorize').click();
  const scheme = page.locator('form').filter({ hasText: 'buyer_token (http, Bearer)' });
  await scheme.locator('input').fill(token);
  await scheme.locator('button.authorize').click();
  await page.locator('.dialog-ux .btn-done').first().click();

  const after = await tryIt();
  if (after.status !== 200 || after.authorization !== `Bearer ${token}`) {
    throw new Error(`with the pasted token: status ${after.status}, sent ${after.authorization}`);
  }
  if (foreign.length) throw new Error(`the page fetched from elsewhere: ${foreign.join(', ')}`);
  console.log('ok: Swagger UI sends the pasted buyer token (401 without it, 200 with it)');
} catch (err) {
  failed = true;
  console.error(`FAILED: ${err.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
