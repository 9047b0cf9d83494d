import type { components } from '../../lib/api-types';

type Schemas = components['schemas'];

/** What a file is for. */
export type FilePurpose = 'chat' | 'knowledge' | 'avatar' | 'agent' | 'plugin';

/** A file as the server lists it. */
export type FileItem = Schemas['FileView'];

/** Storage use against the quota. */
export type FileUsage = Schemas['FileUsage'];

/** A share link as its owner sees it. */
export type Share = Schemas['ShareView'];

/** A share link as anyone with it sees it. */
export type PublicShare = Schemas['PublicShare'];
