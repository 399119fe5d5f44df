//! Waiting for a condition with a deadline (shared by the `it` and `storage` test crates): tests never sleep
//! to synchronise.

use std::time::Duration;

/// Polls `cond` every 10 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls the async `probe` every 100 ms until it returns `Ok`; panics with `what` and the last value seen.
pub async fn wait_for<T, V: std::fmt::Debug, F: std::future::Future<Output = Result<T, V>>>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if tokio::time::Instant::now() > deadline => {
                panic!("timed out after {timeout:?} waiting for: {what}; last seen: {last:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
