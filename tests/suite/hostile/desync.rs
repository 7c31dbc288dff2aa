//! Beyond the list: replies that arrive before their command was written, extra replies,
//! and reply codes that make no sense for the command. Each must end the session with a
//! protocol error, never be matched to a later command.

use smtpkit::testing::{Fault, Step, TestServer};
use smtpkit::{Error, Phase, ProtocolError};

use super::{assert_ambiguous, connect, env, plain, received, start};

#[tokio::test(start_paused = true)]
async fn a_reply_before_ehlo_was_written_is_unsolicited() {
    let server = start(
        TestServer::builder()
            .on(Step::Greeting, Fault::Raw(b"220 hi\r\n250-mx\r\n250 PIPELINING\r\n".to_vec())),
    )
    .await;
    let err = connect(&server, plain()).await.unwrap_err();
    assert!(matches!(err, Error::Protocol(ProtocolError::Unsolicited(_))), "{err:?}");
    assert!(!received(&server, 0).await.contains("MAIL"));
}

#[tokio::test(start_paused = true)]
async fn a_second_reply_to_mail_is_not_taken_for_the_rcpt_reply() {
    // Without pipelining RCPT is written only after MAIL's reply: a reply already waiting
    // behind it cannot belong to RCPT.
    let server = start(
        TestServer::builder().pipelining(false).on(Step::Mail, Fault::Raw(b"250 ok\r\n250 ok\r\n".to_vec())),
    )
    .await;
    let mut client = connect(&server, plain().pipelining(false)).await.unwrap();
    let err = client.send(&env(), "x").await.unwrap_err();
    assert!(matches!(err, Error::Protocol(ProtocolError::Unsolicited(_))), "{err:?}");
    assert!(!client.is_reusable());
    assert!(server.all_messages().is_empty());
}

#[tokio::test(start_paused = true)]
async fn intermediate_codes_where_none_belongs_are_protocol_errors() {
    for (step, code, phase) in [
        (Step::Mail, 354, Phase::Mail),
        (Step::RcptAny, 354, Phase::Rcpt),
        (Step::Mail, 334, Phase::Mail),
        (Step::Data, 250, Phase::Data),
        (Step::Rset, 354, Phase::Rset),
    ] {
        let server = start(TestServer::builder().on(step, Fault::Reply { code, text: "odd".into() })).await;
        let mut client = connect(&server, plain()).await.unwrap();
        let err = if step == Step::Rset {
            client.rset().await.unwrap_err()
        } else {
            client.send(&env(), "x").await.unwrap_err()
        };
        assert!(
            matches!(&err, Error::Protocol(ProtocolError::UnexpectedReply { phase: p, reply }) if *p == phase && reply.code().0 == code),
            "{step:?} {code}: {err:?}"
        );
        assert!(err.is_transient(), "a misbehaving server may do better later");
        assert!(!client.is_reusable());
        assert!(server.messages().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_354_to_the_dot_is_an_ambiguous_protocol_error() {
    let server =
        start(TestServer::builder().on(Step::DataEnd, Fault::Reply { code: 354, text: "more?".into() }))
            .await;
    let mut client = connect(&server, plain()).await.unwrap();
    let err = client.send(&env(), "x").await.unwrap_err();
    assert_ambiguous(&err, |c| {
        matches!(c, Error::Protocol(ProtocolError::UnexpectedReply { phase: Phase::DataEnd, .. }))
    });
}
