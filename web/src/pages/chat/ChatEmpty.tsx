import { Link } from 'react-router-dom';
import { authStore } from '../../lib/auth';
import { useStore } from '../../lib/store';
import { useT, type MessageKey } from '../../i18n';
import { SetupChecklist, setupDone, useSetupState } from '../../components/SetupChecklist';

/** Starting points offered in an empty chat; a click puts one in the composer to edit or send. */
const SUGGESTIONS: MessageKey[] = ['chat.suggestExplain', 'chat.suggestWrite', 'chat.suggestCode', 'chat.suggestTranslate'];

/**
 * What an empty conversation says. The root account sees its setup checklist until every
 * step is done. Without models, an administrator is sent to where models come from
 * (channels, then prices); anyone else is told to ask one.
 */
export function ChatEmpty({ hasModels, onSuggest }: { hasModels: boolean; onSuggest?: (text: string) => void }) {
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
        <>
          <p className="text-sm text-muted-fg">{t('chat.emptyHint')}</p>
          {onSuggest && (
            <ul className="mx-auto mt-6 grid max-w-xl gap-2 text-left sm:grid-cols-2" aria-label={t('chat.suggestions')} data-testid="suggestions">
              {SUGGESTIONS.map((key) => (
                <li key={key}>
                  <button
                    type="button"
                    className="min-h-11 w-full rounded-lg border border-border px-3 py-2 text-left text-sm hover:bg-muted"
                    onClick={() => onSuggest(t(key))}
                  >
                    {t(key)}
                  </button>
                </li>
              ))}
            </ul>
          )}
        </>
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
