//! The web app (`web/dist`, built by `npm run build` in `web/`), embedded in the binary and
//! served at `/`. Paths that are not files fall back to `index.html` so the app's own routes
//! survive a reload; the API prefixes are never shadowed. A binary built before the UI answers
//! `/` with a page that says how to build it.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

/// The files of `web/dist` (empty when the UI was not built).
#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
pub struct WebAssets;

/// Path prefixes that belong to the APIs (public and service-to-service) and health checks:
/// unknown paths under them answer 404 (rendered by the gateway in the API's error shape),
/// never the web app.
const RESERVED: [&str; 7] = [
    "/api",
    "/v1",
    "/v1beta",
    "/internal",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// Content Security Policy for the app's HTML: scripts only from this origin, so model output
/// rendered as Markdown cannot run code even if a renderer let markup through; images only
/// from this origin, `data:` and `blob:`, so a reply cannot make the browser call another
/// host (a tracking pixel, or a URL carrying the conversation out).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; \
object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

/// The app's CSP for this deployment: [`CSP`], with the origins the File service sends the
/// browser to added where they are needed — a CDN in front of signed URLs
/// (`file.public_base_url`: thumbnails are `<img>` from there), and the S3 store when its
/// presigned URLs reach the browser (`file.s3.presign_downloads`: downloads and thumbnails
/// redirect there; `file.s3.presign_uploads`: the Files page `PUT`s parts there). Without
/// them the app would be refused by its own policy.
pub fn csp_for(file: &skein_file::FileConfig) -> String {
    let mut images: Vec<String> = Vec::new();
    let mut connect: Vec<String> = Vec::new();
    if let Some(cdn) = file.public_base_url.as_deref().and_then(origin) {
        images.push(cdn.clone());
        connect.push(cdn);
    }
    if file.storage == skein_file::StorageKind::S3 {
        let s3 = &file.s3;
        let endpoint = s3.public_endpoint.as_deref().unwrap_or(&s3.endpoint);
        // Virtual-host style puts the bucket in the host name of every URL.
        let store = origin(endpoint).and_then(|o| {
            if !s3.virtual_host_style {
                return Some(o);
            }
            let (scheme, host) = o.split_once("://")?;
            origin(&format!("{scheme}://{}.{host}", s3.bucket))
        });
        if let Some(store) = store {
            if s3.presign_downloads {
                images.push(store.clone());
                connect.push(store.clone());
            }
            if s3.presign_uploads {
                connect.push(store);
            }
        }
    }
    images.dedup();
    connect.dedup();
    let with = |directive: &str, extra: &[String]| {
        if extra.is_empty() {
            directive.to_string()
        } else {
            format!("{directive} {}", extra.join(" "))
        }
    };
    CSP.replace(
        "img-src 'self' data: blob:;",
        &format!("{};", with("img-src 'self' data: blob:", &images)),
    )
    .replace(
        "connect-src 'self';",
        &format!("{};", with("connect-src 'self'", &connect)),
    )
}

/// `scheme://host[:port]` of an http(s) URL, or `None` when it is not one a CSP can name
/// (anything but letters, digits, dots, hyphens and a port in the host).
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let clean = !host.is_empty()
        && !host.contains('@')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    clean.then(|| format!("{scheme}://{}", host.to_ascii_lowercase()))
}

/// Whether `path` is under one of the [`RESERVED`] prefixes.
pub fn is_reserved(path: &str) -> bool {
    RESERVED.iter().any(|prefix| {
        path == *prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Whether the binary carries a built web app.
pub fn is_built() -> bool {
    WebAssets::get("index.html").is_some()
}

/// The router's fallback: a file of the web app, `index.html` for the app's routes, or 404.
/// HTML carries `csp` ([`csp_for`] this deployment).
pub async fn serve(csp: &str, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    // The app answers only reads; any other method on an unknown path is no route at all.
    if is_reserved(path) || (method != Method::GET && method != Method::HEAD) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let name = path.trim_start_matches('/');
    if !name.is_empty()
        && let Some(response) = file(name, &headers, csp)
    {
        return response;
    }
    // A missing file (the last segment has an extension) is a 404, not the app: a stale
    // script URL must not be answered with HTML.
    let last = name.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return StatusCode::NOT_FOUND.into_response();
    }
    match file("index.html", &headers, csp) {
        Some(response) => response,
        None => not_built(),
    }
}

fn file(name: &str, headers: &HeaderMap, csp: &str) -> Option<Response> {
    let asset = WebAssets::get(name)?;
    let etag = format!("\"{}\"", hex::encode(asset.metadata.sha256_hash()));
    let cache = if name.starts_with("assets/") {
        // Vite puts a content hash in every file name under assets/.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(asset.data.into_owned()))
    };
    let h = response.headers_mut();
    if !fresh && let Ok(value) = HeaderValue::from_str(asset.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, value);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if name.ends_with(".html")
        && let Ok(value) = HeaderValue::from_str(csp)
    {
        h.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    Some(response)
}

fn not_built() -> Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Skein</title></head>\
<body style=\"font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;line-height:1.5\">\
<h1>Skein {version}</h1>\
<p>The API is running, but this binary was built without the web app.</p>\
<p>To include it, build the UI and then the binary:</p>\
<pre>cd web &amp;&amp; npm ci &amp;&amp; npm run build &amp;&amp; cd ..\ncargo build --release -p skein</pre>\
<p>(<code>./scripts/run</code> does both.) API reference: <a href=\"/api/docs\">/api/docs</a> · \
health: <a href=\"/readyz\">/readyz</a></p>\
<hr><p lang=\"zh-CN\">API 已在运行，但此二进制构建时没有包含网页应用。请先在 <code>web/</code> 目录执行 \
<code>npm ci &amp;&amp; npm run build</code>，再构建 <code>skein</code>（或直接运行 <code>./scripts/run</code>）。</p>\
</body></html>",
        version = env!("CARGO_PKG_VERSION")
    );
    let mut response = axum::response::Html(page).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::{CSP, csp_for, is_reserved};
    use skein_file::{FileConfig, S3Config, StorageKind};

    #[test]
    fn the_csp_names_the_cdn_and_the_store_only_when_the_browser_goes_there() {
        let mut file = FileConfig::default();
        assert_eq!(csp_for(&file), CSP);
        file.public_base_url = Some("https://CDN.example.com/files/".into());
        let csp = csp_for(&file);
        assert!(
            csp.contains("img-src 'self' data: blob: https://cdn.example.com;"),
            "{csp}"
        );
        assert!(
            csp.contains("connect-src 'self' https://cdn.example.com;"),
            "{csp}"
        );

        // S3 without presigned URLs: the browser never talks to the store.
        file.public_base_url = None;
        file.storage = StorageKind::S3;
        file.s3 = S3Config {
            endpoint: "http://minio:9000".into(),
            public_endpoint: Some("https://files.example.com:8443".into()),
            bucket: "skein".into(),
            ..S3Config::default()
        };
        assert_eq!(csp_for(&file), CSP);
        // Presigned uploads: parts are PUT there, so it may be connected to; no images.
        file.s3.presign_uploads = true;
        let csp = csp_for(&file);
        assert!(
            csp.contains("connect-src 'self' https://files.example.com:8443;"),
            "{csp}"
        );
        assert!(csp.contains("img-src 'self' data: blob:;"), "{csp}");
        // Presigned downloads: thumbnails and downloads are redirected there.
        file.s3.presign_downloads = true;
        file.s3.virtual_host_style = true;
        file.s3.public_endpoint = None;
        file.s3.endpoint = "https://oss-cn-hangzhou.aliyuncs.com".into();
        let csp = csp_for(&file);
        assert!(
            csp.contains("img-src 'self' data: blob: https://skein.oss-cn-hangzhou.aliyuncs.com;"),
            "{csp}"
        );
        assert!(
            csp.contains("connect-src 'self' https://skein.oss-cn-hangzhou.aliyuncs.com;"),
            "{csp}"
        );
        // Nothing that could break out of the directive gets in.
        file.s3.virtual_host_style = false;
        file.s3.endpoint = "https://evil.example.com; script-src *".into();
        assert_eq!(csp_for(&file), CSP);
    }

    #[test]
    fn reserved_prefixes_are_whole_segments() {
        for path in [
            "/api",
            "/api/v1/x",
            "/v1/models",
            "/v1beta/models",
            "/healthz",
            "/readyz",
        ] {
            assert!(is_reserved(path), "{path}");
        }
        for path in ["/", "/chat", "/apix", "/v1x", "/settings/api", "/healthzz"] {
            assert!(!is_reserved(path), "{path}");
        }
    }
}
