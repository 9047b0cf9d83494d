import { Link } from 'react-router-dom';
import { ApiError } from '../../lib/api';
import { useT } from '../../i18n';
import { ArrowRightIcon } from '../../components/icons';

/** Whether an error (an API refusal or a failed answer's error) says the balance is too low. */
export function isBalanceError(error: unknown): boolean {
  const code = error instanceof ApiError ? error.code : typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : null;
  return code === 'insufficient_quota';
}

/** After a "balance too low" error: where to top up (redeem a code) and see the balance. */
export function BalanceHint({ error }: { error: unknown }) {
  const t = useT();
  if (!isBalanceError(error)) return null;
  return (
    <Link to="/usage" className="inline-flex items-center gap-1 text-sm font-medium text-primary underline-offset-2 hover:underline" data-testid="balance-hint">
      {t('chat.topUp')} <ArrowRightIcon size={14} />
    </Link>
  );
}
