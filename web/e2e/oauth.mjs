// End to end: "Sign in with …" in real headless Chromium, through a real OpenID Connect
// provider (npm's oauth2-mock-server via scripts/oidc-mock.mjs, or the one at
// SKEIN_TEST_OIDC_URL), against the real `skein` binary. An admin adds the provider through the
// API; a visitor clicks the button, is sent to the provider and back to /oauth/callback/corp,
// and lands signed in; the personal centre lists the linked provider. Saves screenshots (390 px
// dark, English and Chinese; the admin page at 1440 px) to target/screenshots/oauth-*.png.
//
// Environment: SKEIN_BIN (default CARGO_TARGET_DIR/debug/skein), CHROMIUM, SKEIN_TEST_OIDC_URL
// or OAUTH2_MOCK_SERVER (the package directory, to start one).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { adopt, check as must, freePort, launchBrowser, logger, repo, requireBuilt, run, screenshot, signIn, startSkein, waitFor } from './harness.mjs';

const ADMIN_PASSWORD = 'admin horse battery staple';
const log = logger('e2e oauth');
function check(ok, what) {
  must(ok, what);
  log(`ok: ${what}`);
}

async function main() {
  requireBuilt();
  let issuer = process.env.SKEIN_TEST_OIDC_URL;
  if (!issuer) {
    const port = await freePort();
    adopt(spawn('node', [join(repo, 'scripts', 'oidc-mock.mjs'), String(port)], { stdio: 'ignore', env: process.env }));
    issuer = `http://127.0.0.1:${port}`;
  }
  await waitFor(`${issuer}/.well-known/openid-configuration`);

  const { base } = await startSkein({ name: 'oauth', root: ADMIN_PASSWORD, env: (base) => ({ SKEIN_OAUTH__PUBLIC_URL: base }) });

  // The admin adds the provider through the API.
  const login = await signIn(base, 'root', ADMIN_PASSWORD);
  const added = await fetch(`${base}/api/v1/admin/oauth/providers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${login.access_token}` },
    body: JSON.stringify({ slug: 'corp', kind: 'oidc', name: 'Corp SSO', client_id: 'skein', client_secret: 'e2e-secret', issuer }),
  });
  check(added.status === 201, `admin adds the provider (${added.status})`);

  const browser = await launchBrowser();
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
      await screenshot(page, `oauth-login-390-dark-${lang}`, { fullPage: true });
      await page.getByRole('button', { name: button }).click();
      // To the provider, which approves at once, and back through the callback page.
      await page.waitForURL(/\/chat/);
      check(true, `${lang}: signed in through the provider and landed in chat`);
      await page.goto(`${base}/settings`);
      const card = page.getByTestId('linked-providers');
      // The linked identity's row (not the link button shown for a provider not linked).
      await card.getByRole('listitem').filter({ hasText: 'Corp SSO' }).waitFor();
      await card.getByRole('heading', { name: linked }).waitFor();
      check(true, `${lang}: the personal centre lists the linked provider`);
      await card.scrollIntoViewIfNeeded();
      await screenshot(card, `oauth-linked-390-dark-${lang}`);
      await ctx.close();
    }
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: 'dark' });
    const page = await ctx.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(`${base}/login`);
    await page.getByLabel('Username or email').fill('root');
    await page.getByLabel('Password', { exact: true }).fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(/\/chat/);
    await page.goto(`${base}/admin/sign-in`);
    await page.getByTestId('admin-oauth').getByText('Corp SSO').filter({ visible: true }).first().waitFor();
    check(!(await page.content()).includes('e2e-secret'), 'the admin page never shows the secret');
    await screenshot(page, 'oauth-admin-1440-dark-en', { fullPage: true });
    const narrow = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', storageState: await ctx.storageState() });
    const small = await narrow.newPage();
    await small.goto(`${base}/admin/sign-in`);
    await small.getByTestId('admin-oauth').getByText('Corp SSO').filter({ visible: true }).first().waitFor();
    await screenshot(small, 'oauth-admin-390-dark-en', { fullPage: true });
  } finally {
    await browser.close();
  }
}

run(main, log);
