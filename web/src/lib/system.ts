import { useEffect } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api } from './api';
import { authStore } from './auth';
import { currencyStore, type CurrencyDisplay, type CurrencySettings } from './format';
import { qk } from './queryKeys';
import { storage } from './store';
import { useStore } from './store';
import type { Preferences, PublicSettings } from './types';

/** What the server says before sign-in: registration mode, banner, currency. */
export function usePublicSettings() {
  return useQuery({
    queryKey: qk.publicSettings,
    queryFn: () => api<PublicSettings>('settings/public', { auth: false }),
    staleTime: 60_000,
  });
}

/** The signed-in user's own display choices. */
export function usePreferences() {
  const { user } = useStore(authStore);
  return useQuery({ queryKey: qk.preferences, queryFn: () => api<Preferences>('user/preferences'), enabled: !!user });
}

/** The currency in effect: the user's own choice, else the admin's default. */
export function currencyFrom(settings: PublicSettings, own?: CurrencyDisplay | null): CurrencySettings {
  return {
    display: own ?? settings.currency,
    quotaPerUsd: settings.quota_per_usd,
    cnyPerUsd: settings.cny_per_usd,
  };
}

/** Keeps [`currencyStore`] in step with the server's settings and the user's preference. */
export function useCurrencySync() {
  const settings = usePublicSettings();
  const prefs = usePreferences();
  useEffect(() => {
    if (settings.data) currencyStore.set(currencyFrom(settings.data, prefs.data?.currency));
  }, [settings.data, prefs.data]);
}

const dismissedKey = (userId: string) => `skein.announcement.dismissed.${userId}`;

/** Whether this user dismissed the announcement with this id (each text has its own id). */
export function announcementDismissed(userId: string, id: string): boolean {
  return storage.get(dismissedKey(userId)) === id;
}

/** Remembers that this user dismissed the announcement `id` on this device. */
export function dismissAnnouncement(userId: string, id: string) {
  storage.set(dismissedKey(userId), id);
}
