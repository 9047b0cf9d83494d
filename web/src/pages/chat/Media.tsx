import { useEffect, useRef, useState } from 'react';
import { ApiError } from '../../lib/api';
import { isSafeImageSrc } from '../../lib/images';
import { canRecord, pickMimeType, transcribe } from '../../lib/voice';
import { langStore } from '../../lib/settings';
import { useT } from '../../i18n';
import { Dialog } from '../../components/ui/dialog';
import { cx } from '../../components/ui';
import { CloseIcon, StopIcon } from '../../components/icons';

/** An error shown above the composer, already in the user's language. */
export interface ComposerError {
  message: string;
  requestId?: string | null;
}

/** The images waiting in the composer, each with a remove button. */
export function AttachedImages({ images, onRemove }: { images: string[]; onRemove: (index: number) => void }) {
  const t = useT();
  if (!images.length) return null;
  return (
    <div className="mx-auto mb-2 flex max-w-3xl flex-wrap gap-2" data-testid="attached-images">
      {images.map((src, i) =>
        isSafeImageSrc(src) ? (
          <div key={i} className="relative h-16 w-16 shrink-0 overflow-hidden rounded-md border border-border bg-muted">
            <img src={src} alt={t('chat.imageN', { n: i + 1 })} className="h-full w-full object-cover" />
            <button
              type="button"
              className="absolute right-0.5 top-0.5 flex h-5 w-5 items-center justify-center rounded-full bg-black/60 text-xs leading-none text-white hover:bg-black/80"
              aria-label={t('chat.removeImage', { n: i + 1 })}
              title={t('chat.removeImage', { n: i + 1 })}
              onClick={() => onRemove(i)}
            >
              <CloseIcon size={12} />
            </button>
          </div>
        ) : null,
      )}
    </div>
  );
}

/** A message's images as thumbnails; a click opens one larger. Only data: and https: URLs. */
export function MessageImages({ images, className }: { images: string[]; className?: string }) {
  const t = useT();
  const [open, setOpen] = useState<string | null>(null);
  const safe = images.filter(isSafeImageSrc);
  if (!safe.length) return null;
  return (
    <div className={cx('flex flex-wrap gap-2', className)} data-testid="message-images">
      {safe.map((src, i) => (
        <button key={i} type="button" className="h-24 w-24 overflow-hidden rounded-lg border border-border bg-muted" onClick={() => setOpen(src)} aria-label={t('chat.openImage', { n: i + 1 })}>
          <img src={src} alt={t('chat.imageN', { n: i + 1 })} className="h-full w-full object-cover" loading="lazy" referrerPolicy="no-referrer" />
        </button>
      ))}
      <Dialog open={open !== null} onOpenChange={(o) => !o && setOpen(null)} title={t('chat.image')} wide>
        {open && <img src={open} alt={t('chat.image')} className="mx-auto max-h-[75vh] max-w-full object-contain" referrerPolicy="no-referrer" />}
      </Dialog>
    </div>
  );
}

function MicIcon() {
  return (
    <svg viewBox="0 0 24 24" className="h-5 w-5" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden>
      <rect x="9" y="3" width="6" height="11" rx="3" />
      <path d="M5 11a7 7 0 0 0 14 0M12 18v3" />
    </svg>
  );
}

/** Longest recording; it stops by itself then. */
const MAX_SECONDS = 10 * 60;

const clock = (seconds: number) => `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;

/**
 * Records from the microphone and hands the transcript to `onText` (the composer inserts it at
 * the cursor; nothing is sent). Hidden in browsers that cannot record.
 */
export function VoiceButton({ disabled, onText, onError }: { disabled?: boolean; onText: (text: string) => void; onError: (e: ComposerError | null) => void }) {
  const t = useT();
  const [state, setState] = useState<'idle' | 'recording' | 'transcribing'>('idle');
  const [elapsed, setElapsed] = useState(0);
  const recorder = useRef<MediaRecorder | null>(null);
  const timer = useRef<ReturnType<typeof setInterval> | null>(null);
  const [supported] = useState(canRecord);

  useEffect(
    () => () => {
      if (timer.current) clearInterval(timer.current);
      const r = recorder.current;
      if (r && r.state !== 'inactive') {
        r.onstop = null;
        r.stop();
      }
      r?.stream.getTracks().forEach((track) => track.stop());
    },
    [],
  );

  if (!supported) return null;

  const fail = (e: unknown) => {
    if (e instanceof ApiError) {
      const message =
        e.status === 413 ? t('voice.tooLarge') : e.status === 415 ? t('voice.unsupported') : e.status === 0 ? t('error.network') : e.message || t('voice.failed');
      onError({ message, requestId: e.requestId });
    } else {
      onError({ message: t('voice.failed') });
    }
  };

  const start = async () => {
    onError(null);
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e) {
      const name = (e as Error)?.name;
      onError({ message: name === 'NotFoundError' || name === 'OverconstrainedError' ? t('voice.noMicrophone') : t('voice.denied') });
      return;
    }
    const mimeType = pickMimeType();
    let rec: MediaRecorder;
    try {
      rec = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
    } catch {
      stream.getTracks().forEach((track) => track.stop());
      onError({ message: t('voice.unsupported') });
      return;
    }
    const chunks: Blob[] = [];
    rec.ondataavailable = (e) => e.data.size && chunks.push(e.data);
    rec.onstop = async () => {
      stream.getTracks().forEach((track) => track.stop());
      if (timer.current) clearInterval(timer.current);
      const audio = new Blob(chunks, { type: rec.mimeType || mimeType || 'audio/webm' });
      if (!audio.size) {
        setState('idle');
        onError({ message: t('voice.empty') });
        return;
      }
      setState('transcribing');
      try {
        const text = await transcribe(audio, langStore.get());
        if (text) onText(text);
        else onError({ message: t('voice.nothingHeard') });
      } catch (e) {
        fail(e);
      } finally {
        setState('idle');
      }
    };
    recorder.current = rec;
    rec.start(250);
    setElapsed(0);
    const began = Date.now();
    timer.current = setInterval(() => {
      const seconds = Math.floor((Date.now() - began) / 1000);
      setElapsed(seconds);
      // Well under the server's 25 MB at any bitrate a browser records speech with.
      if (seconds >= MAX_SECONDS && rec.state !== 'inactive') rec.stop();
    }, 250);
    setState('recording');
  };

  const stop = () => {
    const r = recorder.current;
    if (r && r.state !== 'inactive') r.stop();
  };

  if (state === 'recording')
    return (
      <button
        type="button"
        onClick={stop}
        className="inline-flex h-10 shrink-0 items-center gap-2 rounded-md border border-danger/50 bg-danger/10 px-3 text-sm text-danger"
        aria-label={t('voice.stop')}
        title={t('voice.stop')}
        data-testid="voice-stop"
      >
        <span className="h-2.5 w-2.5 animate-pulse rounded-full bg-danger" aria-hidden />
        <span className="tabular-nums" data-testid="voice-elapsed">
          {clock(elapsed)}
        </span>
        <span className="hidden sm:inline">{t('voice.stop')}</span>
        <StopIcon className="sm:hidden" size={12} />
      </button>
    );
  return (
    <button
      type="button"
      onClick={start}
      disabled={disabled || state === 'transcribing'}
      className="inline-flex h-10 w-10 shrink-0 items-center justify-center rounded-md text-muted-fg hover:bg-muted disabled:opacity-50"
      aria-label={state === 'transcribing' ? t('voice.transcribing') : t('voice.record')}
      title={state === 'transcribing' ? t('voice.transcribing') : t('voice.record')}
      data-testid="voice-record"
    >
      {state === 'transcribing' ? <span className="h-4 w-4 animate-spin rounded-full border-2 border-current border-t-transparent" aria-hidden /> : <MicIcon />}
    </button>
  );
}
