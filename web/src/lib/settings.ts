import { createStore, storage } from './store';

/** The UI languages. */
export type Lang = 'en' | 'zh-CN';
/** The theme choices. */
export type Theme = 'system' | 'light' | 'dark';

const LANG_KEY = 'skein.lang';
const THEME_KEY = 'skein.theme';

/** The language the browser prefers, among the two the app speaks. */
export function browserLang(languages: readonly string[] = globalThis.navigator?.languages ?? []): Lang {
  for (const l of languages) {
    const lower = l.toLowerCase();
    if (lower.startsWith('zh')) return 'zh-CN';
    if (lower.startsWith('en')) return 'en';
  }
  return 'en';
}

function initialLang(): Lang {
  const saved = storage.get(LANG_KEY);
  return saved === 'en' || saved === 'zh-CN' ? saved : browserLang();
}

function initialTheme(): Theme {
  const saved = storage.get(THEME_KEY);
  return saved === 'light' || saved === 'dark' || saved === 'system' ? saved : 'system';
}

/** The chosen language: follows the browser until the user picks one, then remembered. */
export const langStore = createStore<Lang>(initialLang());
/** The chosen theme, remembered. */
export const themeStore = createStore<Theme>(initialTheme());

/** Picks a language and remembers it. */
export function setLang(lang: Lang) {
  storage.set(LANG_KEY, lang);
  langStore.set(lang);
}

/** Picks a theme and remembers it. */
export function setTheme(theme: Theme) {
  storage.set(THEME_KEY, theme);
  themeStore.set(theme);
}

/** On a device where nothing was chosen yet, takes the language and theme kept on the account. */
export function adoptAccountSettings(account: { language?: string; theme?: string }) {
  if (storage.get(LANG_KEY) === null && (account.language === 'en' || account.language === 'zh-CN')) {
    setLang(account.language);
  }
  const theme = account.theme;
  if (storage.get(THEME_KEY) === null && (theme === 'light' || theme === 'dark' || theme === 'system')) {
    setTheme(theme);
  }
}

/** Re-reads the remembered choices (after storage changed in another tab, and in tests). */
export function reloadSettings() {
  langStore.set(initialLang());
  themeStore.set(initialTheme());
}

/** Whether `theme` resolves to dark right now. */
export function isDark(theme: Theme): boolean {
  if (theme === 'system') return globalThis.matchMedia?.('(prefers-color-scheme: dark)').matches ?? false;
  return theme === 'dark';
}

/** Keeps `<html>` in step with the settings: the `dark` class and the `lang` attribute. */
export function applySettingsToDocument() {
  const apply = () => {
    const root = document.documentElement;
    root.classList.toggle('dark', isDark(themeStore.get()));
    root.lang = langStore.get();
  };
  apply();
  themeStore.subscribe(apply);
  langStore.subscribe(apply);
  globalThis.matchMedia?.('(prefers-color-scheme: dark)').addEventListener?.('change', apply);
  globalThis.addEventListener?.('storage', (e) => {
    if (e.key === LANG_KEY || e.key === THEME_KEY) reloadSettings();
  });
}
