//! RMM simulators: real HTTP servers on 127.0.0.1 that serve what the real products serve.

pub mod tactical;
pub mod tanium;
