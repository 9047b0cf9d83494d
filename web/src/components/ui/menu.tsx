import * as React from 'react';
import * as M from '@radix-ui/react-dropdown-menu';

/** An item of a [`Menu`]. */
export interface MenuItem {
  label: string;
  onSelect: () => void;
  danger?: boolean;
}

/** A dropdown menu on Radix (keyboard navigable). */
export function Menu({ trigger, items, label }: { trigger: React.ReactNode; items: MenuItem[]; label: string }) {
  return (
    <M.Root>
      <M.Trigger asChild aria-label={label}>
        {trigger}
      </M.Trigger>
      <M.Portal>
        <M.Content align="end" sideOffset={4} className="z-50 min-w-[10rem] rounded-lg border border-border bg-card p-1 shadow-lg">
          {items.map((item) => (
            <M.Item
              key={item.label}
              onSelect={item.onSelect}
              className={
                'cursor-pointer select-none rounded px-2.5 py-1.5 text-sm outline-none data-[highlighted]:bg-muted ' +
                (item.danger ? 'text-danger' : '')
              }
            >
              {item.label}
            </M.Item>
          ))}
        </M.Content>
      </M.Portal>
    </M.Root>
  );
}
