import { useCallback } from 'react';
import { en, type MessageKey } from './en';
import { zh } from './zh';
import { valueNames } from './values';
import { langStore, type Lang } from '../lib/settings';
import { useStore } from '../lib/store';

export type { MessageKey };

const tables: Record<Lang, Record<MessageKey, string>> = { en, 'zh-CN': zh };

/** Translates `key` into `lang`, filling `{name}` placeholders from `vars`. */
export function translate(lang: Lang, key: MessageKey, vars?: Record<string, string | number>): string {
  const text = tables[lang][key] ?? en[key] ?? key;
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (_, name: string) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** The translate function for the current language (re-renders when it changes). */
export function useT() {
  const lang = useStore(langStore);
  return useCallback(
    (key: MessageKey, vars?: Record<string, string | number>) => translate(lang, key, vars),
    [lang],
  );
}

/** The name of a server value (a status, a ledger kind, a role) in `lang`; unknown values as sent. */
export function valueName(lang: Lang, value: string): string {
  return valueNames[lang][value] ?? value;
}

/** [`valueName`] for the current language. */
export function useValueName() {
  const lang = useStore(langStore);
  return useCallback((value: string) => valueName(lang, value), [lang]);
}
