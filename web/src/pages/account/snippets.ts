/** The client APIs Skein's relay speaks, each under its vendor's own routes. */
export type Vendor = 'openai' | 'anthropic' | 'gemini';
/** The ways a snippet calls it. */
export type SnippetLang = 'curl' | 'python' | 'node';

export const vendors: Vendor[] = ['openai', 'anthropic', 'gemini'];
export const snippetLangs: SnippetLang[] = ['curl', 'python', 'node'];

/** The base URL each vendor's SDK is given: OpenAI's SDKs add paths after `/v1`; Anthropic's
 * and Google's add their own `/v1/...` and `/v1beta/...` (see crates/skein/tests/sdk). */
export function sdkBase(vendor: Vendor, origin: string): string {
  return vendor === 'openai' ? `${origin}/v1` : origin;
}

const py = (s: string) => JSON.stringify(s);

/**
 * A copyable example that sends one chat message to `model` through Skein with `key`. The
 * paths are the relay's routes: `/v1/chat/completions` (OpenAI, Bearer key), `/v1/messages`
 * (Anthropic, `x-api-key`), `/v1beta/models/{model}:generateContent` (Gemini, `x-goog-api-key`).
 */
export function snippet(vendor: Vendor, lang: SnippetLang, origin: string, key: string, model: string): string {
  const base = sdkBase(vendor, origin);
  if (vendor === 'openai') {
    if (lang === 'curl') {
      return `curl ${origin}/v1/chat/completions \\
  -H "Authorization: Bearer ${key}" \\
  -H "Content-Type: application/json" \\
  -d '{"model": ${py(model)}, "messages": [{"role": "user", "content": "Hello"}]}'`;
    }
    if (lang === 'python') {
      return `from openai import OpenAI

client = OpenAI(base_url=${py(base)}, api_key=${py(key)})
reply = client.chat.completions.create(
    model=${py(model)},
    messages=[{"role": "user", "content": "Hello"}],
)
print(reply.choices[0].message.content)`;
    }
    return `import OpenAI from 'openai';

const client = new OpenAI({ baseURL: ${py(base)}, apiKey: ${py(key)} });
const reply = await client.chat.completions.create({
  model: ${py(model)},
  messages: [{ role: 'user', content: 'Hello' }],
});
console.log(reply.choices[0].message.content);`;
  }
  if (vendor === 'anthropic') {
    if (lang === 'curl') {
      return `curl ${origin}/v1/messages \\
  -H "x-api-key: ${key}" \\
  -H "anthropic-version: 2023-06-01" \\
  -H "Content-Type: application/json" \\
  -d '{"model": ${py(model)}, "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello"}]}'`;
    }
    if (lang === 'python') {
      return `import anthropic

client = anthropic.Anthropic(base_url=${py(base)}, api_key=${py(key)})
reply = client.messages.create(
    model=${py(model)},
    max_tokens=1024,
    messages=[{"role": "user", "content": "Hello"}],
)
print(reply.content[0].text)`;
    }
    return `import Anthropic from '@anthropic-ai/sdk';

const client = new Anthropic({ baseURL: ${py(base)}, apiKey: ${py(key)} });
const reply = await client.messages.create({
  model: ${py(model)},
  max_tokens: 1024,
  messages: [{ role: 'user', content: 'Hello' }],
});
console.log(reply.content[0].text);`;
  }
  if (lang === 'curl') {
    return `curl "${origin}/v1beta/models/${model}:generateContent" \\
  -H "x-goog-api-key: ${key}" \\
  -H "Content-Type: application/json" \\
  -d '{"contents": [{"parts": [{"text": "Hello"}]}]}'`;
  }
  if (lang === 'python') {
    return `from google import genai
from google.genai import types

client = genai.Client(api_key=${py(key)}, http_options=types.HttpOptions(base_url=${py(base)}))
reply = client.models.generate_content(model=${py(model)}, contents="Hello")
print(reply.text)`;
  }
  return `import { GoogleGenAI } from '@google/genai';

const client = new GoogleGenAI({ apiKey: ${py(key)}, httpOptions: { baseUrl: ${py(base)} } });
const reply = await client.models.generateContent({ model: ${py(model)}, contents: 'Hello' });
console.log(reply.text);`;
}
