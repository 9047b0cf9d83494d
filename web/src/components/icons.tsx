import type { ReactNode, SVGProps } from 'react';

/**
 * The app's one icon set: 24 × 24 outline icons drawn with the current text colour (the
 * Lucide style, paths written here so no icon package is loaded). Decorative by default
 * (`aria-hidden`): the button or link around an icon carries its name.
 */
export type IconProps = SVGProps<SVGSVGElement> & { size?: number };

function icon(paths: ReactNode, name: string) {
  function Icon({ size = 16, className, ...props }: IconProps) {
    return (
      <svg
        viewBox="0 0 24 24"
        width={size}
        height={size}
        fill="none"
        stroke="currentColor"
        strokeWidth={2}
        strokeLinecap="round"
        strokeLinejoin="round"
        aria-hidden
        focusable="false"
        className={className}
        data-icon={name}
        {...props}
      >
        {paths}
      </svg>
    );
  }
  Icon.displayName = `Icon(${name})`;
  return Icon;
}

/** Three lines: opens the navigation. */
export const MenuIcon = icon(<path d="M4 6h16M4 12h16M4 18h16" />, 'menu');
/** A cross: closes or removes. */
export const CloseIcon = icon(<path d="M18 6 6 18M6 6l12 12" />, 'close');
/** Chevrons. */
export const ChevronLeftIcon = icon(<path d="m15 18-6-6 6-6" />, 'chevron-left');
export const ChevronRightIcon = icon(<path d="m9 18 6-6-6-6" />, 'chevron-right');
export const ChevronDownIcon = icon(<path d="m6 9 6 6 6-6" />, 'chevron-down');
/** Arrows. */
export const ArrowLeftIcon = icon(<path d="M19 12H5M12 19l-7-7 7-7" />, 'arrow-left');
export const ArrowRightIcon = icon(<path d="M5 12h14M12 5l7 7-7 7" />, 'arrow-right');
export const ArrowDownIcon = icon(<path d="M12 5v14M19 12l-7 7-7-7" />, 'arrow-down');
/** Up and down arrows: import and export. */
export const ArrowUpDownIcon = icon(<path d="m21 16-4 4-4-4M17 20V4M3 8l4-4 4 4M7 4v16" />, 'arrow-up-down');
/** A gear: settings. */
export const SettingsIcon = icon(
  <>
    <path d="M12.22 2h-.44a2 2 0 0 0-2 2v.18a2 2 0 0 1-1 1.73l-.43.25a2 2 0 0 1-2 0l-.15-.08a2 2 0 0 0-2.73.73l-.22.38a2 2 0 0 0 .73 2.73l.15.1a2 2 0 0 1 1 1.72v.51a2 2 0 0 1-1 1.74l-.15.09a2 2 0 0 0-.73 2.73l.22.38a2 2 0 0 0 2.73.73l.15-.08a2 2 0 0 1 2 0l.43.25a2 2 0 0 1 1 1.73V20a2 2 0 0 0 2 2h.44a2 2 0 0 0 2-2v-.18a2 2 0 0 1 1-1.73l.43-.25a2 2 0 0 1 2 0l.15.08a2 2 0 0 0 2.73-.73l.22-.39a2 2 0 0 0-.73-2.73l-.15-.08a2 2 0 0 1-1-1.74v-.5a2 2 0 0 1 1-1.74l.15-.09a2 2 0 0 0 .73-2.73l-.22-.38a2 2 0 0 0-2.73-.73l-.15.08a2 2 0 0 1-2 0l-.43-.25a2 2 0 0 1-1-1.73V4a2 2 0 0 0-2-2z" />
    <circle cx="12" cy="12" r="3" />
  </>,
  'settings',
);
/** Three dots: more actions. */
export const MoreIcon = icon(
  <>
    <circle cx="12" cy="12" r="1" />
    <circle cx="19" cy="12" r="1" />
    <circle cx="5" cy="12" r="1" />
  </>,
  'more',
);
/** A filled square: stop. */
export const StopIcon = icon(<rect x="6" y="6" width="12" height="12" rx="1" fill="currentColor" />, 'stop');
/** A speech bubble: the conversations. */
export const ChatIcon = icon(<path d="M21 12a8 8 0 0 1-11.6 7.1L4 20l1-4.6A8 8 0 1 1 21 12z" />, 'chat');
/** Two sheets: copy. */
export const CopyIcon = icon(
  <>
    <rect x="9" y="9" width="13" height="13" rx="2" />
    <path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1" />
  </>,
  'copy',
);
/** A tick: done. */
export const CheckIcon = icon(<path d="M20 6 9 17l-5-5" />, 'check');
/** A pencil: edit. */
export const EditIcon = icon(<path d="M17 3a2.85 2.83 0 1 1 4 4L7.5 20.5 2 22l1.5-5.5Z" />, 'edit');
/** A circular arrow: regenerate. */
export const RefreshIcon = icon(
  <>
    <path d="M3 12a9 9 0 0 1 9-9 9.75 9.75 0 0 1 6.74 2.74L21 8" />
    <path d="M21 3v5h-5" />
    <path d="M21 12a9 9 0 0 1-9 9 9.75 9.75 0 0 1-6.74-2.74L3 16" />
    <path d="M8 16H3v5" />
  </>,
  'refresh',
);
/** A bin: delete. */
export const TrashIcon = icon(<path d="M3 6h18M19 6v14a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V6M8 6V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2" />, 'trash');
/** A play arrow into more text: continue. */
export const ContinueIcon = icon(<path d="M5 4l10 8-10 8V4zM19 5v14" />, 'continue');
/** A speaker: read aloud. */
export const SpeakerIcon = icon(
  <>
    <path d="M11 5 6 9H2v6h4l5 4V5z" />
    <path d="M15.54 8.46a5 5 0 0 1 0 7.07M19.07 4.93a10 10 0 0 1 0 14.14" />
  </>,
  'speaker',
);
/** Thumbs. */
export const ThumbUpIcon = icon(
  <path d="M7 10v12M15 5.88 14 10h5.83a2 2 0 0 1 1.92 2.56l-2.33 8A2 2 0 0 1 17.5 22H4a2 2 0 0 1-2-2v-8a2 2 0 0 1 2-2h2.76a2 2 0 0 0 1.79-1.11L12 2a3.13 3.13 0 0 1 3 3.88Z" />,
  'thumb-up',
);
export const ThumbDownIcon = icon(
  <path d="M17 14V2M9 18.12 10 14H4.17a2 2 0 0 1-1.92-2.56l2.33-8A2 2 0 0 1 6.5 2H20a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2h-2.76a2 2 0 0 0-1.79 1.11L12 22a3.13 3.13 0 0 1-3-3.88Z" />,
  'thumb-down',
);
/** A heart: like. */
export const HeartIcon = icon(
  <path d="M19 14c1.49-1.46 3-3.21 3-5.5A5.5 5.5 0 0 0 16.5 3c-1.76 0-3 .5-4.5 2-1.5-1.5-2.74-2-4.5-2A5.5 5.5 0 0 0 2 8.5c0 2.3 1.5 4.05 3 5.5l7 7Z" />,
  'heart',
);
/** A star: favourite. */
export const StarIcon = icon(<path d="m12 2 3.09 6.26L22 9.27l-5 4.87 1.18 6.88L12 17.77l-6.18 3.25L7 14.14 2 9.27l6.91-1.01L12 2z" />, 'star');
/** An eye and a crossed eye: show or hide a password. */
export const EyeIcon = icon(
  <>
    <path d="M2 12s3-7 10-7 10 7 10 7-3 7-10 7-10-7-10-7Z" />
    <circle cx="12" cy="12" r="3" />
  </>,
  'eye',
);
export const EyeOffIcon = icon(
  <>
    <path d="M9.88 9.88a3 3 0 1 0 4.24 4.24M10.73 5.08A10.43 10.43 0 0 1 12 5c7 0 10 7 10 7a13.16 13.16 0 0 1-1.67 2.68M6.61 6.61A13.53 13.53 0 0 0 2 12s3 7 10 7a9.74 9.74 0 0 0 5.39-1.61" />
    <path d="m2 2 20 20" />
  </>,
  'eye-off',
);
/** A keyboard: shortcuts. */
export const KeyboardIcon = icon(
  <>
    <rect x="2" y="4" width="20" height="16" rx="2" />
    <path d="M6 8h.01M10 8h.01M14 8h.01M18 8h.01M8 12h.01M12 12h.01M16 12h.01M7 16h10" />
  </>,
  'keyboard',
);
/** A link: share. */
export const ShareIcon = icon(
  <>
    <circle cx="18" cy="5" r="3" />
    <circle cx="6" cy="12" r="3" />
    <circle cx="18" cy="19" r="3" />
    <path d="m8.59 13.51 6.83 3.98M15.41 6.51l-6.82 3.98" />
  </>,
  'share',
);
/** A plus: new. */
export const PlusIcon = icon(<path d="M12 5v14M5 12h14" />, 'plus');
