//! The Redis-backed rate limiter against a real redis-server (scripts/interop/redis.sh):
//! two pools on separate Redis connections share one key and together hold the rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use smtpkit::pool::{Outgoing, Pool};
use smtpkit::rate::{Cost, LocalLimiter, RateError, RateLimiter, RedisLimiter, WhenUnreachable};
use smtpkit::testing::TestServer;
use smtpkit::{Client, Envelope, TlsPolicy};

use crate::support::interop;

fn unique_key(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("smtpkit-test:{test}:{}:{nanos}", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_sharing_one_key_stay_under_the_rate() {
    let Some(url) = interop::redis_or_skip("two_pools_sharing_one_key_stay_under_the_rate") else { return };
    const RATE: f64 = 200.0;
    const EACH: usize = 300;
    let key = unique_key("two-pools");
    let server = TestServer::builder().start().await.unwrap();
    let connector =
        Client::builder("127.0.0.1").port(server.addr().port()).tls(TlsPolicy::Disabled).build().unwrap();
    let envelope = Envelope::parse("from@example.com", &["to@example.com"]).unwrap();
    let mut runs = tokio::task::JoinSet::new();
    let start = Instant::now();
    for p in 0..2 {
        // Each pool has its own limiter, hence its own Redis connection.
        let limiter =
            RedisLimiter::builder(url.clone(), key.clone()).messages_per_sec(RATE, 1).build().unwrap();
        let pool =
            Pool::builder(connector.clone()).max_connections(2).rate_limiter(Arc::new(limiter)).build();
        let envelope = envelope.clone();
        runs.spawn(async move {
            let messages = (0..EACH)
                .map(move |i| Outgoing::new(envelope.clone(), format!("Subject: {p}-{i}\r\n\r\nx\r\n")));
            let outcomes = pool.send_all(messages).await;
            pool.close().await;
            outcomes.iter().filter(|o| o.is_sent()).count()
        });
    }
    let mut sent = 0;
    while let Some(n) = runs.join_next().await {
        sent += n.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = sent as f64 / secs;
    eprintln!(
        "redis limiter, two pools, one key: {sent} messages in {secs:.3} s = {rate:.1}/s (limit {RATE}/s)"
    );
    assert_eq!(sent, 2 * EACH);
    assert_eq!(server.messages().len(), 2 * EACH);
    // The guarantee: together never above the limit (5% for the first message's free
    // slot and clock granularity).
    assert!(rate <= RATE * 1.05, "{rate}/s over the shared limit of {RATE}/s");
    // And the limiter works, rather than refusing: well above half the limit.
    assert!(rate >= RATE * 0.5, "{rate}/s: far below the limit of {RATE}/s");
    server.shutdown().await;
}

#[tokio::test]
async fn the_script_reserves_slots_in_sequence() {
    let Some(url) = interop::redis_or_skip("the_script_reserves_slots_in_sequence") else { return };
    let limiter =
        RedisLimiter::builder(url, unique_key("sequence")).messages_per_sec(10.0, 2).build().unwrap();
    let one = Cost { messages: 1, recipients: 1 };
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(limiter.reserve(one, Duration::from_secs(5)).await.unwrap());
    }
    // Burst of 2 at once, then 100 ms apart (less the few ms between the calls).
    assert!(got[0] < Duration::from_millis(20) && got[1] < Duration::from_millis(20), "{got:?}");
    assert!(got[2] > Duration::from_millis(50) && got[2] <= Duration::from_millis(100), "{got:?}");
    assert!(got[3] > Duration::from_millis(150) && got[3] <= Duration::from_millis(200), "{got:?}");
    // A wait past the allowed one reserves nothing.
    let refused = limiter.reserve(one, Duration::from_millis(10)).await;
    assert!(matches!(refused, Err(RateError::Deadline { .. })), "{refused:?}");
}

#[tokio::test]
async fn unreachable_redis_fails_closed_or_falls_back_as_configured() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}");
    let one = Cost { messages: 1, recipients: 1 };
    let closed = RedisLimiter::builder(url.clone(), "k")
        .messages_per_sec(10.0, 1)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let refused = closed.reserve(one, Duration::from_secs(1)).await;
    assert!(matches!(refused, Err(RateError::Unavailable(_))), "{refused:?}");
    let fallback = RedisLimiter::builder(url, "k")
        .messages_per_sec(10.0, 1)
        .timeout(Duration::from_millis(500))
        .when_unreachable(WhenUnreachable::FallBack(LocalLimiter::per_second(1.0).unwrap()))
        .build()
        .unwrap();
    assert_eq!(fallback.reserve(one, Duration::from_secs(5)).await, Ok(Duration::ZERO));
    // The local limit applies: 1/s, so a second message now is refused.
    let second = fallback.reserve(one, Duration::ZERO).await;
    assert!(matches!(second, Err(RateError::Deadline { .. })), "{second:?}");
}
