import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import type { ModelRoute } from '../../lib/types';
import { useT } from '../../i18n';
import type { MessageKey } from '../../i18n';
import { Button, Card, DataTable, ErrorText, Field, Input, Select } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { qk } from '../../lib/queryKeys';
import { STRATEGIES } from './RoutingPanel';

const blank = { model: '', alias_of: '', fallbacks: '', groups: '', strategy: '' };

/** Model names typed comma- or space-separated, in order, without blanks. */
function names(text: string): string[] {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

/** Per-group fallbacks as typed, `vip: a, b; free:` (a group with nothing after its colon
 * gets no fallbacks), as the API's object. */
export function groupLists(text: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const part of text.split(';')) {
    const [group, ...rest] = part.split(':');
    if (group.trim()) out[group.trim()] = names(rest.join(':'));
  }
  return out;
}

/** The API's per-group fallbacks as the form shows them (the inverse of {@link groupLists}). */
export function groupText(groups: Record<string, string[]> | undefined): string {
  return Object.entries(groups ?? {})
    .map(([group, list]) => `${group}: ${list.join(', ')}`.trimEnd())
    .join('; ');
}

/**
 * Model aliases and fallbacks: an alias serves a public name as another model (its channels
 * and price); fallbacks are tried in order, each at its own price, when every channel of the
 * model failed; a model may route its channels by a strategy of its own.
 */
export function ModelRoutes() {
  const t = useT();
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState(blank);
  const [error, setError] = useState<unknown>(null);
  const routes = useQuery({ queryKey: qk.modelRoutes, queryFn: () => api<ModelRoute[]>('admin/model-routes') });
  const refresh = () => {
    queryClient.invalidateQueries({ queryKey: qk.modelRoutes });
    queryClient.invalidateQueries({ queryKey: qk.chatModels });
  };
  const edit = (r?: ModelRoute) => {
    setForm(
      r
        ? {
            model: r.model,
            alias_of: r.alias_of ?? '',
            fallbacks: r.fallbacks.join(', '),
            groups: groupText(r.group_fallbacks),
            strategy: r.strategy ?? '',
          }
        : blank,
    );
    setError(null);
    setEditing(true);
  };
  return (
    <Card className="space-y-3" data-testid="model-routes">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <div>
          <h2 className="text-sm font-semibold">{t('admin.routesTitle')}</h2>
          <p className="text-sm text-muted-fg">{t('admin.routesHint')}</p>
        </div>
        <Button onClick={() => edit()}>+ {t('admin.routeAdd')}</Button>
      </div>
      <ErrorText error={routes.error ?? (editing ? null : error)} />
      <DataTable
        rows={routes.data ?? []}
        rowKey={(r) => r.model}
        empty={t('admin.routesEmpty')}
        columns={[
          { header: t('common.model'), cell: (r) => <span className="font-medium">{r.model}</span> },
          { header: t('admin.routeAlias'), cell: (r) => r.alias_of ?? '—' },
          { header: t('admin.routeFallbacks'), cell: (r) => (r.fallbacks.length ? r.fallbacks.join(' → ') : '—') },
          {
            header: t('admin.routeGroups'),
            cell: (r) =>
              Object.keys(r.group_fallbacks ?? {}).length
                ? Object.entries(r.group_fallbacks ?? {})
                    .map(([group, list]) => `${group}: ${list.length ? list.join(' → ') : '—'}`)
                    .join(' · ')
                : '—',
          },
          {
            header: t('routing.strategy'),
            cell: (r) => (r.strategy ? t(`routing.s_${r.strategy}` as MessageKey) : t('admin.routeStrategyGroup')),
          },
          {
            header: t('common.actions'),
            cell: (r: ModelRoute) => (
              <span className="flex justify-end gap-1">
                <Button variant="secondary" size="sm" onClick={() => edit(r)}>{t('common.edit')}</Button>
                <Button
                  variant="danger"
                  size="sm"
                  onClick={async () => {
                    await api(`admin/model-routes/${encodeURIComponent(r.model)}`, { method: 'DELETE' }).catch(setError);
                    refresh();
                  }}
                >
                  {t('common.delete')}
                </Button>
              </span>
            ),
          },
        ]}
      />
      <Dialog open={editing} onOpenChange={setEditing} title={t('admin.routeAdd')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            try {
              await api(`admin/model-routes/${encodeURIComponent(form.model.trim())}`, {
                method: 'PUT',
                body: {
                  alias_of: form.alias_of.trim() || null,
                  fallbacks: names(form.fallbacks),
                  group_fallbacks: groupLists(form.groups),
                  strategy: form.strategy || null,
                },
              });
              setEditing(false);
              refresh();
            } catch (err) {
              setError(err);
            }
          }}
        >
          <Field label={t('common.model')}>
            <Input name="route-model" required value={form.model} onChange={(e) => setForm({ ...form, model: e.target.value })} />
          </Field>
          <Field label={t('admin.routeAlias')} hint={t('admin.routeAliasHint')}>
            <Input name="route-alias" value={form.alias_of} onChange={(e) => setForm({ ...form, alias_of: e.target.value })} />
          </Field>
          <Field label={t('admin.routeFallbacks')} hint={t('admin.routeFallbacksHint')}>
            <Input name="route-fallbacks" value={form.fallbacks} onChange={(e) => setForm({ ...form, fallbacks: e.target.value })} />
          </Field>
          <Field label={t('admin.routeGroups')} hint={t('admin.routeGroupsHint')}>
            <Input name="route-groups" value={form.groups} onChange={(e) => setForm({ ...form, groups: e.target.value })} />
          </Field>
          <Field label={t('routing.strategy')} hint={t('admin.routeStrategyHint')}>
            <Select name="route-strategy" value={form.strategy} onChange={(e) => setForm({ ...form, strategy: e.target.value })}>
              <option value="">{t('admin.routeStrategyGroup')}</option>
              {STRATEGIES.map((s) => (
                <option key={s} value={s}>{t(`routing.s_${s}` as MessageKey)}</option>
              ))}
            </Select>
          </Field>
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setEditing(false)}>{t('common.cancel')}</Button>
            <Button type="submit">{t('common.save')}</Button>
          </div>
        </form>
      </Dialog>
    </Card>
  );
}
