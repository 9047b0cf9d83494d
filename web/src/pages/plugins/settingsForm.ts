// A plugin's settings form, drawn from the JSON Schema its publisher gave: the top-level
// properties of an object schema that a form can hold (text, numbers, yes/no, a choice of
// values). The server checks the whole object against the schema again when it is saved.
// Keys and passwords are not settings: they are the plugin's required secrets, sealed and
// never shown again, so nothing here is drawn as a password field.

/** One field of the form. */
export type SettingField = {
  name: string;
  kind: 'string' | 'number' | 'integer' | 'boolean' | 'enum';
  title: string;
  description?: string;
  required: boolean;
  choices?: string[];
  minimum?: number;
  maximum?: number;
  fallback?: unknown;
};

type Schema = {
  type?: unknown;
  properties?: Record<string, unknown>;
  required?: unknown;
};

type Property = {
  type?: unknown;
  title?: unknown;
  description?: unknown;
  enum?: unknown;
  minimum?: unknown;
  maximum?: unknown;
  default?: unknown;
};

/** The fields a form can show, in the schema's order; properties of other shapes (objects,
 * arrays) are left out and keep their stored values. */
export function schemaFields(schema: unknown): SettingField[] {
  if (!schema || typeof schema !== 'object') return [];
  const s = schema as Schema;
  if (!s.properties || typeof s.properties !== 'object') return [];
  const required = Array.isArray(s.required) ? s.required.filter((r): r is string => typeof r === 'string') : [];
  const fields: SettingField[] = [];
  for (const [name, raw] of Object.entries(s.properties)) {
    if (!raw || typeof raw !== 'object') continue;
    const p = raw as Property;
    const base = {
      name,
      title: typeof p.title === 'string' && p.title ? p.title : name,
      description: typeof p.description === 'string' ? p.description : undefined,
      required: required.includes(name),
      fallback: p.default,
      minimum: typeof p.minimum === 'number' ? p.minimum : undefined,
      maximum: typeof p.maximum === 'number' ? p.maximum : undefined,
    };
    if (Array.isArray(p.enum) && p.enum.every((v) => typeof v === 'string')) {
      fields.push({ ...base, kind: 'enum', choices: p.enum as string[] });
    } else if (p.type === 'string') {
      fields.push({ ...base, kind: 'string' });
    } else if (p.type === 'number' || p.type === 'integer' || p.type === 'boolean') {
      fields.push({ ...base, kind: p.type });
    }
  }
  return fields;
}

/** The form's starting text for each field: the stored value, else the schema's default. */
export function initialValues(fields: SettingField[], stored: unknown): Record<string, string> {
  const saved = stored && typeof stored === 'object' ? (stored as Record<string, unknown>) : {};
  return Object.fromEntries(
    fields.map((f) => {
      const v = f.name in saved ? saved[f.name] : f.fallback;
      return [f.name, v === undefined || v === null ? '' : String(v)];
    }),
  );
}

/** Why a field's value cannot be sent. */
export type FieldProblem = { field: string; reason: 'required' | 'number' | 'integer' | 'minimum' | 'maximum'; limit?: number };

/** The settings object to send: the stored object with each field's value in its type (an
 * empty optional field is left out), or the first field that is wrong. */
export function settingsValue(fields: SettingField[], values: Record<string, string>, stored: unknown): { value: Record<string, unknown> } | { problem: FieldProblem } {
  const out: Record<string, unknown> = stored && typeof stored === 'object' ? { ...(stored as Record<string, unknown>) } : {};
  for (const f of fields) {
    const text = (values[f.name] ?? '').trim();
    if (f.kind === 'boolean') {
      out[f.name] = text === 'true';
      continue;
    }
    if (text === '') {
      if (f.required) return { problem: { field: f.name, reason: 'required' } };
      delete out[f.name];
      continue;
    }
    if (f.kind === 'number' || f.kind === 'integer') {
      const n = Number(text);
      if (!Number.isFinite(n)) return { problem: { field: f.name, reason: 'number' } };
      if (f.kind === 'integer' && !Number.isInteger(n)) return { problem: { field: f.name, reason: 'integer' } };
      if (f.minimum !== undefined && n < f.minimum) return { problem: { field: f.name, reason: 'minimum', limit: f.minimum } };
      if (f.maximum !== undefined && n > f.maximum) return { problem: { field: f.name, reason: 'maximum', limit: f.maximum } };
      out[f.name] = n;
    } else {
      out[f.name] = text;
    }
  }
  return { value: out };
}
