import { useEffect, useRef, useState } from 'react';
import { api } from '../../lib/api';
import { setUser } from '../../lib/auth';
import type { Profile } from '../../lib/types';
import { useT } from '../../i18n';
import { Button, ErrorText } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { toast } from '../../components/ui/toast';

/** Side of the square the picture is framed in, in CSS pixels (fits a 390 px phone's dialog). */
export const VIEW = 256;
/** Side of the cropped picture sent to the server, in pixels (the server makes its 256 px copy). */
export const OUT = 512;
/** The most the picture may be zoomed in. */
export const MAX_ZOOM = 4;

export type Size = { w: number; h: number };
export type Offset = { x: number; y: number };

/** Scale from source pixels to view pixels: at zoom 1 the short side fills the square. */
export function scaleOf(natural: Size, zoom: number, view = VIEW): number {
  return (view / Math.min(natural.w, natural.h)) * zoom;
}

/** Keeps the picture covering the whole square (its top-left corner at or above and left of the square's). */
export function clampOffset(natural: Size, zoom: number, offset: Offset, view = VIEW): Offset {
  const s = scaleOf(natural, zoom, view);
  const minX = view - natural.w * s;
  const minY = view - natural.h * s;
  return { x: Math.min(0, Math.max(minX, offset.x)), y: Math.min(0, Math.max(minY, offset.y)) };
}

/** The offset that centres the picture at `zoom`. */
export function centred(natural: Size, zoom: number, view = VIEW): Offset {
  const s = scaleOf(natural, zoom, view);
  return { x: (view - natural.w * s) / 2, y: (view - natural.h * s) / 2 };
}

/** The square of the source picture that shows in the frame, in source pixels. */
export function cropRect(natural: Size, zoom: number, offset: Offset, view = VIEW): { sx: number; sy: number; size: number } {
  const s = scaleOf(natural, zoom, view);
  const o = clampOffset(natural, zoom, offset, view);
  const size = Math.min(view / s, natural.w, natural.h);
  return { sx: Math.max(0, -o.x / s), sy: Math.max(0, -o.y / s), size };
}

/** Zooms about the frame's centre, so what is in the middle stays there. */
export function zoomAbout(natural: Size, from: number, to: number, offset: Offset, view = VIEW): Offset {
  const ratio = to / from;
  const c = view / 2;
  return clampOffset(natural, to, { x: c - (c - offset.x) * ratio, y: c - (c - offset.y) * ratio }, view);
}

/**
 * Frames a picture for the avatar: drag (mouse, touch or arrow keys) to move it, the slider or
 * the wheel to zoom; "Use this picture" draws the framed square into a 512 px PNG and sends it
 * to `PUT /user/avatar`.
 */
export function AvatarCropDialog({ file, onClose }: { file: File | null; onClose: () => void }) {
  const t = useT();
  const [src, setSrc] = useState<string | null>(null);
  const [natural, setNatural] = useState<Size | null>(null);
  const [zoom, setZoom] = useState(1);
  const [offset, setOffset] = useState<Offset>({ x: 0, y: 0 });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const img = useRef<HTMLImageElement>(null);
  const drag = useRef<{ id: number; x: number; y: number; from: Offset } | null>(null);

  useEffect(() => {
    setNatural(null);
    setZoom(1);
    setError(null);
    if (!file) {
      setSrc(null);
      return;
    }
    const url = URL.createObjectURL(file);
    setSrc(url);
    return () => URL.revokeObjectURL(url);
  }, [file]);

  const onLoad = () => {
    const el = img.current;
    if (!el || !el.naturalWidth || !el.naturalHeight) return;
    const size = { w: el.naturalWidth, h: el.naturalHeight };
    setNatural(size);
    setOffset(centred(size, 1));
  };

  const setZoomTo = (next: number) => {
    if (!natural) return;
    const z = Math.min(MAX_ZOOM, Math.max(1, next));
    setOffset(zoomAbout(natural, zoom, z, offset));
    setZoom(z);
  };

  const move = (dx: number, dy: number, from = offset) => {
    if (natural) setOffset(clampOffset(natural, zoom, { x: from.x + dx, y: from.y + dy }));
  };

  const save = async () => {
    if (!natural || !img.current) return;
    setBusy(true);
    setError(null);
    try {
      const { sx, sy, size } = cropRect(natural, zoom, offset);
      const canvas = document.createElement('canvas');
      canvas.width = OUT;
      canvas.height = OUT;
      const ctx = canvas.getContext('2d');
      if (!ctx) throw new Error(t('settings.cropFailed'));
      ctx.imageSmoothingQuality = 'high';
      ctx.drawImage(img.current, sx, sy, size, size, 0, 0, OUT, OUT);
      const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, 'image/png'));
      if (!blob) throw new Error(t('settings.cropFailed'));
      const form = new FormData();
      form.append('file', blob, 'avatar.png');
      setUser(await api<Profile>('user/avatar', { method: 'PUT', body: form }));
      toast(t('common.saved'));
      onClose();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const s = natural ? scaleOf(natural, zoom) : 0;
  return (
    <Dialog open={file !== null} onOpenChange={(open) => !open && onClose()} title={t('settings.cropTitle')}>
      <div className="space-y-4">
        <p className="text-sm text-muted-fg">{t('settings.cropHint')}</p>
        <div
          role="application"
          aria-label={t('settings.cropFrame')}
          tabIndex={0}
          data-testid="crop-frame"
          className="relative mx-auto touch-none select-none overflow-hidden rounded-lg border border-border bg-muted outline-none focus-visible:ring-2 focus-visible:ring-primary"
          style={{ width: VIEW, height: VIEW, cursor: drag.current ? 'grabbing' : 'grab' }}
          onPointerDown={(e) => {
            drag.current = { id: e.pointerId, x: e.clientX, y: e.clientY, from: offset };
            e.currentTarget.setPointerCapture?.(e.pointerId);
          }}
          onPointerMove={(e) => {
            const d = drag.current;
            if (d && d.id === e.pointerId && Number.isFinite(e.clientX - d.x + e.clientY - d.y)) move(e.clientX - d.x, e.clientY - d.y, d.from);
          }}
          onPointerUp={() => (drag.current = null)}
          onPointerCancel={() => (drag.current = null)}
          onWheel={(e) => setZoomTo(zoom * (e.deltaY < 0 ? 1.1 : 1 / 1.1))}
          onKeyDown={(e) => {
            const step = e.shiftKey ? 32 : 8;
            const keys: Record<string, [number, number]> = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
            const k = keys[e.key];
            if (k) {
              e.preventDefault();
              move(k[0], k[1]);
            } else if (e.key === '+' || e.key === '=') setZoomTo(zoom * 1.1);
            else if (e.key === '-') setZoomTo(zoom / 1.1);
          }}
        >
          {src && (
            <img
              ref={img}
              src={src}
              alt=""
              draggable={false}
              onLoad={onLoad}
              className="pointer-events-none absolute left-0 top-0 max-w-none origin-top-left"
              style={natural ? { width: natural.w * s, height: natural.h * s, transform: `translate(${offset.x}px, ${offset.y}px)` } : { visibility: 'hidden' }}
            />
          )}
          {/* The round avatar the square becomes. */}
          <div className="pointer-events-none absolute inset-0 rounded-full shadow-[0_0_0_9999px_rgba(0,0,0,0.45)]" />
        </div>
        <label className="flex items-center gap-3 text-sm">
          <span className="shrink-0">{t('settings.cropZoom')}</span>
          <input
            type="range"
            min={1}
            max={MAX_ZOOM}
            step={0.01}
            value={zoom}
            disabled={!natural}
            onChange={(e) => setZoomTo(Number(e.target.value))}
            className="w-full accent-primary"
          />
        </label>
        <ErrorText error={error} />
        <div className="flex justify-end gap-2">
          <Button type="button" variant="secondary" onClick={onClose}>
            {t('common.cancel')}
          </Button>
          <Button type="button" disabled={!natural || busy} onClick={save}>
            {t('settings.cropSave')}
          </Button>
        </div>
      </div>
    </Dialog>
  );
}
