//! Which request bodies the WAF reads, and giving a read body back to the request.
//!
//! Textual bodies — JSON, urlencoded forms, `text/*` — are what the application's extractors parse,
//! so they are buffered (up to a cap) and fed to the body rules. Multipart uploads are read up to
//! the file (see `multipart.rs`). Everything else streams to the handler untouched and unread:
//! PDF and octet-stream uploads, whose size limits the upload path enforces while it sanitises
//! the PDF. A body with any other content type is never parsed by our extractors either (they
//! check the type).
#![forbid(unsafe_code)]

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Frame, SizeHint};

/// Whether a body with this `Content-Type` is fed to the body rules.
pub(super) fn is_textual(content_type: Option<&[u8]>) -> bool {
    let Some(raw) = content_type else { return false };
    let Ok(text) = std::str::from_utf8(raw) else { return false };
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || essence == "application/x-www-form-urlencoded" || essence.starts_with("text/")
}

/// A body given back to the request after the WAF read it: the bytes read (and trailers, if the
/// body ended with some), then — when the WAF stopped reading early — the rest of the original
/// body, or the error that stopped the read, so the handler sees exactly what it would have.
pub(super) struct Replay {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
    rest: Option<Body>,
    error: Option<axum::Error>,
}

impl Replay {
    pub(super) fn whole(data: Bytes, trailers: Option<HeaderMap>) -> Body {
        Body::new(Self { data: Some(data), trailers, rest: None, error: None })
    }

    pub(super) fn prefix_then(data: Bytes, rest: Body) -> Body {
        Body::new(Self { data: Some(data), trailers: None, rest: Some(rest), error: None })
    }

    pub(super) fn prefix_then_error(data: Bytes, error: axum::Error) -> Body {
        Body::new(Self { data: Some(data), trailers: None, rest: None, error: Some(error) })
    }
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Some(data) = this.data.take().filter(|d| !d.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(rest) = this.rest.as_mut() {
            return Pin::new(rest).poll_frame(cx);
        }
        if let Some(error) = this.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.as_ref().is_none_or(Bytes::is_empty)
            && self.trailers.is_none()
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered = self.data.as_ref().map_or(0, |d| d.len() as u64);
        match &self.rest {
            None => SizeHint::with_exact(buffered),
            Some(rest) => {
                let hint = rest.size_hint();
                let mut total = SizeHint::new();
                total.set_lower(hint.lower().saturating_add(buffered));
                if let Some(upper) = hint.upper() {
                    total.set_upper(upper.saturating_add(buffered));
                }
                total
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[test]
    fn textual_types() {
        for t in
            ["application/json", "Application/JSON; charset=utf-8", "application/x-www-form-urlencoded", "text/plain"]
        {
            assert!(is_textual(Some(t.as_bytes())), "{t}");
        }
        for t in ["application/pdf", "application/octet-stream", "multipart/form-data; boundary=x", "image/png", ""] {
            assert!(!is_textual(Some(t.as_bytes())), "{t}");
        }
        assert!(!is_textual(None));
    }

    #[tokio::test]
    async fn replay_gives_back_bytes_then_the_rest() {
        let body = Replay::prefix_then(Bytes::from_static(b"abc"), Body::from("def"));
        assert_eq!(body.collect().await.unwrap().to_bytes(), Bytes::from_static(b"abcdef"));
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", http::HeaderValue::from_static("1"));
        let collected = Replay::whole(Bytes::from_static(b"xyz"), Some(trailers)).collect().await.unwrap();
        assert_eq!(collected.trailers().and_then(|t| t.get("x-t")).map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"xyz"));
        let failing = Replay::prefix_then_error(Bytes::from_static(b"x"), axum::Error::new("cut"));
        assert!(failing.collect().await.is_err());
    }
}
