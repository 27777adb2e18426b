//! Every answer the layer gives is built here: RFC 6750 §3 for HTTP, gRPC statuses for gRPC.
//!
//! (The answers table, the answer builder and the body type; a third of the file is tests.)

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::error::{JwtError, JwtErrorKind, answer_of};

/// A custom responder: the error and the default answer in, the answer to send out.
pub(crate) type Responder = dyn Fn(&JwtError, Response<Bytes>) -> Response<Bytes> + Send + Sync;

/// How failures are answered.
#[derive(Clone, Default)]
pub(crate) struct Answers {
    pub(crate) realm: Option<Box<str>>,
    pub(crate) failed_status: Option<StatusCode>,
    pub(crate) failed_message: Option<Box<str>>,
    pub(crate) responder: Option<Arc<Responder>>,
    pub(crate) retry_after_secs: u32,
    /// The DPoP challenge and nonces, when DPoP is on (`crate::sender`).
    pub(crate) dpop: Option<Arc<crate::sender::DpopAnswers>>,
    /// RFC 9728's metadata URL, for `resource_metadata` in every challenge.
    pub(crate) resource_metadata: Option<Box<str>>,
}

impl fmt::Debug for Answers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answers")
            .field("realm", &self.realm)
            .field("failed_status", &self.failed_status)
            .field("failed_message", &self.failed_message)
            .field("responder", &self.responder.is_some())
            .field("resource_metadata", &self.resource_metadata)
            .finish()
    }
}

/// Whether a quoted-string parameter value can carry `s` (visible ASCII and spaces).
pub(crate) fn is_quotable(s: &str) -> bool {
    s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

fn push_param(out: &mut String, name: &str, value: &str) {
    // After the scheme's name comes the first parameter; every parameter ends with a quote.
    if out.ends_with('"') {
        out.push(',');
    }
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn percent_encode_grpc(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Answers {
    /// The answer to `err`, as HTTP or as gRPC.
    pub(crate) fn respond(&self, err: &JwtError, grpc: bool) -> Response<Bytes> {
        log(err);
        let mut response = self.default_answer(err, grpc);
        if let Some(responder) = &self.responder {
            response = responder(err, response);
        }
        response.extensions_mut().insert(err.clone());
        response
    }

    /// The answer to `err` as [`respond`](Self::respond) gives it, without logging anything
    /// (for `explain`, which must leave no trace of the tokens it is shown).
    pub(crate) fn preview(&self, err: &JwtError) -> Response<Bytes> {
        let mut response = self.default_answer(err, false);
        if let Some(responder) = &self.responder {
            response = responder(err, response);
        }
        response
    }

    /// The answer before a custom responder sees it.
    fn default_answer(&self, err: &JwtError, grpc: bool) -> Response<Bytes> {
        let kind = err.kind();
        let table = answer_of(kind);
        let (rfc_status, code) = (table.status, table.code);
        let mut status = rfc_status;
        let mut description: &str = table.description;
        if matches!(
            kind,
            JwtErrorKind::InsufficientScope | JwtErrorKind::Misconfigured
        ) && let Some(detail) = err.detail().filter(|d| is_quotable(d))
        {
            description = detail;
        }
        // APIM's failed-validation-httpcode and -error-message: every validation failure (no
        // token, an invalid token, missing claims), never a malformed request or an outage.
        let validation_failure =
            matches!(rfc_status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        if validation_failure {
            if let Some(s) = self.failed_status {
                status = s;
            }
            if let Some(message) = &self.failed_message {
                description = message;
            }
        }
        // RFC 6750 §3.1: each error code has its status. When an override moved the status
        // away from it, the challenge names no error (the body still does).
        let code_in_challenge = code.filter(|_| status == rfc_status);

        // With DPoP on (RFC 9449 §7.1), the `DPoP` challenge names the error of a request
        // under the `DPoP` scheme, or of any request where DPoP is required; the `Bearer`
        // challenge stands beside it unless DPoP is required.
        let dpop = self.dpop.as_deref();
        let dpop_has_error = dpop.is_some_and(|d| d.required || err.is_under_dpop());
        let challenge_of = |scheme: &str, with_error: bool| {
            let mut challenge = String::from(scheme);
            if let Some(realm) = &self.realm {
                push_param(&mut challenge, "realm", realm);
            }
            if let Some(code) = code_in_challenge.filter(|_| with_error) {
                push_param(&mut challenge, "error", code);
                push_param(&mut challenge, "error_description", description);
                if let Some(scopes) = err.required_scopes() {
                    push_param(&mut challenge, "scope", scopes);
                }
            }
            // RFC 9728 §5.1: where a client learns which authorization server to ask.
            if let Some(url) = &self.resource_metadata {
                push_param(&mut challenge, "resource_metadata", url);
            }
            challenge
        };
        let bearer = match dpop {
            Some(d) if d.required => None,
            _ => {
                let dpop_code = matches!(
                    kind,
                    JwtErrorKind::InvalidDpopProof | JwtErrorKind::UseDpopNonce
                );
                Some(challenge_of("Bearer", !dpop_has_error && !dpop_code))
            }
        };
        let dpop_challenge = dpop.map(|d| {
            let mut challenge = challenge_of("DPoP", dpop_has_error);
            push_param(&mut challenge, "algs", &d.algs);
            challenge
        });
        let nonce = dpop
            .filter(|_| {
                matches!(
                    kind,
                    JwtErrorKind::UseDpopNonce | JwtErrorKind::InvalidDpopProof
                )
            })
            .and_then(|d| d.fresh_nonce());

        let mut builder = Response::builder();
        let body = if grpc {
            builder = builder
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/grpc")
                .header("grpc-status", table.grpc.to_string())
                .header("grpc-message", percent_encode_grpc(description));
            Bytes::new()
        } else {
            builder = builder
                .status(status)
                .header(header::CONTENT_TYPE, "application/json");
            let error = table.body_error;
            let body = serde_json::json!({ "error": error, "error_description": description });
            Bytes::from(body.to_string())
        };
        match kind {
            JwtErrorKind::KeysUnavailable | JwtErrorKind::ReplayStoreUnavailable => {
                builder = builder.header(
                    header::RETRY_AFTER,
                    self.retry_after_secs.max(1).to_string(),
                );
            }
            JwtErrorKind::Misconfigured => {}
            _ => {
                for challenge in bearer.into_iter().chain(dpop_challenge) {
                    builder = builder.header(header::WWW_AUTHENTICATE, challenge);
                }
                if let Some(nonce) = nonce {
                    builder = builder.header("dpop-nonce", nonce);
                }
            }
        }
        match builder.body(body) {
            Ok(r) => r,
            // Every header value above is built from checked ASCII; this is unreachable, but
            // an answer must still be given.
            Err(_) => {
                let mut r = Response::new(Bytes::new());
                *r.status_mut() = StatusCode::UNAUTHORIZED;
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
        }
    }
}

fn log(err: &JwtError) {
    let kind = err.kind().as_str();
    let detail = err.detail().unwrap_or("");
    match err.kind() {
        JwtErrorKind::Missing => {
            tracing::debug!(target: "validate_jwt", kind, "request refused: no token")
        }
        JwtErrorKind::KeysUnavailable => {
            tracing::warn!(target: "validate_jwt", kind, error = %err, "request refused: no keys")
        }
        JwtErrorKind::ReplayStoreUnavailable => {
            tracing::warn!(target: "validate_jwt", kind, error = %err, "request refused: the DPoP replay store failed")
        }
        JwtErrorKind::Misconfigured => {
            tracing::error!(target: "validate_jwt", kind, detail, "request refused: the layers are set up wrongly")
        }
        _ => tracing::info!(target: "validate_jwt", kind, detail, "request refused"),
    }
}

/// Whether the request is a gRPC call (`content-type: application/grpc[+proto|+json|…]`).
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
        .is_some_and(|v| {
            v.len() >= 16
                && v[..16].eq_ignore_ascii_case(b"application/grpc")
                && matches!(v.get(16), None | Some(b'+') | Some(b';'))
        })
}

pin_project! {
    /// The response body of [`ValidateJwt`](crate::ValidateJwt): the inner service's body, or
    /// the rejection's.
    #[project = BodyProj]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { data: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        ResponseBody {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn rejection(data: Bytes) -> Self {
        ResponseBody {
            kind: Kind::Rejection {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { body } => f.debug_tuple("Inner").field(body).finish(),
            Kind::Rejection { data } => f.debug_tuple("Rejection").field(data).finish(),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(kind: JwtErrorKind) -> Response<Bytes> {
        let answers = Answers {
            realm: Some("api".into()),
            retry_after_secs: 5,
            ..Default::default()
        };
        let err = if kind == JwtErrorKind::InsufficientScope {
            JwtError::insufficient("missing scope Files.Read".into(), Some("Files.Read".into()))
        } else {
            JwtError::new(kind)
        };
        answers.respond(&err, false)
    }

    #[test]
    fn every_kind_has_its_documented_answer() {
        for &kind in JwtErrorKind::ALL {
            let r = answer(kind);
            let www = r
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
            assert_eq!(r.extensions().get::<JwtError>().unwrap().kind(), kind);
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
            let desc = kind.description();
            match kind {
                JwtErrorKind::Missing => {
                    assert_eq!(r.status(), 401);
                    assert_eq!(www.as_deref(), Some(r#"Bearer realm="api""#));
                    assert_eq!(body["error"], "unauthorized");
                }
                JwtErrorKind::InvalidRequest => {
                    assert_eq!(r.status(), 400);
                    assert_eq!(
                        www.unwrap(),
                        format!(
                            r#"Bearer realm="api", error="invalid_request", error_description="{desc}""#
                        )
                    );
                    assert_eq!(body["error"], "invalid_request");
                }
                JwtErrorKind::InsufficientScope => {
                    assert_eq!(r.status(), 403);
                    assert_eq!(
                        www.unwrap(),
                        r#"Bearer realm="api", error="insufficient_scope", error_description="missing scope Files.Read", scope="Files.Read""#
                    );
                    assert_eq!(body["error_description"], "missing scope Files.Read");
                }
                JwtErrorKind::KeysUnavailable | JwtErrorKind::ReplayStoreUnavailable => {
                    assert_eq!(r.status(), 503);
                    assert_eq!(www, None);
                    assert_eq!(r.headers()[header::RETRY_AFTER], "5");
                    assert_eq!(body["error"], "temporarily_unavailable");
                }
                JwtErrorKind::Misconfigured => {
                    assert_eq!(r.status(), 500);
                    assert_eq!(www, None);
                    assert_eq!(body["error"], "server_error");
                    assert_eq!(body["error_description"], desc);
                }
                JwtErrorKind::InvalidDpopProof | JwtErrorKind::UseDpopNonce => {
                    // Without DPoP on, no request ever gets these; the code still has its status.
                    assert_eq!(r.status(), 401, "{kind}");
                    assert_eq!(body["error"], kind.as_str());
                    assert_eq!(www.as_deref(), Some(r#"Bearer realm="api""#));
                }
                _ => {
                    assert_eq!(r.status(), 401, "{kind}");
                    assert_eq!(
                        www.unwrap(),
                        format!(
                            r#"Bearer realm="api", error="invalid_token", error_description="{desc}""#
                        )
                    );
                    assert_eq!(body["error"], "invalid_token");
                    assert_eq!(body["error_description"], desc);
                }
            }
        }
    }

    #[test]
    fn every_kind_has_a_lowercase_display() {
        for &kind in JwtErrorKind::ALL {
            let text = JwtError::new(kind).to_string();
            assert!(!text.is_empty());
            assert_eq!(text, text.to_lowercase(), "{kind}");
        }
    }

    #[test]
    fn failure_overrides_apply_to_every_validation_failure() {
        let message = "Unauthorized. Access token is missing or invalid.";
        let answers = Answers {
            failed_status: Some(StatusCode::FORBIDDEN),
            failed_message: Some(message.into()),
            ..Default::default()
        };
        for kind in [
            JwtErrorKind::Missing,
            JwtErrorKind::Expired,
            JwtErrorKind::InsufficientScope,
        ] {
            let r = answers.respond(&JwtError::new(kind), false);
            assert_eq!(r.status(), 403, "{kind}");
            let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
            assert_eq!(body["error_description"], message, "{kind}");
            let www = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
            // A 403 never carries `invalid_token`; `insufficient_scope` is a 403's own code.
            match kind {
                JwtErrorKind::InsufficientScope => assert!(www.contains("insufficient_scope")),
                _ => assert_eq!(www, "Bearer", "{kind}"),
            }
        }
        for (kind, status) in [
            (JwtErrorKind::InvalidRequest, 400),
            (JwtErrorKind::KeysUnavailable, 503),
            (JwtErrorKind::Misconfigured, 500),
        ] {
            let r = answers.respond(&JwtError::new(kind), false);
            assert_eq!(r.status(), status, "{kind}");
            let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
            assert_ne!(body["error_description"], message, "{kind}");
        }
    }

    #[test]
    fn failure_overrides_apply_to_401_answers_too() {
        let answers = Answers {
            failed_status: Some(StatusCode::IM_A_TEAPOT),
            failed_message: Some("Unauthorized. Access token is missing or invalid.".into()),
            ..Default::default()
        };
        let r = answers.respond(&JwtError::new(JwtErrorKind::Expired), false);
        assert_eq!(r.status(), 418);
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            body["error_description"],
            "Unauthorized. Access token is missing or invalid."
        );
        let r = answers.respond(&JwtError::new(JwtErrorKind::InvalidRequest), false);
        assert_eq!(r.status(), 400);
    }

    #[test]
    fn every_challenge_ends_with_the_resource_metadata_pointer() {
        let url = "https://api.example/.well-known/oauth-protected-resource/mcp";
        let answers = Answers {
            realm: Some("api".into()),
            resource_metadata: Some(url.into()),
            ..Default::default()
        };
        let pointer = format!(r#"resource_metadata="{url}""#);
        for &kind in JwtErrorKind::ALL {
            for grpc in [false, true] {
                let r = answers.respond(&JwtError::new(kind), grpc);
                let www = r.headers().get(header::WWW_AUTHENTICATE);
                match kind {
                    // No challenge at all: not a token problem.
                    JwtErrorKind::KeysUnavailable
                    | JwtErrorKind::ReplayStoreUnavailable
                    | JwtErrorKind::Misconfigured => {
                        assert!(www.is_none(), "{kind}")
                    }
                    JwtErrorKind::Missing => assert_eq!(
                        www.unwrap().to_str().unwrap(),
                        format!(r#"Bearer realm="api", {pointer}"#)
                    ),
                    _ => {
                        let www = www.unwrap().to_str().unwrap();
                        assert!(www.ends_with(&format!(", {pointer}")), "{kind}: {www}");
                    }
                }
            }
        }
        // A status moved away from its code's: the plain challenge still points the way.
        let answers = Answers {
            failed_status: Some(StatusCode::IM_A_TEAPOT),
            resource_metadata: Some(url.into()),
            ..Default::default()
        };
        let r = answers.respond(&JwtError::new(JwtErrorKind::Expired), false);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            format!("Bearer {pointer}").as_str()
        );
    }

    #[test]
    fn grpc_answers_carry_grpc_statuses() {
        let answers = Answers::default();
        for (kind, code) in [
            (JwtErrorKind::Missing, "16"),
            (JwtErrorKind::InvalidSignature, "16"),
            (JwtErrorKind::InsufficientScope, "7"),
            (JwtErrorKind::KeysUnavailable, "14"),
            (JwtErrorKind::InvalidRequest, "3"),
            (JwtErrorKind::Misconfigured, "13"),
        ] {
            let r = answers.respond(&JwtError::new(kind), true);
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["grpc-status"], code);
            assert!(r.body().is_empty());
        }
        assert_eq!(percent_encode_grpc("a%b é"), "a%25b %C3%A9");
    }

    #[test]
    fn grpc_content_types_are_recognised() {
        let mut h = http::HeaderMap::new();
        for (v, want) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/GRPC", true),
            ("application/grpcx", false),
            ("application/json", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            assert_eq!(is_grpc(&h), want, "{v}");
        }
    }
}
