import { useEffect, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, type CurrencyDisplay } from '../../lib/format';
import type { AdminSettings, ChatModel, SystemSettings as Values } from '../../lib/types';
import { useT, type MessageKey } from '../../i18n';
import { Badge, Button, Card, ErrorText, Field, Input, Select, Textarea } from '../../components/ui';
import { toast } from '../../components/ui/toast';
import { qk } from '../../lib/queryKeys';

/** The form's fields: what an admin types, before it is parsed into the update. */
export interface SettingsForm {
  registration_mode: Values['registration_mode'];
  signup_grant: string;
  invite_reward_inviter: string;
  invite_reward_invitee: string;
  default_model: string;
  title_mode: 'conversation' | 'off' | 'model';
  title_model: string;
  announcement_en: string;
  announcement_zh: string;
  currency: CurrencyDisplay;
  cny_per_usd: string;
}

/** The form as the settings in effect fill it. */
export function formOf(v: Values): SettingsForm {
  const title = v.title_model;
  return {
    registration_mode: v.registration_mode,
    signup_grant: String(v.signup_grant),
    invite_reward_inviter: String(v.invite_reward_inviter),
    invite_reward_invitee: String(v.invite_reward_invitee),
    default_model: v.default_model ?? '',
    title_mode: title == null ? 'conversation' : title === '' ? 'off' : 'model',
    title_model: title ?? '',
    announcement_en: v.announcement?.en ?? '',
    announcement_zh: v.announcement?.zh ?? '',
    currency: v.currency,
    cny_per_usd: String(v.cny_per_usd),
  };
}

/**
 * The update for `PUT /admin/settings`: only what differs from `before` is sent, so a save
 * never turns a value still coming from skein.toml into a stored copy of it.
 */
export function updateOf(form: SettingsForm, before: Values): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const was = formOf(before);
  if (form.registration_mode !== was.registration_mode) out.registration_mode = form.registration_mode;
  for (const k of ['signup_grant', 'invite_reward_inviter', 'invite_reward_invitee'] as const) {
    // A number goes as a number; anything else as typed, for the server to refuse by name.
    if (form[k] !== was[k]) out[k] = Number.isFinite(Number(form[k])) && form[k].trim() !== '' ? Number(form[k]) : form[k];
  }
  if (form.default_model !== was.default_model) out.default_model = form.default_model.trim() || null;
  const title = form.title_mode === 'conversation' ? null : form.title_mode === 'off' ? '' : form.title_model.trim();
  if (form.title_mode !== was.title_mode || (form.title_mode === 'model' && form.title_model !== was.title_model)) out.title_model = title;
  if (form.announcement_en !== was.announcement_en || form.announcement_zh !== was.announcement_zh) {
    out.announcement = form.announcement_en.trim() || form.announcement_zh.trim() ? { en: form.announcement_en, zh: form.announcement_zh } : null;
  }
  if (form.currency !== was.currency) out.currency = form.currency;
  if (form.cny_per_usd !== was.cny_per_usd) out.cny_per_usd = Number(form.cny_per_usd);
  return out;
}

const modes: Array<{ value: Values['registration_mode']; label: MessageKey }> = [
  { value: 'open', label: 'system.modeOpen' },
  { value: 'invite_only', label: 'system.modeInvite' },
  { value: 'closed', label: 'system.modeClosed' },
];

/** Admin → System: registration, grants, models, the announcement and money display. Changes
 * apply at once on every instance; "Reset" returns a setting to skein.toml's value. */
export function SystemSettingsPage() {
  const t = useT();
  const queryClient = useQueryClient();
  const settings = useQuery({ queryKey: qk.adminSettings, queryFn: () => api<AdminSettings>('admin/settings') });
  const models = useQuery({ queryKey: qk.chatModels, queryFn: () => api<ChatModel[]>('chat/models') });
  const [form, setForm] = useState<SettingsForm | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (settings.data) setForm(formOf(settings.data.values));
  }, [settings.data]);
  if (!form || !settings.data) return <ErrorText error={settings.error} />;
  const data = settings.data;
  const changed = new Set(data.overridden);
  const set = (k: keyof SettingsForm) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>) =>
    setForm({ ...form, [k]: e.target.value });

  const apply = async (body: Record<string, unknown>) => {
    setBusy(true);
    setError(null);
    try {
      const next = await api<AdminSettings>('admin/settings', { method: 'PUT', body });
      queryClient.setQueryData(qk.adminSettings, next);
      await queryClient.invalidateQueries({ queryKey: qk.publicSettings });
      toast(t('common.saved'));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const save = (e: React.FormEvent) => {
    e.preventDefault();
    void apply(updateOf(form, data.values));
  };
  /** The "from skein.toml" or "changed · reset" note beside a setting. */
  const origin = (...names: string[]) =>
    names.some((n) => changed.has(n)) ? (
      <span className="flex items-center gap-2">
        <Badge tone="primary">{t('system.changed')}</Badge>
        <button type="button" className="text-xs text-primary underline" disabled={busy} onClick={() => apply({ reset: names.filter((n) => changed.has(n)) })}>
          {t('system.reset')}
        </button>
      </span>
    ) : (
      <span className="text-xs text-muted-fg">{t('system.fromFile')}</span>
    );
  const grant = (k: 'signup_grant' | 'invite_reward_inviter' | 'invite_reward_invitee', label: MessageKey) => (
    <Field label={t(label)} hint={form[k].trim() && Number.isFinite(Number(form[k])) ? money(Number(form[k]), data.quota_per_usd) : undefined}>
      <Input type="number" min="0" step="1" value={form[k]} onChange={set(k)} name={k} />
    </Field>
  );
  const modelList = models.data ?? [];

  return (
    <form className="max-w-3xl space-y-4" onSubmit={save} data-testid="system-settings">
      <p className="text-sm text-muted-fg">{t('system.intro')}</p>
      <Card className="space-y-3">
        <div className="flex flex-wrap items-center justify-between gap-2">
          <h2 className="font-semibold">{t('system.registration')}</h2>
          {origin('registration_mode')}
        </div>
        <fieldset className="grid gap-2 sm:grid-cols-3" aria-label={t('system.registration')}>
          {modes.map((m) => (
            <label key={m.value} className="flex cursor-pointer items-start gap-2 rounded-lg border border-border p-3 text-sm has-[:checked]:border-primary has-[:checked]:bg-primary/5">
              <input type="radio" name="registration_mode" value={m.value} checked={form.registration_mode === m.value} onChange={set('registration_mode')} className="mt-0.5" />
              <span>
                <span className="block font-medium">{t(m.label)}</span>
                <span className="block text-xs text-muted-fg">{t(`${m.label}Hint` as MessageKey)}</span>
              </span>
            </label>
          ))}
        </fieldset>
      </Card>

      <Card className="space-y-3">
        <div className="flex flex-wrap items-center justify-between gap-2">
          <h2 className="font-semibold">{t('system.grants')}</h2>
          {origin('signup_grant', 'invite_reward_inviter', 'invite_reward_invitee')}
        </div>
        <p className="text-xs text-muted-fg">{t('system.grantsHint')}</p>
        <div className="grid gap-3 sm:grid-cols-3">
          {grant('signup_grant', 'system.signupGrant')}
          {grant('invite_reward_inviter', 'system.inviterReward')}
          {grant('invite_reward_invitee', 'system.inviteeReward')}
        </div>
      </Card>

      <Card className="space-y-3">
        <div className="flex flex-wrap items-center justify-between gap-2">
          <h2 className="font-semibold">{t('system.models')}</h2>
          {origin('default_model', 'title_model')}
        </div>
        <div className="grid gap-3 sm:grid-cols-2">
          <Field label={t('system.defaultModel')} hint={t('system.defaultModelHint')}>
            <Select className="w-full" value={form.default_model} onChange={set('default_model')} name="default_model">
              <option value="">{t('system.firstModel')}</option>
              {form.default_model && !modelList.some((m) => m.id === form.default_model) && <option value={form.default_model}>{form.default_model}</option>}
              {modelList.map((m) => (
                <option key={m.id} value={m.id}>{m.id}</option>
              ))}
            </Select>
          </Field>
          <Field label={t('system.titleModel')}>
            <Select className="w-full" value={form.title_mode === 'model' ? form.title_model : form.title_mode === 'off' ? '\u0000off' : ''} name="title_model"
              onChange={(e) => {
                const value = e.target.value;
                setForm({ ...form, title_mode: value === '' ? 'conversation' : value === '\u0000off' ? 'off' : 'model', title_model: value.startsWith('\u0000') ? '' : value });
              }}>
              <option value="">{t('system.titleSame')}</option>
              <option value={'\u0000off'}>{t('system.titleOff')}</option>
              {form.title_mode === 'model' && !modelList.some((m) => m.id === form.title_model) && <option value={form.title_model}>{form.title_model}</option>}
              {modelList.map((m) => (
                <option key={m.id} value={m.id}>{m.id}</option>
              ))}
            </Select>
          </Field>
        </div>
      </Card>

      <Card className="space-y-3">
        <div className="flex flex-wrap items-center justify-between gap-2">
          <h2 className="font-semibold">{t('system.announcement')}</h2>
          {origin('announcement')}
        </div>
        <p className="text-xs text-muted-fg">{t('system.announcementHint')}</p>
        <div className="grid gap-3 sm:grid-cols-2">
          <Field label={t('system.announcementEn')}>
            <Textarea rows={3} maxLength={500} value={form.announcement_en} onChange={set('announcement_en')} name="announcement_en" />
          </Field>
          <Field label={t('system.announcementZh')}>
            <Textarea rows={3} maxLength={500} value={form.announcement_zh} onChange={set('announcement_zh')} name="announcement_zh" />
          </Field>
        </div>
      </Card>

      <Card className="space-y-3">
        <div className="flex flex-wrap items-center justify-between gap-2">
          <h2 className="font-semibold">{t('system.currency')}</h2>
          {origin('currency', 'cny_per_usd')}
        </div>
        <div className="grid gap-3 sm:grid-cols-2">
          <Field label={t('system.currencyShown')} hint={t('system.currencyExample', { amount: money(data.quota_per_usd, data.quota_per_usd, { display: form.currency, quotaPerUsd: data.quota_per_usd, cnyPerUsd: Number(form.cny_per_usd) || 0 }) })}>
            <Select className="w-full" value={form.currency} onChange={set('currency')} name="currency">
              <option value="usd">{t('currency.usd')}</option>
              <option value="cny">{t('currency.cny')}</option>
              <option value="units">{t('currency.units')}</option>
            </Select>
          </Field>
          <Field label={t('system.rate')} hint={t('system.rateHint', { units: data.quota_per_usd.toLocaleString() })}>
            <Input type="number" min="0" step="0.0001" value={form.cny_per_usd} onChange={set('cny_per_usd')} name="cny_per_usd" />
          </Field>
        </div>
      </Card>

      <ErrorText error={error} />
      <div className="flex justify-end gap-2">
        <Button type="button" variant="secondary" onClick={() => setForm(formOf(data.values))} disabled={busy}>
          {t('common.cancel')}
        </Button>
        <Button type="submit" disabled={busy}>{t('common.save')}</Button>
      </div>
      <p className="text-xs text-muted-fg">{t('admin.systemNote')}</p>
    </form>
  );
}
