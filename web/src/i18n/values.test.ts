// Enumerated values the server sends are named in both languages (a Chinese page showed
// "stopped" as it came).
import { describe, expect, it } from 'vitest';
import { valueNames } from './values';

describe('value names', () => {
  it('name every usage status the relay and chat record, in both languages', () => {
    for (const status of ['ok', 'error', 'stopped', 'client_closed', 'partial', 'estimated', 'failed']) {
      expect(valueNames.en[status], status).toBeTruthy();
      expect(valueNames['zh-CN'][status], status).toBeTruthy();
      expect(valueNames['zh-CN'][status]).not.toBe(status);
    }
  });

  it('have the same values in English and Chinese', () => {
    expect(Object.keys(valueNames['zh-CN']).sort()).toEqual(Object.keys(valueNames.en).sort());
  });
});
