import * as M from '@radix-ui/react-dropdown-menu';
import { Link } from 'react-router-dom';
import { authStore } from '../../lib/auth';
import { useStore } from '../../lib/store';
import { SETUP_PATH } from '../../components/SetupChecklist';
import { money } from '../../lib/format';
import type { ChatModel } from '../../lib/types';
import { useT } from '../../i18n';
import { cx } from '../../components/ui';

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
  return (
    <M.Root>
      <M.Trigger
        className="flex h-9 min-w-0 max-w-[10rem] items-center gap-1 rounded-md border border-border bg-bg px-2.5 text-sm hover:bg-muted sm:max-w-xs"
        aria-label={t('chat.modelPicker')}
        data-testid="model-picker"
      >
        <span className="truncate">{value || '…'}</span>
        <span aria-hidden className="text-muted-fg">▾</span>
      </M.Trigger>
      <M.Portal>
        <M.Content align="end" sideOffset={4} className="z-50 max-h-80 min-w-[14rem] overflow-y-auto rounded-lg border border-border bg-card p-1 shadow-lg">
          <M.RadioGroup value={value} onValueChange={onChange}>
            {models.map((m) => (
              <M.RadioItem
                key={m.id}
                value={m.id}
                className="flex cursor-pointer select-none flex-col rounded px-2.5 py-1.5 text-sm outline-none data-[highlighted]:bg-muted data-[state=checked]:text-primary"
              >
                <span className="font-medium">{m.id}</span>
                {m.input_price != null && m.output_price != null && (
                  <span className="text-xs text-muted-fg">{t('chat.pricePer', { input: money(m.input_price), output: money(m.output_price) })}</span>
                )}
              </M.RadioItem>
            ))}
          </M.RadioGroup>
        </M.Content>
      </M.Portal>
    </M.Root>
  );
}
