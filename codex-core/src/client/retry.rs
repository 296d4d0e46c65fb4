//! Request-level retries: 5xx answers and transport errors are re-sent with
//! exponential backoff (or the server's `retry-after`), up to the provider's
//! `request_max_retries`. Nothing has been streamed at this point, so the
//! request is idempotent.

use std::time::Duration;

use futures_util::future::BoxFuture;
use tower::retry::{Policy, RetryLayer};

use super::{ModelError, ModelRequest, ModelStream};
use crate::util::backoff;

/// The longest server-requested delay we honour for one retry.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct RequestRetryPolicy {
    max_retries: u32,
    attempt: u32,
}

/// A tower [`RetryLayer`] with [`RequestRetryPolicy`].
pub struct RequestRetryLayer;

impl RequestRetryLayer {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(max_retries: u32) -> RetryLayer<RequestRetryPolicy> {
        RetryLayer::new(RequestRetryPolicy {
            max_retries,
            attempt: 0,
        })
    }
}

impl Policy<ModelRequest, ModelStream, ModelError> for RequestRetryPolicy {
    type Future = BoxFuture<'static, ()>;

    fn retry(
        &mut self,
        _req: &mut ModelRequest,
        result: &mut Result<ModelStream, ModelError>,
    ) -> Option<Self::Future> {
        let Err(err) = result else {
            return None;
        };
        if !err.is_retryable_request() || self.attempt >= self.max_retries {
            return None;
        }
        self.attempt += 1;
        let delay = err
            .retry_after()
            .map(|d| d.min(MAX_RETRY_AFTER))
            .unwrap_or_else(|| backoff(self.attempt));
        tracing::info!(
            "model request failed ({err}); retry {}/{} in {:?}",
            self.attempt,
            self.max_retries,
            delay
        );
        Some(Box::pin(tokio::time::sleep(delay)))
    }

    fn clone_request(&mut self, req: &ModelRequest) -> Option<ModelRequest> {
        Some(req.clone())
    }
}
