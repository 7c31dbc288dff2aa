//! Feature `tracing`: a span per connection and per message, an event per command and
//! reply, AUTH redacted and bodies never logged.
//!
//! A test binary of its own: `tracing` caches per-callsite interest process-wide, and a
//! thread-scoped subscriber racing with other tests' threads would see events dropped.
#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};

use smtpkit::testing::TestServer;
use smtpkit::{Client, Envelope};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Collects span names and event texts.
#[derive(Clone, Default)]
struct Collect {
    lines: Arc<Mutex<Vec<String>>>,
    next: Arc<Mutex<u64>>,
}

struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = Text(format!("span {}", span.metadata().name()));
        span.record(&mut text);
        self.lines.lock().unwrap().push(text.0);
        let mut next = self.next.lock().unwrap();
        *next += 1;
        Id::from_u64(*next)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut text = Text(format!("event {}", event.metadata().target()));
        event.record(&mut text);
        self.lines.lock().unwrap().push(text.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn spans_and_events_redact_auth_and_never_log_bodies() {
    let collect = Collect::default();
    let lines = collect.lines.clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let id = tracing::subscriber::with_default(collect, || {
        rt.block_on(async {
            let server =
                TestServer::builder().starttls(true).user("alice", "hunter2-secret").start().await.unwrap();
            let mut client = Client::from_url(&server.url_with_password())
                .unwrap()
                .add_root_pem(server.ca_pem().as_bytes())
                .unwrap()
                .connect()
                .await
                .unwrap();
            let id = client.connection_id();
            let env = Envelope::parse("a@example.com", &["b@example.com"]).unwrap();
            client.send(&env, "Subject: x\r\n\r\nconfidential body text\r\n").await.unwrap();
            client.quit().await.unwrap();
            // The pool's counters are events too.
            let connector = Client::from_url(&server.url_with_password())
                .unwrap()
                .add_root_pem(server.ca_pem().as_bytes())
                .unwrap()
                .build()
                .unwrap();
            let pool = smtpkit::Pool::new(connector);
            pool.get().await.unwrap().send(&env, "Subject: y\r\n\r\nz\r\n").await.unwrap();
            pool.close().await;
            id
        })
    });
    let all = lines.lock().unwrap().join("\n");
    assert!(all.contains("span smtp.connection"), "{all}");
    assert!(all.contains("span smtp.message"), "{all}");
    // The connection id names the span and every wire event of the connection.
    assert!(all.contains(&format!("span smtp.connection id={id} ")), "{all}");
    assert!(all.contains(&format!("message=C: MAIL FROM:<a@example.com> connection={id}")), "{all}");
    assert!(all.contains("C: MAIL FROM:<a@example.com>"), "{all}");
    assert!(all.contains("S: 354"), "{all}");
    assert!(all.contains("AUTH PLAIN [redacted]") || all.contains("AUTH LOGIN"), "{all}");
    assert!(all.contains("message sent"), "{all}");
    assert!(all.contains("event smtpkit::pool") && all.contains("counter=\"opened\" total=1"), "{all}");
    assert!(all.contains("counter=\"messages\" total=1"), "{all}");
    assert!(!all.contains("hunter2"), "password leaked: {all}");
    assert!(!all.contains("AGFsaWNlAGh1bnRlcjItc2VjcmV0"), "AUTH payload leaked: {all}");
    assert!(!all.contains("confidential body"), "body leaked: {all}");
}
