//! CHUNKING (RFC 3030): the same outcomes with BDAT instead of DATA: no stuffing, no
//! terminator, normalised line endings, ambiguity only for the last chunk, refusals
//! classified, and no further chunks after a refused one.

use smtpkit::testing::{Fault, FaultRule, Step, TestServer, TestServerBuilder};
use smtpkit::{Envelope, Error, Phase};

use super::{assert_ambiguous, assert_rejected, connect, env, plain, received, start};

fn chunking() -> TestServerBuilder {
    TestServer::builder().chunking(true)
}

fn bdat_client() -> smtpkit::ClientBuilder {
    plain().chunking(true)
}

#[tokio::test(start_paused = true)]
async fn bdat_sends_normalised_unstuffed_data() {
    let server = start(chunking()).await;
    let mut client = connect(&server, bdat_client()).await.unwrap();
    let body = b"Subject: x\n\n.leading\r\nA\n.\nMAIL FROM:<evil@x>\r\n\r.\r".to_vec();
    client.send(&env(), body).await.unwrap();
    let msg = &server.messages()[0];
    assert!(msg.via_bdat);
    assert_eq!(msg.data, b"Subject: x\r\n\r\n.leading\r\nA\r\n.\r\nMAIL FROM:<evil@x>\r\n\r\n.\r\n");
    let wire = received(&server, 0).await;
    assert!(!wire.contains("DATA\r\n"), "{wire}");
    assert_eq!(wire.matches("BDAT ").count(), 1, "{wire}");
    assert_eq!(server.transcripts()[0].matches("C: MAIL FROM").count(), 1);
}

#[tokio::test(start_paused = true)]
async fn drop_after_the_last_chunk_is_ambiguous() {
    for (fault, commits) in [(Fault::Close, false), (Fault::CommitThenClose, true), (Fault::Silence, false)] {
        let server = start(chunking().on(Step::BdatLast, fault.clone())).await;
        let mut client = connect(&server, bdat_client()).await.unwrap();
        let err = client.send(&env(), "x\r\n").await.unwrap_err();
        assert_ambiguous(&err, |c| {
            matches!(c, Error::ConnectionClosed(Phase::DataEnd) | Error::Timeout(Phase::DataEnd))
        });
        assert_eq!(server.messages().len(), usize::from(commits), "{fault:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn refusals_of_the_last_chunk_are_classified_and_reset() {
    for code in [421, 451, 452, 552, 554] {
        let server = start(
            chunking().fault(FaultRule::new(Step::BdatLast, Fault::Reply { code, text: "no".into() }).once()),
        )
        .await;
        let mut client = connect(&server, bdat_client()).await.unwrap();
        let err = client.send(&env(), "x\r\n").await.unwrap_err();
        assert_rejected(&err, Phase::DataEnd, code);
        assert_eq!(err.is_transient(), code < 500, "{code}");
        assert!(!err.is_ambiguous());
        assert!(server.messages().is_empty());
        if code == 421 {
            assert!(!client.is_reusable());
            continue;
        }
        client.noop().await.expect("still usable after RSET");
        assert!(
            received(&server, 0).await.contains("RSET\r\n"),
            "{code}: BDAT failure resets the transaction"
        );
        client.send(&env(), "again\r\n").await.expect("reused");
    }
}

#[tokio::test(start_paused = true)]
async fn no_chunk_after_a_refused_chunk_without_pipelining() {
    let server = start(
        chunking()
            .pipelining(false)
            .on(Step::Bdat(0), Fault::Reply { code: 552, text: "5.3.4 too big".into() }),
    )
    .await;
    let mut client = connect(&server, bdat_client().pipelining(false)).await.unwrap();
    // 2.5 MB: three 1 MiB chunks.
    let body = ("b".repeat(98) + "\r\n").repeat(25_000);
    let err = client.send(&env(), body).await.unwrap_err();
    assert_rejected(&err, Phase::DataEnd, 552);
    assert!(err.is_permanent());
    assert_eq!(server.transcripts()[0].matches("C: BDAT").count(), 1, "RFC 3030 2: no more chunks");
    assert!(server.messages().is_empty());
}

#[tokio::test(start_paused = true)]
async fn lost_link_after_bdat_when_every_recipient_was_refused_is_not_ambiguous() {
    // Pipelined BDAT LAST went out with the RCPTs; every RCPT was refused, so nothing can
    // have been delivered, whatever happened to the BDAT reply.
    let server = start(
        chunking().reject_recipient("b@example.com", 550, "5.1.1 unknown").on(Step::BdatLast, Fault::Close),
    )
    .await;
    let mut client = connect(&server, bdat_client()).await.unwrap();
    let err = client.send(&env(), "x\r\n").await.unwrap_err();
    assert!(!err.is_ambiguous(), "{err:?}");
    assert!(err.is_permanent() || err.is_transient(), "{err:?}");
    assert!(server.messages().is_empty());

    // Mixed: one recipient accepted, then the link is lost: that is ambiguous.
    let server = start(
        chunking().reject_recipient("c@example.com", 550, "5.1.1 unknown").on(Step::BdatLast, Fault::Close),
    )
    .await;
    let mut client = connect(&server, bdat_client()).await.unwrap();
    let envelope = Envelope::parse("a@example.com", &["b@example.com", "c@example.com"]).unwrap();
    let err = client.send(&envelope, "x\r\n").await.unwrap_err();
    assert_ambiguous(&err, |c| matches!(c, Error::ConnectionClosed(_)));
}
