//! Graceful stop. A [`ShutdownTrigger`] fires once; every [`Shutdown`] handed out by it sees
//! it: the scheduler stops starting runs, running searches stop at the next page, writes
//! already under way finish and state is saved.

use tokio::sync::watch;

/// Fires the shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

impl Default for ShutdownTrigger {
    fn default() -> Self {
        ShutdownTrigger::new()
    }
}

impl ShutdownTrigger {
    pub fn new() -> Self {
        ShutdownTrigger {
            sender: watch::channel(false).0,
        }
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            receiver: Some(self.sender.subscribe()),
        }
    }

    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Fire on SIGINT (Ctrl-C) or SIGTERM. Spawns a task; needs a tokio runtime.
    pub fn on_signals(self) -> Shutdown {
        let shutdown = self.subscribe();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop requested: finishing runs in progress, then exiting");
            self.trigger();
        });
        shutdown
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the service");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Tells whether a stop was requested, and waits for one.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// `None`: never stops (one-off runs, tests).
    receiver: Option<watch::Receiver<bool>>,
}

impl Shutdown {
    pub fn never() -> Self {
        Shutdown { receiver: None }
    }

    pub fn is_requested(&self) -> bool {
        self.receiver.as_ref().is_some_and(|r| *r.borrow())
    }

    /// Completes when a stop is requested; never, for [`Shutdown::never`] or when the trigger
    /// was dropped without firing.
    pub async fn requested(&self) {
        match &self.receiver {
            Some(receiver) => {
                let mut receiver = receiver.clone();
                if receiver.wait_for(|stop| *stop).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_sees_the_trigger() {
        let trigger = ShutdownTrigger::new();
        let a = trigger.subscribe();
        let b = a.clone();
        assert!(!a.is_requested());
        trigger.trigger();
        a.requested().await;
        assert!(b.is_requested());
        assert!(!Shutdown::never().is_requested());
    }
}
