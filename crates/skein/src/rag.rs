//! Knowledge in chat: a [`ContextSource`] that searches the knowledge bases a conversation
//! attached (and those its assistant binds) for the question being answered and gives the model numbered passages to cite,
//! or tells it that the bases hold nothing relevant.
//!
//! It lives in the binary because it joins two services: Chat's seam and Knowledge's API,
//! neither of which may import the other. Knowledge may run in Chat's process or in another
//! (`services.knowledge_url`): the API is the same.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use skein_chat::sources::{Citation, Context, ContextSource, Stage};
use skein_chat::turn::Turn;
use skein_core::ApiResult;
use skein_core::api::{KnowledgeApi, KnowledgeCaller, KnowledgeQuery};

/// Passages searched for per answer.
const TOP_K: usize = 5;

/// What the model is told when the attached bases hold nothing relevant.
pub const NO_KNOWLEDGE: &str = "Knowledge bases are attached to this conversation, and none of them holds anything relevant to this question. Say plainly that there is no relevant knowledge in their knowledge bases; do not make up an answer from them.";

/// Retrieval from the conversation's knowledge bases.
pub struct KnowledgeRetrieval {
    knowledge: Arc<dyn KnowledgeApi>,
}

impl KnowledgeRetrieval {
    /// Retrieval through `knowledge`.
    pub fn new(knowledge: Arc<dyn KnowledgeApi>) -> Self {
        KnowledgeRetrieval { knowledge }
    }
}

#[async_trait]
impl ContextSource for KnowledgeRetrieval {
    fn name(&self) -> &str {
        "knowledge"
    }

    fn stage(&self) -> Stage {
        Stage::Retrieval
    }

    async fn contribute(&self, turn: &Turn, context: &mut Context) -> ApiResult<()> {
        let Some(question) = turn.question() else {
            return Ok(());
        };
        let mut base_ids = self
            .knowledge
            .conversation_bases(&turn.user_id, &turn.conversation.id)
            .await?;
        // An assistant's bases count only where the user may read them: binding a base to a
        // public assistant does not publish it.
        for id in &turn.settings.knowledge_base_ids {
            if !base_ids.contains(id) && self.knowledge.may_read(&turn.user_id, id).await? {
                base_ids.push(id.clone());
            }
        }
        if base_ids.is_empty() || question.content.trim().is_empty() {
            return Ok(());
        }
        let caller = KnowledgeCaller {
            user_id: turn.user_id.clone(),
            request_id: turn.request_id.clone(),
            conversation_id: Some(turn.conversation.id.clone()),
        };
        let query = KnowledgeQuery {
            base_ids,
            query: question.content.clone(),
            top_k: TOP_K,
        };
        let results = self.knowledge.search(caller, query).await?;
        if results.no_answer {
            context.add_section(self.name(), NO_KNOWLEDGE);
            return Ok(());
        }
        // Passages take at most a third of the window, so the history keeps room.
        let room = turn.budget.window / 3;
        let mut text = String::from(
            "Answer from these passages of the user's knowledge bases where they help, and cite each one you use by its number in brackets, like [1]. If they do not answer the question, say so.\n",
        );
        let mut used = skein_text::tokens::count_tokens(&text);
        for passage in results.passages {
            let label = (context.citations.len() + 1).to_string();
            let place = match passage.pages {
                Some((a, b)) if a == b => format!(", page {a}"),
                Some((a, b)) => format!(", pages {a}–{b}"),
                None => String::new(),
            };
            let entry = format!(
                "\n[{label}] {}{place}\n{}\n",
                passage.document_name, passage.text
            );
            let tokens = skein_text::tokens::count_tokens(&entry);
            if used + tokens > room && context.citations.iter().any(|c| c.source == self.name()) {
                break;
            }
            used += tokens;
            text.push_str(&entry);
            context.cite(Citation {
                source: self.name().to_string(),
                label,
                title: passage.document_name.clone(),
                url: None,
                excerpt: passage.text.clone(),
                reference: json!({
                    "base_id": passage.base_id,
                    "document_id": passage.document_id,
                    "chunk_id": passage.chunk_id,
                    "file_id": passage.file_id,
                    "pages": passage.pages.map(|(a, b)| [a, b]),
                    "headings": passage.headings,
                }),
            });
        }
        context.add_section(self.name(), text);
        Ok(())
    }
}
