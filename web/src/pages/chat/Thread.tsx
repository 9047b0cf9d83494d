import { useCallback, useRef, useState } from 'react';
import { useNavigate } from 'react-router-dom';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError, download } from '../../lib/api';
import { leafId } from '../../lib/branch';
import { qk } from '../../lib/queryKeys';
import { createStore, storage, useStore, type Store } from '../../lib/store';
import { langStore } from '../../lib/settings';
import { useSubTitle } from '../../lib/title';
import type { ChatMessage, ChatModel, Conversation } from '../../lib/types';
import { ChatEmpty } from './ChatEmpty';
import { ConversationSettings } from './ConversationSettings';
import { ShareDialog } from './ShareDialog';
import { ShortcutHelp, useChatShortcuts, type ShortcutAction } from './shortcuts';
import { fontClass, useChatPreferences } from './preferences';
import { Composer, type ComposerProps } from './Composer';
import { MessageItem } from './MessageItem';
import { MessageList, type MessageListHandle } from './MessageList';
import { ThreadHeader, type ExportFormat } from './ThreadHeader';
import { ToolToggles } from './ToolToggles';
import { AgentStrip, useConversationAgent } from './AgentStrip';
import { useChatStream } from './useChatStream';
import type { ComposerError } from './Media';

const MODEL_KEY = 'skein.model';
const draftKey = (id: string | null) => `skein.draft.${id ?? 'new'}`;

/** One conversation: header, messages (streaming answers, versions, edits) and the composer. */
export function Thread({ conversationId, models, onOpenList }: { conversationId: string | null; models: ChatModel[]; onOpenList: () => void }) {
  const lang = useStore(langStore);
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  // The draft lives in a store the composer alone subscribes to: a keystroke re-renders the
  // composer, not the thread and every message in it.
  const [draft] = useState(() => createStore(storage.get(draftKey(conversationId)) ?? ''));
  const [images, setImages] = useState<string[]>([]);
  const [composerError, setComposerError] = useState<ComposerError | null>(null);
  const [editing, setEditing] = useState<{ id: string; text: string } | null>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const [shareOpen, setShareOpen] = useState(false);
  const [pickedModel, setPickedModel] = useState<string>(() => storage.get(MODEL_KEY) ?? '');
  const list = useRef<MessageListHandle>(null);
  const prefs = useChatPreferences();

  const chat = useChatStream(conversationId, {
    onCreated: (id) => navigate(`/chat/${id}`),
    onSwitched: (id) => {
      setEditing(null);
      setImages([]);
      setComposerError(null);
      draft.set(storage.get(draftKey(id)) ?? '');
    },
    onSending: (id, created) => {
      storage.set(draftKey(created ? null : id), null);
      draft.set('');
      setImages([]);
      setComposerError(null);
      list.current?.stickToBottom();
    },
    onSendFailed: (content, back) => {
      draft.set((d) => d || content);
      if (back.length) setImages((now) => (now.length ? now : back));
    },
  });
  const { messages, streaming } = chat;
  const activeId = chat.activeId();
  const [helpOpen, setHelpOpen] = useState(false);

  // Keyboard shortcuts (see shortcuts.tsx): new chat, focus the composer, search, stop, help.
  const stopAnswer = chat.stop;
  const onShortcut = useCallback(
    (action: ShortcutAction) => {
      const focus = (name: string) => {
        const el = [...document.querySelectorAll<HTMLElement>(`[data-shortcut="${name}"]`)].find((e) => e.offsetParent !== null || e.getClientRects().length > 0);
        el?.focus();
        return !!el;
      };
      if (action === 'newChat') {
        navigate('/chat');
        setTimeout(() => focus('composer'), 50);
      } else if (action === 'focusComposer') focus('composer');
      else if (action === 'stop') stopAnswer();
      else if (action === 'help') setHelpOpen(true);
      else if (action === 'search' && !focus('search')) {
        // On a phone the list is in a drawer: open it, then focus its search.
        onOpenList();
        setTimeout(() => focus('search'), 100);
      }
    },
    [navigate, onOpenList, stopAnswer],
  );
  useChatShortcuts(streaming, onShortcut);

  const conversation = useQuery({
    queryKey: qk.conversation(conversationId),
    queryFn: () => api<Conversation>(`chat/conversations/${conversationId}`),
    enabled: conversationId !== null,
  });
  // The tab says which conversation is open (`Trip to Hangzhou · Chat · Skein`).
  useSubTitle(conversationId ? conversation.data?.title || null : null);
  const agent = useConversationAgent(conversationId).data ?? null;
  // An assistant's model leads unless the conversation picked its own (the server decides
  // whether the assistant lets another one be used).
  // An assistant's model leads, then the one picked on this device, then the user's default
  // (their chat preference), then the first served.
  const preferred = prefs.default_model && models.some((m) => m.id === prefs.default_model) ? prefs.default_model : '';
  const model = conversation.data?.model || agent?.model || pickedModel || preferred || models[0]?.id || '';
  // Deleted for good, or never there: nothing to set, export or send to.
  const missing = conversation.error instanceof ApiError && conversation.error.status === 404;

  const saveDraft = (text: string) => {
    draft.set(text);
    storage.set(draftKey(chat.activeId()), text || null);
  };

  const changeModel = async (value: string) => {
    setPickedModel(value);
    storage.set(MODEL_KEY, value);
    const id = chat.activeId();
    if (id) {
      await api(`chat/conversations/${id}`, { method: 'PATCH', body: { model: value } }).catch(chat.setError);
      queryClient.invalidateQueries({ queryKey: qk.conversation(id) });
    }
  };

  const exportAs = (format: ExportFormat) => {
    const id = chat.activeId();
    if (!id) return;
    const ext = format === 'markdown' ? 'md' : format;
    const name = (conversation.data?.title || 'conversation').replace(/[\\/:*?"<>|]+/g, '_');
    download(`chat/conversations/${id}/export?format=${format}`, `${name}.${ext}`).catch(chat.setError);
  };

  const renderMessage = (m: ChatMessage) => (
    <MessageItem
      message={m}
      lang={lang}
      streaming={streaming}
      editText={editing?.id === m.id ? editing.text : null}
      canEdit={!editing && !streaming}
      onEditStart={() => setEditing({ id: m.id, text: m.content })}
      onEditChange={(text) => setEditing({ id: m.id, text })}
      onEditCancel={() => setEditing(null)}
      onEditSubmit={(text) => {
        setEditing(null);
        chat.send({ content: text, parentId: m.parent_id, explicitParent: true, images: m.images, model });
      }}
      onRegenerate={() => chat.regenerate(m)}
      onContinue={m.id === chat.messages[chat.messages.length - 1]?.id ? () => chat.continueAnswer(m) : undefined}
      onSwitch={chat.switchTo}
      onDelete={() => chat.removeBranch(m)}
      onRate={(rating) => chat.rate(m, rating)}
    />
  );

  return (
    <div className="flex h-full min-h-0 flex-col">
      <ThreadHeader
        title={conversation.data?.title ?? ''}
        models={models}
        model={model}
        onModelChange={changeModel}
        onOpenList={onOpenList}
        canManage={activeId !== null && !missing}
        onSettings={() => setSettingsOpen(true)}
        onExport={exportAs}
        onShare={() => setShareOpen(true)}
        onHelp={() => setHelpOpen(true)}
      />
      {agent && <AgentStrip agent={agent} empty={messages.length === 0} onQuestion={saveDraft} />}
      <MessageList
        ref={list}
        messages={messages}
        error={chat.error}
        renderMessage={renderMessage}
        className={fontClass(prefs.font_size)}
        empty={
          <ChatEmpty
            hasModels={models.length > 0}
            onSuggest={(text) => {
              saveDraft(text);
              requestAnimationFrame(() => document.querySelector<HTMLTextAreaElement>('[data-shortcut="composer"]')?.focus());
            }}
          />
        }
      />
      <DraftComposer
        draft={draft}
        onDraftChange={saveDraft}
        images={images}
        onImagesChange={setImages}
        error={composerError}
        onError={setComposerError}
        model={model}
        streaming={streaming}
        disabled={missing}
        onSend={() => chat.send({ content: draft.get(), parentId: leafId(messages), explicitParent: false, images, model })}
        onStop={chat.stop}
        sendKey={prefs.send_key}
        tools={conversationId ? <ToolToggles conversationId={conversationId} disabled={missing} bound={agent?.plugin_ids} /> : undefined}
      />
      <ShortcutHelp open={helpOpen} onOpenChange={setHelpOpen} />
      {conversation.data && <ShareDialog open={shareOpen} onOpenChange={setShareOpen} conversationId={conversation.data.id} />}
      {conversation.data && (
        <ConversationSettings
          open={settingsOpen}
          onOpenChange={setSettingsOpen}
          conversation={conversation.data}
          onSaved={() => queryClient.invalidateQueries({ queryKey: qk.conversation(conversation.data?.id) })}
        />
      )}
    </div>
  );
}

/** The composer bound to the thread's draft store, so that typing re-renders only it. */
function DraftComposer({ draft, ...props }: Omit<ComposerProps, 'draft'> & { draft: Store<string> }) {
  return <Composer draft={useStore(draft)} {...props} />;
}
