import { describe, expect, it } from 'vitest';
import { documentError, isWorking, progressPercent, rank, statusTone } from './status';

describe('document status', () => {
  it('counts embedding progress and finishes at 100', () => {
    expect(progressPercent({ status: 'queued', progress_done: 0, progress_total: 0 })).toBe(0);
    expect(progressPercent({ status: 'extracting', progress_done: 0, progress_total: 0 })).toBe(5);
    expect(progressPercent({ status: 'embedding', progress_done: 5, progress_total: 10 })).toBe(55);
    expect(progressPercent({ status: 'embedding', progress_done: 10, progress_total: 10 })).toBe(99);
    expect(progressPercent({ status: 'ready', progress_done: 3, progress_total: 3 })).toBe(100);
  });

  it('keeps polling only while a document moves', () => {
    expect(isWorking({ status: 'embedding' })).toBe(true);
    expect(isWorking({ status: 'ready' })).toBe(false);
    expect(isWorking({ status: 'failed' })).toBe(false);
    expect(statusTone('failed')).toBe('danger');
  });

  it('shows errors in the UI language and missing ranks as a dash', () => {
    const doc = { error: { code: 'extract_failed', en: 'the pdf file contains no text', zh: '该 pdf 文件中没有文字' } };
    expect(documentError(doc, 'zh-CN')).toBe('该 pdf 文件中没有文字');
    expect(documentError(doc, 'en')).toBe('the pdf file contains no text');
    expect(documentError({ error: null }, 'en')).toBeNull();
    expect(rank(null)).toBe('–');
    expect(rank(2)).toBe('#2');
  });
});
