//! Standard Webhooks signatures, made the way Buktor makes them, for the
//! tests and the benchmark suite that send signed events.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A Standard Webhooks signature: `v1,` and the base64 of the HMAC-SHA256
/// of `id.timestamp.body`, keyed by the secret's decoded bytes.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}
