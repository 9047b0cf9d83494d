// A plugin's settings form from its JSON Schema: which properties become fields, what the
// form starts with, and the object sent (typed values, required and bounds checked).
import { describe, expect, it } from 'vitest';
import { initialValues, schemaFields, settingsValue } from './settingsForm';

const schema = {
  type: 'object',
  required: ['city'],
  properties: {
    city: { type: 'string', title: 'City', description: 'Where the forecast is for' },
    days: { type: 'integer', minimum: 1, maximum: 14, default: 3 },
    metric: { type: 'boolean', default: true },
    detail: { enum: ['brief', 'full'] },
    ratio: { type: 'number' },
    nested: { type: 'object', properties: { a: { type: 'string' } } },
  },
};

describe('plugin settings form', () => {
  it('shows the fields a form can hold, in order, and leaves other shapes out', () => {
    const fields = schemaFields(schema);
    expect(fields.map((f) => [f.name, f.kind, f.required])).toEqual([
      ['city', 'string', true],
      ['days', 'integer', false],
      ['metric', 'boolean', false],
      ['detail', 'enum', false],
      ['ratio', 'number', false],
    ]);
    expect(fields[0].title).toBe('City');
    expect(fields[1].title).toBe('days');
    expect(schemaFields({})).toEqual([]);
    expect(schemaFields(null)).toEqual([]);
    expect(schemaFields({ properties: 'nope' })).toEqual([]);
  });

  it('starts from the stored settings, else the defaults', () => {
    const fields = schemaFields(schema);
    expect(initialValues(fields, {})).toEqual({ city: '', days: '3', metric: 'true', detail: '', ratio: '' });
    expect(initialValues(fields, { city: 'Hangzhou', days: 7, metric: false })).toMatchObject({ city: 'Hangzhou', days: '7', metric: 'false' });
  });

  it('sends typed values, keeps what the form cannot show, and names the first wrong field', () => {
    const fields = schemaFields(schema);
    const stored = { nested: { a: 'kept' }, ratio: 0.5 };
    const ok = settingsValue(fields, { city: ' Hangzhou ', days: '7', metric: 'false', detail: 'full', ratio: '' }, stored);
    expect(ok).toEqual({ value: { city: 'Hangzhou', days: 7, metric: false, detail: 'full', nested: { a: 'kept' } } });
    expect(settingsValue(fields, { city: '', days: '3' }, {})).toEqual({ problem: { field: 'city', reason: 'required' } });
    expect(settingsValue(fields, { city: 'x', days: '2.5' }, {})).toEqual({ problem: { field: 'days', reason: 'integer' } });
    expect(settingsValue(fields, { city: 'x', days: '30' }, {})).toEqual({ problem: { field: 'days', reason: 'maximum', limit: 14 } });
    expect(settingsValue(fields, { city: 'x', days: '0' }, {})).toEqual({ problem: { field: 'days', reason: 'minimum', limit: 1 } });
    expect(settingsValue(fields, { city: 'x', ratio: 'abc' }, {})).toEqual({ problem: { field: 'ratio', reason: 'number' } });
  });
});
