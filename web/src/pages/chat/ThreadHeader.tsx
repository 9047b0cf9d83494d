import { money } from '../../lib/format';
import type { ChatModel } from '../../lib/types';
import { useT } from '../../i18n';
import { Button } from '../../components/ui';
import { Menu } from '../../components/ui/menu';
import { ModelPicker } from './ModelPicker';

export type ExportFormat = 'markdown' | 'html' | 'json';

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
}) {
  const t = useT();
  const current = models.find((m) => m.id === model);
  return (
    <>
      <div className="flex h-12 shrink-0 items-center gap-2 border-b border-border px-3">
        <button className="rounded-md p-1.5 text-muted-fg hover:bg-muted md:hidden" aria-label={t('chat.conversations')} title={t('chat.conversations')} onClick={onOpenList}>
          <svg viewBox="0 0 24 24" className="h-5 w-5" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden>
            <path d="M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z" />
          </svg>
        </button>
        <h2 className="min-w-0 flex-1 truncate text-sm font-medium" data-testid="conversation-title">
          {title || t('chat.untitled')}
        </h2>
        <ModelPicker models={models} value={model} onChange={onModelChange} />
        {canManage && (
          <>
            <Button variant="ghost" size="icon" aria-label={t('chat.settings')} title={t('chat.settings')} onClick={onSettings}>
              ⚙
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
