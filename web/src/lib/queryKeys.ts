/**
 * Every React Query key the app uses, in one place, so a page that changes data can invalidate
 * what other pages show without knowing their spelling. Each entry's first element is its
 * family: `invalidateQueries({ queryKey: qk.conversations.all })` refreshes every list.
 * A new feature adds its own family here.
 */
export const qk = {
  // Chat
  conversations: {
    all: ['conversations'] as const,
    list: (filter: { q: string; archived: boolean }) => ['conversations', filter] as const,
  },
  conversation: (id: string | null | undefined) => ['conversation', id ?? null] as const,
  chatModels: ['chat-models'] as const,
  chatPreferences: ['chat-preferences'] as const,
  chatPrompts: ['chat-prompts'] as const,
  chatShares: (conversation: string) => ['chat-shares', conversation] as const,
  sharedConversation: (token: string) => ['shared-conversation', token] as const,

  // Account
  keys: {
    all: ['keys'] as const,
    page: (page: number) => ['keys', page] as const,
  },
  keyGroups: ['key-groups'] as const,
  quota: ['quota'] as const,
  daily: (from: string) => ['daily', from] as const,
  usage: (query: string) => ['usage', query] as const,
  ledger: {
    all: ['ledger'] as const,
    page: (page: number) => ['ledger', page] as const,
  },
  paymentOptions: ['payment-options'] as const,
  orders: {
    all: ['orders'] as const,
    page: (page: number) => ['orders', page] as const,
    one: (id: string) => ['orders', 'one', id] as const,
    paid: ['orders', 'paid'] as const,
  },

  // Files
  plugins: {
    all: ['plugins'] as const,
    list: ['plugins', 'list'] as const,
    admin: ['plugins', 'admin'] as const,
    settings: ['plugins', 'settings'] as const,
    conversation: (id: string) => ['plugins', 'conversation', id] as const,
  },
  files: {
    all: ['files'] as const,
    list: (query: string) => ['files', 'list', query] as const,
    usage: ['files', 'usage'] as const,
    uploads: ['files', 'uploads'] as const,
    shares: (id: string) => ['files', 'shares', id] as const,
    preview: (id: string) => ['files', 'preview', id] as const,
  },
  /** A file share link as anyone with its token sees it (`/share/:token`). */
  publicFileShare: (token: string) => ['share', token] as const,

  // Knowledge
  knowledge: {
    all: ['knowledge'] as const,
    bases: ['knowledge', 'bases'] as const,
    base: (id: string) => ['knowledge', 'base', id] as const,
    documents: (id: string) => ['knowledge', 'documents', id] as const,
    chunks: (base: string, doc: string) => ['knowledge', 'chunks', base, doc] as const,
    attached: (conversation: string) => ['knowledge', 'attached', conversation] as const,
  },

  // Agents
  agents: {
    all: ['agents'] as const,
    market: (query: string) => ['agents', 'market', query] as const,
    categories: ['agents', 'categories'] as const,
    one: (id: string) => ['agents', 'one', id] as const,
    mine: (page: number) => ['agents', 'mine', page] as const,
    favourites: (page: number) => ['agents', 'favourites', page] as const,
    versions: (id: string) => ['agents', 'versions', id] as const,
    compare: (id: string, from: number, to: number) => ['agents', 'compare', id, from, to] as const,
    conversation: (id: string | null) => ['agents', 'conversation', id] as const,
  },

  // System settings and invites
  publicSettings: ['settings', 'public'] as const,
  preferences: ['settings', 'preferences'] as const,
  adminSettings: ['settings', 'admin'] as const,
  adminPaymentSettings: ['settings', 'payments'] as const,
  adminSignIn: ['settings', 'sign-in'] as const,
  oauthProviders: ['admin', 'oauth-providers'] as const,
  invites: {
    all: ['invites'] as const,
    own: ['invites', 'own'] as const,
    invitees: ['invites', 'invitees'] as const,
    admin: (page: number) => ['invites', 'admin', page] as const,
  },

  // Admin
  adminUsers: {
    all: ['admin-users'] as const,
    page: (q: string, page: number) => ['admin-users', q, page] as const,
    names: ['admin-users', 'names'] as const,
  },
  adminQuota: (userId: string) => ['admin-quota', userId] as const,
  userGroups: (userId: string) => ['user-groups', userId] as const,
  adminDaily: (group: 'model' | 'user', from: string) => ['admin-daily', group, from] as const,
  channels: ['channels'] as const,
  pricing: ['pricing'] as const,
  unpriced: ['pricing', 'unpriced'] as const,
  defaultPrices: ['pricing', 'defaults'] as const,
  modelRoutes: ['pricing', 'routes'] as const,
  responseCache: ['pricing', 'cache'] as const,
  routing: ['channels', 'routing'] as const,
  channelsFile: ['channels', 'file'] as const,
  channelProbes: (id: string) => ['channels', 'probes', id] as const,
  codes: {
    all: ['codes'] as const,
    page: (batch: string, page: number) => ['codes', batch, page] as const,
  },
  adminOrders: (status: string, page: number) => ['orders', 'admin', status, page] as const,
  plans: {
    all: ['plans'] as const,
    offered: ['plans', 'offered'] as const,
    admin: ['plans', 'admin'] as const,
  },
  subscriptions: {
    all: ['subscriptions'] as const,
    mine: ['subscriptions', 'mine'] as const,
    change: (sub: string, plan: string) => ['subscriptions', 'change', sub, plan] as const,
  },
  refunds: {
    all: ['refunds'] as const,
    order: (id: string) => ['refunds', 'order', id] as const,
  },
  coupons: {
    all: ['coupons'] as const,
    page: (page: number) => ['coupons', page] as const,
  },
  statement: (month: string, offset: number) => ['statement', month, offset] as const,
  invoices: {
    all: ['invoices'] as const,
    page: (page: number) => ['invoices', page] as const,
    admin: (status: string, page: number) => ['invoices', 'admin', status, page] as const,
  },
  audit: (action: string, actor: string, page: number) => ['audit', action, actor, page] as const,
  // The request log and channel statistics
  requestLog: (filters: string, userId: string | null) => ['request-log', filters, userId] as const,
  requestDetail: (id: string) => ['request-log', 'one', id] as const,
  /** The user id a request-log filter's user text (a name or an address) stands for. */
  requestLogUser: (query: string) => ['request-log-user', query] as const,
  adminUser: (id: string) => ['admin-users', 'one', id] as const,
  channelStats: (days: number) => ['channel-stats', days] as const,
} as const;
