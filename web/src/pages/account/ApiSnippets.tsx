import { useState } from 'react';
import { useT, type MessageKey } from '../../i18n';
import { Card, CopyButton, Select, cx } from '../../components/ui';
import { sdkBase, snippet, snippetLangs, vendors, type SnippetLang, type Vendor } from './snippets';

const vendorName: Record<Vendor, string> = { openai: 'OpenAI', anthropic: 'Anthropic', gemini: 'Gemini' };
const langName: Record<SnippetLang, string> = { curl: 'curl', python: 'Python', node: 'Node.js' };

/** Segmented buttons: one choice of a few, with the chosen one pressed. */
function Segments<T extends string>({ label, options, value, onChange, name }: { label: string; options: T[]; value: T; onChange: (v: T) => void; name: (v: T) => string }) {
  return (
    <div role="group" aria-label={label} className="inline-flex flex-wrap rounded-md border border-border p-0.5">
      {options.map((o) => (
        <button
          key={o}
          type="button"
          aria-pressed={o === value}
          onClick={() => onChange(o)}
          className={cx('min-h-8 rounded px-3 text-sm', o === value ? 'bg-primary text-primary-fg' : 'text-muted-fg hover:bg-muted hover:text-fg')}
        >
          {name(o)}
        </button>
      ))}
    </div>
  );
}

/**
 * How to call Skein with a key: the base URL and copyable curl / Python / Node examples for
 * the OpenAI, Anthropic and Gemini SDKs. `secret` fills the key in (right after creation);
 * otherwise a placeholder stands for it.
 */
export function ApiSnippets({ models, secret, className }: { models: string[]; secret?: string | null; className?: string }) {
  const t = useT();
  const origin = globalThis.location?.origin ?? '';
  const [vendor, setVendor] = useState<Vendor>('openai');
  const [lang, setLang] = useState<SnippetLang>('curl');
  const [model, setModel] = useState('');
  const chosen = model || models[0] || 'gpt-4o-mini';
  const code = snippet(vendor, lang, origin, secret ?? 'sk-...', chosen);
  return (
    <Card className={cx('space-y-3', className)} data-testid="api-snippets">
      <h2 className="font-semibold">{t('keys.useTitle')}</h2>
      <div className="flex flex-wrap items-center gap-2 text-sm">
        <span className="text-muted-fg">{t('keys.baseUrl')}</span>
        <code className="break-all rounded bg-muted px-2 py-1" data-testid="base-url">{sdkBase(vendor, origin)}</code>
        <CopyButton text={sdkBase(vendor, origin)} />
      </div>
      <p className="text-xs text-muted-fg">{t(`keys.baseHint.${vendor}` as MessageKey)}</p>
      <div className="flex flex-wrap items-end gap-3">
        <Segments label={t('keys.sdk')} options={vendors} value={vendor} onChange={setVendor} name={(v) => vendorName[v]} />
        <Segments label={t('keys.language')} options={snippetLangs} value={lang} onChange={setLang} name={(l) => langName[l]} />
        {models.length > 0 && (
          <label className="flex min-w-0 items-center gap-2 text-sm">
            <span className="text-muted-fg">{t('keys.exampleModel')}</span>
            <Select className="min-w-0 max-w-[16rem]" value={chosen} onChange={(e) => setModel(e.target.value)} name="snippet-model">
              {models.map((m) => (
                <option key={m} value={m}>{m}</option>
              ))}
            </Select>
          </label>
        )}
      </div>
      <div className="overflow-hidden rounded-md border border-border">
        <div className="flex items-center justify-between border-b border-border bg-muted px-3 py-1 text-xs text-muted-fg">
          <span>{vendorName[vendor]} · {langName[lang]}</span>
          <CopyButton text={code} />
        </div>
        <pre className="max-h-80 overflow-auto bg-muted/50 p-3 text-xs leading-relaxed" data-testid="snippet" tabIndex={0}><code>{code}</code></pre>
      </div>
      {!secret && <p className="text-xs text-muted-fg">{t('keys.snippetKeyHint')}</p>}
    </Card>
  );
}

/** Picks the models a key may call (none picked: every model). */
export function ModelMultiSelect({ models, value, onChange }: { models: string[]; value: string[]; onChange: (next: string[]) => void }) {
  const t = useT();
  const [filter, setFilter] = useState('');
  // Models named on the key that are no longer priced stay visible, so they can be removed.
  const all = [...new Set([...value, ...models])];
  const shown = all.filter((m) => m.toLowerCase().includes(filter.trim().toLowerCase()));
  const typed = filter.trim() && !all.includes(filter.trim()) ? filter.trim() : '';
  const toggle = (m: string) => onChange(value.includes(m) ? value.filter((x) => x !== m) : [...value, m]);
  return (
    <div className="space-y-2" data-testid="model-multiselect">
      <div className="flex flex-wrap items-center gap-2">
        <input
          type="search"
          className="h-8 min-w-0 flex-1 rounded-md border border-border bg-bg px-2 text-sm"
          placeholder={t('keys.filterModels')}
          aria-label={t('keys.filterModels')}
          value={filter}
          onChange={(e) => setFilter(e.target.value)}
        />
        <span className="text-xs text-muted-fg">{value.length ? t('keys.modelsPicked', { n: value.length }) : t('keys.allModels')}</span>
        {value.length > 0 && (
          <button type="button" className="text-xs text-primary underline" onClick={() => onChange([])}>
            {t('keys.clearModels')}
          </button>
        )}
      </div>
      <div className="max-h-40 overflow-y-auto rounded-md border border-border p-1">
        {shown.length === 0 && !typed && <p className="p-2 text-xs text-muted-fg">{t('keys.noModels')}</p>}
        {typed && (
          // A model not priced yet (or served later) can still be named.
          <button type="button" className="flex min-h-8 w-full items-center rounded px-2 text-left text-sm text-primary hover:bg-muted" onClick={() => { onChange([...value, typed]); setFilter(''); }}>
            {t('keys.addModel', { name: typed })}
          </button>
        )}
        {shown.map((m) => (
          <label key={m} className="flex min-h-8 cursor-pointer items-center gap-2 rounded px-2 text-sm hover:bg-muted">
            <input type="checkbox" checked={value.includes(m)} onChange={() => toggle(m)} />
            <span className="truncate">{m}</span>
          </label>
        ))}
      </div>
    </div>
  );
}
