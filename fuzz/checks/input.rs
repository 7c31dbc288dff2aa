//! The reader the checks decode their fuzz bytes with, shared by the checks that read
//! a script of actions (included by path next to them). Past the end of the input every
//! read is 0 or empty, so any input is a complete script.

/// Reads the fuzz input front to back.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// The next `n` bytes, or fewer at the end.
    pub fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}
