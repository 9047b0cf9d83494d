import { useState } from 'react';
import { NavLink, Outlet, useNavigate } from 'react-router-dom';
import { useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { authStore, clearSession } from '../lib/auth';
import { useStore } from '../lib/store';
import { useT } from '../i18n';
import { navLinks } from '../routes';
import { cx } from './ui';
import { Drawer } from './ui/dialog';
import { createStore } from '../lib/store';
import { announcementDismissed, dismissAnnouncement, useCurrencySync, usePublicSettings } from '../lib/system';
import { langStore } from '../lib/settings';
import { CloseIcon, MenuIcon } from './icons';

/** Whether the phone navigation drawer is open (pages with their own sidebar open it too). */
export const navOpenStore = createStore(false);

function NavItems({ onPick }: { onPick?: () => void }) {
  const t = useT();
  const { user } = useStore(authStore);
  const isAdmin = user?.role === 'admin' || user?.role === 'root';
  return (
    <>
      {navLinks
        .filter((l) => !l.admin || isAdmin)
        .map((l) => (
          <NavLink
            key={l.to}
            to={l.to}
            onClick={onPick}
            className={({ isActive }) =>
              cx('rounded-md px-3 py-1.5 text-sm font-medium', isActive ? 'bg-primary/10 text-primary' : 'text-muted-fg hover:bg-muted hover:text-fg')
            }
          >
            {t(l.label)}
          </NavLink>
        ))}
    </>
  );
}

/**
 * The administrator's announcement, in the UI language, until this user dismisses it (kept per
 * user on this device; a new text has a new id and shows again). Plain text: line breaks only.
 */
export function AnnouncementBanner() {
  const t = useT();
  const lang = useStore(langStore);
  const { user } = useStore(authStore);
  const settings = usePublicSettings();
  const [, rerender] = useState(0);
  const a = settings.data?.announcement;
  if (!a || !user || announcementDismissed(user.id, a.id)) return null;
  return (
    <div role="status" data-testid="announcement" className="flex items-start gap-3 border-b border-primary/30 bg-primary/10 px-4 py-2 text-sm">
      <p className="min-w-0 flex-1 whitespace-pre-line break-words">{lang === 'zh-CN' ? a.zh : a.en}</p>
      <button
        type="button"
        className="-my-1 flex h-8 w-8 shrink-0 items-center justify-center rounded-md text-muted-fg hover:bg-muted hover:text-fg"
        aria-label={t('announcement.dismiss')}
        onClick={() => {
          dismissAnnouncement(user.id, a.id);
          rerender((n) => n + 1);
        }}
      >
        <CloseIcon />
      </button>
    </div>
  );
}

/** The signed-in frame: a top bar with the sections (a drawer on phones) and the page. */
export function Layout() {
  const t = useT();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const { user } = useStore(authStore);
  const [open, setOpen] = [useStore(navOpenStore), navOpenStore.set];
  const [busy, setBusy] = useState(false);
  // Money is shown in the currency the admin chose, or the user's own.
  useCurrencySync();

  const signOut = async () => {
    setBusy(true);
    // The server ends the session and clears the refresh cookie.
    await api('auth/logout', { body: {} }).catch(() => undefined);
    clearSession('signed-out');
    queryClient.clear();
    navigate('/login', { replace: true });
  };

  return (
    <div className="flex h-full flex-col">
      <header className="flex h-12 shrink-0 items-center gap-2 border-b border-border px-3">
        <button className="flex h-10 w-10 items-center justify-center rounded-md hover:bg-muted md:hidden" aria-label={t('nav.menu')} onClick={() => setOpen(true)}>
          <MenuIcon size={20} />
        </button>
        <NavLink to="/chat" className="mr-3 flex items-center gap-2 font-semibold">
          <img src="/favicon.svg" alt="" className="h-6 w-6" />
          {t('app.name')}
        </NavLink>
        <nav className="hidden items-center gap-1 md:flex">
          <NavItems />
        </nav>
        <div className="ml-auto flex items-center gap-2 text-sm">
          <span className="hidden max-w-[12rem] truncate text-muted-fg sm:inline" data-testid="whoami">
            {user?.display_name}
          </span>
          <button className="rounded-md px-2 py-1 text-muted-fg hover:bg-muted" onClick={signOut} disabled={busy}>
            {t('nav.signOut')}
          </button>
        </div>
      </header>
      <Drawer open={open} onOpenChange={setOpen} title={t('nav.menu')}>
        <div className="flex items-center justify-between border-b border-border p-3 font-semibold">
          {t('app.name')}
          <button className="flex h-10 w-10 items-center justify-center rounded-md hover:bg-muted" aria-label={t('nav.close')} onClick={() => setOpen(false)}>
            <CloseIcon size={18} />
          </button>
        </div>
        <nav className="flex flex-col gap-1 p-2">
          <NavItems onPick={() => setOpen(false)} />
        </nav>
      </Drawer>
      <AnnouncementBanner />
      <main className="min-h-0 flex-1 overflow-y-auto">
        <Outlet />
      </main>
    </div>
  );
}
