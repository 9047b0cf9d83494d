// End to end: Admin → Sign-in and passkeys in real headless Chromium against the real `skein`
// binary. Chromium's virtual authenticator (DevTools WebAuthn domain: a CTAP2 platform key with
// user verification) stands in for a fingerprint reader, so the whole ceremony runs for real:
// navigator.credentials.create() in Settings, then "Sign in with a passkey" after signing out,
// then a password sign-in answered with the passkey as the second step. The admin picks Twilio
// as the SMS vendor (its token never shown again), then sets the company directory (LDAP): its
// service password is not shown again after saving, and "Test connection" finds Ada in the real
// slapd when scripts/test started one (SKEIN_TEST_LDAP_URL, over ldaps:// with its CA when
// SKEIN_TEST_LDAPS_URL and SKEIN_TEST_LDAP_CA are set), or shows the connection error when there
// is none. Screenshots (390 px dark, English and Chinese; the LDAP card also 1440 px light) go
// to target/screenshots/signin-*.png.
//
// Environment: SKEIN_BIN (default CARGO_TARGET_DIR/debug/skein), CHROMIUM, and the LDAP
// variables above (optional). Needs web/dist.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const repo = resolve(new URL('../..', import.meta.url).pathname);
const skein = process.env.SKEIN_BIN ?? join(resolve(repo, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug', 'skein');
const shots = join(repo, 'target', 'screenshots');
const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM')));
const PASSWORD = 'admin horse battery staple';

const log = (...a) => console.log('[e2e signin]', ...a);
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

const text = {
  en: { login: 'Username or email', password: 'Password', signIn: 'Sign in', add: 'Add a passkey', passkey: 'Sign in with a passkey', step: 'Use a passkey', signOut: 'Sign out', vendor: 'SMS vendor', save: 'Save' },
  'zh-CN': { login: '用户名或邮箱', password: '密码', signIn: '登录', add: '添加通行密钥', passkey: '使用通行密钥登录', step: '使用通行密钥', signOut: '退出登录', vendor: '短信服务商', save: '保存' },
};

async function main() {
  check(existsSync(skein), `${skein} exists`);
  check(existsSync(join(repo, 'web', 'dist', 'index.html')), 'web/dist is built (npm run build)');
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  for (const lang of ['en', 'zh-CN']) {
    const t = text[lang];
    // One server per language, so each run starts with no passkey. `localhost`: WebAuthn takes
    // no IP address as its RP ID, and Chromium treats localhost as a secure context.
    const data = mkdtempSync(join(tmpdir(), 'skein-e2e-signin-'));
    const port = await freePort();
    const base = `http://localhost:${port}`;
    const env = { ...process.env, SKEIN_DATA_DIR: data, RUST_LOG: 'warn', SKEIN_OAUTH__PUBLIC_URL: base, SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE: '10000' };
    const made = spawnSync(skein, ['admin', 'create-user', '--username', 'root', '--role', 'root', '--password-stdin'], { env, input: `${PASSWORD}\n`, encoding: 'utf8' });
    check(made.status === 0, `create-user ${made.stderr}`);
    const server = spawn(skein, ['serve', '--listen', `127.0.0.1:${port}`], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(server);
    await waitFor(`${base}/readyz`);

    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', locale: lang });
    await context.addInitScript((l) => {
      localStorage.setItem('skein.lang', l);
      localStorage.setItem('skein.theme', 'dark');
    }, lang);
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });

    await page.goto(`${base}/login`);
    await page.getByLabel(t.login).fill('root');
    await page.getByLabel(t.password, { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: t.signIn, exact: true }).click();
    await page.waitForURL(/\/chat/);

    // Admin → Sign-in: methods, the SMS vendor (Twilio, its token never shown again).
    await page.goto(`${base}/admin/sign-in`);
    await page.getByTestId('admin-sign-in').waitFor();
    await page.getByRole('combobox', { name: t.vendor }).selectOption('twilio');
    await page.locator('input[name=account_sid]').fill('AC0123456789abcdef0123456789abcdef');
    await page.locator('input[name=auth_token]').fill('twilio-e2e-token');
    await page.locator('input[name=from]').fill('+15005550006');
    // Listen before clicking: a quick answer must not slip past the wait.
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/v1/admin/sign-in') && r.request().method() === 'PUT');
    await page.getByTestId('sms-settings').getByRole('button', { name: t.save }).click();
    await saved;
    await page.getByTestId('admin-sign-in').getByText(lang === 'en' ? 'Saved. Leave empty' : '已保存。留空').waitFor();
    check((await page.locator('input[name=auth_token]').inputValue()) === '', 'the saved token is not shown again');
    await page.screenshot({ path: join(shots, `signin-admin-390-dark-${lang}.png`), fullPage: true });

    // The company directory: fill, save, the password not shown again, test the connection.
    await ldapSteps(page, lang, port);

    // Settings → Passkeys: a real create() against the virtual authenticator.
    await page.goto(`${base}/settings`);
    await page.getByTestId('passkeys').scrollIntoViewIfNeeded();
    await page.getByRole('button', { name: t.add }).click();
    await page.getByTestId('passkeys').locator('li').first().waitFor();
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    check(credentials.length === 1 && credentials[0].isResidentCredential && credentials[0].rpId === 'localhost', 'the authenticator holds one discoverable passkey for localhost');
    await page.getByTestId('passkeys').screenshot({ path: join(shots, `signin-passkeys-390-dark-${lang}.png`) });

    // Sign out, then sign in with the passkey alone.
    await page.goto(`${base}/chat`);
    await page.getByRole('button', { name: t.signOut }).first().click();
    await page.waitForURL(/\/login/);
    await page.getByRole('button', { name: t.passkey }).waitFor();
    await page.screenshot({ path: join(shots, `signin-login-390-dark-${lang}.png`), fullPage: true });
    await page.getByRole('button', { name: t.passkey }).click();
    await page.waitForURL(/\/chat/);
    check(true, `signed in with a passkey, no password (${lang})`);

    // A password now needs the passkey as its second step.
    await page.getByRole('button', { name: t.signOut }).first().click();
    await page.waitForURL(/\/login/);
    await page.getByLabel(t.login).fill('root');
    await page.getByLabel(t.password, { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: t.signIn, exact: true }).click();
    await page.getByRole('button', { name: t.step }).click();
    await page.waitForURL(/\/chat/);
    check(true, `a password then the passkey as the second step (${lang})`);
    await context.close();
    server.kill('SIGTERM');
  }
  await browser.close();
  log('screenshots in', shots);
}

/** The directory to point the form at: the real slapd (over ldaps:// with its CA when the TLS
 * variables are set), else a loopback port nobody listens on. */
async function directory() {
  const { SKEIN_TEST_LDAP_URL: plain, SKEIN_TEST_LDAPS_URL: ldaps, SKEIN_TEST_LDAP_CA: caFile } = process.env;
  if (ldaps && caFile) return { url: ldaps, ca: readFileSync(caFile, 'utf8'), real: true };
  if (plain) return { url: plain, ca: '', real: true };
  log('SKEIN_TEST_LDAP_URL is not set: the LDAP connection test is checked to show its error (scripts/test starts slapd)');
  return { url: `ldap://127.0.0.1:${await freePort()}`, ca: '', real: false };
}

async function ldapSteps(page, lang, port) {
  const t = text[lang];
  const dir = await directory();
  const card = page.getByTestId('ldap-settings');
  await card.scrollIntoViewIfNeeded();
  await card.locator('input[name=ldap_url]').fill(dir.url);
  await card.locator('textarea[name=ldap_ca_pem]').fill(dir.ca);
  await card.locator('input[name=ldap_bind_dn]').fill('uid=svc-skein,ou=people,dc=skein,dc=test');
  await card.locator('input[name=ldap_bind_password]').fill('service secret 42');
  await card.locator('input[name=ldap_base_dn]').fill('ou=people,dc=skein,dc=test');
  await card.locator('input[name=ldap_group_base_dn]').fill('ou=groups,dc=skein,dc=test');
  await card.locator('input[name=ldap_timeout_secs]').fill('3');
  await card.locator('textarea[name=ldap_admin_groups]').fill('cn=skein-admins,ou=groups,dc=skein,dc=test');
  await card.locator('textarea[name=ldap_allowed_groups]').fill('cn=staff,ou=groups,dc=skein,dc=test');
  const saved = page.waitForResponse((r) => r.url().endsWith('/api/v1/admin/sign-in') && r.request().method() === 'PUT');
  await card.getByRole('button', { name: t.save }).click();
  const answer = await saved;
  check(answer.ok(), `the directory settings are saved (${lang})`);
  check(!(await answer.text()).includes('service secret 42'), 'the saved answer does not carry the password');
  await card.getByTestId('ldap-password-set').waitFor();
  check((await card.locator('input[name=ldap_bind_password]').inputValue()) === '', 'the saved password is not shown again');
  check((await card.locator('input[name=ldap_url]').inputValue()) === dir.url, 'the URL stays as saved');

  const runTest = async () => {
    await card.locator('input[name=ldap_test_login]').fill('ada');
    const tested = page.waitForResponse((r) => r.url().endsWith('/api/v1/admin/sign-in/ldap/test'));
    await card.getByTestId('ldap-test').click();
    await tested;
    const result = card.getByTestId('ldap-test-result');
    await result.waitFor();
    // The screenshots show the window around the answer (the card is taller than a phone).
    await result.scrollIntoViewIfNeeded();
    await page.mouse.wheel(0, 200);
    return result;
  };
  const result = await runTest();
  if (dir.real) {
    check((await result.getAttribute('data-result')) === 'found', `the connection test finds Ada in the real directory (${lang})`);
    check((await result.textContent()).includes('ada@skein.test'), 'and shows her address');
  } else {
    check((await result.getAttribute('data-result')) === 'error', `the connection test shows the directory's error (${lang})`);
    check(((await result.textContent()) ?? '').length > 20, 'with its words');
  }
  await page.screenshot({ path: join(shots, `signin-ldap-390-dark-${lang}.png`) });

  // The same card at 1440 px in the light theme (the page's init script keeps choosing dark,
  // so the theme's class is taken off after the page loads).
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.goto(`http://localhost:${port}/admin/sign-in`);
  await card.waitFor();
  await page.evaluate(() => document.documentElement.classList.remove('dark'));
  await card.scrollIntoViewIfNeeded();
  await runTest();
  await page.screenshot({ path: join(shots, `signin-ldap-1440-light-${lang}.png`) });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`http://localhost:${port}/admin/sign-in`);
  await page.getByTestId('admin-sign-in').waitFor();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
