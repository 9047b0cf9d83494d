import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { list, money, when } from '../../lib/format';
import type { AllowedGroup, ApiKey, ModelPrice, Page } from '../../lib/types';
import { ApiSnippets, ModelMultiSelect } from './ApiSnippets';
import { useT, useValueName } from '../../i18n';
import { Badge, Button, CopyButton, DataTable, ErrorText, Field, Input, PageHeader, Pager, Select } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';

const emptyForm = { name: '', group: '', quota_limit: '', expires_at: '', allowed_models: '', allowed_ips: '', rpm_limit: '', tpm_limit: '' };

/** The user's relay API keys: create (secret shown once), limits, disable, revoke. */
export default function KeysPage() {
  const t = useT();
  const v = useValueName();
  const queryClient = useQueryClient();
  const [page, setPage] = useState(1);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<ApiKey | null>(null);
  const [form, setForm] = useState(emptyForm);
  const [error, setError] = useState<unknown>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const keys = useQuery({ queryKey: qk.keys.page(page), queryFn: () => api<Page<ApiKey>>(`keys?page=${page}&per_page=20`) });
  // Only the groups an admin granted are offered: groups carry prices, so they are given, not chosen.
  const groups = useQuery({ queryKey: qk.keyGroups, queryFn: () => api<AllowedGroup[]>('relay/groups') });
  const allowed = groups.data ?? [];
  // The priced models: what a key may be limited to, and what the examples call.
  const prices = useQuery({ queryKey: qk.pricing, queryFn: () => api<ModelPrice[]>('pricing') });
  const models = (prices.data ?? []).map((p) => p.model).sort();
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.keys.all });
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => setForm({ ...form, [k]: e.target.value });
  const n = (s: string) => (s.trim() ? Number(s) : undefined);

  const limits = () => ({
    quota_limit: n(form.quota_limit) ?? null,
    expires_at: form.expires_at ? new Date(form.expires_at).toISOString() : null,
    allowed_models: form.allowed_models.trim() ? list(form.allowed_models) : null,
    allowed_ips: form.allowed_ips.trim() ? list(form.allowed_ips) : null,
    rpm_limit: n(form.rpm_limit) ?? null,
    tpm_limit: n(form.tpm_limit) ?? null,
  });

  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      if (editing) {
        // null clears a limit; the group is sent only when moved, so a key whose group was
        // taken away can still be renamed or limited.
        const moved = form.group && form.group !== editing.group ? { group: form.group } : {};
        await api(`keys/${editing.id}`, { method: 'PATCH', body: { name: form.name.trim(), ...moved, ...limits() } });
        setEditing(null);
        setForm(emptyForm);
        refresh();
        return;
      }
      const body = Object.fromEntries(Object.entries(limits()).filter(([, value]) => value !== null));
      const group = form.group || allowed[0]?.group;
      const created = await api<ApiKey>('keys', { body: { name: form.name.trim(), ...(group ? { group } : {}), ...body } });
      setCreating(false);
      setForm(emptyForm);
      // The secret is kept only in this dialog's state and dropped when it closes.
      setSecret(created.key ?? null);
      refresh();
    } catch (err) {
      setError(err);
    }
  };

  const startEdit = (k: ApiKey) => {
    const local = (iso?: string | null) => {
      if (!iso) return '';
      const d = new Date(iso);
      return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    };
    setForm({
      name: k.name,
      group: k.group,
      quota_limit: k.quota_limit == null ? '' : String(k.quota_limit),
      expires_at: local(k.expires_at),
      allowed_models: (k.allowed_models ?? []).join(', '),
      allowed_ips: (k.allowed_ips ?? []).join(', '),
      rpm_limit: k.rpm_limit == null ? '' : String(k.rpm_limit),
      tpm_limit: k.tpm_limit == null ? '' : String(k.tpm_limit),
    });
    setError(null);
    setEditing(k);
  };

  return (
    <div className="mx-auto max-w-5xl p-4">
      <PageHeader title={t('keys.title')}>
        <Button onClick={() => setCreating(true)}>+ {t('keys.new')}</Button>
      </PageHeader>
      <p className="mb-4 text-sm text-muted-fg">{t('keys.intro')}</p>
      <ErrorText error={keys.error} />
      <DataTable
        rows={keys.data?.items ?? []}
        rowKey={(k) => k.id}
        columns={[
          { header: t('common.name'), cell: (k) => <span className="font-medium">{k.name}</span> },
          { header: t('keys.hint'), cell: (k) => <code className="text-xs">{k.key_hint}</code> },
          { header: t('common.status'), cell: (k) => <Badge tone={k.status === 'active' ? 'ok' : 'neutral'}>{v(k.status)}</Badge> },
          {
            header: t('keys.limits'),
            cell: (k) => (
              <span className="text-xs text-muted-fg">
                {k.group} · {k.quota_limit != null ? money(k.quota_limit) : t('common.unlimited')}
                {k.rpm_limit != null && ` · ${t('keys.rpmShort', { n: k.rpm_limit })}`}
                {k.tpm_limit != null && ` · ${t('keys.tpmShort', { n: k.tpm_limit })}`}
                {k.allowed_models?.length ? ` · ${k.allowed_models.join(', ')}` : ''}
                {k.expires_at && ` · ${t('keys.expiresAt')} ${when(k.expires_at)}`}
              </span>
            ),
          },
          { header: t('keys.lastUsed'), cell: (k) => (k.last_used_at ? when(k.last_used_at) : t('common.never')) },
          {
            header: t('common.actions'),
            cell: (k) => (
              <span className="flex justify-end gap-1">
                <Button variant="secondary" size="sm" onClick={() => startEdit(k)}>
                  {t('keys.limits')}
                </Button>
                <Button
                  variant="secondary"
                  size="sm"
                  onClick={async () => {
                    await api(`keys/${k.id}`, { method: 'PATCH', body: { status: k.status === 'active' ? 'disabled' : 'active' } }).catch(setError);
                    refresh();
                  }}
                >
                  {k.status === 'active' ? t('common.disable') : t('common.enable')}
                </Button>
                <Button variant="danger" size="sm" onClick={() => setRevoking(k)}>
                  {t('keys.revoke')}
                </Button>
              </span>
            ),
          },
        ]}
      />
      <Pager page={page} perPage={20} total={keys.data?.total ?? 0} onPage={setPage} />
      <ApiSnippets models={models} className="mt-4" />
      <ErrorText error={error && !creating && !editing ? error : null} />

      <Dialog
        open={creating || editing !== null}
        onOpenChange={(o) => {
          if (!o) {
            setCreating(false);
            setEditing(null);
            setForm(emptyForm);
          }
        }}
        title={editing ? `${t('keys.limits')} · ${editing.name}` : t('keys.new')}
      >
        <form className="space-y-3" onSubmit={create}>
          <Field label={t('common.name')}>
            <Input required value={form.name} onChange={set('name')} name="key-name" />
          </Field>
          {allowed.length === 0 && groups.isSuccess ? (
            <p className="text-sm text-danger" role="alert">{t('keys.noGroups')}</p>
          ) : (
            <Field label={t('keys.group')}>
              <Select className="w-full" value={form.group || (editing?.group ?? allowed[0]?.group ?? '')} onChange={set('group')}>
                {editing && !allowed.some((g) => g.group === editing.group) && (
                  <option value={editing.group} disabled>{editing.group}</option>
                )}
                {allowed.map((g) => (
                  <option key={g.group} value={g.group}>
                    {t('keys.groupOption', { group: g.group, multiplier: g.multiplier_permille / 1000 })}
                  </option>
                ))}
              </Select>
            </Field>
          )}
          <div className="grid grid-cols-2 gap-3">
            <Field label={t('keys.quotaLimit')}>
              <Input type="number" min="0" value={form.quota_limit} onChange={set('quota_limit')} placeholder={t('common.unlimited')} />
            </Field>
            <Field label={t('keys.expiresAt')}>
              <Input type="datetime-local" value={form.expires_at} onChange={set('expires_at')} />
            </Field>
            <Field label={t('keys.rpm')}>
              <Input type="number" min="1" value={form.rpm_limit} onChange={set('rpm_limit')} />
            </Field>
            <Field label={t('keys.tpm')}>
              <Input type="number" min="1" value={form.tpm_limit} onChange={set('tpm_limit')} />
            </Field>
          </div>
          <p className="text-xs text-muted-fg">{t('keys.limitsClamped')}</p>
          <Field label={t('keys.models')}>
            <ModelMultiSelect models={models} value={list(form.allowed_models)} onChange={(next) => setForm({ ...form, allowed_models: next.join(', ') })} />
          </Field>
          <Field label={t('keys.ips')}>
            <Input value={form.allowed_ips} onChange={set('allowed_ips')} />
          </Field>
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => { setCreating(false); setEditing(null); setForm(emptyForm); }}>
              {t('common.cancel')}
            </Button>
            <Button type="submit">{editing ? t('common.save') : t('common.create')}</Button>
          </div>
        </form>
      </Dialog>

      <Dialog wide open={secret !== null} onOpenChange={(o) => !o && setSecret(null)} title={t('keys.created')}>
        <p className="mb-3 text-sm">{t('keys.secretOnce')}</p>
        <div className="flex items-center gap-2 rounded-md border border-border bg-muted p-2">
          <code className="min-w-0 flex-1 break-all text-sm" data-testid="new-key">
            {secret}
          </code>
          <CopyButton text={secret ?? ''} />
        </div>
        <ApiSnippets models={models} secret={secret} className="mt-3 border-0 p-0 shadow-none" />
        <div className="mt-4 flex justify-end">
          <Button onClick={() => setSecret(null)}>{t('keys.done')}</Button>
        </div>
      </Dialog>

      <Dialog open={revoking !== null} onOpenChange={(o) => !o && setRevoking(null)} title={t('keys.revoke')}>
        <p className="mb-4 text-sm">{t('keys.revokeConfirm', { name: revoking?.name ?? '' })}</p>
        <div className="flex justify-end gap-2">
          <Button variant="secondary" onClick={() => setRevoking(null)}>
            {t('common.cancel')}
          </Button>
          <Button
            variant="danger"
            onClick={async () => {
              if (revoking) await api(`keys/${revoking.id}`, { method: 'DELETE' }).catch(setError);
              setRevoking(null);
              refresh();
            }}
          >
            {t('keys.revoke')}
          </Button>
        </div>
      </Dialog>
    </div>
  );
}
