// The model picker: search narrows the list, favourites come first and are remembered on the
// device, and each model shows its price, context window and what it can do.
import { afterEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, within } from '@testing-library/react';
import { MemoryRouter } from 'react-router-dom';
import { ModelPicker, capabilities, contextLabel, pickable, readFavourites } from './ModelPicker';
import type { ChatModel } from '../../lib/types';
import { setLang } from '../../lib/settings';

afterEach(() => setLang('en'));

const model = (id: string, context_window = 128_000): ChatModel => ({ id, context_window, input_price: 500_000, output_price: 1_500_000 });
const models = ['gpt-4o-mini', 'gpt-4o', 'o3-mini', 'deepseek-r1', 'claude-3-5-sonnet', 'qwen-max', 'glm-4-plus'].map((id) => model(id));

describe('model list helpers', () => {
  it('filters by name and puts favourites first', () => {
    expect(pickable(models, '4O', []).map((m) => m.id)).toEqual(['gpt-4o-mini', 'gpt-4o']);
    expect(pickable(models, '', ['qwen-max', 'o3-mini']).slice(0, 2).map((m) => m.id)).toEqual(['o3-mini', 'qwen-max']);
  });

  it('knows vision and reasoning models by name, and writes context windows short', () => {
    expect(capabilities('gpt-4o')).toEqual(['vision']);
    expect(capabilities('o3-mini')).toEqual(['reasoning']);
    expect(capabilities('deepseek-r1')).toEqual(['reasoning']);
    expect(capabilities('qwen-max')).toEqual([]);
    expect([contextLabel(128_000), contextLabel(1_000_000), contextLabel(512)]).toEqual(['128K', '1M', '512']);
  });
});

describe('model picker', () => {
  const open = () => {
    render(
      <MemoryRouter>
        <ModelPicker models={models} value="gpt-4o" onChange={() => undefined} />
      </MemoryRouter>,
    );
    fireEvent.keyDown(screen.getByTestId('model-picker'), { key: 'Enter' });
  };

  it('searches, shows badges, and stars the current model for next time', () => {
    open();
    const options = () => screen.getAllByTestId('model-option').map((o) => o.textContent ?? '');
    expect(options()).toHaveLength(7);
    const gpt4o = screen.getAllByTestId('model-option')[1];
    expect(within(gpt4o).getByText('128K context')).toBeTruthy();
    expect(within(gpt4o).getByText('Vision')).toBeTruthy();
    fireEvent.change(screen.getByRole('searchbox', { name: 'Search models' }), { target: { value: 'r1' } });
    expect(options()).toHaveLength(1);
    expect(options()[0]).toContain('deepseek-r1');
    expect(within(screen.getAllByTestId('model-option')[0]).getByText('Reasoning')).toBeTruthy();
    fireEvent.change(screen.getByRole('searchbox', { name: 'Search models' }), { target: { value: '' } });
    fireEvent.click(screen.getByRole('menuitemcheckbox', { name: 'Favourite gpt-4o' }));
    expect(readFavourites()).toEqual(['gpt-4o']);
    expect(options()[0]).toContain('gpt-4o');
  });

  it('reads in Chinese', () => {
    setLang('zh-CN');
    open();
    expect(screen.getByRole('searchbox', { name: '搜索模型' })).toBeTruthy();
    expect(screen.getAllByText('识图').length).toBeGreaterThan(0);
  });
});
