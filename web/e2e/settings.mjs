// The system settings, invites and API-key pages in real headless Chromium against the real
// binary: an admin changes settings in the browser (they apply without a restart: the
// registration page and the banner follow), a user sees money in the chosen currency, makes
// an invite code, and reads the key snippets. Screenshots of each page at 1440 px light English
// and 390 px dark Chinese go to target/screenshots/settings-*.png.
//
// Environment: SKEIN_BIN (default: CARGO_TARGET_DIR or target/debug/skein, built beforehand),
// CHROMIUM (default /usr/bin/chromium).
import { PASSWORD, check, launchBrowser, loginState as signedIn, logger, rawApi, requireBuilt, run, screenshot, startSkein } from './harness.mjs';

const log = logger('settings');
const loginState = (base, login, extra = []) => signedIn(base, login, { extra });

const looks = [
  { name: 'desktop-light-en', viewport: { width: 1440, height: 900 }, lang: 'en', theme: 'light', locale: 'en-US' },
  { name: 'phone-dark-zh', viewport: { width: 390, height: 844 }, lang: 'zh-CN', theme: 'dark', locale: 'zh-CN', isMobile: true },
];

async function main() {
  requireBuilt();
  const { base } = await startSkein({ name: 'settings', root: PASSWORD });
  const api = rawApi(base);
  const call = (_base, path, opts) => api(path, opts);
  const root = (await call(base, '/api/v1/auth/login', { method: 'POST', body: { login: 'root', password: PASSWORD } })).json.access_token;
  const ada = await call(base, '/api/v1/auth/register', { method: 'POST', body: { username: 'ada', password: PASSWORD } });
  check(ada.status === 201, `register ada: ${ada.status}`);
  await call(base, '/api/v1/admin/pricing/defaults', { token: root, method: 'POST' });
  await call(base, `/api/v1/admin/billing/users/${ada.json.user.id}/adjust`, { token: root, method: 'POST', body: { amount: 3_700_000, memo: 'welcome' } });
  await call(base, '/api/v1/user/invite-codes', { token: ada.json.access_token, method: 'POST', body: {} });
  await call(base, '/api/v1/admin/invite-codes', { token: root, method: 'POST', body: { count: 3, max_uses: 5, note: 'launch week' } });

  const browser = await launchBrowser();

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
    const shot = async (page, name) => screenshot(page, `settings-${name}-${look.name}`, { fullPage: !look.isMobile });
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
  log('all checks passed');
}

run(main, log);
