//! Who may send events: Standard Webhooks signatures, or a bearer token.
//!
//! A signed request carries `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` headers; the signature is `v1,<base64>` of
//! HMAC-SHA256 over `id.timestamp.body`, keyed by the secret (`whsec_` and
//! base64). The header may hold several signatures, and several secrets
//! may be configured, so that keys can be rotated without a gap. Every
//! comparison takes the same time whatever matches.

use std::fmt;

use axum::http::{HeaderMap, header};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{AuthConfig, decode_secret};

/// Why a request was refused. The code goes into the 401 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No signature headers (or no bearer token) at all.
    Missing,
    /// Headers present but not in the expected form.
    Malformed,
    /// The signature's timestamp is outside the tolerance.
    Expired,
    /// No signature matches any configured secret.
    BadSignature,
    /// The bearer token matches none configured.
    BadToken,
}

impl Rejection {
    /// The machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::Missing => "missing_credentials",
            Rejection::Malformed => "malformed_signature",
            Rejection::Expired => "expired_signature",
            Rejection::BadSignature => "bad_signature",
            Rejection::BadToken => "bad_token",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::Missing => {
                "the request is not signed: send webhook-id, webhook-timestamp and webhook-signature \
                 (Standard Webhooks), or Authorization: Bearer <token>"
            }
            Rejection::Malformed => {
                "the webhook-timestamp or webhook-signature header is not in the Standard Webhooks form"
            }
            Rejection::Expired => {
                "the webhook-timestamp is too far from this server's clock (server.auth.timestamp_tolerance_secs)"
            }
            Rejection::BadSignature => "no webhook-signature matches a configured secret (server.auth.webhook_secrets)",
            Rejection::BadToken => "the bearer token matches none configured (server.auth.bearer_tokens)",
        })
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in
/// constant time: the admin token's one check, for `/admin` and for
/// `/ready` and `/metrics` from other machines.
pub fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token).unwrap_or("");
    constant_time_eq(presented.as_bytes(), token.as_bytes())
}

/// The token of an `Authorization: Bearer <token>` value. The scheme's
/// name is case-insensitive (RFC 9110): `bearer` and `BEARER` are Bearer.
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// What the headers settled before the body is read.
#[derive(Debug)]
pub enum Precheck {
    /// A bearer token matched: nothing more to check.
    Accepted,
    /// Well-formed, recent signature headers: the body decides.
    Signed(Signed),
}

/// Signature headers, read and checked for form and age.
#[derive(Debug)]
pub struct Signed {
    id: String,
    sent_at: i64,
    signatures: Vec<Vec<u8>>,
}

/// The checked credentials: decoded secrets and tokens.
#[derive(Clone)]
pub struct Authenticator {
    secrets: Vec<Vec<u8>>,
    tokens: Vec<String>,
    tolerance_secs: i64,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("secrets", &self.secrets.len())
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

/// Equal, in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator {
    /// From `server.auth` (already validated: every secret decodes).
    pub fn new(config: &AuthConfig) -> Self {
        Self {
            secrets: config.webhook_secrets.iter().filter_map(|s| decode_secret(s)).collect(),
            tokens: config.bearer_tokens.clone(),
            tolerance_secs: config.timestamp_tolerance_secs as i64,
        }
    }

    /// Accepts the request, or says why not. `now_secs` is unix time.
    pub fn check(&self, headers: &HeaderMap, body: &[u8], now_secs: i64) -> Result<(), Rejection> {
        match self.precheck(headers, now_secs)? {
            Precheck::Accepted => Ok(()),
            Precheck::Signed(signed) => self.verify(&signed, body),
        }
    }

    /// Everything the headers alone settle, before the body is read: a
    /// bearer token, or the signature headers' presence, form and age. So
    /// an unauthenticated client cannot make intake read its body.
    pub fn precheck(&self, headers: &HeaderMap, now_secs: i64) -> Result<Precheck, Rejection> {
        let text = |name: &str| headers.get(name).map(|v| v.to_str().map_err(|_| Rejection::Malformed));
        if let Some(authorization) = text(header::AUTHORIZATION.as_str()).transpose()?
            && !self.tokens.is_empty()
        {
            let presented = bearer_token(authorization).ok_or(Rejection::Malformed)?;
            let mut matched = false;
            for token in &self.tokens {
                matched |= constant_time_eq(presented.as_bytes(), token.as_bytes());
            }
            return if matched { Ok(Precheck::Accepted) } else { Err(Rejection::BadToken) };
        }
        let (Some(id), Some(timestamp), Some(signatures)) = (
            text("webhook-id").transpose()?,
            text("webhook-timestamp").transpose()?,
            text("webhook-signature").transpose()?,
        ) else {
            return Err(Rejection::Missing);
        };
        if self.secrets.is_empty() {
            return Err(Rejection::Missing);
        }
        // Unix seconds in their one canonical form (no sign, no padding):
        // what is signed is this text.
        let sent_at: i64 = timestamp.parse().map_err(|_| Rejection::Malformed)?;
        if sent_at < 0 || sent_at.to_string() != timestamp {
            return Err(Rejection::Malformed);
        }
        if now_secs.abs_diff(sent_at) > self.tolerance_secs.unsigned_abs() {
            return Err(Rejection::Expired);
        }
        let signatures: Vec<Vec<u8>> = signatures
            .split_whitespace()
            .filter_map(|s| s.strip_prefix("v1,"))
            .map(|b64| STANDARD.decode(b64).map_err(|_| Rejection::Malformed))
            .collect::<Result<_, _>>()?;
        if signatures.is_empty() {
            return Err(Rejection::Malformed);
        }
        Ok(Precheck::Signed(Signed { id: id.to_string(), sent_at, signatures }))
    }

    /// Checks the signatures against the body.
    pub fn verify(&self, signed: &Signed, body: &[u8]) -> Result<(), Rejection> {
        let mut matched = false;
        for secret in &self.secrets {
            let expected = sign(secret, &signed.id, signed.sent_at, body);
            for candidate in &signed.signatures {
                matched |= constant_time_eq(candidate, &expected);
            }
        }
        if matched { Ok(()) } else { Err(Rejection::BadSignature) }
    }
}

/// HMAC-SHA256 over `id.timestamp.body`.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    /// The test vector of the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn authenticator(secrets: &[&str], tokens: &[&str]) -> Authenticator {
        Authenticator::new(&AuthConfig {
            webhook_secrets: secrets.iter().map(|s| s.to_string()).collect(),
            bearer_tokens: tokens.iter().map(|s| s.to_string()).collect(),
            timestamp_tolerance_secs: 300,
        })
    }

    fn signed(signature: &str, timestamp: i64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", HeaderValue::from_static(ID));
        headers.insert("webhook-timestamp", HeaderValue::from_str(&timestamp.to_string()).unwrap());
        headers.insert("webhook-signature", HeaderValue::from_str(signature).unwrap());
        headers
    }

    #[test]
    fn the_specification_test_vector_verifies() {
        let expected = STANDARD.encode(sign(&decode_secret(SECRET).unwrap(), ID, TIMESTAMP, BODY));
        assert_eq!(format!("v1,{expected}"), SIGNATURE);
        assert_eq!(authenticator(&[SECRET], &[]).check(&signed(SIGNATURE, TIMESTAMP), BODY, TIMESTAMP + 10), Ok(()));
    }

    #[test]
    fn every_way_to_fail_has_its_reason() {
        let auth = authenticator(&[SECRET], &[]);
        let now = TIMESTAMP;
        assert_eq!(auth.check(&HeaderMap::new(), BODY, now), Err(Rejection::Missing));
        assert_eq!(auth.check(&signed(SIGNATURE, TIMESTAMP), BODY, now + 301), Err(Rejection::Expired));
        assert_eq!(auth.check(&signed(SIGNATURE, TIMESTAMP), BODY, now - 301), Err(Rejection::Expired));
        assert_eq!(auth.check(&signed("v1,not-base64!", TIMESTAMP), BODY, now), Err(Rejection::Malformed));
        assert_eq!(auth.check(&signed("v2,abc", TIMESTAMP), BODY, now), Err(Rejection::Malformed));
        assert_eq!(auth.check(&signed(SIGNATURE, TIMESTAMP), b"{\"test\": 1}", now), Err(Rejection::BadSignature));
        // Timestamps only in their canonical form; the extremes of i64 do
        // not overflow the tolerance check (the intake fuzz run found that).
        for timestamp in
            [format!("+{TIMESTAMP}"), format!("0{TIMESTAMP}"), format!("{TIMESTAMP} "), i64::MIN.to_string()]
        {
            let mut headers = signed(SIGNATURE, TIMESTAMP);
            headers.insert("webhook-timestamp", HeaderValue::from_str(&timestamp).unwrap());
            assert_eq!(auth.check(&headers, BODY, now), Err(Rejection::Malformed), "{timestamp:?}");
        }
        assert_eq!(auth.check(&signed(SIGNATURE, i64::MAX), BODY, i64::MIN), Err(Rejection::Expired));
    }

    #[test]
    fn rotation_several_signatures_and_several_secrets() {
        let old = "whsec_c2VjcmV0LW9uZS0xMjM0NTY3ODkw";
        let auth = authenticator(&[old, SECRET], &[]);
        let header = format!("v1,{} {SIGNATURE}", STANDARD.encode([0u8; 32]));
        assert_eq!(auth.check(&signed(&header, TIMESTAMP), BODY, TIMESTAMP), Ok(()));
    }

    #[test]
    fn bearer_tokens() {
        let auth = authenticator(&[], &["a-long-shared-token-123"]);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a-long-shared-token-123"));
        assert_eq!(auth.check(&headers, BODY, 0), Ok(()));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer a-long-shared-token-123"));
        assert!(
            matches!(auth.precheck(&headers, TIMESTAMP), Ok(Precheck::Accepted)),
            "the scheme's case does not matter"
        );
        assert!(bearer_matches(&headers, "a-long-shared-token-123"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer wrong"));
        assert_eq!(auth.check(&headers, BODY, 0), Err(Rejection::BadToken));
        assert_eq!(auth.check(&HeaderMap::new(), BODY, 0), Err(Rejection::Missing));
    }
}
