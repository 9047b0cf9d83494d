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

/** An upload session (a large file sent in parts). */
export type UploadSession = Schemas['UploadView'];

/** Where one part of an upload session is sent. */
export type PartTarget = Schemas['PartTarget'];

/** What a file's preview shows. */
export type FilePreview = Schemas['Preview'];
