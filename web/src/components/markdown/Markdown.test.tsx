import { describe, expect, it } from 'vitest';
import { fireEvent, render } from '@testing-library/react';
import Markdown, { safeUrl } from './Markdown';

const hostile = [
  'Here is an image: <img src=x onerror=alert(1)>',
  '',
  '<script>alert(2)</script>',
  '',
  '[click me](javascript:alert(1)) and [data](data:text/html,<script>alert(3)</script>) and [vb](vbscript:msgbox)',
  '',
  '![pic](javascript:alert(4))',
  '',
  '<a href="javascript:alert(5)">raw link</a> <iframe src="https://evil.example"></iframe>',
  '',
  '[ok](https://example.com/page) and [mail](mailto:a@example.com)',
].join('\n');

describe('Markdown from the model', () => {
  it('renders raw HTML as text and drops script-bearing links', () => {
    const { container } = render(<Markdown text={hostile} />);
    // No element from the answer's raw HTML exists: no img with onerror, no script, no iframe.
    expect(container.querySelector('script')).toBeNull();
    expect(container.querySelector('iframe')).toBeNull();
    for (const el of container.querySelectorAll('*')) {
      for (const attr of el.getAttributeNames()) {
        expect(attr.startsWith('on'), `${el.tagName} has ${attr}`).toBe(false);
      }
    }
    const imgs = [...container.querySelectorAll('img')];
    for (const img of imgs) expect(img.getAttribute('src') ?? '').not.toMatch(/javascript:/i);
    // Every link that remains points somewhere harmless.
    const hrefs = [...container.querySelectorAll('a')].map((a) => a.getAttribute('href') ?? '');
    for (const href of hrefs) expect(href).not.toMatch(/^\s*(javascript|data|vbscript):/i);
    expect(hrefs).toContain('https://example.com/page');
    expect(hrefs).toContain('mailto:a@example.com');
    // The hostile markup is visible as text, so the reader sees what the model wrote.
    expect(container.textContent).toContain('<img src=x onerror=alert(1)>');
    expect(container.textContent).toContain('click me');
  });

  it('renders GFM tables, math and highlighted code', () => {
    const { container } = render(<Markdown text={'| a | b |\n|---|---|\n| 1 | 2 |\n\n$$E=mc^2$$\n\n```js\nconst x = 1;\n```'} />);
    expect(container.querySelector('table')).not.toBeNull();
    expect(container.querySelector('.katex')).not.toBeNull();
    expect(container.querySelector('code.hljs, code.language-js')).not.toBeNull();
    expect(container.querySelector('pre')?.textContent).toContain('const x = 1;');
  });

  it('keeps only web, mail, anchor and relative URLs', () => {
    expect(safeUrl('https://a.b')).toBe('https://a.b');
    expect(safeUrl('/x')).toBe('/x');
    expect(safeUrl('#top')).toBe('#top');
    expect(safeUrl('javascript:alert(1)')).toBe('');
    expect(safeUrl('JaVaScRiPt:alert(1)')).toBe('');
    expect(safeUrl('data:text/html,x')).toBe('');
  });
});

describe('images in model output', () => {
  it('never loads a remote image by itself: it is a link that names the host', () => {
    const { container, getByText } = render(<Markdown text={'![cat](https://tracker.example/pixel.png?c=secret) and ![](//evil.example/x.gif)'} />);
    expect(container.querySelector('img')).toBeNull();
    const link = getByText('cat').closest('a');
    expect(link?.getAttribute('href')).toBe('https://tracker.example/pixel.png?c=secret');
    expect(link?.getAttribute('rel')).toContain('noreferrer');
    expect(container.textContent).toContain('tracker.example');
    expect(container.textContent).toContain('evil.example');
    expect(container.textContent).not.toContain('Load image');
  });

  it('loads an image of this origin only when asked', () => {
    const { container, getByRole } = render(<Markdown text={'![chart](/files/chart.png)'} />);
    expect(container.querySelector('img')).toBeNull();
    fireEvent.click(getByRole('button', { name: 'Load image' }));
    const img = container.querySelector('img');
    expect(img?.getAttribute('src')).toBe('/files/chart.png');
    expect(img?.getAttribute('alt')).toBe('chart');
  });
});

describe('code blocks', () => {
  it('label the language a fence names above the code, and "text" when it names none', () => {
    const { getAllByTestId } = render(<Markdown text={'```python\nprint(1)\n```\n\n```\nplain\n```'} />);
    const labels = getAllByTestId('code-language').map((el) => el.textContent);
    expect(labels).toEqual(['python', 'text']);
    // The bar with the label and the copy button comes before the code, not over it.
    const block = getAllByTestId('code-block')[0];
    expect(block.firstElementChild?.getAttribute('data-testid')).toBe('copy-code');
    expect(block.querySelector('pre')?.textContent).toContain('print(1)');
  });

  it('never float the Copy button over the code, on any width', () => {
    const { getByTestId } = render(<Markdown text={'```js\nconst answer = 42;\n```'} />);
    const copy = getByTestId('copy-code');
    expect(copy.nextElementSibling?.tagName).toBe('PRE');
    for (const el of [copy, copy.querySelector('button')]) expect(el?.className).not.toMatch(/(^|\s)(sm:)?absolute/);
  });
});
