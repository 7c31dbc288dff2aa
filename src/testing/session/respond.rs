//! Answering: the fault a rule injects instead of the normal reply, and the effect a
//! command has once the client is told it succeeded.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::auth::AuthState;
use super::data::Transaction;
use super::{Flow, Greeted, Mode, Session};
use crate::testing::data::DotDecoder;
use crate::testing::fault::{self, Fault, Step};
use crate::testing::record::{ReceivedMessage, show};
use crate::testing::reply::Reply;

/// What a command does if the reply the client gets says it succeeded.
pub(super) enum Effect {
    None,
    Greet,
    Greeted(Greeted),
    StartMail(Transaction),
    AddRcpt(String, Vec<String>),
    EnterData,
    StartTls,
    Reset,
    Quit,
    AuthContinue(AuthState),
    AuthSuccess(String),
    Commit(Box<ReceivedMessage>),
}

impl Effect {
    /// The reply class (first digit) that counts as success for this effect.
    pub(super) fn success_class(&self) -> u8 {
        match self {
            Effect::EnterData | Effect::AuthContinue(_) => 3,
            _ => 2,
        }
    }
}

/// What to do once the reply is on the wire.
pub(super) enum After {
    Nothing,
    Close,
    Handshake,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Session<S> {
    /// The fault to inject at `steps`, if a rule fires; recorded as fired.
    pub(super) fn pick_fault(&self, steps: &[Step]) -> Option<Fault> {
        let fired = fault::select(&self.shared.config.rules, self.id, steps)?;
        self.note(format!("fault at {:?}: {:?}", fired.step, fired.fault));
        let fault = fired.fault.clone();
        self.shared.recorder.fired(fired);
        Some(fault)
    }

    /// Look up the fault for `steps` and answer.
    pub(super) async fn respond(&mut self, steps: &[Step], normal: Reply, effect: Effect) -> Flow {
        let fault = self.pick_fault(steps);
        self.respond_with(fault, normal, effect).await
    }

    /// Answer with `normal`, or as `fault` dictates; apply `effect` when what the client is
    /// told means success.
    pub(super) async fn respond_with(&mut self, fault: Option<Fault>, normal: Reply, effect: Effect) -> Flow {
        let esc = self.shared.config.enhanced_status_codes;
        let Some(fault) = fault else {
            return self.send(normal.to_wire(esc), normal.code, effect, None).await;
        };
        match fault {
            Fault::Reply { code, text } => {
                self.send(Reply::new(code, text).to_wire(esc), code, effect, None).await
            }
            Fault::Raw(bytes) => {
                let class = bytes.first().map_or(0, |b| b.wrapping_sub(b'0'));
                let after = self.settle(class, effect);
                self.write(bytes, None).await;
                self.after(after).await
            }
            Fault::Close => {
                self.settle(0, effect);
                Flow::Close
            }
            Fault::CommitThenClose => {
                self.settle(effect.success_class(), effect);
                Flow::Close
            }
            Fault::CloseAfterBytes(n) => {
                let flow = self.send(normal.to_wire(esc), normal.code, effect, None).await;
                self.set_budget(n);
                flow
            }
            Fault::Delay(d) => {
                // Replies to earlier pipelined commands are not part of the delay.
                self.flush_out().await;
                tokio::time::sleep(d).await;
                self.send(normal.to_wire(esc), normal.code, effect, None).await
            }
            Fault::Trickle(d) => self.send(normal.to_wire(esc), normal.code, effect, Some(d)).await,
            Fault::Silence => {
                self.settle(0, effect);
                Flow::Silence
            }
            Fault::ExtraAfterStartTls(extra) => {
                let mut bytes = normal.to_wire(esc);
                bytes.extend_from_slice(&extra);
                self.send(bytes, normal.code, effect, None).await
            }
            Fault::Unsolicited421 { idle } => self.close_when_idle(normal, effect, idle, true).await,
            Fault::CloseWhenIdle { idle } => self.close_when_idle(normal, effect, idle, false).await,
            Fault::ReplyThenDrop => {
                let flow = self.send(normal.to_wire(esc), normal.code, effect, None).await;
                if flow == Flow::Continue || flow == Flow::Close { Flow::Drop } else { flow }
            }
            Fault::RawThenClose(bytes) => {
                let class = bytes.first().map_or(0, |b| b.wrapping_sub(b'0'));
                self.settle(class, effect);
                self.write(bytes, None).await;
                Flow::Close
            }
            Fault::CommitThenSilence => {
                self.settle(effect.success_class(), effect);
                Flow::Silence
            }
            Fault::Repeat(bytes) => {
                let class = bytes.first().map_or(0, |b| b.wrapping_sub(b'0'));
                self.settle(class, effect);
                if bytes.is_empty() {
                    return Flow::Silence;
                }
                self.note(format!("sending {} bytes over and over: {}", bytes.len(), show(&bytes)));
                // Ends when the client closes or stops reading (write timeout), or when the
                // server shuts down.
                loop {
                    self.outbuf.extend_from_slice(&bytes);
                    if !self.flush_out().await {
                        return Flow::Close;
                    }
                }
            }
            Fault::StopReading => {
                let flow = self.send(normal.to_wire(esc), normal.code, effect, None).await;
                if flow == Flow::Continue { Flow::StopReading } else { flow }
            }
            Fault::RawThenStopReading(bytes) => {
                let class = bytes.first().map_or(0, |b| b.wrapping_sub(b'0'));
                self.settle(class, effect);
                self.write(bytes, None).await;
                Flow::StopReading
            }
        }
    }

    /// Send the normal reply, then arm the idle close (with or without a 421 first).
    pub(super) async fn close_when_idle(
        &mut self,
        normal: Reply,
        effect: Effect,
        idle: Duration,
        send_421: bool,
    ) -> Flow {
        let esc = self.shared.config.enhanced_status_codes;
        let flow = self.send(normal.to_wire(esc), normal.code, effect, None).await;
        if flow != Flow::Continue {
            return flow;
        }
        if !idle.is_zero() {
            self.unsolicited = Some((idle, send_421));
            return Flow::Continue;
        }
        if send_421 {
            let text =
                format!("4.4.2 {} Service shutting down, closing connection", self.shared.config.hostname);
            self.write(Reply::new(421, text).to_wire(false), None).await;
        }
        Flow::Close
    }

    /// Apply the effect, write the reply, then close or upgrade as the effect requires.
    pub(super) async fn send(
        &mut self,
        bytes: Vec<u8>,
        code: u16,
        effect: Effect,
        trickle: Option<Duration>,
    ) -> Flow {
        let class = u8::try_from(code / 100).unwrap_or(0);
        let after = self.settle(class, effect);
        if !self.write(bytes, trickle).await {
            return Flow::Close;
        }
        if code == 421 {
            // RFC 5321 3.8: 421 means the server is closing the transmission channel.
            return Flow::Close;
        }
        self.after(after).await
    }

    pub(super) async fn after(&mut self, after: After) -> Flow {
        match after {
            After::Nothing => Flow::Continue,
            After::Close => Flow::Close,
            After::Handshake => {
                if self.handshake().await {
                    Flow::Continue
                } else {
                    Flow::Close
                }
            }
        }
    }

    /// Apply `effect` if `class` (first digit of what the client is told) means success;
    /// otherwise undo what a failure undoes.
    pub(super) fn settle(&mut self, class: u8, effect: Effect) -> After {
        self.last_class = class;
        if class != effect.success_class() {
            match effect {
                Effect::Commit(msg) => self.shared.recorder.message(*msg),
                Effect::Greet => self.rejected = true,
                Effect::AuthSuccess(user) => {
                    if let Some(x) = self.exchange.as_mut() {
                        x.user = Some(user);
                    }
                }
                _ => {}
            }
            return After::Nothing;
        }
        match effect {
            Effect::None | Effect::Greet => {}
            Effect::Greeted(kind) => {
                // RFC 5321 4.1.4: EHLO/HELO in a session "is equivalent to a RSET".
                self.greeted = kind;
                self.txn = None;
            }
            Effect::StartMail(txn) => self.txn = Some(txn),
            Effect::AddRcpt(path, params) => {
                if let Some(t) = self.txn.as_mut() {
                    t.rcpts.push((path, params));
                }
            }
            Effect::EnterData => {
                self.txn.get_or_insert_with(Transaction::default);
                self.mode = Mode::Data(DotDecoder::new());
            }
            Effect::StartTls => return After::Handshake,
            Effect::Reset => self.txn = None,
            Effect::Quit => return After::Close,
            Effect::AuthContinue(state) => self.mode = Mode::Auth(state),
            Effect::AuthSuccess(user) => {
                self.auth_user = Some(user.clone());
                if let Some(x) = self.exchange.as_mut() {
                    x.user = Some(user);
                    self.auth_mechanism = Some(x.mechanism.clone());
                }
            }
            Effect::Commit(mut msg) => {
                msg.committed = true;
                self.shared.recorder.message(*msg);
            }
        }
        After::Nothing
    }
}
