//! placeholder
pub fn check(_data: &[u8]) {}
