//! Command lines: dispatch, and the checks of EHLO, MAIL, RCPT and STARTTLS.

use tokio::io::{AsyncRead, AsyncWrite};

use super::auth;
use super::data::Transaction;
use super::respond::Effect;
use super::{Flow, Greeted, Mode, Session};
use crate::testing::command::{self, Command, param_parts};
use crate::testing::fault::Step;
use crate::testing::reply::Reply;

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    pub(super) async fn command(&mut self, line: Option<Vec<u8>>) -> Flow {
        self.unsolicited = None;
        let index = self.commands;
        self.commands += 1;
        let Some(line) = line else {
            self.shared.recorder.line(self.id, "C: <line too long, dropped>".into());
            let reply = self.reply(500, "5.5.2", "Line too long");
            return self.respond(&[Step::Command(index)], reply, Effect::None).await;
        };
        self.client_line(&line, auth::initial_response_span(&line));
        let any = Step::Command(index);
        if self.rejected {
            // RFC 5321 3.1: after a 554 greeting the server "MUST wait for the client to send
            // a QUIT before closing the connection and SHOULD respond to any intervening
            // commands with "503 bad sequence of commands"".
            return match command::parse(&line) {
                Ok(Command::Quit) => {
                    let reply = self.reply(221, "2.0.0", "Bye");
                    self.respond(&[Step::Quit, any], reply, Effect::Quit).await
                }
                _ => {
                    let reply = self.reply(503, "5.5.1", "Bad sequence of commands");
                    self.respond(&[any], reply, Effect::None).await
                }
            };
        }
        let cmd = match command::parse(&line) {
            Ok(cmd) => cmd,
            Err(reply) => return self.respond(&[any], reply, Effect::None).await,
        };
        match cmd {
            Command::Ehlo(_) => {
                let reply = Reply::new(250, self.ehlo_lines().join("\n"));
                self.respond(&[Step::Ehlo, any], reply, Effect::Greeted(Greeted::Ehlo)).await
            }
            Command::Helo(_) => {
                let reply = Reply::new(250, self.shared.config.hostname.clone());
                self.respond(&[Step::Helo, any], reply, Effect::Greeted(Greeted::Helo)).await
            }
            Command::Mail { path, params } => {
                let (reply, effect) = self.mail(path, params);
                self.respond(&[Step::Mail, any], reply, effect).await
            }
            Command::Rcpt { path, params } => {
                let n = self.txn.as_ref().map_or(0, |t| t.rcpt_commands);
                if let Some(t) = self.txn.as_mut() {
                    t.rcpt_commands += 1;
                }
                let (reply, effect) = self.rcpt(path, params);
                self.respond(&[Step::Rcpt(n), Step::RcptAny, any], reply, effect).await
            }
            Command::Data => {
                let (reply, effect) = self.data();
                let flow = self.respond(&[Step::Data, any], reply, effect).await;
                if matches!(self.mode, Mode::Data(_)) && !self.inbuf.is_empty() {
                    // RFC 2920 3.1: DATA is the last command of a group; data before 354
                    // is a pipelining error.
                    self.violation("message data sent before the 354 reply");
                }
                flow
            }
            Command::Bdat { size, last } => self.bdat(size, last, index).await,
            Command::Rset => {
                let reply = self.reply(250, "2.0.0", "OK");
                self.respond(&[Step::Rset, any], reply, Effect::Reset).await
            }
            Command::Noop => {
                let reply = self.reply(250, "2.0.0", "OK");
                self.respond(&[Step::Noop, any], reply, Effect::None).await
            }
            Command::Quit => {
                let text = format!("{} closing connection", self.shared.config.hostname);
                let reply = self.reply(221, "2.0.0", text);
                self.respond(&[Step::Quit, any], reply, Effect::Quit).await
            }
            Command::Vrfy => {
                let reply = self.reply(252, "2.5.0", "Cannot VRFY user, but will accept message");
                self.respond(&[any], reply, Effect::None).await
            }
            Command::Help => {
                let reply = self.reply(214, "2.0.0", "smtpkit-testing: see RFC 5321");
                self.respond(&[any], reply, Effect::None).await
            }
            Command::NotImplemented => {
                let reply = self.reply(502, "5.5.1", "Command not implemented");
                self.respond(&[any], reply, Effect::None).await
            }
            Command::StartTls => {
                let (reply, effect) = self.starttls();
                self.respond(&[Step::StartTls, any], reply, effect).await
            }
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial, index).await,
        }
    }

    /// The EHLO reply lines: greeting line, then one capability per line.
    pub(super) fn ehlo_lines(&self) -> Vec<String> {
        let c = &self.shared.config;
        let mut lines = vec![format!("{} greets you", c.hostname)];
        let size = c.size.map(|n| format!("SIZE {n}"));
        let auth = Some(format!("AUTH {}", c.auth_mechanisms().join(" ")));
        let caps = [
            (c.pipelining, Some("PIPELINING")),
            (size.is_some(), size.as_deref()),
            (c.eight_bit_mime, Some("8BITMIME")),
            (c.smtputf8, Some("SMTPUTF8")),
            (c.dsn, Some("DSN")),
            (c.enhanced_status_codes, Some("ENHANCEDSTATUSCODES")),
            (c.chunking, Some("CHUNKING")),
            // RFC 3207 4.2: "A server MUST NOT return the STARTTLS extension in response to
            // an EHLO command received after a TLS handshake has completed."
            (c.starttls && !c.implicit_tls && !self.tls, Some("STARTTLS")),
            (self.auth_offered(), auth.as_deref()),
        ];
        lines.extend(caps.into_iter().filter(|(on, _)| *on).filter_map(|(_, cap)| cap.map(str::to_owned)));
        lines.extend(c.extra_capabilities.iter().cloned());
        lines
    }

    pub(super) fn auth_offered(&self) -> bool {
        let c = &self.shared.config;
        !c.auth_mechanisms().is_empty() && (self.tls || !c.auth_requires_tls())
    }

    /// Whether an ESMTP parameter keyword is allowed by what the EHLO reply advertised.
    pub(super) fn param_allowed(&self, keyword: &str, value: Option<&str>) -> bool {
        let c = &self.shared.config;
        if self.greeted != Greeted::Ehlo {
            return false;
        }
        let extra = c.extra_capabilities.iter().any(|cap| {
            cap.split(' ').next().is_some_and(|k| k.eq_ignore_ascii_case(keyword))
                || (keyword == "BODY" && value.is_some_and(|v| v.eq_ignore_ascii_case(cap)))
        });
        extra
            || match keyword {
                "SIZE" => c.size.is_some(),
                "BODY" => {
                    c.eight_bit_mime
                        && value.is_some_and(|v| {
                            v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME")
                        })
                }
                "SMTPUTF8" => c.smtputf8,
                "RET" | "ENVID" | "NOTIFY" | "ORCPT" => c.dsn,
                "AUTH" => self.auth_offered(),
                _ => false,
            }
    }

    pub(super) fn mail(&self, path: String, params: Vec<String>) -> (Reply, Effect) {
        let c = &self.shared.config;
        if self.greeted == Greeted::No {
            return (self.reply(503, "5.5.1", "Send EHLO/HELO first"), Effect::None);
        }
        if c.require_tls && !self.tls {
            // RFC 3207 4: "530 Must issue a STARTTLS command first".
            return (self.reply(530, "5.7.0", "Must issue a STARTTLS command first"), Effect::None);
        }
        if c.require_auth && self.auth_user.is_none() {
            // RFC 4954 6: "530 5.7.0 Authentication required".
            return (self.reply(530, "5.7.0", "Authentication required"), Effect::None);
        }
        if self.txn.is_some() {
            return (self.reply(503, "5.5.1", "Nested MAIL command"), Effect::None);
        }
        let mut smtputf8 = false;
        for param in &params {
            let (keyword, value) = param_parts(param);
            if !self.param_allowed(&keyword, value) {
                // RFC 5321 4.1.1.11: "555 MAIL FROM/RCPT TO parameters not recognized or not
                // implemented".
                let text = format!("MAIL FROM parameter {param} not recognized or not implemented");
                return (self.reply(555, "5.5.4", text), Effect::None);
            }
            match keyword.as_str() {
                "SIZE" => {
                    let Some(declared) = value.and_then(|v| v.parse::<u64>().ok()) else {
                        return (self.reply(501, "5.5.4", "Bad SIZE value"), Effect::None);
                    };
                    if c.size.is_some_and(|max| max > 0 && declared > max) {
                        // RFC 1870 6.1: 552 when the declared size exceeds the fixed maximum.
                        let text = "Message size exceeds fixed maximum message size";
                        return (self.reply(552, "5.3.4", text), Effect::None);
                    }
                }
                "SMTPUTF8" => smtputf8 = true,
                _ => {}
            }
        }
        if !path.is_ascii() && !smtputf8 {
            // RFC 6531 3.5: non-ASCII addresses need the SMTPUTF8 parameter.
            return (self.reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8"), Effect::None);
        }
        let txn = Transaction { from: path.clone(), params, smtputf8, ..Transaction::default() };
        if let Some(r) = c.refused_senders.iter().find(|r| r.address.eq_ignore_ascii_case(&path)) {
            return (Reply::new(r.code, r.text.clone()), Effect::StartMail(txn));
        }
        (self.reply(250, "2.1.0", "Sender OK"), Effect::StartMail(txn))
    }

    pub(super) fn rcpt(&self, path: String, params: Vec<String>) -> (Reply, Effect) {
        let c = &self.shared.config;
        let Some(txn) = self.txn.as_ref() else {
            return (self.reply(503, "5.5.1", "Need MAIL before RCPT"), Effect::None);
        };
        for param in &params {
            let (keyword, value) = param_parts(param);
            if keyword == "SIZE" || keyword == "BODY" || !self.param_allowed(&keyword, value) {
                let text = format!("RCPT TO parameter {param} not recognized or not implemented");
                return (self.reply(555, "5.5.4", text), Effect::None);
            }
        }
        if !path.is_ascii() && !txn.smtputf8 {
            return (self.reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8"), Effect::None);
        }
        if txn.rcpts.len() >= c.max_recipients {
            // RFC 5321 4.5.3.1.10: "452 Too many recipients".
            return (self.reply(452, "4.5.3", "Too many recipients"), Effect::None);
        }
        let effect = Effect::AddRcpt(path.clone(), params);
        if let Some(r) = c.refused_recipients.iter().find(|r| r.address.eq_ignore_ascii_case(&path)) {
            return (Reply::new(r.code, r.text.clone()), effect);
        }
        (self.reply(250, "2.1.5", "Recipient OK"), effect)
    }

    pub(super) fn starttls(&self) -> (Reply, Effect) {
        let c = &self.shared.config;
        if !c.starttls || c.implicit_tls {
            (self.reply(502, "5.5.1", "Command not implemented"), Effect::None)
        } else if self.tls {
            (self.reply(503, "5.5.1", "TLS already active"), Effect::None)
        } else if self.greeted == Greeted::No {
            (self.reply(503, "5.5.1", "Send EHLO first"), Effect::None)
        } else if self.txn.is_some() {
            (self.reply(503, "5.5.1", "Mail transaction in progress"), Effect::None)
        } else {
            (self.reply(220, "2.0.0", "Ready to start TLS"), Effect::StartTls)
        }
    }
}
