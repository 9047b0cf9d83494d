/** The signed-in user's profile (`GET /api/v1/user/profile`). */
export interface Profile {
  id: string;
  username: string | null;
  email: string | null;
  display_name: string;
  avatar_url: string | null;
  language: string;
  theme: string;
  role: 'user' | 'admin' | 'root';
  status: string;
  invited_by: string | null;
  created_at: string;
  last_login_at: string | null;
}

/** A sign-in, registration or refresh answer. */
export interface TokenResponse {
  access_token: string;
  /** Absent for the web app: its refresh token is only in the HttpOnly cookie. */
  refresh_token?: string;
  token_type: string;
  expires_in: number;
  user?: Profile;
}

/** A page of a list. */
export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  per_page: number;
}

/** A relay API key. `key` is present only in the answer that created it. */
export interface ApiKey {
  id: string;
  key?: string;
  name: string;
  key_hint: string;
  status: string;
  expires_at: string | null;
  quota_limit: number | null;
  allowed_models: string[] | null;
  allowed_ips: string[] | null;
  group: string;
  rpm_limit: number | null;
  tpm_limit: number | null;
  last_used_at: string | null;
  created_at: string;
}

/** A price group the signed-in user may put keys in. */
export interface AllowedGroup {
  group: string;
  multiplier_permille: number;
}

/** A user's granted price groups, as an admin sees them. */
export interface UserGroups {
  user_id: string;
  groups: string[];
  is_default: boolean;
  available: string[];
}

/** An upstream channel. */
export interface Channel {
  id: string;
  type: string;
  name: string;
  base_url: string;
  key_count: number;
  models: string[];
  model_mapping: Record<string, string>;
  groups: string[];
  priority: number;
  weight: number;
  timeout_secs: number;
  header_names: string[];
  status: string;
  status_reason: string | null;
  circuit: string;
  last_test_at: string | null;
  last_test_latency_ms: number | null;
  last_test_result: string | null;
  created_at: string;
  updated_at: string;
}

/** A model's prices (quota units per million tokens, and per call). */
export interface ModelPrice {
  model: string;
  input_per_mtok: number;
  output_per_mtok: number;
  cache_read_per_mtok: number;
  cache_write_per_mtok: number;
  per_call: number;
  updated_at: string;
}

/** A balance. */
export interface Quota {
  balance: number;
  reserved: number;
  available: number;
  used: number;
  quota_per_usd: number;
  balance_usd: number;
  balance_cny: number;
}

/** A ledger entry. */
export interface LedgerEntry {
  id: string;
  /** Position in the user's ledger, in the order the balance moved (1, 2, 3, ...). */
  seq: number;
  kind: string;
  amount: number;
  balance_after: number;
  reference: string | null;
  actor_id: string | null;
  memo: string | null;
  created_at: string;
}

/** One billed request. */
export interface UsageRecord {
  id: string;
  user_id: string;
  key_id: string | null;
  model: string;
  channel_id: string | null;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  cost: number;
  /** How far the cost went beyond the request's hold. */
  overrun: number;
  /** What the overdraft limit kept from being charged. */
  uncollected: number;
  duration_ms: number;
  ttft_ms: number | null;
  stream: number;
  status: string;
  request_id: string;
  conversation_id: string | null;
  created_at: string;
}

/** Daily totals for a model or a user. */
export interface DailyUsage {
  day: string;
  key: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost: number;
  /** Requests whose cost went beyond their hold (the estimate was short). */
  overrun_requests: number;
  /** Sum of how far those costs went beyond their holds. */
  overrun: number;
  /** Sum of what the overdraft limit kept from being charged. */
  uncollected: number;
}

/** A redemption code. */
export interface RedemptionCode {
  id: string;
  code: string;
  batch_name: string;
  amount: number;
  status: string;
  expires_at: string | null;
  redeemed_by: string | null;
  redeemed_at: string | null;
  created_at?: string;
}

/** A chat conversation. */
export interface Conversation {
  id: string;
  title: string;
  pinned: boolean;
  archived: boolean;
  deleted_at: string | null;
  model: string | null;
  system_prompt: string | null;
  temperature: number | null;
  top_p: number | null;
  max_tokens: number | null;
  history_limit: number | null;
  active_leaf_id: string | null;
  created_at: string;
  updated_at: string;
}

/** Token counts and cost of an answer. */
export interface MessageUsage {
  prompt_tokens: number;
  completion_tokens: number;
  cost: number;
}

/** A chat message on the active path. */
export interface ChatMessage {
  id: string;
  parent_id: string | null;
  role: 'user' | 'assistant' | 'system';
  content: string;
  reasoning: string | null;
  status: 'done' | 'streaming' | 'stopped' | 'failed';
  model: string | null;
  error: { code: string; message: string; message_zh?: string; request_id?: string } | string | null;
  images: string[];
  sibling_ids: string[];
  sibling_index: number;
  sibling_count: number;
  usage: MessageUsage | null;
  created_at: string;
}

/** The active path of a conversation. */
export interface History {
  conversation_id: string;
  active_leaf_id: string | null;
  messages: ChatMessage[];
}

/** A model the user may chat with. */
export interface ChatModel {
  id: string;
  context_window: number | null;
  input_price: number | null;
  output_price: number | null;
}

/** One administrator's action in the audit log. */
export interface AuditRecord {
  id: string;
  created_at: string;
  actor_id: string;
  actor_role: string;
  action: string;
  target: string;
  detail: string | null;
  /** What the target was before the change (JSON), when the service could say. */
  before?: string | null;
  status: number;
  request_id: string;
  ip: string;
}
