import { Link } from 'react-router-dom';
import { authStore } from '../../lib/auth';
import { useStore } from '../../lib/store';
import { useT } from '../../i18n';
import { SetupChecklist, setupDone, useSetupState } from '../../components/SetupChecklist';

/**
 * What an empty conversation says. The root account sees its setup checklist until every
 * step is done. Without models, an administrator is sent to where models come from
 * (channels, then prices); anyone else is told to ask one.
 */
export function ChatEmpty({ hasModels }: { hasModels: boolean }) {
  const t = useT();
  const { user } = useStore(authStore);
  const admin = user?.role === 'admin' || user?.role === 'root';
  const setup = useSetupState();
  if (setup && !setupDone(setup)) {
    return (
      <div className="mx-auto max-w-xl py-8" data-testid="chat-empty">
        <SetupChecklist />
      </div>
    );
  }
  return (
    <div className="py-16 text-center" data-testid="chat-empty">
      <h3 className="mb-1 text-lg font-semibold">{t('chat.empty')}</h3>
      {hasModels ? (
        <p className="text-sm text-muted-fg">{t('chat.emptyHint')}</p>
      ) : admin ? (
        <>
          <p className="text-sm text-muted-fg">{t('chat.noModelsAdmin')}</p>
          <p className="mt-3 flex flex-wrap justify-center gap-2 text-sm">
            <Link to="/admin/channels" className="rounded-md bg-primary px-3 py-2 font-medium text-primary-fg hover:bg-primary/90">
              {t('chat.addChannel')}
            </Link>
            <Link to="/admin/pricing" className="rounded-md border border-border px-3 py-2 font-medium hover:bg-muted">
              {t('chat.setPrices')}
            </Link>
          </p>
        </>
      ) : (
        <p className="text-sm text-muted-fg">{t('chat.noModels')}</p>
      )}
    </div>
  );
}
