//! The plugin service's own error codes, one named constructor each, written once.

use axum::http::StatusCode;
use skein_core::ApiError;

use crate::openapi;

/// 404 for a plugin that does not exist or that the caller may not see.
pub(crate) fn plugin_not_found() -> ApiError {
    ApiError::not_found("Plugin", "插件")
}

/// 403 for a user registering a local (stdio) MCP server: it runs a program on the server.
pub(crate) fn local_mcp_admin_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Only administrators may register local MCP servers.",
        "只有管理员可以注册本地 MCP 服务器。",
    )
}

/// 502 for an MCP server whose tools could not be listed while registering it.
pub(crate) fn mcp_tools_unlisted(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "mcp_unreachable",
        format!("The MCP server's tools could not be listed: {e}."),
        format!("无法获取 MCP 服务器的工具列表：{e}。"),
    )
}

/// 502 for an MCP server whose OAuth sign-in failed while registering it.
pub(crate) fn mcp_sign_in_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "mcp_unreachable",
        format!("The MCP server could not be signed in to: {e}."),
        format!("无法登录 MCP 服务器：{e}。"),
    )
}

/// 413 for an OpenAPI document over the size a plugin's description may have.
pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "document_too_large",
        format!(
            "The OpenAPI document is larger than {} bytes.",
            openapi::MAX_DOCUMENT_BYTES
        ),
        format!("OpenAPI 文档超过 {} 字节。", openapi::MAX_DOCUMENT_BYTES),
    )
}
