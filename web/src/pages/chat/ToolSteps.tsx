import { useEffect, useState } from 'react';
import { api } from '../../lib/api';
import type { ToolCitation, ToolStep } from '../../lib/types';
import { useT } from '../../i18n';
import { Badge } from '../../components/ui';

/** Arguments as the model wrote them, indented when they are JSON. */
export function prettyArguments(text: string): string {
  if (!text.trim()) return '{}';
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** Only http(s) links are shown as links (a tool's result is not trusted). */
export function isWebLink(url: string | null | undefined): url is string {
  return !!url && /^https?:\/\//i.test(url);
}

/** A file a tool made, loaded with the session (file URLs need it) and shown as an image. */
function ToolImage({ id, alt }: { id: string; alt: string }) {
  const [src, setSrc] = useState<string | null>(null);
  useEffect(() => {
    let url: string | null = null;
    let live = true;
    api<Response>(`files/${encodeURIComponent(id)}/content`, { raw: true })
      .then((res) => res.blob())
      .then((blob) => {
        if (!live) return;
        url = URL.createObjectURL(blob);
        setSrc(url);
      })
      .catch(() => undefined);
    return () => {
      live = false;
      if (url) URL.revokeObjectURL(url);
    };
  }, [id]);
  if (!src) return <div className="h-40 w-40 animate-pulse rounded-lg bg-muted" />;
  return <img src={src} alt={alt} className="max-h-80 max-w-full rounded-lg border border-border" data-testid="tool-image" />;
}

function Citations({ citations }: { citations: ToolCitation[] }) {
  const t = useT();
  const links = citations.filter((c) => !c.reference?.file_id);
  const files = citations.filter((c) => c.reference?.file_id);
  return (
    <>
      {files.map((c) => (
        <ToolImage key={c.reference?.file_id} id={c.reference?.file_id ?? ''} alt={t('tools.generatedImage')} />
      ))}
      {links.length > 0 && (
        <ol className="list-decimal space-y-1 pl-5 text-xs" data-testid="tool-citations">
          {links.map((c, i) => (
            <li key={i} className="break-words">
              {isWebLink(c.url) ? (
                <a href={c.url} target="_blank" rel="noopener noreferrer nofollow" className="text-primary underline">
                  {c.title || c.url}
                </a>
              ) : (
                c.title
              )}
            </li>
          ))}
        </ol>
      )}
    </>
  );
}

/** Friendly names of the built-in tools; others show as named. */
function toolLabel(name: string, t: ReturnType<typeof useT>): string {
  if (name === 'web_search') return t('tools.webSearch');
  if (name === 'generate_image') return t('tools.generateImage');
  return name;
}

/** The tools an answer called, each a collapsible step with its input and output. */
export function ToolSteps({ steps }: { steps: ToolStep[] }) {
  const t = useT();
  if (!steps.length) return null;
  return (
    <div className="space-y-1" data-testid="tool-steps">
      {steps.map((s, i) => {
        const running = s.result === null;
        const images = (s.citations ?? []).filter((c) => c.reference?.file_id);
        return (
          <div key={`${s.id}-${i}`} className="space-y-1">
            <details className="rounded-md border border-border text-sm" data-testid="tool-step" data-state={running ? 'running' : s.is_error ? 'error' : 'done'}>
              <summary className="flex cursor-pointer items-center gap-2 px-3 py-1.5 text-muted-fg">
                <span aria-hidden className={`h-2 w-2 shrink-0 rounded-full ${running ? 'animate-pulse bg-primary' : s.is_error ? 'bg-danger' : 'bg-ok'}`} />
                <span className="min-w-0 flex-1 truncate font-medium text-fg">{toolLabel(s.name, t)}</span>
                {running ? <Badge>{t('tools.running')}</Badge> : s.is_error ? <Badge tone="danger">{t('tools.failed')}</Badge> : <Badge tone="ok">{t('tools.done')}</Badge>}
              </summary>
              <div className="space-y-2 border-t border-border px-3 py-2">
                <div>
                  <div className="text-xs font-medium text-muted-fg">{t('tools.input')}</div>
                  <pre className="max-h-48 overflow-auto whitespace-pre-wrap break-words rounded bg-muted p-2 text-xs">{prettyArguments(s.arguments)}</pre>
                </div>
                {!running && (
                  <div>
                    <div className="text-xs font-medium text-muted-fg">{t('tools.output')}</div>
                    <pre className="max-h-64 overflow-auto whitespace-pre-wrap break-words rounded bg-muted p-2 text-xs">{s.result}</pre>
                  </div>
                )}
                {!running && (s.citations?.length ?? 0) > images.length && <Citations citations={(s.citations ?? []).filter((c) => !c.reference?.file_id)} />}
              </div>
            </details>
            {/* A drawn image is the answer's content: shown outside the collapsed step. */}
            {images.length > 0 && <Citations citations={images} />}
          </div>
        );
      })}
    </div>
  );
}
