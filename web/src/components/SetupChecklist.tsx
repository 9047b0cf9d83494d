import { useState } from 'react';
import { Link } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { authStore } from '../lib/auth';
import { useStore } from '../lib/store';
import type { AdminSettings, ApiKey, Channel, DefaultsLoaded, ModelPrice, Page, UnpricedModel } from '../lib/types';
import { useT, type MessageKey } from '../i18n';
import { qk } from '../lib/queryKeys';
import { Button, Card, cx, ErrorText } from './ui';

/** Where the checklist lives in the admin console (the empty chat and the model picker link here). */
export const SETUP_PATH = '/admin/dashboard';

/** What the first-run steps read from the API, and whether each is done. */
export interface SetupState {
  channels: Channel[];
  provider: boolean;
  tested: boolean;
  priced: boolean;
  /** The registration mode was chosen (stored by an admin, or set in skein.toml). */
  registration: boolean;
  key: boolean;
}

/**
 * The state of the first-run steps, computed from the API (nothing is stored about the
 * checklist itself): a channel exists, one passed its test, its models are priced, and the
 * account has an API key. `null` until everything is loaded, or for anyone but root.
 */
export function useSetupState(): SetupState | null {
  const { user } = useStore(authStore);
  const enabled = user?.role === 'root';
  const channels = useQuery({
    queryKey: qk.channels,
    queryFn: () => api<Channel[] | { items: Channel[] }>('channels'),
    enabled,
  });
  const prices = useQuery({ queryKey: qk.pricing, queryFn: () => api<ModelPrice[]>('pricing'), enabled });
  const unpriced = useQuery({ queryKey: qk.unpriced, queryFn: () => api<UnpricedModel[]>('admin/pricing/unpriced'), enabled });
  const keys = useQuery({ queryKey: qk.keys.page(1), queryFn: () => api<Page<ApiKey>>('keys?page=1&per_page=20'), enabled });
  const settings = useQuery({ queryKey: qk.adminSettings, queryFn: () => api<AdminSettings>('admin/settings'), enabled });
  if (!enabled || !channels.data || !prices.data || !unpriced.data || !keys.data || !settings.data) return null;
  const rows = Array.isArray(channels.data) ? channels.data : channels.data.items;
  return {
    channels: rows,
    provider: rows.length > 0,
    tested: rows.some((c) => c.last_test_result === 'ok'),
    priced: prices.data.length > 0 && unpriced.data.length === 0,
    // Open registration is the shipped default; a server is set up once someone chose.
    registration: settings.data.overridden.includes('registration_mode') || settings.data.defaults.registration_mode !== 'open',
    key: keys.data.total > 0,
  };
}

/** Whether every step is done (the checklist then goes away). */
export const setupDone = (s: SetupState) => s.provider && s.tested && s.priced && s.registration && s.key;

/**
 * The root account's first-run checklist: add a provider, test it, price its models, choose
 * who may register, create an API key. Each step's state comes from the API, so it ticks itself off wherever the step
 * was done, and the whole list disappears once all are.
 */
export function SetupChecklist({ className }: { className?: string }) {
  const t = useT();
  const queryClient = useQueryClient();
  const state = useSetupState();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [testMessage, setTestMessage] = useState<string | null>(null);
  if (!state || setupDone(state)) return null;

  const run = async (work: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await work();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const test = () =>
    run(async () => {
      setTestMessage(null);
      for (const c of state.channels) {
        const r = await api<{ ok: boolean; latency_ms: number; message: string }>(`channels/${c.id}/test`, { method: 'POST' });
        setTestMessage(r.ok ? t('admin.testOk', { ms: r.latency_ms }) : t('admin.testFailed', { message: r.message }));
        if (r.ok) break;
      }
      await queryClient.invalidateQueries({ queryKey: qk.channels });
    });
  const loadDefaults = () =>
    run(async () => {
      await api<DefaultsLoaded>('admin/pricing/defaults', { method: 'POST' });
      await queryClient.invalidateQueries({ queryKey: qk.pricing });
      await queryClient.invalidateQueries({ queryKey: qk.chatModels });
    });

  const chooseRegistration = (mode: AdminSettings['values']['registration_mode']) =>
    run(async () => {
      const next = await api<AdminSettings>('admin/settings', { method: 'PUT', body: { registration_mode: mode } });
      queryClient.setQueryData(qk.adminSettings, next);
      await queryClient.invalidateQueries({ queryKey: qk.publicSettings });
    });

  const steps: Array<{ id: string; done: boolean; title: MessageKey; hint: MessageKey; action: React.ReactNode }> = [
    {
      id: 'provider',
      done: state.provider,
      title: 'setup.provider',
      hint: 'setup.providerHint',
      action: <Link className={linkClass} to="/admin/channels?new=1">{t('setup.providerAction')}</Link>,
    },
    {
      id: 'test',
      done: state.tested,
      title: 'setup.test',
      hint: 'setup.testHint',
      action: state.provider ? (
        <Button size="sm" variant="secondary" disabled={busy} onClick={test}>{t('setup.testAction')}</Button>
      ) : null,
    },
    {
      id: 'prices',
      done: state.priced,
      title: 'setup.prices',
      hint: 'setup.pricesHint',
      action: (
        <span className="flex flex-wrap gap-2">
          <Button size="sm" variant="secondary" disabled={busy} onClick={loadDefaults}>{t('admin.loadDefaults')}</Button>
          <Link className={linkClass} to="/admin/pricing">{t('setup.pricesAction')}</Link>
        </span>
      ),
    },
    {
      id: 'registration',
      done: state.registration,
      title: 'setup.registration',
      hint: 'setup.registrationHint',
      action: (
        <span className="flex flex-wrap gap-2">
          <Button size="sm" variant="secondary" disabled={busy} onClick={() => chooseRegistration('open')}>{t('system.modeOpen')}</Button>
          <Button size="sm" variant="secondary" disabled={busy} onClick={() => chooseRegistration('invite_only')}>{t('system.modeInvite')}</Button>
          <Button size="sm" variant="secondary" disabled={busy} onClick={() => chooseRegistration('closed')}>{t('system.modeClosed')}</Button>
        </span>
      ),
    },
    {
      id: 'key',
      done: state.key,
      title: 'setup.key',
      hint: 'setup.keyHint',
      action: <Link className={linkClass} to="/keys">{t('setup.keyAction')}</Link>,
    },
  ];
  const done = steps.filter((s) => s.done).length;
  return (
    <Card className={cx('space-y-3 text-left', className)} data-testid="setup-checklist" id="setup">
      <div className="flex flex-wrap items-baseline justify-between gap-2">
        <h2 className="text-base font-semibold">{t('setup.title')}</h2>
        <span className="text-xs text-muted-fg">{t('setup.progress', { done, total: steps.length })}</span>
      </div>
      <p className="text-sm text-muted-fg">{t('setup.intro')}</p>
      <ol className="space-y-2">
        {steps.map((s, i) => (
          <li
            key={s.id}
            data-testid={`setup-step-${s.id}`}
            data-done={s.done}
            className={cx('flex flex-wrap items-start gap-3 rounded-lg border border-border p-3', s.done && 'opacity-70')}
          >
            <span
              aria-hidden
              className={cx(
                'mt-0.5 flex h-6 w-6 shrink-0 items-center justify-center rounded-full text-xs font-semibold',
                s.done ? 'bg-ok text-white' : 'border border-border text-muted-fg',
              )}
            >
              {s.done ? (
                <svg viewBox="0 0 16 16" className="h-3.5 w-3.5" fill="none" stroke="currentColor" strokeWidth="2.5">
                  <path d="M3 8.5l3.2 3L13 4.5" strokeLinecap="round" strokeLinejoin="round" />
                </svg>
              ) : (
                i + 1
              )}
            </span>
            <div className="min-w-0 flex-1 basis-48">
              <div className={cx('text-sm font-medium', s.done && 'line-through')}>
                {t(s.title)}
                <span className="sr-only"> — {s.done ? t('setup.stepDone') : t('setup.stepTodo')}</span>
              </div>
              {!s.done && <p className="text-xs text-muted-fg">{t(s.hint)}</p>}
              {!s.done && s.id === 'test' && testMessage && <p className="mt-1 text-xs" data-testid="setup-test-result">{testMessage}</p>}
            </div>
            {!s.done && s.action && <div className="shrink-0">{s.action}</div>}
          </li>
        ))}
      </ol>
      <ErrorText error={error} />
    </Card>
  );
}

const linkClass = 'inline-flex h-8 items-center rounded-md bg-primary px-3 text-sm font-medium text-primary-fg hover:bg-primary/90';
