import { Suspense, lazy, useEffect, useState } from 'react';
import { Navigate, Route, Routes, useLocation } from 'react-router-dom';
import { api, refreshSession } from './lib/api';
import { authStore, hasSession, setUser } from './lib/auth';
import { adoptAccountSettings } from './lib/settings';
import { useStore } from './lib/store';
import type { Profile } from './lib/types';
import { Layout } from './components/Layout';
import { Toaster } from './components/ui/toast';
import { Loading, RoutePage } from './components/RoutePage';
import { AuthPage } from './pages/auth/Auth';
import { ForgotPasswordPage, ResetPasswordPage, VerifyEmailPage } from './pages/auth/Recovery';
import { OAuthCallbackPage } from './pages/auth/OAuth';
import { routes } from './routes';
import { useT } from './i18n';
import { usePageTitle } from './lib/title';

/** The public page of a share link: no sign-in, loaded only when opened. */
const SharePage = lazy(() => import('./pages/files/SharePage'));
/** The public page of a shared conversation: no sign-in, loaded only when opened. */
const SharedConversationPage = lazy(() => import('./pages/chat/SharedConversation'));

/** Restores a session from the refresh cookie before the first render of a page. */
function useBoot() {
  const [ready, setReady] = useState(() => !hasSession() || authStore.get().accessToken !== null);
  useEffect(() => {
    if (ready) return;
    (async () => {
      try {
        if (await refreshSession()) {
          if (!authStore.get().user) setUser(await api<Profile>('user/profile'));
        }
      } catch {
        /* offline: the sign-in page will say so when used */
      }
      setReady(true);
    })();
  }, [ready]);
  return ready;
}

function RequireAuth({ children }: { children: React.ReactNode }) {
  const { accessToken, reason } = useStore(authStore);
  const location = useLocation();
  if (!accessToken) {
    if (reason === 'signed-out') return <Navigate to="/login" replace />;
    const next = location.pathname + location.search;
    return <Navigate to={`/login?next=${encodeURIComponent(next)}`} replace />;
  }
  return <>{children}</>;
}

function NotFound() {
  const t = useT();
  usePageTitle(t('notFound.title'), t('app.name'));
  return (
    <div className="p-8 text-center">
      <h1 className="mb-2 text-xl font-semibold">{t('notFound.title')}</h1>
      <a className="text-primary underline" href="/chat">
        {t('notFound.back')}
      </a>
    </div>
  );
}

/** The app's routes. */
export function App() {
  const ready = useBoot();
  const { user, accessToken } = useStore(authStore);
  useEffect(() => {
    if (accessToken && !user) {
      api<Profile>('user/profile').then(setUser, () => undefined);
    }
  }, [accessToken, user]);
  useEffect(() => {
    if (user) adoptAccountSettings(user);
  }, [user]);
  if (!ready) return <Loading />;
  return (
    <>
      <Routes>
        <Route path="/login" element={<AuthPage mode="login" />} />
        <Route path="/register" element={<AuthPage mode="register" />} />
        <Route path="/forgot-password" element={<ForgotPasswordPage />} />
        <Route path="/reset-password" element={<ResetPasswordPage />} />
        <Route path="/verify-email" element={<VerifyEmailPage />} />
        <Route path="/oauth/callback/:slug" element={<OAuthCallbackPage />} />
        <Route
          path="/s/:token"
          element={
            <Suspense fallback={<Loading />}>
              <SharePage />
            </Suspense>
          }
        />
        <Route
          path="/share/:token"
          element={
            <Suspense fallback={<Loading />}>
              <SharedConversationPage />
            </Suspense>
          }
        />
        <Route
          element={
            <RequireAuth>
              <Layout />
            </RequireAuth>
          }
        >
          <Route index element={<Navigate to="/chat" replace />} />
          {routes.map((route) => (
            <Route key={route.path} path={route.path} element={<RoutePage route={route} />} />
          ))}
          <Route path="*" element={<NotFound />} />
        </Route>
      </Routes>
      <Toaster />
    </>
  );
}
