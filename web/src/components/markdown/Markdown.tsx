import { Children, isValidElement, memo, useState, type ReactNode } from 'react';
import ReactMarkdown, { defaultUrlTransform } from 'react-markdown';
import remarkGfm from 'remark-gfm';
import remarkMath from 'remark-math';
import rehypeKatex from 'rehype-katex';
import rehypeHighlight from 'rehype-highlight';
import 'katex/dist/katex.min.css';
import { CopyButton } from '../ui';
import { useT } from '../../i18n';

function textOf(node: ReactNode): string {
  if (typeof node === 'string' || typeof node === 'number') return String(node);
  if (Array.isArray(node)) return node.map(textOf).join('');
  if (isValidElement<{ children?: ReactNode }>(node)) return textOf(node.props.children);
  return '';
}

/** The language a fenced block names (```python → "python"), from its code element's class. */
export function codeLanguage(children: ReactNode): string | null {
  for (const child of Children.toArray(children)) {
    if (!isValidElement<{ className?: string }>(child)) continue;
    const m = /(?:^|\s)language-([\w+#.-]+)/.exec(child.props.className ?? '');
    if (m) return m[1];
  }
  return null;
}

function CodeBlock({ children }: { children?: ReactNode }) {
  const t = useT();
  const code = textOf(Children.toArray(children));
  const language = codeLanguage(children);
  return (
    // A bar above the code with its language and the copy button: nothing covers the code on
    // any width.
    <div className="my-3 overflow-hidden rounded-lg border border-border bg-muted" data-testid="code-block">
      <div className="flex items-center justify-between gap-2 border-b border-border px-3 py-1 text-xs text-muted-fg" data-testid="copy-code">
        <span className="font-mono lowercase" data-testid="code-language">
          {language ?? t('chat.codeText')}
        </span>
        <CopyButton text={code.replace(/\n$/, '')} label={t('chat.copyCode')} className="-mr-2 h-7 text-xs coarse:h-11" />
      </div>
      {/* Focusable: a long line scrolls sideways, and the keyboard must reach it. */}
      <pre className="!my-0 !rounded-none" tabIndex={0}>
        {children}
      </pre>
    </div>
  );
}

/** Whether `src` is on this origin (a path, not `//host/...`), which the CSP lets load. */
function sameOrigin(src: string): boolean {
  return src.startsWith('/') && !src.startsWith('//');
}

/**
 * An image in model output. Nothing is fetched by itself: a reply could otherwise make the
 * browser call any host (a tracking pixel, or a URL that carries the conversation out). A
 * remote image is a link the reader may open; one on this origin loads on an explicit click.
 */
function MarkdownImage({ src, alt }: { src?: string; alt?: string }) {
  const t = useT();
  const [shown, setShown] = useState(false);
  const url = typeof src === 'string' ? src : '';
  if (!url) return <span>{alt}</span>;
  if (shown) return <img src={url} alt={alt ?? ''} referrerPolicy="no-referrer" className="max-w-full" />;
  let host = '';
  try {
    host = new URL(url, globalThis.location?.href ?? 'http://localhost/').host;
  } catch {
    host = '';
  }
  return (
    <span data-testid="markdown-image" className="inline-flex flex-wrap items-center gap-2 rounded-md border border-border px-2 py-1 text-sm">
      <a href={url} target="_blank" rel="noopener noreferrer nofollow" title={url}>
        {alt || t('markdown.image')}
      </a>
      {sameOrigin(url) ? (
        <button type="button" className="text-primary hover:underline" onClick={() => setShown(true)}>
          {t('markdown.loadImage')}
        </button>
      ) : (
        <span className="text-muted-fg">{t('markdown.imageFrom', { host })}</span>
      )}
    </span>
  );
}

/** Only web and mail links survive; anything else (javascript:, data:, vbscript:) is dropped. */
export function safeUrl(url: string): string {
  const cleaned = defaultUrlTransform(url);
  return /^(https?:|mailto:|#|\/)/i.test(cleaned) || !/^[a-z][a-z0-9+.-]*:/i.test(cleaned) ? cleaned : '';
}

/**
 * Renders model output as Markdown with tables, math and highlighted code. Raw HTML in the
 * text is shown as text (no rehype-raw), unsafe link targets are removed, and images are not
 * fetched until the reader asks, so an answer can neither run script nor call another host.
 */
function Markdown({ text }: { text: string }) {
  return (
    <div className="prose-chat">
      <ReactMarkdown
        remarkPlugins={[remarkGfm, remarkMath]}
        rehypePlugins={[rehypeKatex, [rehypeHighlight, { detect: false }]]}
        urlTransform={safeUrl}
        skipHtml={false}
        components={{
          pre: CodeBlock,
          img: ({ src, alt }) => <MarkdownImage src={typeof src === 'string' ? src : undefined} alt={alt} />,
          a: ({ href, children }) => (
            <a href={href || undefined} target="_blank" rel="noopener noreferrer nofollow">
              {children}
            </a>
          ),
        }}
      >
        {text}
      </ReactMarkdown>
    </div>
  );
}

// Memoised: the chat thread re-renders on scroll (windowing) and on every streamed delta, and
// re-parsing every visible message each time would make scrolling stutter.
export default memo(Markdown);
