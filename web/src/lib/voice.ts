// Voice input for the chat composer: record with MediaRecorder, transcribe through
// `POST /api/v1/chat/transcriptions` (docs/CHAT-API.md), insert the text at the cursor.
import { api } from './api';
import type { Lang } from './settings';

/** Recording formats in order of preference; the server takes webm, ogg, wav, mp3 (and m4a). */
const CANDIDATES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/ogg', 'audio/mp4'];

/** Whether this browser can record (else the voice button is hidden). */
export function canRecord(): boolean {
  return typeof navigator !== 'undefined' && typeof navigator.mediaDevices?.getUserMedia === 'function' && typeof MediaRecorder !== 'undefined';
}

/** The first recording format the browser supports ('' lets the browser pick). */
export function pickMimeType(isSupported: (type: string) => boolean = (t) => MediaRecorder.isTypeSupported?.(t) ?? false): string {
  return CANDIDATES.find((t) => isSupported(t)) ?? '';
}

/** A file name whose extension matches the recording's type (the server checks both). */
export function recordingName(mime: string): string {
  const base = mime.split(';')[0].trim().toLowerCase();
  if (base.endsWith('/ogg')) return 'recording.ogg';
  if (base === 'audio/mp4') return 'recording.m4a';
  if (base === 'audio/wav' || base === 'audio/x-wav') return 'recording.wav';
  if (base === 'audio/mpeg') return 'recording.mp3';
  return 'recording.webm';
}

/** The transcription language for the UI language (ISO-639-1). */
export function languageFor(lang: Lang): 'zh' | 'en' {
  return lang === 'zh-CN' ? 'zh' : 'en';
}

/** The multipart form of a transcription request. */
export function transcriptionForm(audio: Blob, lang: Lang): FormData {
  const form = new FormData();
  const type = audio.type || 'audio/webm';
  form.append('file', new File([audio], recordingName(type), { type: type.split(';')[0] }));
  form.append('language', languageFor(lang));
  return form;
}

/** Sends a recording to be transcribed and answers its text. */
export async function transcribe(audio: Blob, lang: Lang): Promise<string> {
  const res = await api<{ text?: string }>('chat/transcriptions', { method: 'POST', body: transcriptionForm(audio, lang) });
  return String(res?.text ?? '').trim();
}

/**
 * `value` with `insert` put in place of the selection `start`..`end`, with a space between it
 * and words on either side; answers the new text and where the cursor goes (after the insert).
 */
export function insertAtCursor(value: string, insert: string, start: number, end: number = start): { value: string; caret: number } {
  const from = Math.max(0, Math.min(start, value.length));
  const to = Math.max(from, Math.min(end, value.length));
  const before = value.slice(0, from);
  const after = value.slice(to);
  const lead = before && !/\s$/.test(before) ? ' ' : '';
  const trail = after && !/^\s/.test(after) ? ' ' : '';
  const text = `${lead}${insert}${trail}`;
  return { value: before + text + after, caret: before.length + lead.length + insert.length };
}
