//! Starting an answer, once a request was checked and holds the conversation's answer slot:
//! the [`Turn`] is gathered, its context assembled by the sources, the new messages stored
//! (with what the answer draws on), and the answer's task started.

use std::sync::Arc;

use skein_core::api::PricedModel;
use skein_core::{ApiError, ApiResult, ids};
use tokio::sync::broadcast;

use crate::errors;
use crate::generate::{self, Event, Generation, Plan, Slot, ToolUse};
use crate::store::{self, ConversationRow, MessageRow, MessageStatus};
use crate::tools::Toolbox;
use crate::tree::Tree;
use crate::turn::{Budget, PathMessage, Settings, Turn};
use crate::{ChatService, context, sources};

/// An answer a request asked for.
pub(crate) struct NewAnswer {
    /// The conversation's answer slot, taken.
    pub slot: Slot,
    /// Id of the answer to write.
    pub assistant_id: String,
    /// Who asks.
    pub user_id: String,
    /// The request that asked.
    pub request_id: String,
    /// The conversation, read after the slot was taken.
    pub conversation: ConversationRow,
    /// Its messages.
    pub rows: Vec<MessageRow>,
    /// The message the new one follows (`None`: a new first message).
    pub parent: Option<String>,
    /// The user's new message; `None` answers `parent` again (regenerate, continue).
    pub question: Option<Question>,
    /// The finished answer to write more of (continue): then `assistant_id` is its id,
    /// `parent` its parent, and no message is added.
    pub continues: Option<MessageRow>,
    /// The model and settings ([`ChatService::settings`]).
    pub settings: (String, Settings),
}

/// A user's new message.
pub(crate) struct Question {
    /// Its text.
    pub content: String,
    /// Its images.
    pub images: Vec<String>,
}

/// An answer that started: what its first event says, and its events from here on.
pub(crate) struct Started {
    /// The message answered (the new one, or the one answered again).
    pub user_message_id: Option<String>,
    /// The answer being written.
    pub generation: Arc<Generation>,
    /// Everything the answer sends from its start.
    pub receiver: broadcast::Receiver<Event>,
}

impl ChatService {
    /// Gathers the turn, assembles its context, stores the new messages and starts writing
    /// the answer. A source that fails refuses the answer before anything is stored, and the
    /// conversation is free again before the refusal is answered.
    pub(crate) async fn start_answer(self: &Arc<Self>, answer: NewAnswer) -> ApiResult<Started> {
        let NewAnswer {
            slot,
            assistant_id,
            user_id,
            request_id,
            conversation: c,
            mut rows,
            parent,
            question,
            continues,
            settings: (model, settings),
        } = answer;
        // Whatever refuses the answer (a source, a tool runner, a store error) frees the
        // conversation before the error is answered, so the client's next message finds it
        // free (a dropped slot frees it too, but on a task of its own, later).
        let slot_ref = &slot;
        let prepared = async {
            let now = ids::now_ms();
            let user_row = question.as_ref().map(|q| MessageRow {
                id: ids::new_id(),
                conversation_id: c.id.clone(),
                user_id: user_id.clone(),
                parent_id: parent.clone(),
                role: "user".into(),
                content: q.content.clone(),
                reasoning: None,
                images: (!q.images.is_empty())
                    .then(|| serde_json::to_string(&q.images).unwrap_or_default()),
                status: MessageStatus::Done,
                model: None,
                error: None,
                prompt_tokens: None,
                completion_tokens: None,
                cost: None,
                sources: None,
                tool_calls: None,
                finish_reason: None,
                created_at: now,
                updated_at: now,
            });
            let answers = user_row.as_ref().map(|u| u.id.clone()).or(parent);
            if let Some(row) = user_row.clone() {
                rows.push(row);
            }
            let (path, first_answer) = {
                let tree = Tree::new(&rows);
                let path = answers
                    .as_deref()
                    .map(|leaf| tree.path_to(leaf))
                    .unwrap_or_default();
                let first_answer = !path.iter().any(|m| m.role == "assistant");
                let path: Vec<PathMessage> = path.into_iter().map(PathMessage::from).collect();
                (path, first_answer)
            };
            let title_from = (c.title.is_empty() && first_answer)
                .then(|| question.map(|q| q.content))
                .flatten();
            let mut budget = self.budget(&model, &settings);
            // The answer so far goes with the context, so its tokens come off the history's room.
            if let Some(answer) = &continues {
                budget.reserve += crate::context::count_tokens(&answer.content);
            }
            let turn = Turn {
                user_id,
                request_id,
                budget,
                conversation: c,
                model,
                settings,
                path,
            };
            let mut context = sources::assemble(&self.context_sources(), &turn).await?;
            crate::images::inline_for_upstream(self.files.as_ref(), &turn.user_id, &mut context)
                .await;
            let mut request = turn.request(&context);
            if let Some(answer) = &continues {
                // The model writes on from the end of its own text (an Anthropic prefill; the
                // OpenAI-format vendors continue a trailing assistant message the same way).
                if let Some(messages) = request["messages"].as_array_mut() {
                    messages
                        .push(serde_json::json!({"role": "assistant", "content": answer.content}));
                }
            }
            // Like a source, a runner that cannot say what it offers refuses the answer before
            // anything is stored. No runner (the default): the request is left as it was.
            let toolbox = Toolbox::for_turn(&self.tool_runners(), &turn).await?;
            toolbox.offer(&mut request);
            let tools = (!toolbox.is_empty()).then(|| ToolUse {
                toolbox,
                turn: turn.clone(),
            });
            let citations = if context.citations.is_empty() {
                None
            } else {
                Some(serde_json::to_string(&context.citations).map_err(ApiError::internal)?)
            };
            let assistant_row = MessageRow {
                id: assistant_id.clone(),
                conversation_id: turn.conversation.id.clone(),
                user_id: turn.user_id.clone(),
                parent_id: answers.clone(),
                role: "assistant".into(),
                content: String::new(),
                reasoning: None,
                images: None,
                status: MessageStatus::Streaming,
                model: Some(turn.model.clone()),
                error: None,
                prompt_tokens: None,
                completion_tokens: None,
                cost: None,
                sources: citations,
                tool_calls: None,
                finish_reason: None,
                created_at: now,
                updated_at: now,
            };
            let saved = async {
                let mut tx = self.db.begin_write().await?;
                if let Some(row) = &user_row {
                    store::insert_message(&mut *tx, row).await?;
                }
                let written = match &continues {
                    Some(_) => store::reopen_answer(&mut *tx, &assistant_id, now).await?,
                    None => {
                        store::insert_message(&mut *tx, &assistant_row).await?;
                        true
                    }
                };
                if written {
                    store::set_active_leaf(&mut *tx, &turn.conversation.id, &assistant_id, now)
                        .await?;
                    tx.commit().await?;
                }
                Ok::<_, skein_db::DbError>(written)
            }
            .await;
            // A failure frees the conversation below, before the error is answered.
            if !saved? {
                return Err(errors::not_finished());
            }
            let generation = slot_ref.generation().clone();
            let earlier = continues.map(|answer| {
                generation.seed(
                    &answer.content,
                    answer.reasoning.as_deref().unwrap_or_default(),
                );
                generate::Earlier {
                    usage: answer
                        .prompt_tokens
                        .zip(answer.completion_tokens)
                        .zip(answer.cost)
                        .map(|((p, c), cost)| (p, c, cost)),
                    tools: answer
                        .tool_calls
                        .as_deref()
                        .and_then(|t| serde_json::from_str(t).ok())
                        .unwrap_or_default(),
                }
            });
            let receiver = generation.attach().receiver;
            let plan = Plan {
                user_id: turn.user_id,
                request_id: turn.request_id,
                request,
                title_from,
                summarize: context.summarize.take(),
                trimmed: context.trimmed_turns,
                tools,
                earlier,
            };
            let started = Started {
                user_message_id: answers,
                generation,
                receiver,
            };
            Ok::<_, ApiError>((plan, started))
        }
        .await;
        match prepared {
            Ok((plan, started)) => {
                self.tasks.spawn(generate::run(slot, plan));
                Ok(started)
            }
            Err(error) => {
                slot.release().await;
                Err(error)
            }
        }
    }
}

impl ChatService {
    /// The model and settings of the next answer in `conversation`: the conversation's
    /// settings with the model `asked` for, adjusted by the context sources, with a model
    /// that is priced and routed for the user (422 `model_not_available` otherwise).
    pub(crate) async fn settings(
        &self,
        conversation: &ConversationRow,
        asked: Option<&str>,
    ) -> ApiResult<(String, Settings)> {
        let mut settings = Settings::of(conversation, asked);
        sources::configure(&self.context_sources(), conversation, &mut settings).await?;
        let model = self
            .choose_model(&conversation.user_id, settings.model.as_deref())
            .await?;
        Ok((model, settings))
    }

    /// The model an answer uses: `wanted`, else the configured default, else the first the
    /// caller may use. It must be priced and routed in the user's group.
    async fn choose_model(&self, user_id: &str, wanted: Option<&str>) -> ApiResult<String> {
        let available: Vec<PricedModel> = self
            .relay
            .priced_models(user_id, None)
            .await?
            .into_iter()
            .filter(crate::is_chat_model)
            .collect();
        let default_model = self.default_model();
        let wanted = wanted.or(default_model.as_deref());
        let chosen = match wanted {
            Some(name) => available
                .into_iter()
                .find(|m| m.id == name)
                .ok_or_else(|| errors::model_not_available(name))?,
            None => available
                .into_iter()
                .next()
                .ok_or_else(errors::no_model_available)?,
        };
        Ok(chosen.id)
    }

    /// The room `model`'s window leaves for the prompt of an answer with `settings`: the
    /// window less the answer's `max_tokens`, else less `chat.output_reserve`.
    pub(crate) fn budget(&self, model: &str, settings: &Settings) -> Budget {
        Budget {
            window: context::window(&self.config, model) as usize,
            reserve: settings
                .max_tokens
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(self.config.output_reserve as usize),
        }
    }
}
