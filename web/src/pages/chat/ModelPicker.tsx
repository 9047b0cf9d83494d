import * as M from '@radix-ui/react-dropdown-menu';
import { useState } from 'react';
import { Link } from 'react-router-dom';
import { authStore } from '../../lib/auth';
import { storage, useStore } from '../../lib/store';
import { SETUP_PATH } from '../../components/SetupChecklist';
import { money } from '../../lib/format';
import type { ChatModel } from '../../lib/types';
import { useT } from '../../i18n';
import { cx } from '../../components/ui';
import { ChevronDownIcon, StarIcon } from '../../components/icons';

/** Picks the conversation's model; each choice shows its prices per million tokens. With no
 * model to pick, it says so, and an administrator's leads to the setup checklist. */
export function ModelPicker({ models, value, onChange }: { models: ChatModel[]; value: string; onChange: (id: string) => void }) {
  const t = useT();
  const { user } = useStore(authStore);
  if (models.length === 0) {
    const admin = user?.role === 'admin' || user?.role === 'root';
    const className = 'flex h-9 min-w-0 max-w-[12rem] items-center gap-1 truncate rounded-md border border-dashed border-border px-2.5 text-sm text-muted-fg sm:max-w-xs';
    return admin ? (
      // Root has the checklist; another administrator goes straight to the channels.
      <Link
        to={user?.role === 'root' ? SETUP_PATH : '/admin/channels'}
        className={cx(className, 'hover:bg-muted hover:text-fg')}
        data-testid="model-picker"
        title={t('chat.noModelsAdmin')}
      >
        <span className="truncate">{user?.role === 'root' ? t('setup.title') : t('chat.addChannel')}</span>
      </Link>
    ) : (
      <span className={className} data-testid="model-picker" title={t('chat.noModels')}>
        <span className="truncate">{t('chat.noModelsPicker')}</span>
      </span>
    );
  }
  return <ModelMenu models={models} value={value} onChange={onChange} />;
}

const FAVOURITES_KEY = 'skein.favouriteModels';

/** The models starred on this device, kept in local storage. */
export function readFavourites(): string[] {
  try {
    const v = JSON.parse(storage.get(FAVOURITES_KEY) ?? '[]');
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

/** What a model is known to do, from its name (providers publish no capability list): sees
 * images, thinks before answering. */
export function capabilities(id: string): Array<'vision' | 'reasoning'> {
  const name = id.toLowerCase();
  const out: Array<'vision' | 'reasoning'> = [];
  if (/gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-5|claude-3|claude-(sonnet|opus|haiku)-4|gemini|vision|-vl\b|-vl-|qwen-vl|glm-4v|llava|pixtral/.test(name)) out.push('vision');
  if (/(^|[^a-z])o[134](-|$)|reason|thinking|deepseek-r1|-r1\b|qwq|gpt-5/.test(name)) out.push('reasoning');
  return out;
}

/** "128K" for a context window in tokens. */
export function contextLabel(tokens: number): string {
  if (tokens >= 1_000_000) return `${Math.round(tokens / 100_000) / 10}M`;
  if (tokens >= 1000) return `${Math.round(tokens / 1000)}K`;
  return String(tokens);
}

/** The models that match `query`, favourites first (each group in the server's order). */
export function pickable(models: ChatModel[], query: string, favourites: string[]): ChatModel[] {
  const q = query.trim().toLowerCase();
  const hits = q ? models.filter((m) => m.id.toLowerCase().includes(q)) : models;
  return [...hits.filter((m) => favourites.includes(m.id)), ...hits.filter((m) => !favourites.includes(m.id))];
}

function ModelMenu({ models, value, onChange }: { models: ChatModel[]; value: string; onChange: (id: string) => void }) {
  const t = useT();
  const [query, setQuery] = useState('');
  const [favourites, setFavourites] = useState(readFavourites);
  const shown = pickable(models, query, favourites);
  const toggleFavourite = (id: string) => {
    const next = favourites.includes(id) ? favourites.filter((f) => f !== id) : [...favourites, id];
    storage.set(FAVOURITES_KEY, JSON.stringify(next));
    setFavourites(next);
  };
  return (
    <M.Root onOpenChange={(open) => !open && setQuery('')}>
      <M.Trigger
        className="flex h-9 min-w-0 max-w-[10rem] items-center gap-1 rounded-md border border-border bg-bg px-2.5 text-sm hover:bg-muted sm:max-w-xs"
        aria-label={`${t('chat.modelPicker')}: ${value || '…'}`}
        data-testid="model-picker"
      >
        <span className="truncate">{value || '…'}</span>
        <ChevronDownIcon className="shrink-0 text-muted-fg" />
      </M.Trigger>
      <M.Portal>
        <M.Content align="end" sideOffset={4} className="z-50 w-[min(22rem,calc(100vw-1.5rem))] rounded-lg border border-border bg-card p-1 shadow-lg" loop>
          {models.length > 6 && (
            <input
              type="search"
              className="mb-1 h-9 w-full rounded-md border border-border bg-bg px-2.5 text-sm placeholder:text-muted-fg focus:outline-none focus:ring-2 focus:ring-primary/50"
              placeholder={t('chat.modelSearch')}
              aria-label={t('chat.modelSearch')}
              value={query}
              onChange={(e) => setQuery(e.target.value)}
              // Typing is for the filter, not the menu's jump-to-item.
              onKeyDown={(e) => e.key !== 'ArrowDown' && e.key !== 'Escape' && e.stopPropagation()}
              autoFocus
              data-testid="model-search"
            />
          )}
          <div className="max-h-80 overflow-y-auto">
            <M.RadioGroup value={value} onValueChange={onChange}>
              {shown.map((m) => {
                const caps = capabilities(m.id);
                const starred = favourites.includes(m.id);
                return (
                  <M.RadioItem
                    key={m.id}
                    value={m.id}
                    className="flex cursor-pointer select-none flex-col rounded px-2.5 py-1.5 text-sm outline-none data-[highlighted]:bg-muted data-[state=checked]:text-primary"
                    data-testid="model-option"
                  >
                    <span className="flex items-center gap-1.5 font-medium">
                      {starred && <StarIcon size={12} fill="currentColor" className="shrink-0 text-amber-500" />}
                      <span className="truncate">{m.id}</span>
                    </span>
                    <span className="mt-0.5 flex flex-wrap items-center gap-1 text-xs text-muted-fg">
                      {m.input_price != null && m.output_price != null && <span>{t('chat.pricePer', { input: money(m.input_price), output: money(m.output_price) })}</span>}
                      {m.context_window > 0 && <span className="rounded bg-muted px-1" title={t('chat.contextWindow')}>{t('chat.contextTokens', { n: contextLabel(m.context_window) })}</span>}
                      {caps.includes('vision') && <span className="rounded bg-muted px-1">{t('chat.capVision')}</span>}
                      {caps.includes('reasoning') && <span className="rounded bg-muted px-1">{t('chat.capReasoning')}</span>}
                    </span>
                  </M.RadioItem>
                );
              })}
            </M.RadioGroup>
            {shown.length === 0 && <p className="px-2.5 py-2 text-sm text-muted-fg">{t('chat.noModelMatch')}</p>}
          </div>
          {value && (
            <>
              <M.Separator className="my-1 h-px bg-border" />
              <M.CheckboxItem
                checked={favourites.includes(value)}
                onCheckedChange={() => toggleFavourite(value)}
                onSelect={(e) => e.preventDefault()}
                className="flex cursor-pointer select-none items-center gap-2 rounded px-2.5 py-1.5 text-sm outline-none data-[highlighted]:bg-muted"
                data-testid="model-favourite"
              >
                <StarIcon size={14} fill={favourites.includes(value) ? 'currentColor' : 'none'} className="text-amber-500" />
                {t('chat.favouriteModel', { model: value })}
              </M.CheckboxItem>
            </>
          )}
        </M.Content>
      </M.Portal>
    </M.Root>
  );
}
