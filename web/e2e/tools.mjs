// End-to-end steps for a tool call that needs the user's approval, in real headless Chromium:
// an admin publishes an OpenAPI plugin (a small local weather service), prices it per call and
// makes its calls ask first; a user enables it and asks in a chat; the mock model calls the
// tool; the thread shows Approve / Deny; Approve runs it (the service is called, the call is
// charged once, shown in usage), and at 390 px dark a second call is denied (it does not
// run). Screenshots go to target/screenshots/tools-*.png.
//
// Environment: SKEIN_BIN, MOCK_BIN (default: the debug builds in CARGO_TARGET_DIR or target/),
// CHROMIUM (default /usr/bin/chromium). Needs web/dist (npm run build).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const repo = resolve(new URL('../..', import.meta.url).pathname);
const targetDir = resolve(repo, process.env.CARGO_TARGET_DIR ?? 'target');
const shots = join(repo, 'target', 'screenshots');
const skein = process.env.SKEIN_BIN ?? join(targetDir, 'debug', 'skein');
const mock = process.env.MOCK_BIN ?? join(targetDir, 'debug', 'mock-upstream');
const PASSWORD = 'correct horse battery';
const MODEL = 'mock-gpt';
const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM')));

const log = (...a) => console.log('[e2e tools]', ...a);
function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}
async function step(name, fn) {
  const t = Date.now();
  await fn();
  log(`ok   ${name} (${Date.now() - t} ms)`);
}
function freePort() {
  return new Promise((res) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}
function startAndWait(cmd, args, opts, pattern) {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    const onData = (c) => {
      out += c;
      const m = out.match(pattern);
      if (m) res({ child, match: m });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => rej(new Error(`${cmd} exited with ${code}:\n${out}`)));
  });
}


async function main() {
  check(existsSync(join(repo, 'web', 'dist', 'index.html')), 'web/dist is built (npm run build)');
  mkdirSync(shots, { recursive: true });
  const data = mkdtempSync(join(tmpdir(), 'skein-e2e-tools-'));
  process.on('exit', () => rmSync(data, { recursive: true, force: true }));
  const setup = 'e2e-tools-setup-token-0123456789';
  const env = { ...process.env, SKEIN_DATA_DIR: data, RUST_LOG: 'warn', SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE: '10000', SKEIN_SETUP_TOKEN: setup };
  const upstream = await startAndWait(mock, ['--key', 'sk-upstream', '--stream-pause-ms', '5'], { env }, /MOCK_BASE_URL=(\S+)/);
  const mockUrl = upstream.match[1];

  // The weather service the plugin calls; it records the cities it was asked about.
  const asked = [];
  const weather = createHttpServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    asked.push(url.searchParams.get('city'));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ city: url.searchParams.get('city'), sky: 'sunny', celsius: 21 }));
  });
  await new Promise((r) => weather.listen(0, '127.0.0.1', r));
  process.on('exit', () => weather.close());
  const weatherUrl = `http://127.0.0.1:${weather.address().port}`;

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  children.push(spawn(skein, ['serve', '--listen', `127.0.0.1:${port}`], { env, stdio: 'ignore' }));
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {
      /* not yet */
    }
    if (i > 300) throw new Error('skein did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }

  const call = async (method, path, token, body) => {
    const r = await fetch(`${base}/api/v1/${path}`, {
      method,
      headers: { 'content-type': 'application/json', 'x-skein-csrf': '1', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const register = async (username) => {
    const r = await call('POST', 'auth/register', null, { username, email: `${username}@example.com`, password: PASSWORD, setup_token: setup });
    return r.access_token;
  };
  const root = await register('root');
  const ada = await register('ada');
  const me = await call('GET', 'user/profile', ada);
  await call('POST', 'channels', root, { type: 'openai', name: 'mock', base_url: mockUrl, keys: ['sk-upstream'], models: [MODEL], priority: 10 });
  await call('PUT', `admin/pricing/${MODEL}`, root, { input_per_mtok: 1000, output_per_mtok: 2000, cache_read_per_mtok: 0, cache_write_per_mtok: 0, per_call: 0 });
  await call('POST', `admin/billing/users/${me.id}/adjust`, root, { amount: 10_000_000, memo: 'e2e' });
  await call('PUT', 'admin/plugins/settings', root, { search: null, allow_private_addresses: true });
  const document = {
    openapi: '3.0.3',
    info: { title: 'Weather', version: '1' },
    servers: [{ url: weatherUrl }],
    paths: { '/weather': { get: { operationId: 'get_weather', summary: "Today's weather in a city", parameters: [{ name: 'city', in: 'query', required: true, schema: { type: 'string' } }] } } },
  };
  const plugin = await call('POST', 'admin/plugins', root, { name: 'Weather', kind: 'openapi', category: 'tools', openapi: document });
  await call('PATCH', `admin/plugins/${plugin.id}`, root, { price_per_call: 25, requires_approval: true });
  await call('PUT', `plugins/${plugin.id}/preferences`, ada, { enabled: true });

  const login = async (extra = []) => {
    const r = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-skein-csrf': '1' }, body: JSON.stringify({ login: 'ada', password: PASSWORD }) });
    const value = r.headers.getSetCookie().find((c) => c.startsWith('skein_refresh=')).split(';')[0].slice('skein_refresh='.length);
    return {
      cookies: [{ name: 'skein_refresh', value, domain: '127.0.0.1', path: '/api/v1/auth', expires: -1, httpOnly: true, secure: false, sameSite: 'Strict' }],
      origins: [{ origin: base, localStorage: [{ name: 'skein.session', value: 'e2e' }, ...extra] }],
    };
  };

  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US', colorScheme: 'light', storageState: await login() });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  let conversationPath = '';
  try {
    await step('the model calls the tool: the thread asks for approval and nothing runs yet', async () => {
      await page.goto(`${base}/chat`);
      const composer = page.getByLabel('Send', { exact: true });
      await composer.fill('Paris');
      await composer.press('Enter');
      await page.getByTestId('tool-approval').waitFor();
      await page.waitForURL(/\/chat\/[^/]+$/);
      conversationPath = new URL(page.url()).pathname;
      check(asked.length === 0, `the service was not called before approval: ${asked}`);
      await page.locator('[data-testid="tool-step"]').first().evaluate((d) => (d.open = true));
      await page.screenshot({ path: join(shots, 'tools-approval-1440-light.png') });
    });

    await step('Approve: the tool runs, the answer goes on, the call is charged once', async () => {
      await page.getByTestId('tool-approve').click();
      await page.locator('[data-testid="tool-step"][data-state="done"]').waitFor();
      await page.getByTestId('tool-approval').waitFor({ state: 'detached' });
      check(asked.length === 1 && asked[0] === 'Paris', `the service was called once for Paris: ${asked}`);
      await page.locator('[data-testid="tool-step"]').first().evaluate((d) => (d.open = true));
      await page.waitForTimeout(500);
      await page.screenshot({ path: join(shots, 'tools-approved-1440-light.png') });
      let records = [];
      for (let i = 0; i < 100; i++) {
        records = (await call('GET', 'billing/usage', ada)).items.filter((r) => r.model === 'tool:get_weather');
        if (records.length) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      check(records.length === 1 && records[0].cost === 25, `one charge of 25: ${JSON.stringify(records)}`);
    });

    await step('390 px dark: a second call is denied and does not run', async () => {
      const c = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true, hasTouch: true, locale: 'en-US', storageState: await login() });
      const p = await c.newPage();
      p.setDefaultTimeout(20_000);
      p.on('pageerror', (e) => errors.push(String(e)));
      await p.goto(`${base}${conversationPath}`);
      const composer = p.getByLabel('Send', { exact: true });
      await composer.fill('Oslo');
      await p.getByRole('button', { name: 'Send', exact: true }).click();
      await p.getByTestId('tool-approval').waitFor();
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(overflow <= 0, `the approval prompt at 390 px does not scroll sideways (${overflow} px)`);
      await p.screenshot({ path: join(shots, 'tools-approval-390-dark.png') });
      await p.getByTestId('tool-deny').click();
      await p.locator('[data-testid="tool-step"][data-state="error"]').waitFor();
      check(asked.length === 1, `a denied call does not run: ${asked}`);
      await p.waitForTimeout(500);
      await p.screenshot({ path: join(shots, 'tools-denied-390-dark.png') });
      await c.close();
    });
    check(errors.length === 0, `no page errors: ${errors.join('\n')}`);
    log('all tool steps passed');
  } catch (e) {
    await page.screenshot({ path: join(shots, 'tools-failure.png'), fullPage: true }).catch(() => undefined);
    throw e;
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
