//! The web pages, served as static files from the web folder: the EV user app (`/app/`), the
//! CPO cockpit (`/cockpit/`), their shared modules (`/shared/`), the vendored front-end
//! libraries (`/vendor/`, filled by `scripts/build-web`) and the interactive OpenAPI viewer
//! (`/api/docs`, reading `/api/openapi.json`). `/` redirects to the user app.
//!
//! The folder is `EVFLEX_WEB_DIR`, by default the crate's `web/` folder. Files are read on each
//! request (no cache), so editing a page needs no rebuild. Every response carries a strict
//! Content-Security-Policy: the pages load scripts only from this server (no CDN).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

/// Environment variable naming the web folder.
pub const WEB_DIR_ENV: &str = "EVFLEX_WEB_DIR";

/// The default web folder: `backend/web` of this crate.
pub const DEFAULT_WEB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web");

/// Content-Security-Policy of every page: only this origin; inline styles for the chart and
/// OpenAPI libraries, which set element styles; `data:` images for their icons.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; \
    base-uri 'self'; form-action 'self'";

/// Folders under the web root that are served, by URL prefix.
const SERVED: [&str; 5] = ["app", "cockpit", "shared", "vendor", "docs"];

/// The web folder: `EVFLEX_WEB_DIR`, or [`DEFAULT_WEB_DIR`].
pub fn web_dir() -> PathBuf {
    std::env::var_os(WEB_DIR_ENV).map_or_else(|| PathBuf::from(DEFAULT_WEB_DIR), PathBuf::from)
}

/// Web routes, serving from [`web_dir`].
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    router_for(web_dir())
}

/// Web routes serving the web folder `dir`.
pub fn router_for<S: Clone + Send + Sync + 'static>(dir: PathBuf) -> Router<S> {
    if !dir.join("app").is_dir() {
        tracing::warn!(dir = %dir.display(), "web folder has no app/: the web pages will answer 404");
    } else if !dir.join("vendor").is_dir() {
        tracing::warn!(dir = %dir.display(), "web folder has no vendor/: run scripts/build-web");
    }
    let root = Arc::new(dir);
    let mut router = Router::new()
        .route("/", get(|| async { Redirect::temporary("/app/") }))
        .route(
            "/api/docs",
            get({
                let root = root.clone();
                move || serve(root.clone(), "docs/index.html".to_owned())
            }),
        );
    for prefix in SERVED {
        let index_root = root.clone();
        let file_root = root.clone();
        router = router
            .route(
                &format!("/{prefix}"),
                get(move || async move { Redirect::temporary(&format!("/{prefix}/")) }),
            )
            .route(
                &format!("/{prefix}/"),
                get(move || serve(index_root.clone(), format!("{prefix}/index.html"))),
            )
            .route(
                &format!("/{prefix}/{{*path}}"),
                get(move |Path(path): Path<String>| {
                    serve(file_root.clone(), format!("{prefix}/{path}"))
                }),
            );
    }
    router
}

/// The file under `root` that `rel` (a `/`-separated URL path) names, or `None` when it tries
/// to leave the root (`..`), names a hidden file or holds a backslash or NUL.
fn resolve(root: &FsPath, rel: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for segment in rel.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains(['\\', '\0', ':']) {
            return None;
        }
        path.push(segment);
    }
    Some(path)
}

/// `Content-Type` by file extension.
fn content_type(path: &FsPath) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        "woff2" => "font/woff2",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn serve(root: Arc<PathBuf>, rel: String) -> Response {
    let Some(mut path) = resolve(&root, &rel) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let read = tokio::task::spawn_blocking(move || {
        if path.is_dir() {
            path.push("index.html");
        }
        std::fs::read(&path).map(|bytes| (content_type(&path), bytes))
    })
    .await;
    match read {
        Ok(Ok((mime, bytes))) => {
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            response
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            let hint = if rel.starts_with("vendor/") {
                " (run scripts/build-web)"
            } else {
                ""
            };
            (StatusCode::NOT_FOUND, format!("not found{hint}")).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(file = %rel, error = %e, "web: cannot read file");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
        Err(e) => {
            tracing::error!(file = %rel, error = %e, "web: read task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[test]
    fn paths_stay_inside_the_root() {
        let root = FsPath::new("/srv/web");
        assert_eq!(
            resolve(root, "app/app.js"),
            Some(PathBuf::from("/srv/web/app/app.js"))
        );
        assert_eq!(
            resolve(root, "app//x.css"),
            Some(PathBuf::from("/srv/web/app/x.css"))
        );
        assert_eq!(resolve(root, "app/../../etc/passwd"), None);
        assert_eq!(resolve(root, "app/.git/config"), None);
        assert_eq!(resolve(root, "app/a\\b"), None);
        assert_eq!(resolve(root, "app/C:x"), None);
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type(FsPath::new("a/b.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(FsPath::new("index.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(FsPath::new("x")), "application/octet-stream");
    }

    async fn get(router: Router, uri: &str) -> Response {
        router
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn serves_pages_redirects_and_404s() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app")).unwrap();
        std::fs::create_dir_all(dir.path().join("docs")).unwrap();
        std::fs::write(dir.path().join("app/index.html"), "<!doctype html>app").unwrap();
        std::fs::write(dir.path().join("app/app.js"), "export {}").unwrap();
        std::fs::write(dir.path().join("docs/index.html"), "docs").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        let router: Router = router_for(dir.path().to_path_buf());

        let r = get(router.clone(), "/").await;
        assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "/app/");
        let r = get(router.clone(), "/app").await;
        assert_eq!(r.headers()[header::LOCATION], "/app/");

        let r = get(router.clone(), "/app/").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let r = get(router.clone(), "/app/app.js").await;
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let r = get(router.clone(), "/api/docs").await;
        assert_eq!(r.status(), StatusCode::OK);

        assert_eq!(
            get(router.clone(), "/app/missing.js").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(router.clone(), "/app/../secret.txt").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(router.clone(), "/app/%2e%2e/secret.txt").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(router, "/secret.txt").await.status(),
            StatusCode::NOT_FOUND
        );
    }
}
