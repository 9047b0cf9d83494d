import { NavLink, Navigate, Route, Routes, useLocation, useNavigate } from 'react-router-dom';
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
import { PaymentSettingsPage } from './PaymentSettings';
import { AdminInvoices } from './Invoices';
import { Audit } from './Audit';
import { AdminPlugins } from './AdminPlugins';
import { SignInSettingsPage } from './SignInSettings';
import { SystemSettingsPage } from './SystemSettings';
import { AdminInvites } from './Invites';

/** The console's sections, grouped the way an operator works: what happens, who uses it,
 * what is served, what is sold, how the server is run. */
export const tabGroups: Array<{ key: MessageKey; tabs: Array<{ to: string; key: MessageKey }> }> = [
  {
    key: 'admin.groupOverview',
    tabs: [
      { to: 'dashboard', key: 'admin.dashboard' },
      { to: 'requests', key: 'admin.requests' },
      { to: 'audit', key: 'admin.audit' },
    ],
  },
  {
    key: 'admin.groupPeople',
    tabs: [
      { to: 'users', key: 'admin.users' },
      { to: 'invites', key: 'invites.adminTab' },
      { to: 'sign-in', key: 'signin.tab' },
    ],
  },
  {
    key: 'admin.groupServing',
    tabs: [
      { to: 'channels', key: 'admin.channels' },
      { to: 'pricing', key: 'admin.pricing' },
      { to: 'plugins', key: 'admin.plugins' },
    ],
  },
  {
    key: 'admin.groupBilling',
    tabs: [
      { to: 'orders', key: 'admin.orders' },
      { to: 'codes', key: 'admin.codes' },
      { to: 'coupons', key: 'admin.coupons' },
      { to: 'plans', key: 'admin.plans' },
      { to: 'invoices', key: 'admin.invoices' },
      { to: 'payments', key: 'admin.payments' },
    ],
  },
  { key: 'admin.groupServer', tabs: [{ to: 'system', key: 'admin.system' }] },
];

const tabs = tabGroups.flatMap((g) => g.tabs);

/** The sections as a grouped list beside the page on wide screens (sixteen tabs do not fit
 * in one row). */
function AdminNav() {
  const t = useT();
  return (
    <nav aria-label={t('admin.sections')} className="hidden w-48 shrink-0 lg:block" data-testid="admin-nav">
      {tabGroups.map((g) => (
        <div key={g.key} className="mb-4">
          <h2 className="mb-1 px-3 text-xs font-semibold uppercase tracking-wide text-muted-fg">{t(g.key)}</h2>
          <ul className="space-y-0.5">
            {g.tabs.map((tab) => (
              <li key={tab.to}>
                <NavLink
                  to={`/admin/${tab.to}`}
                  className={({ isActive }) =>
                    cx(
                      'block rounded-md px-3 py-1.5 text-sm font-medium',
                      isActive ? 'bg-primary/10 text-primary' : 'text-muted-fg hover:bg-muted hover:text-fg',
                    )
                  }
                >
                  {t(tab.key)}
                </NavLink>
              </li>
            ))}
          </ul>
        </div>
      ))}
    </nav>
  );
}

/** The sections as a labelled select on narrower screens, under the title. */
function AdminSelect({ current }: { current: string | undefined }) {
  const t = useT();
  const navigate = useNavigate();
  return (
    <label className="mb-4 flex items-center gap-2 lg:hidden">
      <span className="text-sm font-medium text-muted-fg">{t('admin.section')}</span>
      <select
        className="h-11 min-w-0 flex-1 rounded-md border border-border bg-bg px-2 text-sm focus:outline-none focus:ring-2 focus:ring-primary/50"
        value={current ?? ''}
        onChange={(e) => navigate(`/admin/${e.target.value}`)}
        data-testid="admin-section"
      >
        {tabGroups.map((g) => (
          <optgroup key={g.key} label={t(g.key)}>
            {g.tabs.map((tab) => (
              <option key={tab.to} value={tab.to}>
                {t(tab.key)}
              </option>
            ))}
          </optgroup>
        ))}
      </select>
    </label>
  );
}

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
    <div className="mx-auto max-w-[96rem] p-4 lg:flex lg:gap-6">
      <AdminNav />
      <div className="min-w-0 flex-1">
        <h1 className="mb-3 text-xl font-semibold">{t('admin.title')}</h1>
        <AdminSelect current={tab?.to} />
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
          <Route path="payments" element={<PaymentSettingsPage />} />
          <Route path="audit" element={<Audit />} />
          <Route path="plugins" element={<AdminPlugins />} />
          <Route path="sign-in" element={<SignInSettingsPage />} />
          <Route path="system" element={<SystemSettingsPage />} />
          <Route path="invites" element={<AdminInvites />} />
        </Routes>
      </div>
    </div>
  );
}
