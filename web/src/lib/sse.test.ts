import { describe, expect, it } from 'vitest';
import { SseParser, readSse, type SseEvent } from './sse';

const stream = [
  'event: start\ndata: {"user_message_id":"u1","assistant_message_id":"a1"}\n\n',
  'event: delta\ndata: {"content":"你好，世界 👋"}\n\n',
  ': keep-alive comment\n\n',
  'event: delta\r\ndata: {"content":"line\\nbreak"}\r\n\r\n',
  'data: first\ndata: second\n\n',
  'event: done\ndata: {"message":{"id":"a1"}}\n\n',
].join('');

const expected: SseEvent[] = [
  { event: 'start', data: '{"user_message_id":"u1","assistant_message_id":"a1"}' },
  { event: 'delta', data: '{"content":"你好，世界 👋"}' },
  { event: 'delta', data: '{"content":"line\\nbreak"}' },
  { event: 'message', data: 'first\nsecond' },
  { event: 'done', data: '{"message":{"id":"a1"}}' },
];

function parseInPieces(bytes: Uint8Array, cuts: number[]): SseEvent[] {
  const parser = new SseParser();
  const out: SseEvent[] = [];
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(...parser.feed(bytes.slice(at, cut)));
    at = cut;
  }
  out.push(...parser.end());
  return out;
}

describe('SseParser', () => {
  const bytes = new TextEncoder().encode(stream);

  it('parses a whole stream', () => {
    expect(parseInPieces(bytes, [])).toEqual(expected);
  });

  it('gives the same events when cut at every single byte boundary', () => {
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(parseInPieces(bytes, [cut])).toEqual(expected);
    }
  });

  it('gives the same events when fed one byte at a time (splitting UTF-8 and CRLF)', () => {
    const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    expect(parseInPieces(bytes, cuts)).toEqual(expected);
  });

  it('gives the same events for random cuts', () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 200; round++) {
      const cuts = new Set<number>();
      const n = 1 + Math.floor(rand() * 12);
      for (let i = 0; i < n; i++) cuts.add(1 + Math.floor(rand() * (bytes.length - 1)));
      expect(parseInPieces(bytes, [...cuts].sort((a, b) => a - b))).toEqual(expected);
    }
  });

  it('delivers a last event that lacks its blank line when the stream ends', () => {
    const parser = new SseParser();
    expect(parser.feed('event: done\ndata: {"x":1}')).toEqual([]);
    expect(parser.end()).toEqual([{ event: 'done', data: '{"x":1}' }]);
  });

  it('ignores events without data and unknown fields', () => {
    const parser = new SseParser();
    expect(parser.feed('event: ping\n\nid: 7\nretry: 100\nevent: x\ndata:y\n\n')).toEqual([{ event: 'x', data: 'y' }]);
  });

  it('reads a fetch body stream', async () => {
    const chunks = [bytes.slice(0, 7), bytes.slice(7, 60), bytes.slice(60)];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        chunks.forEach((c) => controller.enqueue(c));
        controller.close();
      },
    });
    const seen: SseEvent[] = [];
    await readSse(body, (e) => seen.push(e));
    expect(seen).toEqual(expected);
  });
});
