//! The proof for wrapper crates: a small generic mailer, written once against
//! `T: Transport`, runs unchanged over SMTP (the in-process server and real Postfix), the
//! file transport, the stub and Postfix's own `sendmail`.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use smtpkit::testing::TestServer;
use smtpkit::transport::{FileTransport, SendmailTransport, SmtpTransport, StubTransport, Transport};
use smtpkit::{Client, Error, Message, SendReport, TlsPolicy};

use super::support::interop;
use super::transport::{scratch, unique};

/// What a wrapper crate would write: a template, a transport it does not know, a report.
pub struct Mailer<T: Transport> {
    transport: T,
    from: String,
    subject: String,
    template: String,
}

/// What happened to one recipient, as the wrapper crate's users see it.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Accepted(String),
    Refused(String, u16),
}

impl<T: Transport> Mailer<T> {
    pub fn new(transport: T, from: &str) -> Self {
        Self {
            transport,
            from: from.into(),
            subject: "Welcome, {name}".into(),
            template: "Hello {name},\r\n\r\nyour account is ready.\r\n".into(),
        }
    }

    /// Composes from the template and sends; per-recipient results or the typed error.
    pub async fn welcome(&self, name: &str, to: &[&str], marker: &str) -> Result<Vec<Delivery>, Error> {
        let fill = |s: &str| s.replace("{name}", name);
        let mut builder = Message::builder()
            .from(self.from.as_str())
            .subject(format!("{} [{marker}]", fill(&self.subject)))
            .text_body(fill(&self.template));
        for rcpt in to {
            builder = builder.to(*rcpt);
        }
        let message = builder.build().map_err(|e| Error::Config(e.to_string()))?;
        let report: SendReport = self.transport.send_message(&message).await?;
        Ok(report
            .recipients
            .iter()
            .map(|r| match r.accepted() {
                true => Delivery::Accepted(r.address.to_string()),
                false => Delivery::Refused(r.address.to_string(), r.reply.code().0),
            })
            .collect())
    }

    pub async fn close(&self) {
        self.transport.close().await;
    }
}

const TO: [&str; 2] = ["ann@example.test", "reject@example.test"];

fn expected(refused: bool) -> Vec<Delivery> {
    let second = match refused {
        true => Delivery::Refused(TO[1].into(), 550),
        false => Delivery::Accepted(TO[1].into()),
    };
    vec![Delivery::Accepted(TO[0].into()), second]
}

#[tokio::test]
async fn the_mailer_over_the_in_process_server() {
    let server = TestServer::builder()
        .reject_recipient("reject@example.test", 550, "5.1.1 no such user")
        .start()
        .await
        .unwrap();
    let connector =
        Client::builder("127.0.0.1").port(server.addr().port()).tls(TlsPolicy::Disabled).build().unwrap();
    let mailer = Mailer::new(SmtpTransport::new(connector), "app@example.test");
    assert_eq!(mailer.welcome("Ann", &TO, "mailer-inproc").await.unwrap(), expected(true));
    mailer.close().await;
    let got = server.wait_for_messages(1, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&got[0].data).contains("Hello Ann,"));
    server.shutdown().await;
}

#[tokio::test]
async fn the_mailer_over_the_file_transport_and_the_stub() {
    let dir = scratch("mailer-file");
    let mailer = Mailer::new(FileTransport::new(&dir), "app@example.test");
    assert_eq!(mailer.welcome("Ann", &TO, "mailer-file").await.unwrap(), expected(false));
    let eml = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "eml"));
    assert!(fs::read_to_string(eml.unwrap()).unwrap().contains("Hello Ann,"));
    fs::remove_dir_all(dir).unwrap();

    let stub = StubTransport::new();
    // Held as a trait object, as a service with a dev/test/prod split would.
    let mailer = Mailer::new(Arc::new(stub.clone()) as Arc<dyn Transport>, "app@example.test");
    assert_eq!(mailer.welcome("Ann", &TO, "mailer-stub").await.unwrap(), expected(false));
    assert!(String::from_utf8_lossy(&stub.messages()[0].message).contains("Subject: Welcome, Ann"));
}

#[tokio::test]
async fn the_mailer_over_real_postfix_with_starttls_and_auth() {
    let Some(server) = interop::postfix_or_skip("the_mailer_over_real_postfix_with_starttls_and_auth") else {
        return;
    };
    let connector = Client::builder("127.0.0.1")
        .port(server.submission.unwrap().port())
        .credentials(smtpkit::Credentials::new(server.user.clone(), server.password.clone()))
        .add_root_pem_file(&server.ca_pem_path)
        .unwrap()
        .build()
        .unwrap();
    let mailer = Mailer::new(SmtpTransport::new(connector), "app@example.test");
    let marker = unique("mailer-postfix-smtp");
    assert_eq!(mailer.welcome("Ann", &TO, &marker).await.unwrap(), expected(true));
    mailer.close().await;
    let got = tokio::task::spawn_blocking(move || {
        interop::wait_for_delivery(&server, &marker, 1, Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].recipients, vec![TO[0].to_string()]);
}

#[tokio::test]
async fn the_mailer_over_postfix_sendmail_delivers_into_its_maildir() {
    let Some(server) = interop::postfix_or_skip("the_mailer_over_postfix_sendmail") else { return };
    let (program, config) = interop::postfix_sendmail().unwrap();
    let transport = SendmailTransport::new(program).arg("-C").arg(config).timeout(Duration::from_secs(30));
    let mailer = Mailer::new(transport, "app@example.test");
    // sendmail accepts every recipient; the refusal comes later, as a bounce.
    let to = ["ann@example.test", "bob@example.com"];
    let marker = unique("mailer-postfix-sendmail");
    let got = mailer.welcome("Ann", &to, &marker).await.unwrap();
    assert_eq!(got, vec![Delivery::Accepted(to[0].into()), Delivery::Accepted(to[1].into())]);
    let got = tokio::task::spawn_blocking(move || {
        interop::wait_for_delivery(&server, &marker, 1, Duration::from_secs(20))
    })
    .await
    .unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].sender, "app@example.test");
    let mut rcpts = got[0].recipients.clone();
    rcpts.sort();
    assert_eq!(rcpts, vec!["ann@example.test".to_string(), "bob@example.com".to_string()]);
    assert!(String::from_utf8_lossy(&got[0].data).contains("Hello Ann,"));
}

#[tokio::test]
async fn postfix_sendmail_failing_is_a_typed_error() {
    let Some(_server) = interop::postfix_or_skip("postfix_sendmail_failing_is_a_typed_error") else { return };
    let (program, _) = interop::postfix_sendmail().unwrap();
    // A config directory that does not exist: Postfix's sendmail says so and exits 75.
    let transport = SendmailTransport::new(program).arg("-C").arg("/nonexistent/postfix");
    let mailer = Mailer::new(transport, "app@example.test");
    let err = mailer.welcome("Ann", &TO, "mailer-sendmail-fail").await.unwrap_err();
    match &err {
        Error::Transport(smtpkit::transport::TransportError::Exit { status, stderr, .. }) => {
            assert_eq!(*status, Some(75), "{stderr}");
            assert!(stderr.contains("/nonexistent/postfix"), "{stderr}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_transient());
}
