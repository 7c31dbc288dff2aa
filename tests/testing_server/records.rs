//! The server's lifecycle and what tests read back from it.

use super::*;

#[tokio::test]
async fn shutdown_closes_open_connections() {
    let server = start(TestServer::builder().on(Step::Data, Fault::StopReading)).await;
    let addr = server.addr();
    let mut idle = greeted(&server).await;
    let mut stuck = greeted(&server).await;
    stuck.cmd("MAIL FROM:<a@x.example>").await;
    stuck.cmd("RCPT TO:<b@x.example>").await;
    stuck.cmd("DATA").await;
    tokio::time::timeout(WAIT, server.shutdown()).await.expect("shutdown hung");
    assert!(idle.closed().await);
    assert!(stuck.closed().await);
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn drop_closes_open_connections() {
    let server = start(TestServer::builder()).await;
    let mut c = greeted(&server).await;
    drop(server);
    assert!(c.closed().await);
}

#[tokio::test]
async fn wait_for_messages_returns_at_the_deadline() {
    let server = start(TestServer::builder()).await;
    let t0 = std::time::Instant::now();
    assert!(server.wait_for_messages(1, Duration::from_millis(100)).await.is_empty());
    assert!(t0.elapsed() >= Duration::from_millis(100));
}

/// Issue 16 #6: what the server captured reads as a person would read it: decoded
/// subject and display names, the date, the bodies, attachments with their names, types
/// and decoded sizes.
#[tokio::test]
async fn captured_mail_reads_as_a_person_would_read_it() {
    use smtpkit::{Client, Message};
    let server = start(TestServer::builder().smtputf8(true)).await;
    let pdf = [b"%PDF-1.4\n".to_vec(), vec![0xAB; 48_213 - 9]].concat();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let date = std::time::UNIX_EPOCH + Duration::from_secs(1_796_410_800);
    let message = Message::builder()
        .from(("Zoë Chen", "zoe@example.com"))
        .to("Bob <bob@example.com>")
        .cc("carol@example.com")
        .subject("月度报告 — Q4")
        .date(date)
        .text_body("见附件。")
        .html_body("<p>见附件 <img src=\"cid:logo@example.com\"></p>")
        .inline_image("logo@example.com", "image/png", png.clone())
        .attachment("报告.pdf", "application/pdf", pdf.clone())
        .build()
        .unwrap();
    let mut client = Client::from_url(&server.url()).unwrap().connect().await.unwrap();
    client.send_message(&message).await.unwrap();
    client.quit().await.unwrap();
    let got = &server.wait_for_messages(1, WAIT).await[0];

    assert!(got.header("subject").unwrap().starts_with("=?"), "the raw field is encoded");
    assert_eq!(got.subject().as_deref(), Some("月度报告 — Q4"));
    assert_eq!(got.from().len(), 1);
    assert_eq!(got.from()[0].to_string(), "Zoë Chen <zoe@example.com>");
    assert_eq!(got.to()[0].address, "bob@example.com");
    assert_eq!(got.cc()[0].address, "carol@example.com");
    assert_eq!(got.decoded_header("From").as_deref(), Some("Zoë Chen <zoe@example.com>"));
    assert_eq!(got.date(), Some(date));
    assert_eq!(got.message_id().as_deref(), Some(message.message_id().trim_matches(['<', '>'])));
    assert_eq!(got.text_body().as_deref().map(str::trim_end), Some("见附件。"));
    assert!(got.html_body().unwrap().contains("cid:logo@example.com"));

    let files = got.attachments();
    assert_eq!(files.len(), 2, "{files:?}");
    let report = files.iter().find(|f| !f.inline).unwrap();
    assert_eq!(report.file_name.as_deref(), Some("报告.pdf"));
    assert_eq!(report.content_type, "application/pdf");
    assert_eq!(report.size(), 48_213);
    assert_eq!(report.content, pdf);
    let logo = files.iter().find(|f| f.inline).unwrap();
    assert_eq!(logo.content_type, "image/png");
    assert_eq!(logo.content_id.as_deref(), Some("logo@example.com"));
    assert_eq!(logo.content, png);
}
