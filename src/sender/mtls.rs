//! Certificate-bound access tokens (RFC 8705 §3): the client certificate of the connection,
//! from the request's extensions or a trusted proxy's header.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, HeaderName};

use super::digest::{b64url, b64url_decode, sha256};
use crate::error::ConfigError;
use crate::extract::hex_byte;

/// The client certificate of a request's TLS connection (DER), put into the request's
/// extensions by a server that terminates TLS itself (tokio-rustls, axum-server, hyper with
/// rustls): the layer reads it with [`ClientCertificates::from_extensions`].
///
/// ```
/// use validate_jwt::sender::ClientCertificate;
/// # let der: Vec<u8> = vec![0x30, 0x03, 0x02, 0x01, 0x01];
/// let mut request = http::Request::new(());
/// // With rustls: `connection.peer_certificates()` → the first is the client's.
/// request.extensions_mut().insert(ClientCertificate::from_der(der));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    der: Bytes,
}

impl ClientCertificate {
    /// The end-entity certificate, DER-encoded.
    pub fn from_der(der: impl Into<Bytes>) -> Self {
        ClientCertificate { der: der.into() }
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The RFC 8705 `x5t#S256` thumbprint: base64url(SHA-256(DER)).
    pub fn thumbprint(&self) -> String {
        b64url(&sha256(&self.der))
    }
}

/// How a TLS-terminating proxy passes the client certificate in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateHeader {
    /// Envoy's `x-forwarded-client-cert`: the last element's `Cert="…"` (URL-encoded PEM), or
    /// its `Hash=…` (hex SHA-256 of the DER) when it carries no `Cert`.
    EnvoyXfcc,
    /// A PEM certificate, URL-encoded or not: nginx's `$ssl_client_escaped_cert`, HAProxy,
    /// Traefik's `X-Forwarded-Tls-Client-Cert` (base64 DER without the PEM lines also works).
    Pem,
}

/// Where the layer finds the client certificate for certificate-bound tokens (RFC 8705 §3),
/// for [`ValidateJwtBuilder::with_client_certificates`](crate::ValidateJwtBuilder::with_client_certificates).
///
/// A token whose `cnf` carries `x5t#S256` is accepted only if the SHA-256 thumbprint of the
/// connection's client certificate matches; tokens without it are unaffected.
///
/// ```
/// use validate_jwt::sender::{CertificateHeader, ClientCertificates};
///
/// // The server terminates TLS and inserts `ClientCertificate` into each request.
/// let direct = ClientCertificates::from_extensions();
/// // Envoy terminates TLS and forwards the certificate; it must overwrite any header of that
/// // name a client sent (`forward_client_cert_details: SANITIZE_SET`).
/// let proxied = ClientCertificates::from_trusted_header("x-forwarded-client-cert", CertificateHeader::EnvoyXfcc);
/// # let _ = (direct, proxied);
/// ```
#[derive(Clone)]
#[must_use]
pub struct ClientCertificates {
    source: Source,
}

#[derive(Clone)]
enum Source {
    Extensions,
    Header {
        name: String,
        format: CertificateHeader,
    },
}

impl fmt::Debug for ClientCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Extensions => f.write_str("ClientCertificates::from_extensions()"),
            Source::Header { name, format } => f
                .debug_struct("ClientCertificates")
                .field("header", name)
                .field("format", format)
                .finish(),
        }
    }
}

impl ClientCertificates {
    /// The [`ClientCertificate`] in the request's extensions (a server terminating TLS).
    pub fn from_extensions() -> Self {
        ClientCertificates {
            source: Source::Extensions,
        }
    }

    /// The header `name`, set by a TLS-terminating proxy you trust to overwrite it on every
    /// request: whoever can set it chooses the certificate.
    pub fn from_trusted_header(name: impl Into<String>, format: CertificateHeader) -> Self {
        ClientCertificates {
            source: Source::Header {
                name: name.into(),
                format,
            },
        }
    }

    pub(crate) fn build(self) -> Result<CertSource, ConfigError> {
        Ok(match self.source {
            Source::Extensions => CertSource::Extensions,
            Source::Header { name, format } => {
                let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    ConfigError::InvalidSetting {
                        setting: "ClientCertificates::from_trusted_header",
                        reason: format!("{name:?} is not a header name"),
                    }
                })?;
                CertSource::Header { header, format }
            }
        })
    }
}

/// The checked certificate source.
pub(crate) enum CertSource {
    Extensions,
    Header {
        header: HeaderName,
        format: CertificateHeader,
    },
}

impl CertSource {
    /// The `x5t#S256` of the request's client certificate: `Ok(None)` when there is none,
    /// `Err` with a reason when the header is unreadable or repeated.
    pub(crate) fn thumbprint(
        &self,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Option<String>, &'static str> {
        match self {
            CertSource::Extensions => Ok(extensions
                .get::<ClientCertificate>()
                .map(ClientCertificate::thumbprint)),
            CertSource::Header { header, format } => {
                let mut values = headers.get_all(header).iter();
                let Some(value) = values.next() else {
                    return Ok(None);
                };
                if values.next().is_some() {
                    return Err("the client certificate header is repeated");
                }
                let text = value
                    .to_str()
                    .map_err(|_| "the client certificate header is not ASCII")?;
                match format {
                    CertificateHeader::Pem => pem_thumbprint(text).map(Some),
                    CertificateHeader::EnvoyXfcc => xfcc_thumbprint(text).map(Some),
                }
            }
        }
    }
}

/// `text` percent-decoded (`+` stays `+`: base64 uses it), as UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    String::from_utf8(crate::extract::percent_decode(text, false)?).ok()
}

/// The thumbprint of a PEM certificate (URL-encoded or not), or of bare base64 DER.
fn pem_thumbprint(text: &str) -> Result<String, &'static str> {
    let text =
        percent_decode(text.trim()).ok_or("the client certificate is not URL-encoded correctly")?;
    let body = match text.find("-----BEGIN CERTIFICATE-----") {
        Some(start) => {
            let rest = &text[start + "-----BEGIN CERTIFICATE-----".len()..];
            let end = rest
                .find("-----END CERTIFICATE-----")
                .ok_or("the client certificate's PEM has no END line")?;
            &rest[..end]
        }
        None => text.as_str(),
    };
    // Proxies fold the PEM's line breaks into spaces, tabs or nothing.
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64_simd::STANDARD
        .decode_to_vec(b64.as_bytes())
        .ok()
        .or_else(|| b64url_decode(b64.as_bytes()))
        .filter(|d| !d.is_empty())
        .ok_or("the client certificate is not base64")?;
    Ok(b64url(&sha256(&der)))
}

/// Splits `text` at `sep` outside double quotes.
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The thumbprint from envoy's `x-forwarded-client-cert`: the last element (the one the
/// nearest proxy added), its `Cert`, else its `Hash`.
fn xfcc_thumbprint(text: &str) -> Result<String, &'static str> {
    let element = split_unquoted(text, ',')
        .into_iter()
        .next_back()
        .ok_or("the client certificate header is empty")?;
    let mut hash = None;
    for pair in split_unquoted(element, ';') {
        let Some((key, value)) = pair.trim().split_once('=') else {
            continue;
        };
        let value = value.trim_matches('"');
        if key.eq_ignore_ascii_case("Cert") {
            return pem_thumbprint(value);
        }
        if key.eq_ignore_ascii_case("Hash") {
            hash = Some(value);
        }
    }
    let hex = hash.ok_or("the client certificate header has neither `Cert` nor `Hash`")?;
    if hex.len() != 64 {
        return Err("the client certificate header's `Hash` is not a SHA-256");
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = hex
            .as_bytes()
            .get(2 * i..2 * i + 2)
            .and_then(hex_byte)
            .ok_or("the client certificate header's `Hash` is not hex")?;
    }
    Ok(b64url(&digest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DER: &[u8] = b"\x30\x03\x02\x01\x01";

    fn expected() -> String {
        ClientCertificate::from_der(DER.to_vec()).thumbprint()
    }

    fn pem() -> String {
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64_simd::STANDARD.encode_to_string(DER)
        )
    }

    fn escaped(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b => format!("%{b:02X}"),
            })
            .collect()
    }

    #[test]
    fn pem_headers_are_read_plain_escaped_and_folded() {
        assert_eq!(pem_thumbprint(&pem()).unwrap(), expected());
        assert_eq!(pem_thumbprint(&escaped(&pem())).unwrap(), expected());
        assert_eq!(
            pem_thumbprint(&pem().replace('\n', " ")).unwrap(),
            expected()
        );
        assert!(pem_thumbprint("-----BEGIN CERTIFICATE-----!!").is_err());
    }

    #[test]
    fn envoy_headers_give_the_last_elements_certificate_or_hash() {
        let hex: String = sha256(DER).iter().map(|b| format!("{b:02x}")).collect();
        let by_hash = format!("By=spiffe://a;Hash={hex};Subject=\"CN=x, O=y\"");
        assert_eq!(xfcc_thumbprint(&by_hash).unwrap(), expected());
        let by_cert = format!(
            "Hash=00;Cert=\"other\",By=spiffe://b;Cert=\"{}\"",
            escaped(&pem())
        );
        assert_eq!(xfcc_thumbprint(&by_cert).unwrap(), expected());
        assert!(xfcc_thumbprint("By=x;Subject=y").is_err());
        // `+` or `-` is no hex digit (`u8::from_str_radix` takes a sign).
        for signed in ["+", "-"] {
            let bad = format!("Hash={signed}{}", &hex[1..]);
            assert_eq!(
                xfcc_thumbprint(&bad),
                Err("the client certificate header's `Hash` is not hex"),
                "{bad}"
            );
        }
    }

    #[test]
    fn percent_decoding_takes_exactly_two_hex_digits() {
        assert_eq!(percent_decode("a%2Fb%2f").unwrap(), "a/b/");
        for bad in ["%+1", "%-1", "%+f", "%1", "%", "%zz", "x%+0y"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
        assert_eq!(
            pem_thumbprint("%+1MAMCAQE"),
            Err("the client certificate is not URL-encoded correctly")
        );
    }
}
