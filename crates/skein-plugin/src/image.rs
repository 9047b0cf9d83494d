//! The built-in image tool: draws through the relay's image route as the caller (billed to
//! them like any image call, recorded with the conversation), stores the picture as the
//! caller's file through the File service, and answers with a link the answer shows.

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;
use skein_core::api::{
    FilePurpose, ImageRequest, NewFile, RelayCaller, ToolCaller, ToolFile, ToolOutput,
};

use crate::{PluginService, StoredSettings, net};

/// The largest image fetched from an upstream's URL.
const MAX_IMAGE_BYTES: usize = 20 * 1024 * 1024;

/// Draws `arguments.prompt` with the admin's image model.
pub(crate) async fn generate(
    service: &PluginService,
    caller: &ToolCaller,
    settings: &StoredSettings,
    arguments: &Value,
) -> ToolOutput {
    let (Some(relay), Some(files), Some(model)) =
        (&service.relay, &service.files, &settings.image_model)
    else {
        return ToolOutput::error("Image generation is not set up.");
    };
    let prompt = arguments["prompt"].as_str().unwrap_or_default().trim();
    if prompt.is_empty() {
        return ToolOutput::error("The argument `prompt` is required.");
    }
    let relay_caller = RelayCaller {
        user_id: caller.user_id.clone(),
        group: None,
        request_id: caller.request_id.clone(),
        conversation_id: caller.conversation_id.clone(),
        cancel: None,
    };
    let request = ImageRequest {
        model: model.clone(),
        prompt: prompt.to_string(),
        n: 1,
        size: arguments["size"].as_str().map(str::to_string),
    };
    let images = match relay.image(relay_caller, request).await {
        Ok(images) => images,
        Err(e) => {
            return ToolOutput::error(format!(
                "The image could not be drawn: {}",
                e.message(skein_core::i18n::Lang::En)
            ));
        }
    };
    let Some(image) = images.images.first() else {
        return ToolOutput::error("The image model drew nothing.");
    };
    let bytes: Bytes = if let Some(b64) = &image.b64_json {
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(b) => Bytes::from(b),
            Err(_) => {
                return ToolOutput::error("The image model answered an image that is not base64.");
            }
        }
    } else if let Some(url) = &image.url {
        let Ok(url) = reqwest::Url::parse(url) else {
            return ToolOutput::error("The image model answered a bad link.");
        };
        let policy = net::FetchPolicy {
            allow_private: settings.allow_private_addresses,
            max_bytes: MAX_IMAGE_BYTES,
            timeout: std::time::Duration::from_secs(30),
        };
        let fetched = net::send(
            net::Outgoing {
                method: reqwest::Method::GET,
                url,
                headers: Vec::new(),
                body: None,
            },
            policy,
        )
        .await;
        match fetched {
            Ok(answer) if answer.status == 200 => answer.body,
            Ok(answer) => {
                return ToolOutput::error(format!(
                    "The image could not be fetched (HTTP {}).",
                    answer.status
                ));
            }
            Err(e) => return ToolOutput::error(format!("The image could not be fetched: {e}.")),
        }
    } else {
        return ToolOutput::error("The image model answered no image.");
    };
    let body: skein_core::api::ByteStream =
        Box::pin(futures::stream::once(async move { Ok(bytes) }));
    let file = NewFile {
        owner_id: caller.user_id.clone(),
        name: "generated-image.png".into(),
        purpose: FilePurpose::Chat,
    };
    let meta = match files.store(file, body).await {
        Ok(meta) => meta,
        Err(e) => {
            return ToolOutput::error(format!(
                "The image could not be stored: {}",
                e.message(skein_core::i18n::Lang::En)
            ));
        }
    };
    let url = format!("/api/v1/files/{}/content", meta.id);
    ToolOutput {
        content: format!(
            "The image was drawn and is shown to the user with the answer (file {}). Do not repeat its link.",
            meta.id
        ),
        files: vec![ToolFile {
            id: meta.id,
            content_type: meta.content_type,
            url,
        }],
        ..ToolOutput::default()
    }
}
