//! Criterion bench of the rate limiter's cost per message: [`LocalLimiter::try_reserve`]
//! (one lock, two bucket checks, a quota check) and the same through the boxed
//! [`RateLimiter::reserve`] future the pool awaits, at a rate high enough never to wait.
//!
//! Run: `cargo bench --bench rate`.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use smtpkit::rate::{Cost, LocalLimiter, RateLimiter};

fn limiter() -> LocalLimiter {
    LocalLimiter::builder()
        .messages_per_sec(1e12, 1_000_000)
        .recipients_per_sec(1e12, 1_000_000)
        .daily_quota(u64::MAX)
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let _guard = rt.enter();
    let one = Cost { messages: 1, recipients: 1 };
    let l = limiter();
    c.bench_function("rate/try_reserve", |b| {
        b.iter(|| black_box(l.try_reserve(black_box(one), Duration::ZERO)))
    });
    let l = limiter();
    c.bench_function("rate/reserve_future", |b| {
        b.iter(|| rt.block_on(async { black_box(l.reserve(black_box(one), Duration::ZERO).await) }))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
