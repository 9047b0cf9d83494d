// The billing pages in real headless Chromium against the real binary and a local EPay
// gateway: a user tops up (the browser goes to the gateway's cashier, which checks Skein's
// MD5 signature, sends a signed notification back and returns the payer to the top-up page),
// subscribes to a plan the same way, reads the month's bill, downloads it as PDF and mails
// it; an admin refunds the plan order and sees its states. Another user buys a plan with a
// coupon (the card shows the discounted price, the cashier takes it), upgrades to a dearer plan
// (the card shows the prorated price and the credit) and schedules a downgrade. Screenshots of
// each page at 1440 px
// light English and 390 px dark Chinese go to target/screenshots/billing-*.png.
//
// Environment: SKEIN_BIN (default: CARGO_TARGET_DIR or target/debug/skein, built beforehand),
// CHROMIUM (default /usr/bin/chromium).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const repo = resolve(new URL('../..', import.meta.url).pathname);
const skein = process.env.SKEIN_BIN ?? join(resolve(repo, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug', 'skein');
const shots = join(repo, 'target', 'screenshots');
const PASSWORD = 'correct horse battery';
const EPAY_PID = '1001';
const EPAY_KEY = 'epay-e2e-merchant-key';
let failures = 0;
const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM')));

const log = (...a) => console.log('[billing]', ...a);
function check(ok, what) {
  if (!ok) {
    failures += 1;
    log(`FAIL ${what}`);
  }
}

const freePort = () =>
  new Promise((res) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });

async function waitReady(base) {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('skein did not become ready');
}

async function call(base, path, { token, method = 'GET', body } = {}) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: r.status, json };
}

/** A signed-in browser state (the HttpOnly refresh cookie and the app's session marker). */
async function loginState(base, login, extra = []) {
  const r = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-skein-csrf': '1' },
    body: JSON.stringify({ login, password: PASSWORD }),
  });
  const value = r.headers.getSetCookie().find((c) => c.startsWith('skein_refresh=')).split(';')[0].slice('skein_refresh='.length);
  return {
    cookies: [{ name: 'skein_refresh', value, domain: '127.0.0.1', path: '/api/v1/auth', expires: -1, httpOnly: true, secure: false, sameSite: 'Strict' }],
    origins: [{ origin: base, localStorage: [{ name: 'skein.session', value: 'e2e' }, ...extra] }],
  };
}

/** EPay's signature: MD5 of the sorted non-empty pairs (without sign, sign_type), then the key. */
function epaySign(params) {
  const text = Object.keys(params)
    .filter((k) => params[k] !== '' && k !== 'sign' && k !== 'sign_type')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  return createHash('md5').update(text + EPAY_KEY).digest('hex');
}

/**
 * A local EPay gateway: `submit.php` checks Skein's signature and shows a cashier page whose
 * button (`/pay`) sends the signed notification to Skein and returns the payer; `api.php`
 * answers the reconciliation's query (paid once paid).
 */
function startGateway(port) {
  const paid = new Map();
  const server = createHttpServer(async (req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    const params = Object.fromEntries(url.searchParams);
    if (url.pathname === '/submit.php') {
      const good = params.pid === EPAY_PID && params.sign === epaySign(params) && params.sign_type === 'MD5';
      check(good, `Skein's pay request is signed: ${req.url}`);
      if (!good) {
        res.writeHead(400).end('bad signature');
        return;
      }
      const next = new URLSearchParams(params).toString();
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><meta name="viewport" content="width=device-width"><title>EPay cashier</title>
<body style="font-family:sans-serif;padding:24px"><h1>EPay test cashier</h1>
<p data-testid="epay-order">${params.name} — ¥${params.money} (${params.type})</p>
<form method="post" action="/pay?${next}"><button type="submit" style="font-size:18px;padding:10px 24px">Pay ¥${params.money}</button></form></body>`);
      return;
    }
    if (url.pathname === '/pay' && req.method === 'POST') {
      const notice = { pid: EPAY_PID, trade_no: `T${params.out_trade_no}`, out_trade_no: params.out_trade_no, type: params.type, name: params.name, money: params.money, trade_status: 'TRADE_SUCCESS' };
      notice.sign = epaySign(notice);
      notice.sign_type = 'MD5';
      const answer = await fetch(`${params.notify_url}?${new URLSearchParams(notice)}`).then((r) => r.text());
      check(answer === 'success', `Skein acknowledges the notification: ${answer}`);
      paid.set(params.out_trade_no, params.money);
      res.writeHead(302, { location: params.return_url }).end();
      return;
    }
    if (url.pathname === '/api.php') {
      const money = paid.get(params.out_trade_no);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(money ? { code: 1, status: 1, out_trade_no: params.out_trade_no, trade_no: `T${params.out_trade_no}`, money } : { code: 1, status: 0 }));
      return;
    }
    res.writeHead(404).end();
  });
  server.listen(port, '127.0.0.1');
  return server;
}

const looks = [
  { name: 'desktop-light-en', viewport: { width: 1440, height: 900 }, lang: 'en', theme: 'light', locale: 'en-US' },
  { name: 'phone-dark-zh', viewport: { width: 390, height: 844 }, lang: 'zh-CN', theme: 'dark', locale: 'zh-CN', isMobile: true },
];

async function main() {
  check(existsSync(skein), `${skein} exists (cargo build -p skein)`);
  mkdirSync(shots, { recursive: true });
  const data = mkdtempSync(join(tmpdir(), 'skein-billing-'));
  const port = await freePort();
  const gatewayPort = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const gateway = startGateway(gatewayPort);
  const config = join(data, 'skein.toml');
  writeFileSync(
    config,
    `[billing.payment]
public_url = "${base}"
currency = "CNY"
amounts = [1000, 5000, 10000]
[billing.payment.epay]
url = "http://127.0.0.1:${gatewayPort}/"
pid = "${EPAY_PID}"
key = "${EPAY_KEY}"
methods = ["alipay", "wxpay"]
`,
  );
  const env = { ...process.env, SKEIN_DATA_DIR: data, SKEIN_CONFIG: config, RUST_LOG: 'warn', SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE: '10000' };
  const made = spawnSync(skein, ['admin', 'create-user', '--username', 'root', '--role', 'root', '--password-stdin'], { env, input: `${PASSWORD}\n`, encoding: 'utf8' });
  check(made.status === 0, `create-user: ${made.stderr}`);
  children.push(spawn(skein, ['serve', '--listen', `127.0.0.1:${port}`], { env, stdio: process.env.E2E_VERBOSE ? 'inherit' : 'ignore' }));
  await waitReady(base);
  const root = (await call(base, '/api/v1/auth/login', { method: 'POST', body: { login: 'root', password: PASSWORD } })).json.access_token;
  const ada = await call(base, '/api/v1/auth/register', { method: 'POST', body: { username: 'ada', password: PASSWORD } });
  check(ada.status === 201, `register ada: ${ada.status}`);
  const adaToken = ada.json.access_token;
  const plan = await call(base, '/api/v1/admin/billing/plans', {
    token: root,
    method: 'POST',
    body: { name_en: 'Pro monthly', name_zh: '专业版（月付）', price: 2900, period: 'month', quota_per_period: 1_000_000, models: ['gpt-4o', 'deepseek-chat'] },
  });
  check(plan.status === 201, `plan: ${JSON.stringify(plan.json)}`);
  await call(base, '/api/v1/admin/billing/plans', { token: root, method: 'POST', body: { name_en: 'Team yearly', name_zh: '团队版（年付）', price: 99_000, period: 'year', quota_per_period: 40_000_000 } });
  const coupon = await call(base, '/api/v1/admin/billing/coupons', { token: root, method: 'POST', body: { code: 'PLAN20', name: 'Plans 20%', percent_off: 20, scope: 'plan', plan_ids: [plan.json.id] } });
  check(coupon.status === 201 && coupon.json.scope === 'plan', `plan coupon: ${JSON.stringify(coupon.json)}`);
  const bea = await call(base, '/api/v1/auth/register', { method: 'POST', body: { username: 'bea', password: PASSWORD } });
  check(bea.status === 201, `register bea: ${bea.status}`);
  const beaToken = bea.json.access_token;

  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });

  // Top-up, the whole way: amount and method, the gateway's cashier, back with the order paid.
  {
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US', storageState: await loginState(base, 'ada', [{ name: 'skein.lang', value: 'en' }]) });
    const page = await ctx.newPage();
    await page.goto(`${base}/billing/topup`);
    await page.getByRole('button', { name: '¥50.00' }).click();
    await page.getByLabel('WeChat Pay').check();
    await page.getByRole('button', { name: 'Pay ¥50.00' }).click();
    await page.getByTestId('epay-order').waitFor();
    check((await page.getByTestId('epay-order').textContent()).includes('50.00 (wxpay)'), 'the cashier shows the amount and method');
    await page.screenshot({ path: join(shots, 'billing-epay-cashier.png') });
    await page.getByRole('button', { name: 'Pay ¥50.00' }).click();
    await page.waitForURL(/\/billing\/topup\?order=/);
    await page.getByTestId('returned-order').getByText(/Paid ¥50.00/).waitFor({ timeout: 15_000 });
    const quota = await call(base, '/api/v1/billing/quota', { token: adaToken });
    check(quota.json.balance > 0, `credited: ${JSON.stringify(quota.json)}`);

    // A plan, bought the same way.
    await page.goto(`${base}/billing/plans`);
    await page.getByTestId('plan-card').first().waitFor();
    await page.getByRole('button', { name: 'Subscribe for ¥29.00' }).click();
    await page.getByTestId('epay-order').waitFor();
    await page.getByRole('button', { name: 'Pay ¥29.00' }).click();
    await page.waitForURL(/\/billing\/topup\?order=/);
    await page.getByTestId('returned-order').getByText(/Paid ¥29.00/).waitFor({ timeout: 15_000 });
    const subs = await call(base, '/api/v1/billing/subscriptions', { token: adaToken });
    check(subs.json.length === 1 && subs.json[0].status === 'active', `subscribed: ${JSON.stringify(subs.json)}`);

    // The bill of the month: the closing balance is the balance; the PDF downloads.
    await page.goto(`${base}/billing/statements`);
    await page.getByTestId('bill-closing').waitFor();
    const downloaded = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download PDF' }).click();
    const file = await (await downloaded).path();
    check(readFileSync(file).subarray(0, 8).toString() === '%PDF-1.4', 'the bill downloads as a PDF');
    await page.getByRole('button', { name: 'Email it to me' }).click();
    await page.getByTestId('bill-mailed').waitFor();
    check((await page.getByTestId('bill-mailed').textContent()).includes('no verified email'), 'without an address it says so');
    await ctx.close();
  }

  // Bea: a plan bought with a coupon, then an upgrade with its proration shown, then a
  // downgrade scheduled.
  {
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US', storageState: await loginState(base, 'bea', [{ name: 'skein.lang', value: 'en' }]) });
    const page = await ctx.newPage();
    await page.goto(`${base}/billing/plans`);
    await page.getByTestId('plan-card').first().waitFor();
    await page.getByLabel(/Coupon/).fill('plan20');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByTestId('plan-discount').waitFor();
    check((await page.getByTestId('plan-discount').textContent()).includes('¥23.20'), 'the card shows the discounted price');
    await page.screenshot({ path: join(shots, 'billing-plan-coupon.png') });
    await page.getByRole('button', { name: 'Subscribe for ¥23.20' }).click();
    await page.getByTestId('epay-order').waitFor();
    check((await page.getByTestId('epay-order').textContent()).includes('23.20'), 'the cashier takes the discounted price');
    await page.getByRole('button', { name: 'Pay ¥23.20' }).click();
    await page.waitForURL(/\/billing\/topup\?order=/);
    await page.getByTestId('returned-order').getByText(/Paid ¥23.20/).waitFor({ timeout: 15_000 });
    const orders = await call(base, '/api/v1/billing/orders', { token: beaToken });
    check(orders.json.items[0].discount_minor === 580 && orders.json.items[0].plan_id === plan.json.id, `the order records the discount: ${JSON.stringify(orders.json.items[0])}`);

    // Upgrade: the Max plan's card offers it at the prorated price, with the credit shown.
    const max = await call(base, '/api/v1/admin/billing/plans', { token: root, method: 'POST', body: { name_en: 'Max monthly', name_zh: '旗舰版（月付）', price: 9900, period: 'month', quota_per_period: 5_000_000 } });
    check(max.status === 201, `max plan: ${JSON.stringify(max.json)}`);
    await page.goto(`${base}/billing/plans`);
    const maxCard = page.getByTestId('plan-card').filter({ hasText: 'Max monthly' });
    await maxCard.getByTestId('plan-proration').waitFor();
    const credit = await maxCard.getByTestId('plan-proration').textContent();
    check(/credit of ¥23\.\d\d/.test(credit), `the credit is what was paid for the unused time: ${credit}`);
    const upgrade = maxCard.getByTestId('plan-upgrade');
    const label = await upgrade.textContent();
    const owed = /¥(\d+\.\d\d)/.exec(label)?.[1];
    check(owed && Number(owed) < 99 && Number(owed) > 75, `the upgrade costs the price less the credit: ${label}`);
    await page.screenshot({ path: join(shots, 'billing-plan-upgrade.png') });
    await upgrade.click();
    await page.getByTestId('epay-order').waitFor();
    await page.getByRole('button', { name: `Pay ¥${owed}` }).click();
    await page.waitForURL(/\/billing\/topup\?order=/);
    await page.getByTestId('returned-order').getByText(new RegExp(`Paid ¥${owed}`)).waitFor({ timeout: 15_000 });
    const subs = await call(base, '/api/v1/billing/subscriptions', { token: beaToken });
    const statuses = subs.json.map((s) => `${s.plan.name_en}:${s.status}`).sort();
    check(JSON.stringify(statuses) === JSON.stringify(['Max monthly:active', 'Pro monthly:upgraded']), `upgraded: ${statuses}`);

    // Downgrade back to Pro: scheduled for the end of the paid month, with a cancel button.
    await page.goto(`${base}/billing/plans`);
    await page.getByTestId('plan-downgrade').first().waitFor();
    await page.getByRole('button', { name: 'Downgrade at period end' }).first().click();
    // The list is a table on wide screens and cards on narrow ones: both are in the page.
    // Waits for the text itself: the row may render before the list is refetched.
    const scheduled = page.getByTestId('scheduled-downgrade').filter({ hasText: 'Switches to Pro monthly' }).first();
    const shown = await scheduled.waitFor({ state: 'attached', timeout: 15_000 }).then(() => true, () => false);
    check(shown, `the scheduled downgrade shows: ${await page.getByTestId('scheduled-downgrade').allTextContents()}`);
    await page.getByRole('button', { name: 'Cancel downgrade' }).click();
    await page.getByTestId('scheduled-downgrade').first().waitFor({ state: 'detached' });
    const change = subs.json.find((s) => s.status === 'active');
    const again = await call(base, `/api/v1/billing/subscriptions/${change.id}/change`, { token: beaToken, method: 'POST', body: { plan_id: plan.json.id } });
    check(again.status === 200 && again.json.kind === 'downgrade', `downgrade scheduled again: ${JSON.stringify(again.json)}`);
    await ctx.close();
  }

  // The admin refunds the plan order in full: it is refunded, and the plan ended.
  const orders = await call(base, '/api/v1/admin/billing/orders?per_page=10', { token: root });
  const planOrder = orders.json.items.find((o) => o.plan_id && o.user_id === ada.json.user.id);
  const refund = await call(base, `/api/v1/admin/billing/orders/${planOrder.id}/refunds`, { token: root, method: 'POST', body: { reason: 'changed their mind', manual: true } });
  check(refund.status === 201 && refund.json.ended_subscription === true, `plan refund: ${JSON.stringify(refund.json)}`);
  const topupOrder = orders.json.items.find((o) => !o.plan_id && o.user_id === ada.json.user.id);
  const part = await call(base, `/api/v1/admin/billing/orders/${topupOrder.id}/refunds`, { token: root, method: 'POST', body: { reason: 'goodwill', manual: true, amount: 1000 } });
  check(part.status === 201, `partial refund: ${JSON.stringify(part.json)}`);

  for (const look of looks) {
    const extra = [{ name: 'skein.lang', value: look.lang }, { name: 'skein.theme', value: look.theme }];
    const shot = async (page, name) => page.screenshot({ path: join(shots, `billing-${name}-${look.name}.png`), fullPage: !look.isMobile });
    const ctx = await browser.newContext({ viewport: look.viewport, locale: look.locale, isMobile: look.isMobile, hasTouch: look.isMobile, storageState: await loginState(base, 'ada', extra) });
    const page = await ctx.newPage();
    await page.goto(`${base}/billing/topup`);
    await page.getByTestId('topup-balance').waitFor();
    await page.waitForLoadState('networkidle');
    await shot(page, 'topup');
    await page.goto(`${base}/billing/plans`);
    await page.getByTestId('plan-card').first().waitFor();
    await page.waitForLoadState('networkidle');
    await shot(page, 'plans');
    await page.goto(`${base}/billing/statements`);
    await page.getByTestId('bill-closing').waitFor();
    await page.waitForLoadState('networkidle');
    await shot(page, 'bills');
    await ctx.close();

    // Bea's plans: the Max plan running, a downgrade scheduled with its cancel button, and the
    // upgrade and downgrade prices on the cards.
    const beaCtx = await browser.newContext({ viewport: look.viewport, locale: look.locale, isMobile: look.isMobile, hasTouch: look.isMobile, storageState: await loginState(base, 'bea', extra) });
    const beaPage = await beaCtx.newPage();
    await beaPage.goto(`${base}/billing/plans`);
    await beaPage.getByTestId('scheduled-downgrade').first().waitFor({ state: 'attached' });
    await beaPage.waitForLoadState('networkidle');
    await shot(beaPage, 'plans-change');
    await beaCtx.close();

    const adminCtx = await browser.newContext({ viewport: look.viewport, locale: look.locale, isMobile: look.isMobile, hasTouch: look.isMobile, storageState: await loginState(base, 'root', extra) });
    const admin = await adminCtx.newPage();
    await admin.goto(`${base}/admin/orders`);
    // The states as badges in the list (the status filter names them too, so look at spans).
    for (const state of look.lang === 'en' ? ['Refunded', 'Partly refunded'] : ['已退款', '部分退款']) {
      const shown = await admin.locator('span', { hasText: new RegExp(`^${state}$`) }).first().waitFor({ state: 'attached', timeout: 10_000 }).then(() => true, () => false);
      check(shown, `${look.name}: the order state ${state} shows`);
    }
    await admin.waitForLoadState('networkidle');
    await shot(admin, 'admin-orders');
    await adminCtx.close();
  }
  await browser.close();
  gateway.close();
  log(failures ? `${failures} check(s) failed` : `all checks passed; screenshots in ${shots}`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
