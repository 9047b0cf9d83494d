// The market's pure parts: searching and filtering plugins, checking a registration before it
// is sent, the admin's settings body, and a conversation's toggles over the user's choices.
import { describe, expect, it } from 'vitest';
import type { Plugin } from '../../lib/types';
import { filterPlugins, pluginInitial } from './Plugins';
import { registration, type RegisterForm } from './RegisterPlugin';
import { codeBody, settingsBody } from '../admin/AdminPlugins';
import { isOn } from '../chat/ToolToggles';

const plugin = (over: Partial<Plugin>): Plugin => ({
  id: 'p1',
  name: 'Weather',
  description: 'Forecasts',
  icon: '',
  category: 'tools',
  kind: 'openapi',
  scope: 'public',
  available: true,
  tools: [{ name: 'get_weather', description: 'Today' }],
  settings_schema: {},
  required_secrets: [],
  enabled: false,
  settings: {},
  secrets_set: [],
  calls: 0,
  your_calls: 0,
  price_per_call: 0,
  tool_prices: {},
  requires_approval: false,
  ...over,
});

const form: RegisterForm = { kind: 'openapi', name: 'Pets', description: '', category: '', document: '{"openapi":"3.0.0"}', serverUrl: '', authKind: 'bearer', authName: '', secret: 's3cret' };

describe('plugin market', () => {
  it('filters by text (names, descriptions, tools) and category', () => {
    const all = [plugin({}), plugin({ id: 'p2', name: 'Web search', description: 'Search', category: 'search', tools: [{ name: 'web_search', description: '' }] })];
    expect(filterPlugins(all, 'WEATHER', '').map((p) => p.id)).toEqual(['p1']);
    expect(filterPlugins(all, 'web_search', '').map((p) => p.id)).toEqual(['p2']);
    expect(filterPlugins(all, '', 'search').map((p) => p.id)).toEqual(['p2']);
    expect(filterPlugins(all, '', '').length).toBe(2);
    expect(pluginInitial({ name: 'weather' })).toBe('W');
    expect(pluginInitial({ name: '天气预报' })).toBe('天');
    expect(pluginInitial({ name: ' ' })).toBe('?');
  });

  it('checks a registration before sending it', () => {
    expect(registration(form)).toEqual({ body: { name: 'Pets', description: '', kind: 'openapi', category: undefined, auth: { kind: 'bearer', secret: 's3cret' }, openapi: { openapi: '3.0.0' } } });
    expect(registration({ ...form, document: '{"openapi": 3' })).toEqual({ error: 'json' });
    // YAML goes as its text: the server reads it.
    const yaml = registration({ ...form, document: 'openapi: 3.0.0\npaths: {}\n' });
    expect('body' in yaml && yaml.body.openapi).toBe('openapi: 3.0.0\npaths: {}\n');
    expect(registration({ ...form, name: ' ' })).toEqual({ error: 'name' });
    expect(registration({ ...form, kind: 'mcp', serverUrl: 'ftp://x' })).toEqual({ error: 'url' });
    const mcp = registration({ ...form, kind: 'mcp', serverUrl: 'https://mcp.example/mcp' });
    expect('body' in mcp && mcp.body.server_url).toBe('https://mcp.example/mcp');
  });

  it('sends the admin settings with an empty key kept and search off as null', () => {
    const body = settingsBody({ provider: 'tavily', baseUrl: '', apiKey: '', engineId: '', count: '3', imageModel: ' ', samplingModel: '', allowPrivate: true, allowPrivateUsers: false, timeout: '' });
    expect(body).toEqual({
      search: { provider: 'tavily', base_url: null, api_key: null, engine_id: null, count: 3 },
      image_model: null,
      sampling_model: null,
      allow_private_addresses: true,
      allow_private_addresses_for_user_plugins: false,
      tool_timeout_secs: null,
    });
    // Users' plugins are never let in without the switch above them.
    expect(settingsBody({ provider: '', baseUrl: '', apiKey: '', engineId: '', count: '5', imageModel: 'gpt-image-1', samplingModel: ' qwen-plus ', allowPrivate: false, allowPrivateUsers: true, timeout: '30' })).toMatchObject({
      search: null,
      image_model: 'gpt-image-1',
      sampling_model: 'qwen-plus',
      allow_private_addresses_for_user_plugins: false,
      tool_timeout_secs: 30,
    });
  });

  it('sends the code interpreter with its limits as numbers, blanks left to their defaults', () => {
    const code = { enabled: true, cpu_secs: '5', wall_secs: ' ', memory_mb: '256', max_processes: '16', output_bytes: '', disk_mb: '64', max_files: '0' };
    expect(codeBody(code)).toEqual({ enabled: true, limits: { cpu_secs: 5, memory_mb: 256, max_processes: 16, disk_mb: 64, max_files: 0 } });
    const body = settingsBody({ provider: '', baseUrl: '', apiKey: '', engineId: '', count: '5', imageModel: '', samplingModel: '', allowPrivate: false, allowPrivateUsers: false, timeout: '', code });
    expect(body.code?.enabled).toBe(true);
  });

  it('a conversation toggle wins over the user choice', () => {
    expect(isOn(plugin({ enabled: true }), [])).toBe(true);
    expect(isOn(plugin({ enabled: true }), [{ plugin_id: 'p1', enabled: false }])).toBe(false);
    expect(isOn(plugin({ enabled: false }), [{ plugin_id: 'p1', enabled: true }])).toBe(true);
    expect(isOn(plugin({ enabled: false }), [{ plugin_id: 'other', enabled: true }])).toBe(false);
  });
});
