//! `/internal/file/*`: the [`FileApi`] over HTTP, for the services of another process that
//! keep file ids (Chat, Knowledge, Agent, User, Plugin, Billing). Served only on the internal
//! listener, behind the internal token.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::TryStreamExt;
use skein_core::ApiResult;
use skein_core::api::{FileApi, FileMeta, NewFile};
use skein_core::extract::ApiJson;

use crate::FileService;
use crate::remote::{FileBody, META_HEADER, RANGE_HEADER, StoreQuery, encode_meta};

pub(crate) fn routes(service: Arc<FileService>) -> Router {
    Router::new()
        .route("/internal/file/store", post(store))
        .route("/internal/file/open", post(open))
        .route("/internal/file/metadata", post(metadata))
        .route("/internal/file/delete", post(delete))
        .route("/internal/file/authorise", post(authorise))
        .with_state(service)
}

/// The upload streams on into storage: the purpose's size limit is enforced as it arrives.
async fn store(
    State(svc): State<Arc<FileService>>,
    Query(query): Query<StoreQuery>,
    request: Request,
) -> ApiResult<ApiJson<FileMeta>> {
    let body = request
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let file = NewFile {
        owner_id: query.owner_id,
        name: query.name,
        purpose: query.purpose,
    };
    Ok(ApiJson(svc.store(file, Box::pin(body)).await?))
}

async fn open(
    State(svc): State<Arc<FileService>>,
    ApiJson(body): ApiJson<FileBody>,
) -> ApiResult<Response> {
    let range = body.range.map(|(start, end)| start..end);
    let content = svc.open(&body.user_id, &body.id, range).await?;
    let mut response = Body::from_stream(content.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(meta) = HeaderValue::from_str(&encode_meta(&content.meta)) {
        headers.insert(META_HEADER, meta);
    }
    if let Ok(range) =
        HeaderValue::from_str(&format!("{}-{}", content.range.start, content.range.end))
    {
        headers.insert(RANGE_HEADER, range);
    }
    Ok(response)
}

async fn metadata(
    State(svc): State<Arc<FileService>>,
    ApiJson(body): ApiJson<FileBody>,
) -> ApiResult<ApiJson<FileMeta>> {
    Ok(ApiJson(svc.metadata(&body.user_id, &body.id).await?))
}

async fn delete(
    State(svc): State<Arc<FileService>>,
    ApiJson(body): ApiJson<FileBody>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    svc.delete(&body.user_id, &body.id).await?;
    Ok(ApiJson(serde_json::json!({})))
}

async fn authorise(
    State(svc): State<Arc<FileService>>,
    ApiJson(body): ApiJson<FileBody>,
) -> ApiResult<ApiJson<FileMeta>> {
    Ok(ApiJson(svc.authorise(&body.user_id, &body.id).await?))
}
