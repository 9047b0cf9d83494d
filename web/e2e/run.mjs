// End-to-end test of the web app in real headless Chromium (playwright-core, no downloaded
// browser): starts the real `skein` binary and a mock OpenAI upstream, then walks through what
// people do: register, create an API key, set up a channel and a price as admin, chat with
// streaming (stop, edit, regenerate, switch versions, export), and see the charge in Usage.
// Saves screenshots of the main pages (1440 and 390 px, light and dark) to target/screenshots.
//
// Environment: SKEIN_BIN / MOCK_BIN (default: built with cargo into CARGO_TARGET_DIR or
// target/), CHROMIUM (default /usr/bin/chromium), E2E_SCREENSHOTS=0 to skip screenshots.
import { spawnSync } from 'node:child_process';
import { mkdirSync, existsSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createHash } from 'node:crypto';
import { deflateSync, crc32 } from 'node:zlib';
import { join } from 'node:path';
import {
  MODEL,
  PASSWORD,
  binaries as builtBinaries,
  check,
  cleanup,
  freePort,
  launchBrowser,
  loginState as signedIn,
  logger,
  repo,
  shots,
  startMock,
  startSkein,
  stepper,
} from './harness.mjs';

const takeShots = process.env.E2E_SCREENSHOTS !== '0';
const ADMIN_PASSWORD = 'admin horse battery staple';
const TRANSCRIPTION_MODEL = 'whisper-1';
let failures = 0;

const log = logger('e2e');

/** The binaries, built with cargo first unless SKEIN_BIN and MOCK_BIN name them. */
function binaries() {
  if (process.env.SKEIN_BIN && process.env.MOCK_BIN) return builtBinaries();
  log('cargo build -p skein -p skein-testkit --bins');
  const built = spawnSync('cargo', ['build', '--locked', '-p', 'skein', '-p', 'skein-testkit', '--bins'], { cwd: repo, stdio: 'inherit' });
  if (built.status !== 0) throw new Error('cargo build failed');
  return builtBinaries();
}

/**
 * A browser storage state signed in as `login` through its own new session; it also checks
 * that the web login keeps the refresh token out of the body and in a strict HttpOnly cookie.
 */
function loginState(base, login, password, extra = []) {
  return signedIn(base, login, {
    password,
    extra,
    onLogin: async (r) => {
      const body = await r.json();
      check(body.refresh_token === undefined, 'the web login answers no refresh token in its body');
      const setCookie = r.headers.getSetCookie().find((c) => c.startsWith('skein_refresh='));
      check(setCookie && /HttpOnly/.test(setCookie) && /SameSite=Strict/.test(setCookie), `refresh cookie flags: ${setCookie}`);
    },
  });
}

const logStep = stepper(log);
async function step(name, fn) {
  try {
    await logStep(name, fn);
  } catch (e) {
    failures++;
    throw e;
  }
}

const EPAY_KEY = 'e2e-epay-merchant-key';

/** EPay's signature: MD5 of the sorted non-empty fields other than sign/sign_type, then the key. */
function epaySign(params, key) {
  const text = Object.keys(params)
    .filter((k) => params[k] !== '' && k !== 'sign' && k !== 'sign_type')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  return createHash('md5').update(text + key).digest('hex');
}

/**
 * A fake EPay gateway: its submit.php checks Skein's signature, "takes the payment", sends
 * the signed notification to Skein's notify_url the way the gateway does (GET), and sends
 * the payer back to return_url.
 */
function fakeEpay(port) {
  const paid = [];
  const server = createHttpServer(async (req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    if (url.pathname !== '/submit.php') {
      res.writeHead(404).end();
      return;
    }
    const p = Object.fromEntries(url.searchParams);
    if (p.sign !== epaySign(p, EPAY_KEY)) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bad sign');
      return;
    }
    const notify = { pid: p.pid, trade_no: `T${p.out_trade_no}`, out_trade_no: p.out_trade_no, type: p.type, name: p.name, money: p.money, trade_status: 'TRADE_SUCCESS' };
    notify.sign = epaySign(notify, EPAY_KEY);
    notify.sign_type = 'MD5';
    const answer = await fetch(`${p.notify_url}?${new URLSearchParams(notify)}`);
    paid.push({ order: p.out_trade_no, answer: await answer.text() });
    res.writeHead(302, { location: p.return_url }).end();
  });
  server.listen(port, '127.0.0.1');
  return { server, paid };
}

async function main() {
  binaries();
  check(existsSync(join(repo, 'web', 'dist', 'index.html')), 'web/dist is built (npm run build)');

  const mockUrl = await startMock({ pauseMs: 25 });
  const epayPort = await freePort();
  const epay = fakeEpay(epayPort);
  // The admin is made the way an operator does (skein admin create-user).
  const { base, data } = await startSkein({
    name: 'run',
    root: ADMIN_PASSWORD,
    env: (base) => ({
      SKEIN_BILLING__PAYMENT__PUBLIC_URL: base,
      SKEIN_BILLING__PAYMENT__EPAY__URL: `http://127.0.0.1:${epayPort}/`,
      SKEIN_BILLING__PAYMENT__EPAY__PID: '1001',
      SKEIN_BILLING__PAYMENT__EPAY__KEY: EPAY_KEY,
    }),
  });
  log(`skein on ${base}, mock upstream on ${mockUrl}, data in ${data}`);

  const modelsProbe = await fetch(`${base}/api/v1/chat/models`);
  const chatAvailable = modelsProbe.status !== 404;
  if (!chatAvailable) {
    log('');
    log('!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!');
    log('!!! /api/v1/chat/models answers 404: this build has no Chat service.                 !!!');
    log('!!! The chat steps (send, stream, stop, edit, regenerate, switch, export) are SKIPPED. !!!');
    log('!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!');
    log('');
  }

  // The fake media flags give voice input a microphone (a tone) without a permission prompt.
  const browser = await launchBrowser(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream']);
  const desktop = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US', colorScheme: 'light', acceptDownloads: true });
  const page = await desktop.newPage();
  page.setDefaultTimeout(15_000);
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && !/status of (4\d\d)/.test(m.text()) && consoleErrors.push(m.text()));

  try {
    let key = '';
    await step('register a user and land in chat', async () => {
      await page.goto(`${base}/register`);
      await page.getByLabel('Username').fill('ada');
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.waitForURL(/\/chat$/);
      await page.getByTestId('whoami').getByText('ada').waitFor();
    });

    await step('first run: a fresh server asks the first visitor for the setup token it logged', async () => {
      await firstRun(browser, mockUrl);
    });

    await step('sign-in errors are shown in the chosen language, without a request id (not a server failure)', async () => {
      const ctx = await browser.newContext({ locale: 'zh-CN' });
      const p = await ctx.newPage();
      await p.goto(`${base}/login`);
      await p.getByRole('heading', { name: '登录' }).waitFor();
      await p.getByLabel('用户名或邮箱').fill('ada');
      await p.getByLabel('密码', { exact: true }).fill('wrong password!');
      await p.getByRole('button', { name: '登录', exact: true }).click();
      const alert = p.getByRole('alert');
      await alert.waitFor();
      const text = await alert.textContent();
      check(/[\u4e00-\u9fff]/.test(text), `error message in Chinese: ${text}`);
      check(!text.includes('请求 ID'), `no request id on a wrong password: ${text}`);
      await ctx.close();
    });

    await step('create an API key: the secret is shown once', async () => {
      await page.getByRole('link', { name: 'API keys' }).click();
      await page.getByRole('button', { name: '+ New key' }).click();
      await page.getByLabel('Name').fill('laptop');
      await page.getByRole('button', { name: 'Create' }).click();
      key = (await page.getByTestId('new-key').textContent()).trim();
      check(key.startsWith('sk-') && key.length > 20, `a key was shown: ${key.slice(0, 6)}…`);
      await page.getByRole('button', { name: 'I have copied it' }).click();
      await page.getByText('laptop').first().waitFor();
      check(!(await page.content()).includes(key), 'the secret is gone from the page after closing');
    });

    await step('set limits on the key', async () => {
      const row = page.locator('tr', { hasText: 'laptop' });
      await row.getByRole('button', { name: 'Limits' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Requests per minute').fill('60');
      // Not priced yet, so not in the list: typed into the picker's filter and added by name.
      await dialog.getByLabel('Filter models').fill(MODEL);
      await dialog.getByRole('button', { name: `Add “${MODEL}”` }).click();
      await dialog.getByRole('button', { name: 'Save' }).click();
      await dialog.waitFor({ state: 'detached' });
      await row.getByText(`60 rpm · ${MODEL}`).waitFor();
    });

    await step('sign out; sign in as admin', async () => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(/\/login/);
      await page.getByLabel('Username or email').fill('root');
      await page.getByLabel('Password', { exact: true }).fill(ADMIN_PASSWORD);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.waitForURL(/\/chat/);
      await page.getByRole('link', { name: 'Admin' }).click();
      await page.getByRole('heading', { name: 'Admin console' }).waitFor();
    });

    await step('admin adds a channel to the mock upstream and tests it', async () => {
      await page.getByRole('link', { name: 'Channels' }).click();
      await page.getByRole('button', { name: '+ New channel' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Name', { exact: true }).fill('mock');
      await dialog.getByLabel('Base URL').fill(mockUrl);
      await dialog.getByLabel('Upstream keys (one per line)').fill('sk-upstream');
      // whisper-1 is the Chat service's transcription model (voice input).
      await dialog.getByLabel('Models (comma separated)').fill(`${MODEL}, ${TRANSCRIPTION_MODEL}`);
      await dialog.getByRole('button', { name: 'Save' }).click();
      await dialog.waitFor({ state: 'detached' });
      const row = page.locator('tr', { hasText: 'mock' }).first();
      await row.getByText('Enabled', { exact: true }).waitFor();
      await row.getByRole('button', { name: 'Test' }).click();
      await row.getByText(/OK in \d+ ms/).waitFor();
      check(!(await page.content()).includes('sk-upstream'), 'the upstream key is never shown');
    });

    await step('admin sets the price', async () => {
      await page.getByRole('link', { name: 'Pricing' }).click();
      await page.getByRole('button', { name: '+ Set price' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Model').fill(MODEL);
      await dialog.getByLabel('Input / 1M').fill('1000000');
      await dialog.getByLabel('Output / 1M').fill('2000000');
      await dialog.getByRole('button', { name: 'Save' }).click();
      await dialog.waitFor({ state: 'detached' });
      await page.locator('tr', { hasText: MODEL }).getByText('$2.00').waitFor();
    });

    await step('admin prices the transcription model per call (API)', async () => {
      const login = await (await fetch(`${base}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ login: 'root', password: ADMIN_PASSWORD }),
      })).json();
      const r = await fetch(`${base}/api/v1/admin/pricing/${TRANSCRIPTION_MODEL}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${login.access_token}` },
        body: JSON.stringify({ input_per_mtok: 0, output_per_mtok: 0, cache_read_per_mtok: 0, cache_write_per_mtok: 0, per_call: 1000 }),
      });
      check(r.ok, `PUT pricing ${TRANSCRIPTION_MODEL}: ${r.status} ${await r.text()}`);
    });

    let codes = [];
    await step('admin creates a batch of redemption codes and exports it as CSV', async () => {
      await page.getByRole('link', { name: 'Redemption codes' }).click();
      await page.getByRole('button', { name: '+ New batch' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Batch name').fill('e2e-batch');
      await dialog.getByLabel('Amount').fill('250000');
      await dialog.getByLabel('How many').fill('2');
      await dialog.getByRole('button', { name: 'Create' }).click();
      const created = page.getByRole('dialog', { name: '2 codes created' });
      codes = (await created.locator('pre').textContent()).trim().split('\n');
      check(codes.length === 2 && codes.every((c) => c.length >= 8), `two codes shown: ${codes.length}`);
      await created.getByRole('button', { name: 'Close' }).last().click();
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
      const { readFileSync } = await import('node:fs');
      const csv = readFileSync(await download.path(), 'utf8');
      check(codes.every((c) => csv.includes(c)), 'the CSV has both codes');
    });

    await step('admin disables and re-enables the channel', async () => {
      await page.getByRole('link', { name: 'Channels' }).click();
      const row = page.locator('tr', { hasText: 'mock' }).first();
      await row.getByRole('button', { name: 'Disable' }).click();
      await row.getByText('Disabled', { exact: true }).waitFor();
      await row.getByRole('button', { name: 'Enable' }).click();
      await row.getByText('Enabled', { exact: true }).waitFor();
    });

    await step('admin tops up the user', async () => {
      await page.getByRole('link', { name: 'Users' }).click();
      const row = page.locator('tr', { hasText: 'ada' });
      await row.getByRole('button', { name: 'Adjust balance' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Amount (units, negative to deduct)').fill('5000000');
      await dialog.getByLabel('Memo (required)').fill('e2e top-up');
      await dialog.getByRole('button', { name: 'Save' }).click();
      await dialog.waitFor({ state: 'detached' });
    });

    await step('the audit log shows what the admin did, without the upstream key', async () => {
      await page.getByRole('link', { name: 'Audit log' }).click();
      await page.getByText('POST /api/v1/channels', { exact: true }).first().waitFor();
      await page.getByText('POST /api/v1/admin/billing/users/{id}/adjust', { exact: true }).first().waitFor();
      const row = page.locator('tr').filter({ has: page.getByText('POST /api/v1/channels', { exact: true }) }).first();
      await row.getByRole('button', { name: 'Show' }).click();
      await row.getByText('[redacted]', { exact: false }).waitFor();
      check(!(await page.content()).includes('sk-upstream'), 'the upstream key is not in the audit log');
      await page.getByLabel('Action (route or method)').fill('adjust');
      await page.getByText('POST /api/v1/channels', { exact: true }).waitFor({ state: 'detached' });
      await page.getByText('POST /api/v1/admin/billing/users/{id}/adjust', { exact: true }).first().waitFor();
    });

    await step('sign back in as the user', async () => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Username or email').fill('ada');
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.waitForURL(/\/chat/);
    });

    await step('the API key works against /v1/chat/completions (streamed)', async () => {
      const r = await fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'one two three' }] }),
      });
      const text = await r.text();
      check(r.status === 200, `status ${r.status}: ${text.slice(0, 200)}`);
      check(text.includes('echo') && text.includes('[DONE]'), 'streamed echo');
    });

    if (chatAvailable) await chatSteps(page);

    await step('the user redeems a code', async () => {
      await page.getByRole('link', { name: 'Usage' }).click();
      await page.getByLabel('Code').fill(codes[0]);
      await page.getByRole('button', { name: 'Redeem', exact: true }).click();
      await page.getByText(/Redeemed \$0\.50\. New balance/).waitFor();
      await page.getByLabel('Code').fill(codes[0]);
      await page.getByRole('button', { name: 'Redeem', exact: true }).click();
      const refused = page.getByRole('alert');
      await refused.waitFor();
      check(!(await refused.textContent()).includes('Request id'), 'a refused code quotes no request id');
    });

    await step('usage shows the charge', async () => {
      await page.getByRole('link', { name: 'Usage' }).click();
      await page.getByRole('heading', { name: 'Usage' }).waitFor();
      // The first billed request was the API call above: 3 prompt words and "echo: one two
      // three" (4 words) at 1,000,000 / 2,000,000 units per million = 3 + 8 = 11 units.
      const cost = page.locator('table [data-testid="record-cost"]').last();
      await cost.waitFor();
      const costText = await cost.textContent();
      check(costText === '$0.000022', `the API call cost 11 units ($0.000022): ${costText}`);
      const used = await page.getByTestId('used').textContent();
      check(used !== '$0.00' && used.startsWith('$0.0'), `usage counted: ${used}`);
      // The ledger shows ten entries a page, newest first: the top-up is the oldest, so it may
      // sit on a later page once the chat steps have been charged.
      const topUp = page.getByRole('cell', { name: 'e2e top-up' });
      const ledgerNext = page.getByRole('button', { name: 'Next', exact: true }).last();
      await page.waitForTimeout(1000);
      for (let i = 0; i < 5 && !(await topUp.isVisible()) && (await ledgerNext.isEnabled()); i++) {
        await ledgerNext.click();
        await page.waitForTimeout(500);
      }
      await topUp.waitFor();
    });

    await step('the user tops up ¥10 with Alipay through the (fake) EPay gateway and comes back credited', async () => {
      await page.getByRole('link', { name: 'Usage' }).click();
      await page.getByRole('link', { name: 'Top up' }).click();
      await page.getByRole('button', { name: '¥10.00' }).click();
      await page.getByLabel('Alipay').check();
      await page.getByRole('button', { name: 'Pay ¥10.00' }).click();
      await page.waitForURL(/\/billing\/topup\?order=/);
      await page.getByText(/^Paid ¥10\.00: \$[\d.]+ was added to your balance\.$/).waitFor();
      check(epay.paid.length === 1 && epay.paid[0].answer === 'success', `the gateway's notification was taken: ${JSON.stringify(epay.paid)}`);
      await page.getByRole('cell', { name: 'Paid' }).first().waitFor();
      if (takeShots) await page.screenshot({ path: join(shots, 'topup-paid-1440-light.png'), fullPage: true });
    });

    await step('files: upload a file, share it, and open the share page signed out', async () => {
      await page.getByRole('link', { name: 'Files' }).click();
      await page.getByRole('heading', { name: 'Files' }).waitFor();
      const name = 'notes 笔记.txt';
      await page.getByTestId('file-input').setInputFiles({ name, mimeType: 'text/plain', buffer: Buffer.from('hello from the e2e run\n') });
      await page.getByTestId('files-grid').getByText(name).waitFor();
      await page.getByTestId('share-file').first().click();
      await page.getByTestId('create-share').click();
      const link = page.getByTestId('share-link').first();
      await link.waitFor();
      const url = await link.textContent();
      check(url.startsWith(`${base}/s/`), `a share page link: ${url}`);
      sharePath = new URL(url).pathname;
      await page.keyboard.press('Escape');
      const anonymous = await browser.newContext({ locale: 'en-US' });
      const p = await anonymous.newPage();
      await p.goto(url);
      await p.getByTestId('share-name').getByText(name).waitFor();
      const [saved] = await Promise.all([p.waitForEvent('download'), p.getByTestId('share-download').click()]);
      check(saved.suggestedFilename() === name, `the download keeps its Chinese name: ${saved.suggestedFilename()}`);
      await anonymous.close();
    });

    await step('keyboard focus is visible on every control Tab reaches (usage and chat)', async () => {
      const missing = [];
      for (const [path, ready] of [['/usage', () => page.getByRole('heading', { name: 'Usage' }).waitFor()], ['/chat', () => page.getByTestId('conversation').first().waitFor()]]) {
        await page.goto(`${base}${path}`);
        await ready();
        for (let i = 0; i < 14; i++) {
          await page.keyboard.press('Tab');
          const seen = await page.evaluate(() => {
            const el = document.activeElement;
            if (!el || el === document.body) return null;
            const cs = getComputedStyle(el);
            const outline = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0 && cs.outlineColor !== 'rgba(0, 0, 0, 0)';
            const ring = cs.boxShadow && cs.boxShadow !== 'none';
            const label = el.getAttribute('aria-label') || el.textContent || el.getAttribute('type') || '';
            return { name: `${el.tagName.toLowerCase()} “${label.trim().slice(0, 24)}” (${el.className.slice(0, 60)}; ${cs.outlineStyle} ${cs.boxShadow})`, shown: outline || ring };
          });
          if (seen && !seen.shown) missing.push(`${path}: ${seen.name}`);
        }
      }
      check(missing.length === 0, `no visible focus on: ${missing.join(', ')}`);
    });

    await step('language switch to Chinese is remembered across reloads', async () => {
      await page.getByRole('link', { name: 'Settings' }).click();
      await page.getByLabel('Language').selectOption('zh-CN');
      await page.getByRole('link', { name: '对话' }).waitFor();
      await page.reload();
      await page.getByRole('link', { name: '用量' }).waitFor();
      await page.getByLabel('语言').selectOption('en');
      await page.getByRole('link', { name: 'Chat' }).waitFor();
    });

    await step('a reload keeps the session (silent refresh) and the route; no token is readable by scripts', async () => {
      await page.goto(`${base}/usage`);
      await page.getByRole('heading', { name: 'Usage' }).waitFor();
      check(!page.url().includes('/login'), 'still signed in');
      const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + document.cookie);
      check(!/skr_/.test(stored), `a refresh token is readable by page scripts: ${stored.slice(0, 200)}`);
      const cookies = await desktop.cookies(); // all: the cookie's path is /api/v1/auth, not /
      const refresh = cookies.find((c) => c.name === 'skein_refresh');
      check(refresh?.httpOnly && refresh.sameSite === 'Strict' && refresh.path === '/api/v1/auth', `refresh cookie: ${JSON.stringify(refresh)}`);
    });

    await step('phone layout: navigation drawer, tables as cards, reachable composer', async () => {
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'en-US', isMobile: true, hasTouch: true, storageState: await loginState(base, 'ada', PASSWORD) });
      const p = await phone.newPage();
      await p.goto(`${base}/keys`);
      await p.getByRole('heading', { name: 'API keys' }).waitFor();
      await p.getByTestId('cards').getByText('laptop').waitFor();
      check(!(await p.locator('table').first().isVisible()), 'the table is hidden on a phone');
      await p.getByRole('button', { name: 'Menu' }).click();
      await p.getByRole('dialog').getByRole('link', { name: 'Usage' }).click();
      await p.getByRole('heading', { name: 'Usage' }).waitFor();
      const width = await p.evaluate(() => Math.max(document.documentElement.scrollWidth, document.querySelector("main")?.scrollWidth ?? 0));
      check(width <= 392, `no horizontal scrolling on usage (width ${width})`);
      if (chatAvailable) {
        await p.goto(`${base}/chat`);
        await p.getByTestId('conversation').first().waitFor({ state: 'attached' }).catch(() => undefined);
        const composer = p.getByLabel('Send', { exact: true });
        await composer.waitFor();
        const box = await composer.boundingBox();
        check(box && box.y + box.height <= 844, `composer within the screen (${JSON.stringify(box)})`);
        await p.getByRole('button', { name: 'Conversations' }).click();
        await p.getByRole('dialog').getByRole('button', { name: '+ New chat' }).waitFor();
      }
      await phone.close();
    });

    // After the usage checks: these answers and the transcription add ledger rows.
    if (chatAvailable) await remoteImageStep(page);
    if (chatAvailable) await mediaSteps(page, base, browser);
    if (takeShots) await screenshotsUser(browser, base, desktop);
    // After the usage above, so the dashboard has something to show.
    if (takeShots) await screenshotsAdmin(browser, base);
    check(consoleErrors.length === 0, `no script errors in the page: ${consoleErrors.join('\n')}`);
  } catch (e) {
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => undefined);
    log(`failure screenshot: ${join(shots, 'failure.png')}`);
    throw e;
  } finally {
    await browser.close();
    cleanup();
  }
  log(chatAvailable ? 'all steps passed' : 'all steps passed (CHAT STEPS SKIPPED: no Chat service)');
}

async function chatSteps(page) {
  const lastAnswer = () => page.getByTestId('assistant-message').last();
  // Which transport carries the answers: frames on the chat socket, or SSE requests.
  const socketFrames = [];
  const ssePosts = [];
  page.on('websocket', (ws) => {
    if (ws.url().includes('/api/v1/chat/socket')) ws.on('framereceived', (frame) => socketFrames.push(String(frame.payload)));
  });
  page.on('request', (request) => {
    if (request.method() === 'POST' && /\/api\/v1\/chat\/conversations\/[^/]+\/messages$/.test(request.url())) ssePosts.push(request.url());
  });

  await step('chat: new conversation streams an answer with its price', async () => {
    await page.getByRole('link', { name: 'Chat' }).click();
    await page.getByRole('button', { name: '+ New chat' }).click();
    await page.getByTestId('model-picker').click();
    await page.getByRole('menuitemradio', { name: new RegExp(MODEL) }).getByText('$2.00 in / $4.00 out per 1M tokens').waitFor();
    await page.getByRole('menuitemradio', { name: new RegExp(MODEL) }).click();
    await page.getByTestId('model-price').getByText('$2.00').waitFor();
    await page.getByLabel('Send', { exact: true }).fill('hello there');
    await page.getByLabel('Send', { exact: true }).press('Enter');
    await page.waitForURL(/\/chat\/[^/]+$/);
    await lastAnswer().getByText('echo: hello there').waitFor();
    await page.locator('[data-testid="assistant-message"][data-status="done"]').last().waitFor();
    await lastAnswer().getByTestId('message-cost').waitFor();
    await page.getByTestId('conversation').first().waitFor();
  });

  await step('chat: the answer arrived over the chat WebSocket, not SSE', async () => {
    check(socketFrames.some((f) => f.includes('"event":"delta"')), `delta frames on the socket: ${socketFrames.length} frames`);
    check(socketFrames.some((f) => f.includes('"event":"done"') && f.includes('echo: hello there')), 'the done frame with the answer on the socket');
    check(ssePosts.length === 0, `no SSE send: ${ssePosts.join(', ')}`);
  });

  await step('chat: stop keeps the partial answer', async () => {
    const words = Array.from({ length: 300 }, (_, i) => `w${i}`).join(' ');
    await page.getByLabel('Send', { exact: true }).fill(words);
    await page.getByLabel('Send', { exact: true }).press('Enter');
    await lastAnswer().getByText('echo:').waitFor();
    await page.getByTestId('stop').click();
    await page.locator('[data-testid="assistant-message"][data-status="stopped"]').last().waitFor({ timeout: 20_000 });
    const text = await lastAnswer().textContent();
    check(!text.includes('w299'), 'the answer was cut short');
  });

  await step('chat: continue writes the stopped answer on in place', async () => {
    const answers = await page.getByTestId('assistant-message').count();
    await lastAnswer().getByRole('button', { name: 'Continue writing' }).click();
    // The e2e mock streams slowly (so that stop has something to stop): ~6 words a second.
    const done = page.locator('[data-testid="assistant-message"][data-status="done"]').last();
    await done.getByText(/w298 w299/).waitFor({ timeout: 120_000 });
    const text = await done.textContent();
    check((text.match(/echo:/g) ?? []).length === 1, `one answer, written on: ${text.slice(0, 80)}`);
    check((text.match(/w150 /g) ?? []).length === 1, 'nothing repeated where it was continued');
    check((await page.getByTestId('assistant-message').count()) === answers, 'no new answer was added');
    await done.getByRole('button', { name: 'Continue writing' }).waitFor({ state: 'detached' });
  });

  await step('chat: edit a message makes a new version (‹ 2 / 2 ›) and switching goes back', async () => {
    const firstUser = page.getByTestId('user-message').first();
    await firstUser.getByRole('button', { name: 'Edit' }).click();
    await firstUser.getByLabel('Edit').fill('hello again');
    await firstUser.getByRole('button', { name: 'Save and send' }).click();
    await lastAnswer().getByText('echo: hello again').waitFor();
    await page.locator('[data-testid="assistant-message"][data-status="done"]').last().waitFor();
    const versions = page.getByTestId('user-message').first().getByTestId('versions');
    await versions.getByText('2 / 2').waitFor();
    await versions.getByRole('button', { name: 'Previous version' }).click();
    await versions.getByText('1 / 2').waitFor();
    await page.getByTestId('user-message').first().getByText('hello there').waitFor();
  });

  await step('chat: regenerate adds a sibling answer', async () => {
    await page.getByTestId('user-message').first().getByTestId('versions').getByRole('button', { name: 'Next version' }).click();
    await page.getByTestId('user-message').first().getByText('hello again').waitFor();
    await lastAnswer().getByRole('button', { name: 'Regenerate' }).click();
    await lastAnswer().getByTestId('versions').getByText('2 / 2').waitFor();
    await page.locator('[data-testid="assistant-message"][data-status="done"]').last().waitFor();
  });

  await step('chat: a reload restores the conversation', async () => {
    await page.reload();
    await page.getByTestId('user-message').first().getByText('hello again').waitFor();
    await lastAnswer().getByTestId('versions').getByText('2 / 2').waitFor();
  });

  await step('chat: a reload in the middle of an answer re-attaches to it', async () => {
    const words = Array.from({ length: 80 }, (_, i) => `r${i}`).join(' ');
    await page.getByLabel('Send', { exact: true }).fill(words);
    await page.getByLabel('Send', { exact: true }).press('Enter');
    await lastAnswer().getByText(/echo: r0 r1 r2/).waitFor();
    await page.reload();
    await page.locator('[data-testid="assistant-message"][data-status="streaming"]').last().waitFor();
    const answer = page.locator('[data-testid="assistant-message"][data-status="done"]').last();
    await answer.getByText(/r78 r79/).waitFor({ timeout: 30_000 });
    const text = await answer.textContent();
    check((text.match(/r40 /g) ?? []).length === 1, 'the text so far is not repeated after re-attaching');
  });

  await step('chat: when the session ends, sign-in comes back to the conversation with the draft', async () => {
    const chatUrl = page.url();
    await page.getByLabel('Send', { exact: true }).fill('a draft I do not want to lose');
    // Another device changes the password: every other session ends.
    const tokens = await (await fetch(`${page.url().split('/chat')[0]}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: 'ada', password: PASSWORD }),
    })).json();
    const changePassword = (from, to, token) =>
      fetch(`${chatUrl.split('/chat')[0]}/api/v1/user/password`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ current_password: from, new_password: to }),
      });
    const changed = await changePassword(PASSWORD, `${PASSWORD} 2`, tokens.access_token);
    check(changed.ok, `password change: ${changed.status}`);
    await page.reload();
    await page.waitForURL(/\/login\?next=/);
    await page.getByText('Your session ended').waitFor();
    await page.getByLabel('Username or email').fill('ada');
    await page.getByLabel('Password', { exact: true }).fill(`${PASSWORD} 2`);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(chatUrl);
    const draft = await page.getByLabel('Send', { exact: true }).inputValue();
    check(draft === 'a draft I do not want to lose', `the draft survived: ${draft}`);
    await page.getByLabel('Send', { exact: true }).fill('');
    // Back to the original password for the steps that follow.
    const again = await (await fetch(`${chatUrl.split('/chat')[0]}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: 'ada', password: `${PASSWORD} 2` }),
    })).json();
    check((await changePassword(`${PASSWORD} 2`, PASSWORD, again.access_token)).ok, 'password restored');
    // That ended this page's session too: sign in again.
    await page.reload();
    await page.getByLabel('Username or email').fill('ada');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(chatUrl);
  });

  await step('chat: rename, pin, search, archive, delete with undo', async () => {
    const sidebar = page.locator('aside');
    const item = () => sidebar.getByTestId('conversation').first();
    const menuOf = async () => {
      await item().hover();
      await sidebar.getByRole('button', { name: 'Actions' }).first().click();
    };
    await menuOf();
    await page.getByRole('menuitem', { name: 'Rename' }).click();
    await page.getByRole('dialog').getByRole('textbox').fill('Greetings 问候');
    await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
    await sidebar.getByText('Greetings 问候').waitFor();
    await page.getByTestId('conversation-title').getByText('Greetings 问候').waitFor();
    await menuOf();
    await page.getByRole('menuitem', { name: 'Pin' }).click();
    await sidebar.getByRole('heading', { name: 'Pinned' }).waitFor();
    await sidebar.getByRole('searchbox').fill('问候');
    await item().getByText('Greetings 问候').waitFor();
    await sidebar.getByRole('searchbox').fill('nothing-matches-this');
    await sidebar.getByText('No conversation matches “nothing-matches-this”.').waitFor();
    await sidebar.getByRole('searchbox').fill('');
    await menuOf();
    await page.getByRole('menuitem', { name: 'Archive' }).click();
    await sidebar.getByText('Greetings 问候').waitFor({ state: 'detached' });
    await sidebar.getByRole('button', { name: 'Show archived' }).click();
    await sidebar.getByText('Greetings 问候').waitFor();
    await menuOf();
    await page.getByRole('menuitem', { name: 'Unarchive' }).click();
    await sidebar.getByRole('button', { name: 'Back to conversations' }).click();
    await sidebar.getByText('Greetings 问候').waitFor();
    await menuOf();
    await page.getByRole('menuitem', { name: 'Delete' }).click();
    await sidebar.getByText('Greetings 问候').waitFor({ state: 'detached' });
    await page.waitForURL(/\/chat$/);
    await page.getByRole('button', { name: 'Undo' }).click();
    await sidebar.getByText('Greetings 问候').waitFor();
    await item().click();
    await page.getByTestId('user-message').first().waitFor();
  });

  await step('chat: export as Markdown downloads the conversation', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      (async () => {
        await page.getByRole('button', { name: 'Export', exact: true }).click();
        await page.getByRole('menuitem', { name: 'Markdown' }).click();
      })(),
    ]);
    const path = await download.path();
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(path, 'utf8');
    check(text.includes('hello again'), 'the export has the conversation');
  });

  await step('chat: export all, then import the archive back as new conversations', async () => {
    const sidebar = page.locator('aside');
    const before = await sidebar.getByTestId('conversation').count();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      (async () => {
        await sidebar.getByRole('button', { name: 'Export or import conversations' }).click();
        await page.getByRole('menuitem', { name: 'Export all' }).click();
      })(),
    ]);
    const archive = await download.path();
    const { readFileSync } = await import('node:fs');
    check(readFileSync(archive, 'utf8').includes('hello again'), 'the archive has the messages');
    await sidebar.getByTestId('import-file').setInputFiles(archive);
    await page.getByText(/conversation\(s\) imported/).waitFor();
    await page.waitForFunction((n) => document.querySelectorAll('aside [data-testid="conversation"]').length > n, before);
  });

  await step('chat: a 2,000-message thread mounts only the rows near the viewport, opens at the bottom and follows an answer', async () => {
    // A ChatGPT-format import: one branch of 2,000 messages, every 10th answer with a code block.
    const mapping = {};
    for (let i = 0; i < 2000; i++) {
      const role = i % 2 ? 'assistant' : 'user';
      const text = i % 20 === 19 ? `long ${i}\n\n\`\`\`js\nconst x = ${i};\nconsole.log(x);\n\`\`\`` : `long ${i}`;
      mapping[`n${i}`] = { id: `n${i}`, parent: i ? `n${i - 1}` : null, children: i < 1999 ? [`n${i + 1}`] : [], message: { author: { role }, content: { content_type: 'text', parts: [text] }, create_time: 1_700_000_000 + i } };
    }
    const file = { title: 'Long thread', create_time: 1_700_000_000, mapping, current_node: 'n1999' };
    const sidebar = page.locator('aside');
    await sidebar.getByTestId('import-file').setInputFiles({ name: 'long.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(file)) });
    await sidebar.getByTestId('conversation').filter({ hasText: 'Long thread' }).first().click();
    const list = page.getByTestId('message-list');
    await list.waitFor();
    const mounted = () => page.locator('[data-testid="user-message"], [data-testid="assistant-message"]').count();
    const inView = (text) =>
      page.evaluate((t) => {
        const scroller = document.querySelector('[data-testid="message-list"]').parentElement.parentElement;
        const box = scroller.getBoundingClientRect();
        return [...document.querySelectorAll('[data-testid="user-message"], [data-testid="assistant-message"]')].some((el) => {
          const r = el.getBoundingClientRect();
          return el.textContent.includes(t) && r.bottom > box.top && r.top < box.bottom;
        });
      }, text);
    const scrollTo = (where) =>
      page.evaluate((w) => {
        const scroller = document.querySelector('[data-testid="message-list"]').parentElement.parentElement;
        scroller.scrollTop = w === 'top' ? 0 : scroller.scrollHeight;
      }, where);
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="assistant-message"]')].some((el) => el.textContent.includes('long 1999')));
    await page.waitForTimeout(300);
    check(await inView('long 1999'), 'the last message is in view on opening');
    check((await mounted()) < 100, `only rows near the viewport are mounted (${await mounted()})`);
    for (let i = 0; i < 20 && !(await inView('long 0')); i++) {
      await scrollTo('top');
      await page.waitForTimeout(100);
    }
    check(await inView('long 0'), 'scrolling to the top shows the first message');
    check((await mounted()) < 100, 'still only a window of rows at the top');
    for (let i = 0; i < 20 && !(await inView('long 1999')); i++) {
      await scrollTo('bottom');
      await page.waitForTimeout(100);
    }
    check(await inView('long 1999'), 'scrolling back down shows the last message');
    await page.getByLabel('Send', { exact: true }).fill('after the long thread');
    await page.getByLabel('Send', { exact: true }).press('Enter');
    await page.getByTestId('assistant-message').last().getByText('echo: after the long thread').waitFor();
    await page.locator('[data-testid="assistant-message"][data-status="done"]').last().waitFor();
    await page.waitForTimeout(300);
    check(await inView('echo: after the long thread'), 'the new answer is in view (followed to the bottom)');
  });
}

/**
 * A second, empty server (its own data directory): the sign-in page says no account exists,
 * registration asks for the setup token, a wrong one is refused, and the token from the
 * server's log makes the first account, root.
 */
async function firstRun(browser, mockUrl) {
  const { base, match } = await startSkein({ name: 'first', env: { SKEIN_LOG_FORMAT: 'text', NO_COLOR: '1' }, waitPattern: /setup token: ([A-Za-z0-9_-]+)/ });
  const token = match[1];
  const ctx = await browser.newContext({ locale: 'en-US' });
  const p = await ctx.newPage();
  await p.goto(`${base}/chat`);
  const hint = p.getByTestId('setup-hint');
  await hint.getByText('no account yet').waitFor();
  await hint.getByRole('link', { name: 'Create account' }).click();
  await p.getByTestId('setup-hint').getByText('setup token').waitFor();
  await p.getByLabel('Username').fill('owner');
  await p.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await p.getByLabel('Setup token').fill('not-the-token');
  await p.getByRole('button', { name: 'Create account' }).click();
  await p.getByRole('alert').waitFor();
  check(p.url().includes('/register'), 'a wrong token does not register');
  await p.getByLabel('Setup token').fill(token);
  await p.getByRole('button', { name: 'Create account' }).click();
  await p.waitForURL(/\/chat/);
  const me = await p.evaluate(async () => (await fetch('/api/v1/auth/setup')).json());
  check(me.needs_setup === false, 'set-up is done');
  await setupChecklist(browser, base, p, mockUrl);
  await ctx.close();
}

/**
 * The new root account's checklist: shown in the empty chat and the model picker leads to it;
 * each step done through the app ticks itself off; the list is gone once all are done.
 */
async function setupChecklist(browser, base, p, mockUrl) {
  const list = p.getByTestId('setup-checklist');
  await list.getByText('0 of 5 done').waitFor();
  check((await p.getByTestId('model-picker').textContent()) === 'Set up this server', 'the empty model picker leads to set-up');
  if (takeShots) {
    mkdirSync(shots, { recursive: true });
    await p.setViewportSize({ width: 1440, height: 900 });
    await p.screenshot({ path: join(shots, 'setup-checklist-1440-light.png') });
    for (const [suffix, opts] of [
      ['390-dark', { viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true }],
      ['zh-1440-light', { viewport: { width: 1440, height: 900 }, colorScheme: 'light' }],
    ]) {
      // Each context signs in on its own: a copied refresh cookie would be rotated under the other.
      const extra = suffix.startsWith('zh') ? [{ name: 'skein.lang', value: 'zh-CN' }] : [];
      const c = await browser.newContext({ locale: 'en-US', ...opts, storageState: await loginState(base, 'owner', PASSWORD, extra) });
      const q = await c.newPage();
      await q.goto(`${base}/chat`);
      await q.getByTestId('setup-checklist').waitFor();
      await q.waitForTimeout(300);
      await q.screenshot({ path: join(shots, `setup-checklist-${suffix}.png`) });
      await c.close();
    }
  }
  const step = (id) => p.getByTestId(`setup-step-${id}`);
  const isDone = async (id) => (await step(id).getAttribute('data-done')) === 'true';

  // 1. The provider: the link opens the new-channel form.
  await step('provider').getByRole('link', { name: 'Add a channel' }).click();
  const dialog = p.getByRole('dialog');
  await dialog.getByLabel('Name', { exact: true }).fill('mock');
  await dialog.getByLabel('Base URL').fill(mockUrl);
  await dialog.getByLabel('Upstream keys (one per line)').fill('sk-upstream');
  await dialog.getByLabel('Models (comma separated)').fill(MODEL);
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'detached' });

  // 2. The test, from the checklist on the dashboard.
  await p.getByRole('link', { name: 'Dashboard' }).click();
  await list.getByText('1 of 5 done').waitFor();
  check(await isDone('provider'), 'the provider step is done');
  await step('test').getByRole('button', { name: 'Test now' }).click();
  await list.getByText('2 of 5 done').waitFor();
  check(await isDone('test'), 'the test step is done');

  // 3. Prices: the defaults know no mock model, so it stays listed as served but unpriced;
  //    picking it from the pricing page's list prices it.
  await step('prices').getByRole('button', { name: 'Load default prices' }).click();
  await p.waitForTimeout(500);
  check(!(await isDone('prices')), 'an unpriced served model keeps the price step open');
  await step('prices').getByRole('link', { name: 'Open pricing' }).click();
  await p.getByTestId('unpriced').getByRole('button', { name: MODEL }).click();
  const priceDialog = p.getByRole('dialog');
  check((await priceDialog.getByLabel('Model').inputValue()) === MODEL, 'the picked model fills the form');
  await priceDialog.getByLabel('Input / 1M').fill('1000000');
  await priceDialog.getByRole('button', { name: 'Save' }).click();
  await priceDialog.waitFor({ state: 'detached' });
  await p.getByTestId('unpriced').waitFor({ state: 'detached' });

  // 4. Who may register, chosen right from the list (stored as a system setting).
  await p.getByRole('link', { name: 'Dashboard' }).click();
  await list.getByText('3 of 5 done').waitFor();
  await step('registration').getByRole('button', { name: 'Open' }).click();
  await list.getByText('4 of 5 done').waitFor();
  check(await isDone('registration'), 'the registration step is done');

  // 5. A key, from the link; then the checklist is gone and chat is ready.
  await step('key').getByRole('link', { name: 'Create a key' }).click();
  await p.getByRole('button', { name: '+ New key' }).click();
  await p.getByLabel('Name').fill('first');
  await p.getByRole('button', { name: 'Create' }).click();
  await p.getByRole('button', { name: 'I have copied it' }).click();
  await p.getByRole('link', { name: 'Admin' }).click();
  await p.getByRole('heading', { name: 'Admin console' }).waitFor();
  await p.getByText('Spend (30 days)').first().waitFor();
  await p.waitForTimeout(500);
  check((await list.count()) === 0, 'the checklist is gone from the dashboard when every step is done');
  await p.getByRole('link', { name: 'Chat' }).first().click();
  await p.getByTestId('chat-empty').getByText('Start a conversation').waitFor();
  check((await list.count()) === 0, 'the checklist is gone from the empty chat');
  await p.getByTestId('model-picker').getByText(MODEL).waitFor();
}

/** Model output cannot make the browser call another host: an image in an answer is a link. */
async function remoteImageStep(page) {
  await step('chat: an image in an answer is not fetched by the browser, only shown as a link', async () => {
    const requested = [];
    const watch = (req) => req.url().includes('e2e-pixel') && requested.push(req.url());
    page.on('request', watch);
    await page.getByRole('link', { name: 'Chat' }).click();
    await page.getByRole('button', { name: '+ New chat' }).first().click();
    await page.getByLabel('Send', { exact: true }).fill('look ![pixel](http://127.0.0.1:9/e2e-pixel.png?leak=1)');
    await page.getByLabel('Send', { exact: true }).press('Enter');
    await page.locator('[data-testid="assistant-message"][data-status="done"]').last().waitFor();
    const image = page.getByTestId('assistant-message').last().getByTestId('markdown-image');
    await image.getByRole('link', { name: 'pixel' }).waitFor();
    await image.getByText('127.0.0.1:9').waitFor();
    await page.waitForTimeout(500);
    page.off('request', watch);
    check((await page.getByTestId('assistant-message').last().locator('img').count()) === 0, 'no img element in the answer');
    check(requested.length === 0, `the browser requested the image: ${requested.join(', ')}`);
  });
}

/** A small PNG (a colour gradient) made here, so the test needs no image file. */
function testPng(width = 96, height = 64) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++) row.set([Math.round((x / width) * 255), Math.round((y / height) * 255), 180], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Image attach and voice input in the composer, against the real Chat service and the mock. */
async function mediaSteps(page, base, browser) {
  const png = { name: 'gradient.png', mimeType: 'image/png', buffer: testPng() };
  const composer = () => page.getByLabel('Send', { exact: true });
  let conversationUrl = '';

  await step('chat: attach an image, see its thumbnail, send it; the upstream request has an image_url part', async () => {
    await page.getByRole('link', { name: 'Chat' }).click();
    await page.getByRole('button', { name: '+ New chat' }).first().click();
    await page.getByTestId('image-input').setInputFiles(png);
    await page.getByTestId('attached-images').getByRole('img').waitFor();
    const src = await page.getByTestId('attached-images').getByRole('img').getAttribute('src');
    check(src.startsWith('data:image/png;base64,'), `thumbnail is a data URL: ${src.slice(0, 30)}`);
    await composer().fill('what is in this picture?');
    await composer().press('Enter');
    await page.waitForURL(/\/chat\/[^/]+$/);
    conversationUrl = page.url();
    await page.locator('[data-testid="assistant-message"][data-status="done"]').last().waitFor();
    check((await page.getByTestId('attached-images').count()) === 0, 'the composer is empty after sending');
    // What the server sent upstream for that answer (the context record; image data elided).
    const login = await (await fetch(`${base}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: 'ada', password: PASSWORD }),
    })).json();
    const auth = { authorization: `Bearer ${login.access_token}` };
    const id = conversationUrl.split('/chat/')[1];
    const history = await (await fetch(`${base}/api/v1/chat/conversations/${id}/messages`, { headers: auth })).json();
    const user = history.messages.find((m) => m.role === 'user');
    // Stored in the File service: the message names the file, and its signed URL serves the
    // picture without a session.
    check(user?.images?.length === 1 && user.images[0].startsWith('file:'), `the message holds a file reference: ${user?.images?.[0]?.slice(0, 40)}`);
    const shown = await fetch(`${base}${user.image_urls[0]}`);
    check(shown.ok && shown.headers.get('content-type') === 'image/png', `the signed URL serves the image: ${shown.status}`);
    const answer = history.messages.find((m) => m.role === 'assistant');
    let context = null;
    for (let i = 0; i < 20 && !context; i++) {
      const r = await fetch(`${base}/api/v1/chat/messages/${answer.id}/context`, { headers: auth });
      if (r.ok) context = await r.json();
      else await new Promise((res) => setTimeout(res, 250));
    }
    check(context, 'the context record of the answer exists');
    check(JSON.stringify(context.request).includes('"image_url"'), `the upstream request had an image_url part: ${JSON.stringify(context.request).slice(0, 300)}`);
  });

  await step('chat: after a reload the thread shows the image; a click opens it larger', async () => {
    await page.reload();
    const thumbs = page.getByTestId('user-message').last().getByTestId('message-images');
    await thumbs.getByRole('img').waitFor();
    const loaded = await thumbs.getByRole('img').evaluate((img) => img.decode().then(() => img.naturalWidth > 0, () => false));
    check(loaded, 'the stored image loads in the thread');
    await thumbs.getByRole('button', { name: 'Open image 1' }).click();
    await page.getByRole('dialog').getByRole('img').waitFor();
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'detached' });
  });

  await step('chat: voice input records ~1 s and puts the transcript in the composer (not sent)', async () => {
    await composer().fill('');
    const sentBefore = await page.getByTestId('user-message').count();
    await page.getByRole('button', { name: 'Voice input' }).click();
    await page.getByTestId('voice-stop').waitFor();
    await page.waitForTimeout(1200);
    check(/0:0[1-9]/.test(await page.getByTestId('voice-elapsed').textContent()), 'the elapsed time counts');
    await page.getByTestId('voice-stop').click();
    await page.waitForFunction(() => /transcript of recording\.\w+: \d+ bytes/.test(document.querySelector('textarea[aria-label="Send"]')?.value ?? ''), null, { timeout: 20_000 });
    const text = await composer().inputValue();
    check(/^transcript of recording\.(webm|ogg|m4a): [1-9]\d* bytes$/.test(text), `the transcript is in the composer: ${text}`);
    check((await page.getByTestId('user-message').count()) === sentBefore, 'the transcript was not sent by itself');
    await composer().fill('');
  });

  if (!takeShots) return;
  await step('screenshots: composer with an attached image (1440 and 390)', async () => {
    mkdirSync(shots, { recursive: true });
    for (const [label, viewport] of SIZES) {
      const ctx = await browser.newContext({ viewport, colorScheme: 'light', locale: 'en-US', storageState: await loginState(base, 'ada', PASSWORD), isMobile: label === '390' });
      const p = await ctx.newPage();
      await p.goto(conversationUrl);
      await p.getByTestId('message-images').first().getByRole('img').waitFor();
      await p.getByTestId('image-input').setInputFiles(png);
      await p.getByTestId('attached-images').getByRole('img').waitFor();
      await p.getByLabel('Send', { exact: true }).fill('and this one?');
      await p.waitForTimeout(300);
      await p.screenshot({ path: join(shots, `chat-composer-image-${label}-light.png`) });
      await ctx.close();
    }
  });
}

const SIZES = [
  ['1440', { width: 1440, height: 900 }],
  ['390', { width: 390, height: 844 }],
];

async function shoot(browser, base, signIn, pages, { schemes = ['light', 'dark'], sizes = SIZES, suffix = '' } = {}) {
  mkdirSync(shots, { recursive: true });
  for (const scheme of schemes) {
    for (const [label, viewport] of sizes) {
      const ctx = await browser.newContext({ viewport, colorScheme: scheme, locale: 'en-US', storageState: await signIn(), isMobile: label === '390' });
      const p = await ctx.newPage();
      for (const [name, path, ready] of pages) {
        await p.goto(`${base}${path}`);
        if (ready) await p.getByRole('heading', { name: ready }).first().waitFor();
        else await p.waitForLoadState('networkidle');
        await p.waitForTimeout(300);
        await p.screenshot({ path: join(shots, `${name}${suffix}-${label}-${scheme}.png`) });
      }
      await ctx.close();
    }
  }
}

async function screenshotsAdmin(browser, base) {
  await step('screenshots: admin console', async () => {
    await shoot(browser, base, () => loginState(base, 'root', ADMIN_PASSWORD), [
      ['admin-dashboard', '/admin/dashboard', 'Admin console'],
      ['admin-channels', '/admin/channels', 'Admin console'],
      ['admin-pricing', '/admin/pricing', 'Admin console'],
      ['admin-audit', '/admin/audit', 'Admin console'],
      ['admin-orders', '/admin/orders', 'Admin console'],
    ]);
  });
}

/** The share page the files step made, for its screenshot. */
let sharePath = null;

async function screenshotsUser(browser, base, desktop) {
  await step('screenshots: user pages', async () => {
    const first = await (async () => {
      const p = await desktop.newPage();
      await p.goto(`${base}/chat`);
      const link = p.getByTestId('conversation').first();
      await link.waitFor({ timeout: 5000 }).catch(() => undefined);
      const href = (await link.count()) ? await link.getAttribute('href') : '/chat';
      await p.close();
      return href;
    })();
    await shoot(browser, base, () => loginState(base, 'ada', PASSWORD), [
      ['chat', first, null],
      ['keys', '/keys', 'API keys'],
      ['usage', '/usage', 'Usage'],
      ['topup', '/billing/topup', 'Top up'],
      ['settings', '/settings', 'Settings'],
      ['files', '/files', 'Files'],
    ]);
    if (sharePath) await shoot(browser, base, async () => undefined, [['share', sharePath, null]]);
    await shoot(browser, base, async () => undefined, [['login', '/login', 'Sign in']]);
    // The Chinese UI, once per size.
    await shoot(browser, base, () => loginState(base, 'ada', PASSWORD, [{ name: 'skein.lang', value: 'zh-CN' }]), [
      ['chat', first, null],
      ['usage', '/usage', '用量'],
      ['topup', '/billing/topup', '充值'],
    ], { schemes: ['light'], suffix: '-zh' });
  });
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`[e2e] FAILED (${failures} step(s)): ${e.message ?? e}`);
    process.exit(1);
  },
);
