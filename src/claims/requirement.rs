//! Claim requirements: scopes, roles, any claim; all-of and any-of; predicates.
//!
//! Rules are built once, at configuration time; matching a token reads the claims the layer
//! already parsed and allocates nothing unless a rule fails.
//!
//! (The requirement language and its checks; a third of the file is tests.)

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use super::Claims;
use crate::error::ConfigError;

type SyncPredicate = dyn Fn(&Claims) -> Result<(), Denied> + Send + Sync;
type AsyncPredicate =
    dyn Fn(Claims) -> Pin<Box<dyn Future<Output = Result<(), Denied>> + Send>> + Send + Sync;

/// A rule a verified token's claims must satisfy, or the request is answered 403
/// `insufficient_scope`.
///
/// ```
/// use validate_jwt::Requirement;
///
/// // Azure AD: a delegated token needs the scope, an application token the app role.
/// let read = Requirement::any([
///     Requirement::all_scopes(["Files.Read"]),
///     Requirement::all_roles(["Files.Read.All"]),
/// ]);
/// // Any claim, APIM-style: `tid` must be one of these tenants.
/// let tenant = Requirement::claim("tid").any_of(["72f988bf-86f1-41af-91ab-2d7cd011db47"]);
/// // Nested claims by path (Keycloak).
/// let admin = Requirement::claim_path(["realm_access", "roles"]).any_of(["admin"]);
/// let rule = Requirement::all([read, tenant, admin]);
/// ```
#[derive(Clone)]
pub struct Requirement(Node);

#[derive(Clone)]
enum Node {
    Scopes { scopes: Arc<[Box<str>]>, all: bool },
    Roles { roles: Arc<[Box<str>]>, all: bool },
    Claim(ClaimRequirement),
    All(Arc<[Requirement]>),
    Any(Arc<[Requirement]>),
    Predicate(Arc<str>, Arc<SyncPredicate>),
    AsyncPredicate(Arc<str>, Arc<AsyncPredicate>),
}

impl fmt::Debug for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Node::Scopes { scopes, all } => write!(f, "scopes({}, {scopes:?})", mode(*all)),
            Node::Roles { roles, all } => write!(f, "roles({}, {roles:?})", mode(*all)),
            Node::Claim(c) => fmt::Debug::fmt(c, f),
            Node::All(r) => f.debug_tuple("all").field(r).finish(),
            Node::Any(r) => f.debug_tuple("any").field(r).finish(),
            Node::Predicate(n, _) | Node::AsyncPredicate(n, _) => write!(f, "predicate({n})"),
        }
    }
}

fn mode(all: bool) -> &'static str {
    if all { "all of" } else { "any of" }
}

/// Why a requirement was not met; its text becomes the `error_description` of the 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(String);

impl Denied {
    /// A denial with a reason (short, safe to send to the client).
    pub fn new(reason: impl Into<String>) -> Self {
        Denied(reason.into())
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn boxed<I, S>(items: I) -> Arc<[Box<str>]>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items
        .into_iter()
        .map(|s| s.into().into_boxed_str())
        .collect()
}

impl Requirement {
    /// All of these scopes, from `scp` or `scope` (a space-separated string or an array).
    /// Matching is whole-word and case-sensitive: `Files.Read` never matches `Files.ReadWrite`.
    pub fn all_scopes<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Requirement(Node::Scopes {
            scopes: boxed(scopes),
            all: true,
        })
    }

    /// At least one of these scopes.
    pub fn any_scope<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Requirement(Node::Scopes {
            scopes: boxed(scopes),
            all: false,
        })
    }

    /// All of these roles, from `roles` (an array of strings, or one string).
    pub fn all_roles<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Requirement(Node::Roles {
            roles: boxed(roles),
            all: true,
        })
    }

    /// At least one of these roles.
    pub fn any_role<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Requirement(Node::Roles {
            roles: boxed(roles),
            all: false,
        })
    }

    /// A rule on a top-level claim; finish it with [`ClaimRequirement::any_of`] or
    /// [`ClaimRequirement::all_of`].
    pub fn claim(name: impl Into<String>) -> ClaimRequirement {
        ClaimRequirement {
            path: boxed([name]),
            values: Arc::from([]),
            all: false,
            separator: None,
            as_text: false,
        }
    }

    /// A rule on a nested claim, by path (`["realm_access", "roles"]`).
    pub fn claim_path<I, S>(path: I) -> ClaimRequirement
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClaimRequirement {
            path: boxed(path),
            values: Arc::from([]),
            all: false,
            separator: None,
            as_text: false,
        }
    }

    /// Every one of these requirements.
    pub fn all(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        Requirement(Node::All(requirements.into_iter().collect()))
    }

    /// At least one of these requirements.
    pub fn any(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        Requirement(Node::Any(requirements.into_iter().collect()))
    }

    /// A rule in code. `name` appears in logs and `Debug` output.
    ///
    /// ```
    /// use validate_jwt::{Denied, Requirement};
    /// let not_guest = Requirement::predicate("not a guest", |claims| {
    ///     match claims.get("acct").and_then(|v| v.as_i64()) {
    ///         Some(1) => Err(Denied::new("guest accounts may not call this API")),
    ///         _ => Ok(()),
    ///     }
    /// });
    /// ```
    pub fn predicate<F>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn(&Claims) -> Result<(), Denied> + Send + Sync + 'static,
    {
        Requirement(Node::Predicate(name.into().into(), Arc::new(f)))
    }

    /// An asynchronous rule in code (for example a revocation list lookup). The request waits
    /// for it; keep it fast and bounded.
    ///
    /// ```
    /// use validate_jwt::{Denied, Requirement};
    /// let not_revoked = Requirement::async_predicate("not revoked", |claims| async move {
    ///     let jti = claims.get("jti").and_then(|v| v.as_str()).map(str::to_owned);
    ///     // look `jti` up somewhere…
    ///     if jti.as_deref() == Some("revoked-id") { Err(Denied::new("token revoked")) } else { Ok(()) }
    /// });
    /// ```
    pub fn async_predicate<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Claims) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Denied>> + Send + 'static,
    {
        let f: Arc<AsyncPredicate> = Arc::new(move |c| Box::pin(f(c)));
        Requirement(Node::AsyncPredicate(name.into().into(), f))
    }

    /// Checks the rule can ever be met; called by the builders.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError::InvalidRequirement(what.to_owned()));
        match &self.0 {
            Node::Scopes { scopes, .. } if scopes.is_empty() => bad("an empty list of scopes"),
            Node::Scopes { scopes, .. }
                if scopes.iter().any(|s| s.is_empty() || s.contains(' ')) =>
            {
                bad("a scope is empty or contains a space")
            }
            Node::Roles { roles, .. } if roles.is_empty() => bad("an empty list of roles"),
            Node::Claim(c) if c.path.is_empty() || c.path.iter().any(|s| s.is_empty()) => {
                bad("an empty claim name")
            }
            Node::Claim(c) if c.values.is_empty() => {
                bad("a claim rule without values (finish it with any_of or all_of)")
            }
            Node::Claim(c)
                if c.values
                    .iter()
                    .any(|v| !(v.is_string() || v.is_number() || v.is_boolean())) =>
            {
                bad("claim values must be strings, numbers or booleans")
            }
            Node::All(r) | Node::Any(r) if r.is_empty() => bad("an empty all()/any()"),
            Node::All(r) | Node::Any(r) => r.iter().try_for_each(Requirement::validate),
            _ => Ok(()),
        }
    }

    /// Whether any part of the rule is asynchronous.
    pub(crate) fn is_async(&self) -> bool {
        match &self.0 {
            Node::AsyncPredicate(..) => true,
            Node::All(r) | Node::Any(r) => r.iter().any(Requirement::is_async),
            _ => false,
        }
    }

    /// The top-level claim names the rule reads, so validation can capture them in its one parse.
    pub(crate) fn claim_names(&self, out: &mut Vec<Box<str>>) {
        let mut add = |name: &str| {
            if !out.iter().any(|n| **n == *name) {
                out.push(name.into());
            }
        };
        match &self.0 {
            Node::Scopes { .. } => {
                add("scp");
                add("scope");
            }
            Node::Roles { .. } => add("roles"),
            Node::Claim(c) => {
                if let Some(first) = c.path.first() {
                    add(first);
                }
            }
            Node::All(r) | Node::Any(r) => r.iter().for_each(|r| r.claim_names(out)),
            Node::Predicate(..) | Node::AsyncPredicate(..) => {}
        }
    }

    /// The scopes the rule names, for the `scope` attribute of `WWW-Authenticate`.
    pub(crate) fn scope_names(&self, out: &mut Vec<Box<str>>) {
        match &self.0 {
            Node::Scopes { scopes, .. } => {
                for s in scopes.iter() {
                    if !out.contains(s) {
                        out.push(s.clone());
                    }
                }
            }
            Node::All(r) | Node::Any(r) => r.iter().for_each(|r| r.scope_names(out)),
            _ => {}
        }
    }

    /// Checks the synchronous parts; asynchronous predicates are skipped (see `check_async`).
    pub(crate) fn check(&self, claims: &Claims) -> Result<(), Denied> {
        match &self.0 {
            Node::Scopes { scopes, all } => {
                check_set(scopes, *all, |want| claims.has_scope(want), "scope")
            }
            Node::Roles { roles, all } => {
                check_set(roles, *all, |want| claims.has_role(want), "role")
            }
            Node::Claim(c) => c.check(claims),
            Node::All(r) => r.iter().try_for_each(|r| r.check(claims)),
            Node::Any(r) => any_of(r.iter().map(|r| r.check(claims))),
            Node::Predicate(_, f) => f(claims),
            Node::AsyncPredicate(..) => Ok(()),
        }
    }

    /// Checks the whole rule, awaiting asynchronous predicates.
    pub(crate) fn check_async(
        &self,
        claims: Claims,
    ) -> Pin<Box<dyn Future<Output = Result<(), Denied>> + Send + '_>> {
        Box::pin(async move {
            match &self.0 {
                Node::AsyncPredicate(_, f) => f(claims).await,
                Node::All(r) => {
                    for r in r.iter() {
                        r.check_async(claims.clone()).await?;
                    }
                    Ok(())
                }
                Node::Any(r) => {
                    let mut results = Vec::with_capacity(r.len());
                    for r in r.iter() {
                        let result = r.check_async(claims.clone()).await;
                        if result.is_ok() {
                            return Ok(());
                        }
                        results.push(result);
                    }
                    any_of(results)
                }
                _ => self.check(&claims),
            }
        })
    }
}

// ---- For `explain` (src/explain.rs): a rule's parts, in words ---------------------------------
impl Requirement {
    /// The rule's parts as the layer lists them: the requirements of a top-level `all`
    /// (one per `require*` call on the builder), or the rule itself.
    pub(crate) fn parts(&self) -> Vec<&Requirement> {
        match &self.0 {
            Node::All(r) => r.iter().collect(),
            _ => vec![self],
        }
    }

    /// What the rule asks for, in words.
    pub(crate) fn describe(&self) -> String {
        let words = |items: &[Box<str>]| items.join(", ");
        match &self.0 {
            Node::Scopes { scopes, all } => format!("{} the scopes {}", mode(*all), words(scopes)),
            Node::Roles { roles, all } => format!("{} the roles {}", mode(*all), words(roles)),
            Node::Claim(c) => format!(
                "claim {} holding {} {}",
                c.path.join("."),
                mode(c.all),
                c.values
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Node::All(r) => format!(
                "all of ({})",
                r.iter()
                    .map(Requirement::describe)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Node::Any(r) => format!(
                "any of ({})",
                r.iter()
                    .map(Requirement::describe)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Node::Predicate(name, _) => format!("predicate {name}"),
            Node::AsyncPredicate(name, _) => format!("predicate {name} (asynchronous)"),
        }
    }

    /// What the token holds of what the rule reads, in words.
    pub(crate) fn found_in(&self, claims: &Claims) -> String {
        let listed = |items: Vec<&str>| match items.is_empty() {
            true => "none".to_owned(),
            false => items.join(" "),
        };
        match &self.0 {
            Node::Scopes { .. } => format!("scopes: {}", listed(claims.scopes().collect())),
            Node::Roles { .. } => format!("roles: {}", listed(claims.roles().collect())),
            Node::Claim(c) => match claims.get_path(c.path.iter().map(|s| &**s)) {
                Some(v) => format!("{}: {v}", c.path.join(".")),
                None => format!("no claim {}", c.path.join(".")),
            },
            Node::All(r) | Node::Any(r) => {
                let mut seen: Vec<String> = Vec::new();
                for found in r.iter().map(|r| r.found_in(claims)) {
                    if !seen.contains(&found) {
                        seen.push(found);
                    }
                }
                seen.join("; ")
            }
            Node::Predicate(..) | Node::AsyncPredicate(..) => "decided by the predicate".to_owned(),
        }
    }
}

fn check_set(
    wanted: &[Box<str>],
    all: bool,
    has: impl Fn(&str) -> bool,
    what: &str,
) -> Result<(), Denied> {
    if all {
        match wanted.iter().find(|w| !has(w)) {
            None => Ok(()),
            Some(missing) => Err(Denied(format!("missing {what} {missing}"))),
        }
    } else if wanted.iter().any(|w| has(w)) {
        Ok(())
    } else {
        Err(Denied(format!(
            "needs one of the {what}s {}",
            wanted.join(", ")
        )))
    }
}

fn any_of(results: impl IntoIterator<Item = Result<(), Denied>>) -> Result<(), Denied> {
    let mut reasons = Vec::new();
    for r in results {
        match r {
            Ok(()) => return Ok(()),
            Err(d) => reasons.push(d.0),
        }
    }
    Err(Denied(reasons.join(", or ")))
}

/// A rule on one claim (see [`Requirement::claim`]), with APIM's `match="any|all"` and
/// `separator` semantics.
#[derive(Clone)]
pub struct ClaimRequirement {
    path: Arc<[Box<str>]>,
    values: Arc<[Value]>,
    all: bool,
    separator: Option<Box<str>>,
    /// Values compared with the claim's text (APIM's `required-claims`: a number or boolean
    /// claim matches the value spelled as its JSON text).
    as_text: bool,
}

impl fmt::Debug for ClaimRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "claim({}, {}, {:?})",
            self.path.join("."),
            mode(self.all),
            self.values
        )
    }
}

impl ClaimRequirement {
    /// Splits a string claim by `separator` into a set of values (APIM's `separator`).
    #[must_use]
    pub fn separator(mut self, separator: impl Into<String>) -> Self {
        self.separator = Some(separator.into().into_boxed_str());
        self
    }

    /// Compares the (string) values with the claim's text: `"5"` matches the number `5` and
    /// `"true"` the boolean (APIM's `required-claims`, whose values are strings).
    #[cfg_attr(not(feature = "apim"), allow(dead_code))]
    pub(crate) fn compared_as_text(mut self) -> Self {
        self.as_text = true;
        self
    }

    /// The claim must hold at least one of `values` (strings, numbers or booleans, compared
    /// with their JSON type: the string `"1"` is not the number `1`).
    pub fn any_of<I, V>(mut self, values: I) -> Requirement
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        self.values = values.into_iter().map(Into::into).collect();
        self.all = false;
        Requirement(Node::Claim(self))
    }

    /// The claim must hold every one of `values`.
    pub fn all_of<I, V>(mut self, values: I) -> Requirement
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        self.values = values.into_iter().map(Into::into).collect();
        self.all = true;
        Requirement(Node::Claim(self))
    }

    fn holds(&self, claim: &Value, want: &Value) -> bool {
        let eq = |a: &Value| match self.as_text {
            true => text_eq(a, want),
            false => scalar_eq(a, want),
        };
        match claim {
            Value::Array(items) => items.iter().any(eq),
            Value::String(s) => match (&self.separator, want.as_str()) {
                (Some(sep), Some(want)) => s.split(&**sep).any(|part| part == want),
                _ => eq(claim),
            },
            _ => eq(claim),
        }
    }

    fn check(&self, claims: &Claims) -> Result<(), Denied> {
        // The name is only spelled out for a refusal: the passing path does not allocate.
        let name = || self.path.join(".");
        let Some(claim) = claims.get_path(self.path.iter().map(|s| &**s)) else {
            return Err(Denied(format!("missing claim {}", name())));
        };
        let ok = if self.all {
            self.values.iter().all(|want| self.holds(claim, want))
        } else {
            self.values.iter().any(|want| self.holds(claim, want))
        };
        if ok {
            Ok(())
        } else {
            Err(Denied(format!("claim {} lacks a required value", name())))
        }
    }
}

/// A claim against a wanted string, by the claim's text (numbers and booleans as JSON text).
fn text_eq(claim: &Value, want: &Value) -> bool {
    let Some(want) = want.as_str() else {
        return scalar_eq(claim, want);
    };
    match claim {
        Value::String(s) => s == want,
        Value::Number(n) => n.to_string() == want,
        Value::Bool(b) => want == if *b { "true" } else { "false" },
        _ => false,
    }
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Claims {
        Claims::from_unverified_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn scope_table() {
        let cases: &[(&str, Requirement, bool)] = &[
            (
                r#"{"scp":"Files.Read"}"#,
                Requirement::all_scopes(["Files.Read"]),
                true,
            ),
            (
                r#"{"scp":"Files.ReadWrite"}"#,
                Requirement::all_scopes(["Files.Read"]),
                false,
            ),
            (
                r#"{"scp":"files.read"}"#,
                Requirement::all_scopes(["Files.Read"]),
                false,
            ),
            (
                r#"{"scp":"a Files.Read b"}"#,
                Requirement::all_scopes(["Files.Read"]),
                true,
            ),
            (
                r#"{"scope":"a b"}"#,
                Requirement::all_scopes(["a", "b"]),
                true,
            ),
            (
                r#"{"scope":["a","b"]}"#,
                Requirement::all_scopes(["a", "b"]),
                true,
            ),
            (
                r#"{"scp":["a"]}"#,
                Requirement::all_scopes(["a", "b"]),
                false,
            ),
            (r#"{"scp":"a"}"#, Requirement::any_scope(["b", "a"]), true),
            (r#"{"scp":"c"}"#, Requirement::any_scope(["b", "a"]), false),
            (r#"{}"#, Requirement::all_scopes(["a"]), false),
            (r#"{"scp":5}"#, Requirement::all_scopes(["a"]), false),
            (
                r#"{"roles":["Admin"]}"#,
                Requirement::all_roles(["Admin"]),
                true,
            ),
            (
                r#"{"roles":"Admin"}"#,
                Requirement::all_roles(["Admin"]),
                true,
            ),
            (
                r#"{"roles":["admin"]}"#,
                Requirement::all_roles(["Admin"]),
                false,
            ),
            (
                r#"{"roles":["A"]}"#,
                Requirement::any_role(["B", "A"]),
                true,
            ),
            (
                r#"{"roles":["A"]}"#,
                Requirement::all_roles(["B", "A"]),
                false,
            ),
        ];
        for (json, req, want) in cases {
            assert_eq!(req.check(&claims(json)).is_ok(), *want, "{json} {req:?}");
        }
    }

    #[test]
    fn claim_table() {
        let cases: &[(&str, Requirement, bool)] = &[
            (
                r#"{"tid":"t1"}"#,
                Requirement::claim("tid").any_of(["t0", "t1"]),
                true,
            ),
            (
                r#"{"tid":"t2"}"#,
                Requirement::claim("tid").any_of(["t0", "t1"]),
                false,
            ),
            (r#"{}"#, Requirement::claim("tid").any_of(["t0"]), false),
            (
                r#"{"g":"a,b,c"}"#,
                Requirement::claim("g").separator(",").all_of(["a", "c"]),
                true,
            ),
            (
                r#"{"g":"a,b"}"#,
                Requirement::claim("g").separator(",").all_of(["a", "c"]),
                false,
            ),
            (
                r#"{"g":"a,b"}"#,
                Requirement::claim("g").all_of(["a"]),
                false,
            ),
            (
                r#"{"g":["a","b"]}"#,
                Requirement::claim("g").all_of(["a", "b"]),
                true,
            ),
            (r#"{"n":5}"#, Requirement::claim("n").any_of([5]), true),
            (r#"{"n":5.0}"#, Requirement::claim("n").any_of([5]), true),
            (r#"{"n":"5"}"#, Requirement::claim("n").any_of([5]), false),
            (
                r#"{"b":true}"#,
                Requirement::claim("b").any_of([true]),
                true,
            ),
            (
                r#"{"b":"true"}"#,
                Requirement::claim("b").any_of([true]),
                false,
            ),
            (
                r#"{"r":{"roles":["x"]}}"#,
                Requirement::claim_path(["r", "roles"]).any_of(["x"]),
                true,
            ),
            (
                r#"{"r":{"roles":["y"]}}"#,
                Requirement::claim_path(["r", "roles"]).any_of(["x"]),
                false,
            ),
            (
                r#"{"r":[]}"#,
                Requirement::claim_path(["r", "roles"]).any_of(["x"]),
                false,
            ),
            (
                r#"{"https://x.example/roles":["a"]}"#,
                Requirement::claim("https://x.example/roles").any_of(["a"]),
                true,
            ),
        ];
        for (json, req, want) in cases {
            assert_eq!(req.check(&claims(json)).is_ok(), *want, "{json} {req:?}");
        }
    }

    #[test]
    fn values_compared_as_text_match_numbers_and_booleans_by_their_text() {
        let rule = |values: &[&str]| {
            Requirement::claim("c")
                .compared_as_text()
                .any_of(values.iter().copied())
        };
        for (json, values, want) in [
            (r#"{"c":5}"#, &["5"][..], true),
            (r#"{"c":"5"}"#, &["5"][..], true),
            (r#"{"c":true}"#, &["true"][..], true),
            (r#"{"c":[1,"a"]}"#, &["1"][..], true),
            (r#"{"c":5}"#, &["6"][..], false),
            (r#"{"c":true}"#, &["True"][..], false),
            (r#"{"c":{"a":1}}"#, &["a"][..], false),
        ] {
            assert_eq!(rule(values).check(&claims(json)).is_ok(), want, "{json}");
        }
        // Without it, the types must agree.
        let typed = Requirement::claim("c").any_of(["5"]);
        assert!(typed.check(&claims(r#"{"c":5}"#)).is_err());
    }

    #[test]
    fn composition_table() {
        let scope_or_role = Requirement::any([
            Requirement::all_scopes(["Files.Read"]),
            Requirement::all_roles(["Files.Read.All"]),
        ]);
        assert!(
            scope_or_role
                .check(&claims(r#"{"scp":"Files.Read"}"#))
                .is_ok()
        );
        assert!(
            scope_or_role
                .check(&claims(r#"{"roles":["Files.Read.All"]}"#))
                .is_ok()
        );
        let denied = scope_or_role
            .check(&claims(r#"{"scp":"Other"}"#))
            .unwrap_err();
        assert_eq!(
            denied.reason(),
            "missing scope Files.Read, or missing role Files.Read.All"
        );
        let both = Requirement::all([
            Requirement::all_scopes(["a"]),
            Requirement::claim("tid").any_of(["t"]),
        ]);
        assert!(both.check(&claims(r#"{"scp":"a","tid":"t"}"#)).is_ok());
        assert!(both.check(&claims(r#"{"scp":"a","tid":"u"}"#)).is_err());
    }

    #[test]
    fn predicates_decide_with_a_reason() {
        let req = Requirement::predicate("even", |c| match c.get("n").and_then(Value::as_i64) {
            Some(n) if n % 2 == 0 => Ok(()),
            _ => Err(Denied::new("n must be even")),
        });
        assert!(req.check(&claims(r#"{"n":2}"#)).is_ok());
        assert_eq!(
            req.check(&claims(r#"{"n":3}"#)).unwrap_err().reason(),
            "n must be even"
        );
    }

    #[tokio::test]
    async fn async_predicates_are_awaited() {
        let req = Requirement::all([
            Requirement::all_scopes(["a"]),
            Requirement::async_predicate("not revoked", |c| async move {
                if c.get("jti").and_then(Value::as_str) == Some("bad") {
                    Err(Denied::new("revoked"))
                } else {
                    Ok(())
                }
            }),
        ]);
        assert!(req.is_async());
        assert!(
            req.check_async(claims(r#"{"scp":"a","jti":"ok"}"#))
                .await
                .is_ok()
        );
        assert_eq!(
            req.check_async(claims(r#"{"scp":"a","jti":"bad"}"#))
                .await
                .unwrap_err()
                .reason(),
            "revoked"
        );
        assert!(req.check_async(claims(r#"{"jti":"ok"}"#)).await.is_err());
    }

    #[test]
    fn impossible_rules_fail_validation() {
        let empty: [&str; 0] = [];
        for req in [
            Requirement::all_scopes(empty),
            Requirement::all_scopes(["a b"]),
            Requirement::all_roles(empty),
            Requirement::all([]),
            Requirement::any([]),
            Requirement::claim("").any_of(["x"]),
            Requirement::claim("x").any_of(empty),
            Requirement::claim("x").any_of([serde_json::json!({"a":1})]),
        ] {
            assert!(req.validate().is_err(), "{req:?}");
        }
        assert!(Requirement::all_scopes(["a"]).validate().is_ok());
    }

    #[test]
    fn claim_names_cover_what_the_rules_read() {
        let req = Requirement::all([
            Requirement::all_scopes(["a"]),
            Requirement::claim_path(["realm_access", "roles"]).any_of(["x"]),
        ]);
        let mut names = Vec::new();
        req.claim_names(&mut names);
        assert_eq!(
            names,
            vec!["scp".into(), "scope".into(), "realm_access".into()] as Vec<Box<str>>
        );
    }
}
