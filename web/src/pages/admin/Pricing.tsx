import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { money, UNITS_PER_USD } from '../../lib/format';
import type { DefaultPrice, DefaultsLoaded, ModelPrice, UnpricedModel } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, Card, DataTable, ErrorText, Field, Input } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { toast } from '../../components/ui/toast';
import { qk } from '../../lib/queryKeys';
import { ModelRoutes } from './ModelRoutes';
import { CachePanel } from './CachePanel';

const fields = ['input_per_mtok', 'output_per_mtok', 'cache_read_per_mtok', 'cache_write_per_mtok', 'per_call'] as const;
/** Audio rates are optional: left empty, a model's audio tokens are billed as text. */
const audioFields = ['audio_input_per_mtok', 'audio_output_per_mtok'] as const;
const blank = {
  model: '',
  input_per_mtok: '0',
  output_per_mtok: '0',
  cache_read_per_mtok: '0',
  cache_write_per_mtok: '0',
  per_call: '0',
  audio_input_per_mtok: '',
  audio_output_per_mtok: '',
};

/** The form's values of a stored or default price. */
function formOf(model: string, p: ModelPrice | DefaultPrice): typeof blank {
  return {
    model,
    ...Object.fromEntries(fields.map((f) => [f, String(p[f])])),
    ...Object.fromEntries(audioFields.map((f) => [f, p[f] == null ? '' : String(p[f])])),
  } as typeof blank;
}

/** The form for `model`: its built-in default rates when there are some, else zeros. */
function formFor(model: string, defaults: DefaultPrice[] | undefined) {
  const d = defaults?.find((p) => p.model === model);
  return d ? formOf(model, d) : { ...blank, model };
}

/**
 * The pricing table: per-model rates in quota units, the built-in defaults to load in one
 * click, and the models channels serve without a price (a model without one is refused), to
 * pick from rather than type.
 */
export function Pricing() {
  const t = useT();
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState<boolean>(false);
  const [form, setForm] = useState(blank);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const prices = useQuery({ queryKey: qk.pricing, queryFn: () => api<ModelPrice[]>('pricing') });
  const unpriced = useQuery({ queryKey: qk.unpriced, queryFn: () => api<UnpricedModel[]>('admin/pricing/unpriced') });
  const defaults = useQuery({ queryKey: qk.defaultPrices, queryFn: () => api<DefaultPrice[]>('admin/pricing/defaults') });
  // Prefix of the unpriced and defaults keys too: a price change refreshes the pick list, and
  // the models chat offers (a model is offered once priced).
  const refresh = () => {
    queryClient.invalidateQueries({ queryKey: qk.pricing });
    queryClient.invalidateQueries({ queryKey: qk.chatModels });
  };
  const open = (model: string) => {
    setForm(formFor(model, defaults.data));
    setError(null);
    setEditing(true);
  };
  const loadDefaults = async () => {
    setLoading(true);
    setError(null);
    try {
      const r = await api<DefaultsLoaded>('admin/pricing/defaults', { method: 'POST' });
      toast(t('admin.defaultsLoaded', { added: r.added.length, kept: r.kept.length }));
      refresh();
    } catch (err) {
      setError(err);
    } finally {
      setLoading(false);
    }
  };
  const labels = [t('admin.input'), t('admin.output'), t('admin.cacheRead'), t('admin.cacheWrite'), t('admin.perCall')];
  const audioLabels = [t('admin.audioInput'), t('admin.audioOutput')];
  return (
    <div className="space-y-3">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <p className="text-sm text-muted-fg">{t('admin.priceUnits', { perUsd: UNITS_PER_USD.toLocaleString() })}</p>
        <div className="flex flex-wrap gap-2">
          <Button variant="secondary" disabled={loading} onClick={loadDefaults} data-testid="load-defaults">
            {t('admin.loadDefaults')}
          </Button>
          <Button onClick={() => open('')}>+ {t('admin.setPrice')}</Button>
        </div>
      </div>
      <ErrorText error={prices.error ?? unpriced.error ?? (editing ? null : error)} />
      {unpriced.data && unpriced.data.length > 0 && (
        <Card className="space-y-2 border-danger/40" data-testid="unpriced">
          <h2 className="text-sm font-semibold">{t('admin.unpricedTitle', { n: unpriced.data.length })}</h2>
          <p className="text-sm text-muted-fg">{t('admin.unpricedHint')}</p>
          <ul className="flex flex-wrap gap-2">
            {unpriced.data.map((u) => (
              <li key={u.model}>
                <Button
                  variant="secondary"
                  size="sm"
                  title={t('admin.servedBy', { channels: u.channels.join(', ') })}
                  onClick={() => open(u.model)}
                >
                  {u.model}
                  {u.has_default && <span className="ml-1.5 text-xs text-muted-fg">{t('admin.hasDefault')}</span>}
                </Button>
              </li>
            ))}
          </ul>
        </Card>
      )}
      <DataTable
        rows={prices.data ?? []}
        rowKey={(p) => p.model}
        columns={[
          { header: t('common.model'), cell: (p) => <span className="font-medium">{p.model}</span> },
          ...fields.map((f, i) => ({ header: labels[i], cell: (p: ModelPrice) => <span title={String(p[f])}>{money(p[f])}</span>, className: 'text-right' })),
          {
            header: t('admin.audioRates'),
            className: 'text-right',
            cell: (p: ModelPrice) =>
              p.audio_input_per_mtok == null && p.audio_output_per_mtok == null ? (
                <span className="text-muted-fg" title={t('admin.audioAsText')}>—</span>
              ) : (
                <span data-testid="audio-rates">
                  {audioFields.map((f) => (p[f] == null ? '—' : money(p[f] as number))).join(' / ')}
                </span>
              ),
          },
          {
            header: t('common.actions'),
            cell: (p: ModelPrice) => (
              <span className="flex justify-end gap-1">
                <Button
                  variant="secondary"
                  size="sm"
                  onClick={() => {
                    setForm(formOf(p.model, p));
                    setError(null);
                    setEditing(true);
                  }}
                >
                  {t('common.edit')}
                </Button>
                <Button
                  variant="danger"
                  size="sm"
                  onClick={async () => {
                    await api(`admin/pricing/${encodeURIComponent(p.model)}`, { method: 'DELETE' }).catch(setError);
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
      <ModelRoutes />
      <CachePanel />
      <Dialog open={editing} onOpenChange={setEditing} title={t('admin.setPrice')}>
        <form
          className="space-y-3"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(null);
            try {
              await api(`admin/pricing/${encodeURIComponent(form.model.trim())}`, {
                method: 'PUT',
                body: {
                  ...Object.fromEntries(fields.map((f) => [f, Number(form[f]) || 0])),
                  ...Object.fromEntries(audioFields.map((f) => [f, form[f].trim() === '' ? null : Number(form[f])])),
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
            <Input
              name="price-model"
              required
              list="unpriced-models"
              value={form.model}
              onChange={(e) => {
                const model = e.target.value;
                // Picking a served model with a default fills its rates; typing keeps them.
                const known = unpriced.data?.some((u) => u.model === model);
                setForm(known ? formFor(model, defaults.data) : { ...form, model });
              }}
            />
          </Field>
          <datalist id="unpriced-models">
            {unpriced.data?.map((u) => <option key={u.model} value={u.model} />)}
          </datalist>
          <div className="grid grid-cols-2 gap-3">
            {fields.map((f, i) => (
              <Field key={f} label={labels[i]} hint={money(Number(form[f]) || 0)}>
                <Input name={f} type="number" min="0" value={form[f]} onChange={(e) => setForm({ ...form, [f]: e.target.value })} />
              </Field>
            ))}
            {audioFields.map((f, i) => (
              <Field key={f} label={audioLabels[i]} hint={form[f].trim() === '' ? t('admin.audioAsText') : money(Number(form[f]) || 0)}>
                <Input name={f} type="number" min="0" value={form[f]} onChange={(e) => setForm({ ...form, [f]: e.target.value })} />
              </Field>
            ))}
          </div>
          <ErrorText error={error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setEditing(false)}>{t('common.cancel')}</Button>
            <Button type="submit">{t('common.save')}</Button>
          </div>
        </form>
      </Dialog>
    </div>
  );
}
