//! The file service's own error codes, one named constructor each, written once.

use axum::http::StatusCode;
use skein_core::ApiError;
use skein_core::api::FilePurpose;

use axum::extract::multipart::MultipartRejection;

use crate::session::UploadRow;
use crate::sniff::Sniffed;

// ---- files --------------------------------------------------------------------------------

/// 404 for a file that does not exist or is not the caller's.
pub(crate) fn not_found() -> ApiError {
    ApiError::not_found("File", "文件")
}

/// 413 for a file over its purpose's limit.
pub(crate) fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!("The file is larger than the {limit} bytes allowed for its purpose."),
        format!("文件超过了该用途允许的 {limit} 字节。"),
    )
    .with_details(serde_json::json!({ "limit_bytes": limit }))
}

/// 413 for a multipart body over the largest file any purpose allows (purpose not yet known).
pub(crate) fn upload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        "The upload is larger than any file may be.",
        "上传内容超过了文件大小上限。",
    )
}

/// 413 for a file that would take the owner over their storage quota.
pub(crate) fn over_quota(quota: u64, used: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "quota_exceeded",
        format!("This upload would exceed your storage quota ({used} of {quota} bytes used). Delete files to make room."),
        format!("上传后将超出存储配额（已用 {used} / {quota} 字节），请先删除一些文件。"),
    )
    .with_details(serde_json::json!({ "quota_bytes": quota, "used_bytes": used }))
}

/// 408 for an upload that sent nothing for `secs`: a stalled client must not hold a stream.
pub(crate) fn stalled(secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "upload_stalled",
        format!("The upload sent nothing for {secs} s and was ended; nothing was kept."),
        format!("上传已 {secs} 秒没有数据，已中止，未保留任何内容。"),
    )
}

/// 422 for an upload of zero bytes.
pub(crate) fn empty() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty_file",
        "The file is empty.",
        "文件为空。",
    )
}

/// The 415 for content a purpose does not take, naming what was found.
pub(crate) fn refused(purpose: FilePurpose, sniffed: &Sniffed) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_file_type",
        format!(
            "A {} file cannot hold this content ({}); the type is read from the content, not the name.",
            purpose.as_str(),
            sniffed.content_type
        ),
        format!(
            "用途为 {} 的文件不接受此内容（{}）；类型按文件内容判断，而非文件名。",
            purpose.as_str(),
            sniffed.content_type
        ),
    )
    .with_details(serde_json::json!({ "content_type": sniffed.content_type, "purpose": purpose.as_str() }))
}

/// 415 for an upload that is not a multipart form, with the parser's reason.
pub(crate) fn invalid_multipart(e: &MultipartRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_multipart",
        format!("Send the file as multipart/form-data: {}", e.body_text()),
        format!("请以 multipart/form-data 上传文件：{}", e.body_text()),
    )
}

/// 416 for a byte range outside a file of `size` bytes.
pub(crate) fn range_not_satisfiable(size: u64) -> ApiError {
    ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        format!("The range is outside the file ({size} bytes)."),
        format!("请求的范围超出文件大小（{size} 字节）。"),
    )
}

/// 416 for a range the storage found outside the object, where the size is not at hand.
pub(crate) fn range_outside_file() -> ApiError {
    ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        "The range is outside the file.",
        "请求的范围超出文件大小。",
    )
}

// ---- previews -----------------------------------------------------------------------------

/// 422 for a document over `max` bytes, too large to extract its text for a preview.
pub(crate) fn preview_too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "preview_too_large",
        format!("Documents over {max} bytes have no preview; download it instead."),
        format!("超过 {max} 字节的文档无法预览，请下载查看。"),
    )
}

/// 422 for a document whose text could not be extracted, with the reason.
pub(crate) fn document_unreadable(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_preview",
        format!("This document could not be read for a preview: {reason}"),
        format!("无法读取此文档以生成预览：{reason}"),
    )
}

/// 422 for a file type that has no preview.
pub(crate) fn no_preview() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_preview",
        "This type of file has no preview; download it instead.",
        "此类文件无法预览，请下载查看。",
    )
}

// ---- signed links and shares --------------------------------------------------------------

/// 403 for a signed file link past its expiry.
pub(crate) fn url_expired() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "url_expired",
        "This link has expired; ask for a new one.",
        "此链接已过期，请重新获取。",
    )
}

/// 403 for a signed file link whose signature does not verify.
pub(crate) fn invalid_signature() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "invalid_signature",
        "This link's signature is not valid.",
        "此链接的签名无效。",
    )
}

/// 403 for a password share's download link past its expiry: the password unlocks a new one.
pub(crate) fn share_url_expired() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "url_expired",
        "This download link has expired; enter the password again.",
        "下载链接已过期，请重新输入密码。",
    )
}

/// 403 for a password share's download link whose signature does not verify.
pub(crate) fn share_invalid_signature() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "invalid_signature",
        "This download link's signature is not valid.",
        "下载链接的签名无效。",
    )
}

/// 410 for a share link past its expiry.
pub(crate) fn share_expired() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "share_expired",
        "This share link has expired.",
        "此分享链接已过期。",
    )
}

/// 410 for a share link that has had all its downloads.
pub(crate) fn exhausted() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "share_exhausted",
        "This share link has reached its download limit.",
        "此分享链接的下载次数已用完。",
    )
}

/// 403 for a wrong share password.
pub(crate) fn wrong_share_password() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "wrong_share_password",
        "The password is not right.",
        "密码不正确。",
    )
}

/// 401 for a password share fetched without its password or a download link.
pub(crate) fn share_password_required() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "share_password_required",
        "This share asks for a password.",
        "此分享需要密码。",
    )
}

// ---- multipart upload sessions ------------------------------------------------------------

/// 404 for a session that does not exist, is another user's, or has expired.
pub(crate) fn session_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "upload_not_found",
        "This upload session does not exist or has expired; start a new one.",
        "此上传会话不存在或已过期，请重新开始上传。",
    )
}

/// 409 for touching a session while it is being completed.
pub(crate) fn busy() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "upload_busy",
        "This upload is being completed; wait for that answer.",
        "此上传正在完成中，请等待其结果。",
    )
}

/// 422 for a part number outside the session's `count` parts.
pub(crate) fn no_such_part(count: i64) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_part_number",
        format!("Part numbers run from 1 to {count} in this upload."),
        format!("此上传的分片编号为 1 到 {count}。"),
    )
}

/// 422 for a part whose length is not the one the session fixed for it.
pub(crate) fn part_size_wrong(number: u32, expected: u64) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "part_size_mismatch",
        format!("Part {number} must be exactly {expected} bytes; nothing of it was kept."),
        format!("第 {number} 个分片必须正好为 {expected} 字节，已丢弃。"),
    )
    .with_details(serde_json::json!({ "part": number, "expected_bytes": expected }))
}

/// 429 for opening a session while the user has `max_open` open already.
pub(crate) fn too_many_uploads(max_open: i64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_uploads",
        format!("You have {max_open} uploads open; complete or abort one first."),
        format!("您已有 {max_open} 个未完成的上传，请先完成或取消其中一个。"),
    )
}

/// 409 for completing a session whose parts are not all there (at most 20 of them named).
pub(crate) fn upload_incomplete(row: &UploadRow, missing: &[u32]) -> ApiError {
    let shown: Vec<String> = missing.iter().take(20).map(u32::to_string).collect();
    ApiError::new(
        StatusCode::CONFLICT,
        "upload_incomplete",
        format!(
            "{} of {} parts are missing or the wrong size: {}.",
            missing.len(),
            row.part_count,
            shown.join(", ")
        ),
        format!(
            "{} 个分片（共 {} 个）缺失或大小不对：{}。",
            missing.len(),
            row.part_count,
            shown.join("、")
        ),
    )
    .with_details(serde_json::json!({ "missing_parts": missing }))
}
