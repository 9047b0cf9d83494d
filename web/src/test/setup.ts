import { afterEach, beforeEach, vi } from 'vitest';
import { cleanup } from '@testing-library/react';

// jsdom has a WebSocket that would try a real server: chat streams take SSE in tests unless a
// test hands in its own fake socket (src/lib/chat.test.ts).
beforeEach(() => {
  vi.stubGlobal('WebSocket', undefined);
});

afterEach(() => {
  cleanup();
  localStorage.clear();
});
