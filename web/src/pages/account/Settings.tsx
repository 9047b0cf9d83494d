import { useEffect, useState } from 'react';
import { Link } from 'react-router-dom';
import { useQueryClient } from '@tanstack/react-query';
import { money, type CurrencyDisplay } from '../../lib/format';
import { currencyFrom, usePreferences, usePublicSettings } from '../../lib/system';
import { qk } from '../../lib/queryKeys';
import { api } from '../../lib/api';
import { authStore, setUser } from '../../lib/auth';
import { langStore, setLang, setTheme, themeStore, type Lang, type Theme } from '../../lib/settings';
import { useStore } from '../../lib/store';
import type { Preferences, Profile } from '../../lib/types';
import { useT, useValueName, type MessageKey } from '../../i18n';
import { Button, Card, ErrorText, Field, Input, PageHeader, Select, PasswordInput } from '../../components/ui';
import { toast } from '../../components/ui/toast';
import { EmailCard, SessionsCard, TwoFactorCard } from './Security';
import { PasskeysCard } from './Passkeys';
import { LinkedProvidersCard } from './LinkedProviders';
import { PhoneCard } from './PhoneCard';
import { avatarSources } from '../../lib/avatar';
import { AvatarCropDialog } from './AvatarCrop';
import { ChatPreferencesCard } from '../chat/preferences';
import { PromptLibraryCard } from '../chat/prompts';

/** The currency amounts are shown in: the system's default, or the user's own choice. */
function CurrencyField() {
  const t = useT();
  const queryClient = useQueryClient();
  const settings = usePublicSettings();
  const prefs = usePreferences();
  const [error, setError] = useState<unknown>(null);
  const value = prefs.data?.currency ?? '';
  const system = settings.data?.currency;
  const sample = settings.data ? money(settings.data.quota_per_usd, undefined, currencyFrom(settings.data, (value || null) as CurrencyDisplay | null)) : '';
  return (
    <Field label={t('settings.currency')} hint={error ? undefined : sample && t('system.currencyExample', { amount: sample })} error={error ? String((error as Error).message) : undefined}>
      <Select
        className="w-full"
        name="currency"
        value={value}
        onChange={async (e) => {
          setError(null);
          try {
            const next = await api<Preferences>('user/preferences', { method: 'PUT', body: { currency: e.target.value || null } });
            queryClient.setQueryData(qk.preferences, next);
          } catch (err) {
            setError(err);
          }
        }}
      >
        <option value="">{t('settings.currencySystem', { name: system ? t(`currency.${system}` as MessageKey) : '…' })}</option>
        <option value="usd">{t('currency.usd')}</option>
        <option value="cny">{t('currency.cny')}</option>
        <option value="units">{t('currency.units')}</option>
      </Select>
    </Field>
  );
}

/** Profile, password, language and theme. */
export default function SettingsPage() {
  const t = useT();
  const v = useValueName();
  const { user } = useStore(authStore);
  const lang = useStore(langStore);
  const theme = useStore(themeStore);
  const [profile, setProfile] = useState({ display_name: '', avatar_url: '' });
  const [cropFile, setCropFile] = useState<File | null>(null);
  const [profileError, setProfileError] = useState<unknown>(null);
  const [pw, setPw] = useState({ current: '', next: '' });
  const [pwError, setPwError] = useState<unknown>(null);
  useEffect(() => {
    if (user) setProfile({ display_name: user.display_name, avatar_url: user.avatar_url ?? '' });
  }, [user]);

  // Language and theme apply at once and are kept on the account too.
  const savePref = (body: Record<string, string>) => {
    api<Profile>('user/profile', { method: 'PATCH', body }).then(setUser, () => undefined);
  };

  return (
    <div className="mx-auto max-w-2xl space-y-4 p-4">
      <PageHeader title={t('settings.title')} />
      <Card className="space-y-3">
        <h2 className="font-semibold">{t('settings.appearance')}</h2>
        <div className="grid gap-3 sm:grid-cols-2">
          <Field label={t('settings.language')}>
            <Select
              className="w-full"
              value={lang}
              onChange={(e) => {
                setLang(e.target.value as Lang);
                savePref({ language: e.target.value });
              }}
            >
              <option value="en">English</option>
              <option value="zh-CN">简体中文</option>
            </Select>
          </Field>
          <Field label={t('settings.theme')}>
            <Select
              className="w-full"
              value={theme}
              onChange={(e) => {
                setTheme(e.target.value as Theme);
                savePref({ theme: e.target.value });
              }}
            >
              <option value="system">{t('theme.system')}</option>
              <option value="light">{t('theme.light')}</option>
              <option value="dark">{t('theme.dark')}</option>
            </Select>
          </Field>
          <CurrencyField />
        </div>
      </Card>
      <ChatPreferencesCard />
      <PromptLibraryCard />
      <Card className="flex flex-wrap items-center justify-between gap-2">
        <div>
          <h2 className="font-semibold">{t('invites.title')}</h2>
          <p className="text-sm text-muted-fg">{t('invites.settingsHint')}</p>
        </div>
        <Link className="inline-flex h-9 items-center rounded-md border border-border px-3 text-sm font-medium hover:bg-muted" to="/invites">
          {t('invites.open')}
        </Link>
      </Card>
      <Card>
        <h2 className="mb-3 font-semibold">{t('settings.profile')}</h2>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setProfileError(null);
            try {
              setUser(
                await api<Profile>('user/profile', {
                  method: 'PATCH',
                  // The avatar URL goes only when edited: an uploaded avatar's own address is
                  // not an http(s) URL the field would accept.
                  body:
                    profile.avatar_url.trim() === (user?.avatar_url ?? '')
                      ? { display_name: profile.display_name }
                      : { display_name: profile.display_name, avatar_url: profile.avatar_url.trim() || null },
                }),
              );
              toast(t('common.saved'));
            } catch (err) {
              setProfileError(err);
            }
          }}
        >
          <div className="flex items-center gap-3">
            {user && (
              <img
                {...avatarSources(user, 56)}
                alt=""
                className="h-14 w-14 shrink-0 rounded-full border border-border object-cover"
                data-testid="avatar"
              />
            )}
            <div className="min-w-0 space-y-1">
              <p className="truncate text-sm text-muted-fg">
                {user?.username ?? user?.email} · {user ? v(user.role) : ''}
              </p>
              <label className="inline-flex cursor-pointer text-sm text-primary hover:underline">
                {t('settings.uploadAvatar')}
                <input
                  type="file"
                  accept="image/png,image/jpeg,image/webp,image/gif"
                  className="sr-only"
                  data-testid="avatar-file"
                  onChange={(e) => {
                    const file = e.target.files?.[0];
                    e.target.value = '';
                    if (!file) return;
                    setProfileError(null);
                    // Framed in the crop dialog, which sends the square it shows.
                    setCropFile(file);
                  }}
                />
              </label>
              <AvatarCropDialog file={cropFile} onClose={() => setCropFile(null)} />
            </div>
          </div>
          <Field label={t('auth.displayName')}>
            <Input value={profile.display_name} onChange={(e) => setProfile({ ...profile, display_name: e.target.value })} />
          </Field>
          <Field label={t('settings.avatar')}>
            <Input type="url" value={profile.avatar_url} onChange={(e) => setProfile({ ...profile, avatar_url: e.target.value })} />
          </Field>
          <ErrorText error={profileError} />
          <Button type="submit">{t('common.save')}</Button>
        </form>
      </Card>
      <Card>
        <h2 className="mb-3 font-semibold">{t('settings.password')}</h2>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setPwError(null);
            try {
              await api('user/password', { method: 'PUT', body: { current_password: pw.current, new_password: pw.next } });
              setPw({ current: '', next: '' });
              toast(t('settings.passwordChanged'));
            } catch (err) {
              setPwError(err);
            }
          }}
        >
          <Field label={t('settings.currentPassword')}>
            <PasswordInput autoComplete="current-password" value={pw.current} onChange={(e) => setPw({ ...pw, current: e.target.value })} required />
          </Field>
          <Field label={t('settings.newPassword')} hint={t('auth.passwordHint')}>
            <PasswordInput autoComplete="new-password" value={pw.next} onChange={(e) => setPw({ ...pw, next: e.target.value })} required />
          </Field>
          <ErrorText error={pwError} />
          <Button type="submit">{t('settings.changePassword')}</Button>
        </form>
      </Card>
      <EmailCard />
      <PhoneCard />
      <TwoFactorCard />
      <PasskeysCard />
      <LinkedProvidersCard />
      <SessionsCard />
    </div>
  );
}
