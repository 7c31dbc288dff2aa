//! smtplib parity for wrapper crates: explicit EHLO, has_extension, NOOP, RSET, VRFY and a
//! validated low-level command API.

use smtpkit::testing::TestServer;
use smtpkit::{Client, Error, InputError};

async fn client(server: &TestServer) -> Client {
    Client::from_url(&server.url()).unwrap().connect().await.unwrap()
}

#[tokio::test]
async fn explicit_commands_and_extension_queries() {
    let server =
        TestServer::builder().chunking(true).extra_capability("X-SMTPKIT-TEST").start().await.unwrap();
    let mut c = client(&server).await;
    assert!(c.has_extension("chunking") && c.has_extension("X-smtpkit-test") && !c.has_extension("DSN"));
    assert_eq!(c.ehlo().await.unwrap().code().0, 250);
    assert!(c.has_extension("PIPELINING"));
    assert_eq!(c.noop().await.unwrap().code().0, 250);
    assert_eq!(c.rset().await.unwrap().code().0, 250);
    assert_eq!(c.vrfy("postmaster").await.unwrap().code().0, 252);
    let help = c.command_line("HELP", "").await;
    // The test server answers HELP with 214; an unknown verb is a typed rejection.
    assert_eq!(help.unwrap().code().0, 214);
    let err = c.command_line("XNOSUCH", "arg").await.unwrap_err();
    assert!(matches!(&err, Error::Rejected { reply, .. } if reply.code().0 >= 500), "{err:?}");
    assert!(c.is_reusable());
    c.quit().await.unwrap();
}

#[tokio::test]
async fn low_level_commands_cannot_smuggle_lines() {
    let server = TestServer::builder().start().await.unwrap();
    let mut c = client(&server).await;
    for (verb, args) in
        [("HELP", "x\r\nRCPT TO:<a@b>"), ("HE LP", ""), ("MAIL", "FROM:<a@b>"), ("DATA", ""), ("HELP", "\0")]
    {
        let err = c.command_line(verb, args).await.unwrap_err();
        assert!(matches!(err, Error::Input(InputError::Custom(_))), "{verb:?} {args:?}: {err:?}");
    }
    assert!(matches!(c.vrfy("a\r\nb").await, Err(Error::Input(_))));
    assert!(c.is_reusable());
    c.quit().await.unwrap();
    // Nothing of the refused commands reached the server.
    let bytes = server.received_bytes();
    let all = String::from_utf8_lossy(&bytes[0]);
    assert!(!all.contains("RCPT") && !all.contains("HE LP") && !all.contains("MAIL"), "{all}");
}
