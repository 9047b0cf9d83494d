// End to end: sign-up by SMS code in real headless Chromium against the real `skein` binary
// with `sms.provider = "log"` (the code is read from the server's log, as a developer would).
// A visitor opens the phone tab, asks for a code, types it and lands signed in with a new
// account; the personal centre shows the bound number. Saves screenshots (390 px dark, English
// and Chinese) to target/screenshots/phone-*.png.
//
// Environment: SKEIN_BIN (default CARGO_TARGET_DIR/debug/skein), CHROMIUM. Needs web/dist.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const repo = resolve(new URL('../..', import.meta.url).pathname);
const skein = process.env.SKEIN_BIN ?? join(resolve(repo, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug', 'skein');
const shots = join(repo, 'target', 'screenshots');
const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM')));

const log = (...a) => console.log('[e2e phone]', ...a);
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
  const data = mkdtempSync(join(tmpdir(), 'skein-e2e-phone-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = { ...process.env, SKEIN_DATA_DIR: data, RUST_LOG: 'warn', SKEIN_LOG_FORMAT: 'json', SKEIN_SMS__PROVIDER: 'log', SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE: '10000' };
  const made = spawnSync(skein, ['admin', 'create-user', '--username', 'root', '--role', 'root', '--password-stdin'], { env, input: 'admin horse battery staple\n', encoding: 'utf8' });
  check(made.status === 0, `create-user ${made.stderr}`);
  const server = spawn(skein, ['serve', '--listen', `127.0.0.1:${port}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(server);
  // The log provider writes each code to the log: keep the last one per number.
  const codes = new Map();
  const read = (chunk) => {
    for (const line of String(chunk).split('\n')) {
      const m = line.match(/"phone":"(\+\d+)".*"code":"(\d{6})"|"code":"(\d{6})".*"phone":"(\+\d+)"/);
      if (m) codes.set(m[1] ?? m[4], m[2] ?? m[3]);
    }
  };
  server.stdout.on('data', read);
  server.stderr.on('data', read);
  await waitFor(`${base}/readyz`);
  mkdirSync(shots, { recursive: true });

  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  for (const [lang, phone, tab, send, signIn] of [
    ['en', '+8613800138000', 'Phone', 'Send code', 'Sign in'],
    ['zh-CN', '+8613900139000', '手机号', '获取验证码', '登录'],
  ]) {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', locale: lang });
    await context.addInitScript((l) => {
      localStorage.setItem('skein.lang', l);
      localStorage.setItem('skein.theme', 'dark');
    }, lang);
    const page = await context.newPage();
    await page.goto(`${base}/login`);
    await page.getByRole('tab', { name: tab }).click();
    await page.locator('input[name=phone]').fill(phone);
    await page.getByRole('button', { name: send }).click();
    await page.getByTestId('phone-sent').waitFor();
    for (let i = 0; i < 50 && !codes.has(phone); i++) await new Promise((r) => setTimeout(r, 100));
    check(codes.has(phone), `the code for ${phone} is in the log`);
    await page.locator('input[name=code]').fill(codes.get(phone));
    await page.screenshot({ path: join(shots, `phone-signin-390-dark-${lang}.png`), fullPage: true });
    await page.getByRole('button', { name: signIn, exact: true }).click();
    await page.waitForURL(/\/chat/);
    check(true, `signed up by SMS code (${lang})`);
    await page.goto(`${base}/settings`);
    await page.getByTestId('phone-current').waitFor();
    check((await page.getByTestId('phone-current').textContent()) === phone, 'the personal centre shows the number');
    await page.getByTestId('phone-card').scrollIntoViewIfNeeded();
    await page.getByTestId('phone-card').screenshot({ path: join(shots, `phone-card-390-dark-${lang}.png`) });
    await context.close();
  }
  await browser.close();
  log('screenshots in', shots);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
