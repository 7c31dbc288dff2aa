//! The SMTP the server speaks: capabilities, pipelining, DATA and BDAT, sequencing,
//! refusals, limits and queue ids.

use super::*;

#[tokio::test]
async fn greeting_and_default_capabilities() {
    let server = start(TestServer::builder()).await;
    let mut c = Client::connect(&server).await;
    assert_eq!(c.reply().await, "220 localhost ESMTP smtpkit-testing");
    let ehlo = c.cmd("EHLO client.example").await;
    assert_eq!(ehlo, "250-localhost greets you\n250-PIPELINING\n250-8BITMIME\n250 ENHANCEDSTATUSCODES");
    assert_eq!(c.cmd("HELO client.example").await, "250 localhost");
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 localhost closing connection");
    assert!(c.closed().await);
}

#[tokio::test]
async fn configured_capabilities() {
    let server = start(
        TestServer::builder()
            .hostname("mx.test")
            .pipelining(false)
            .chunking(true)
            .size(Some(1000))
            .eight_bit_mime(false)
            .smtputf8(true)
            .dsn(true)
            .enhanced_status_codes(false)
            .extra_capability("X-FOO bar"),
    )
    .await;
    let mut c = Client::connect(&server).await;
    assert_eq!(c.reply().await, "220 mx.test ESMTP smtpkit-testing");
    let ehlo = c.cmd("ehlo client.example").await;
    assert_eq!(
        ehlo,
        "250-mx.test greets you\n250-SIZE 1000\n250-SMTPUTF8\n250-DSN\n250-CHUNKING\n250 X-FOO bar"
    );
    // Without ENHANCEDSTATUSCODES replies carry no x.y.z.
    assert_eq!(c.cmd("NOOP").await, "250 OK");
    // Parameters follow what was advertised.
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example> BODY=8BITMIME").await), "555");
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example> SIZE=1001").await), "552");
    assert_eq!(code(&c.cmd("MAIL FROM:<ü@x.example> SIZE=10 RET=HDRS X-FOO=1 SMTPUTF8").await), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<b@x.example> NOTIFY=NEVER").await), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<c@x.example> FOO=1").await), "555");
}

#[tokio::test]
async fn pipelined_transaction_in_one_write_with_exact_bytes() {
    let server = start(TestServer::builder()).await;
    let mut c = Client::connect(&server).await;
    c.reply().await;
    let commands = b"EHLO c.example\r\nMAIL FROM:<a@x.example> BODY=8BITMIME\r\nRCPT TO:<b@x.example>\r\n\
RCPT TO:<c@x.example>\r\nDATA\r\n";
    c.send(commands).await;
    let replies: Vec<String> = [(); 5].iter().map(|_| String::new()).collect();
    let mut got = Vec::new();
    for _ in replies {
        got.push(c.reply().await);
    }
    assert_eq!(code(&got[0]), "250");
    assert_eq!(got[1], "250 2.1.0 Sender OK");
    assert_eq!(got[2], "250 2.1.5 Recipient OK");
    assert_eq!(got[3], "250 2.1.5 Recipient OK");
    assert_eq!(got[4], "354 Start mail input; end with <CRLF>.<CRLF>");
    let body = b"Subject: dots\r\n\r\n..one\r\n...two\r\n.\r\r\nend\r\n.\r\n";
    c.send(body).await;
    assert_eq!(code(&c.reply().await), "250");
    c.send(b"QUIT\r\n").await;
    assert_eq!(code(&c.reply().await), "221");

    let msgs = server.wait_for_messages(1, WAIT).await;
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.mail_from, "a@x.example");
    assert_eq!(m.mail_params, ["BODY=8BITMIME"]);
    assert_eq!(m.rcpt_to, ["b@x.example", "c@x.example"]);
    assert_eq!(m.data, b"Subject: dots\r\n\r\n.one\r\n..two\r\n\r\r\nend\r\n");
    assert!(!m.tls && !m.via_bdat && m.committed);
    assert_eq!(m.connection, 0);

    let mut expected = commands.to_vec();
    expected.extend_from_slice(body);
    expected.extend_from_slice(b"QUIT\r\n");
    assert_eq!(server.received_bytes(), vec![expected]);
    let transcript = &server.transcripts()[0];
    assert!(transcript.contains("C: RCPT TO:<c@x.example>\nS: 250 2.1.5 Recipient OK\n"), "{transcript}");
    // `\r\r\n` in the body holds a bare CR.
    assert_eq!(server.violations(), ["connection 0: bare CR in message data"]);
}

#[tokio::test]
async fn pipelined_replies_come_as_one_group() {
    let server = start(TestServer::builder()).await;
    let mut c = Client::new(server.connect_in_memory());
    c.reply().await;
    c.send(b"EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n").await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, c.stream.read(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.ends_with("250 2.1.5 Recipient OK\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n"),
        "{text}"
    );
    assert!(server.violations().is_empty());
}

#[tokio::test]
async fn data_before_354_is_a_violation() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    c.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\nx\r\n.\r\n").await;
    for expected in ["250", "250", "354", "250"] {
        assert_eq!(code(&c.reply().await), expected);
    }
    assert_eq!(server.violations(), ["connection 0: message data sent before the 354 reply"]);
}

#[tokio::test]
async fn smuggled_terminators_stay_in_the_data() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    c.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n").await;
    for _ in 0..3 {
        c.reply().await;
    }
    let body = b"A\n.\nMAIL FROM:<evil@x.example>\r\nB\r.\r\nC\r\n.\r\n";
    c.send(body).await;
    assert_eq!(code(&c.reply().await), "250");
    assert_eq!(code(&c.cmd("NOOP").await), "250");
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].data, b"A\n.\nMAIL FROM:<evil@x.example>\r\nB\r.\r\nC\r\n");
    assert_eq!(
        server.violations(),
        ["connection 0: bare LF in message data", "connection 0: bare CR in message data"]
    );
}

#[tokio::test]
async fn empty_message_and_long_lines() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    for _ in 0..2 {
        c.cmd("MAIL FROM:<>").await;
        c.cmd("RCPT TO:<postmaster>").await;
        assert_eq!(code(&c.cmd("DATA").await), "354");
        if server.messages().is_empty() {
            assert_eq!(code(&c.cmd(".").await), "250");
        } else {
            let long = format!("{}\r\n.", "x".repeat(999));
            assert_eq!(c.cmd(&long).await, "500 5.5.2 Line too long");
        }
    }
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.messages()[0].data, b"");
    let all = server.all_messages();
    assert_eq!(all.len(), 2);
    assert!(!all[1].committed);
}

#[tokio::test]
async fn over_long_command_line_is_refused() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    let line = format!("NOOP {}", "x".repeat(20_000));
    assert_eq!(c.cmd(&line).await, "500 5.5.2 Line too long");
    assert_eq!(code(&c.cmd("NOOP").await), "250");
}

#[tokio::test]
async fn bdat_chunks_and_zero_last() {
    let server = start(TestServer::builder().chunking(true)).await;
    let mut c = greeted(&server).await;
    // Pipelined: MAIL, RCPT and two chunks in one write.
    c.send(b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nBDAT 7\r\nHello\r\nBDAT 3\r\n.\r\n").await;
    assert_eq!(code(&c.reply().await), "250");
    assert_eq!(code(&c.reply().await), "250");
    assert_eq!(c.reply().await, "250 2.0.0 7 octets received");
    assert_eq!(c.reply().await, "250 2.0.0 10 octets received");
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 DATA not allowed after BDAT");
    assert_eq!(code(&c.cmd("BDAT 0 LAST").await), "250");
    // A single chunk with LAST, binary content untouched.
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.send(b"BDAT 4 LAST\r\n\0\r\n.").await;
    assert_eq!(code(&c.reply().await), "250");
    // BDAT without a transaction: the chunk is still consumed.
    c.send(b"BDAT 6 LAST\r\nNOOP\r\n").await;
    assert_eq!(code(&c.reply().await), "503");
    assert_eq!(code(&c.cmd("NOOP").await), "250");

    let msgs = server.wait_for_messages(2, WAIT).await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].data, b"Hello\r\n.\r\n");
    assert!(msgs[0].via_bdat);
    assert_eq!(msgs[1].data, b"\0\r\n.");
}

#[tokio::test]
async fn bdat_without_chunking_is_not_implemented() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    assert_eq!(c.cmd("BDAT 0 LAST").await, "502 5.5.1 Command not implemented");
}

#[tokio::test]
async fn sequencing_errors() {
    let server = start(TestServer::builder()).await;
    let mut c = Client::connect(&server).await;
    c.reply().await;
    assert_eq!(c.cmd("MAIL FROM:<a@x.example>").await, "503 5.5.1 Send EHLO/HELO first");
    c.cmd("EHLO c.example").await;
    assert_eq!(c.cmd("RCPT TO:<b@x.example>").await, "503 5.5.1 Need MAIL before RCPT");
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 Need MAIL before DATA");
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example>").await), "250");
    assert_eq!(c.cmd("MAIL FROM:<a@x.example>").await, "503 5.5.1 Nested MAIL command");
    assert_eq!(c.cmd("DATA").await, "554 5.5.1 No valid recipients");
    assert_eq!(code(&c.cmd("RSET").await), "250");
    assert_eq!(code(&c.cmd("RCPT TO:<b@x.example>").await), "503");
    assert_eq!(code(&c.cmd("VRFY someone").await), "252");
    assert_eq!(code(&c.cmd("EXPN list").await), "502");
    assert_eq!(code(&c.cmd("FROB").await), "500");
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example> SIZE=10").await), "555");
    assert_eq!(code(&c.cmd("STARTTLS").await), "502");
    assert_eq!(code(&c.cmd("AUTH PLAIN").await), "502");
    assert_eq!(code(&c.cmd("MAIL FROM:<ü@x.example>").await), "553");
}

#[tokio::test]
async fn rejected_recipient_and_sender() {
    let server = start(
        TestServer::builder()
            .reject_recipient("bad@x.example", 550, "5.1.1 no such user")
            .reject_sender("spam@x.example", 553, "5.7.1 go away")
            .max_recipients(2),
    )
    .await;
    let mut c = greeted(&server).await;
    assert_eq!(c.cmd("MAIL FROM:<SPAM@x.example>").await, "553 5.7.1 go away");
    c.cmd("MAIL FROM:<a@x.example>").await;
    assert_eq!(code(&c.cmd("RCPT TO:<good@x.example>").await), "250");
    assert_eq!(c.cmd("RCPT TO:<Bad@X.example>").await, "550 5.1.1 no such user");
    assert_eq!(code(&c.cmd("RCPT TO:<other@x.example>").await), "250");
    assert_eq!(c.cmd("RCPT TO:<third@x.example>").await, "452 4.5.3 Too many recipients");
    c.cmd("DATA").await;
    c.cmd("hi\r\n.").await;
    let msgs = server.wait_for_messages(1, WAIT).await;
    assert_eq!(msgs[0].rcpt_to, ["good@x.example", "other@x.example"]);
}

#[tokio::test]
async fn concurrent_connections() {
    let server = Arc::new(start(TestServer::builder()).await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let server = Arc::clone(&server);
        tasks.spawn(async move {
            let mut c = greeted(&server).await;
            c.cmd(&format!("MAIL FROM:<s{i}@x.example>")).await;
            c.cmd("RCPT TO:<b@x.example>").await;
            c.cmd("DATA").await;
            assert_eq!(code(&c.cmd(&format!("message {i}\r\n.")).await), "250");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(server.wait_for_messages(20, WAIT).await.len(), 20);
}

#[tokio::test]
async fn size_limit_after_data_and_bdat() {
    let server = start(TestServer::builder().size(Some(10)).chunking(true)).await;
    let mut c = greeted(&server).await;
    c.cmd("MAIL FROM:<a@x.example> SIZE=5").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.cmd("DATA").await;
    let reply = c.cmd("0123456789abcdef\r\n.").await;
    assert_eq!(reply, "552 5.3.4 Message size exceeds fixed maximum message size");
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.send(b"BDAT 11 LAST\r\n0123456789a").await;
    assert_eq!(code(&c.reply().await), "552");
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.send(b"BDAT 10 LAST\r\n0123456789").await;
    assert_eq!(code(&c.reply().await), "250");
    assert_eq!(server.all_messages().iter().map(|m| m.committed).collect::<Vec<_>>(), [false, false, true]);
}

#[tokio::test]
async fn long_lines_allowed_when_configured_and_helo_has_no_extensions() {
    let server = start(TestServer::builder().max_data_line(None)).await;
    let mut c = Client::connect(&server).await;
    c.reply().await;
    c.cmd("HELO c.example").await;
    assert_eq!(code(&c.cmd("MAIL FROM:<a@x.example> BODY=8BITMIME").await), "555");
    c.cmd("MAIL FROM:<a@x.example>").await;
    c.cmd("RCPT TO:<b@x.example>").await;
    c.cmd("DATA").await;
    let long = format!("{}\r\n.", "z".repeat(5000));
    assert_eq!(code(&c.cmd(&long).await), "250");
    assert_eq!(server.messages()[0].data.len(), 5002);
}

#[tokio::test]
async fn many_messages_on_one_connection() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    for i in 0..300 {
        c.send(format!("MAIL FROM:<a@x.example>\r\nRCPT TO:<b{i}@x.example>\r\nDATA\r\n").as_bytes()).await;
        for expected in ["250", "250", "354"] {
            assert_eq!(code(&c.reply().await), expected);
        }
        c.send(format!("Subject: {i}\r\n\r\n{}\r\n.\r\n", "body ".repeat(100)).as_bytes()).await;
        assert_eq!(code(&c.reply().await), "250");
    }
    let msgs = server.wait_for_messages(300, WAIT).await;
    assert_eq!(msgs.len(), 300);
    assert_eq!(msgs[299].header("subject").as_deref(), Some("299"));
    assert!(server.violations().is_empty());
}

/// The id after `queued as ` in a reply.
fn queued_as(reply: &str) -> String {
    let at = reply.find("queued as ").expect("a queue id") + "queued as ".len();
    reply[at..].to_owned()
}

/// Issue 10 #7: the queue id names one message, not one connection.
#[tokio::test]
async fn every_message_gets_its_own_queue_id() {
    let server = start(TestServer::builder().chunking(true)).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut c = greeted(&server).await;
        for _ in 0..2 {
            c.cmd("MAIL FROM:<a@x.example>").await;
            c.cmd("RCPT TO:<b@x.example>").await;
            c.cmd("DATA").await;
            ids.push(queued_as(&c.cmd("hi\r\n.").await));
        }
        c.cmd("MAIL FROM:<a@x.example>").await;
        c.cmd("RCPT TO:<b@x.example>").await;
        ids.push(queued_as(&c.cmd("BDAT 4 LAST\r\nhi\r\n").await));
        c.cmd("QUIT").await;
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 6, "{ids:?}");
    let messages = server.wait_for_messages(6, WAIT).await;
    let recorded: Vec<String> = messages.iter().map(|m| m.queue_id.clone()).collect();
    assert_eq!(recorded, ids);
}
