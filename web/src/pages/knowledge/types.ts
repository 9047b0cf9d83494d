import type { components } from '../../lib/api-types';

type Schemas = components['schemas'];

/** A knowledge base as the server shows it. */
export type Base = Schemas['BaseView'];

/** A document of a base, with its status and progress. */
export type KnowledgeDocument = Schemas['DocumentView'];

/** A chunk, as the chunk viewer shows it. */
export type Chunk = Schemas['ChunkView'];

/** A search (hit test) and its answer. */
export type SearchResponse = Schemas['SearchResponse'];

/** One hit with each stage's ranks. */
export type Hit = Schemas['HitView'];
