import { useEffect, useState } from 'react';
import { api } from '../../lib/api';
import { useT, type MessageKey } from '../../i18n';
import { Badge, Button, ErrorText, Field, Input, Textarea } from '../../components/ui';

/** `GET /admin/sign-in` → `ldap`: never carries the service account's password. */
export interface LdapView {
  source: 'config' | 'admin';
  enabled: boolean;
  url: string;
  starttls: boolean;
  ca_pem: string | null;
  bind_dn: string | null;
  bind_password_set: boolean;
  base_dn: string;
  user_filter: string;
  username_attribute: string;
  email_attribute: string;
  name_attribute: string;
  group_base_dn: string | null;
  group_filter: string;
  admin_groups: string[];
  allowed_groups: string[];
  timeout_secs: number;
}

/** The form: every field as typed (group lists one DN a line; the password always starts empty). */
export interface LdapForm {
  url: string;
  starttls: boolean;
  ca_pem: string;
  bind_dn: string;
  bind_password: string;
  base_dn: string;
  user_filter: string;
  username_attribute: string;
  email_attribute: string;
  name_attribute: string;
  group_base_dn: string;
  group_filter: string;
  admin_groups: string;
  allowed_groups: string;
  timeout_secs: string;
}

/** `POST /admin/sign-in/ldap/test`. */
export interface LdapTestAnswer {
  result: 'found' | 'not_found' | 'ambiguous' | 'tls_error' | 'error';
  person: {
    dn: string;
    username: string | null;
    email: string | null;
    display_name: string | null;
    groups: string[];
    role: string;
    allowed: boolean;
  } | null;
  matches: number | null;
  error: string | null;
}

/** The form's values for the settings in effect. */
export function ldapFormOf(v: LdapView): LdapForm {
  return {
    url: v.url,
    starttls: v.starttls,
    ca_pem: v.ca_pem ?? '',
    bind_dn: v.bind_dn ?? '',
    bind_password: '',
    base_dn: v.base_dn,
    user_filter: v.user_filter,
    username_attribute: v.username_attribute,
    email_attribute: v.email_attribute,
    name_attribute: v.name_attribute,
    group_base_dn: v.group_base_dn ?? '',
    group_filter: v.group_filter,
    admin_groups: v.admin_groups.join('\n'),
    allowed_groups: v.allowed_groups.join('\n'),
    timeout_secs: String(v.timeout_secs),
  };
}

const lines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
const orNull = (text: string) => (text.trim() ? text.trim() : null);

/**
 * The `ldap` update for the form. An empty password is left out, so the one in effect is kept;
 * empty optional fields are `null` (the server's defaults).
 */
export function ldapUpdateOf(f: LdapForm): Record<string, unknown> {
  const update: Record<string, unknown> = {
    url: f.url.trim(),
    starttls: f.starttls,
    ca_pem: orNull(f.ca_pem),
    bind_dn: orNull(f.bind_dn),
    base_dn: f.base_dn.trim(),
    user_filter: orNull(f.user_filter),
    username_attribute: orNull(f.username_attribute),
    email_attribute: orNull(f.email_attribute),
    name_attribute: orNull(f.name_attribute),
    group_base_dn: orNull(f.group_base_dn),
    group_filter: orNull(f.group_filter),
    admin_groups: lines(f.admin_groups),
    allowed_groups: lines(f.allowed_groups),
  };
  const timeout = Number(f.timeout_secs);
  if (f.timeout_secs.trim() && Number.isFinite(timeout)) update.timeout_secs = timeout;
  if (f.bind_password) update.bind_password = f.bind_password;
  return update;
}

const textFields: Array<{ key: keyof LdapForm; label: MessageKey; placeholder?: string; wide?: boolean }> = [
  { key: 'url', label: 'ldap.url', placeholder: 'ldaps://ldap.example.com', wide: true },
  { key: 'bind_dn', label: 'ldap.bindDn', placeholder: 'cn=skein,ou=services,dc=example,dc=com', wide: true },
  { key: 'base_dn', label: 'ldap.baseDn', placeholder: 'ou=people,dc=example,dc=com', wide: true },
  { key: 'user_filter', label: 'ldap.userFilter', wide: true },
  { key: 'username_attribute', label: 'ldap.loginAttr', placeholder: 'uid' },
  { key: 'email_attribute', label: 'ldap.emailAttr', placeholder: 'mail' },
  { key: 'name_attribute', label: 'ldap.nameAttr', placeholder: 'cn' },
  { key: 'timeout_secs', label: 'ldap.timeout', placeholder: '10' },
  { key: 'group_base_dn', label: 'ldap.groupBaseDn', placeholder: 'ou=groups,dc=example,dc=com', wide: true },
  { key: 'group_filter', label: 'ldap.groupFilter', wide: true },
];

/** Admin → Sign-in → Company directory (LDAP): the settings, saved with the other sign-in
 * settings, and a connection test against the form as it stands. */
export function LdapSettingsCard({
  view,
  origin,
  busy,
  apply,
}: {
  view: LdapView;
  origin: React.ReactNode;
  busy: boolean;
  apply: (body: Record<string, unknown>) => Promise<void>;
}) {
  const t = useT();
  const [form, setForm] = useState<LdapForm>(() => ldapFormOf(view));
  const [login, setLogin] = useState('');
  const [testing, setTesting] = useState(false);
  const [answer, setAnswer] = useState<LdapTestAnswer | null>(null);
  const [testError, setTestError] = useState<unknown>(null);
  useEffect(() => setForm(ldapFormOf(view)), [view]);
  const set = (key: keyof LdapForm, value: string | boolean) => setForm({ ...form, [key]: value });

  const test = async () => {
    setTesting(true);
    setAnswer(null);
    setTestError(null);
    try {
      setAnswer(await api<LdapTestAnswer>('admin/sign-in/ldap/test', { method: 'POST', body: { login, settings: ldapUpdateOf(form) } }));
    } catch (err) {
      setTestError(err);
    } finally {
      setTesting(false);
    }
  };

  return (
    <form
      className="space-y-3"
      data-testid="ldap-settings"
      onSubmit={(e) => {
        e.preventDefault();
        void apply({ ldap: ldapUpdateOf(form) });
      }}
    >
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 className="flex items-center gap-2 font-semibold">
          {t('ldap.title')}
          <Badge tone={view.enabled ? 'ok' : 'neutral'}>{t(view.enabled ? 'ldap.on' : 'ldap.off')}</Badge>
        </h2>
        {origin}
      </div>
      <p className="text-xs text-muted-fg">{t('ldap.hint')}</p>
      <div className="grid gap-3 sm:grid-cols-2">
        {textFields.map((f) => (
          <div key={f.key} className={f.wide ? 'sm:col-span-2' : undefined}>
            <Field label={t(f.label)}>
              <Input
                name={`ldap_${f.key}`}
                className="w-full"
                inputMode={f.key === 'timeout_secs' ? 'numeric' : undefined}
                autoComplete="off"
                spellCheck={false}
                placeholder={f.placeholder}
                value={form[f.key] as string}
                onChange={(e) => set(f.key, e.target.value)}
              />
            </Field>
          </div>
        ))}
        <div className="sm:col-span-2">
          <Field label={t('ldap.bindPassword')} hint={t(view.bind_password_set ? 'signin.secretKept' : 'oauth.secretHint')}>
            <Input
              name="ldap_bind_password"
              type="password"
              className="w-full"
              autoComplete="new-password"
              placeholder={view.bind_password_set ? '••••••••' : undefined}
              value={form.bind_password}
              onChange={(e) => set('bind_password', e.target.value)}
            />
          </Field>
          {view.bind_password_set && (
            <p className="mt-1 text-xs" data-testid="ldap-password-set">
              <Badge tone="ok">{t('ldap.passwordSet')}</Badge>
            </p>
          )}
        </div>
        <label className="flex cursor-pointer items-start gap-3 text-sm sm:col-span-2">
          <input type="checkbox" className="mt-1 h-4 w-4 shrink-0" name="ldap_starttls" checked={form.starttls} onChange={(e) => set('starttls', e.target.checked)} />
          <span>
            <span className="block font-medium">{t('ldap.starttls')}</span>
            <span className="block text-xs text-muted-fg">{t('ldap.starttlsHint')}</span>
          </span>
        </label>
        <div className="sm:col-span-2">
          <Field label={`${t('ldap.ca')} (${t('common.optional')})`} hint={t('ldap.caHint')}>
            <Textarea
              name="ldap_ca_pem"
              rows={4}
              className="w-full font-mono text-xs"
              spellCheck={false}
              placeholder="-----BEGIN CERTIFICATE-----"
              value={form.ca_pem}
              onChange={(e) => set('ca_pem', e.target.value)}
            />
          </Field>
        </div>
        <Field label={t('ldap.adminGroups')} hint={t('ldap.groupsHint')}>
          <Textarea name="ldap_admin_groups" rows={3} className="w-full font-mono text-xs" spellCheck={false} value={form.admin_groups} onChange={(e) => set('admin_groups', e.target.value)} />
        </Field>
        <Field label={t('ldap.allowedGroups')} hint={t('ldap.allowedHint')}>
          <Textarea name="ldap_allowed_groups" rows={3} className="w-full font-mono text-xs" spellCheck={false} value={form.allowed_groups} onChange={(e) => set('allowed_groups', e.target.value)} />
        </Field>
      </div>
      <div className="flex justify-end">
        <Button type="submit" disabled={busy}>{t('common.save')}</Button>
      </div>

      <div className="space-y-2 border-t border-border pt-3">
        <h3 className="text-sm font-medium">{t('ldap.test')}</h3>
        <p className="text-xs text-muted-fg">{t('ldap.testHint')}</p>
        <div className="flex flex-wrap gap-2">
          <Input
            name="ldap_test_login"
            className="min-w-0 flex-1"
            autoComplete="off"
            placeholder={t('ldap.testLogin')}
            aria-label={t('ldap.testLogin')}
            value={login}
            onChange={(e) => setLogin(e.target.value)}
          />
          <Button type="button" variant="secondary" disabled={testing || !login.trim()} onClick={() => void test()} data-testid="ldap-test">
            {t(testing ? 'ldap.testing' : 'ldap.testButton')}
          </Button>
        </div>
        <ErrorText error={testError} />
        {answer && <TestAnswer answer={answer} />}
      </div>
    </form>
  );
}

function TestAnswer({ answer }: { answer: LdapTestAnswer }) {
  const t = useT();
  const ok = answer.result === 'found';
  const failed = answer.result === 'error' || answer.result === 'tls_error';
  const p = answer.person;
  return (
    <div
      data-testid="ldap-test-result"
      data-result={answer.result}
      className={`space-y-1 rounded-md px-3 py-2 text-sm ${ok ? 'bg-ok/10' : failed ? 'bg-danger/10 text-danger' : 'bg-muted'}`}
    >
      <p className="font-medium">
        {t(
          (
            {
              found: 'ldap.found',
              not_found: 'ldap.notFound',
              ambiguous: 'ldap.ambiguous',
              tls_error: 'ldap.tlsError',
              error: 'ldap.error',
            } as const
          )[answer.result],
          { n: answer.matches ?? 0 },
        )}
      </p>
      {answer.error && <p className="break-words font-mono text-xs">{answer.error}</p>}
      {p && (
        <dl className="grid grid-cols-[auto_1fr] gap-x-3 gap-y-0.5 text-xs">
          <dt className="text-muted-fg">DN</dt>
          <dd className="break-all font-mono">{p.dn}</dd>
          <dt className="text-muted-fg">{t('ldap.loginAttr')}</dt>
          <dd className="break-all">{p.username ?? '—'}</dd>
          <dt className="text-muted-fg">{t('ldap.emailAttr')}</dt>
          <dd className="break-all">{p.email ?? '—'}</dd>
          <dt className="text-muted-fg">{t('ldap.nameAttr')}</dt>
          <dd className="break-all">{p.display_name ?? '—'}</dd>
          <dt className="text-muted-fg">{t('ldap.role')}</dt>
          <dd>{p.allowed ? p.role : t('ldap.notAllowed')}</dd>
          <dt className="text-muted-fg">{t('ldap.groups')}</dt>
          <dd className="break-all font-mono">{p.groups.join(', ') || '—'}</dd>
        </dl>
      )}
    </div>
  );
}
