/** The Agent service's shapes as the web app reads them (see the OpenAPI document). */

/** An assistant's content: the draft, and each published version. */
export interface AgentSpec {
  name: string;
  avatar: string;
  description: string;
  tags: string[];
  category: string | null;
  system_prompt: string;
  model: string | null;
  temperature: number | null;
  top_p: number | null;
  max_tokens: number | null;
  allow_model_override: boolean;
  opening_message: string;
  suggested_questions: string[];
  knowledge_base_ids: string[];
  plugin_ids: string[];
}

export type Visibility = 'private' | 'link' | 'public';

/** An assistant in a list. */
export interface AgentCard {
  id: string;
  name: string;
  avatar: string;
  /** A signed URL of an uploaded avatar (`avatar` is then `file:<id>`). */
  avatar_url?: string | null;
  description: string;
  tags: string[];
  category: string | null;
  visibility: Visibility;
  current_version: number | null;
  likes: number;
  favourites: number;
  conversations: number;
  featured: boolean;
  published_at: string | null;
  updated_at: string;
}

/** An assistant's page. */
export interface AgentDetail extends AgentCard {
  is_owner: boolean;
  published: AgentSpec | null;
  draft?: AgentSpec;
  liked: boolean;
  favourited: boolean;
  messages: number;
  listed: boolean;
}

export interface AgentVersion {
  agent_id: string;
  version: number;
  changelog: string;
  author_id: string;
  source_version: number | null;
  created_at: string;
  spec: AgentSpec;
}

export interface DiffLine {
  op: 'same' | 'added' | 'removed';
  text: string;
}

export interface Comparison {
  from: number;
  to: number;
  fields: Array<{ field: string; from: unknown; to: unknown }>;
  prompt: DiffLine[];
}

export interface Category {
  id: string;
  name_en: string;
  name_zh: string;
  sort: number;
}

/** A conversation's assistant. */
export interface ConversationAgent {
  conversation_id: string;
  agent_id: string;
  version: number;
  name: string;
  avatar: string;
  avatar_url?: string | null;
  /** A preview of the draft (version 0): answers use the draft as saved at each message. */
  preview?: boolean;
  /** Plugins the version binds: on in the conversation unless switched off. */
  plugin_ids?: string[];
  model: string | null;
  allow_model_override: boolean;
  opening_message: string;
  suggested_questions: string[];
  agent_deleted: boolean;
}

export interface MarkState {
  on: boolean;
  count: number;
}
