import { Children, isValidElement, memo, type ReactNode } from 'react';
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

function CodeBlock({ children }: { children?: ReactNode }) {
  const t = useT();
  const code = textOf(Children.toArray(children));
  return (
    <div className="group relative">
      <CopyButton text={code.replace(/\n$/, '')} label={t('chat.copyCode')} className="absolute right-1 top-1 h-7 bg-card/80 text-xs opacity-80 group-hover:opacity-100" />
      <pre>{children}</pre>
    </div>
  );
}

/** Only web and mail links survive; anything else (javascript:, data:, vbscript:) is dropped. */
export function safeUrl(url: string): string {
  const cleaned = defaultUrlTransform(url);
  return /^(https?:|mailto:|#|\/)/i.test(cleaned) || !/^[a-z][a-z0-9+.-]*:/i.test(cleaned) ? cleaned : '';
}

/**
 * Renders model output as Markdown with tables, math and highlighted code. Raw HTML in the
 * text is shown as text (no rehype-raw), and unsafe link targets are removed, so an answer
 * can never run script.
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
