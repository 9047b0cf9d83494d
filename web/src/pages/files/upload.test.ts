import { describe, expect, it } from 'vitest';
import { formatBytes, usedPercent } from './upload';

describe('file sizes and quota', () => {
  it('reads bytes as people do', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(5 * 1024 * 1024)).toBe('5.0 MB');
    expect(formatBytes(300 * 1024 * 1024)).toBe('300 MB');
  });
  it('caps the bar at 100% and survives a zero quota', () => {
    expect(usedPercent(50, 200)).toBe(25);
    expect(usedPercent(300, 200)).toBe(100);
    expect(usedPercent(1, 0)).toBe(100);
  });
});
