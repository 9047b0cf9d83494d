import { useEffect, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import type { PaymentSettings, PaymentValues } from '../../lib/types';
import { useT, type MessageKey } from '../../i18n';
import { Badge, Button, Card, ErrorText, Field, Input, Select, Textarea } from '../../components/ui';
import { toast } from '../../components/ui/toast';
import { qk } from '../../lib/queryKeys';

/** The payment providers, in the order the page shows them. */
export const providers = ['epay', 'stripe', 'alipay', 'wechat'] as const;
export type ProviderKey = (typeof providers)[number];

/** A write-only secret as the form holds it: typed text replaces it, `clear` empties it. */
export interface SecretInput {
  value: string;
  clear: boolean;
}

/** One provider's part of the form. */
export interface ProviderForm {
  on: boolean;
  fields: Record<string, string>;
  secrets: Record<string, SecretInput>;
}

/** The form: what an admin types (amounts in yuan or dollars, the order lifetime in minutes). */
export interface PaymentForm {
  public_url: string;
  currency: 'CNY' | 'USD';
  quota_per_unit: string;
  amounts: string;
  min_amount: string;
  max_amount: string;
  order_ttl_minutes: string;
  max_pending_orders: string;
  plan_reminder_days: string;
  providers: Record<ProviderKey, ProviderForm>;
}

type FieldKind = 'text' | 'list' | 'number' | 'pem';

/** Each provider's fields (`kind` says how it is typed) and its secrets. */
export const providerFields: Record<ProviderKey, { fields: Array<{ key: string; kind: FieldKind }>; secrets: Array<{ key: string; pem?: boolean }> }> = {
  epay: {
    fields: [
      { key: 'url', kind: 'text' },
      { key: 'pid', kind: 'text' },
      { key: 'methods', kind: 'list' },
    ],
    secrets: [{ key: 'key' }],
  },
  stripe: {
    fields: [
      { key: 'api_base', kind: 'text' },
      { key: 'tolerance_secs', kind: 'number' },
    ],
    secrets: [{ key: 'secret_key' }, { key: 'webhook_secret' }],
  },
  alipay: {
    fields: [
      { key: 'app_id', kind: 'text' },
      { key: 'gateway_url', kind: 'text' },
      { key: 'methods', kind: 'list' },
      { key: 'alipay_public_key', kind: 'pem' },
    ],
    secrets: [{ key: 'private_key', pem: true }],
  },
  wechat: {
    fields: [
      { key: 'mchid', kind: 'text' },
      { key: 'appid', kind: 'text' },
      { key: 'merchant_serial_no', kind: 'text' },
      { key: 'public_key_id', kind: 'text' },
      { key: 'api_base', kind: 'text' },
      { key: 'tolerance_secs', kind: 'number' },
      { key: 'public_key', kind: 'pem' },
    ],
    secrets: [{ key: 'private_key', pem: true }, { key: 'apiv3_key' }],
  },
};

const major = (minor: number) => String(minor / 100);
const minor = (text: string) => Math.round(Number(text) * 100);
const isNumber = (text: string) => text.trim() !== '' && Number.isFinite(Number(text));

/** Whether each secret of a provider in `v` is set (never its value: the server sends none). */
export function secretSet(v: PaymentValues, p: ProviderKey, key: string): boolean {
  const section = v[p] as Record<string, unknown> | null;
  return section?.[`${key}_set`] === true;
}

/** The form as the settings in effect fill it; secrets always start empty. */
export function formOf(v: PaymentValues): PaymentForm {
  const provider = (p: ProviderKey): ProviderForm => {
    const section = (v[p] ?? {}) as Record<string, unknown>;
    const fields: Record<string, string> = {};
    for (const f of providerFields[p].fields) {
      const value = section[f.key];
      fields[f.key] = Array.isArray(value) ? value.join(', ') : value == null ? '' : String(value);
    }
    const secrets: Record<string, SecretInput> = {};
    for (const s of providerFields[p].secrets) secrets[s.key] = { value: '', clear: false };
    return { on: v[p] != null, fields, secrets };
  };
  return {
    public_url: v.public_url ?? '',
    currency: v.currency,
    quota_per_unit: String(v.quota_per_unit),
    amounts: v.amounts.map(major).join(', '),
    min_amount: major(v.min_amount),
    max_amount: major(v.max_amount),
    order_ttl_minutes: String(v.order_ttl_secs / 60),
    max_pending_orders: String(v.max_pending_orders),
    plan_reminder_days: String(v.plan_reminder_days),
    providers: { epay: provider('epay'), stripe: provider('stripe'), alipay: provider('alipay'), wechat: provider('wechat') },
  };
}

const list = (text: string) =>
  text
    .split(/[,\s]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/** A number as a number; anything else as typed, for the server to refuse by name. */
const num = (text: string): unknown => (isNumber(text) ? Number(text) : text);

/**
 * The update for `PUT /admin/billing/payment-settings`: only what differs from `before`, so a
 * save never turns a value still coming from skein.toml into a stored copy of it. A provider
 * whose fields changed is sent whole, with only the secrets typed (or cleared): a secret left
 * empty is left out, and the server keeps the one in effect.
 */
export function updateOf(form: PaymentForm, before: PaymentValues): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const was = formOf(before);
  if (form.public_url.trim() !== was.public_url) out.public_url = form.public_url.trim() || null;
  if (form.currency !== was.currency) out.currency = form.currency;
  for (const k of ['quota_per_unit', 'max_pending_orders', 'plan_reminder_days'] as const) {
    if (form[k] !== was[k]) out[k] = num(form[k]);
  }
  for (const k of ['min_amount', 'max_amount'] as const) {
    if (form[k] !== was[k]) out[k] = isNumber(form[k]) ? minor(form[k]) : form[k];
  }
  if (form.order_ttl_minutes !== was.order_ttl_minutes) {
    out.order_ttl_secs = isNumber(form.order_ttl_minutes) ? Math.round(Number(form.order_ttl_minutes) * 60) : form.order_ttl_minutes;
  }
  if (list(form.amounts).join() !== list(was.amounts).join()) {
    out.amounts = list(form.amounts).map((a) => (isNumber(a) ? minor(a) : a));
  }
  for (const p of providers) {
    const now = form.providers[p];
    const then = was.providers[p];
    if (!now.on) {
      if (then.on) out[p] = null;
      continue;
    }
    const spec = providerFields[p];
    const touched =
      !then.on ||
      spec.fields.some((f) => now.fields[f.key] !== then.fields[f.key]) ||
      spec.secrets.some((s) => now.secrets[s.key].value !== '' || now.secrets[s.key].clear);
    if (!touched) continue;
    const section: Record<string, unknown> = {};
    for (const f of spec.fields) {
      const text = now.fields[f.key].trim();
      if (f.kind === 'list') section[f.key] = list(text);
      else if (f.kind === 'number') {
        if (text) section[f.key] = num(text);
      } else section[f.key] = text;
    }
    for (const s of spec.secrets) {
      const secret = now.secrets[s.key];
      if (secret.clear) section[s.key] = '';
      else if (secret.value !== '') section[s.key] = secret.value;
    }
    out[p] = section;
  }
  return out;
}

const label = (p: ProviderKey, key: string) => `payments.${p}.${key}` as MessageKey;

/** Admin → Payments: top-up rules and the payment providers, applied at once on every
 * instance; a setting never changed is skein.toml's, and "Reset" returns to it. Secrets are
 * write-only: the page says whether each is set, and can replace or clear it. */
export function PaymentSettingsPage() {
  const t = useT();
  const queryClient = useQueryClient();
  const settings = useQuery({ queryKey: qk.adminPaymentSettings, queryFn: () => api<PaymentSettings>('admin/billing/payment-settings') });
  const [form, setForm] = useState<PaymentForm | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (settings.data) setForm(formOf(settings.data.values));
  }, [settings.data]);
  if (!form || !settings.data) return <ErrorText error={settings.error} />;
  const data = settings.data;

  const send = async (method: 'PUT' | 'DELETE', body?: Record<string, unknown>) => {
    setBusy(true);
    setError(null);
    try {
      const next = await api<PaymentSettings>('admin/billing/payment-settings', { method, body });
      queryClient.setQueryData(qk.adminPaymentSettings, next);
      await queryClient.invalidateQueries({ queryKey: qk.paymentOptions });
      toast(t('common.saved'));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const set = (k: Exclude<keyof PaymentForm, 'providers'>) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setForm({ ...form, [k]: e.target.value });
  const setProvider = (p: ProviderKey, next: Partial<ProviderForm>) =>
    setForm({ ...form, providers: { ...form.providers, [p]: { ...form.providers[p], ...next } } });
  /** "From skein.toml", or "Changed · Reset" for settings an admin stored. */
  const origin = (...names: string[]) => {
    const stored = names.filter((n) => data.sources[n] === 'stored');
    return stored.length ? (
      <span className="flex items-center gap-2">
        <Badge tone="primary">{t('system.changed')}</Badge>
        <button type="button" className="text-xs text-primary underline" disabled={busy} onClick={() => void send('PUT', { reset: stored })}>
          {t('system.reset')}
        </button>
      </span>
    ) : (
      <span className="text-xs text-muted-fg">{t('system.fromFile')}</span>
    );
  };
  const number = (k: 'quota_per_unit' | 'min_amount' | 'max_amount' | 'order_ttl_minutes' | 'max_pending_orders' | 'plan_reminder_days', name: MessageKey, hint?: string) => (
    <Field label={t(name)} hint={hint}>
      <Input className="w-full" type="number" min="0" step="any" inputMode="decimal" value={form[k]} onChange={set(k)} name={k} />
    </Field>
  );

  return (
    <form
      className="max-w-3xl space-y-4"
      data-testid="payment-settings"
      onSubmit={(e) => {
        e.preventDefault();
        void send('PUT', updateOf(form, data.values));
      }}
    >
      <p className="text-sm text-muted-fg">{t('payments.intro')}</p>
      {data.load_error && (
        <div role="alert" className="rounded-md border border-danger/40 bg-danger/10 px-3 py-2 text-sm text-danger">
          {t('payments.loadError', { error: data.load_error })}
        </div>
      )}
      <Card className="space-y-3">
        <div className="flex flex-wrap items-center justify-between gap-2">
          <h2 className="flex items-center gap-2 font-semibold">
            {t('payments.topup')}
            <Badge tone={data.values.enabled ? 'ok' : 'neutral'}>{t(data.values.enabled ? 'payments.on' : 'payments.off')}</Badge>
          </h2>
          {origin('public_url', 'currency', 'quota_per_unit', 'amounts', 'min_amount', 'max_amount')}
        </div>
        <div className="grid gap-3 sm:grid-cols-2">
          <div className="sm:col-span-2">
            <Field label={t('payments.publicUrl')} hint={t('payments.publicUrlHint')}>
              <Input className="w-full" value={form.public_url} onChange={set('public_url')} name="public_url" placeholder="https://ai.example.com" autoComplete="off" spellCheck={false} />
            </Field>
          </div>
          <Field label={t('payments.currency')}>
            <Select className="w-full" value={form.currency} onChange={set('currency')} name="currency">
              <option value="CNY">CNY</option>
              <option value="USD">USD</option>
            </Select>
          </Field>
          {number('quota_per_unit', 'payments.quotaPerUnit', t('payments.quotaPerUnitHint', { units: data.effective_quota_per_unit.toLocaleString() }))}
          <div className="sm:col-span-2">
            <Field label={t('payments.amounts')} hint={t('payments.amountsHint', { currency: form.currency })}>
              <Input className="w-full" value={form.amounts} onChange={set('amounts')} name="amounts" inputMode="decimal" placeholder="10, 50, 100" />
            </Field>
          </div>
          {number('min_amount', 'payments.minAmount', form.currency)}
          {number('max_amount', 'payments.maxAmount', form.currency)}
        </div>
      </Card>

      <Card className="space-y-3">
        <div className="flex flex-wrap items-center justify-between gap-2">
          <h2 className="font-semibold">{t('payments.limits')}</h2>
          {origin('order_ttl_secs', 'max_pending_orders', 'plan_reminder_days')}
        </div>
        <div className="grid gap-3 sm:grid-cols-3">
          {number('order_ttl_minutes', 'payments.orderTtl', t('payments.orderTtlHint'))}
          {number('max_pending_orders', 'payments.maxPending', t('payments.maxPendingHint'))}
          {number('plan_reminder_days', 'payments.reminderDays', t('payments.reminderDaysHint'))}
        </div>
      </Card>

      {providers.map((p) => {
        const pf = form.providers[p];
        return (
          <Card key={p} className="space-y-3" data-testid={`provider-${p}`}>
            <div className="flex flex-wrap items-center justify-between gap-2">
              <label className="flex min-h-11 items-center gap-2 font-semibold">
                <input type="checkbox" name={`${p}_on`} checked={pf.on} onChange={(e) => setProvider(p, { on: e.target.checked })} className="h-4 w-4" />
                {t(`payments.${p}` as MessageKey)}
              </label>
              {origin(p)}
            </div>
            {pf.on && (
              <div className="grid gap-3 sm:grid-cols-2">
                {providerFields[p].fields.map((f) => (
                  <div key={f.key} className={f.kind === 'pem' ? 'sm:col-span-2' : undefined}>
                    <Field label={t(label(p, f.key))} hint={f.kind === 'list' ? t('payments.listHint') : undefined}>
                      {f.kind === 'pem' ? (
                        <Textarea className="w-full font-mono text-xs" rows={3} spellCheck={false} name={`${p}_${f.key}`} value={pf.fields[f.key]}
                          onChange={(e) => setProvider(p, { fields: { ...pf.fields, [f.key]: e.target.value } })} />
                      ) : (
                        <Input className="w-full" name={`${p}_${f.key}`} autoComplete="off" spellCheck={false} inputMode={f.kind === 'number' ? 'numeric' : undefined} value={pf.fields[f.key]}
                          onChange={(e) => setProvider(p, { fields: { ...pf.fields, [f.key]: e.target.value } })} />
                      )}
                    </Field>
                  </div>
                ))}
                {providerFields[p].secrets.map((s) => {
                  const secret = pf.secrets[s.key];
                  const isSet = secretSet(data.values, p, s.key);
                  const setSecret = (next: SecretInput) => setProvider(p, { secrets: { ...pf.secrets, [s.key]: next } });
                  return (
                    <div key={s.key} className="space-y-1 sm:col-span-2" data-testid={`secret-${p}-${s.key}`}>
                      <div className="flex flex-wrap items-center gap-2 text-sm font-medium">
                        <span>{t(label(p, s.key))}</span>
                        <Badge tone={secret.clear ? 'danger' : isSet ? 'ok' : 'neutral'}>
                          {t(secret.clear ? 'payments.secretCleared' : isSet ? 'payments.secretSet' : 'payments.secretNotSet')}
                        </Badge>
                        {isSet && !secret.clear && (
                          <button type="button" className="text-xs text-danger underline" onClick={() => setSecret({ value: '', clear: true })}>
                            {t('payments.clear')}
                          </button>
                        )}
                        {secret.clear && (
                          <button type="button" className="text-xs text-primary underline" onClick={() => setSecret({ value: '', clear: false })}>
                            {t('common.cancel')}
                          </button>
                        )}
                      </div>
                      {s.pem ? (
                        <Textarea className="w-full font-mono text-xs" rows={3} spellCheck={false} autoComplete="off" name={`${p}_${s.key}`} aria-label={t(label(p, s.key))}
                          placeholder={t(isSet ? 'payments.secretKeep' : 'payments.secretEnter')} value={secret.value} disabled={secret.clear}
                          onChange={(e) => setSecret({ value: e.target.value, clear: false })} />
                      ) : (
                        <Input className="w-full" type="password" autoComplete="new-password" name={`${p}_${s.key}`} aria-label={t(label(p, s.key))}
                          placeholder={t(isSet ? 'payments.secretKeep' : 'payments.secretEnter')} value={secret.value} disabled={secret.clear}
                          onChange={(e) => setSecret({ value: e.target.value, clear: false })} />
                      )}
                    </div>
                  );
                })}
              </div>
            )}
          </Card>
        );
      })}

      <ErrorText error={error} />
      <div className="flex flex-wrap justify-end gap-2">
        <Button type="button" variant="secondary" disabled={busy || !Object.values(data.sources).includes('stored')} onClick={() => void send('DELETE')}>
          {t('payments.resetAll')}
        </Button>
        <Button type="button" variant="secondary" onClick={() => setForm(formOf(data.values))} disabled={busy}>
          {t('common.cancel')}
        </Button>
        <Button type="submit" disabled={busy}>{t('common.save')}</Button>
      </div>
      <p className="text-xs text-muted-fg">{t('payments.note')}</p>
    </form>
  );
}
