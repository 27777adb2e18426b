//! `ValidateJwtLayer::explain`: the report of every check agrees with the layer and lists every
//! failure. (Every call of the attack suite and its friends also checks the agreement: see
//! `tests/common::assert_explained`.) Real keys and a real identity provider on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use validate_jwt::explain::{CheckName, Outcome};
use validate_jwt::testing::{BadToken, TestIssuer};
use validate_jwt::{
    Algorithm, JwtErrorKind, ManualClock, Requirement, StaticKeys, ValidateJwtLayer,
};

fn idp() -> TestIssuer {
    TestIssuer::builder()
        .with_algorithms([Algorithm::EdDSA, Algorithm::RS256])
        .start()
        .unwrap()
}

fn layer_for(idp: &TestIssuer) -> ValidateJwtLayer {
    idp.layer_builder()
        .require_all_scopes(["Echo.Read"])
        .build()
        .unwrap()
}

fn failed(report: &validate_jwt::Explanation) -> Vec<CheckName> {
    report.failures().map(|c| c.name()).collect()
}

#[tokio::test]
async fn each_bad_token_of_the_kit_is_refused_by_the_check_the_layer_names() {
    let idp = idp();
    let layer = layer_for(&idp);
    layer.ready().await.unwrap();
    let check_of = |bad: BadToken| match bad {
        BadToken::Expired => CheckName::Expiry,
        BadToken::NotYetValid => CheckName::NotBefore,
        BadToken::WrongAudience => CheckName::Audience,
        BadToken::WrongIssuer => CheckName::Issuer,
        BadToken::UnknownKey => CheckName::Key,
        BadToken::AlgNone => CheckName::Algorithm,
        BadToken::TamperedPayload => CheckName::Signature,
        other => panic!("a new BadToken: {other:?}"),
    };
    for bad in BadToken::ALL.iter().copied() {
        let token = idp.token().scopes(["Echo.Read"]).sign_bad(bad);
        let err = layer.validate_token(&token).await.unwrap_err();
        let report = layer.explain(&token).await;
        assert_eq!(err.kind(), bad.kind(), "{bad:?}");
        assert_eq!(
            report.answer().kind(),
            Some(bad.kind()),
            "{bad:?}\n{report}"
        );
        assert_eq!(report.answer().status(), bad.status().as_u16(), "{bad:?}");
        assert_eq!(report.error().unwrap().detail(), err.detail(), "{bad:?}");
        let first = report.failures().next().unwrap();
        assert_eq!(first.name(), check_of(bad), "{bad:?}\n{report}");
        assert_eq!(first.refusal(), Some(bad.kind()), "{bad:?}");
    }
}

#[tokio::test]
async fn a_token_failing_several_checks_lists_all_of_them() {
    let idp = idp();
    let layer = layer_for(&idp);
    let token = idp
        .token()
        .audience("api://another-api")
        .scopes(["Other.Scope"])
        .claim("exp", now() - 7200)
        .sign();
    let report = layer.explain(&token).await;
    println!("{report}"); // shown with --nocapture
    assert_eq!(
        failed(&report),
        [
            CheckName::Expiry,
            CheckName::Audience,
            CheckName::Requirement
        ],
        "{report}"
    );
    // The layer answers for the first.
    assert_eq!(report.answer().kind(), Some(JwtErrorKind::Expired));
    assert_eq!(report.answer().status(), 401);
    assert_eq!(report.answer().error(), Some("invalid_token"));
    assert!(
        report
            .answer()
            .www_authenticate()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    // Expected against found, side by side.
    let audience = report.check(CheckName::Audience).unwrap();
    assert!(audience.expected().contains(idp.audience()), "{report}");
    assert!(audience.found().contains("api://another-api"), "{report}");
    let requirement = report.check(CheckName::Requirement).unwrap();
    assert!(requirement.expected().contains("Echo.Read"), "{report}");
    assert!(requirement.found().contains("Other.Scope"), "{report}");
    assert_eq!(requirement.detail(), Some("missing scope Echo.Read"));
    let expiry = report.check(CheckName::Expiry).unwrap();
    assert!(expiry.found().contains("ago"), "{report}");
    assert!(expiry.expected().contains("60 s leeway"), "{report}");
    // Everything before them passed, with the key that verified the signature.
    for name in [
        CheckName::Format,
        CheckName::Header,
        CheckName::Algorithm,
        CheckName::Type,
        CheckName::Key,
        CheckName::Signature,
        CheckName::Claims,
        CheckName::NotBefore,
        CheckName::Issuer,
    ] {
        assert_eq!(
            report.check(name).unwrap().outcome(),
            Outcome::Pass,
            "{name}\n{report}"
        );
    }
    assert!(report.claims_verified());
    assert_eq!(report.claims().unwrap()["scope"], "Other.Scope");
    assert_eq!(report.header().unwrap()["alg"], "RS256");
}

#[tokio::test]
async fn a_valid_token_passes_every_check() {
    let idp = idp();
    let layer = layer_for(&idp);
    let token = idp.token().scopes(["Echo.Read"]).sign();
    let report = layer.explain(&token).await;
    assert!(report.is_accepted(), "{report}");
    assert_eq!(report.answer().status(), 200);
    assert_eq!(report.answer().kind(), None);
    assert_eq!(report.failures().count(), 0);
    assert!(
        report
            .checks()
            .iter()
            .all(|c| matches!(c.outcome(), Outcome::Pass | Outcome::Info))
    );
    assert!(layer.validate_token(&token).await.is_ok());
}

#[tokio::test]
async fn claims_of_a_forged_token_are_shown_as_unverified_and_their_issuer_is_not_judged() {
    let idp = idp();
    let layer = layer_for(&idp);
    let token = idp
        .token()
        .scopes(["Echo.Read"])
        .sign_bad(BadToken::TamperedPayload);
    let report = layer.explain(&token).await;
    assert_eq!(failed(&report), [CheckName::Signature], "{report}");
    assert!(!report.claims_verified());
    assert_eq!(report.claims().unwrap()["sub"], "admin");
    assert!(
        report.notes().iter().any(|n| n.contains("did not verify")),
        "{report}"
    );
    assert_eq!(
        report.check(CheckName::Issuer).unwrap().outcome(),
        Outcome::Skipped
    );
    assert!(report.to_string().contains("claims (NOT verified)"));
}

#[tokio::test]
async fn a_new_kid_is_found_after_a_refresh_as_the_layer_finds_it() {
    let idp = idp();
    let layer = layer_for(&idp);
    layer.ready().await.unwrap();
    idp.rotate();
    let token = idp.token().scopes(["Echo.Read"]).sign();
    let before = idp.jwks_requests();
    let report = layer.explain(&token).await;
    assert!(report.is_accepted(), "{report}");
    let key = report.check(CheckName::Key).unwrap();
    assert!(
        key.found().contains("after a refresh for this kid"),
        "{report}"
    );
    assert_eq!(idp.jwks_requests(), before + 1);
    // The layer now knows the key: no second refresh.
    let again = layer.explain(&token).await;
    assert!(
        !again
            .check(CheckName::Key)
            .unwrap()
            .found()
            .contains("refresh")
    );
    assert_eq!(idp.jwks_requests(), before + 1);
}

#[tokio::test]
async fn header_refusals_leave_the_keys_untouched() {
    let idp = idp();
    let layer = layer_for(&idp);
    layer.ready().await.unwrap();
    let before = idp.jwks_requests();
    // A `typ` the layer refuses, with a `kid` the key sets do not hold.
    let token = idp
        .token()
        .scopes(["Echo.Read"])
        .typ("id+jwt")
        .kid("never-published")
        .sign();
    let report = layer.explain(&token).await;
    assert_eq!(report.answer().kind(), Some(JwtErrorKind::InvalidHeader));
    assert_eq!(failed(&report)[0], CheckName::Type, "{report}");
    assert_eq!(
        report.check(CheckName::Key).unwrap().outcome(),
        Outcome::Skipped
    );
    assert_eq!(idp.jwks_requests(), before, "the report fetched keys");
}

#[tokio::test]
async fn time_is_the_layers_clock_with_its_leeway() {
    let secret = b"a shared secret of at least 32 bytes!";
    let key = TestKey::hmac("k", "HS256", secret);
    let clock = ManualClock::new(1_000_000);
    let layer = ValidateJwtLayer::builder()
        .add_keys(StaticKeys::new().add_hmac_secret(Some("k"), secret))
        .add_issuer(ISSUER)
        .add_audience(AUDIENCE)
        .with_leeway(Duration::from_secs(30))
        .with_clock(clock.clone())
        .build()
        .unwrap();
    let token = key.token(&json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
        "exp": 1_000_000 - 20, "nbf": 1_000_000 + 100}));
    let report = layer.explain(&token).await;
    assert_eq!(report.now(), 1_000_000);
    // Expired 20 s ago: within the 30 s leeway. Not before 100 s from now: beyond it.
    assert_eq!(failed(&report), [CheckName::NotBefore], "{report}");
    assert_eq!(report.answer().kind(), Some(JwtErrorKind::NotYetValid));
    assert!(
        report
            .check(CheckName::Expiry)
            .unwrap()
            .found()
            .contains("20 s ago")
    );
    assert!(
        report
            .check(CheckName::NotBefore)
            .unwrap()
            .found()
            .contains("in 100 s")
    );
    clock.advance(100);
    let later = layer.explain(&token).await;
    assert_eq!(failed(&later), [CheckName::Expiry], "{later}");
}

#[tokio::test]
async fn each_requirement_has_its_row_and_synchronous_refusals_come_first() {
    let secret = b"a shared secret of at least 32 bytes!";
    let key = TestKey::hmac("k", "HS256", secret);
    let lookups = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = lookups.clone();
    let layer = ValidateJwtLayer::builder()
        .add_keys(StaticKeys::new().add_hmac_secret(Some("k"), secret))
        .add_issuer(ISSUER)
        .add_audience(AUDIENCE)
        .require(Requirement::async_predicate(
            "directory lookup",
            move |_claims| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Err(validate_jwt::Denied::new("the directory says no")) }
            },
        ))
        .require_all_scopes(["Echo.Write"])
        .require(Requirement::claim("tid").any_of(["tenant-a"]))
        .build()
        .unwrap();
    let lookups_made = || lookups.load(std::sync::atomic::Ordering::SeqCst);
    let requirement_rows = |report: &validate_jwt::Explanation| -> Vec<_> {
        report
            .checks()
            .iter()
            .filter(|c| c.name() == CheckName::Requirement)
            .map(|c| (c.outcome(), c.detail().map(str::to_owned)))
            .collect()
    };
    let token = key.token(&json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
        "exp": now() + 600, "scp": "Echo.Read", "tid": "tenant-a"}));
    let err = layer.validate_token(&token).await.unwrap_err();
    let report = layer.explain(&token).await;
    // As the layer: the synchronous refusal stops it before the asynchronous part runs.
    assert_eq!(lookups_made(), 0);
    assert_eq!(
        requirement_rows(&report),
        [
            (Outcome::Skipped, None),
            (Outcome::Fail, Some("missing scope Echo.Write".to_owned())),
            (Outcome::Pass, None),
        ],
        "{report}"
    );
    // Claims no key verified never reach it either.
    let forged = TestKey::hmac("k", "HS256", b"another secret, also 32 bytes long!!")
        .token(&json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
            "exp": now() + 600, "scp": "Echo.Write", "tid": "tenant-a"}));
    let forged_report = layer.explain(&forged).await;
    assert_eq!(lookups_made(), 0);
    assert_eq!(
        requirement_rows(&forged_report)[0],
        (Outcome::Skipped, None),
        "{forged_report}"
    );
    // A token passing everything else: the asynchronous part runs, once, as in the layer.
    let writer = key.token(&json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
        "exp": now() + 600, "scp": "Echo.Write", "tid": "tenant-a"}));
    let refused = layer.validate_token(&writer).await.unwrap_err();
    assert_eq!(lookups_made(), 1);
    let writer_report = layer.explain(&writer).await;
    assert_eq!(lookups_made(), 2);
    assert_eq!(
        requirement_rows(&writer_report),
        [
            (Outcome::Fail, Some("the directory says no".to_owned())),
            (Outcome::Pass, None),
            (Outcome::Pass, None),
        ],
        "{writer_report}"
    );
    assert_eq!(writer_report.error().unwrap().detail(), refused.detail());
    // The layer checks the synchronous rules before awaiting any: the scope's refusal.
    assert_eq!(err.detail(), Some("missing scope Echo.Write"));
    assert_eq!(report.error().unwrap().detail(), err.detail());
    assert_eq!(report.answer().status(), 403);
    assert!(
        report
            .answer()
            .www_authenticate()
            .unwrap()
            .contains("scope=\"Echo.Write\"")
    );
}

#[tokio::test]
async fn no_token_and_a_token_with_its_scheme_are_refused_as_validate_token_refuses_them() {
    let idp = idp();
    let layer = layer_for(&idp);
    let report = layer.explain("").await;
    assert_eq!(report.answer().kind(), Some(JwtErrorKind::Missing));
    assert_eq!(report.answer().status(), 401);
    let token = idp.token().sign();
    let report = layer.explain(&format!("Bearer {token}")).await;
    assert_eq!(report.answer().kind(), Some(JwtErrorKind::Malformed));
    assert_eq!(failed(&report), [CheckName::Format]);
    assert!(report.error().unwrap().detail().unwrap().contains("scheme"));
}

#[tokio::test]
async fn the_answer_is_the_layers_own_with_its_overrides() {
    let idp = idp();
    let layer = idp
        .layer_builder()
        .with_failed_status(403)
        .with_failed_message("denied")
        .with_realm("echo")
        .build()
        .unwrap();
    let token = idp.token().sign_bad(BadToken::Expired);
    let report = layer.explain(&token).await;
    let answer = call(&layer, &token).await; // also asserts the agreement
    assert_eq!(report.answer().status(), 403);
    assert_eq!(
        report.answer().www_authenticate(),
        answer.www_authenticate.as_deref()
    );
}

#[tokio::test]
async fn display_is_a_table_of_every_check_under_the_answer() {
    let idp = idp();
    let layer = layer_for(&idp);
    let token = idp.token().scopes(["Other.Scope"]).sign();
    let text = layer.explain(&token).await.to_string();
    println!("{text}"); // shown with --nocapture
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("answer: 403 insufficient_scope: "),
        "{text}"
    );
    assert!(
        lines[1].contains("check") && lines[1].contains("expected") && lines[1].contains("found")
    );
    for row in [
        "✓ format",
        "✓ signature",
        "✓ issuer",
        "✓ audience",
        "✗ requirement",
        "· issued_at",
    ] {
        assert!(text.contains(row), "no {row:?} in\n{text}");
    }
    assert!(
        text.contains("missing") || text.contains("Other.Scope"),
        "{text}"
    );
}

#[tokio::test]
async fn json_names_each_check_its_outcome_and_the_answer() {
    let idp = idp();
    let layer = layer_for(&idp);
    let token = idp
        .token()
        .scopes(["Echo.Read"])
        .sign_bad(BadToken::Expired);
    let report = layer.explain(&token).await;
    let json: Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["answer"]["status"], 401);
    assert_eq!(json["answer"]["kind"], "expired");
    assert_eq!(json["answer"]["error"], "invalid_token");
    assert_eq!(json["claims_verified"], true);
    assert_eq!(json["leeway_secs"], 60);
    let checks = json["checks"].as_array().unwrap();
    let expiry = checks.iter().find(|c| c["name"] == "expiry").unwrap();
    assert_eq!(expiry["outcome"], "fail");
    assert_eq!(expiry["refusal"], "expired");
    let signature = checks.iter().find(|c| c["name"] == "signature").unwrap();
    assert_eq!(signature["outcome"], "pass");
    assert_eq!(signature["refusal"], Value::Null);
    assert_eq!(json["header"]["alg"], "RS256");
    assert_eq!(json["claims"]["sub"], report.claims().unwrap()["sub"]);
}

/// Collects every tracing event's fields as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<String>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn explain_logs_nothing_where_the_layer_logs_its_refusals() {
    let idp = idp();
    let layer = layer_for(&idp);
    layer.ready().await.unwrap();
    let token = idp.token().sign_bad(BadToken::WrongAudience);
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let report = layer.explain(&token).await;
    assert_eq!(report.answer().kind(), Some(JwtErrorKind::InvalidAudience));
    let during_explain = captured.0.lock().unwrap().len();
    let _ = call(&layer, &token).await;
    let logs = captured.0.lock().unwrap().clone();
    assert!(
        logs.len() > during_explain,
        "the layer logs its refusal (else this test proves nothing)"
    );
    // `call` ran `explain` again after the layer: only the layer's own line is there.
    assert!(logs.iter().all(|l| !l.contains(&token)));
    captured.0.lock().unwrap().clear();
    let _ = layer.explain(&token).await;
    assert!(
        captured.0.lock().unwrap().is_empty(),
        "explain logged something"
    );
}

/// The sender-constraint row: the binding rule of the token alone (its `cnf` against the
/// layer's DPoP / certificate settings), judged as the layer judges it; the proof and the
/// certificate come with a request and are not checked here.
#[tokio::test]
async fn the_sender_constraint_row_judges_the_tokens_binding_against_the_layers_settings() {
    use validate_jwt::sender::{ClientCertificates, Dpop};
    let idp = idp();
    let row = |report: &validate_jwt::Explanation| {
        let rows: Vec<_> = report
            .checks()
            .iter()
            .filter(|c| c.name() == CheckName::SenderConstraint)
            .collect();
        assert_eq!(rows.len(), 1, "{report}");
        (
            rows[0].outcome(),
            rows[0].expected().to_owned(),
            rows[0].found().to_owned(),
        )
    };
    const JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let bound = idp
        .token()
        .scopes(["Echo.Read"])
        .claim("cnf", json!({ "jkt": JKT }))
        .sign();
    // Off, with a bearer token: it passes.
    let plain = layer_for(&idp);
    let bearer = idp.token().scopes(["Echo.Read"]).sign();
    let report = plain.explain(&bearer).await;
    assert!(report.is_accepted(), "{report}");
    let (outcome, expected, found) = row(&report);
    assert_eq!(outcome, Outcome::Pass);
    assert!(
        expected.contains("DPoP and certificate binding off"),
        "{expected}"
    );
    assert!(found.contains("bearer token"), "{found}");
    // Off, with a DPoP-bound token: refused, as the layer refuses it.
    let report = plain.explain(&bound).await;
    let (outcome, _, found) = row(&report);
    assert_eq!(outcome, Outcome::Fail, "{report}");
    assert!(found.contains(JKT), "{found}");
    assert_eq!(report.answer().kind(), Some(JwtErrorKind::InvalidBinding));
    let err = plain.validate_token(&bound).await.unwrap_err();
    assert_eq!(report.error().unwrap().detail(), err.detail());
    // DPoP required and certificate binding on: the bound token passes the token's rule…
    let bound_layer = idp
        .layer_builder()
        .require_all_scopes(["Echo.Read"])
        .with_dpop(Dpop::required())
        .with_client_certificates(ClientCertificates::from_extensions())
        .build()
        .unwrap();
    let report = bound_layer.explain(&bound).await;
    let (outcome, expected, found) = row(&report);
    assert_eq!(outcome, Outcome::Pass, "{report}");
    assert!(expected.contains("DPoP required"), "{expected}");
    assert!(expected.contains("certificate binding"), "{expected}");
    assert!(found.contains(JKT), "{found}");
    assert_eq!(
        report.is_accepted(),
        bound_layer.validate_token(&bound).await.is_ok(),
        "{report}"
    );
    // …and an unbound one is refused by it: no request could make it pass.
    let report = bound_layer.explain(&bearer).await;
    let (outcome, _, _) = row(&report);
    assert_eq!(outcome, Outcome::Fail, "{report}");
    assert_eq!(report.answer().status(), 401);
    assert!(bound_layer.validate_token(&bearer).await.is_err());
    // A header refusal skips it with the rest.
    let report = bound_layer.explain("e30.e30.c2ln").await;
    assert!(
        report
            .checks()
            .iter()
            .any(|c| c.name() == CheckName::SenderConstraint)
    );
}
