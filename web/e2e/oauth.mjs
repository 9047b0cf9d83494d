// End to end: "Sign in with …" in real headless Chromium, through a real OpenID Connect
// provider (npm's oauth2-mock-server via scripts/oidc-mock.mjs, or the one at
// SKEIN_TEST_OIDC_URL), against the real `skein` binary. An admin adds the provider through the
// API; a visitor clicks the button, is sent to the provider and back to /oauth/callback/corp,
// and lands signed in; the personal centre lists the linked provider. Saves screenshots (390 px
// dark, English and Chinese; the admin page at 1440 px) to target/screenshots/oauth-*.png.
//
// Environment: SKEIN_BIN (default CARGO_TARGET_DIR/debug/skein), CHROMIUM, SKEIN_TEST_OIDC_URL
// or OAUTH2_MOCK_SERVER (the package directory, to start one).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const repo = resolve(new URL('../..', import.meta.url).pathname);
const skein = process.env.SKEIN_BIN ?? join(resolve(repo, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug', 'skein');
const shots = join(repo, 'target', 'screenshots');
const ADMIN_PASSWORD = 'admin horse battery staple';
const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM')));

const log = (...a) => console.log('[e2e oauth]', ...a);
function check(ok, what) {
  if (!ok) throw new Error(`FAILED: ${what}`);
  log(`ok: ${what}`);
}
const freePort = () =>
  new Promise((res, rej) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
    srv.on('error', rej);
  });
async function waitFor(url) {
  for (let i = 0; i < 150; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer`);
}

async function main() {
  check(existsSync(skein), `${skein} exists`);
  check(existsSync(join(repo, 'web', 'dist', 'index.html')), 'web/dist is built (npm run build)');
  let issuer = process.env.SKEIN_TEST_OIDC_URL;
  if (!issuer) {
    const port = await freePort();
    const mock = spawn('node', [join(repo, 'scripts', 'oidc-mock.mjs'), String(port)], { stdio: 'ignore', env: process.env });
    children.push(mock);
    issuer = `http://127.0.0.1:${port}`;
  }
  await waitFor(`${issuer}/.well-known/openid-configuration`);

  const data = mkdtempSync(join(tmpdir(), 'skein-e2e-oauth-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = { ...process.env, SKEIN_DATA_DIR: data, RUST_LOG: 'warn', SKEIN_OAUTH__PUBLIC_URL: base, SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE: '10000' };
  const made = spawnSync(skein, ['admin', 'create-user', '--username', 'root', '--role', 'root', '--password-stdin'], { env, input: `${ADMIN_PASSWORD}\n`, encoding: 'utf8' });
  check(made.status === 0, `create-user ${made.stderr}`);
  const server = spawn(skein, ['serve', '--listen', `127.0.0.1:${port}`], { env, stdio: ['ignore', 'ignore', process.env.E2E_VERBOSE ? 'inherit' : 'ignore'] });
  children.push(server);
  await waitFor(`${base}/readyz`);

  // The admin adds the provider through the API.
  const login = await (await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: 'root', password: ADMIN_PASSWORD }) })).json();
  const added = await fetch(`${base}/api/v1/admin/oauth/providers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${login.access_token}` },
    body: JSON.stringify({ slug: 'corp', kind: 'oidc', name: 'Corp SSO', client_id: 'skein', client_secret: 'e2e-secret', issuer }),
  });
  check(added.status === 201, `admin adds the provider (${added.status})`);

  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    for (const [locale, lang, button, linked] of [
      ['en-US', 'en', 'Sign in with Corp SSO', 'Linked sign-in'],
      ['zh-CN', 'zh-CN', '使用 Corp SSO 登录', '第三方登录'],
    ]) {
      const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, locale, colorScheme: 'dark' });
      await ctx.addInitScript((l) => localStorage.setItem('skein.lang', l), lang);
      const page = await ctx.newPage();
      page.setDefaultTimeout(15_000);
      await page.goto(`${base}/login`);
      await page.getByRole('button', { name: button }).waitFor();
      await page.screenshot({ path: join(shots, `oauth-login-390-dark-${lang}.png`), fullPage: true });
      await page.getByRole('button', { name: button }).click();
      // To the provider, which approves at once, and back through the callback page.
      await page.waitForURL(/\/chat/);
      check(true, `${lang}: signed in through the provider and landed in chat`);
      await page.goto(`${base}/settings`);
      const card = page.getByTestId('linked-providers');
      await card.getByText('Corp SSO').waitFor();
      await card.getByText(linked).waitFor();
      check(true, `${lang}: the personal centre lists the linked provider`);
      await card.scrollIntoViewIfNeeded();
      await card.screenshot({ path: join(shots, `oauth-linked-390-dark-${lang}.png`) });
      await ctx.close();
    }
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'dark' });
    const page = await ctx.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(`${base}/login`);
    await page.getByLabel('Username or email').fill('root');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(/\/chat/);
    await page.goto(`${base}/admin/sign-in`);
    await page.getByTestId('admin-oauth').getByText('Corp SSO').filter({ visible: true }).first().waitFor();
    check(!(await page.content()).includes('e2e-secret'), 'the admin page never shows the secret');
    await page.screenshot({ path: join(shots, 'oauth-admin-1440-dark-en.png'), fullPage: true });
    const narrow = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', storageState: await ctx.storageState() });
    const small = await narrow.newPage();
    await small.goto(`${base}/admin/sign-in`);
    await small.getByTestId('admin-oauth').getByText('Corp SSO').filter({ visible: true }).first().waitFor();
    await small.screenshot({ path: join(shots, 'oauth-admin-390-dark-en.png'), fullPage: true });
  } finally {
    await browser.close();
  }
  log(`screenshots in ${shots}`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
