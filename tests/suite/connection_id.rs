//! Connection ids: every connection, async or blocking, pooled or not, has its own id, and
//! every line of its transcript carries it, so interleaved logs can be told apart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smtpkit::testing::TestServer;
use smtpkit::{Client, ClientBuilder, ConnectionId, Envelope, Pool, TlsPolicy, TraceLine};

const LONG: Duration = Duration::from_secs(20);

type Lines = Arc<Mutex<Vec<TraceLine>>>;

/// A plaintext builder for `server` whose transcript lands in the returned vector.
fn traced(server: &TestServer) -> (ClientBuilder, Lines) {
    let lines: Lines = Arc::default();
    let sink = Arc::clone(&lines);
    let builder = Client::builder("127.0.0.1")
        .port(server.addr().port())
        .tls(TlsPolicy::Disabled)
        .trace(move |line| sink.lock().unwrap().push(line.clone()));
    (builder, lines)
}

fn envelope(from: &str) -> Envelope {
    Envelope::parse(from, &["rcpt@example.com"]).unwrap()
}

/// The transcript split by connection id, each in the order it was spoken.
fn by_connection(lines: &Lines) -> BTreeMap<ConnectionId, Vec<String>> {
    let mut map: BTreeMap<ConnectionId, Vec<String>> = BTreeMap::new();
    for line in lines.lock().unwrap().iter() {
        map.entry(line.connection).or_default().push(line.to_string());
    }
    map
}

#[tokio::test]
async fn two_connections_have_different_ids_and_their_lines_carry_them() {
    let server = TestServer::builder().start().await.unwrap();
    let (builder, lines) = traced(&server);
    let connector = builder.build().unwrap();
    let mut a = connector.connect().await.unwrap();
    let mut b = connector.connect().await.unwrap();
    let (ida, idb) = (a.connection_id(), b.connection_id());
    assert_ne!(ida, idb);
    let shown = ida.to_string();
    assert!(shown.starts_with('c') && shown.len() >= 7, "{shown}");
    a.send(&envelope("a@example.com"), "Subject: a\r\n\r\na\r\n").await.unwrap();
    b.send(&envelope("b@example.com"), "Subject: b\r\n\r\nb\r\n").await.unwrap();
    a.quit().await.unwrap();
    b.quit().await.unwrap();

    let split = by_connection(&lines);
    assert_eq!(split.keys().copied().collect::<Vec<_>>(), {
        let mut ids = vec![ida, idb];
        ids.sort();
        ids
    });
    for (id, from) in [(ida, "a@example.com"), (idb, "b@example.com")] {
        let own = split[&id].join("\n");
        assert!(own.starts_with("S: 220"), "a transcript starts with its greeting: {own}");
        assert!(own.contains(&format!("C: MAIL FROM:<{from}>")), "{own}");
        assert!(own.contains("C: QUIT"), "{own}");
        assert_eq!(own.matches("C: MAIL FROM:").count(), 1, "only its own message: {own}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_pooled_connections_transcripts_are_told_apart() {
    let server = TestServer::builder().start().await.unwrap();
    let (builder, lines) = traced(&server);
    let pool = Pool::builder(builder.build().unwrap()).max_connections(8).build();
    // Hold all eight at once, so they are eight connections, then send on all of them
    // concurrently: their transcript lines interleave in the sink.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(tokio::time::timeout(LONG, pool.get()).await.unwrap().unwrap());
    }
    let mut sends = tokio::task::JoinSet::new();
    for (i, mut conn) in held.into_iter().enumerate() {
        sends.spawn(async move {
            let from = format!("sender{i}@example.com");
            conn.send(&envelope(&from), format!("Subject: {i}\r\n\r\nbody {i}\r\n")).await.unwrap();
            (conn.client().connection_id(), from)
        });
    }
    let sent = tokio::time::timeout(LONG, sends.join_all()).await.unwrap();
    pool.close().await;

    let split = by_connection(&lines);
    assert_eq!(split.len(), 8, "eight ids in the transcript: {:?}", split.keys());
    for (id, from) in &sent {
        let own = split.get(id).unwrap_or_else(|| panic!("no lines for {id}")).join("\n");
        assert!(own.starts_with("S: 220"), "{id}: {own}");
        assert!(own.contains(&format!("C: MAIL FROM:<{from}>")), "{id}: {own}");
        assert_eq!(own.matches("C: MAIL FROM:").count(), 1, "{id} has only its own message: {own}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_connections_have_different_ids_and_their_lines_carry_them() {
    let server = TestServer::builder().start().await.unwrap();
    let (builder, lines) = traced(&server);
    let ids = tokio::task::spawn_blocking(move || {
        let connector = builder.build_blocking().unwrap();
        let mut ids = Vec::new();
        for from in ["a@example.com", "b@example.com"] {
            let mut client = connector.connect().unwrap();
            client.send(&envelope(from), "Subject: x\r\n\r\nx\r\n").unwrap();
            ids.push((client.connection_id(), from));
            client.quit().unwrap();
        }
        ids
    })
    .await
    .unwrap();
    assert_ne!(ids[0].0, ids[1].0);
    let split = by_connection(&lines);
    assert_eq!(split.len(), 2);
    for (id, from) in &ids {
        let own = split[id].join("\n");
        assert!(own.starts_with("S: 220"), "{own}");
        assert!(own.contains(&format!("C: MAIL FROM:<{from}>")), "{own}");
        assert_eq!(own.matches("C: MAIL FROM:").count(), 1, "{own}");
    }
    server.shutdown().await;
}
