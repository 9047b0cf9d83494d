import { Link } from 'react-router-dom';
import { useQuery } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import { money } from '../../lib/format';
import { cx } from '../../components/ui';
import type { ChatModel, Quota } from '../../lib/types';
import { useT } from '../../i18n';
import { Button } from '../../components/ui';
import { Menu } from '../../components/ui/menu';
import { ModelPicker } from './ModelPicker';
import { ChatIcon, KeyboardIcon, SettingsIcon, ShareIcon } from '../../components/icons';

export type ExportFormat = 'markdown' | 'html' | 'json';

/** The balance left to spend (after what running answers hold), linking to where to top up. */
export function ChatBalance() {
  const t = useT();
  const quota = useQuery({ queryKey: qk.quota, queryFn: () => api<Quota>('billing/quota') });
  if (!quota.data) return null;
  const left = quota.data.available;
  return (
    <Link
      to="/usage"
      className={cx('shrink-0 rounded-md px-2 py-1 text-xs tabular-nums hover:bg-muted', left <= 0 ? 'font-medium text-danger' : 'text-muted-fg')}
      title={t('chat.balanceHint')}
      data-testid="chat-balance"
    >
      <span className="hidden sm:inline">{t('chat.balance')} </span>
      {money(left, quota.data.quota_per_usd)}
    </Link>
  );
}

/** The thread's top bar: conversation list (phones), title, model, settings and export; then the model's price. */
export function ThreadHeader({
  title,
  models,
  model,
  onModelChange,
  onOpenList,
  canManage,
  onSettings,
  onExport,
  onShare,
  onHelp,
}: {
  title: string;
  models: ChatModel[];
  model: string;
  onModelChange: (model: string) => void;
  onOpenList: () => void;
  /** A saved conversation (settings and export apply). */
  canManage: boolean;
  onSettings: () => void;
  onExport: (format: ExportFormat) => void;
  /** Opens the share dialog. */
  onShare?: () => void;
  /** Opens the keyboard shortcuts. */
  onHelp?: () => void;
}) {
  const t = useT();
  const current = models.find((m) => m.id === model);
  return (
    <>
      <div className="flex h-12 shrink-0 items-center gap-2 border-b border-border px-3">
        <button className="rounded-md p-1.5 text-muted-fg hover:bg-muted md:hidden" aria-label={t('chat.conversations')} title={t('chat.conversations')} onClick={onOpenList}>
          <ChatIcon size={20} />
        </button>
        <h1 className="min-w-0 flex-1 truncate text-sm font-medium" data-testid="conversation-title">
          {title || t('chat.untitled')}
        </h1>
        <ChatBalance />
        <ModelPicker models={models} value={model} onChange={onModelChange} />
        {onHelp && (
          <Button variant="ghost" size="icon" className="hidden md:inline-flex" aria-label={t('shortcuts.open')} title={t('shortcuts.open')} onClick={onHelp}>
            <KeyboardIcon size={18} />
          </Button>
        )}
        {canManage && (
          <>
            {onShare && (
              <Button variant="ghost" size="icon" aria-label={t('chat.share')} title={t('chat.share')} onClick={onShare} data-testid="share-conversation">
                <ShareIcon size={18} />
              </Button>
            )}
            <Button variant="ghost" size="icon" aria-label={t('chat.settings')} title={t('chat.settings')} onClick={onSettings}>
              <SettingsIcon size={18} />
            </Button>
            <Menu
              label={t('chat.export')}
              trigger={
                <Button variant="ghost" size="sm">
                  {t('chat.export')}
                </Button>
              }
              items={[
                { label: t('chat.exportMarkdown'), onSelect: () => onExport('markdown') },
                { label: t('chat.exportHtml'), onSelect: () => onExport('html') },
                { label: t('chat.exportJson'), onSelect: () => onExport('json') },
              ]}
            />
          </>
        )}
      </div>
      {current && current.input_price != null && current.output_price != null && (
        <div className="border-b border-border px-4 py-1 text-xs text-muted-fg" data-testid="model-price">
          {current.id}: {t('chat.pricePer', { input: money(current.input_price), output: money(current.output_price) })}
        </div>
      )}
    </>
  );
}
