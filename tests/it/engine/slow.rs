//! A source that takes its time, for timeouts, overruns and concurrency under tokio's clock.

use std::time::Duration;

use async_trait::async_trait;
use rule_runner::engine::memory::MemorySource;
use rule_runner::engine::ports::{EventHit, EventSource, HitStream, PortError, WindowQuery};

/// Wraps a [`MemorySource`]; every page (including the final empty answer) takes `delay`.
pub struct SlowSource {
    inner: MemorySource,
    delay: Duration,
}

impl SlowSource {
    pub fn new(inner: MemorySource, delay: Duration) -> Self {
        SlowSource { inner, delay }
    }

    pub fn inner(&self) -> &MemorySource {
        &self.inner
    }
}

struct SlowHits {
    inner: Box<dyn HitStream>,
    delay: Duration,
}

#[async_trait]
impl EventSource for SlowSource {
    async fn search(&self, query: WindowQuery) -> Result<Box<dyn HitStream>, PortError> {
        let inner = self.inner.search(query).await?;
        Ok(Box::new(SlowHits {
            inner,
            delay: self.delay,
        }))
    }
}

#[async_trait]
impl HitStream for SlowHits {
    async fn next_page(&mut self) -> Result<Option<Vec<EventHit>>, PortError> {
        tokio::time::sleep(self.delay).await;
        self.inner.next_page().await
    }

    async fn close(&mut self) -> Result<(), PortError> {
        self.inner.close().await
    }
}
