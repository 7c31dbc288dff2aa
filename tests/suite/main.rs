//! smtpkit's integration suite: one test binary with a module per area.

mod driver;
