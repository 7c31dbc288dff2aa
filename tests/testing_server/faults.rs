//! Injected faults: replies, closes, delays, silence, and their limits.

use super::*;

#[tokio::test]
async fn fault_reply_multiline_and_raw() {
    let server = start(
        TestServer::builder()
            .on(Step::Rcpt(1), Fault::Reply { code: 450, text: "4.2.0 try later\nreally".into() })
            .on(Step::Noop, Fault::Raw(b"25O bad code\r\n".to_vec()))
            .on(Step::Mail, Fault::Reply { code: 250, text: String::new() }),
    )
    .await;
    let mut c = greeted(&server).await;
    assert_eq!(c.cmd("MAIL FROM:<a@x.example>").await, "250 ");
    assert_eq!(code(&c.cmd("RCPT TO:<b@x.example>").await), "250");
    assert_eq!(c.cmd("RCPT TO:<c@x.example>").await, "450-4.2.0 try later\n450 really");
    assert_eq!(code(&c.cmd("RCPT TO:<d@x.example>").await), "250");
    assert_eq!(c.cmd("NOOP").await, "25O bad code");
    c.cmd("DATA").await;
    c.cmd(".").await;
    assert_eq!(server.wait_for_messages(1, WAIT).await[0].rcpt_to, ["b@x.example", "d@x.example"]);
    assert_eq!(server.fault_uses(), [1, 1, 1]);
}

#[tokio::test]
async fn fault_close_at_rcpt_and_once_per_connection() {
    let server = start(
        TestServer::builder().fault(FaultRule::new(Step::RcptAny, Fault::Close).on_connection(1).once()),
    )
    .await;
    let mut first = greeted(&server).await;
    first.cmd("MAIL FROM:<a@x.example>").await;
    assert_eq!(code(&first.cmd("RCPT TO:<b@x.example>").await), "250");
    let mut second = greeted(&server).await;
    second.cmd("MAIL FROM:<a@x.example>").await;
    second.send(b"RCPT TO:<b@x.example>\r\n").await;
    assert!(second.closed().await);
    let mut third = greeted(&server).await;
    third.cmd("MAIL FROM:<a@x.example>").await;
    assert_eq!(code(&third.cmd("RCPT TO:<b@x.example>").await), "250");
    assert_eq!(server.connection_count(), 3);
    let fired = server.fired_faults();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].connection, fired[0].rule, fired[0].step), (1, 0, Step::RcptAny));
    assert_eq!(fired[0].fault, Fault::Close);
}

#[tokio::test]
async fn fault_close_after_bytes_mid_data() {
    let server = start(TestServer::builder().on(Step::Data, Fault::CloseAfterBytes(10))).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    assert_eq!(code(&c.cmd("DATA").await), "354");
    let _ = c.stream.write_all(b"0123456789abcdef\r\n.\r\n").await;
    assert!(c.closed().await);
    assert!(server.all_messages().is_empty());
    assert!(server.received_bytes()[0].ends_with(b"DATA\r\n0123456789"));
}

#[tokio::test]
async fn fault_commit_then_close_versus_close() {
    let server = start(
        TestServer::builder()
            .fault(FaultRule::new(Step::DataEnd, Fault::CommitThenClose).on_connection(0))
            .fault(FaultRule::new(Step::DataEnd, Fault::Close).on_connection(1)),
    )
    .await;
    for _ in 0..2 {
        let mut c = greeted(&server).await;
        c.cmd("MAIL FROM:<a@x.example>").await;
        c.cmd("RCPT TO:<b@x.example>").await;
        c.cmd("DATA").await;
        c.send(b"body\r\n.\r\n").await;
        assert!(c.closed().await);
    }
    let committed = server.messages();
    assert_eq!(committed.len(), 1);
    assert_eq!(committed[0].connection, 0);
    let all = server.all_messages();
    assert_eq!(all.len(), 2);
    assert!(!all[1].committed);
    assert_eq!(all[1].connection, 1);
}

#[tokio::test]
async fn fault_bdat_last_commit_then_close() {
    let server = start(TestServer::builder().chunking(true).on(Step::BdatLast, Fault::CommitThenClose)).await;
    let mut c = greeted(&server).await;
    c.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nBDAT 2\r\nabBDAT 1 LAST\r\nc").await;
    for _ in 0..3 {
        assert_eq!(code(&c.reply().await), "250");
    }
    assert!(c.closed().await);
    let msgs = server.messages();
    assert_eq!(msgs[0].data, b"abc");
}

#[tokio::test]
async fn fault_bdat_close_after_bytes_mid_chunk() {
    let server =
        start(TestServer::builder().chunking(true).on(Step::Bdat(0), Fault::CloseAfterBytes(3))).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    let _ = c.stream.write_all(b"BDAT 10 LAST\r\n0123456789").await;
    assert!(c.closed().await);
    assert!(server.received_bytes()[0].ends_with(b"LAST\r\n012"));
    assert!(server.all_messages().is_empty());
}

#[tokio::test]
async fn fault_greeting_554_then_only_quit() {
    let server = start(
        TestServer::builder().on(Step::Greeting, Fault::Reply { code: 554, text: "5.7.1 no service".into() }),
    )
    .await;
    let mut c = Client::connect(&server).await;
    assert_eq!(c.reply().await, "554 5.7.1 no service");
    assert_eq!(code(&c.cmd("EHLO c.example").await), "503");
    assert_eq!(code(&c.cmd("QUIT").await), "221");
    assert!(c.closed().await);
}

#[tokio::test]
async fn fault_421_closes() {
    let server =
        start(TestServer::builder().on(Step::Ehlo, Fault::Reply { code: 421, text: "4.3.2 bye".into() }))
            .await;
    let mut c = Client::connect(&server).await;
    c.reply().await;
    assert_eq!(c.cmd("EHLO c.example").await, "421 4.3.2 bye");
    assert!(c.closed().await);
}

#[tokio::test(start_paused = true)]
async fn fault_delay_and_trickle_with_paused_clock() {
    let server = start(
        TestServer::builder()
            .on(Step::Greeting, Fault::Delay(Duration::from_secs(300)))
            .on(Step::Noop, Fault::Trickle(Duration::from_secs(1))),
    )
    .await;
    let mut c = Client::new(server.connect_in_memory());
    let t0 = tokio::time::Instant::now();
    let mut greeting = [0u8; 4];
    c.stream.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"220 ");
    assert!(t0.elapsed() >= Duration::from_secs(300));
    let mut rest = Vec::new();
    while !rest.ends_with(b"\r\n") {
        rest.push(c.stream.read_u8().await.unwrap());
    }
    c.cmd("EHLO c.example").await;
    let t1 = tokio::time::Instant::now();
    let reply = c.cmd("NOOP").await;
    assert_eq!(reply, "250 2.0.0 OK");
    // "250 2.0.0 OK\r\n" is 14 bytes: 13 pauses.
    assert_eq!(t1.elapsed().as_secs(), 13);
}

#[tokio::test]
async fn fault_trickle_is_one_byte_per_read() {
    let server =
        start(TestServer::builder().on(Step::Greeting, Fault::Trickle(Duration::from_millis(5)))).await;
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    let mut got = Vec::new();
    let mut reads = 0;
    while !got.ends_with(b"\r\n") {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await.unwrap().unwrap();
        assert!(n >= 1);
        got.extend_from_slice(&buf[..n]);
        reads += 1;
    }
    assert_eq!(got, b"220 localhost ESMTP smtpkit-testing\r\n");
    assert!(reads > 10, "{reads} reads");
}

#[tokio::test]
async fn fault_silence_keeps_the_connection_open() {
    let server = start(TestServer::builder().on(Step::DataEnd, Fault::Silence)).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.cmd("DATA").await;
    c.send(b"x\r\n.\r\nNOOP\r\n").await;
    assert!(c.quiet_for(Duration::from_millis(200)).await);
    assert!(server.messages().is_empty());
    assert_eq!(server.all_messages().len(), 1);
    // It keeps recording what arrives.
    c.send(b"QUIT\r\n").await;
    assert!(eventually(|| server.received_bytes()[0].ends_with(b"NOOP\r\nQUIT\r\n")).await);
}

#[tokio::test]
async fn fault_extra_bytes_after_starttls() {
    let server = start(
        TestServer::builder()
            .starttls(true)
            .on(Step::StartTls, Fault::ExtraAfterStartTls(b"250-evil\r\n".to_vec())),
    )
    .await;
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    let mut c = Client::new(&mut tcp);
    c.reply().await;
    c.cmd("EHLO c.example").await;
    c.send(b"STARTTLS\r\n").await;
    // Both arrive; a correct client treats the extra line as an injection.
    assert_eq!(c.reply().await, "220 2.0.0 Ready to start TLS");
    assert_eq!(c.line().await.as_deref(), Some("250-evil"));
}

#[tokio::test(start_paused = true)]
async fn fault_unsolicited_421_immediate_and_idle() {
    let server = start(
        TestServer::builder()
            .fault(
                FaultRule::new(Step::Command(1), Fault::Unsolicited421 { idle: Duration::ZERO })
                    .on_connection(0),
            )
            .fault(
                FaultRule::new(Step::Ehlo, Fault::Unsolicited421 { idle: Duration::from_millis(300) })
                    .on_connection(1),
            ),
    )
    .await;
    let mut c = greeted_in_memory(&server).await;
    assert_eq!(code(&c.cmd("NOOP").await), "250");
    assert!(c.reply().await.starts_with("421 4.4.2 "));
    assert!(c.closed().await);

    let mut c = greeted_in_memory(&server).await;
    let t0 = tokio::time::Instant::now();
    assert!(c.reply().await.starts_with("421 4.4.2 "));
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
    assert!(c.closed().await);
}

#[tokio::test(start_paused = true)]
async fn unsolicited_421_idle_is_cancelled_by_input() {
    let server = start(
        TestServer::builder().on(Step::Ehlo, Fault::Unsolicited421 { idle: Duration::from_millis(300) }),
    )
    .await;
    let mut c = greeted_in_memory(&server).await;
    assert_eq!(code(&c.cmd("NOOP").await), "250");
    assert!(c.quiet_for(Duration::from_secs(600)).await);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout() {
    let server = start(TestServer::builder().idle_timeout(Some(Duration::from_secs(3)))).await;
    let mut c = greeted_in_memory(&server).await;
    let t0 = tokio::time::Instant::now();
    assert!(c.reply().await.starts_with("421 4.4.2 localhost Idle too long"));
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    assert!(c.closed().await);
}

#[tokio::test]
async fn fault_stop_reading_during_data() {
    let server = start(TestServer::builder().on(Step::Data, Fault::StopReading)).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    assert_eq!(code(&c.cmd("DATA").await), "354");
    // Writing eventually blocks: the server reads nothing more.
    let chunk = vec![b'x'; 64 * 1024];
    let mut blocked = false;
    for _ in 0..1024 {
        if tokio::time::timeout(Duration::from_millis(200), c.stream.write_all(&chunk)).await.is_err() {
            blocked = true;
            break;
        }
    }
    assert!(blocked, "the server kept reading");
    assert!(server.received_bytes()[0].ends_with(b"DATA\r\n"));
}

#[tokio::test]
async fn fault_raw_then_stop_reading() {
    let server = start(
        TestServer::builder()
            .on(Step::Data, Fault::RawThenStopReading(b"354 go ahead\r\n550 5.7.1 rejected\r\n".to_vec())),
    )
    .await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    assert_eq!(code(&c.cmd("DATA").await), "354");
    assert_eq!(c.reply().await, "550 5.7.1 rejected");
}

#[tokio::test]
async fn fault_auth_334_forever() {
    let server = start(
        TestServer::builder()
            .user("alice", "s3cret")
            .on(Step::Auth, Fault::Reply { code: 334, text: "Zm9v".into() }),
    )
    .await;
    let mut c = greeted(&server).await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "334 Zm9v");
    for _ in 0..5 {
        assert_eq!(c.cmd("AAAA").await, "334 Zm9v");
    }
    assert_eq!(code(&c.cmd("*").await), "334");
}

#[tokio::test]
async fn fault_positive_reply_changes_state() {
    // A fault that says 250 to a refused recipient makes it accepted, and 2xx at the final
    // dot commits even an over-long line.
    let server = start(
        TestServer::builder()
            .reject_recipient("bad@x.example", 550, "5.1.1 no")
            .on(Step::RcptAny, Fault::Reply { code: 250, text: "fine".into() })
            .on(Step::DataEnd, Fault::Reply { code: 250, text: "taken".into() }),
    )
    .await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    assert_eq!(c.cmd("RCPT TO:<bad@x.example>").await, "250 fine");
    c.cmd("DATA").await;
    let long = format!("{}\r\n.", "y".repeat(2000));
    assert_eq!(c.cmd(&long).await, "250 taken");
    assert_eq!(server.messages()[0].rcpt_to, ["bad@x.example"]);
}

#[tokio::test]
async fn fault_times_limits_uses() {
    let server =
        start(TestServer::builder().fault(
            FaultRule::new(Step::Noop, Fault::Reply { code: 421, text: "4.3.0 busy".into() }).times(2),
        ))
        .await;
    for expected in ["421", "421", "250"] {
        let mut c = greeted(&server).await;
        assert_eq!(code(&c.cmd("NOOP").await), expected);
    }
    assert_eq!(server.fault_uses(), [2]);
}

#[tokio::test]
async fn fault_reply_then_drop_skips_close_notify() {
    let server = start(
        TestServer::builder()
            .implicit_tls(true)
            .fault(FaultRule::new(Step::Quit, Fault::ReplyThenDrop).on_connection(1)),
    )
    .await;
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        let mut c = Client::new(tls_connect(&server, tcp).await.expect("handshake"));
        c.reply().await;
        assert_eq!(code(&c.cmd("QUIT").await), "221");
        let mut rest = [0u8; 16];
        let end = tokio::time::timeout(WAIT, c.stream.read(&mut rest)).await.expect("read hung");
        outcomes.push(end.map_err(|e| e.kind()));
    }
    // A clean TLS close, then an EOF without close_notify.
    assert_eq!(outcomes, [Ok(0), Err(std::io::ErrorKind::UnexpectedEof)]);
}

#[tokio::test]
async fn fault_raw_then_close() {
    let server =
        start(TestServer::builder().on(Step::Greeting, Fault::RawThenClose(b"\x00garbage".to_vec()))).await;
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, b"\x00garbage");
}

#[tokio::test]
async fn fault_commit_then_silence() {
    let server = start(TestServer::builder().on(Step::DataEnd, Fault::CommitThenSilence)).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.cmd("DATA").await;
    c.send(b"x\r\n.\r\n").await;
    assert_eq!(server.wait_for_messages(1, WAIT).await.len(), 1);
    assert!(c.quiet_for(Duration::from_millis(100)).await);
}

#[tokio::test]
async fn fault_repeat_sends_endless_continuation_lines() {
    let server = start(TestServer::builder().on(Step::Ehlo, Fault::Repeat(b"250-x\r\n".to_vec()))).await;
    let mut c = Client::connect(&server).await;
    c.reply().await;
    c.send(b"EHLO c.example\r\n").await;
    for _ in 0..10_000 {
        assert_eq!(c.line().await.as_deref(), Some("250-x"));
    }
    drop(c);
    // The server notices the client left and ends the connection task.
    assert!(eventually(|| server.transcripts()[0].ends_with("* connection closed\n")).await);
}

#[tokio::test(start_paused = true)]
async fn fault_close_when_idle() {
    let server =
        start(TestServer::builder().on(Step::Ehlo, Fault::CloseWhenIdle { idle: Duration::from_secs(4) }))
            .await;
    let mut c = greeted_in_memory(&server).await;
    let t0 = tokio::time::Instant::now();
    assert!(c.closed().await);
    assert_eq!(t0.elapsed(), Duration::from_secs(4));
}
