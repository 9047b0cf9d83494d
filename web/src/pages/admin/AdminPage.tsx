import { NavLink, Navigate, Route, Routes, useLocation } from 'react-router-dom';
import { useSubTitle } from '../../lib/title';
import { authStore } from '../../lib/auth';
import { useStore } from '../../lib/store';
import { useT, type MessageKey } from '../../i18n';
import { cx } from '../../components/ui';
import { Dashboard } from './Dashboard';
import { Users } from './Users';
import { Channels } from './Channels';
import { Requests } from './Requests';
import { Pricing } from './Pricing';
import { Codes } from './Codes';
import { Orders } from './Orders';
import { Coupons } from './Coupons';
import { Plans } from './Plans';
import { AdminInvoices } from './Invoices';
import { Audit } from './Audit';
import { AdminPlugins } from './AdminPlugins';
import { OAuthProviders } from './OAuthProviders';
import { SystemSettingsPage } from './SystemSettings';
import { AdminInvites } from './Invites';

const tabs: Array<{ to: string; key: MessageKey }> = [
  { to: 'dashboard', key: 'admin.dashboard' },
  { to: 'users', key: 'admin.users' },
  { to: 'channels', key: 'admin.channels' },
  { to: 'requests', key: 'admin.requests' },
  { to: 'pricing', key: 'admin.pricing' },
  { to: 'codes', key: 'admin.codes' },
  { to: 'invites', key: 'invites.adminTab' },
  { to: 'orders', key: 'admin.orders' },
  { to: 'coupons', key: 'admin.coupons' },
  { to: 'plans', key: 'admin.plans' },
  { to: 'invoices', key: 'admin.invoices' },
  { to: 'audit', key: 'admin.audit' },
  { to: 'plugins', key: 'admin.plugins' },
  { to: 'sign-in', key: 'oauth.tab' },
  { to: 'system', key: 'admin.system' },
];


/** The admin console (loaded only when an admin opens it). */
export default function AdminPage() {
  const t = useT();
  const { user } = useStore(authStore);
  const { pathname } = useLocation();
  const tab = tabs.find((x) => pathname.startsWith(`/admin/${x.to}`));
  useSubTitle(tab ? t(tab.key) : null);
  if (user && user.role !== 'admin' && user.role !== 'root') {
    return <p className="p-8 text-center text-muted-fg">{t('admin.forbidden')}</p>;
  }
  return (
    <div className="mx-auto max-w-6xl p-4">
      <h1 className="mb-3 text-xl font-semibold">{t('admin.title')}</h1>
      <nav className="mb-4 flex gap-1 overflow-x-auto border-b border-border">
        {tabs.map((tab) => (
          <NavLink
            key={tab.to}
            to={`/admin/${tab.to}`}
            className={({ isActive }) =>
              cx('whitespace-nowrap border-b-2 px-3 py-2 text-sm font-medium', isActive ? 'border-primary text-primary' : 'border-transparent text-muted-fg hover:text-fg')
            }
          >
            {t(tab.key)}
          </NavLink>
        ))}
      </nav>
      <Routes>
        <Route index element={<Navigate to="dashboard" replace />} />
        <Route path="dashboard" element={<Dashboard />} />
        <Route path="users" element={<Users />} />
        <Route path="channels" element={<Channels />} />
        <Route path="requests" element={<Requests />} />
        <Route path="pricing" element={<Pricing />} />
        <Route path="codes" element={<Codes />} />
        <Route path="orders" element={<Orders />} />
        <Route path="coupons" element={<Coupons />} />
        <Route path="plans" element={<Plans />} />
        <Route path="invoices" element={<AdminInvoices />} />
        <Route path="audit" element={<Audit />} />
        <Route path="plugins" element={<AdminPlugins />} />
        <Route path="sign-in" element={<OAuthProviders />} />
        <Route path="system" element={<SystemSettingsPage />} />
        <Route path="invites" element={<AdminInvites />} />
      </Routes>
    </div>
  );
}
