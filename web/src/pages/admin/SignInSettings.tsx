import { useEffect, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { useT, type MessageKey } from '../../i18n';
import { Badge, Button, Card, ErrorText, Field, Input, Select } from '../../components/ui';
import { toast } from '../../components/ui/toast';
import { qk } from '../../lib/queryKeys';
import { OAuthProviders } from './OAuthProviders';
import type { SignInMethods } from '../../lib/types';
import { LdapSettingsCard, type LdapView } from './LdapSettings';

export type SmsKind = 'log' | 'aliyun' | 'tencent' | 'twilio';

/** `GET /admin/sign-in`: never carries the SMS vendor's secret. */
export interface AdminSignIn {
  values: SignInMethods;
  defaults: SignInMethods;
  overridden: string[];
  sms: {
    provider: SmsKind | null;
    source: 'config' | 'admin';
    settings: Record<string, unknown> | null;
    secret_set: boolean;
    secret_field: string | null;
  };
  mail_enabled: boolean;
  ldap: LdapView;
}

interface VendorField {
  key: string;
  label: MessageKey;
  secret?: boolean;
  optional?: boolean;
  placeholder?: string;
}

/** Each vendor's settings, as `[sms.<vendor>]` spells them. */
export const vendorFields: Record<SmsKind, VendorField[]> = {
  log: [],
  aliyun: [
    { key: 'access_key_id', label: 'signin.accessKeyId', placeholder: 'LTAI…' },
    { key: 'access_key_secret', label: 'signin.accessKeySecret', secret: true },
    { key: 'sign_name', label: 'signin.signName' },
    { key: 'template_code', label: 'signin.templateCode', placeholder: 'SMS_123456789' },
    { key: 'endpoint', label: 'signin.endpoint', optional: true, placeholder: 'https://dysmsapi.aliyuncs.com' },
  ],
  tencent: [
    { key: 'secret_id', label: 'signin.secretId', placeholder: 'AKID…' },
    { key: 'secret_key', label: 'signin.secretKey', secret: true },
    { key: 'sdk_app_id', label: 'signin.sdkAppId', placeholder: '1400000000' },
    { key: 'sign_name', label: 'signin.signName' },
    { key: 'template_id', label: 'signin.templateId' },
    { key: 'region', label: 'signin.region', optional: true, placeholder: 'ap-guangzhou' },
    { key: 'endpoint', label: 'signin.endpoint', optional: true, placeholder: 'https://sms.tencentcloudapi.com' },
  ],
  twilio: [
    { key: 'account_sid', label: 'signin.accountSid', placeholder: 'AC…' },
    { key: 'auth_token', label: 'signin.authToken', secret: true },
    { key: 'api_key_sid', label: 'signin.apiKeySid', optional: true, placeholder: 'SK…' },
    { key: 'from', label: 'signin.from', optional: true, placeholder: '+15005550006' },
    { key: 'messaging_service_sid', label: 'signin.messagingService', optional: true, placeholder: 'MG…' },
    { key: 'brand', label: 'signin.brand', optional: true, placeholder: 'Skein' },
    { key: 'endpoint', label: 'signin.endpoint', optional: true, placeholder: 'https://api.twilio.com' },
  ],
};

/** The form's values for the vendor in effect (secrets always empty: never shown). */
export function smsFormOf(sms: AdminSignIn['sms']): { provider: SmsKind | ''; fields: Record<string, string> } {
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(sms.settings ?? {})) if (typeof v === 'string') fields[k] = v;
  return { provider: sms.provider ?? '', fields };
}

/**
 * The `sms` update for the form: empty fields are left out, so an empty secret keeps the
 * stored one and an empty optional field takes the vendor's default.
 */
export function smsUpdateOf(provider: SmsKind | '', fields: Record<string, string>) {
  if (!provider) return { provider: null };
  const settings: Record<string, string> = {};
  for (const f of vendorFields[provider]) {
    const v = (fields[f.key] ?? '').trim();
    if (v) settings[f.key] = v;
  }
  return { provider, settings };
}

const methods: Array<{ key: keyof SignInMethods; label: MessageKey; hint: MessageKey; mail?: boolean }> = [
  { key: 'password', label: 'signin.password', hint: 'signin.passwordHint' },
  { key: 'passkeys', label: 'signin.passkeys', hint: 'signin.passkeysHint' },
  { key: 'verified_email_for_login', label: 'signin.verifiedLogin', hint: 'signin.verifiedLoginHint', mail: true },
  { key: 'verified_email_for_relay', label: 'signin.verifiedRelay', hint: 'signin.verifiedRelayHint', mail: true },
];

/** Admin → Sign-in: which methods are on, the SMS vendor and its credentials, the company
 * directory (LDAP), and the OAuth / OIDC providers. Applied at once on every instance, without a restart. */
export function SignInSettingsPage() {
  const t = useT();
  const queryClient = useQueryClient();
  const settings = useQuery({ queryKey: qk.adminSignIn, queryFn: () => api<AdminSignIn>('admin/sign-in') });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [provider, setProvider] = useState<SmsKind | ''>('');
  const [fields, setFields] = useState<Record<string, string>>({});
  useEffect(() => {
    if (!settings.data) return;
    const form = smsFormOf(settings.data.sms);
    setProvider(form.provider);
    setFields(form.fields);
  }, [settings.data]);
  if (!settings.data) return <ErrorText error={settings.error} />;
  const data = settings.data;
  const changed = new Set(data.overridden);

  const apply = async (body: Record<string, unknown>) => {
    setBusy(true);
    setError(null);
    try {
      const next = await api<AdminSignIn>('admin/sign-in', { method: 'PUT', body });
      queryClient.setQueryData(qk.adminSignIn, next);
      await queryClient.invalidateQueries({ queryKey: qk.publicSettings });
      toast(t('common.saved'));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const origin = (name: string) =>
    changed.has(name) ? (
      <span className="flex items-center gap-2">
        <Badge tone="primary">{t('system.changed')}</Badge>
        <button type="button" className="text-xs text-primary underline" disabled={busy} onClick={() => apply({ reset: [name] })}>
          {t('system.reset')}
        </button>
      </span>
    ) : (
      <span className="text-xs text-muted-fg">{t('system.fromFile')}</span>
    );
  const sameVendor = provider !== '' && provider === data.sms.provider;

  return (
    <div className="max-w-3xl space-y-4" data-testid="admin-sign-in">
      <p className="text-sm text-muted-fg">{t('signin.intro')}</p>
      <ErrorText error={error} />
      <Card className="space-y-3">
        <h2 className="font-semibold">{t('signin.methods')}</h2>
        <ul className="divide-y divide-border">
          {methods.map((m) => {
            const needsMail = m.mail && !data.mail_enabled && !data.values[m.key];
            return (
              <li key={m.key} className="flex flex-wrap items-start justify-between gap-2 py-3">
                <label className="flex min-w-0 flex-1 cursor-pointer items-start gap-3 text-sm">
                  <input
                    type="checkbox"
                    className="mt-1 h-4 w-4 shrink-0"
                    name={m.key}
                    checked={data.values[m.key]}
                    disabled={busy || needsMail}
                    onChange={(e) => apply({ [m.key]: e.target.checked })}
                  />
                  <span className="min-w-0">
                    <span className="block font-medium">{t(m.label)}</span>
                    <span className="block text-xs text-muted-fg">{t(needsMail ? 'signin.needsMail' : m.hint)}</span>
                  </span>
                </label>
                {origin(`sign_in.${m.key}`)}
              </li>
            );
          })}
        </ul>
      </Card>

      <Card>
        <form
          className="space-y-3"
          data-testid="sms-settings"
          onSubmit={(e) => {
            e.preventDefault();
            void apply({ sms: smsUpdateOf(provider, fields) });
          }}
        >
          <div className="flex flex-wrap items-center justify-between gap-2">
            <h2 className="font-semibold">{t('signin.sms')}</h2>
            {origin('sign_in.sms')}
          </div>
          <p className="text-xs text-muted-fg">{t('signin.smsHint')}</p>
          <Field label={t('signin.vendor')}>
            <Select className="w-full" name="sms_provider" value={provider} onChange={(e) => setProvider(e.target.value as SmsKind | '')}>
              <option value="">{t('signin.smsOff')}</option>
              <option value="aliyun">{t('signin.aliyun')}</option>
              <option value="tencent">{t('signin.tencent')}</option>
              <option value="twilio">Twilio</option>
              <option value="log">{t('signin.logVendor')}</option>
            </Select>
          </Field>
          {provider === 'log' && <p className="rounded-md bg-danger/10 px-3 py-2 text-sm text-danger">{t('signin.logWarning')}</p>}
          {provider !== '' && (
            <div className="grid gap-3 sm:grid-cols-2">
              {vendorFields[provider].map((f) => (
                <Field
                  key={f.key}
                  label={f.optional ? `${t(f.label)} (${t('common.optional')})` : t(f.label)}
                  hint={f.secret ? t(sameVendor && data.sms.secret_set ? 'signin.secretKept' : 'oauth.secretHint') : undefined}
                >
                  <Input
                    name={f.key}
                    type={f.secret ? 'password' : 'text'}
                    autoComplete={f.secret ? 'new-password' : 'off'}
                    placeholder={f.secret && sameVendor && data.sms.secret_set ? '••••••••' : f.placeholder}
                    value={fields[f.key] ?? ''}
                    onChange={(e) => setFields({ ...fields, [f.key]: e.target.value })}
                  />
                </Field>
              ))}
            </div>
          )}
          <div className="flex justify-end">
            <Button type="submit" disabled={busy}>{t('common.save')}</Button>
          </div>
        </form>
      </Card>

      <Card>
        <LdapSettingsCard view={data.ldap} origin={origin('sign_in.ldap')} busy={busy} apply={apply} />
      </Card>

      <Card className="space-y-3">
        <h2 className="font-semibold">{t('oauth.tab')}</h2>
        <OAuthProviders />
      </Card>
    </div>
  );
}
