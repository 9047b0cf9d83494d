// Tool steps in the thread: live from the stream (a call, then its result) and from stored
// messages; inputs and outputs behind a collapsible step; only web links are links.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { applyEvent, parseStreamEvent } from '../../lib/branch';
import type { ChatMessage, ToolStep } from '../../lib/types';
import { codeOf, isWebLink, parseCodeResult, prettyArguments, ToolSteps } from './ToolSteps';

const answer: ChatMessage = {
  id: 'a1',
  parent_id: 'u1',
  role: 'assistant',
  content: '',
  reasoning: null,
  status: 'streaming',
  model: 'gpt-test',
  error: null,
  images: [],
  sibling_ids: ['a1'],
  sibling_index: 0,
  sibling_count: 1,
  usage: null,
  created_at: '2026-12-01T00:00:00Z',
};

describe('tool steps', () => {
  it('a call streams in running, then its result completes it', () => {
    const ids = { user: 'u1', assistant: 'a1' };
    const call = parseStreamEvent('tool_call', JSON.stringify({ id: 'call_1', name: 'web_search', arguments: '{"query":"rust"}' }));
    const result = parseStreamEvent(
      'tool_result',
      JSON.stringify({ id: 'call_1', name: 'web_search', content: '[1] Rust', is_error: false, citations: [{ title: 'Rust', url: 'https://rust-lang.org' }] }),
    );
    expect(call).not.toBeNull();
    expect(result).not.toBeNull();
    let state = applyEvent([answer], ids, call!);
    expect(state.messages[0].tool_calls).toEqual([{ id: 'call_1', name: 'web_search', arguments: '{"query":"rust"}', result: null, is_error: false }]);
    state = applyEvent(state.messages, state.ids, result!);
    expect(state.messages[0].tool_calls?.[0]).toMatchObject({ result: '[1] Rust', is_error: false, citations: [{ url: 'https://rust-lang.org' }] });
    // A result for a call never seen changes nothing.
    const stray = parseStreamEvent('tool_result', JSON.stringify({ id: 'nope', name: 'x', content: 'y', is_error: true }));
    expect(applyEvent(state.messages, state.ids, stray!).messages).toEqual(state.messages);
  });

  it('renders inputs, outputs, states and only http links', () => {
    const steps: ToolStep[] = [
      { id: 'c1', name: 'web_search', arguments: '{"query":"天气"}', result: 'sunny', is_error: false, citations: [
        { title: 'Good', url: 'https://example.com/a' },
        { title: 'Evil', url: 'javascript:alert(1)' },
      ] },
      { id: 'c2', name: 'get_weather', arguments: '{}', result: 'The address is not allowed', is_error: true },
      { id: 'c3', name: 'slow', arguments: 'not json', result: null, is_error: false },
    ];
    render(<ToolSteps steps={steps} />);
    const rendered = screen.getAllByTestId('tool-step');
    expect(rendered.map((s) => s.getAttribute('data-state'))).toEqual(['done', 'error', 'running']);
    expect(screen.getByText('Web search')).toBeTruthy();
    fireEvent.click(screen.getByText('Web search'));
    expect(screen.getByText(/"query": "天气"/)).toBeTruthy();
    expect(screen.getByText('sunny')).toBeTruthy();
    expect(screen.getByRole('link', { name: 'Good' }).getAttribute('href')).toBe('https://example.com/a');
    expect(screen.queryByRole('link', { name: 'Evil' })).toBeNull();
    expect(screen.getByText('Running')).toBeTruthy();
    expect(screen.getByText('Failed')).toBeTruthy();
  });

  it('pretty-prints JSON arguments and keeps other text as written', () => {
    expect(prettyArguments('{"a":1}')).toBe('{\n  "a": 1\n}');
    expect(prettyArguments('{broken')).toBe('{broken');
    expect(prettyArguments('')).toBe('{}');
    expect(isWebLink('http://x')).toBe(true);
    expect(isWebLink('data:text/html,x')).toBe(false);
    expect(isWebLink(null)).toBe(false);
  });

  it('renders a code run: its program, stdout, stderr, the limit hit, images inline and other files listed', () => {
    const result = JSON.stringify({
      exit_code: 1,
      signal: null,
      timed_out: false,
      stdout: 'total 42\n',
      stderr: 'MemoryError\n',
      files: [
        { name: 'plot.png', file_id: 'f-img', content_type: 'image/png', size: 70 },
        { name: 'summary.txt', file_id: 'f-txt', content_type: 'text/plain', size: 2 },
      ],
      limit: 'Memory is limited to 256 MiB per process.',
      skipped_files: ['big.bin'],
    });
    const steps: ToolStep[] = [
      {
        id: 'c1',
        name: 'run_code',
        arguments: JSON.stringify({ code: 'print(6 * 7)' }),
        result,
        is_error: true,
        citations: [
          { title: 'f-img', url: '/api/v1/files/f-img/content', reference: { file_id: 'f-img', content_type: 'image/png' } },
          { title: 'f-txt', url: '/api/v1/files/f-txt/content', reference: { file_id: 'f-txt', content_type: 'text/plain' } },
        ],
      },
    ];
    render(<ToolSteps steps={steps} />);
    expect(screen.getByText('Code interpreter')).toBeTruthy();
    expect(screen.getByTestId('code-input').textContent).toBe('print(6 * 7)');
    expect(screen.getByTestId('code-stdout').textContent).toBe('total 42\n');
    expect(screen.getByTestId('code-stderr').textContent).toBe('MemoryError\n');
    expect(screen.getByText('Exit code 1')).toBeTruthy();
    expect(screen.getByText('Memory is limited to 256 MiB per process.')).toBeTruthy();
    expect(screen.getByText('Not returned (over the limits): big.bin')).toBeTruthy();
    // The image is shown outside the step (one placeholder while it loads); the text file is a download.
    expect(screen.getAllByTestId('tool-file').map((f) => f.textContent)).toEqual(['summary.txt']);
    expect(screen.getByTestId('tool-steps').querySelectorAll('.animate-pulse.h-40').length).toBe(1);
  });

  it('parses only well-formed code results and programs', () => {
    expect(parseCodeResult('The sandbox failed')).toBeNull();
    expect(parseCodeResult(null)).toBeNull();
    expect(parseCodeResult('{"stdout": 1, "stderr": ""}')).toBeNull();
    const r = parseCodeResult('{"stdout": "a", "stderr": "", "exit_code": 0, "files": [{"name": "x"}, {"name": "y", "file_id": "f"}]}');
    expect(r?.files).toEqual([{ name: 'y', file_id: 'f' }]);
    expect(r?.timed_out).toBe(false);
    expect(codeOf('{"code": "1+1", "language": "javascript"}')).toEqual({ code: '1+1', language: 'javascript' });
    expect(codeOf('{"code": "1"}')?.language).toBe('python');
    expect(codeOf('nope')).toBeNull();
  });

  it('a call that waits for approval shows Approve and Deny, and posts the decision', async () => {
    const ids = { user: 'u1', assistant: 'a1' };
    let state = applyEvent([answer], ids, parseStreamEvent('tool_call', JSON.stringify({ id: 'call_1', name: 'get_weather', arguments: '{}', requires_approval: true }))!);
    state = applyEvent(state.messages, state.ids, parseStreamEvent('tool_approval', JSON.stringify({ id: 'call_1', name: 'get_weather', arguments: '{}', message_id: 'a1', timeout_secs: 300 }))!);
    expect(state.messages[0].tool_calls?.[0].approval).toEqual({ message_id: 'a1', timeout_secs: 300 });
    const posted: string[] = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      posted.push(`${init.method} ${url}`);
      return new Response(JSON.stringify({ approved: true }), { status: 202 });
    });
    render(<ToolSteps steps={state.messages[0].tool_calls!} />);
    expect(screen.getByTestId('tool-approval')).toBeTruthy();
    expect(screen.getByText('Waiting')).toBeTruthy();
    fireEvent.click(screen.getByTestId('tool-approve'));
    await waitFor(() => expect(posted).toEqual(['POST /api/v1/chat/messages/a1/tool-calls/call_1/approve']));
    expect((screen.getByTestId('tool-deny') as HTMLButtonElement).disabled).toBe(true);
    // Its result ends the wait: no prompt any more.
    state = applyEvent(state.messages, state.ids, parseStreamEvent('tool_result', JSON.stringify({ id: 'call_1', name: 'get_weather', content: 'sunny', is_error: false }))!);
    expect(state.messages[0].tool_calls?.[0].approval).toBeNull();
  });

  it('progress reports of a running call are shown in its step', () => {
    const ids = { user: 'u1', assistant: 'a1' };
    let state = applyEvent([answer], ids, parseStreamEvent('tool_call', JSON.stringify({ id: 'c', name: 'slow', arguments: '{}' }))!);
    state = applyEvent(state.messages, state.ids, parseStreamEvent('tool_progress', JSON.stringify({ id: 'c', name: 'slow', stage: 'progress', text: 'started', progress: 1, total: 2 }))!);
    state = applyEvent(state.messages, state.ids, parseStreamEvent('tool_progress', JSON.stringify({ id: 'c', name: 'slow', stage: 'output', text: 'line 2' }))!);
    expect(state.messages[0].tool_calls?.[0].progress).toEqual(['started (1/2)', 'line 2']);
    render(<ToolSteps steps={state.messages[0].tool_calls!} />);
    expect(screen.getByTestId('tool-progress').textContent).toBe('started (1/2)\nline 2');
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
});
