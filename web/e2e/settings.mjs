// The system settings, invites and API-key pages in real headless Chromium against the real
// binary: an admin changes settings in the browser (they apply without a restart: the
// registration page and the banner follow), a user sees money in the chosen currency, makes
// an invite code, and reads the key snippets. Screenshots of each page at 1440 px light English
// and 390 px dark Chinese go to target/screenshots/settings-*.png.
//
// Environment: SKEIN_BIN (default: CARGO_TARGET_DIR or target/debug/skein, built beforehand),
// CHROMIUM (default /usr/bin/chromium).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const repo = resolve(new URL('../..', import.meta.url).pathname);
const skein = process.env.SKEIN_BIN ?? join(resolve(repo, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug', 'skein');
const shots = join(repo, 'target', 'screenshots');
const PASSWORD = 'correct horse battery';
let failures = 0;
const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM')));

const log = (...a) => console.log('[settings]', ...a);
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
  return { status: r.status, json: text ? JSON.parse(text) : null };
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

const looks = [
  { name: 'desktop-light-en', viewport: { width: 1440, height: 900 }, lang: 'en', theme: 'light', locale: 'en-US' },
  { name: 'phone-dark-zh', viewport: { width: 390, height: 844 }, lang: 'zh-CN', theme: 'dark', locale: 'zh-CN', isMobile: true },
];

async function main() {
  check(existsSync(skein), `${skein} exists (cargo build -p skein)`);
  mkdirSync(shots, { recursive: true });
  const data = mkdtempSync(join(tmpdir(), 'skein-settings-'));
  const env = { ...process.env, SKEIN_DATA_DIR: data, RUST_LOG: 'warn', SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE: '10000' };
  const made = spawnSync(skein, ['admin', 'create-user', '--username', 'root', '--role', 'root', '--password-stdin'], { env, input: `${PASSWORD}\n`, encoding: 'utf8' });
  check(made.status === 0, `create-user: ${made.stderr}`);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  children.push(spawn(skein, ['serve', '--listen', `127.0.0.1:${port}`], { env, stdio: 'ignore' }));
  await waitReady(base);
  const root = (await call(base, '/api/v1/auth/login', { method: 'POST', body: { login: 'root', password: PASSWORD } })).json.access_token;
  const ada = await call(base, '/api/v1/auth/register', { method: 'POST', body: { username: 'ada', password: PASSWORD } });
  check(ada.status === 201, `register ada: ${ada.status}`);
  await call(base, '/api/v1/admin/pricing/defaults', { token: root, method: 'POST' });
  await call(base, `/api/v1/admin/billing/users/${ada.json.user.id}/adjust`, { token: root, method: 'POST', body: { amount: 3_700_000, memo: 'welcome' } });
  await call(base, '/api/v1/user/invite-codes', { token: ada.json.access_token, method: 'POST', body: {} });
  await call(base, '/api/v1/admin/invite-codes', { token: root, method: 'POST', body: { count: 3, max_uses: 5, note: 'launch week' } });

  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });

  // The admin changes settings in the browser: invite-only, rewards, a banner, yuan.
  {
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US', storageState: await loginState(base, 'root') });
    const page = await ctx.newPage();
    await page.goto(`${base}/admin/system`);
    await page.getByTestId('system-settings').waitFor();
    await page.getByLabel(/Invite only/).check();
    await page.locator('input[name="invite_reward_inviter"]').fill('250000');
    await page.locator('input[name="invite_reward_invitee"]').fill('100000');
    await page.locator('textarea[name="announcement_en"]').fill('Scheduled maintenance on Saturday 22:00–23:00 UTC. Chats in progress are kept.');
    await page.locator('textarea[name="announcement_zh"]').fill('周六 22:00–23:00（UTC）例行维护，进行中的对话会保留。');
    await page.locator('select[name="currency"]').selectOption('cny');
    // Wait for the save itself: "Changed" can show before the server has answered.
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/v1/admin/settings') && r.request().method() === 'PUT');
    await page.getByRole('button', { name: 'Save' }).click();
    check((await saved).ok(), 'the save is accepted');
    await page.getByText('Changed').first().waitFor();
    const settings = await call(base, '/api/v1/settings/public');
    check(settings.json.registration_mode === 'invite_only', `saved mode: ${JSON.stringify(settings.json)}`);
    check(settings.json.currency === 'cny', 'saved currency');
    const banner = await page.getByTestId('announcement').waitFor({ timeout: 10_000 }).then(() => true, () => false);
    check(banner, 'the banner shows at once');
    await ctx.close();
  }

  for (const look of looks) {
    const extra = [{ name: 'skein.lang', value: look.lang }, { name: 'skein.theme', value: look.theme }];
    const shot = async (page, name) => page.screenshot({ path: join(shots, `settings-${name}-${look.name}.png`), fullPage: !look.isMobile });
    const adminCtx = await browser.newContext({ viewport: look.viewport, locale: look.locale, isMobile: look.isMobile, hasTouch: look.isMobile, storageState: await loginState(base, 'root', extra) });
    const admin = await adminCtx.newPage();
    for (const [path, name, ready] of [
      ['/admin/system', 'admin-system', 'system-settings'],
      ['/admin/invites', 'admin-invites', null],
      ['/admin/dashboard', 'checklist', 'setup-checklist'],
    ]) {
      await admin.goto(`${base}${path}`);
      if (ready) await admin.getByTestId(ready).waitFor();
      else await admin.waitForLoadState('networkidle');
      await shot(admin, name);
    }
    await adminCtx.close();

    const userCtx = await browser.newContext({ viewport: look.viewport, locale: look.locale, isMobile: look.isMobile, hasTouch: look.isMobile, storageState: await loginState(base, 'ada', extra) });
    const user = await userCtx.newPage();
    await user.goto(`${base}/usage`);
    await user.waitForLoadState('networkidle');
    check((await user.content()).includes('¥'), 'usage shows yuan');
    await shot(user, 'usage');
    await user.goto(`${base}/invites`);
    await user.waitForLoadState('networkidle');
    check(await user.getByTestId('invite-rewards').isVisible(), 'rewards are shown');
    await shot(user, 'invites');
    await user.goto(`${base}/keys`);
    await user.getByTestId('api-snippets').waitFor();
    await shot(user, 'keys');
    await user.goto(`${base}/settings`);
    await user.waitForLoadState('networkidle');
    await shot(user, 'settings');
    await userCtx.close();

    const anon = await browser.newContext({ viewport: look.viewport, locale: look.locale, isMobile: look.isMobile, storageState: { cookies: [], origins: [{ origin: base, localStorage: extra }] } });
    const p = await anon.newPage();
    await p.goto(`${base}/register`);
    await p.locator('input[name="invite_code"]').waitFor();
    await shot(p, 'register-invite-only');
    await anon.close();
  }

  // Closed registration applies at once: the page says so, and the API refuses.
  await call(base, '/api/v1/admin/settings', { token: root, method: 'PUT', body: { registration_mode: 'closed' } });
  {
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US' });
    const p = await ctx.newPage();
    await p.goto(`${base}/register`);
    await p.getByTestId('registration-closed').waitFor();
    const refused = await call(base, '/api/v1/auth/register', { method: 'POST', body: { username: 'eve', password: PASSWORD } });
    check(refused.status === 403, `closed registration refused: ${refused.status}`);
    await ctx.close();
  }
  await browser.close();
  log(failures ? `${failures} check(s) failed` : `all checks passed; screenshots in ${shots}`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
