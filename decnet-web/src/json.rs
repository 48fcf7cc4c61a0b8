//! A JSON body extractor whose errors name the offending field.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Like `axum::Json`, but a body that does not fit `T` gets 422 with the path of the field
/// (`config.deckies[2].ip: invalid IPv4 address syntax`), and malformed JSON gets 400. The
/// body limit applies (see [`crate::body_limit`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

/// Parses `bytes` as `T`, naming the field on error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The common case costs one plain parse; the path is tracked only to explain a failure.
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = strip_position(&inner.to_string());
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!("body is not valid JSON: {msg}"))
        } else if path == "." || path.is_empty() {
            ApiError::unprocessable(format!("body: {msg}"))
        } else {
            ApiError::unprocessable(format!("{path}: {msg}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))?;
    Ok(value)
}

/// serde_json appends " at line L column C", which means little to an API client.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            ApiError::new(status, e.body_text())
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        config: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        ips: Vec<std::net::Ipv4Addr>,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<Outer>(br#"{"config":{"ips":["1.2.3.4","nope"]}}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert!(
            e.detail
                .starts_with("config.ips[1]: invalid IPv4 address syntax"),
            "{}",
            e.detail
        );
        let e = parse_json::<Outer>(br#"{"config":{"ips":[]},"x":1}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert!(e.detail.contains("unknown field `x`"), "{}", e.detail);
        let e = parse_json::<Outer>(br#"{"config":"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        let e = parse_json::<Outer>(br#"{}"#).unwrap_err();
        assert!(e.detail.contains("missing field `config`"), "{}", e.detail);
        assert!(parse_json::<Outer>(br#"{"config":{"ips":[]}} x"#).is_err());
    }
}
