// The shapes the app reads and sends. Where the server's OpenAPI document describes one, the
// type comes from the generated `api-types.ts` (regenerate with `npm run api-types`), narrowed
// only where the document is looser than the server (a role is one of three strings). The Chat
// API's routes are in the document, but most of its answers are described there only as JSON
// objects (no schema for a conversation, a message or a stream event), so those shapes are
// written here (docs/CHAT-API.md describes them).
import type { components } from './api-types';

type Schemas = components['schemas'];

/** A user's role, highest last. */
export type Role = 'user' | 'admin' | 'root';

/** The signed-in user's profile (`GET /api/v1/user/profile`), or any user's as an admin sees it. */
export type Profile = Schemas['Profile'] & { role: Role };

/** A sign-in, registration or refresh answer; the web app's refresh token stays in its HttpOnly cookie. */
export type TokenResponse = Omit<Schemas['TokenResponse'], 'user'> & { user?: Profile | null };

/** A relay API key. `key` is present only in the answer that created it. */
export type ApiKey = Schemas['ApiKey'];

/** A price group the signed-in user may put keys in. */
export type AllowedGroup = Schemas['AllowedGroup'];

/** A user's granted price groups, as an admin sees them. */
export type UserGroups = Schemas['UserGroups'];

/** An upstream channel. */
export type Channel = Schemas['Channel'];

/** A key group's routing strategy and exploration share. */
export type GroupRouting = Schemas['GroupRouting'];

/** A group's response-cache settings. */
export type GroupCache = Schemas['GroupCache'];

/** Every group's response-cache settings and the answers this instance keeps. */
export type CacheView = Schemas['CacheView'];

/** A model's prices (quota units per million tokens, and per call). */
export type ModelPrice = Schemas['ModelPrice'];

/** A built-in price of a well-known model, with where and when it was read. */
export type DefaultPrice = Schemas['DefaultPrice'];

/** A model some channel serves that has no price yet. */
export type UnpricedModel = Schemas['UnpricedModel'];

/** What loading the default prices did. */
export type DefaultsLoaded = Schemas['DefaultsLoaded'];
export type ModelRoute = Schemas['ModelRoute'];
export type ChannelsFileStatus = Schemas['FileStatus'];
export type ChannelProbes = Schemas['ChannelProbes'];

/** A balance. */
export type Quota = Schemas['QuotaView'];

/** A ledger entry. */
export type LedgerEntry = Schemas['LedgerEntry'];

/** One billed request. */
export type UsageRecord = Schemas['UsageRecord'];

/** Daily totals for a model or a user. */
export type DailyUsage = Schemas['DailyUsage'];

/** A redemption code. */
export type RedemptionCode = Schemas['RedemptionCode'];

/** A model the user may chat with, and its prices. */
export type ChatModel = Schemas['ChatModel'];

/** One administrator's action in the audit log. */
export type AuditRecord = Schemas['AuditRecord'];

/** What the web app reads before sign-in: registration mode, banner, currency. */
export type PublicSettings = Schemas['PublicSettings'];

/** The system settings as an admin sees them: in effect, the file's, and which were changed. */
export type AdminSettings = Schemas['AdminSettings'];

/** System settings (registration, grants, models, banner, currency). */
export type SystemSettings = Schemas['SystemSettings'];

/** The signed-in user's display choices. */
export type Preferences = Schemas['DisplayPreferences'];

/** An invite code (the user's own, or any as an admin sees it). */
export type InviteCode = Schemas['InviteCode'];

/** Someone the signed-in user invited. */
export type Invitee = Schemas['Invitee'];

/** One signed-in device, as `GET /user/sessions` lists it. */
export type SessionView = Schemas['SessionView'];

/** A passkey as `GET /user/passkeys` lists it; the server writes only these two algorithms. */
export type PasskeyView = Schemas['PasskeyView'] & { algorithm: 'ES256' | 'RS256' };

/** Which sign-in methods plain users have (`GET /admin/sign-in`). */
/** A chat share link as its owner sees it. */
export type ChatShareView = Schemas['ChatShareView'];

export type SignInMethods = Schemas['SignInMethods'];

/** A sign-in provider as an admin sees it (never its secret); `source` is one of two strings. */
export type AdminProvider = Schemas['AdminProviderView'] & { source: 'config' | 'admin' };

/** A provider account linked to the signed-in user. */
export type LinkedIdentity = Schemas['IdentityView'];

/** An enabled sign-in provider, as the sign-in page offers it. */
export type OAuthProvider = Schemas['PublicProvider'];

/** A page of a list. */
export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  per_page: number;
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
  /** In search results: where the message text matched (null when only the title did). */
  snippet?: string | null;
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
  /** Why the model stopped (`length`: cut at its limit, so it can be continued); absent or null when unknown. */
  finish_reason?: string | null;
  model: string | null;
  error: { code: string; message: string; message_zh?: string; request_id?: string } | string | null;
  images: string[];
  /** `images` as the browser loads them (stored images as signed URLs); absent on messages made locally. */
  image_urls?: string[];
  sibling_ids: string[];
  sibling_index: number;
  sibling_count: number;
  usage: MessageUsage | null;
  /** What the answer drew on (knowledge-base passages), when anything. */
  sources?: Citation[];
  created_at: string;
  /** The tools the model called while writing it, with their results (absent when none). */
  tool_calls?: ToolStep[] | null;
  /** The reader's thumbs up or down on an answer (absent when none). */
  feedback?: 'up' | 'down';
}

/** A source a tool's result draws on; a file a tool made has `reference.file_id`. */
export interface ToolCitation {
  source?: string;
  label?: string;
  title: string;
  url?: string | null;
  excerpt?: string;
  reference?: { file_id?: string; content_type?: string } | null;
}

/** One tool call of an answer: its arguments, and its result once it came (`result` null while it runs). */
export interface ToolStep {
  id: string;
  name: string;
  arguments: string;
  result: string | null;
  is_error: boolean;
  citations?: ToolCitation[];
  /** Set while the call waits for the user's approval: the answer's message id, to approve it with. */
  approval?: { message_id: string; timeout_secs: number } | null;
  /** What the running call reported so far (output lines, stages), newest last. */
  progress?: string[];
}

/** A passage an answer cites: `[label]` in its text. */
export interface Citation {
  source: string;
  label: string;
  title: string;
  url?: string;
  excerpt: string;
  reference?: { file_id?: string; pages?: [number, number] | null; base_id?: string; document_id?: string; chunk_id?: string };
}

/** The active path of a conversation. */
export interface History {
  conversation_id: string;
  active_leaf_id: string | null;
  messages: ChatMessage[];
}


/** A top-up order. */
export type PaymentOrder = Schemas['OrderView'];

/** What a user may pay, and through whom. */
export type PaymentOptions = Schemas['PaymentOptions'];

/** A new order and the provider's page to pay it on. */
export type CreatedOrder = Schemas['CreatedOrder'];

/** A refund of a paid order. */
export type Refund = Schemas['RefundView'];

/** A subscription plan. */
export type Plan = Schemas['PlanView'];

/** A user's subscription to a plan. */
export type Subscription = Schemas['SubscriptionView'];

/** What moving a subscription to another plan would do (an upgrade's prorated price). */
export type ChangePreview = Schemas['ChangePreview'];

/** What moving a subscription to another plan did. */
export type ChangeResult = Schemas['ChangeResult'];

/** A coupon, as admins see it. */
export type Coupon = Schemas['CouponView'];

/** What a coupon takes off an amount. */
export type CouponQuote = Schemas['CouponQuote'];

/** A monthly statement. */
export type Statement = Schemas['Statement'];

/** An invoice request and its review. */
export type Invoice = Schemas['InvoiceView'];

/** A plugin in the market, with the signed-in user's choices (secrets only as names). */
export type Plugin = Schemas['PluginView'];

/** A tool offered to models, with its JSON Schema. */
export type ToolDescriptor = Schemas['ToolDescriptor'];

/** The built-ins' setup, as an admin sees it (keys only as "set"). */
export type PluginSettings = Schemas['SettingsView'];

/** Where a payment setting in effect comes from. */
export type SettingSource = Schemas['SettingSource'];

/** One set of payment settings; a provider's secrets only as "set or not". */
export type PaymentValues = Schemas['PaymentValues'];

/** The payment settings as an admin sees them (Admin → Payments): in effect, the file's, and where each is from. */
export type PaymentSettings = Schemas['PaymentSettings'];
