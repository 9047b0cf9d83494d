import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import type { ChatModel } from '../../lib/types';
import { useT } from '../../i18n';
import { Card, ErrorText, Field, Select } from '../../components/ui';

/** A user's chat preferences, kept on the server (the same on every device). */
export interface ChatPreferences {
  default_model: string | null;
  send_key: 'enter' | 'mod_enter';
  font_size: 'small' | 'medium' | 'large';
}

/** What applies before the server has answered (and what it answers for a new user). */
export const DEFAULT_CHAT_PREFERENCES: ChatPreferences = { default_model: null, send_key: 'enter', font_size: 'medium' };

/** The signed-in user's chat preferences. */
export function useChatPreferences(): ChatPreferences {
  const q = useQuery({ queryKey: qk.chatPreferences, queryFn: () => api<ChatPreferences>('chat/preferences'), staleTime: 60_000 });
  return q.data ?? DEFAULT_CHAT_PREFERENCES;
}

/** The thread's text size class for a preference. */
export const fontClass = (size: ChatPreferences['font_size']) => (size === 'small' ? 'text-sm' : size === 'large' ? 'text-lg' : 'text-base');

/**
 * Whether a key press in the composer sends: Enter (not Shift+Enter) by default, or
 * Ctrl/⌘+Enter when chosen; a touch keyboard's Enter always adds a line.
 */
export function sendsOnKey(e: { key: string; shiftKey: boolean; ctrlKey: boolean; metaKey: boolean; isComposing?: boolean }, sendKey: ChatPreferences['send_key'], touch: boolean): boolean {
  if (e.key !== 'Enter' || e.isComposing) return false;
  if (sendKey === 'mod_enter') return e.ctrlKey || e.metaKey;
  return !e.shiftKey && !touch;
}

/** The settings page's Chat card: default model, send key and text size. */
export function ChatPreferencesCard() {
  const t = useT();
  const queryClient = useQueryClient();
  const prefs = useChatPreferences();
  const models = useQuery({ queryKey: qk.chatModels, queryFn: async () => ({ models: await api<ChatModel[]>('chat/models'), unavailable: false }) });
  const [error, setError] = useState<unknown>(null);
  const save = async (change: Partial<ChatPreferences>) => {
    setError(null);
    try {
      const next = await api<ChatPreferences>('chat/preferences', { method: 'PUT', body: change });
      queryClient.setQueryData(qk.chatPreferences, next);
    } catch (e) {
      setError(e);
    }
  };
  const list = models.data?.models ?? [];
  return (
    <Card className="space-y-3" data-testid="chat-preferences">
      <h2 className="font-semibold">{t('chatPrefs.title')}</h2>
      <div className="grid gap-3 sm:grid-cols-3">
        <Field label={t('chatPrefs.defaultModel')}>
          <Select className="w-full" name="default_model" value={prefs.default_model ?? ''} onChange={(e) => save({ default_model: e.target.value || null })}>
            <option value="">{t('chatPrefs.serverDefault')}</option>
            {prefs.default_model && !list.some((m) => m.id === prefs.default_model) && <option value={prefs.default_model}>{prefs.default_model}</option>}
            {list.map((m) => (
              <option key={m.id} value={m.id}>
                {m.id}
              </option>
            ))}
          </Select>
        </Field>
        <Field label={t('chatPrefs.sendKey')}>
          <Select className="w-full" name="send_key" value={prefs.send_key} onChange={(e) => save({ send_key: e.target.value as ChatPreferences['send_key'] })}>
            <option value="enter">{t('chatPrefs.sendEnter')}</option>
            <option value="mod_enter">{t('chatPrefs.sendModEnter')}</option>
          </Select>
        </Field>
        <Field label={t('chatPrefs.fontSize')}>
          <Select className="w-full" name="font_size" value={prefs.font_size} onChange={(e) => save({ font_size: e.target.value as ChatPreferences['font_size'] })}>
            <option value="small">{t('chatPrefs.small')}</option>
            <option value="medium">{t('chatPrefs.medium')}</option>
            <option value="large">{t('chatPrefs.large')}</option>
          </Select>
        </Field>
      </div>
      <ErrorText error={error} />
    </Card>
  );
}
