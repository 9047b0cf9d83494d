//! The knowledge service's own error codes, one named constructor each, written once.

use axum::extract::multipart::MultipartRejection;
use axum::http::StatusCode;
use skein_core::ApiError;

/// 404 for a base that does not exist or that the caller may not read.
pub(crate) fn base_not_found() -> ApiError {
    ApiError::not_found("Knowledge base", "知识库")
}

/// 403 for a readable base the caller may not change.
pub(crate) fn read_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "knowledge_read_only",
        "You may read this knowledge base but not change it.",
        "你可以查看这个知识库，但不能修改它。",
    )
}

/// 403 for what only the owner may do.
pub(crate) fn owner_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "knowledge_owner_only",
        "Only the owner of this knowledge base may do this.",
        "只有知识库的所有者可以执行此操作。",
    )
}

/// 404 for a document that does not exist in a base the caller may read.
pub(crate) fn document_not_found() -> ApiError {
    ApiError::not_found("Document", "文档")
}

/// 415 for a file or page (`name`) of a type no extractor reads.
pub(crate) fn unsupported(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_document",
        format!(
            "{name} cannot be indexed: PDF, Word (.docx), PowerPoint (.pptx), Excel (.xlsx), EPUB, HTML, Markdown, text, CSV, JSON and images (by OCR) can."
        ),
        format!(
            "{name} 无法索引：支持 PDF、Word（.docx）、PowerPoint（.pptx）、Excel（.xlsx）、EPUB、HTML、Markdown、文本、CSV、JSON 和图片（OCR 识别）。"
        ),
    )
}

/// 413 for an upload over the knowledge document limit, caught by the multipart reader.
pub(crate) fn document_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        "The document is larger than a knowledge document may be.",
        "文档超过了知识库文档的大小上限。",
    )
}

/// 415 for an upload that is not a multipart form, with the parser's reason.
pub(crate) fn invalid_multipart(e: &MultipartRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_multipart",
        format!(
            "Send the document as multipart/form-data: {}",
            e.body_text()
        ),
        format!("请以 multipart/form-data 上传文档：{}", e.body_text()),
    )
}

/// 429 for opening a progress stream while the user holds `max`: each one holds a connection.
pub(crate) fn too_many_streams(max: u32) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams",
        format!(
            "You have {max} progress streams open already; close one (another tab) and try again."
        ),
        format!("你已打开 {max} 个进度推送连接，请关闭一个（例如其他标签页）后重试。"),
    )
    .with_details(serde_json::json!({ "limit": max }))
    .with_retry_after(5)
}
