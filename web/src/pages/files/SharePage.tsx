import { useState } from 'react';
import { useParams } from 'react-router-dom';
import { useQuery } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import { when } from '../../lib/format';
import { useT } from '../../i18n';
import { usePageTitle } from '../../lib/title';
import { Button, Card, ErrorText, Field, PasswordInput } from '../../components/ui';
import { formatBytes } from './upload';
import type { PublicShare } from './types';

/** The public page of a share link (`/s/:token`): what is shared, a password when asked, and
 * the download. No sign-in. */
export default function SharePage() {
  const t = useT();
  const { token = '' } = useParams();
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const share = useQuery({
    queryKey: qk.publicFileShare(token),
    queryFn: () => api<PublicShare>(`shares/${encodeURIComponent(token)}`, { auth: false }),
    retry: false,
  });

  const unlock = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const grant = await api<{ url: string }>(`shares/${encodeURIComponent(token)}/access`, { body: { password }, auth: false });
      window.location.assign(grant.url);
    } catch (err) {
      setError(err);
    }
  };

  const s = share.data;
  usePageTitle(s?.name ?? t('share.heading'), t('app.name'));
  return (
    <main className="flex min-h-screen items-center justify-center bg-bg p-4">
      <Card className="w-full max-w-md p-6">
        <div className="mb-1 text-sm text-muted-fg">{t('share.heading')}</div>
        <ErrorText error={share.error} />
        {share.isLoading && <p className="text-sm text-muted-fg">{t('common.loading')}</p>}
        {s && (
          <>
            <h1 className="mb-2 break-all text-xl font-semibold" data-testid="share-name">
              {s.name}
            </h1>
            <p className="mb-4 text-sm text-muted-fg">
              {formatBytes(s.size)} · {s.content_type}
              {s.expires_at && ` · ${t('files.expires')} ${when(s.expires_at)}`}
              {s.downloads_left != null && ` · ${t('share.left', { n: s.downloads_left })}`}
            </p>
            {s.password_required ? (
              <form onSubmit={unlock}>
                <Field label={t('files.sharePassword')}>
                  <PasswordInput value={password} onChange={(e) => setPassword(e.target.value)} autoFocus />
                </Field>
                <ErrorText error={error} />
                <Button type="submit" className="mt-3 w-full" disabled={!password}>
                  {t('share.unlock')}
                </Button>
              </form>
            ) : (
              s.content_url && (
                <a href={s.content_url} className="block" data-testid="share-download">
                  <Button className="w-full">{t('files.download')}</Button>
                </a>
              )
            )}
          </>
        )}
      </Card>
    </main>
  );
}
