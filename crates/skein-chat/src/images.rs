//! Chat images live in the File service, and messages hold references to them (`file:<id>`),
//! so a history load carries a few bytes per image instead of megabytes of base64.
//!
//! - A message's images arrive as `file:<id>` (uploaded first, from the composer), as
//!   `data:image/...;base64,` URLs (older clients and API users: stored as files on arrival)
//!   or as `https://` URLs (kept as they are).
//! - The API shows each `file:` reference with a signed URL (`image_urls`) that the browser
//!   loads without a session.
//! - Upstream, a reference becomes a `data:` URL again when the answer is sent: a vendor
//!   cannot reach this server's files.
//! - `skein migrate` moves the images older versions stored inline into files
//!   ([`move_inline_images`]).
//!
//! Without the File service in this process images stay inline, as before.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use skein_core::api::{FileApi, FilePurpose, NewFile};
use skein_core::{ApiError, ApiResult, ids};
use skein_db::Db;

use crate::errors;
use crate::sources::Context;

/// How a stored image is named in a message.
pub const FILE_PREFIX: &str = "file:";

/// How long the URLs shown with a message stay valid (at least; see `FileApi::content_url`).
const SHOWN_FOR: Duration = Duration::from_secs(6 * 3600);

/// Largest image sent upstream; larger ones (only possible through a changed limit) are left
/// out of the request rather than read whole into memory.
const MAX_UPSTREAM_BYTES: u64 = 20 * 1024 * 1024;

/// The file id of a `file:<id>` reference.
pub fn file_id(image: &str) -> Option<&str> {
    image
        .strip_prefix(FILE_PREFIX)
        .filter(|id| ids::looks_like_id(id))
}

/// The images of a message about to be stored: `data:` URLs become files of `user_id`,
/// `file:` references are checked to be `user_id`'s images (another user's file reads as
/// missing), `https:` URLs are kept.
pub(crate) async fn store_images(
    files: Option<&Arc<dyn FileApi>>,
    user_id: &str,
    images: Vec<String>,
) -> ApiResult<Vec<String>> {
    let Some(files) = files else {
        if images.iter().any(|i| i.starts_with(FILE_PREFIX)) {
            return Err(ApiError::invalid_field(
                "images",
                "This server keeps no files: send images as data: or https: URLs.",
                "此服务器未启用文件服务：请以 data: 或 https: 地址发送图片。",
            ));
        }
        return Ok(images);
    };
    let mut stored = Vec::with_capacity(images.len());
    for image in images {
        if let Some(id) = file_id(&image) {
            let meta = files.authorise(user_id, id).await?;
            if !meta.content_type.starts_with("image/") {
                return Err(errors::not_an_image());
            }
            stored.push(image);
        } else if let Some((mime, data)) = parse_data_url(&image) {
            let bytes = STANDARD.decode(data).map_err(|_| {
                ApiError::invalid_field(
                    "images",
                    "An image's base64 data is damaged.",
                    "图片的 base64 数据已损坏。",
                )
            })?;
            let meta = store_bytes(files.as_ref(), user_id, mime, bytes).await?;
            if !meta.content_type.starts_with("image/") {
                // The content was not an image, whatever the URL said.
                let _ = files.delete(user_id, &meta.id).await;
                return Err(errors::not_an_image());
            }
            stored.push(format!("{FILE_PREFIX}{}", meta.id));
        } else {
            stored.push(image);
        }
    }
    Ok(stored)
}

/// `(mime, base64)` of a `data:<mime>;base64,<data>` URL.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (mime, data) = rest.split_once(";base64,")?;
    Some((mime, data))
}

async fn store_bytes(
    files: &dyn FileApi,
    user_id: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> ApiResult<skein_core::api::FileMeta> {
    let extension = mime
        .strip_prefix("image/")
        .filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric()) && e.len() <= 8)
        .unwrap_or("bin");
    let body = futures::stream::once(async move { Ok(Bytes::from(bytes)) }).boxed();
    files
        .store(
            NewFile {
                owner_id: user_id.to_string(),
                name: format!("image.{extension}"),
                purpose: FilePurpose::Chat,
            },
            body,
        )
        .await
}

/// The URLs the API shows for a message's `images` (a JSON array as stored): `file:`
/// references signed, everything else as it is.
pub(crate) fn shown_urls(files: Option<&Arc<dyn FileApi>>, images: &Value) -> Value {
    let Some(list) = images.as_array() else {
        return Value::Array(Vec::new());
    };
    Value::Array(
        list.iter()
            .map(|image| {
                let text = image.as_str().unwrap_or_default();
                match (file_id(text), files) {
                    (Some(id), Some(files)) => Value::String(files.content_url(id, SHOWN_FOR)),
                    _ => image.clone(),
                }
            })
            .collect(),
    )
}

/// Turns the `file:` references in `context` into `data:` URLs for the vendor. An image that
/// is gone (deleted since) is left out with a log line: an old picture must not stop the
/// conversation.
pub(crate) async fn inline_for_upstream(
    files: Option<&Arc<dyn FileApi>>,
    user_id: &str,
    context: &mut Context,
) {
    for message in &mut context.messages {
        if !message.images.iter().any(|i| i.starts_with(FILE_PREFIX)) {
            continue;
        }
        let mut inlined = Vec::with_capacity(message.images.len());
        for image in std::mem::take(&mut message.images) {
            let Some(id) = file_id(&image) else {
                if !image.starts_with(FILE_PREFIX) {
                    inlined.push(image);
                }
                continue;
            };
            match read_data_url(files, user_id, id).await {
                Ok(url) => inlined.push(url),
                Err(e) => {
                    tracing::warn!(file_id = id, error = %e, "an image of the conversation could not be read; sent without it")
                }
            }
        }
        message.images = inlined;
    }
}

async fn read_data_url(
    files: Option<&Arc<dyn FileApi>>,
    user_id: &str,
    id: &str,
) -> Result<String, ApiError> {
    let files = files.ok_or_else(|| ApiError::unavailable("file"))?;
    let meta = files.metadata(user_id, id).await?;
    if meta.size > MAX_UPSTREAM_BYTES {
        return Err(ApiError::invalid_field(
            "images",
            "The image is too large to send.",
            "图片过大，无法发送。",
        ));
    }
    let content = files.open(user_id, id, None).await?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
    let mut body = content.body;
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.map_err(ApiError::internal)?);
    }
    Ok(format!(
        "data:{};base64,{}",
        meta.content_type,
        STANDARD.encode(&bytes)
    ))
}

/// The images of `rows` for an export, by message id: stored images read back as `data:`
/// URLs, other URLs as they are. An image that is gone is left out.
pub(crate) async fn for_export(
    files: Option<&Arc<dyn FileApi>>,
    user_id: &str,
    rows: &[crate::store::MessageRow],
) -> crate::export::Attachments {
    let mut out = crate::export::Attachments::new();
    for row in rows {
        let Some(list) = row
            .images
            .as_deref()
            .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
        else {
            continue;
        };
        let mut urls = Vec::with_capacity(list.len());
        for image in list {
            match file_id(&image) {
                Some(id) => match read_data_url(files, user_id, id).await {
                    Ok(url) => urls.push(url),
                    Err(e) => {
                        tracing::warn!(file_id = id, error = %e, "an exported image could not be read; left out")
                    }
                },
                None => urls.push(image),
            }
        }
        if !urls.is_empty() {
            out.insert(row.id.clone(), urls);
        }
    }
    out
}

/// What [`move_inline_images`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MoveReport {
    /// Messages rewritten to hold file references.
    pub messages: u64,
    /// Images stored as files.
    pub images: u64,
    /// Messages left as they were because an image could not be stored (quota, a damaged
    /// image); their images stay inline, nothing is lost.
    pub skipped: u64,
}

/// Moves the images earlier versions stored inside message rows (`data:` URLs) into the File
/// service, rewriting each message to hold `file:` references. A message is rewritten only
/// when all its images were stored, so nothing is ever lost; running it again finds only
/// what it could not move. `progress` hears of each batch.
pub async fn move_inline_images(
    db: &Db,
    files: &Arc<dyn FileApi>,
    mut progress: impl FnMut(&MoveReport),
) -> ApiResult<MoveReport> {
    let mut report = MoveReport::default();
    let mut after = String::new();
    loop {
        let batch = crate::store::inline_image_messages(db, &after, 50).await?;
        let Some(last) = batch.last() else { break };
        after = last.0.clone();
        for (id, user_id, images) in batch {
            let list: Vec<String> = serde_json::from_str(&images).unwrap_or_default();
            let count = list.iter().filter(|i| i.starts_with("data:")).count() as u64;
            match store_images(Some(files), &user_id, list).await {
                Ok(moved) => {
                    let json = serde_json::to_string(&moved).map_err(ApiError::internal)?;
                    crate::store::set_message_images(db, &id, &images, &json).await?;
                    report.messages += 1;
                    report.images += count;
                }
                Err(e) => {
                    tracing::warn!(message_id = %id, error = %e, "a message's images stay inline");
                    report.skipped += 1;
                }
            }
        }
        progress(&report);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_references_name_a_file() {
        let id = ids::new_id();
        assert_eq!(file_id(&format!("file:{id}")), Some(id.as_str()));
        assert_eq!(file_id("file:../etc/passwd"), None);
        assert_eq!(file_id("data:image/png;base64,AA=="), None);
    }

    #[test]
    fn a_data_url_splits_into_type_and_data() {
        assert_eq!(
            parse_data_url("data:image/png;base64,AQID"),
            Some(("image/png", "AQID"))
        );
        assert_eq!(parse_data_url("data:image/png,AQID"), None);
        assert_eq!(parse_data_url("https://example.com/a.png"), None);
    }
}
