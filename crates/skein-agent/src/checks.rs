//! What publishing checks beyond the spec's own limits: that the owner may use what the
//! version binds (each knowledge base readable, each plugin usable, the model served to
//! them), so a published assistant never advertises something its author could not use.
//! Each check runs only when its service is reachable from this process; at use, Chat,
//! Knowledge and Plugin check every binding again against the chatting user.

use skein_core::{ApiError, ApiResult};

use crate::Peers;
use crate::spec::{AVATAR_FILE, AgentSpec};

impl Peers {
    /// Refuses (422, naming the field and the id) an avatar file that is not the owner's
    /// image, a binding `owner` may not use, or (with `model`) a model that is not served
    /// to them.
    pub(crate) async fn check_publish(
        &self,
        owner: &str,
        spec: &AgentSpec,
        model: bool,
    ) -> ApiResult<()> {
        self.check_avatar(owner, spec).await?;
        if let Some(knowledge) = &self.knowledge {
            for id in &spec.knowledge_base_ids {
                if !knowledge.may_read(owner, id).await? {
                    return Err(ApiError::invalid_field(
                        "knowledge_base_ids",
                        format!("There is no knowledge base {id} you may read."),
                        format!("没有你可读取的知识库 {id}。"),
                    ));
                }
            }
        }
        if let Some(plugins) = &self.plugins {
            for id in &spec.plugin_ids {
                if !plugins.may_use(owner, id).await? {
                    return Err(ApiError::invalid_field(
                        "plugin_ids",
                        format!("There is no plugin {id} you may use."),
                        format!("没有你可使用的插件 {id}。"),
                    ));
                }
            }
        }
        if let (true, Some(relay), Some(model)) = (model, &self.relay, &spec.model) {
            let served = relay.priced_models(owner, None).await?;
            if !served.iter().any(|m| &m.id == model) {
                return Err(ApiError::invalid_field(
                    "model",
                    format!("The model {model} is not available to you."),
                    format!("模型 {model} 对你不可用。"),
                ));
            }
        }
        Ok(())
    }
}

impl Peers {
    /// Refuses an avatar `file:<id>` that is not one of `owner`'s images (or any file avatar
    /// when no File service is reachable).
    pub(crate) async fn check_avatar(&self, owner: &str, spec: &AgentSpec) -> ApiResult<()> {
        let Some(id) = spec.avatar.strip_prefix(AVATAR_FILE) else {
            return Ok(());
        };
        let refuse = || {
            ApiError::invalid_field(
                "avatar",
                "The avatar is not an image you uploaded.",
                "头像不是你上传的图片。",
            )
        };
        let Some(files) = &self.files else {
            return Err(refuse());
        };
        match files.authorise(owner, id).await {
            Ok(meta) if meta.content_type.starts_with("image/") => Ok(()),
            Ok(_) => Err(refuse()),
            Err(e) if e.status() == axum::http::StatusCode::NOT_FOUND => Err(refuse()),
            Err(e) => Err(e),
        }
    }

    /// Where a browser loads `avatar`: a signed URL of its file (an avatar is shown wherever
    /// its card is, so whoever sees the card may load it), or none for an emoji or a URL.
    pub(crate) fn avatar_url(&self, avatar: &str) -> Option<String> {
        let id = avatar.strip_prefix(AVATAR_FILE)?;
        let files = self.files.as_ref()?;
        Some(files.content_url(id, AVATAR_URL_TTL))
    }
}

/// How long an avatar's signed URL lasts (rounded up to the hour by the File service).
const AVATAR_URL_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
