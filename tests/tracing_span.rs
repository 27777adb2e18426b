//! The `validate_jwt` span (one per validation, at `debug`): its fields for accepted and refused
//! tokens, the layer's events inside it, and nothing of the token itself. Read with a real
//! `tracing-subscriber` registry and a small capturing layer, installed for the test's thread.
#![cfg(feature = "aws-lc-rs")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use tower::ServiceExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use validate_jwt::testing::{BadToken, TestIssuer};

type Fields = BTreeMap<String, String>;
/// An event's message and the name of the span it happened in.
type Seen = (String, Option<String>);

/// Closed `validate_jwt` spans with their fields, and events with the span they were in.
#[derive(Clone, Default)]
struct Captured {
    spans: Arc<Mutex<Vec<Fields>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Captured {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        ctx.span(id).unwrap().extensions_mut().insert(fields);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let mut extensions = span.extensions_mut();
        let fields = extensions.get_mut::<Fields>().unwrap();
        values.record(&mut Visitor(fields));
    }
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let span = ctx.event_span(event).map(|s| s.name().to_owned());
        self.events.lock().unwrap().push((message, span));
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        if span.name() == "validate_jwt" {
            let fields = span.extensions().get::<Fields>().cloned().unwrap();
            self.spans.lock().unwrap().push(fields);
        }
    }
}

fn install() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(captured.clone())
        .with(tracing_subscriber::filter::LevelFilter::DEBUG);
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}

async fn get_with(app: &Router, token: &str) -> u16 {
    let request = http::Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    app.clone()
        .oneshot(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.get(name).map(String::as_str)
}

#[tokio::test]
async fn a_refused_token_is_explained_in_its_span_without_the_token() {
    let (captured, _guard) = install();
    let issuer = TestIssuer::start().unwrap();
    let layer = issuer.layer_builder().build().unwrap();
    layer.ready().await.unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);

    let expired = issuer.token().sign_bad(BadToken::Expired);
    assert_eq!(get_with(&app, &expired).await, 401);
    let good = issuer.token().sign();
    assert_eq!(get_with(&app, &good).await, 200);

    let spans = captured.spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let refused = &spans[0];
    assert_eq!(field(refused, "outcome"), Some("refused"));
    assert_eq!(field(refused, "reason"), Some("expired"));
    assert_eq!(field(refused, "alg"), Some("\"RS256\""));
    let kid = issuer.jwks()["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(field(refused, "kid"), Some(format!("{kid:?}").as_str()));
    assert_eq!(
        field(refused, "iss"),
        Some(format!("{:?}", issuer.issuer()).as_str())
    );
    assert_eq!(field(refused, "source"), Some("0"));
    let signature = expired.rsplit('.').next().unwrap();
    for value in refused.values() {
        assert!(!value.contains(signature) && !value.contains(&expired));
    }

    let accepted = &spans[1];
    assert_eq!(field(accepted, "outcome"), Some("accepted"));
    assert_eq!(field(accepted, "source"), Some("0"));
    assert_eq!(field(accepted, "reason"), None);
    assert_eq!(field(accepted, "iss"), None);

    // The layer's own event keeps its name and happens inside the span.
    let events = captured.events.lock().unwrap().clone();
    assert!(
        events.contains(&(
            "request refused".to_owned(),
            Some("validate_jwt".to_owned())
        )),
        "{events:?}"
    );
}

#[tokio::test]
async fn the_slow_path_and_validate_token_have_their_span_too() {
    let (captured, _guard) = install();
    let issuer = TestIssuer::start().unwrap();
    // No `ready()`: the first request waits for the keys in the pending future.
    let layer = issuer.layer_builder().build().unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer.clone());
    assert_eq!(get_with(&app, &issuer.token().sign()).await, 200);
    let err = layer.validate_token("not.a.jwt").await.unwrap_err();
    assert_eq!(err.kind().as_str(), "malformed");

    let spans = captured.spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!(field(&spans[0], "outcome"), Some("accepted"));
    assert_eq!(field(&spans[0], "source"), Some("0"));
    assert_eq!(field(&spans[1], "outcome"), Some("refused"));
    assert_eq!(field(&spans[1], "reason"), Some("malformed"));
}
