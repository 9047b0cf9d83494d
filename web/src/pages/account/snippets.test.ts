import { describe, expect, it } from 'vitest';
import { sdkBase, snippet, snippetLangs, vendors } from './snippets';

const origin = 'https://ai.example.com';

describe('API key snippets', () => {
  it('each vendor calls its own route on the relay, with its own key header', () => {
    const openai = snippet('openai', 'curl', origin, 'sk-abc', 'gpt-4o');
    expect(openai).toContain('https://ai.example.com/v1/chat/completions');
    expect(openai).toContain('Authorization: Bearer sk-abc');
    const anthropic = snippet('anthropic', 'curl', origin, 'sk-abc', 'claude-sonnet-4');
    expect(anthropic).toContain('https://ai.example.com/v1/messages');
    expect(anthropic).toContain('x-api-key: sk-abc');
    expect(anthropic).toContain('anthropic-version: 2023-06-01');
    const gemini = snippet('gemini', 'curl', origin, 'sk-abc', 'gemini-2.0-flash');
    expect(gemini).toContain('https://ai.example.com/v1beta/models/gemini-2.0-flash:generateContent');
    expect(gemini).toContain('x-goog-api-key: sk-abc');
  });

  it('SDKs get the base URL the tests in crates/skein/tests/sdk use', () => {
    expect(sdkBase('openai', origin)).toBe('https://ai.example.com/v1');
    expect(sdkBase('anthropic', origin)).toBe(origin);
    expect(sdkBase('gemini', origin)).toBe(origin);
    expect(snippet('openai', 'python', origin, 'k', 'm')).toContain('OpenAI(base_url="https://ai.example.com/v1", api_key="k")');
    expect(snippet('anthropic', 'node', origin, 'k', 'm')).toContain("new Anthropic({ baseURL: \"https://ai.example.com\", apiKey: \"k\" })");
    expect(snippet('gemini', 'python', origin, 'k', 'm')).toContain('types.HttpOptions(base_url="https://ai.example.com")');
    expect(snippet('gemini', 'node', origin, 'k', 'm')).toContain('httpOptions: { baseUrl: "https://ai.example.com" }');
  });

  it('every combination names the model and the key', () => {
    for (const v of vendors) {
      for (const l of snippetLangs) {
        const text = snippet(v, l, origin, 'sk-zzz', 'model-x');
        expect(text, `${v}/${l}`).toContain('sk-zzz');
        expect(text, `${v}/${l}`).toContain('model-x');
      }
    }
  });
});
