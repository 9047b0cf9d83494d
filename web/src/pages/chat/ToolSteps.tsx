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

/** A file the code interpreter wrote: its name in the sandbox and the stored file. */
export interface CodeFile {
  name: string;
  file_id: string;
  content_type?: string;
}

/** The JSON the code interpreter answers (the model reads the same object). */
export interface CodeResult {
  exit_code: number | null;
  signal: number | null;
  timed_out: boolean;
  stdout: string;
  stderr: string;
  files: CodeFile[];
  truncated?: string;
  skipped_files?: string[];
  limit?: string;
}

/** A `run_code` result parsed, or null when it is not one (an error message, a bad call). */
export function parseCodeResult(text: string | null): CodeResult | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as Partial<CodeResult>;
    if (typeof v !== 'object' || v === null || typeof v.stdout !== 'string' || typeof v.stderr !== 'string') return null;
    const files = Array.isArray(v.files)
      ? v.files.filter((f): f is CodeFile => !!f && typeof f.name === 'string' && typeof f.file_id === 'string')
      : [];
    return {
      exit_code: typeof v.exit_code === 'number' ? v.exit_code : null,
      signal: typeof v.signal === 'number' ? v.signal : null,
      timed_out: v.timed_out === true,
      stdout: v.stdout,
      stderr: v.stderr,
      files,
      truncated: typeof v.truncated === 'string' ? v.truncated : undefined,
      skipped_files: Array.isArray(v.skipped_files) ? v.skipped_files.filter((n) => typeof n === 'string') : undefined,
      limit: typeof v.limit === 'string' ? v.limit : undefined,
    };
  } catch {
    return null;
  }
}

/** The program the model wrote, from the call's arguments (`null` when they are not JSON). */
export function codeOf(argumentsText: string): { code: string; language: string } | null {
  try {
    const v = JSON.parse(argumentsText) as { code?: unknown; language?: unknown };
    if (typeof v.code !== 'string') return null;
    return { code: v.code, language: typeof v.language === 'string' ? v.language : 'python' };
  } catch {
    return null;
  }
}

/** A file a tool made (not an image): downloaded with the session, saved under its name. */
function ToolDownload({ id, name }: { id: string; name: string }) {
  const download = async () => {
    const res = await api<Response>(`files/${encodeURIComponent(id)}/content`, { raw: true });
    const url = URL.createObjectURL(await res.blob());
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  return (
    <button type="button" onClick={() => void download()} className="break-all text-left text-xs text-primary underline" data-testid="tool-file">
      {name}
    </button>
  );
}

/** A code interpreter step's output: status, stdout, stderr, the limit hit, its files. */
function CodeOutput({ result }: { result: CodeResult }) {
  const t = useT();
  const status = result.timed_out
    ? t('tools.timedOut')
    : result.signal !== null
      ? t('tools.signal', { signal: result.signal })
      : t('tools.exit', { code: result.exit_code ?? '?' });
  const others = result.files.filter((f) => !f.content_type?.startsWith('image/'));
  return (
    <div className="space-y-2" data-testid="code-output">
      <div className="text-xs text-muted-fg">{status}</div>
      {result.limit && <div className="text-xs text-danger">{result.limit}</div>}
      {result.stdout && (
        <div>
          <div className="text-xs font-medium text-muted-fg">{t('tools.stdout')}</div>
          <pre className="max-h-64 overflow-auto whitespace-pre-wrap break-words rounded bg-muted p-2 text-xs" data-testid="code-stdout">{result.stdout}</pre>
        </div>
      )}
      {result.stderr && (
        <div>
          <div className="text-xs font-medium text-muted-fg">{t('tools.stderr')}</div>
          <pre className="max-h-48 overflow-auto whitespace-pre-wrap break-words rounded bg-danger/10 p-2 text-xs text-danger" data-testid="code-stderr">{result.stderr}</pre>
        </div>
      )}
      {result.truncated && <div className="text-xs text-muted-fg">{t('tools.truncated')}</div>}
      {others.length > 0 && (
        <div>
          <div className="text-xs font-medium text-muted-fg">{t('tools.files')}</div>
          <ul className="space-y-1">
            {others.map((f) => (
              <li key={f.file_id}>
                <ToolDownload id={f.file_id} name={f.name} />
              </li>
            ))}
          </ul>
        </div>
      )}
      {result.skipped_files && result.skipped_files.length > 0 && (
        <div className="text-xs text-muted-fg">{t('tools.skipped', { names: result.skipped_files.join(', ') })}</div>
      )}
    </div>
  );
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

function Citations({ citations, alt }: { citations: ToolCitation[]; alt?: string }) {
  const t = useT();
  const links = citations.filter((c) => !c.reference?.file_id);
  const files = citations.filter((c) => c.reference?.file_id);
  return (
    <>
      {files.map((c) => (
        <ToolImage key={c.reference?.file_id} id={c.reference?.file_id ?? ''} alt={alt ?? t('tools.generatedImage')} />
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

/** Approve / Deny for a call that waits for the user; the stream goes on once decided. */
function ApprovalPrompt({ step }: { step: ToolStep }) {
  const t = useT();
  const [sent, setSent] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!step.approval) return null;
  const decide = async (verdict: 'approve' | 'deny') => {
    setError(null);
    setSent(true);
    try {
      await api(
        `chat/messages/${encodeURIComponent(step.approval?.message_id ?? '')}/tool-calls/${encodeURIComponent(step.id)}/${verdict}`,
        { method: 'POST', body: {} },
      );
    } catch (e) {
      setSent(false);
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <div className="space-y-2 rounded-md border border-primary/40 bg-primary/5 px-3 py-2 text-sm" data-testid="tool-approval">
      <div className="text-fg">{t('tools.approvalAsk')}</div>
      <div className="flex flex-wrap gap-2">
        <button
          type="button"
          disabled={sent}
          onClick={() => void decide('approve')}
          className="min-h-9 rounded-md bg-primary px-3 text-primary-fg disabled:opacity-50"
          data-testid="tool-approve"
        >
          {t('tools.approve')}
        </button>
        <button
          type="button"
          disabled={sent}
          onClick={() => void decide('deny')}
          className="min-h-9 rounded-md border border-border px-3 text-fg disabled:opacity-50"
          data-testid="tool-deny"
        >
          {t('tools.deny')}
        </button>
        {sent && <span className="self-center text-xs text-muted-fg">{t('tools.approvalSent')}</span>}
      </div>
      {error && <div className="text-xs text-danger">{t('tools.approvalFailed', { error })}</div>}
    </div>
  );
}

/** Friendly names of the built-in tools; others show as named. */
function toolLabel(name: string, t: ReturnType<typeof useT>): string {
  if (name === 'web_search') return t('tools.webSearch');
  if (name === 'generate_image') return t('tools.generateImage');
  if (name === 'run_code') return t('tools.runCode');
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
        const code = s.name === 'run_code' ? parseCodeResult(s.result) : null;
        const program = s.name === 'run_code' ? codeOf(s.arguments) : null;
        // Only images are shown inline; the code interpreter's other files are listed in its step.
        const images = (s.citations ?? []).filter(
          (c) => c.reference?.file_id && (!code || (c.reference.content_type ?? '').startsWith('image/')),
        );
        return (
          <div key={`${s.id}-${i}`} className="space-y-1">
            <details className="rounded-md border border-border text-sm" data-testid="tool-step" data-state={running ? 'running' : s.is_error ? 'error' : 'done'}>
              <summary className="flex cursor-pointer items-center gap-2 px-3 py-1.5 text-muted-fg">
                <span aria-hidden className={`h-2 w-2 shrink-0 rounded-full ${running ? 'animate-pulse bg-primary' : s.is_error ? 'bg-danger' : 'bg-ok'}`} />
                <span className="min-w-0 flex-1 truncate font-medium text-fg">{toolLabel(s.name, t)}</span>
                {running && s.approval ? <Badge>{t('tools.waiting')}</Badge> : running ? <Badge>{t('tools.running')}</Badge> : s.is_error ? <Badge tone="danger">{t('tools.failed')}</Badge> : <Badge tone="ok">{t('tools.done')}</Badge>}
              </summary>
              <div className="space-y-2 border-t border-border px-3 py-2">
                <div>
                  <div className="text-xs font-medium text-muted-fg">{program ? `${t('tools.code')} · ${program.language}` : t('tools.input')}</div>
                  <pre className="max-h-48 overflow-auto whitespace-pre-wrap break-words rounded bg-muted p-2 text-xs" data-testid={program ? 'code-input' : undefined}>
                    {program ? program.code : prettyArguments(s.arguments)}
                  </pre>
                </div>
                {running && (s.progress?.length ?? 0) > 0 && (
                  <div>
                    <div className="text-xs font-medium text-muted-fg">{t('tools.progress')}</div>
                    <pre className="max-h-48 overflow-auto whitespace-pre-wrap break-words rounded bg-muted p-2 text-xs" data-testid="tool-progress">
                      {(s.progress ?? []).join('\n')}
                    </pre>
                  </div>
                )}
                {!running && code && <CodeOutput result={code} />}
                {!running && !code && (
                  <div>
                    <div className="text-xs font-medium text-muted-fg">{t('tools.output')}</div>
                    <pre className="max-h-64 overflow-auto whitespace-pre-wrap break-words rounded bg-muted p-2 text-xs">{s.result}</pre>
                  </div>
                )}
                {!running && !code && (s.citations?.length ?? 0) > images.length && <Citations citations={(s.citations ?? []).filter((c) => !c.reference?.file_id)} />}
              </div>
            </details>
            {running && <ApprovalPrompt step={s} />}
            {/* A drawn image is the answer's content: shown outside the collapsed step. */}
            {images.length > 0 && <Citations citations={images} alt={code ? t('tools.codeImage') : undefined} />}
          </div>
        );
      })}
    </div>
  );
}
