//! Idle-stream watchdog: a model stream that yields nothing for the idle
//! timeout ends with [`ModelError::IdleTimeout`] (and the connection is
//! dropped), so a wedged server cannot hold a turn forever.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Stream};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use super::{ModelError, ModelEvent, ModelRequest, ModelStream};

#[derive(Debug, Clone, Copy)]
pub struct IdleTimeoutLayer {
    idle: Duration,
}

impl IdleTimeoutLayer {
    pub fn new(idle: Duration) -> Self {
        Self { idle }
    }
}

impl<S> Layer<S> for IdleTimeoutLayer {
    type Service = IdleTimeout<S>;
    fn layer(&self, inner: S) -> Self::Service {
        IdleTimeout {
            inner,
            idle: self.idle,
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
}

impl<S> Service<ModelRequest> for IdleTimeout<S>
where
    S: Service<ModelRequest, Response = ModelStream, Error = ModelError>,
    S::Future: Send + 'static,
{
    type Response = ModelStream;
    type Error = ModelError;
    type Future = BoxFuture<'static, Result<ModelStream, ModelError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ModelError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ModelRequest) -> Self::Future {
        let idle = self.idle;
        self.inner
            .call(req)
            .map(move |r| r.map(|stream| ModelStream::new(IdleStream::new(stream, idle))))
            .boxed()
    }
}

/// Wraps a stream with a per-item deadline.
pub struct IdleStream<St> {
    inner: St,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    done: bool,
}

impl<St> IdleStream<St> {
    pub fn new(inner: St, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            done: false,
        }
    }
}

impl<St> Stream for IdleStream<St>
where
    St: Stream<Item = Result<ModelEvent, ModelError>> + Unpin,
{
    type Item = Result<ModelEvent, ModelError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                let deadline = Instant::now() + self.idle;
                self.sleep.as_mut().reset(deadline);
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    Poll::Ready(Some(Err(ModelError::IdleTimeout(self.idle))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn quiet_stream_times_out() {
        let (tx, stream) = ModelStream::channel();
        tx.send(Ok(ModelEvent::Created {
            response_id: "r".into(),
        }))
        .await
        .unwrap();
        let mut s = IdleStream::new(stream, Duration::from_millis(100));
        assert!(matches!(
            s.next().await,
            Some(Ok(ModelEvent::Created { .. }))
        ));
        assert!(matches!(
            s.next().await,
            Some(Err(ModelError::IdleTimeout(_)))
        ));
        assert!(s.next().await.is_none());
        drop(tx);
    }
}
