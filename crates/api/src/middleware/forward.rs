//! A misdirected request sent on to the node that serves its user.
//!
//! When nodes split the partitions, only a user's own node has the user's history and seen
//! items; another node answers a request about that user with `ApiError::Misdirected` (421,
//! naming the owner from the configured peers). With forwarding on (`[cluster] forward`, the
//! default), this layer sends such a request on to the owner instead and answers with the
//! owner's response, marked `x-marquee-served-by: OWNER`. A load balancer that knows nothing of
//! partitions (an AWS ALB, a Kubernetes Service) can then send any request to any node, at the
//! cost of one hop inside the cluster for the requests that land elsewhere; one that routes by
//! partition saves the hop.
//!
//! - **Once.** The forwarded request carries `x-marquee-forwarded: 1`; a node never forwards a
//!   request that has it (two nodes that disagree about an owner answer 421, they do not loop).
//! - **Only what has no body.** The user routes are `GET` and `DELETE`; anything else keeps its
//!   421.
//! - **Plain HTTP between nodes.** An owner whose address is `https://` is not forwarded to
//!   (the 421 names it).
//! - **Within the request's time.** The layer runs inside the guard, so the request timeout
//!   bounds the hop; an owner that cannot be reached gives 503 naming it, with `Retry-After`.
//! - Every forward is counted: `marquee_http_forwarded_total{outcome}`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, OWNER_HEADER};
use crate::state::AppState;

/// Set on a forwarded request: never forwarded again.
pub const FORWARDED_HEADER: &str = "x-marquee-forwarded";
/// Set on a response that another node served.
pub const SERVED_BY_HEADER: &str = "x-marquee-served-by";

/// Headers that belong to one connection, never passed on (RFC 9110, 7.6.1), and the ones the
/// client library sets itself.
const NOT_PASSED_ON: [HeaderName; 8] = [
    header::CONNECTION,
    header::HOST,
    header::CONTENT_LENGTH,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

fn passed_on(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    for name in &NOT_PASSED_ON {
        kept.remove(name);
    }
    kept.remove("keep-alive");
    kept
}

pub async fn forward(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let eligible = state.forward_misdirected
        && matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::DELETE
        )
        && !request.headers().contains_key(FORWARDED_HEADER);
    if !eligible {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let headers = passed_on(request.headers());
    let response = next.run(request).await;
    if response.status() != StatusCode::MISDIRECTED_REQUEST {
        return response;
    }
    let Some(owner) = response
        .headers()
        .get(OWNER_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|owner| owner.starts_with("http://"))
        .map(str::to_owned)
    else {
        return response;
    };
    match send(&state, &owner, method, &path, headers).await {
        Ok(forwarded) => {
            state
                .http_metrics
                .forwarded
                .with_label_values(&["forwarded"])
                .inc();
            forwarded
        }
        Err(cause) => {
            state
                .http_metrics
                .forwarded
                .with_label_values(&["failed"])
                .inc();
            let mut response = ApiError::Unavailable {
                message: format!(
                    "user_id: the node serving this user ({owner}) did not answer: {cause}"
                ),
            }
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            response
        }
    }
}

async fn send(
    state: &AppState,
    owner: &str,
    method: Method,
    path: &str,
    mut headers: HeaderMap,
) -> Result<Response, String> {
    headers.insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
    let url = format!("{}{path}", owner.trim_end_matches('/'));
    let answer = state
        .peer_client
        .request(method, &url)
        .headers(headers)
        .send()
        .await
        .map_err(|error| error.without_url().to_string())?;
    let status = answer.status();
    let mut response_headers = passed_on(answer.headers());
    let body = answer.bytes().await.map_err(|error| error.to_string())?;
    if let Ok(value) = HeaderValue::from_str(owner) {
        response_headers.insert(SERVED_BY_HEADER, value);
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    Ok(response)
}

#[cfg(test)]
mod tests {
    //! The layer between two real servers on loopback: a front whose handler answers 421 for
    //! user `far` (as a node answers for another node's user) and an owner that echoes what
    //! reached it. The same forwarding between real nodes on Fluvio is in
    //! `tests/integration/cluster.rs`.

    use axum::Router;
    use axum::http::Request;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::guard::{Guard, Limits};

    async fn owner() -> String {
        async fn echo(method: Method, uri: axum::http::Uri, headers: HeaderMap) -> Response {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let body = json!({
                "method": method.as_str(),
                "path": uri.to_string(),
                "forwarded": header(FORWARDED_HEADER),
                "authorization": header("authorization"),
            });
            ([("x-owner-said", "hello")], axum::Json(body)).into_response()
        }
        let app = Router::new().route("/v1/users/{user_id}", get(echo).delete(echo).post(echo));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}")
    }

    fn front(owner: &str, forward_misdirected: bool) -> (Router, AppState) {
        let dir = tempfile::tempdir().unwrap();
        let guard = Guard::new(dir.path().join("keys.json"), false, Limits::default());
        let mut state = AppState::new(
            marquee_stream_processor::Metrics::new(4),
            guard,
            None,
            Vec::new(),
        );
        state.forward_misdirected = forward_misdirected;
        let owner = owner.to_owned();
        let answer = move |axum::extract::Path(user): axum::extract::Path<String>| {
            let owner = owner.clone();
            async move {
                if user == "far" {
                    ApiError::Misdirected {
                        message: "user_id: served by another node".into(),
                        owner: Some(owner),
                    }
                    .into_response()
                } else {
                    axum::Json(json!({"served": "here"})).into_response()
                }
            }
        };
        let app = Router::new()
            .route(
                "/v1/users/{user_id}",
                get(answer.clone()).delete(answer.clone()).post(answer),
            )
            .layer(axum::middleware::from_fn_with_state(state.clone(), forward))
            .with_state(state.clone());
        (app, state)
    }

    async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let response = app.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn request(method: Method, path: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", "Bearer mq_key")
    }

    fn forwarded(state: &AppState, outcome: &str) -> u64 {
        state
            .http_metrics
            .forwarded
            .with_label_values(&[outcome])
            .get()
    }

    #[tokio::test]
    async fn a_request_about_another_nodes_user_is_answered_by_that_node() {
        let owner = owner().await;
        let (app, state) = front(&owner, true);
        let (status, headers, body) = send(
            &app,
            request(Method::GET, "/v1/users/far?count=3")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["path"], "/v1/users/far?count=3");
        assert_eq!(body["authorization"], "Bearer mq_key", "the key goes along");
        assert_eq!(body["forwarded"], "1");
        assert_eq!(headers[SERVED_BY_HEADER], owner.as_str());
        assert_eq!(headers["x-owner-said"], "hello");
        let (status, _, body) = send(
            &app,
            request(Method::DELETE, "/v1/users/far")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, &body["method"]),
            (StatusCode::OK, &json!("DELETE"))
        );
        assert_eq!(forwarded(&state, "forwarded"), 2);
        // The node's own users are answered here, untouched.
        let (status, headers, body) = send(
            &app,
            request(Method::GET, "/v1/users/near")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"served": "here"})));
        assert!(!headers.contains_key(SERVED_BY_HEADER));
    }

    #[tokio::test]
    async fn what_must_not_be_forwarded_keeps_its_421() {
        let owner = owner().await;
        let (app, state) = front(&owner, true);
        // A request with a body.
        let (status, _, _) = send(
            &app,
            request(Method::POST, "/v1/users/far")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
        // A request already forwarded once: no second hop, no loop.
        let again = request(Method::GET, "/v1/users/far").header(FORWARDED_HEADER, "1");
        let (status, headers, _) = send(&app, again.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(headers[OWNER_HEADER], owner.as_str());
        assert_eq!(forwarded(&state, "forwarded"), 0);
        // Forwarding off: the 421 names the owner, for a client that routes by partition.
        let (off, _) = front(&owner, false);
        let (status, _, _) = send(
            &off,
            request(Method::GET, "/v1/users/far")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
        // An owner over HTTPS is not forwarded to.
        let (tls, _) = front("https://10.0.0.9:8443", true);
        let (status, _, _) = send(
            &tls,
            request(Method::GET, "/v1/users/far")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    }

    #[tokio::test]
    async fn an_owner_that_does_not_answer_gives_503_naming_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let (app, state) = front(&gone, true);
        let (status, headers, body) = send(
            &app,
            request(Method::GET, "/v1/users/far")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("user_id: the node serving this user ({gone})")),
            "{message}"
        );
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(forwarded(&state, "failed"), 1);
    }
}
